//! A trace holding null durations and odd strings (`tools/fixtures/oddities.py`): ferret-io's
//! numbers, trees and Parquet rows in every way of converting it, and every output that holds
//! its names, ids and tags read back by a real parser (serde_json, the csv crate, pyarrow).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

const DB: &str = "oddities.db";

#[test]
fn null_durations_and_odd_strings_give_ferret_ios_numbers_trees_and_rows() {
    let reference = reference(DB);
    let run = only_run(&reference);
    // What the fixture must hold for this test to mean anything.
    assert!(
        run["stats"].get("never_ended").is_none(),
        "a name of nulls only is left out"
    );
    assert!(
        run["stats"]["work"]["count"].as_u64() > Some(6),
        "work has null durations"
    );
    for_each_way(DB, |db, file| {
        check_stats_against_ferret(db, file);
        check_trees_against_ferret(db, file);
        check_parquet_against_ferret(db, file);
    });
}

/// Every span of the reference: span id → (parent id, name, tags).
fn reference_spans() -> BTreeMap<String, (Option<String>, String, Value)> {
    let reference = reference(DB);
    let mut spans = BTreeMap::new();
    for run in reference["runs"].as_object().unwrap().values() {
        let mut stack: Vec<(&Value, Option<String>)> =
            want_roots_of(run).into_iter().map(|r| (r, None)).collect();
        while let Some((n, parent)) = stack.pop() {
            let id = n["span_id"].as_str().unwrap().to_string();
            let name = n["name"].as_str().unwrap().to_string();
            spans.insert(id.clone(), (parent, name, n["tags"].clone()));
            for c in n["children"].as_array().unwrap() {
                stack.push((c, Some(id.clone())));
            }
        }
    }
    spans
}

fn want_roots_of(run: &Value) -> Vec<&Value> {
    run["roots"].as_array().unwrap().iter().collect()
}

/// The one run of ferret-io's reference.
fn only_run(reference: &Value) -> &Value {
    let runs = reference["runs"].as_object().unwrap();
    assert_eq!(runs.len(), 1, "the fixture holds one run");
    runs.values().next().unwrap()
}

/// The names ferret-io's table holds.
fn reference_names() -> BTreeSet<String> {
    let reference = reference(DB);
    let run = only_run(&reference);
    run["stats"].as_object().unwrap().keys().cloned().collect()
}

/// `name` as a text output shows it: control characters escaped.
fn shown(name: &str) -> String {
    name.replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
        .replace('\x07', "\\u{7}")
        .replace('\x1b', "\\u{1b}")
}

