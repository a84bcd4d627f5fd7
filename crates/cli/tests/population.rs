//! A population: several files (a pre-fork service's workers, a trace file each, recorded by
//! the real ferret-io) and several runs as one question, checked against the merge of
//! ferret-io's own `Report.analyze_run` of each file's run; `--by`; trees, timeline, stacks,
//! Chrome trace, Parquet and the page over the population; a time window as the baseline; and
//! the bad inputs of several files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util::*;

/// The workers fixture copied into a temporary folder (scans make sidecars beside a trace):
/// the folder, the three traces, and the moment `db.query` became slower.
fn workers() -> (tempfile::TempDir, Vec<PathBuf>, f64) {
    let dir = tempfile::tempdir().unwrap();
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("workers/workers.json")).unwrap())
            .unwrap();
    let files = meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = f.as_str().unwrap();
            let copy = dir.path().join(name);
            std::fs::copy(fixture(&format!("workers/{name}")), &copy).unwrap();
            copy
        })
        .collect();
    (dir, files, meta["switch"].as_f64().unwrap())
}

/// ferret-io's statistics of each chosen run (file reference, run id) merged as the issue
/// defines a population: counts, totals and errors add, min and max over all, avg = total /
/// count, error rate = errors / count.
fn merged_reference(runs: &[(&Value, &str)]) -> HashMap<String, Value> {
    let mut merged: HashMap<String, (u64, f64, f64, f64, u64)> = HashMap::new();
    for (reference, run) in runs {
        for (name, s) in reference["runs"][*run]["stats"].as_object().unwrap() {
            let e =
                merged
                    .entry(name.clone())
                    .or_insert((0, 0.0, f64::INFINITY, f64::NEG_INFINITY, 0));
            e.0 += s["count"].as_u64().unwrap();
            e.1 += s["total_duration"].as_f64().unwrap();
            e.2 = e.2.min(s["min_duration"].as_f64().unwrap());
            e.3 = e.3.max(s["max_duration"].as_f64().unwrap());
            e.4 += s["error_count"].as_u64().unwrap();
        }
    }
    merged
        .into_iter()
        .map(|(name, (count, total, min, max, errors))| {
            let stats = json!({
                "count": count, "total_duration": total, "avg_duration": total / count as f64,
                "min_duration": min, "max_duration": max, "error_count": errors,
                "error_rate": errors as f64 / count as f64,
            });
            (name, stats)
        })
        .collect()
}

/// Checks a scan's `functions` against merged statistics, name by name.
fn check_functions(got: &Value, want: &HashMap<String, Value>, what: &str) {
    let rows = by_key(got, "name");
    assert_eq!(rows.len(), want.len(), "{what}: the same names");
    for (name, w) in want {
        let g = rows
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{what}: {name} missing"));
        check_side(g, Some(w), &format!("{what} {name}"));
    }
}

/// Each worker file's reference and its one run.
fn worker_references(files: &[PathBuf]) -> Vec<(Value, String)> {
    files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_str().unwrap();
            let reference = reference(&format!("workers/{name}"));
            let run = reference["latest_run"].as_str().unwrap().to_string();
            (reference, run)
        })
        .collect()
}

fn scan_population(files: &[PathBuf], args: &[&str]) -> Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferret-scan"));
    cmd.args(files).args(["--format", "json"]).args(args);
    if !args.contains(&"--limit") {
        cmd.args(["--limit", "0"]);
    }
    json_of(cmd.output().unwrap())
}

