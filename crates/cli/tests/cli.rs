//! End-to-end tests: the real `ferret-convert` and `ferret-scan` executables on temp files,
//! checked against what ferret-io's own analyzer computed for the same traces
//! (`testdata/fixtures/*.reference.json`, made by `make fixtures`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use ferret_format::{SpanFile, SpanId};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::Value;

/// Runs an executable of this crate with arguments, returning its output.
macro_rules! run {
    ($bin:literal $(, $arg:expr)* $(,)?) => {{
        let out: Output = Command::new(env!(concat!("CARGO_BIN_EXE_", $bin)))
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

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/golden")
        .join(name)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/fixtures")
        .join(name)
}

fn reference(db: &str) -> Value {
    let path = fixture(&db.replace(".db", ".reference.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn convert(db: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("t.ferret");
    ok!(run!("ferret-convert", db, "-o", &out, "--quiet"));
    out
}

/// The log table of a BeaverDB fixture (either layout).
fn log_table(con: &rusqlite::Connection) -> &'static str {
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
fn convert_rowid_snapshots(db: &Path, dir: &Path, cuts: &[f64]) -> PathBuf {
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
fn rowid_cut(db: &Path, snapshot: &Path, cut: f64) {
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
fn write_order_lines(db: &Path) -> Vec<String> {
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
fn converted_ways(db: &str) -> (tempfile::TempDir, Vec<(&'static str, PathBuf)>) {
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
fn for_each_way(db: &str, check: impl Fn(&str, &Path)) {
    let (_dir, ways) = converted_ways(db);
    for (way, file) in &ways {
        eprintln!("{db}: {way}");
        check(db, file);
    }
}

/// The objects of a JSON array by the string value of their field `key`.
fn by_key<'a>(items: &'a Value, key: &str) -> HashMap<&'a str, &'a Value> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item[key].as_str().unwrap(), item))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// The JSON a successful run printed.
fn json_of(out: Output) -> Value {
    serde_json::from_str(&ok!(out)).expect("JSON output")
}

/// `ferret-scan FILE --run RUN --format json --limit 0`, parsed.
fn scan_json(file: &Path, run_id: &str) -> Value {
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

fn check_stats_against_ferret(db: &str, file: &Path) {
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

/// The fixture has several runs, so that the default run (the latest start's) is a choice.
fn assert_several_runs(db: &str) {
    let runs = reference(db)["runs"].as_object().unwrap().len();
    assert!(runs >= 3, "{db}: the fixture has {runs} runs");
}

/// The roots of ferret's trees for one run of a reference.
fn want_roots<'a>(reference: &'a Value, run_id: &str) -> Vec<&'a Value> {
    reference["runs"][run_id]["roots"]
        .as_array()
        .unwrap()
        .iter()
        .collect()
}

#[test]
fn stats_equal_ferret_io_on_the_beaver1_fixture() {
    assert_several_runs("beaver1.db");
    for_each_way("beaver1.db", check_stats_against_ferret);
}

#[test]
fn stats_equal_ferret_io_on_the_beaver2_fixture() {
    assert_several_runs("beaver2.db");
    for_each_way("beaver2.db", check_stats_against_ferret);
}

#[test]
fn stats_equal_ferret_io_on_the_generated_fixture() {
    assert_several_runs("generated1.db");
    for_each_way("generated1.db", check_stats_against_ferret);
}

/// Parent of every span id and the children of every parent in order, from ferret's trees.
fn ferret_links(roots: &Value, parent: Option<&str>, links: &mut Vec<(String, Option<String>)>) {
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

fn check_links_against_ferret(db: &str, path: &Path) {
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

#[test]
fn links_equal_ferret_io_trees_on_both_layouts() {
    for db in ["beaver1.db", "beaver2.db", "generated1.db"] {
        for_each_way(db, check_links_against_ferret);
    }
}

/// The rows of a fixture as JSON lines, in ferret's order.
fn json_lines(db: &Path) -> String {
    let con = rusqlite::Connection::open(db).unwrap();
    let mut stmt = con
        .prepare("SELECT data FROM beaver_logs WHERE log_name = '_ferret_trace' ORDER BY timestamp")
        .unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(|r| r.unwrap() + "\n").collect()
}

#[test]
fn json_lines_convert_to_the_same_numbers_as_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let lines = json_lines(&fixture("beaver1.db"));
    // Also as a Windows tool may write them: a byte-order mark first, CRLF line ends.
    let windows = format!("\u{feff}{}", lines.replace('\n', "\r\n"));
    let from_db = convert(&fixture("beaver1.db"), dir.path());
    let csv = |file: &Path, run_id: &str| {
        ok!(run!(
            "ferret-scan",
            file,
            "--run",
            run_id,
            "--format",
            "csv",
            "--limit",
            "0"
        ))
    };
    for (name, text) in [("plain", lines.clone()), ("windows", windows)] {
        let jsonl = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&jsonl, text).unwrap();
        let from_lines = dir.path().join(format!("{name}.ferret"));
        ok!(run!("ferret-convert", &jsonl, "-o", &from_lines, "--quiet"));
        for run_id in ["run-one", "run-three-latest"] {
            assert_eq!(csv(&from_db, run_id), csv(&from_lines, run_id), "{name}");
        }
    }
    // A plain dump of the table (write order: children before their parents) through stdin:
    // the same table and the same trees, for every run.
    let from_stdin = dir.path().join("stdin.ferret");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferret-convert"))
        .args([
            "-".as_ref(),
            "-o".as_ref(),
            from_stdin.as_os_str(),
            "--quiet".as_ref(),
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let dump = write_order_lines(&fixture("beaver1.db")).concat();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dump.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let tree = |file: &Path, run_id: &str| {
        ok!(run!(
            "ferret-scan",
            file,
            "--tree",
            "--run",
            run_id,
            "--limit",
            "0"
        ))
    };
    for run_id in reference("beaver1.db")["runs"].as_object().unwrap().keys() {
        assert_eq!(csv(&from_db, run_id), csv(&from_stdin, run_id), "{run_id}");
        assert_eq!(
            tree(&from_db, run_id),
            tree(&from_stdin, run_id),
            "{run_id}"
        );
    }
}

#[test]
fn bad_rows_are_skipped_counted_and_named_and_strict_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = json_lines(&fixture("beaver1.db"));
    let good = lines.lines().count();
    lines.push_str("{not json\n");
    lines.push_str("{\"span_id\":\"x\",\"run_id\":\"r\",\"start_time\":1.0}\n");
    let mut bytes = lines.into_bytes();
    bytes.extend_from_slice(b"{\"name\":\"caf\xe9\"}\n"); // Latin-1, not UTF-8
    let jsonl = dir.path().join("bad.jsonl");
    std::fs::write(&jsonl, &bytes).unwrap();
    let out = dir.path().join("bad.ferret");
    let res = run!("ferret-convert", &jsonl, "-o", &out);
    assert!(res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    let first_bad = format!("skipped line {}: bad span JSON", good + 1);
    assert!(err.contains(&first_bad), "{err}");
    assert!(
        err.contains(&format!(
            "skipped line {}: bad span JSON: missing field `name`",
            good + 2
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("skipped line {}: line is not UTF-8", good + 3)),
        "{err}"
    );
    assert!(err.contains("3 rows skipped"), "{err}");
    assert!(err.contains(&format!("wrote {good} spans")), "{err}");
    let strict = dir.path().join("strict.ferret");
    fails!(
        run!("ferret-convert", &jsonl, "-o", &strict, "--strict"),
        &format!("line {}", good + 1),
        "--strict"
    );
    assert!(!strict.exists(), "--strict leaves no output behind");
}

#[test]
fn a_database_row_that_is_not_utf8_is_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("latin1.db");
    std::fs::copy(fixture("beaver1.db"), &db).unwrap();
    let con = rusqlite::Connection::open(&db).unwrap();
    con.execute(
        "INSERT INTO beaver_logs (log_name, timestamp, data) \
         VALUES ('_ferret_trace', 1e10, CAST(x'7b226e616d65223a22636166e9227d' AS TEXT))",
        [],
    )
    .unwrap();
    let rowid = con.last_insert_rowid();
    drop(con);
    let res = run!("ferret-convert", &db, "-o", dir.path().join("o.ferret"));
    assert!(res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(&format!("skipped rowid {rowid}: data is not UTF-8")),
        "{err}"
    );
    assert!(err.contains("1 row skipped"), "{err}");
}

/// What `ferret-convert` draws on a terminal for `command` (a shell command line), run under
/// util-linux `script` for a pseudo-terminal; carriage returns as line ends.
fn on_a_terminal(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .output()
        .expect("util-linux `script` runs (it gives the test a terminal)");
    assert!(out.status.success(), "{command}: {out:?}");
    String::from_utf8_lossy(&out.stdout).replace('\r', "\n")
}

/// `ferret-scan FILE ARGS` on a terminal, as `on_a_terminal` gives one.
fn scan_on_a_terminal(file: &Path, args: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_ferret-scan");
    on_a_terminal(&format!("{bin} {} {args}", file.display()))
}

#[test]
fn the_progress_bar_estimates_json_lines_and_counts_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("in.jsonl");
    std::fs::write(&jsonl, many_json_lines(200)).unwrap();
    let (bin, out) = (
        env!("CARGO_BIN_EXE_ferret-convert"),
        dir.path().join("o.ferret"),
    );
    let drawn = |input: &str| {
        on_a_terminal(&format!("{bin} {input} -o {} --force", out.display()))
            .lines()
            .filter(|l| l.contains(" rows/s"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // A file: rows of an estimated total and an ETA (it said "4,096/0 rows" and "ETA 0s").
    let file = drawn(&jsonl.display().to_string());
    assert!(
        !file.is_empty() && file.iter().all(|l| l.contains("ETA")),
        "{file:?}"
    );
    assert!(!file.iter().any(|l| l.contains("/0 rows")), "{file:?}");
    // stdin: no total to show, so rows and rate only.
    let piped = drawn(&format!("- < {}", jsonl.display()));
    assert!(!piped.is_empty(), "{piped:?}");
    let of_a_total = |word: &str| word.contains('/') && !word.ends_with("/s");
    let counter_only = |l: &String| !l.contains("ETA") && !l.split_whitespace().any(of_a_total);
    assert!(piped.iter().all(counter_only), "{piped:?}");
}

#[test]
fn help_says_what_each_tool_does() {
    let convert = ok!(run!("ferret-convert", "--help"));
    assert!(convert.starts_with("Stream a ferret-io trace"), "{convert}");
    let scan = ok!(run!("ferret-scan", "--help"));
    assert!(scan.starts_with("Per-function statistics"), "{scan}");
}

/// A damaged page of a finished database's log table (read from the pages themselves) stops
/// the conversion with one line naming the page, and leaves no output behind.
#[test]
fn a_damaged_table_page_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("damaged.db");
    std::fs::copy(fixture("beaver1.db"), &db).unwrap();
    let root: u32 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'beaver_logs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    let page = |n: u32| (n as usize - 1) * 4096;
    assert_eq!(
        bytes[page(root)],
        0x05,
        "the log table's root is an interior page"
    );
    // The first child of the root, a leaf, gets a page type no B-tree page has.
    let cell = page(root)
        + usize::from(u16::from_be_bytes([
            bytes[page(root) + 12],
            bytes[page(root) + 13],
        ]));
    let leaf = u32::from_be_bytes(bytes[cell..cell + 4].try_into().unwrap());
    assert_eq!(bytes[page(leaf)], 0x0d);
    bytes[page(leaf)] = 0x07;
    std::fs::write(&db, bytes).unwrap();
    let out = dir.path().join("out.ferret");
    fails!(
        run!("ferret-convert", &db, "-o", &out),
        "damaged.db",
        "database disk image is malformed",
        &format!("page {leaf}: page type 0x07")
    );
    assert!(!out.exists());
}

#[test]
fn bad_inputs_and_outputs_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let out = dir.path().join("o.ferret");
    fails!(
        run!("ferret-convert", &text, "-o", &out),
        "notes.txt",
        "not a SQLite database"
    );
    fails!(
        run!(
            "ferret-convert",
            fixture("beaver1.db"),
            "-o",
            &out,
            "--namespace",
            "nope"
        ),
        "namespace \"nope\" not found",
        "\"other_ns\" (1 rows)"
    );
    // What the system says, once (each layer used to repeat its cause and the file).
    fails!(
        run!("ferret-convert", dir.path().join("missing.db"), "-o", &out),
        "missing.db: No such file"
    );
    fails!(
        run!(
            "ferret-convert",
            fixture("beaver1.db"),
            "-o",
            dir.path().join("no/such/dir/o.ferret")
        ),
        "o.ferret: No such file"
    );
    fails!(
        run!("ferret-convert", dir.path(), "-o", &out),
        "Is a directory"
    );
    fails!(
        run!("ferret-scan", dir.path().join("missing.ferret")),
        "missing.ferret: No such file"
    );
    // Never overwrite a file that is not ours; an existing ferret file needs --append or --force.
    fails!(
        run!("ferret-convert", fixture("beaver1.db"), "-o", &text),
        "not a ferret file"
    );
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "hello");
    ok!(run!(
        "ferret-convert",
        fixture("beaver1.db"),
        "-o",
        &out,
        "--quiet"
    ));
    fails!(
        run!("ferret-convert", fixture("beaver1.db"), "-o", &out),
        "--append",
        "--force"
    );
    // The scanner names the file and what is wrong.
    fails!(
        run!("ferret-scan", &text),
        "notes.txt",
        "not a ferret span file",
        "a SQLite database or a JSON lines file"
    );
    fails!(
        run!("ferret-scan", &out, "--run", "zzz"),
        "no run \"zzz\"",
        "closest"
    );
    let mut bytes = std::fs::read(&out).unwrap();
    let at = 8192 + 128 + 64 * 10 + 20;
    bytes[at] ^= 0x10;
    let bad = dir.path().join("flipped.ferret");
    std::fs::write(&bad, &bytes).unwrap();
    fails!(
        run!("ferret-scan", &bad, "--verify"),
        "flipped.ferret",
        "checksum mismatch in records 0.."
    );
    fails!(run!("ferret-scan", &bad), "checksum mismatch");
    // A block is folded before its checksum is checked (while it is in cache): a damaged name
    // id (of a span in the default run) is still reported as the damage it is, and only
    // unchecked scans see the bad record.
    let mut bytes = std::fs::read(&out).unwrap();
    let name = 8192 + 128 + 64 * 120 + 48;
    bytes[name..name + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    std::fs::write(&bad, &bytes).unwrap();
    fails!(
        run!("ferret-scan", &bad),
        "checksum mismatch in records 0.."
    );
    fails!(
        run!("ferret-scan", &bad, "--no-verify"),
        "name id 4294967280 out of range"
    );
}

#[test]
fn append_after_the_database_grew_equals_a_full_conversion() {
    // Both layouts (REAL and TEXT timestamps); one cut and several. The spans still open at a
    // cut (a traced `main`, a gather) are written later with older timestamps: a timestamp
    // watermark lost them.
    for db in ["beaver1.db", "beaver2.db", "generated1.db"] {
        for cuts in [&[0.5][..], &[0.1, 0.25, 0.5, 0.75, 0.9]] {
            let dir = tempfile::tempdir().unwrap();
            let grown = convert_rowid_snapshots(&fixture(db), dir.path(), cuts);
            let full = convert(&fixture(db), dir.path());
            ferret_benches::assert_same_spans(&grown, &full);
            // Appending again adds nothing.
            let count = SpanFile::open(&grown).unwrap().record_count();
            ok!(run!(
                "ferret-convert",
                dir.path().join("live.db"),
                "-o",
                &grown,
                "--append",
                "--quiet"
            ));
            assert_eq!(
                SpanFile::open(&grown).unwrap().record_count(),
                count,
                "{db}"
            );
        }
    }
}

#[test]
fn runs_from_the_directory_equal_runs_from_the_records() {
    // The golden files of both versions hold the same spans: version 1's runs come from a pass
    // over its records, version 2's from its run directory, and a scan of each run from zones.
    let runs = |version: u32| {
        let file = golden(&format!("v{version}.ferret"));
        let listed = ok!(run!("ferret-scan", &file, "--runs", "--format", "json"));
        let table = ok!(run!(
            "ferret-scan",
            &file,
            "--run",
            "run1",
            "--format",
            "csv"
        ));
        (listed, table)
    };
    let (v1, v2) = (runs(1), runs(2));
    assert!(v1.0.contains("run0") && v1.0.contains("run1"), "{}", v1.0);
    assert_eq!(v1, v2);
    // A version 1 file says once that it is read whole, and what to run.
    let note = |version: u32| {
        let out = run!(
            "ferret-scan",
            golden(&format!("v{version}.ferret")),
            "--runs"
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let old = note(1);
    assert_eq!(old.matches("reads the whole file").count(), 1, "{old}");
    assert!(old.contains("--force"), "{old}");
    assert_eq!(note(2), "");
}

#[test]
fn a_rewritten_source_or_an_old_file_is_refused_with_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    std::fs::copy(fixture("beaver1.db"), &db).unwrap();
    let out = convert(&db, dir.path());
    // Another trace in the source's place: the row at the watermark is not the one converted.
    std::fs::copy(fixture("generated1.db"), &db).unwrap();
    fails!(
        run!("ferret-convert", &db, "-o", &out, "--append"),
        "the source changed since it was last converted",
        "--force"
    );
    // A version 1 file cannot take the late links an append needs.
    let v1 = dir.path().join("v1.ferret");
    std::fs::copy(golden("v1.ferret"), &v1).unwrap();
    fails!(
        run!(
            "ferret-convert",
            fixture("beaver1.db"),
            "-o",
            &v1,
            "--append"
        ),
        "format version 1 cannot be appended to",
        "--force"
    );
}

/// The fixture's `_ferret_trace` rows in insertion order, as `(timestamp, data)`, copy `copy`:
/// copy 0 as they are; a later copy with its own span ids and everything `copy` x 1000 s later.
fn fixture_rows_copy(copy: u64) -> Vec<(f64, String)> {
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
fn relabel(span: &mut Value, copy: u64, shift: f64) {
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
fn insert_copy(con: &mut rusqlite::Connection, copy: u64) {
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

#[test]
fn a_database_still_being_written_converts_to_a_consistent_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    std::fs::copy(fixture("beaver1.db"), &live).unwrap();
    let mut writer = rusqlite::Connection::open(&live).unwrap();
    // WAL mode as a live service has it, with no automatic checkpoint: the rows below stay in
    // the WAL file, where only a reader that reads the WAL finds them.
    writer
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             DELETE FROM beaver_logs WHERE log_name = '_ferret_trace';
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    insert_copy(&mut writer, 0);
    let from_wal = dir.path().join("wal.ferret");
    ok!(run!("ferret-convert", &live, "-o", &from_wal, "--quiet"));
    ferret_benches::assert_same_records(&from_wal, &convert(&fixture("beaver1.db"), dir.path()));

    // Now a writer commits one copy of the spans per transaction while we convert: every
    // output must be whole transactions, exactly the database as it was at one moment.
    let per_copy = fixture_rows_copy(0).len() as u64;
    let committed = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let writing = {
        let (committed, stop) = (committed.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(SeqCst) {
                insert_copy(&mut writer, committed.load(SeqCst));
                committed.fetch_add(1, SeqCst);
            }
            writer
        })
    };
    while committed.load(SeqCst) < 4 {
        assert!(!writing.is_finished(), "the writer stopped");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Until one conversion ran while the writer committed (on a loaded machine the writer may
    // sit still through one).
    let (mut outputs, mut overlapped) = (Vec::new(), false);
    for attempt in 0..5 {
        let out = dir.path().join(format!("during-{attempt}.ferret"));
        let before = committed.load(SeqCst);
        ok!(run!("ferret-convert", &live, "-o", &out, "--quiet"));
        overlapped = committed.load(SeqCst) > before;
        outputs.push(out);
        if overlapped {
            break;
        }
    }
    stop.store(true, SeqCst);
    let writer = writing.join().unwrap();
    writer
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(writer);
    assert!(overlapped, "the writer never committed during a conversion");
    for out in &outputs {
        let records = SpanFile::open(out).unwrap().record_count();
        assert_eq!(
            records % per_copy,
            0,
            "{records} records: a transaction read in part"
        );
        // The database cut back to as many copies converts to the same records.
        let copies = records / per_copy;
        let again = tempfile::tempdir().unwrap();
        let cut = again.path().join("cut.db");
        std::fs::copy(&live, &cut).unwrap();
        rusqlite::Connection::open(&cut)
            .unwrap()
            .execute(
                "DELETE FROM beaver_logs WHERE log_name = '_ferret_trace' AND timestamp >= ?1",
                // Copies are 1000 s apart and each lasts well under a second.
                [fixture_rows_copy(0)[0].0 + copies as f64 * 1000.0 - 500.0],
            )
            .unwrap();
        ferret_benches::assert_same_records(out, &convert(&cut, again.path()));
    }
}

#[test]
fn scan_output_survives_a_closed_pipe_and_lists_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver2.db"), dir.path());
    let runs = ok!(run!("ferret-scan", &file, "--runs"));
    assert_eq!(runs.lines().count(), 3);
    assert!(
        runs.lines()
            .last()
            .unwrap()
            .starts_with("* run-three-latest"),
        "{runs}"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
        .args([file.as_os_str(), "--limit".as_ref(), "0".as_ref()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = ok!(run!(
        "ferret-scan",
        &file,
        "--name",
        "^level",
        "--limit",
        "0"
    ));
    // A header line, the column names, the rule, then level1..level3.
    assert_eq!(table.lines().count(), 3 + 3, "{table}");
}

/// Peak resident memory of one run of `ferret-scan FILE`, in KiB, as the scanner itself reads
/// it from the kernel (`VmHWM`) at exit.
fn scan_peak_rss_kib(file: &Path) -> u64 {
    peak_rss_of(run!("ferret-scan", file, "--print-peak-rss"))
}

/// The peak RSS a binary run with `--print-peak-rss` reported, in KiB.
fn peak_rss_of(out: Output) -> u64 {
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

#[test]
fn scan_memory_does_not_grow_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (small, large) = (
        dir.path().join("small.ferret"),
        dir.path().join("large.ferret"),
    );
    ferret_benches::write_trace(&small, 300_000, 200);
    ferret_benches::write_trace(&large, 3_000_000, 200);
    let large_bytes = std::fs::metadata(&large).unwrap().len();
    assert!(
        large_bytes > 150 << 20,
        "the large file must dwarf any fixed budget"
    );
    let (a, b) = (scan_peak_rss_kib(&small), scan_peak_rss_kib(&large));
    // Ten times the records, the same memory: pages are handed back chunk by chunk. Mapping the
    // whole file would add ~165 MiB here; allow 16 MiB of noise.
    assert!(
        b < a + (16 << 10),
        "peak RSS {a} KiB at 300k records, {b} KiB at 3M"
    );
    // The Parquet export too: its per-span scratch and the records behind it are released.
    let export_rss = |file: &Path| {
        let out = file.with_extension("parquet");
        peak_rss_of(run!(
            "ferret-scan",
            file,
            "--all-runs",
            "--to-parquet",
            &out,
            "--print-peak-rss"
        ))
    };
    let (a, b) = (export_rss(&small), export_rss(&large));
    assert!(
        b < a + (32 << 10),
        "export peak RSS {a} KiB at 300k records, {b} KiB at 3M"
    );
}

/// The fixture's spans repeated `copies` times as JSON lines, each copy with its own ids and
/// shifted a second later, so the lines stay in start order.
fn many_json_lines(copies: u64) -> String {
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

/// 2000 copies of the fixture as JSON lines in `dir`, and their one-shot conversion.
fn many_lines_converted(dir: &Path) -> (PathBuf, PathBuf) {
    let input = dir.join("many.jsonl");
    std::fs::write(&input, many_json_lines(2000)).unwrap();
    let full = dir.join("full.ferret");
    ok!(run!("ferret-convert", &input, "-o", &full, "--quiet"));
    (input, full)
}

/// Starts converting `input` into `out`, committing every 10,000 spans, to be killed.
fn spawn_conversion(input: &Path, out: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ferret-convert"))
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(["--quiet", "--commit-every", "10000"])
        .spawn()
        .unwrap()
}

#[test]
fn a_killed_conversion_leaves_a_valid_file_that_append_completes() {
    let dir = tempfile::tempdir().unwrap();
    let (input, full) = many_lines_converted(dir.path());
    let mut interrupted = 0;
    for delay_ms in [30u64, 120, 400] {
        let out = dir.path().join(format!("killed-{delay_ms}.ferret"));
        let mut child = spawn_conversion(&input, &out);
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
        if !out.exists() {
            continue; // killed before it created the file: nothing to check
        }
        let file = SpanFile::open(&out).expect("a killed conversion leaves a file that opens");
        assert_eq!(file.verify().unwrap(), file.record_count());
        if !file.is_complete() {
            interrupted += 1;
        }
        drop(file);
        ok!(run!(
            "ferret-convert",
            &input,
            "-o",
            &out,
            "--append",
            "--quiet"
        ));
        assert!(SpanFile::open(&out).unwrap().is_complete());
        ferret_benches::assert_same_records(&out, &full);
    }
    assert!(
        interrupted > 0,
        "no kill landed mid-conversion; make the input larger"
    );
}

/// `(span_id, children)` of a tree, from ferret's reference or from our JSON, for comparison.
fn shape(node: &Value) -> (String, Vec<(String, usize)>) {
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

#[test]
fn trees_equal_ferret_io_node_for_node_in_ferrets_root_order() {
    for db in ["beaver1.db", "beaver2.db", "generated1.db"] {
        for_each_way(db, check_trees_against_ferret);
    }
}

/// Every tree of every run, in ferret's root order, node for node with children in ferret's
/// order, and each root's self time.
fn check_trees_against_ferret(db: &str, file: &Path) {
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

/// Run by `make test-live` (tools/live-test.sh), which runs a real ferret-io service and converts
/// its trace with `--append` again and again while it grows, leaving the result in
/// `FERRET_LIVE_FERRET` and the finished trace, with ferret-io's own answers beside it, in
/// `FERRET_LIVE_DB`.
#[test]
#[ignore = "needs a live ferret-io trace: run `make test-live`"]
fn a_live_trace_converted_while_it_runs_equals_ferrets_answers() {
    let var = |name: &str| std::env::var(name).expect("set by tools/live-test.sh");
    let db = var("FERRET_LIVE_DB");
    let live = PathBuf::from(var("FERRET_LIVE_FERRET"));
    let file = SpanFile::open(&live).unwrap();
    assert!(
        file.links().len() > 1,
        "spans open at a conversion (main, the batch in flight) were adopted later"
    );
    assert!(file.segments().len() > 3, "converted in several commits");
    drop(file);
    let checks: [fn(&str, &Path); 4] = [
        check_stats_against_ferret,
        check_links_against_ferret,
        check_trees_against_ferret,
        check_parquet_against_ferret,
    ];
    for check in checks {
        check(&db, &live);
        for_each_way(&db, check);
    }
}

#[test]
fn tree_text_equals_ferrets_own_output() {
    for_each_way("beaver1.db", check_tree_text);
    for_each_way("generated1.db", check_tree_text);
}

fn check_tree_text(db: &str, file: &Path) {
    let name = db.trim_end_matches(".db");
    let ours = ok!(run!("ferret-scan", file, "--tree"));
    let theirs = std::fs::read_to_string(fixture(&format!("{name}.ferret-tree.txt"))).unwrap();
    let ours: Vec<String> = ours
        .lines()
        .map(|l| {
            l.rsplit_once("  [self ")
                .map_or(l, |(head, _)| head)
                .to_string()
        })
        .collect();
    let theirs: Vec<&str> = theirs.lines().collect();
    assert_eq!(ours.len(), theirs.len(), "same number of lines");
    let mut equal = 0;
    for (a, b) in ours.iter().zip(&theirs) {
        // rich reads `[...]` in names as markup and drops it; we print names as they are, so
        // only such lines may differ.
        if a != b {
            assert!(a.contains('['), "ours: {a}\nferret's: {b}");
        } else {
            equal += 1;
        }
    }
    assert!(equal > 30, "only {equal} lines equal");
    if name == "beaver1" {
        assert!(ours.iter().any(|l| l.contains("├── load[config] - ")));
        let markup = "├── [bold]not markup[/bold] - ";
        assert!(ours.iter().any(|l| l.contains(markup)));
    }
}

#[test]
fn a_huge_tree_prints_within_max_nodes_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wide.jsonl");
    let span = |i: u64, parent: Option<u64>, start: f64, duration: f64| {
        let parent = parent.map_or("null".to_string(), |p| format!("\"{p:032x}\""));
        format!(
            "{{\"span_id\":\"{i:032x}\",\"parent_id\":{parent},\"run_id\":\"r\",\"name\":\"n{}\",\"start_time\":{start},\"end_time\":{},\"duration\":{duration},\"tags\":{{}},\"status\":\"ok\"}}\n",
            i % 5,
            start + duration
        )
    };
    let mut text = span(1, None, 1000.0, 60.0);
    for i in 2..5002u64 {
        text.push_str(&span(
            i,
            Some(1),
            1000.0 + i as f64 * 0.01,
            0.001 * (i % 97) as f64,
        ));
    }
    std::fs::write(&input, text).unwrap();
    let file = dir.path().join("wide.ferret");
    ok!(run!("ferret-convert", &input, "-o", &file, "--quiet"));
    let out = ok!(run!("ferret-scan", &file, "--tree", "--max-nodes", "100"));
    let nodes = out
        .lines()
        .filter(|l| l.contains(" - ") && l.contains("ms"))
        .count();
    assert_eq!(nodes, 100, "{out}");
    assert!(out.contains("└── … 4,901 more spans, "), "{out}");
    let json: Value = serde_json::from_str(&ok!(run!(
        "ferret-scan",
        &file,
        "--tree",
        "--max-nodes",
        "100",
        "--format",
        "json"
    )))
    .unwrap();
    let root = &json["roots"][0];
    assert_eq!(root["children"].as_array().unwrap().len(), 99);
    assert_eq!(root["elided"]["spans"], 4901);
    // The slowest children are the ones kept.
    let kept_min = root["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["duration"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert!(kept_min >= 0.094, "kept a child of {kept_min} s");
}

/// Sum of ferret's own per-span self times over a list of reference trees.
fn ferret_self_total(nodes: &Value) -> f64 {
    let mut total = 0.0;
    let mut stack: Vec<&Value> = nodes.as_array().unwrap().iter().collect();
    while let Some(n) = stack.pop() {
        total += n["self_time"].as_f64().unwrap();
        stack.extend(n["children"].as_array().unwrap());
    }
    total
}

/// Folded stacks of every run of `db`: one line per path, weights adding up to ferret's own
/// per-span self time (each line rounds to the microsecond).
fn check_folded_weights(db: &str, file: &Path) {
    let reference = reference(db);
    for (run_id, want) in reference["runs"].as_object().unwrap() {
        let folded = ok!(run!("ferret-scan", file, "--folded", "--run", run_id));
        let lines: Vec<(&str, u64)> = folded
            .lines()
            .map(|l| {
                let (path, w) = l.rsplit_once(' ').unwrap();
                (path, w.parse().unwrap())
            })
            .collect();
        let paths: std::collections::HashSet<&str> = lines.iter().map(|l| l.0).collect();
        assert_eq!(paths.len(), lines.len(), "one line per stack path");
        if db == "beaver1.db" {
            assert!(
                paths.contains("main;a:b c"),
                "a `;` inside a name must not split frames"
            );
        }
        let total: u64 = lines.iter().map(|l| l.1).sum();
        let want_us = ferret_self_total(&want["roots"]) * 1e6;
        assert!(
            (total as f64 - want_us).abs() <= lines.len() as f64,
            "{run_id}: folded {total} µs vs ferret's self time {want_us} µs"
        );
    }
}

#[test]
fn exports_parse_and_add_up_to_ferrets_self_time() {
    for_each_way("generated1.db", check_folded_weights);
    for_each_way("beaver1.db", check_folded_weights);
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    let reference = reference("beaver1.db");
    // The flame graph is well-formed SVG.
    let svg = dir.path().join("f.svg");
    let chrome = dir.path().join("c.json");
    ok!(run!(
        "ferret-scan",
        &file,
        "--flamegraph",
        &svg,
        "--chrome-trace",
        &chrome
    ));
    let text = std::fs::read_to_string(&svg).unwrap();
    let xml = roxmltree::ParsingOptions {
        allow_dtd: true, // inferno declares the SVG DTD
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, xml).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(text.contains("outliving_task"));
    // The Chrome trace: every span of the run's trees, complete events nested on each track.
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&chrome).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let latest = reference["latest_run"].as_str().unwrap();
    assert_eq!(
        events.len() as u64,
        reference["runs"][latest]["span_count"].as_u64().unwrap()
    );
    let mut tracks: HashMap<(u64, u64), Vec<(f64, f64)>> = HashMap::new();
    for e in events {
        assert_eq!(e["ph"], "X");
        let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
        assert!(ts >= 0.0 && dur >= 0.0);
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        tracks.entry(key).or_default().push((ts, ts + dur));
    }
    assert!(
        tracks.keys().filter(|k| k.0 == 1).count() > 1,
        "concurrent spans get tracks of their own"
    );
    for spans in tracks.values_mut() {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<f64> = Vec::new();
        for &(start, end) in spans.iter() {
            while open.last().is_some_and(|&e| e <= start + 1e-3) {
                open.pop();
            }
            assert!(
                open.last().is_none_or(|&e| end <= e + 1e-3),
                "overlapping spans on one track"
            );
            open.push(end);
        }
    }
}

#[test]
fn a_damaged_tag_heap_fails_a_tree_instead_of_printing_a_changed_tag() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    let tree = ok!(run!("ferret-scan", &file, "--tree"));
    assert!(tree.contains("depth=1"), "the default run prints its tags");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"{\"depth\":1}")
        .expect("a tag in the heap");
    bytes[at + 9] = b'7';
    std::fs::write(&file, &bytes).unwrap();
    fails!(
        run!("ferret-scan", &file, "--tree"),
        "checksum mismatch in tag heap"
    );
    let parquet = dir.path().join("t.parquet");
    fails!(
        run!("ferret-scan", &file, "--to-parquet", &parquet),
        "checksum mismatch in tag heap"
    );
    assert!(!parquet.exists(), "no export from a damaged file");
}

#[test]
fn folded_stacks_check_the_blocks_they_fold() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    ok!(run!("ferret-scan", &file, "--folded"));
    // One bit of the last record's duration (records start 128 bytes into the first segment).
    let mut bytes = std::fs::read(&file).unwrap();
    let records = SpanFile::open(&file).unwrap().record_count() as usize;
    bytes[8192 + 128 + (records - 1) * 64 + 24] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    fails!(
        run!("ferret-scan", &file, "--folded"),
        "checksum mismatch in records"
    );
    ok!(run!("ferret-scan", &file, "--folded", "--no-verify"));
}

/// A chain 100,000 deep, as JSON lines in write order (the deepest span first, as ferret-io
/// writes a recursion): it converts, and every export walks it without calling it damaged.
#[test]
fn a_chain_100k_deep_in_write_order_converts_and_exports() {
    const DEPTH: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("chain.jsonl");
    let id = |i: u64| format!("{:032x}", 0xc0de_0000_0000u64 + i);
    let lines: String = (0..DEPTH)
        .rev()
        .map(|i| {
            let parent = if i == 0 { "null".to_string() } else { format!("\"{}\"", id(i - 1)) };
            let start = 1.7e9 + i as f64 * 1e-6;
            let duration = (DEPTH - i) as f64 * 1e-5;
            format!(
                "{{\"span_id\":\"{}\",\"parent_id\":{parent},\"run_id\":\"r\",\"name\":\"f{}\",\"start_time\":{start},\"end_time\":{},\"duration\":{duration},\"tags\":{{}},\"status\":\"ok\"}}\n",
                id(i),
                i % 3,
                start + duration
            )
        })
        .collect();
    std::fs::write(&input, lines).unwrap();
    let out = dir.path().join("chain.ferret");
    ok!(run!("ferret-convert", &input, "-o", &out, "--quiet"));
    let file = SpanFile::open(&out).unwrap();
    let deepest = file.record(0).unwrap();
    assert_eq!(
        file.root_of(deepest),
        DEPTH - 1,
        "one tree, rooted at the last line"
    );
    drop(file);
    let folded = run!("ferret-scan", &out, "--folded");
    let note = String::from_utf8_lossy(&folded.stderr).to_string();
    let stacks = ok!(folded);
    assert!(note.contains("deeper than 512 frames"), "{note}");
    assert!(
        !note.contains("loop"),
        "a valid file is not damaged: {note}"
    );
    assert!(
        stacks.lines().count() <= 514,
        "at most one line per kept depth"
    );
    let weight: u64 = stacks
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    // Self times add up to the root's duration: DEPTH x 10 us.
    assert!(weight.abs_diff(DEPTH * 10) <= 514, "{weight}");
    let parquet = dir.path().join("chain.parquet");
    ok!(run!("ferret-scan", &out, "--to-parquet", &parquet));
    let depths: Vec<i64> = parquet_rows(&parquet)
        .iter()
        .map(|r| r["depth"].as_i64().unwrap())
        .collect();
    assert_eq!(depths.iter().max(), Some(&(DEPTH as i64 - 1)));
}

#[test]
fn parent_cycles_and_self_parents_never_hang_and_are_named() {
    use ferret_format::{SpanExtras, SpanFileWriter, SpanRecord, NONE_NAME};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.ferret");
    let mut w = SpanFileWriter::create(&path).unwrap();
    let run = w.intern_string("r");
    let name = w.intern_name("n");
    // 0 is a root; 1 and 2 are each other's parent; 3 is its own parent. All claim root 0.
    for (i, parent) in [(0u64, None), (1, Some(2)), (2, Some(1)), (3, Some(3))] {
        let mut r: SpanRecord = bytemuck::Zeroable::zeroed();
        r.span_id[15] = i as u8 + 1;
        r.start_time = 100.0 + i as f64;
        r.duration = 10.0 - i as f64;
        r.name = name;
        r.run = run;
        r.root = 0;
        r.set_parent(parent);
        r.parent_name = if parent.is_some() { name } else { NONE_NAME };
        w.push(r, &SpanExtras::default()).unwrap();
    }
    w.commit(true).unwrap();
    // verify names the damage; the scans still finish.
    fails!(run!("ferret-scan", &path, "--verify"), "record 3", "parent");
    let out = run!("ferret-scan", &path, "--tree");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("parent links that loop"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("n - ")).count(),
        4,
        "{text}"
    );
    let folded = run!("ferret-scan", &path, "--folded");
    assert!(folded.status.success());
    assert!(String::from_utf8_lossy(&folded.stderr).contains("parent links that loop"));
    ok!(run!("ferret-scan", &path));
}

#[test]
fn replacing_a_large_output_does_not_read_it_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.ferret");
    ferret_benches::write_trace(&out, 1_000_000, 50);
    assert!(std::fs::metadata(&out).unwrap().len() > 50 << 20);
    let peak = peak_rss_of(run!(
        "ferret-convert",
        fixture("beaver1.db"),
        "-o",
        &out,
        "--force",
        "--quiet",
        "--print-peak-rss"
    ));
    // Reading the old file whole (as a bug once did) would put its 61 MiB in the peak.
    assert!(
        peak < 40 << 10,
        "peak RSS {peak} KiB replacing a 61 MiB file"
    );
    assert_eq!(SpanFile::open(&out).unwrap().record_count(), 126);
}

/// Every row of a Parquet export as JSON objects (nulls as `null`), read back with the parquet
/// crate.
fn parquet_rows(path: &Path) -> Vec<serde_json::Map<String, Value>> {
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
fn parquet_group_sizes(path: &Path) -> Vec<usize> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let groups = reader.metadata().row_groups();
    groups.iter().map(|g| g.num_rows() as usize).collect()
}

/// ferret's tree nodes by span id, each with its parent id, root id and depth.
fn ferret_nodes<'a>(
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

fn check_parquet_against_ferret(db: &str, file: &Path) {
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

#[test]
fn parquet_export_equals_ferret_trees_and_scan_totals() {
    for db in ["beaver1.db", "beaver2.db", "generated1.db"] {
        for_each_way(db, check_parquet_against_ferret);
    }
}

#[test]
fn parquet_export_filters_replaces_whole_and_names_bad_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    let out = dir.path().join("errors.parquet");
    std::fs::write(&out, "an older export").unwrap();
    ok!(run!(
        "ferret-scan",
        &file,
        "--all-runs",
        "--to-parquet",
        &out,
        "--status",
        "error"
    ));
    let rows = parquet_rows(&out);
    assert!(!rows.is_empty(), "the fixture has errors");
    assert!(rows.iter().all(|r| r["status"] != "ok"), "only errors");
    // Nothing is left beside the output but the output.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // One run by default: ferret's default run.
    ok!(run!("ferret-scan", &file, "--to-parquet", &out));
    let runs: std::collections::BTreeSet<String> = parquet_rows(&out)
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        runs.into_iter().collect::<Vec<_>>(),
        vec![reference("beaver1.db")["latest_run"].as_str().unwrap()]
    );
    let missing = dir.path().join("no-such-dir/out.parquet");
    fails!(
        run!("ferret-scan", &file, "--to-parquet", &missing),
        "no-such-dir"
    );
    // A damaged record block is named, and no output appears.
    let mut bytes = std::fs::read(&file).unwrap();
    let first_record = 2 * ferret_format::HEADER_SLOT_SIZE as usize + 128;
    bytes[first_record + 20] ^= 0x40;
    let damaged = dir.path().join("damaged.ferret");
    std::fs::write(&damaged, bytes).unwrap();
    let fresh = dir.path().join("fresh.parquet");
    fails!(
        run!(
            "ferret-scan",
            &damaged,
            "--all-runs",
            "--to-parquet",
            &fresh,
            "--no-verify"
        ),
        "damaged.ferret: checksum"
    );
    assert!(!fresh.exists());
    // --all-runs means nothing without --to-parquet: a usage error.
    assert_eq!(
        run!("ferret-scan", &file, "--all-runs").status.code(),
        Some(2)
    );
}

/// Two runs of 4096 spans each, interleaved in four phases of 2048 (two blocks each: a, b, a, b),
/// as JSON lines: trees of a root and its 15 children.
fn two_runs_lines() -> String {
    let mut out = String::new();
    for phase in 0..4u64 {
        let (r, run) = [(1u64, "run-a"), (2, "run-b")][phase as usize % 2];
        for i in phase / 2 * 2048..(phase / 2 + 1) * 2048 {
            let id = format!("{:032x}", r << 32 | i);
            let parent = match i % 16 {
                0 => "null".to_string(),
                _ => format!("\"{:032x}\"", r << 32 | (i / 16 * 16)),
            };
            let start = 1.7e9 + phase as f64 * 1e3 + i as f64 * 1e-3;
            let duration = if i % 16 == 0 {
                0.5
            } else {
                1e-4 * (i % 16) as f64
            };
            out.push_str(&format!(
                "{{\"span_id\":\"{id}\",\"parent_id\":{parent},\"run_id\":\"{run}\",\"name\":\"f{}\",\"start_time\":{start},\"end_time\":{},\"duration\":{duration},\"tags\":{{}},\"status\":\"ok\"}}\n",
                i % 16,
                start + duration
            ));
        }
    }
    out
}

/// A question about one run reads only the blocks holding it: a damaged block of another run
/// changes none of its answers (stats, trees, folded stacks, Parquet), while every question
/// that reads that block names it. Read blocks are still checked.
#[test]
fn a_run_is_answered_from_its_own_blocks_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("two.jsonl");
    std::fs::write(&input, two_runs_lines()).unwrap();
    let good = dir.path().join("good.ferret");
    ok!(run!("ferret-convert", &input, "-o", &good, "--quiet"));
    // One bit of a duration in run-a's third phase, between run-b's first and last records.
    let mut bytes = std::fs::read(&good).unwrap();
    bytes[2 * ferret_format::HEADER_SLOT_SIZE as usize + 128 + 5000 * 64 + 24] ^= 1;
    let damaged = dir.path().join("damaged.ferret");
    std::fs::write(&damaged, bytes).unwrap();
    let questions: [&[&str]; 4] = [
        &["--format", "json", "--limit", "0"],
        &["--tree", "--format", "json", "--limit", "5"],
        &["--folded"],
        &["--since", "-3s", "--format", "json"],
    ];
    let ask = |f: &Path, run: &str, q: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
            .arg(f)
            .args(["--run", run])
            .args(q)
            .output()
            .expect("the executable runs")
    };
    for q in questions {
        assert_eq!(
            ok!(ask(&good, "run-b", q)),
            ok!(ask(&damaged, "run-b", q)),
            "{q:?}"
        );
        fails!(
            ask(&damaged, "run-a", q),
            "checksum mismatch in records 4096..5120"
        );
    }
    let export = |f: &Path, run: &str, name: &str| {
        let out = dir.path().join(name);
        (
            run!("ferret-scan", f, "--run", run, "--to-parquet", &out),
            out,
        )
    };
    let (good_out, good_rows) = export(&good, "run-b", "good.parquet");
    ok!(good_out);
    let (damaged_out, damaged_rows) = export(&damaged, "run-b", "damaged.parquet");
    ok!(damaged_out);
    assert_eq!(parquet_rows(&good_rows), parquet_rows(&damaged_rows));
    assert_eq!(parquet_rows(&good_rows).len(), 4096);
    fails!(
        export(&damaged, "run-a", "a.parquet").0,
        "checksum mismatch"
    );
}

/// Copies of `db` as it stood at each cut (the fraction of its rowids written), nested prefixes
/// of one growing trace, each with a one-shot conversion of it to compare against.
fn rowid_snapshots(db: &Path, dir: &Path, cuts: &[f64]) -> Vec<(PathBuf, PathBuf)> {
    cuts.iter()
        .enumerate()
        .map(|(i, &cut)| {
            let snapshot = dir.join(format!("snapshot-{i}.db"));
            rowid_cut(db, &snapshot, cut);
            let one_shot = dir.join(format!("snapshot-{i}.ferret"));
            ok!(run!(
                "ferret-convert",
                &snapshot,
                "-o",
                &one_shot,
                "--quiet"
            ));
            (snapshot, one_shot)
        })
        .collect()
}

/// Starts `ferret-convert SNAPSHOT -o out --append [extra]` for each snapshot index in `order`,
/// each after a pseudo-random delay of up to 15 ms, and returns their outputs.
fn race_writers(
    snapshots: &[(PathBuf, PathBuf)],
    out: &Path,
    order: &[usize],
    seed: u64,
    extra: &[&str],
) -> Vec<Output> {
    let mut state = seed;
    let children: Vec<_> = order
        .iter()
        .map(|&i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            std::thread::sleep(std::time::Duration::from_millis((state >> 33) % 15));
            Command::new(env!("CARGO_BIN_EXE_ferret-convert"))
                .arg(&snapshots[i].0)
                .arg("-o")
                .arg(out)
                .args(["--append", "--quiet"])
                .args(extra)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// Writers racing on one output never corrupt it: each either writes or stops at once naming
/// the other writer, and the file verifies and holds one snapshot's state (snapshots are
/// prefixes of one trace, so writers that ran one after another leave the larger one). With
/// --wait every writer gets its turn and the file holds the union: the largest snapshot.
#[test]
fn racing_writers_leave_one_whole_state_and_wait_gives_the_union() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = rowid_snapshots(&fixture("generated1.db"), dir.path(), &[0.3, 0.6, 1.0]);
    let count = |f: &Path| SpanFile::open(f).unwrap().record_count();
    let states: Vec<u64> = snapshots.iter().map(|s| count(&s.1)).collect();
    let mut refused = 0;
    for round in 0..6u64 {
        let out = dir.path().join(format!("race-{round}.ferret"));
        let order = [round as usize % 3, (round as usize + 1) % 3, 2, 0, 1];
        for o in race_writers(&snapshots, &out, &order, round, &[]) {
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            if !o.status.success() {
                // Stopped by the lock, or a smaller snapshot after a larger one had landed.
                assert!(
                    err.contains("another ferret-convert is writing this file; wait for it")
                        || err.contains("the source changed since it was last converted"),
                    "{err}"
                );
                refused += u64::from(err.contains("another ferret-convert"));
            }
        }
        let file = SpanFile::open(&out).unwrap();
        assert_eq!(file.verify().unwrap(), file.record_count());
        let state = states
            .iter()
            .position(|&n| n == file.record_count())
            .expect("the file holds one snapshot's state");
        drop(file);
        ferret_benches::assert_same_spans(&out, &snapshots[state].1);
    }
    assert!(
        refused > 0,
        "no two writers overlapped; the race was not run"
    );
    // --wait: every writer waits its turn, and the largest snapshot is what stays.
    for round in 0..3u64 {
        let out = dir.path().join(format!("wait-{round}.ferret"));
        let order = [round as usize % 3, 2, (round as usize + 1) % 3, 0];
        for o in race_writers(&snapshots, &out, &order, round + 100, &["--wait"]) {
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            assert!(!err.contains("another ferret-convert"), "{err}");
            let smaller = err.contains("the source changed since it was last converted");
            assert!(o.status.success() || smaller, "{err}");
        }
        let file = SpanFile::open(&out).unwrap();
        assert_eq!(file.verify().unwrap(), states[2]);
        drop(file);
        ferret_benches::assert_same_spans(&out, &snapshots[2].1);
    }
}

/// A writer killed while it holds the lock leaves no lock behind: the next writer gets in at
/// once and completes the file.
#[test]
fn a_writer_killed_holding_the_lock_lets_the_next_in_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (input, full) = many_lines_converted(dir.path());
    let out = dir.path().join("out.ferret");
    let mut child = spawn_conversion(&input, &out);
    // Until it holds the lock: a second writer is refused.
    let started = std::time::Instant::now();
    loop {
        if !out.exists() {
            std::thread::sleep(std::time::Duration::from_millis(2));
            continue;
        }
        let second = run!("ferret-convert", &input, "-o", &out, "--append", "--quiet");
        let err = String::from_utf8_lossy(&second.stderr).to_string();
        if err.contains("another ferret-convert is writing") {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "never saw the lock held: {err}"
        );
    }
    child.kill().unwrap(); // SIGKILL: no chance to unlock
    child.wait().unwrap();
    // Without --wait: had the lock outlived the process, this would be refused.
    let next = run!("ferret-convert", &input, "-o", &out, "--append");
    ok!(next);
    ferret_benches::assert_same_records(&out, &full);
}

/// Damage inside the last commit's segment, after its header was written: readers answer from
/// the commit before it and say so once, --verify names it, and --append resumes from the
/// previous commit, ending equal to a one-shot conversion.
#[test]
fn a_damaged_last_commit_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = rowid_snapshots(&fixture("generated1.db"), dir.path(), &[0.5, 1.0]);
    let (half, whole) = (&snapshots[0], &snapshots[1]);
    let good = dir.path().join("good.ferret");
    ok!(run!("ferret-convert", &half.0, "-o", &good, "--quiet"));
    ok!(run!(
        "ferret-convert",
        &whole.0,
        "-o",
        &good,
        "--append",
        "--quiet"
    ));
    let (last, run, at) = {
        let f = SpanFile::open(&good).unwrap();
        let last = f.segments().last().unwrap().clone();
        let half_runs = ok!(run!("ferret-scan", &half.1, "--runs", "--format", "json"));
        // The first record of the last commit whose run the half already had: its question
        // reads the damaged block, and has an answer in the previous commit.
        let (at, run) = (0..last.record_count)
            .map(|i| {
                (
                    i,
                    f.string(f.record(last.first_record + i).unwrap().run)
                        .unwrap(),
                )
            })
            .find(|(_, run)| half_runs.contains(&format!("\"{run}\"")))
            .expect("a run that spans the cut");
        (last.clone(), run.to_string(), at as usize)
    };
    let half_count = SpanFile::open(&half.1).unwrap().record_count();
    assert_eq!(
        last.first_record, half_count,
        "the append is the last commit"
    );
    let bytes = std::fs::read(&good).unwrap();
    // A record byte (seen only by a scan that reads it), then the segment header (seen on open).
    let damages = [
        (
            last.offset as usize + 128 + 64 * at + 24,
            "checksum mismatch in records",
        ),
        (last.offset as usize + 20, "segment"),
    ];
    for (at, what) in damages {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        let file = dir.path().join("damaged.ferret");
        std::fs::write(&file, &bad).unwrap();
        let json = |f: &Path| {
            Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
                .arg(f)
                .args(["--run", &run, "--format", "json", "--limit", "0"])
                .output()
                .unwrap()
        };
        let answered = json(&file);
        let err = String::from_utf8_lossy(&answered.stderr).to_string();
        assert_eq!(err.lines().count(), 1, "one warning: {err}");
        assert!(err.contains("warning") && err.contains(what), "{err}");
        assert!(
            err.contains(&format!("newest commit ({} spans)", last.record_count)),
            "{err}"
        );
        assert_eq!(
            ok!(answered),
            ok!(json(&half.1)),
            "the previous commit's answer"
        );
        fails!(run!("ferret-scan", &file, "--verify"), "newest commit");
        let appended = run!("ferret-convert", &whole.0, "-o", &file, "--append");
        let err = String::from_utf8_lossy(&appended.stderr).to_string();
        assert!(err.contains("appended from the commit before it"), "{err}");
        ok!(appended);
        ok!(run!("ferret-scan", &file, "--verify"));
        ferret_benches::assert_same_spans(&file, &whole.1);
    }
}

/// A symbolic link as the output is refused, dangling or not: a link planted in a shared
/// folder cannot redirect a write.
#[test]
fn a_symlinked_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.ferret");
    let link = dir.path().join("link.ferret");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let db = fixture("beaver1.db");
    fails!(
        run!("ferret-convert", &db, "-o", &link, "--quiet"),
        "symbolic link",
        "target.ferret"
    );
    assert!(!target.exists(), "nothing written through the link");
    ok!(run!("ferret-convert", &db, "-o", &target, "--quiet"));
    fails!(
        run!("ferret-convert", &db, "-o", &link, "--append", "--quiet"),
        "symbolic link"
    );
}

/// The bytes of a file, to show it was not written to.
fn digest(path: &Path) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&std::fs::read(path).unwrap())
}

/// `ferret-scan trace.db` converts the trace into a sidecar beside it the first time, and then
/// adds only the rows written since; every answer equals ferret-io's, and the database is only
/// read. A replaced database makes the sidecar anew, saying why.
#[test]
fn a_trace_is_scanned_directly_through_a_sidecar_kept_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trace.db");
    std::fs::copy(fixture("beaver1.db"), &db).unwrap();
    let sidecar = dir.path().join("trace.db.ferret");
    let before = digest(&db);
    let direct = ok!(run!("ferret-scan", &db, "--format", "json", "--limit", "0"));
    assert_eq!(digest(&db), before, "the database is only read");
    check_stats_against_ferret("beaver1.db", &sidecar);
    let through = ok!(run!(
        "ferret-scan",
        &sidecar,
        "--format",
        "json",
        "--limit",
        "0"
    ));
    assert_eq!(direct, through);
    // The program goes on writing: the next call adds what is new.
    let mut con = rusqlite::Connection::open(&db).unwrap();
    insert_copy(&mut con, 1);
    drop(con);
    let grown = digest(&db);
    let segments = |f: &Path| SpanFile::open(f).unwrap().segments().len();
    let before_append = segments(&sidecar);
    let again = run!("ferret-scan", &db, "--runs");
    assert!(
        String::from_utf8_lossy(&again.stderr).is_empty(),
        "{again:?}"
    );
    ok!(again);
    assert_eq!(digest(&db), grown, "the database is only read");
    assert!(
        segments(&sidecar) > before_append,
        "appended, not made anew"
    );
    let fresh = dir.path().join("fresh.ferret");
    ok!(run!("ferret-convert", &db, "-o", &fresh, "--quiet"));
    ferret_benches::assert_same_spans(&sidecar, &fresh);
    // Another database in its place: made anew, with one line saying why.
    std::fs::copy(fixture("beaver2.db"), &db).unwrap();
    let replaced = run!("ferret-scan", &db, "--runs");
    let err = String::from_utf8_lossy(&replaced.stderr).to_string();
    assert!(
        err.contains("trace.db.ferret: made anew: its source was replaced"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    ok!(replaced);
    check_stats_against_ferret("beaver2.db", &sidecar);
    // A database cut short, and a sidecar of format version 1: each made anew, saying why.
    let remade = |why: &str| {
        let out = run!("ferret-scan", &db, "--runs");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(err.contains(&format!("made anew: {why}")), "{err}");
        ok!(out);
    };
    rowid_cut(&fixture("beaver2.db"), &db, 0.5);
    remade("its source was replaced, vacuumed or shrank");
    std::fs::copy(golden("v1.ferret"), &sidecar).unwrap();
    remade("it is of format version 1");
    // The rest of the rows again: the half's sidecar grows to the whole.
    std::fs::copy(fixture("beaver2.db"), &db).unwrap();
    let grew = run!("ferret-scan", &db, "--runs");
    assert!(String::from_utf8_lossy(&grew.stderr).is_empty(), "{grew:?}");
    ok!(grew);
    check_stats_against_ferret("beaver2.db", &sidecar);
}

/// JSON lines are scanned directly the same way; --no-sidecar leaves nothing behind; two scans
/// at once share one sidecar; and a Python user's mistakes get a message saying what is wrong.
#[test]
fn json_lines_no_sidecar_concurrent_scans_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("trace.jsonl");
    std::fs::write(&lines, json_lines(&fixture("beaver1.db"))).unwrap();
    ok!(run!("ferret-scan", &lines, "--runs"));
    check_stats_against_ferret("beaver1.db", &dir.path().join("trace.jsonl.ferret"));
    // --no-sidecar: the answer, and nothing left in the folder.
    let alone = tempfile::tempdir().unwrap();
    let db = alone.path().join("trace.db");
    std::fs::copy(fixture("beaver1.db"), &db).unwrap();
    let json = |extra: &str| ok!(run!("ferret-scan", &db, "--format", "json", extra));
    let temporary = json("--no-sidecar");
    assert_eq!(std::fs::read_dir(alone.path()).unwrap().count(), 1);
    // Two scans at once: the second waits for the first's conversion, both answer the same.
    let scans: Vec<_> = (0..2)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
                .args([db.as_os_str(), "--format".as_ref(), "json".as_ref()])
                .stderr(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for scan in scans {
        assert_eq!(ok!(scan.wait_with_output().unwrap()), temporary);
    }
    ok!(run!(
        "ferret-scan",
        alone.path().join("trace.db.ferret"),
        "--verify"
    ));
    // What a user gets wrong.
    // (A missing file and one that is no trace: `bad_inputs_and_outputs_give_one_line_errors`.)
    fails!(
        run!("ferret-scan", &db, "--namespace", "nope"),
        "namespace \"nope\" not found; the file has: \"_ferret_trace\""
    );
    assert!(!alone.path().join("trace.db.nope.ferret").exists());
    let empty_db = dir.path().join("empty.db");
    rusqlite::Connection::open(&empty_db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    fails!(
        run!("ferret-scan", &empty_db),
        "empty.db",
        "not a ferret trace"
    );
}

/// `ferret-scan FILE --format json --limit 0 ARGS...` of a comparison, parsed.
fn compare_json(file: &Path, args: &[&std::ffi::OsStr]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
        .arg(file)
        .args(["--format", "json", "--limit", "0", "--no-sidecar"])
        .args(args)
        .output()
        .unwrap();
    serde_json::from_str(&ok!(out)).unwrap()
}

/// Checks one side of a comparison's entry against ferret's statistics of that run.
fn check_side(got: &Value, want: Option<&Value>, what: &str) {
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

/// Checks a comparison: each side holds ferret-io's statistics of its run (`want_base`,
/// `want_target`), the deltas are their differences, and a function of one run only is new or
/// gone.
fn check_comparison(got: &Value, want_base: &Value, want_target: &Value, what: &str) {
    let stats = |want: &Value| want["stats"].as_object().unwrap().clone();
    let (base, target) = (stats(want_base), stats(want_target));
    assert_eq!(got["base"]["spans"], want_base["span_count"], "{what}");
    assert_eq!(got["target"]["spans"], want_target["span_count"], "{what}");
    let entries = by_key(&got["functions"], "name");
    let mut names: Vec<&String> = base.keys().chain(target.keys()).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        entries.len(),
        names.len(),
        "{what}: every function of either run"
    );
    for name in names {
        let e = entries[name.as_str()];
        let (b, t) = (base.get(name), target.get(name));
        check_side(&e["base"], b, &format!("{what} base {name}"));
        check_side(&e["target"], t, &format!("{what} target {name}"));
        let change = e["change"].as_str().unwrap();
        match (b, t) {
            (None, _) => assert_eq!(change, "new", "{what} {name}"),
            (_, None) => assert_eq!(change, "gone", "{what} {name}"),
            _ => {
                assert!(["slower", "faster", "same"].contains(&change), "{change}");
                for f in ["count", "error_count", "total_duration", "self_time", "p99"] {
                    let (tv, bv) = (
                        e["target"][f].as_f64().unwrap(),
                        e["base"][f].as_f64().unwrap(),
                    );
                    let d = e["delta"][f].as_f64().unwrap();
                    assert!(
                        close(d, tv - bv),
                        "{what} {name} delta {f}: {d} vs {tv} - {bv}"
                    );
                }
            }
        }
    }
}

/// On the multi-run fixtures, each side of a comparison holds ferret-io's numbers of its run,
/// the deltas are their differences, and a function of one run only is new or gone; so with a
/// baseline in another file (the other layout's recording, given directly as a database).
#[test]
fn a_comparison_shows_ferrets_numbers_of_each_run_and_their_differences() {
    for db in ["beaver1.db", "generated1.db"] {
        let dir = tempfile::tempdir().unwrap();
        let file = convert(&fixture(db), dir.path());
        let reference = reference(db);
        let runs: Vec<&String> = reference["runs"].as_object().unwrap().keys().collect();
        for (base, target) in [(runs[0], runs[2]), (runs[1], runs[0])] {
            let got = compare_json(
                &file,
                &[
                    "--baseline".as_ref(),
                    base.as_ref(),
                    "--run".as_ref(),
                    target.as_ref(),
                ],
            );
            assert_eq!(got["base"]["run_id"], base.as_str());
            assert_eq!(got["target"]["run_id"], target.as_str());
            let want = |run: &str| &reference["runs"][run];
            check_comparison(
                &got,
                want(base),
                want(target),
                &format!("{db} {base} -> {target}"),
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    fails!(
        run!("ferret-scan", &file, "--baseline", "no-such-run"),
        "--baseline no-such-run is neither a file nor a run",
        "closest: "
    );
    fails!(
        run!(
            "ferret-scan",
            &file,
            "--baseline",
            "run-one",
            "--baseline-run",
            "x"
        ),
        "--baseline run-one: no such file"
    );
    let other = fixture("beaver2.db");
    for run in ["run-one", "run-three-latest"] {
        let args: [&std::ffi::OsStr; 6] = [
            "--baseline".as_ref(),
            other.as_ref(),
            "--baseline-run".as_ref(),
            run.as_ref(),
            "--run".as_ref(),
            run.as_ref(),
        ];
        let got = compare_json(&file, &args);
        let (base, target) = (reference("beaver2.db"), reference("beaver1.db"));
        check_comparison(
            &got,
            &base["runs"][run],
            &target["runs"][run],
            &format!("beaver2 -> beaver1 {run}"),
        );
    }
}

/// Two runs ("base", then "target") of one service as JSON lines: 30 request handlers (root
/// spans), each with a median of 0.5-20 ms and log-normal noise (sigma 0.5), called 1500-3000
/// times a run, each with one child; handler `slowed` (if any) `factor` times slower in the
/// target. (Handlers are roots because a caller's total time holds its callees': under the
/// default sort a slowed function's callers rise with it, and `--sort self` ranks it alone.)
fn program_runs(seed: u64, slowed: Option<usize>, factor: f64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let program: Vec<(f64, u64)> = (0..30)
        .map(|_| (0.0005 * 40f64.powf(rng.gen()), rng.gen_range(1500..3000)))
        .collect();
    let mut out = String::new();
    let mut start = 1.7e9;
    let mut span = |id: &str, parent: &str, run: &str, name: &str, start: f64, duration: f64| {
        out.push_str(&format!(
            "{{\"span_id\":\"{id}\",\"parent_id\":{parent},\"run_id\":\"{run}\",\"name\":\"{name}\",\"start_time\":{start},\"end_time\":{},\"duration\":{duration},\"tags\":{{}},\"status\":\"ok\"}}\n",
            start + duration
        ));
    };
    for (r, run) in ["base", "target"].iter().enumerate() {
        for (f, &(median, calls)) in program.iter().enumerate() {
            let factor = if r == 1 && slowed == Some(f) {
                factor
            } else {
                1.0
            };
            let noise = LogNormal::new((median * factor).ln(), 0.5).unwrap();
            for call in 0..calls {
                let d = noise.sample(&mut rng);
                let root = format!("{r:08x}{f:08x}{call:016x}");
                let child = format!("{r:08x}{f:08x}{:016x}", call | 1 << 40);
                span(&root, "null", run, &format!("f{f}"), start, d);
                span(&child, &format!("\"{root}\""), run, "db", start, d * 0.3);
                start += d * 1.2;
            }
        }
    }
    out
}

/// On generated pairs of runs, a function made 25% slower is ranked first and called slower,
/// nothing else is called changed, `--fail-on-regression` exits 3 naming it (and 0 for a larger
/// threshold or equal runs), CSV and the table say the same, and the differential flame graph
/// paints it the reddest.
#[test]
fn a_slowed_function_is_ranked_first_called_slower_and_gates_a_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let convert_lines = |name: &str, lines: String| {
        let input = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&input, lines).unwrap();
        let out = dir.path().join(format!("{name}.ferret"));
        ok!(run!("ferret-convert", &input, "-o", &out, "--quiet"));
        out
    };
    let slowed = convert_lines("slowed", program_runs(7, Some(11), 1.25));
    let base: [&std::ffi::OsStr; 4] = [
        "--baseline".as_ref(),
        "base".as_ref(),
        "--run".as_ref(),
        "target".as_ref(),
    ];
    let got = compare_json(&slowed, &base);
    let functions = got["functions"].as_array().unwrap();
    assert_eq!(
        (&functions[0]["name"], &functions[0]["change"]),
        (&Value::from("f11"), &Value::from("slower")),
        "{}",
        functions[0]
    );
    let shift = &functions[0]["shift"];
    assert!(
        shift["low"].as_f64().unwrap() < 0.25 && 0.25 < shift["high"].as_f64().unwrap(),
        "{shift}"
    );
    let changed: Vec<&Value> = functions[1..]
        .iter()
        .filter(|f| f["change"] != "same")
        .collect();
    assert!(changed.is_empty(), "false alarms: {changed:?}");
    // The gate: exit 3 and one line naming the function, above 10%; nothing above 60%.
    let compare = |file: &Path, more: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
            .arg(file)
            .args(base)
            .args(more)
            .output()
            .unwrap()
    };
    let gate =
        |file: &Path, pct: &str| compare(file, &["--fail-on-regression".as_ref(), pct.as_ref()]);
    let failed = gate(&slowed, "10");
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(3), "{err}");
    assert!(
        err.trim_end().lines().count() == 1
            && err.contains("f11 (+2")
            && err.contains("regression"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&failed.stdout).contains("f11"),
        "the comparison is printed too"
    );
    assert_eq!(gate(&slowed, "60").status.code(), Some(0));
    let equal = convert_lines("equal", program_runs(7, None, 1.0));
    assert_eq!(gate(&equal, "10").status.code(), Some(0));
    // CSV: a row per function, the first the slowed one; the table: signs, no colour off a terminal.
    let csv = ok!(compare(
        &slowed,
        &["--format".as_ref(), "csv".as_ref(), "-l0".as_ref()]
    ));
    let rows: Vec<&str> = csv.lines().collect();
    assert!(
        rows[0].starts_with("name,change,p_value,q_value,shift,shift_low,shift_high,base_count,"),
        "{}",
        rows[0]
    );
    assert_eq!(rows.len(), functions.len() + 1);
    assert!(rows[1].starts_with("f11,slower,"), "{}", rows[1]);
    let table = ok!(compare(&slowed, &[]));
    assert!(
        table.contains("1 slower, 0 faster, 30 same, 0 new, 0 gone"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("▲  f11 ") && l.contains("slower +2")),
        "{table}"
    );
    assert!(!table.contains('\x1b'), "no colour off a terminal");
    let coloured = scan_on_a_terminal(&slowed, "--baseline base --run target");
    assert!(
        coloured.contains("\x1b[31m▲\x1b[0m  f11 "),
        "red on a terminal: {coloured}"
    );
    // The differential flame graph: the target's frames, f11 the reddest (the largest growth).
    let svg = dir.path().join("diff.svg");
    ok!(compare(&slowed, &["--flamegraph".as_ref(), svg.as_ref()]));
    let text = std::fs::read_to_string(&svg).unwrap();
    let xml = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, xml).expect("well-formed XML");
    let fill_of = |frame: &str| {
        doc.descendants()
            .filter(|n| n.has_tag_name("g"))
            .find(|g| {
                g.children().any(|c| {
                    c.has_tag_name("title")
                        && c.text()
                            .is_some_and(|t| t.starts_with(&format!("{frame} (")))
                })
            })
            .and_then(|g| g.children().find(|c| c.has_tag_name("rect")))
            .and_then(|r| r.attribute("fill"))
            .map(str::to_string)
    };
    assert_eq!(
        fill_of("f11").as_deref(),
        Some("rgb(255,100,100)"),
        "{text}"
    );
    assert!(text.contains("against base"));
}

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

/// What headless Chromium made of a page: its DOM after the scripts ran, and the URLs the page
/// (not the browser itself) asked for, from Chromium's network log.
fn render(page: &Path, dir: &Path) -> (String, Vec<String>) {
    let netlog = dir.join("net.json");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("Debian's chromium runs (make test-browser installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Value = serde_json::from_str(&std::fs::read_to_string(&netlog).unwrap()).unwrap();
    let start_job = &log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"];
    // The browser's own background requests have no initiating origin; the page's do.
    let fetched = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| &e["type"] == start_job && e["params"]["initiator"] != "not an origin")
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
        .collect();
    (String::from_utf8(out.stdout).unwrap(), fetched)
}

/// `--html` in a real browser (Debian's headless Chromium): the rendered function table holds
/// every function of the run with `--format json`'s numbers, the timeline chart and the flame
/// graph are drawn, a baseline adds the comparison and its differential flame graph, and the
/// page fetched nothing (a page that does fetch is caught by the same check). A screenshot is kept in
/// target/tmp/browser/report.png. Run by `make test-browser`.
#[test]
#[ignore = "needs Debian's chromium: make test-browser"]
fn the_html_page_renders_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("generated1.db"), dir.path());
    let page = dir.path().join("report.html");
    ok!(run!("ferret-scan", &file, "--html", &page));
    let (dom, fetched) = render(&page, dir.path());
    assert!(fetched.is_empty(), "the page fetched {fetched:?}");
    let json = json_of(run!(
        "ferret-scan",
        &file,
        "--format",
        "json",
        "--limit",
        "0"
    ));
    let want = by_key(&json["functions"], "name");
    let row =
        regex::Regex::new(r#"<tr class="function"><td class="name">(.*?)</td>(.*?)</tr>"#).unwrap();
    let value = regex::Regex::new(r#"data-v="([^"]*)""#).unwrap();
    let mut rows = 0;
    for caps in row.captures_iter(&dom) {
        let name = html_escape::decode_html_entities(&caps[1]).into_owned();
        let w = want
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} is not in the JSON"));
        let values: Vec<f64> = value
            .captures_iter(&caps[2])
            .map(|v| v[1].parse().unwrap())
            .collect();
        let fields = [
            "count",
            "total_duration",
            "avg_duration",
            "min_duration",
            "max_duration",
            "error_rate",
            "p50",
            "p90",
            "p99",
            "self_time",
        ];
        for (field, got) in fields.iter().zip(&values) {
            assert_eq!(*got, w[field].as_f64().unwrap(), "{name} {field}");
        }
        rows += 1;
    }
    assert_eq!(rows, want.len(), "every function of the run");
    // The chart: lines for p50 and p99, and the data of every bucket; the flame graph: frames.
    let timeline = json_of(run!("ferret-scan", &file, "--timeline", "--format", "json"));
    assert!(dom.contains("<polyline class=\"p99\"") && dom.contains("<polyline class=\"p50\""));
    let data = regex::Regex::new(
        r#"(?s)<script type="application/json" id="timeline-data">(.*?)</script>"#,
    )
    .unwrap();
    let embedded: Value = serde_json::from_str(&data.captures(&dom).unwrap()[1]).unwrap();
    assert_eq!(embedded["buckets"], timeline["buckets"]);
    let frames =
        regex::Regex::new(r#"id="flamegraph" data-frames="(\d+)" data-interactive="true""#)
            .unwrap();
    let drawn: usize = frames.captures(&dom).expect("the flame graph was counted")[1]
        .parse()
        .unwrap();
    assert!(drawn > 100, "{drawn} flame graph frames");
    assert!(
        dom.matches("<div class=\"tree\">").count() == 20,
        "the 20 slowest trees"
    );
    // A baseline adds the comparison, a row per function of either run.
    let compared = dir.path().join("compared.html");
    ok!(run!(
        "ferret-scan",
        &file,
        "--baseline",
        "0000000000000000000000005eed0000",
        "--html",
        &compared
    ));
    let (dom, fetched) = render(&compared, dir.path());
    assert!(
        fetched.is_empty() && dom.contains("<section id=\"comparison\">"),
        "{fetched:?}"
    );
    let verdicts = regex::Regex::new(r#"<tr class="(same|slower|faster|new|gone)">"#).unwrap();
    assert_eq!(verdicts.find_iter(&dom).count(), 191, "170 + 21 gone");
    let differential =
        regex::Regex::new(r#"id="differential" data-frames="(\d+)" data-interactive="true""#)
            .unwrap();
    let caps = differential
        .captures(&dom)
        .expect("the differential graph was drawn");
    let drawn: usize = caps[1].parse().unwrap();
    assert!(drawn > 100, "{drawn} differential frames");
    // The check sees a page that fetches.
    let fetching = dir.path().join("fetching.html");
    std::fs::write(&fetching, "<img src=\"http://ferret.invalid/x.png\">").unwrap();
    assert_eq!(
        render(&fetching, dir.path()).1,
        ["http://ferret.invalid/x.png"]
    );
    // A screenshot, kept.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("report.png");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,2000",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
}

/// The page without a browser: one file holding every part, every function of the run, no
/// reference to anything outside it; `--flamegraph` beside `--html` writes its SVG too.
#[test]
fn the_html_page_is_one_file_with_every_part() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    let (page, svg) = (dir.path().join("p.html"), dir.path().join("f.svg"));
    ok!(run!(
        "ferret-scan",
        &file,
        "--html",
        &page,
        "--flamegraph",
        &svg
    ));
    let html = std::fs::read_to_string(&page).unwrap();
    for part in ["functions", "timeline", "flamegraph", "trees"] {
        assert!(html.contains(&format!("<section id=\"{part}\">")), "{part}");
    }
    let functions = json_of(run!(
        "ferret-scan",
        &file,
        "--format",
        "json",
        "--limit",
        "0"
    ));
    let rows = html.matches("<tr class=\"function\">").count();
    assert_eq!(rows, functions["functions"].as_array().unwrap().len());
    let outside = regex::Regex::new(r#"(src|href|url)\s*[=(]\s*["']?(https?:)?//"#).unwrap();
    assert!(!outside.is_match(&html), "{:?}", outside.find(&html));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

/// The frames of a flame graph SVG: (name, y, x, width) of every `<g>` with a title, x and
/// width in percent.
fn svg_frames(svg: &Path) -> Vec<(String, String, f64, f64)> {
    let text = std::fs::read_to_string(svg).unwrap();
    let xml = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, xml).unwrap();
    let percent = |v: Option<&str>| v.unwrap().trim_end_matches('%').parse::<f64>().unwrap();
    let mut frames: Vec<(String, String, f64, f64)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("g"))
        .filter_map(|g| {
            let title = g.children().find(|c| c.has_tag_name("title"))?.text()?;
            let rect = g.children().find(|c| c.has_tag_name("rect"))?;
            let name = title.split(" (").next().unwrap().to_string();
            let y = rect.attribute("y").unwrap().to_string();
            Some((
                name,
                y,
                percent(rect.attribute("x")),
                percent(rect.attribute("width")),
            ))
        })
        .collect();
    frames.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    frames
}

/// A flame graph alone folds the stacks too thin to draw into their ancestors: 20,000 distinct
/// 10 µs stacks under one root draw the same frames, as wide, as the complete lines `--folded`
/// prints (and still prints, every one). Only places move: the thin stacks' time joins their
/// parent's own, which inferno draws first.
#[test]
fn a_flame_graph_draws_the_same_frames_from_the_drawable_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    let mut span = |id: u64, parent: Option<u64>, name: &str, start: f64, duration: f64| {
        let parent = parent.map_or("null".to_string(), |p| format!("\"{p:032x}\""));
        lines.push_str(&format!(
            "{{\"span_id\":\"{id:032x}\",\"parent_id\":{parent},\"run_id\":\"r\",\"name\":\"{name}\",\"start_time\":{start},\"end_time\":{},\"duration\":{duration},\"tags\":{{}},\"status\":\"ok\"}}\n",
            start + duration
        ));
    };
    span(1, None, "main", 1.7e9, 10.0);
    span(2, Some(1), "big", 1.7e9, 4.0);
    span(3, Some(2), "inner", 1.7e9, 1.0);
    for i in 0..20_000u64 {
        span(
            10 + i,
            Some(1),
            &format!("tiny_{i}"),
            1.7e9 + 4.0 + i as f64 * 1e-5,
            1e-5,
        );
    }
    let input = dir.path().join("thin.jsonl");
    std::fs::write(&input, lines).unwrap();
    let file = dir.path().join("thin.ferret");
    ok!(run!("ferret-convert", &input, "-o", &file, "--quiet"));
    let (drawn, complete) = (
        dir.path().join("drawn.svg"),
        dir.path().join("complete.svg"),
    );
    ok!(run!("ferret-scan", &file, "--flamegraph", &drawn));
    let folded = ok!(run!(
        "ferret-scan",
        &file,
        "--flamegraph",
        &complete,
        "--folded"
    ));
    assert_eq!(folded.lines().count(), 20_003, "every stack in --folded");
    let (a, b) = (svg_frames(&drawn), svg_frames(&complete));
    assert_eq!(a.len(), b.len(), "{a:?}\n{b:?}");
    assert!(a.iter().any(|f| f.0 == "inner"), "{a:?}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.0, &x.1), (&y.0, &y.1));
        assert!((x.3 - y.3).abs() < 1e-3, "{x:?} vs {y:?}");
    }
}