#[test]
fn every_output_of_odd_strings_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture(DB), dir.path());
    let names = reference_names();
    let spans = reference_spans();
    assert!(names.iter().any(|n| n.contains('\n')) && spans.contains_key("id\"with\\quote"));

    // The function table as JSON, CSV and text.
    let table = table_json(&file, &[]);
    let got: BTreeSet<String> = table["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, names);
    let csv_text = ok!(run!(
        "ferret-scan",
        &file,
        "--format",
        "csv",
        "--limit",
        "0"
    ));
    let mut csv = csv::Reader::from_reader(csv_text.as_bytes());
    let got: BTreeSet<String> = csv.records().map(|r| r.unwrap()[0].to_string()).collect();
    assert_eq!(got, names);
    let text = ok!(run!("ferret-scan", &file, "--limit", "0"));
    assert_eq!(
        text.lines().count(),
        3 + names.len(),
        "a row a name:\n{text}"
    );
    for name in &names {
        assert!(text.contains(&shown(name)), "{name:?} in\n{text}");
    }

    // Trees as JSON (ids as the source wrote them) and as text (a line a span).
    let trees = json_of(run!(
        "ferret-scan",
        &file,
        "--tree",
        "--limit",
        "0",
        "--format",
        "json"
    ));
    let mut got = BTreeMap::new();
    let mut stack: Vec<(&Value, Option<String>)> = trees["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r, None))
        .collect();
    while let Some((n, parent)) = stack.pop() {
        let id = n["span_id"].as_str().unwrap().to_string();
        let tags = n["tags"].clone();
        got.insert(
            id.clone(),
            (parent, n["name"].as_str().unwrap().to_string(), tags),
        );
        for c in n["children"].as_array().unwrap() {
            stack.push((c, Some(id.clone())));
        }
    }
    assert_eq!(got, spans);
    let text = ok!(run!("ferret-scan", &file, "--tree", "--limit", "0"));
    let lines = text.lines().filter(|l| l.contains(" - ")).count();
    assert_eq!(lines, spans.len(), "a line a span:\n{text}");

    // Folded stacks: `frames weight`, a line a stack, every frame a name as shown.
    let folded = ok!(run!("ferret-scan", &file, "--folded"));
    let shown_names: BTreeSet<String> = spans
        .values()
        .map(|(_, n, _)| shown(n).replace(';', ":"))
        .collect();
    for line in folded.lines() {
        let (stack, weight) = line.rsplit_once(' ').unwrap();
        weight.parse::<u64>().unwrap();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        for frame in stack.split(';') {
            assert!(shown_names.contains(frame), "{frame:?} of {line:?}");
        }
    }

    // The Chrome trace, the timeline, the runs and a comparison: JSON that parses, with the ids.
    let chrome = dir.path().join("t.json");
    ok!(run!(
        "ferret-scan",
        &file,
        "--tree",
        "--limit",
        "0",
        "--chrome-trace",
        &chrome
    ));
    let events: Value = serde_json::from_str(&std::fs::read_to_string(&chrome).unwrap()).unwrap();
    let ids: BTreeSet<&str> = events["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["args"]["span_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, spans.keys().map(String::as_str).collect());
    json_of(run!("ferret-scan", &file, "--timeline", "--format", "json"));
    let runs = json_of(run!("ferret-scan", &file, "--runs", "--format", "json"));
    let run_id = runs[0]["run_id"].as_str().unwrap();
    let compared = json_of(run!(
        "ferret-scan",
        &file,
        "--baseline",
        run_id,
        "--format",
        "json",
        "--limit",
        "0"
    ));
    assert_eq!(compared["functions"].as_array().unwrap().len(), names.len());

    // The page: a row a function, every name there (escaped as HTML text).
    let page = dir.path().join("p.html");
    ok!(run!("ferret-scan", &file, "--html", &page));
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<tr class=\"function\">").count(), names.len());

    // Parquet, read by pyarrow: every span with its id, parent, name and tags.
    let parquet = dir.path().join("t.parquet");
    ok!(run!("ferret-scan", &file, "--to-parquet", &parquet));
    assert_eq!(pyarrow_spans(&parquet), spans);
}

/// The spans of a Parquet export as pyarrow reads them: span id → (parent id, name, tags).
fn pyarrow_spans(parquet: &Path) -> BTreeMap<String, (Option<String>, String, Value)> {
    let python = std::env::var("FERRET_TEST_PYTHON").expect(
        "FERRET_TEST_PYTHON names a Python with pyarrow: `make test` sets it (tools/test-python.sh)",
    );
    let script = "import json, sys, pyarrow.parquet as pq\n\
        t = pq.read_table(sys.argv[1])\n\
        print(json.dumps(t.select(['span_id', 'parent_id', 'name', 'tags']).to_pylist()))";
    let out = ok!(Command::new(python)
        .args(["-c", script])
        .arg(parquet)
        .output()
        .unwrap());
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    rows.into_iter()
        .map(|r| {
            let tags: Value = serde_json::from_str(r["tags"].as_str().unwrap()).unwrap();
            (
                r["span_id"].as_str().unwrap().to_string(),
                (
                    r["parent_id"].as_str().map(str::to_string),
                    r["name"].as_str().unwrap().to_string(),
                    tags,
                ),
            )
        })
        .collect()
}