/// The worker files as one population equal the merge of ferret-io's Report of each file's
/// run; `--by file` equals each file's Report; every output names the population.
#[test]
fn workers_as_one_population_equal_the_merge_of_each_files_report() {
    let (_dir, files, _) = workers();
    let refs = worker_references(&files);
    let runs: Vec<(&Value, &str)> = refs.iter().map(|(r, run)| (r, run.as_str())).collect();
    let got = scan_population(&files, &[]);
    check_functions(
        &got["functions"],
        &merged_reference(&runs),
        "the population",
    );
    let spans: u64 = refs
        .iter()
        .map(|(r, _)| r["span_count"].as_u64().unwrap())
        .sum();
    assert_eq!(got["spans"], spans);
    assert!(got.get("run_id").is_none(), "several runs: no run_id");
    let population = &got["population"];
    let given: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    assert_eq!(population["files"], json!(given));
    let listed: Vec<(&str, &str)> = population["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["file"].as_str().unwrap(), r["run_id"].as_str().unwrap()))
        .collect();
    let want: Vec<(&str, &str)> = given
        .iter()
        .zip(&refs)
        .map(|(f, (_, run))| (f.as_str(), run.as_str()))
        .collect();
    assert_eq!(listed, want);

    // --by file: each group is exactly that file's Report.
    let by_file = scan_population(&files, &["--by", "file"]);
    let groups = by_file["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    for ((group, (reference, run)), path) in groups.iter().zip(&refs).zip(&given) {
        assert_eq!(group["key"], path.as_str());
        assert_eq!(group["spans"], reference["span_count"]);
        let one = merged_reference(&[(reference, run.as_str())]);
        check_functions(&group["functions"], &one, path);
    }
    // The table says what the population is and leads each row with its file.
    let table = ok!(run!(
        "ferret-scan",
        &files[0],
        &files[1],
        &files[2],
        "--by",
        "file"
    ));
    let first = table.lines().next().unwrap();
    assert!(first.contains("3 files · 3 runs"), "{first}");
    let rows = table.lines().filter(|l| l.contains("db.query")).count();
    assert_eq!(rows, 3, "{table}");
    let csv = ok!(run!(
        "ferret-scan",
        &files[0],
        &files[1],
        "--by",
        "run",
        "--format",
        "csv"
    ));
    assert!(csv.starts_with("run,name,count,"), "{csv}");
    assert!(csv
        .lines()
        .skip(1)
        .all(|l| l.starts_with(&refs[0].1) || l.starts_with(&refs[1].1)));
}

/// Trees, timeline, stacks, Chrome trace, Parquet and the page cover the whole population.
#[test]
fn every_mode_covers_the_population() {
    let (dir, files, _) = workers();
    let refs = worker_references(&files);
    let spans: u64 = refs
        .iter()
        .map(|(r, _)| r["span_count"].as_u64().unwrap())
        .sum();
    // The slowest roots across the files, each with its file and run.
    let trees = scan_population(&files, &["--tree", "--limit", "5"]);
    let mut roots: Vec<(f64, String, String)> = Vec::new();
    for ((reference, run), file) in refs.iter().zip(&files) {
        for root in want_roots(reference, run) {
            let id = root["span_id"].as_str().unwrap().to_string();
            roots.push((
                root["duration"].as_f64().unwrap(),
                id,
                file.display().to_string(),
            ));
        }
    }
    roots.sort_by(|a, b| b.0.total_cmp(&a.0));
    let got: Vec<(String, String)> = trees["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["span_id"].as_str().unwrap().to_string(),
                r["file"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = roots[..5]
        .iter()
        .map(|(_, id, f)| (id.clone(), f.clone()))
        .collect();
    assert_eq!(got, want);
    // The timeline counts every span of every file.
    let timeline = scan_population(&files, &["--timeline"]);
    let counted: u64 = timeline["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["spans"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, spans);
    // The folded stacks are each file's, added stack by stack.
    let folded = |args: &[&Path]| -> HashMap<String, u64> {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferret-scan"));
        let out = ok!(cmd.args(args).arg("--folded").output().unwrap());
        let mut stacks = HashMap::new();
        for line in out.lines() {
            let (stack, weight) = line.rsplit_once(' ').unwrap();
            *stacks.entry(stack.to_string()).or_default() += weight.parse::<u64>().unwrap();
        }
        stacks
    };
    let all: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut added: HashMap<String, u64> = HashMap::new();
    for f in &all {
        for (stack, w) in folded(&[f]) {
            *added.entry(stack).or_default() += w;
        }
    }
    assert_eq!(folded(&all), added);
    // Chrome trace: one process per tree, named by its file and run.
    let chrome = dir.path().join("trees.json");
    ok!(run!(
        "ferret-scan",
        &files[0],
        &files[1],
        &files[2],
        "--chrome-trace",
        &chrome,
        "--limit",
        "4"
    ));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&chrome).unwrap()).unwrap();
    let names: Vec<&str> = doc["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "M")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4);
    assert!(names.iter().all(|n| n.contains(" · run ")), "{names:?}");
    // Parquet: every span of every file.
    let parquet = dir.path().join("all.parquet");
    ok!(run!(
        "ferret-scan",
        &files[0],
        &files[1],
        &files[2],
        "--to-parquet",
        &parquet
    ));
    let rows = parquet_rows(&parquet);
    assert_eq!(rows.len() as u64, spans);
    let runs: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(runs.len(), 3);
    // The page's header lists the files and runs.
    let page = dir.path().join("page.html");
    ok!(run!(
        "ferret-scan",
        &files[0],
        &files[1],
        &files[2],
        "--html",
        &page
    ));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Files (3)") && html.contains("Runs (3)"));
    for (_, run) in &refs {
        assert!(html.contains(run.as_str()), "the page names run {run}");
    }
    // --runs lists each run with its file.
    let listed = scan_population(&files, &["--runs"]);
    let listed: Vec<(&str, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["file"].as_str().unwrap(), r["default"].as_bool().unwrap()))
        .collect();
    let want: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    assert_eq!(
        listed,
        want.iter().map(|f| (f.as_str(), true)).collect::<Vec<_>>()
    );
}

/// The last requests against the first, as windows of the same population: the function made
/// slower at the moment and its caller are called slower, the rest the same; the regression
/// gate fires.
#[test]
fn a_window_as_the_baseline_finds_the_function_slowed_at_a_known_moment() {
    let (_dir, files, switch) = workers();
    let at = switch.to_string();
    let got = scan_population(&files, &["--since", &at, "--baseline-until", &at]);
    let changes: HashMap<&str, &str> = got["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["change"].as_str().unwrap()))
        .collect();
    let want = HashMap::from([
        ("db.query", "slower"),
        ("handle", "slower"),
        ("auth.check", "same"),
        ("render", "same"),
    ]);
    assert_eq!(changes, want);
    // Each side holds its window's spans: half of every file's.
    let refs = worker_references(&files);
    let spans: u64 = refs
        .iter()
        .map(|(r, _)| r["span_count"].as_u64().unwrap())
        .sum();
    assert_eq!(got["base"]["spans"].as_u64().unwrap(), spans / 2);
    assert_eq!(got["target"]["spans"].as_u64().unwrap(), spans / 2);
    assert_eq!(got["base"]["population"]["until"], json!(switch));
    assert_eq!(got["target"]["population"]["since"], json!(switch));
    // A shift of about 50%: above a 30% gate, which exits 3 naming it.
    let gate = run!(
        "ferret-scan",
        &files[0],
        &files[1],
        &files[2],
        "--since",
        &at,
        "--baseline-until",
        &at,
        "--fail-on-regression",
        "30"
    );
    assert_eq!(gate.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&gate.stderr).contains("db.query"));
    // Relative windows count back from the population's last span end: the last 10 minutes
    // against the 10 before hold everything against nothing.
    let relative = scan_population(
        &files,
        &[
            "--since",
            "-10m",
            "--baseline-since",
            "-20m",
            "--baseline-until",
            "-10m",
        ],
    );
    assert_eq!(relative["target"]["spans"].as_u64().unwrap(), spans);
    assert_eq!(relative["base"]["spans"].as_u64().unwrap(), 0);
}

/// Several runs of one file: `--run A --run B` equals the merge of the two runs' Report
/// numbers, `--all-runs` the merge of them all.
#[test]
fn several_runs_of_one_file_merge_as_ferret_io_reports_add() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("generated1.db"), dir.path());
    let reference = reference("generated1.db");
    let runs: Vec<&str> = reference["runs"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(runs.len() >= 3, "the fixture has several runs");
    let two = scan_population(
        std::slice::from_ref(&file),
        &["--run", runs[0], "--run", runs[1]],
    );
    let want = merged_reference(&[(&reference, runs[0]), (&reference, runs[1])]);
    check_functions(&two["functions"], &want, "two runs");
    let all = scan_population(std::slice::from_ref(&file), &["--all-runs"]);
    let every: Vec<(&Value, &str)> = runs.iter().map(|r| (&reference, *r)).collect();
    check_functions(&all["functions"], &merged_reference(&every), "every run");
    assert_eq!(
        all["population"]["runs"].as_array().unwrap().len(),
        runs.len()
    );
}

/// One population of a database, a JSON-lines file and a record file.
#[test]
fn a_population_mixes_a_database_json_lines_and_a_record_file() {
    let (dir, files, _) = workers();
    let refs = worker_references(&files);
    let lines = dir.path().join("worker-1.jsonl");
    std::fs::write(&lines, write_order_lines(&files[1]).concat()).unwrap();
    let record = dir.path().join("worker-2.ferret");
    ok!(run!("ferret-convert", &files[2], "-o", &record, "--quiet"));
    let got = scan_population(&[files[0].clone(), lines, record], &[]);
    let runs: Vec<(&Value, &str)> = refs.iter().map(|(r, run)| (r, run.as_str())).collect();
    check_functions(
        &got["functions"],
        &merged_reference(&runs),
        "a mixed population",
    );
}

/// A file among several that cannot be read stops the question naming it, before any sidecar
/// is made; the same file twice is named; a run in two files is named with both.
#[test]
fn bad_files_among_several_are_named() {
    let (dir, files, _) = workers();
    let missing = dir.path().join("worker-9.db");
    fails!(
        run!("ferret-scan", &files[0], &missing, &files[1]),
        "worker-9.db"
    );
    let sidecars = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".ferret")
        })
        .count();
    assert_eq!(sidecars, 0, "nothing written before the bad file was found");
    fails!(
        run!("ferret-scan", &files[0], &files[1], &files[0]),
        "worker-0.db",
        "same trace"
    );
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "not a trace").unwrap();
    fails!(run!("ferret-scan", &files[0], &junk), "notes.txt");
    // A prefix every worker's run id starts with: no such run, or a run in several files.
    fails!(
        run!("ferret-scan", &files[0], &files[1], "--run", "zzzz"),
        "no run \"zzzz\" in any of the 2 files"
    );
    let copy = dir.path().join("copy.db");
    std::fs::copy(&files[0], &copy).unwrap();
    let run = worker_references(&files[..1])[0].1.clone();
    fails!(
        run!("ferret-scan", &files[0], &copy, "--run", &run),
        "worker-0.db",
        "copy.db"
    );
}
