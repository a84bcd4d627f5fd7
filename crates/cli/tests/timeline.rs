//! `--timeline`: buckets counted against the database itself.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// The spans of a fixture database, read straight from its log table (either layout).
fn fixture_spans(db: &Path) -> Vec<Value> {
    let con = rusqlite::Connection::open(db).unwrap();
    let sql = format!(
        "SELECT data FROM {} WHERE log_name = '_ferret_trace'",
        log_table(&con)
    );
    let mut stmt = con.prepare(&sql).unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(|r| serde_json::from_str(&r.unwrap()).unwrap())
        .collect()
}

/// Checks a timeline against the spans it covers: per bucket the spans and errors counted
/// straight from the database, the total time, and percentiles within the sketch's bound of the
/// exact nearest-rank ones. A span belongs to bucket `k = floor(start_time / bucket_seconds)`,
/// whose start is `k * bucket_seconds` printed as its shortest decimal.
fn check_timeline(got: &Value, spans: &[&Value], what: &str) {
    let width = got["bucket_seconds"].as_f64().unwrap();
    let buckets = got["buckets"].as_array().unwrap();
    let first = (buckets[0]["start"].as_f64().unwrap() / width).round() as i64;
    for (i, b) in buckets.iter().enumerate() {
        // The start's text has no float noise: at most 9 decimals (nanoseconds).
        let text = b["start"].to_string();
        let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 9, "{what}: start {text}");
        let k = first + i as i64;
        assert!((b["start"].as_f64().unwrap() - k as f64 * width).abs() < 1e-6 * width.max(1.0));
    }
    let mut inside: Vec<Vec<&Value>> = vec![Vec::new(); buckets.len()];
    for s in spans {
        let t = s["start_time"].as_f64().unwrap();
        let i = (t / width).floor() as i64 - first;
        assert!(
            (0..buckets.len() as i64).contains(&i),
            "{what}: {t} in no bucket"
        );
        inside[i as usize].push(s);
    }
    for (b, inside) in buckets.iter().zip(inside) {
        let start = b["start"].as_f64().unwrap();
        let errors = inside.iter().filter(|s| s["status"] != "ok").count();
        assert_eq!(b["spans"], inside.len(), "{what} bucket {start}");
        assert_eq!(b["errors"], errors, "{what} bucket {start}");
        let mut durations: Vec<f64> = inside
            .iter()
            .filter_map(|s| s["duration"].as_f64())
            .collect();
        durations.sort_by(f64::total_cmp);
        let total: f64 = durations.iter().sum();
        let got_total = b["total_duration"].as_f64().unwrap();
        assert!(
            (got_total - total).abs() <= 1e-9 * total.max(1.0),
            "{what} {start}: {got_total} vs {total}"
        );
        for (key, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            let rank = ((q * durations.len() as f64).ceil() as usize).max(1);
            let Some(&exact) = durations.get(rank - 1) else {
                assert!(b[key].is_null(), "{what} {start} {key}: no durations");
                continue;
            };
            let p = b[key].as_f64().unwrap();
            let bound = ferret_scan::sketch::BOUND * exact.abs() + 1e-12;
            assert!(
                (p - exact).abs() <= bound,
                "{what} {start} {key}: {p} vs exact {exact}"
            );
        }
    }
}

/// On the fixtures, every run's timeline (default buckets, a given width, one function's, a
/// window) counts what the database holds, bucket by bucket, and its JSON, CSV and table agree.
#[test]
fn timelines_count_what_the_database_holds_bucket_by_bucket() {
    for db in ["beaver1.db", "beaver2.db", "generated1.db"] {
        let dir = tempfile::tempdir().unwrap();
        let file = convert(&fixture(db), dir.path());
        let all = fixture_spans(&fixture(db));
        for run_id in reference(db)["runs"].as_object().unwrap().keys() {
            let spans: Vec<&Value> = all
                .iter()
                .filter(|s| s["run_id"] == run_id.as_str())
                .collect();
            let timeline = |more: &[&str]| -> Value {
                let out = Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
                    .arg(&file)
                    .args(["--timeline", "--format", "json", "--run", run_id])
                    .args(more)
                    .output()
                    .unwrap();
                serde_json::from_str(&ok!(out)).unwrap()
            };
            let got = timeline(&[]);
            assert_eq!(got["run_id"], run_id.as_str());
            let n = got["buckets"].as_array().unwrap().len();
            assert!(
                (50..=200).contains(&n) || spans.len() < 50,
                "{db} {run_id}: {n} default buckets"
            );
            check_timeline(&got, &spans, &format!("{db} {run_id}"));
            check_timeline(
                &timeline(&["--bucket", "7ms"]),
                &spans,
                &format!("{db} {run_id} 7ms"),
            );
            let level: Vec<&Value> = spans
                .iter()
                .copied()
                .filter(|s| s["name"].as_str().unwrap().starts_with("level"))
                .collect();
            if !level.is_empty() {
                check_timeline(
                    &timeline(&["--name", "^level"]),
                    &level,
                    &format!("{db} {run_id} --name"),
                );
            }
            // A window: the middle of the run.
            let starts: Vec<f64> = spans
                .iter()
                .map(|s| s["start_time"].as_f64().unwrap())
                .collect();
            let (lo, hi) = starts
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &t| (a.min(t), b.max(t)));
            let (since, until) = (lo + (hi - lo) / 4.0, lo + (hi - lo) / 2.0);
            let inside: Vec<&Value> = spans
                .iter()
                .copied()
                .filter(|s| (since..until).contains(&s["start_time"].as_f64().unwrap()))
                .collect();
            let windowed =
                timeline(&["--since", &since.to_string(), "--until", &until.to_string()]);
            check_timeline(&windowed, &inside, &format!("{db} {run_id} window"));
        }
    }
    // CSV and the table: a row per bucket, the same counts.
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("generated1.db"), dir.path());
    let json = json_of(run!("ferret-scan", &file, "--timeline", "--format", "json"));
    let buckets = json["buckets"].as_array().unwrap();
    let csv = ok!(run!("ferret-scan", &file, "--timeline", "--format", "csv"));
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), buckets.len());
    for (row, b) in rows.iter().zip(buckets) {
        assert_eq!(
            (row[1], row[2]),
            (
                b["spans"].to_string().as_str(),
                b["errors"].to_string().as_str()
            )
        );
    }
    let table = ok!(run!("ferret-scan", &file, "--timeline"));
    assert_eq!(
        table.lines().count(),
        buckets.len() + 3,
        "a title, a header, a rule and the rows"
    );
    let on_terminal = scan_on_a_terminal(&file, "--timeline");
    assert!(
        on_terminal.contains("p99     ") && on_terminal.contains('█'),
        "sparklines on a terminal: {on_terminal}"
    );
    fails!(
        run!("ferret-scan", &file, "--timeline", "--bucket", "1us"),
        "buckets of",
        "give a longer --bucket"
    );
}
