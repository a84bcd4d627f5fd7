//! `ferret-scan trace.db`: the sidecar kept up to date, temporary conversions, concurrent
//! scans.

use ferret_format::SpanFile;
use std::path::Path;
use std::process::Command;

use crate::util::*;

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

/// `n` spans of run `run` as JSON lines, each a root of 1 ms.
fn run_lines(run: &str, n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let start = 1.7e9 + i as f64;
            format!(
                "{{\"span_id\":\"{run}-{i}\",\"parent_id\":null,\"run_id\":\"{run}\",\"name\":\"f\",\"start_time\":{start},\"end_time\":{},\"duration\":0.001,\"tags\":{{}},\"status\":\"ok\"}}\n",
                start + 0.001
            )
        })
        .collect()
}

/// `(run id, spans)` of every run `--runs` lists, and what the scan said on stderr.
fn runs_of(trace: &Path) -> (Vec<(String, u64)>, String) {
    let out = run!("ferret-scan", trace, "--runs", "--format", "json");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let runs = json_of(out)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_string(),
                r["spans"].as_u64().unwrap(),
            )
        })
        .collect();
    (runs, err)
}

/// A JSON lines trace is checked like a database before its new lines are added: one replaced
/// or cut since is made anew with the reason, one that grew is only appended to, and a last
/// line without its newline waits until it is whole.
#[test]
fn a_replaced_cut_or_half_written_json_lines_trace_is_read_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("a.jsonl");
    std::fs::write(&trace, run_lines("first", 100).concat()).unwrap();
    assert_eq!(runs_of(&trace).0, [("first".to_string(), 100)]);
    // Replaced by a longer trace of another run: not read as the first one grown.
    std::fs::write(&trace, run_lines("second", 150).concat()).unwrap();
    let (runs, err) = runs_of(&trace);
    assert_eq!(runs, [("second".to_string(), 150)]);
    assert!(
        err.contains("made anew") && err.contains("not those converted"),
        "{err}"
    );
    // Cut short: made anew.
    std::fs::write(&trace, run_lines("second", 120).concat()).unwrap();
    let (runs, err) = runs_of(&trace);
    assert_eq!(runs, [("second".to_string(), 120)]);
    assert!(
        err.contains("made anew") && err.contains("fewer than"),
        "{err}"
    );
    // Grown: appended to, nothing said.
    let mut lines = run_lines("second", 200);
    std::fs::write(&trace, lines[..160].concat()).unwrap();
    let (runs, err) = runs_of(&trace);
    assert_eq!(
        (runs, err.as_str()),
        (vec![("second".to_string(), 160)], "")
    );
    // A last line still being written waits, with a note; whole, it is added.
    let half = &lines[160][..40];
    std::fs::write(&trace, format!("{}{half}", lines[..160].concat())).unwrap();
    let (runs, err) = runs_of(&trace);
    assert_eq!(runs, [("second".to_string(), 160)]);
    assert!(err.contains("line 161 has no newline yet"), "{err}");
    std::fs::write(&trace, lines[..170].concat()).unwrap();
    let (runs, err) = runs_of(&trace);
    assert_eq!(
        (runs, err.as_str()),
        (vec![("second".to_string(), 170)], "")
    );
    // A whole last line without its newline is read; the newline written after it ends that
    // line, and the lines after it keep their numbers (a bad one is named by its own).
    let unterminated = lines[170].trim_end().to_string();
    std::fs::write(&trace, format!("{}{unterminated}", lines[..170].concat())).unwrap();
    assert_eq!(runs_of(&trace).0, [("second".to_string(), 171)]);
    lines[172] = "not json\n".into();
    std::fs::write(&trace, lines[..180].concat()).unwrap();
    let (runs, err) = runs_of(&trace);
    assert_eq!(runs, [("second".to_string(), 179)]);
    assert!(err.contains("1 rows skipped as bad"), "{err}");
    let converted = dir.path().join("a.jsonl.ferret");
    let again = run!(
        "ferret-convert",
        &trace,
        "-o",
        dir.path().join("whole.ferret")
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("line 173"));
    ok!(run!("ferret-scan", &converted, "--verify"));
}

/// Three scans of a trace replaced since its sidecar was made, started at once: the decision to
/// make the sidecar anew is taken under its lock, so one scan makes it and the others wait and
/// append nothing; all answer the new trace's numbers, and the sidecar equals a conversion
/// made from scratch.
#[test]
fn scans_of_a_replaced_trace_at_once_make_its_sidecar_once() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.db");
    std::fs::copy(fixture("beaver1.db"), &trace).unwrap();
    ok!(run!("ferret-scan", &trace, "--runs"));
    let next = dir.path().join("next.db");
    std::fs::copy(fixture("generated1.db"), &next).unwrap();
    std::fs::rename(&next, &trace).unwrap();
    let scans: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
                .arg(&trace)
                .args(["--format", "json", "--limit", "0"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = scans
        .into_iter()
        .map(|s| s.wait_with_output().unwrap())
        .collect();
    let notes = outs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stderr).contains("made anew"))
        .count();
    assert_eq!(notes, 1, "one scan makes it anew");
    let fresh = dir.path().join("fresh.ferret");
    ok!(run!(
        "ferret-convert",
        fixture("generated1.db"),
        "-o",
        &fresh,
        "--quiet"
    ));
    let want = ok!(run!(
        "ferret-scan",
        &fresh,
        "--format",
        "json",
        "--limit",
        "0"
    ));
    for out in outs {
        assert_eq!(ok!(out), want);
    }
    ferret_benches::assert_same_spans(&dir.path().join("trace.db.ferret"), &fresh);
}

/// A sidecar takes its trace's permission bits, is named apart for each namespace, and one
/// not made by this user (owned by another, or hard-linked elsewhere) is refused.
#[test]
fn a_sidecar_is_the_traces_own() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.db");
    std::fs::copy(fixture("beaver1.db"), &trace).unwrap();
    std::fs::set_permissions(&trace, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok!(run!("ferret-scan", &trace, "--runs"));
    let sidecar = dir.path().join("trace.db.ferret");
    let mode = std::fs::metadata(&sidecar).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // Another namespace: its own name, no dot from the namespace in it.
    fails!(
        run!("ferret-scan", &trace, "--namespace", "a.b"),
        "namespace \"a.b\" not found"
    );
    assert!(!dir.path().join("trace.db.ferret-ns-a%2Eb").exists());
    ok!(run!(
        "ferret-scan",
        &trace,
        "--namespace",
        "other_ns",
        "--runs"
    ));
    assert!(dir.path().join("trace.db.ferret-ns-other_ns").exists());
    // A second name for the sidecar (a hard link planted to make us write elsewhere).
    let link = dir.path().join("elsewhere.ferret");
    std::fs::hard_link(&sidecar, &link).unwrap();
    fails!(
        run!("ferret-scan", &trace, "--runs"),
        "2 names",
        "--no-sidecar"
    );
    std::fs::remove_file(&link).unwrap();
    ok!(run!("ferret-scan", &trace, "--runs"));
    // Owned by another user (where the test may change owners: as root).
    if std::os::unix::fs::chown(&sidecar, Some(65534), Some(65534)).is_ok() {
        fails!(
            run!("ferret-scan", &trace, "--runs"),
            "belongs to user 65534"
        );
    }
}
