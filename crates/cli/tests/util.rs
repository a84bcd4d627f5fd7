//! Helpers every topic shares: running the real executables on temp files (`run!`, `ok!`,
//! `fails!`), the fixtures and ferret-io's references, and the checks against them.

use ferret_format::SpanFile;
use ferret_format::SpanId;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::process::Output;

/// Runs an executable of this crate with arguments, returning its output.
macro_rules! run {
    ($bin:literal $(, $arg:expr)* $(,)?) => {{
        let out: std::process::Output = std::process::Command::new(env!(concat!("CARGO_BIN_EXE_", $bin)))
            $(.arg($arg))*
            .output()
            .expect("the executable runs");
        out
    }};
}

/// Asserts success and returns stdout as text.
macro_rules! ok {
    ($out:expr) => {{
        let out = $out;
        assert!(
            out.status.success(),
            "failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }};
}

/// Asserts a failure with exit code 1 and a one-line message containing each needle.
macro_rules! fails {
    ($out:expr, $($needle:expr),+) => {{
        let out = $out;
        assert_eq!(out.status.code(), Some(1), "want exit 1: {:?}", out);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(err.trim_end().lines().count(), 1, "want one line: {err}");
        let parts: Vec<&str> = err.trim_end().split(": ").collect();
        for (i, part) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(part), "{err:?} says {part:?} twice");
        }
        $(assert!(err.contains($needle), "{err:?} lacks {:?}", $needle);)+
        err
    }};
}

/// The repository's top folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn golden(name: &str) -> PathBuf {
    repo_root().join("testdata/golden").join(name)
}

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("testdata/fixtures").join(name)
}

