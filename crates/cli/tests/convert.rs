//! `ferret-convert`: both layouts and JSON lines, bad rows, appends, live databases, kills,
//! deep chains, and linking equal to ferret-io's trees.

use ferret_format::SpanFile;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use crate::util::*;

#[test]
fn links_equal_ferret_io_trees_on_both_layouts() {
    for db in ["beaver1.db", "beaver2.db", "generated1.db"] {
        for_each_way(db, check_links_against_ferret);
    }
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