pub fn reference(db: &str) -> Value {
    let path = fixture(&db.replace(".db", ".reference.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn convert(db: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("t.ferret");
    ok!(run!("ferret-convert", db, "-o", &out, "--quiet"));
    out
}

/// The log table of a BeaverDB fixture (either layout).
pub fn log_table(con: &rusqlite::Connection) -> &'static str {
    let has = |t: &str| {
        con.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [t],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            > 0
    };
    if has("beaver_logs") {
        "beaver_logs"
    } else {
        "__beaver_logs__"
    }
}

/// Converts `db` as a user converts a live trace: the database as it stood after each cut
/// (the fraction of its rowids written by then: exactly what the file held at that moment),
/// then as it is, each conversion after the first with `--append`.
pub fn convert_rowid_snapshots(db: &Path, dir: &Path, cuts: &[f64]) -> PathBuf {
    let snapshot = dir.join("live.db");
    let out = dir.join("live.ferret");
    for (i, cut) in cuts.iter().chain([&1.0]).enumerate() {
        rowid_cut(db, &snapshot, *cut);
        if i == 0 {
            ok!(run!("ferret-convert", &snapshot, "-o", &out, "--quiet"));
        } else {
            ok!(run!(
                "ferret-convert",
                &snapshot,
                "-o",
                &out,
                "--append",
                "--quiet"
            ));
        }
    }
    out
}

/// Copies `db` to `snapshot` as it stood when the fraction `cut` of its rowids was written.
pub fn rowid_cut(db: &Path, snapshot: &Path, cut: f64) {
    std::fs::copy(db, snapshot).unwrap();
    let con = rusqlite::Connection::open(snapshot).unwrap();
    let table = log_table(&con);
    let max_rowid: i64 = con
        .query_row(&format!("SELECT max(rowid) FROM {table}"), [], |r| r.get(0))
        .unwrap();
    let last = (max_rowid as f64 * cut).round() as i64;
    con.execute(&format!("DELETE FROM {table} WHERE rowid > ?1"), [last])
        .unwrap();
}

/// The fixture's spans as JSON lines in write order (`ORDER BY rowid`: what a plain dump of
/// the table gives, children before their parents).
pub fn write_order_lines(db: &Path) -> Vec<String> {
    let con = rusqlite::Connection::open(db).unwrap();
    let table = log_table(&con);
    let mut stmt = con
        .prepare(&format!(
            "SELECT data FROM {table} WHERE log_name = '_ferret_trace' ORDER BY rowid"
        ))
        .unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(|r| r.unwrap() + "\n").collect()
}

/// Every way a trace reaches a record file, each of which must give ferret-io's answers on the
/// finished trace: one conversion; rowid snapshots of the live database completed by
/// `--append`; JSON lines in write order, whole, and as a growing file converted in two parts.
pub fn converted_ways(db: &str) -> (tempfile::TempDir, Vec<(&'static str, PathBuf)>) {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(db);
    let one = dir.path().join("one.ferret");
    ok!(run!("ferret-convert", &src, "-o", &one, "--quiet"));
    let live = convert_rowid_snapshots(&src, dir.path(), &[0.3, 0.7]);
    let lines = write_order_lines(&src);
    let jsonl = dir.path().join("dump.jsonl");
    std::fs::write(&jsonl, lines.concat()).unwrap();
    let dump = dir.path().join("dump.ferret");
    ok!(run!("ferret-convert", &jsonl, "-o", &dump, "--quiet"));
    let growing = dir.path().join("growing.jsonl");
    let parts = dir.path().join("growing.ferret");
    std::fs::write(&growing, lines[..lines.len() / 2].concat()).unwrap();
    ok!(run!("ferret-convert", &growing, "-o", &parts, "--quiet"));
    std::fs::write(&growing, lines.concat()).unwrap();
    ok!(run!(
        "ferret-convert",
        &growing,
        "-o",
        &parts,
        "--append",
        "--quiet"
    ));
    let ways = vec![
        ("one conversion", one),
        ("rowid snapshots completed by --append", live),
        ("JSON lines in write order", dump),
        ("JSON lines in write order, in two parts", parts),
    ];
    (dir, ways)
}

/// Runs `check(db, file)` on every way of converting fixture `db` ([`converted_ways`]).
pub fn for_each_way(db: &str, check: impl Fn(&str, &Path)) {
    let (_dir, ways) = converted_ways(db);
    for (way, file) in &ways {
        eprintln!("{db}: {way}");
        check(db, file);
    }
}

/// The objects of a JSON array by the string value of their field `key`.
pub fn by_key<'a>(items: &'a Value, key: &str) -> HashMap<&'a str, &'a Value> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item[key].as_str().unwrap(), item))
        .collect()
}

pub fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// The JSON a successful run printed.
pub fn json_of(out: Output) -> Value {
    serde_json::from_str(&ok!(out)).expect("JSON output")
}

/// `ferret-scan FILE --format json --limit 0 EXTRA...` (the whole table), parsed.
pub fn table_json(file: &Path, extra: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
        .arg(file)
        .args(["--format", "json", "--limit", "0"])
        .args(extra)
        .output()
        .unwrap();
    json_of(out)
}

/// `ferret-scan FILE --run RUN --format json --limit 0`, parsed.
pub fn scan_json(file: &Path, run_id: &str) -> Value {
    serde_json::from_str(&ok!(run!(
        "ferret-scan",
        file,
        "--run",
        run_id,
        "--format",
        "json",
        "--limit",
        "0"
    )))
    .unwrap()
}

pub fn check_stats_against_ferret(db: &str, file: &Path) {
    let reference = reference(db);
    let runs = reference["runs"].as_object().unwrap();
    assert!(!runs.is_empty(), "{db}: the reference has runs");
    // The default run is ferret's: the run of the latest span.
    let default: Value =
        serde_json::from_str(&ok!(run!("ferret-scan", file, "--format", "json"))).unwrap();
    assert_eq!(default["run_id"], reference["latest_run"]);
    for (run_id, want) in runs {
        let got = scan_json(file, run_id);
        assert_eq!(got["spans"], want["span_count"], "{run_id}");
        let rows = by_key(&got["functions"], "name");
        let want = want["stats"].as_object().unwrap();
        assert_eq!(rows.len(), want.len(), "{run_id}: same names");
        for (name, w) in want {
            let g = rows
                .get(name.as_str())
                .unwrap_or_else(|| panic!("{run_id}: {name} missing"));
            check_side(g, Some(w), &format!("{run_id} {name}"));
        }
        // Sorted by total descending, as ferret prints.
        let totals: Vec<f64> = got["functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["total_duration"].as_f64().unwrap())
            .collect();
        assert!(totals.windows(2).all(|w| w[0] >= w[1]));
        // Self time per name: its total minus its spans' children's durations in ferret's
        // trees (floored per name, as documented): wrong links show here first.
        let mut child_time: HashMap<&str, f64> = HashMap::new();
        let mut stack: Vec<&Value> = want_roots(&reference, run_id);
        while let Some(n) = stack.pop() {
            let children = n["children"].as_array().unwrap();
            let sum: f64 = children.iter().filter_map(|c| c["duration"].as_f64()).sum();
            *child_time.entry(n["name"].as_str().unwrap()).or_default() += sum;
            stack.extend(children);
        }
        for (name, w) in want {
            let total = w["total_duration"].as_f64().unwrap();
            let expect = (total - child_time.get(name.as_str()).copied().unwrap_or(0.0)).max(0.0);
            let got = rows[name.as_str()]["self_time"].as_f64().unwrap();
            assert!(
                (got - expect).abs() <= 1e-9 * total.abs().max(1e-6),
                "{run_id} {name} self time: {got} vs ferret's trees {expect}"
            );
        }
    }
}

/// The roots of ferret's trees for one run of a reference.
pub fn want_roots<'a>(reference: &'a Value, run_id: &str) -> Vec<&'a Value> {
    reference["runs"][run_id]["roots"]
        .as_array()
        .unwrap()
        .iter()
        .collect()
}

/// Parent of every span id and the children of every parent in order, from ferret's trees.
pub fn ferret_links(
    roots: &Value,
    parent: Option<&str>,
    links: &mut Vec<(String, Option<String>)>,
) {
    for node in roots.as_array().unwrap() {
        let id = node["span_id"].as_str().unwrap().to_string();
        links.push((id, parent.map(str::to_string)));
        ferret_links(
            &node["children"],
            Some(node["span_id"].as_str().unwrap()),
            links,
        );
    }
}

pub fn check_links_against_ferret(db: &str, path: &Path) {
    let file = SpanFile::open(path).unwrap();
    file.verify().unwrap();
    let reference = reference(db);
    let id_of = |i: u64| SpanId(file.record(i).unwrap().span_id).to_hex();
    for (run_id, want) in reference["runs"].as_object().unwrap() {
        let mut want_links = Vec::new();
        ferret_links(&want["roots"], None, &mut want_links);
        let want_links: HashMap<String, Option<String>> = want_links.into_iter().collect();
        let ours: Vec<u64> = (0..file.record_count())
            .filter(|&i| file.string(file.record(i).unwrap().run) == Some(run_id.as_str()))
            .collect();
        assert_eq!(ours.len(), want_links.len(), "{run_id}");
        for &i in &ours {
            let r = file.record(i).unwrap();
            let id = SpanId(r.span_id).to_hex();
            let parent = file.parent_of(i, r);
            assert_eq!(
                Some(&parent.map(id_of)),
                want_links.get(&id),
                "{run_id}: parent of {id}"
            );
            // Root links point at the top of the chain, and parent names match the parent.
            let mut top = i;
            while let Some(p) = file.parent_of(top, file.record(top).unwrap()) {
                top = p;
            }
            assert_eq!(file.root_of(r), top, "{run_id}: root of {id}");
            let parent_name = file.links().parent_name_of(i, r);
            match parent {
                Some(p) => assert_eq!(parent_name, file.record(p).unwrap().name),
                None => assert_eq!(parent_name, ferret_format::NONE_NAME),
            }
        }
    }
}

/// The rows of a fixture as JSON lines, in ferret's order.
pub fn json_lines(db: &Path) -> String {
    let con = rusqlite::Connection::open(db).unwrap();
    let mut stmt = con
        .prepare("SELECT data FROM beaver_logs WHERE log_name = '_ferret_trace' ORDER BY timestamp")
        .unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(|r| r.unwrap() + "\n").collect()
}

/// What `ferret-convert` draws on a terminal for `command` (a shell command line), run under
/// util-linux `script` for a pseudo-terminal; carriage returns as line ends.
pub fn on_a_terminal(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .output()
        .expect("util-linux `script` runs (it gives the test a terminal)");
    assert!(out.status.success(), "{command}: {out:?}");
    String::from_utf8_lossy(&out.stdout).replace('\r', "\n")
}

/// `ferret-scan FILE ARGS` on a terminal, as `on_a_terminal` gives one.
pub fn scan_on_a_terminal(file: &Path, args: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_ferret-scan");
    on_a_terminal(&format!("{bin} {} {args}", file.display()))
}

/// The fixture's `_ferret_trace` rows in insertion order, as `(timestamp, data)`, copy `copy`:
/// copy 0 as they are; a later copy with its own span ids and everything `copy` x 1000 s later.
pub fn fixture_rows_copy(copy: u64) -> Vec<(f64, String)> {
    let con = rusqlite::Connection::open(fixture("beaver1.db")).unwrap();
    let mut stmt = con
        .prepare("SELECT timestamp, data FROM beaver_logs WHERE log_name = '_ferret_trace' ORDER BY rowid")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, f64>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(Result::unwrap);
    if copy == 0 {
        return rows.collect();
    }
    let shift = copy as f64 * 1000.0;
    rows.map(|(timestamp, data)| {
        let mut span: Value = serde_json::from_str(&data).unwrap();
        relabel(&mut span, copy, shift);
        (timestamp + shift, span.to_string())
    })
    .collect()
}

/// Makes `span` a span of copy `copy` of its trace: its ids (and its parent's) start with the
/// copy number, and it starts and ends `shift` seconds later.
pub fn relabel(span: &mut Value, copy: u64, shift: f64) {
    for key in ["span_id", "parent_id"] {
        span[key] = span[key]
            .as_str()
            .map(|s| format!("{copy:08x}{}", &s[8..]))
            .into();
    }
    for key in ["start_time", "end_time"] {
        span[key] = (span[key].as_f64().unwrap() + shift).into();
    }
}

/// Inserts one copy of the fixture's spans in one transaction.
pub fn insert_copy(con: &mut rusqlite::Connection, copy: u64) {
    let tx = con.transaction().unwrap();
    for (timestamp, data) in fixture_rows_copy(copy) {
        tx.execute(
            "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
            rusqlite::params![timestamp, data],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// The peak RSS a binary run with `--print-peak-rss` reported, in KiB.
pub fn peak_rss_of(out: Output) -> u64 {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("peak RSS"))
        .expect("a peak RSS line");
    line.split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("a number of KiB")
}

/// The fixture's spans repeated `copies` times as JSON lines, each copy with its own ids and
/// shifted a second later, so the lines stay in start order.
pub fn many_json_lines(copies: u64) -> String {
    let lines: Vec<Value> = json_lines(&fixture("beaver1.db"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut out = String::new();
    for copy in 0..copies {
        for line in &lines {
            let mut span = line.clone();
            relabel(&mut span, copy, copy as f64);
            out.push_str(&span.to_string());
            out.push('\n');
        }
    }
    out
}

/// `(span_id, children)` of a tree, from ferret's reference or from our JSON, for comparison.
pub fn shape(node: &Value) -> (String, Vec<(String, usize)>) {
    let mut flat = Vec::new();
    let mut stack = vec![(node, 0usize)];
    while let Some((n, depth)) = stack.pop() {
        flat.push((n["span_id"].as_str().unwrap().to_string(), depth));
        for c in n["children"].as_array().unwrap().iter().rev() {
            stack.push((c, depth + 1));
        }
    }
    (node["span_id"].as_str().unwrap().to_string(), flat)
}

/// Every tree of every run, in ferret's root order, node for node with children in ferret's
/// order, and each root's self time.
pub fn check_trees_against_ferret(db: &str, file: &Path) {
    let reference = reference(db);
    for (run_id, want) in reference["runs"].as_object().unwrap() {
        let got: Value = serde_json::from_str(&ok!(run!(
            "ferret-scan",
            file,
            "--tree",
            "--run",
            run_id,
            "--limit",
            "0",
            "--max-nodes",
            "100000000",
            "--format",
            "json"
        )))
        .unwrap();
        let roots = got["roots"].as_array().unwrap();
        let order: Vec<&str> = roots
            .iter()
            .map(|r| r["span_id"].as_str().unwrap())
            .collect();
        let want_order: Vec<&str> = want["cli_root_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(order, want_order, "{db} {run_id}: root order");
        let by_id = by_key(&want["roots"], "span_id");
        for root in roots {
            let theirs = by_id[root["span_id"].as_str().unwrap()];
            assert_eq!(shape(root), shape(theirs), "{db} {run_id}: tree shape");
            let self_time = root["self_time"].as_f64().unwrap();
            assert!(
                close(self_time, theirs["self_time"].as_f64().unwrap()),
                "{db} {run_id}: self time"
            );
            assert_eq!(root["elided"]["spans"], 0);
        }
    }
}

/// Every row of a Parquet export as JSON objects (nulls as `null`), read back with the parquet
/// crate.
pub fn parquet_rows(path: &Path) -> Vec<serde_json::Map<String, Value>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            use parquet::record::Field;
            row.unwrap()
                .get_column_iter()
                .map(|(name, field)| {
                    let value = match field {
                        Field::Null => Value::Null,
                        Field::Str(s) => Value::from(s.as_str()),
                        Field::Double(d) => Value::from(*d),
                        Field::Int(i) => Value::from(*i),
                        other => panic!("{name}: unexpected {other:?}"),
                    };
                    (name.clone(), value)
                })
                .collect()
        })
        .collect()
}

/// The number of rows of each row group of a Parquet file.
pub fn parquet_group_sizes(path: &Path) -> Vec<usize> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let groups = reader.metadata().row_groups();
    groups.iter().map(|g| g.num_rows() as usize).collect()
}

/// ferret's tree nodes by span id, each with its parent id, root id and depth.
pub fn ferret_nodes<'a>(
    nodes: &'a Value,
    parent: Option<&'a str>,
    root: Option<&'a str>,
    depth: i64,
    out: &mut HashMap<&'a str, (&'a Value, Option<&'a str>, &'a str, i64)>,
) {
    for node in nodes.as_array().unwrap() {
        let id = node["span_id"].as_str().unwrap();
        let root = root.unwrap_or(id);
        out.insert(id, (node, parent, root, depth));
        ferret_nodes(&node["children"], Some(id), Some(root), depth + 1, out);
    }
}

pub fn check_parquet_against_ferret(db: &str, file: &Path) {
    let out = file.with_extension("parquet");
    ok!(run!(
        "ferret-scan",
        file,
        "--to-parquet",
        &out,
        "--all-runs"
    ));
    let rows = parquet_rows(&out);
    let reference = reference(db);
    let runs = reference["runs"].as_object().unwrap();
    let want_rows: u64 = runs
        .values()
        .map(|r| r["span_count"].as_u64().unwrap())
        .sum();
    assert_eq!(rows.len() as u64, want_rows, "{db}: one row per span");
    // Sorted by run id; each row group by start time; the whole run by start time when the
    // records are in start order (a database converted in one go).
    let order: Vec<(&str, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap(),
                r["start_time"].as_f64().unwrap(),
            )
        })
        .collect();
    let sorted = |rows: &[(&str, f64)]| {
        rows.windows(2)
            .all(|w| w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 <= w[1].1))
    };
    assert!(order.windows(2).all(|w| w[0].0 <= w[1].0), "{db}: by run");
    let mut at = 0;
    for size in parquet_group_sizes(&out) {
        assert!(sorted(&order[at..at + size]), "{db}: a row group by start");
        at += size;
    }
    let records = SpanFile::open(file).unwrap();
    let starts: Vec<(u32, f64)> = (0..records.record_count())
        .map(|i| records.record(i).unwrap())
        .map(|r| (r.run, r.start_time))
        .collect();
    let mut last_start: HashMap<u32, f64> = HashMap::new();
    let in_start_order = starts
        .iter()
        .all(|&(run, t)| last_start.insert(run, t).is_none_or(|before| before <= t));
    if in_start_order {
        assert!(sorted(&order), "{db}: rows sorted by run, then start");
    }
    for (run_id, want) in runs {
        let mut nodes = HashMap::new();
        ferret_nodes(&want["roots"], None, None, 0, &mut nodes);
        let ours: Vec<_> = rows
            .iter()
            .filter(|r| r["run_id"] == run_id.as_str())
            .collect();
        assert_eq!(
            ours.len(),
            nodes.len(),
            "{db} {run_id}: every span of ferret's trees"
        );
        for row in &ours {
            let id = row["span_id"].as_str().unwrap();
            let (node, parent, root, depth) = nodes
                .get(id)
                .unwrap_or_else(|| panic!("{db} {run_id}: {id} is not in ferret's trees"));
            assert_eq!(row["parent_id"].as_str(), *parent, "{db}: parent of {id}");
            assert_eq!(row["root_id"].as_str(), Some(*root), "{db}: root of {id}");
            assert_eq!(row["depth"].as_i64(), Some(*depth), "{db}: depth of {id}");
            for field in ["name", "status", "start_time", "duration"] {
                assert_eq!(row[field], node[field], "{db}: {field} of {id}");
            }
            let tags: Value = serde_json::from_str(row["tags"].as_str().unwrap()).unwrap();
            assert_eq!(tags, node["tags"], "{db}: tags of {id}");
            let (a, b) = (
                row["self_time"].as_f64().unwrap(),
                node["self_time"].as_f64().unwrap(),
            );
            assert!(close(a, b), "{db}: self time of {id}: {a} vs ferret {b}");
        }
        // Per-name counts and totals equal `ferret-scan --format json`.
        let scan = scan_json(file, run_id);
        let mut per_name: HashMap<&str, (u64, f64)> = HashMap::new();
        for row in &ours {
            let e = per_name.entry(row["name"].as_str().unwrap()).or_default();
            e.0 += 1;
            e.1 += row["duration"].as_f64().unwrap_or(0.0);
        }
        for f in scan["functions"].as_array().unwrap() {
            let (count, total) = per_name[f["name"].as_str().unwrap()];
            assert_eq!(Some(count), f["count"].as_u64(), "{db} {run_id}: count");
            let want = f["total_duration"].as_f64().unwrap();
            assert!(
                (total - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{db} {run_id}: total {total} vs scan {want}"
            );
        }
    }
}

/// Checks one side of a comparison's entry against ferret's statistics of that run.
pub fn check_side(got: &Value, want: Option<&Value>, what: &str) {
    let Some(want) = want else {
        assert!(got.is_null(), "{what}: ferret has no such function");
        return;
    };
    for int in ["count", "error_count"] {
        assert_eq!(got[int], want[int], "{what} {int}");
    }
    let floats = [
        "total_duration",
        "avg_duration",
        "min_duration",
        "max_duration",
        "error_rate",
    ];
    for float in floats {
        let (a, b) = (got[float].as_f64().unwrap(), want[float].as_f64().unwrap());
        assert!(close(a, b), "{what} {float}: {a} vs ferret {b}");
    }
}
