//! The totals the progress callback reports: what the bar shows as "rows done of the estimated
//! total". A database's total comes from SQLite before the first row; a JSON-lines file's from its
//! size and the bytes per row read so far.

use std::path::{Path, PathBuf};

use ferret_convert::{convert, ConvertOptions, Summary};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/fixtures")
        .join(name)
}

/// Converts `input` into `output` as a terminal would (rows estimated), with every
/// `(done, total)` the callback was given.
fn converted(input: &Path, output: &Path, append: bool) -> (Vec<(u64, u64)>, Summary) {
    let mut opts = ConvertOptions::new(input, output);
    opts.count_rows = true;
    opts.append = append;
    opts.force = !append;
    opts.commit_every = 1000;
    let mut calls = Vec::new();
    let summary = convert(&opts, &mut |done, total| calls.push((done, total))).unwrap();
    assert_eq!(summary.rows_skipped, 0, "{:?}", summary.bad_rows);
    (calls, summary)
}

/// Every total is `want`, and the last call has every row read.
fn assert_totals(calls: &[(u64, u64)], summary: &Summary, want: u64) {
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|&(_, total)| total == want), "{calls:?}");
    assert_eq!(calls.last().unwrap().0, summary.rows_read);
}

#[test]
fn a_databases_total_is_its_rows_with_or_without_other_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ferret");
    // generated1 holds only ferret's namespace (the rowid range bounds it); beaver1 also has
    // another namespace (its rows are counted).
    for name in ["generated1.db", "beaver1.db"] {
        let (calls, summary) = converted(&fixture(name), &out, false);
        assert_totals(&calls, &summary, summary.rows_read);
    }
}

#[test]
fn a_database_with_deleted_rows_gives_an_upper_bound() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("holes.db");
    std::fs::copy(fixture("generated1.db"), &db).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("DELETE FROM beaver_logs WHERE rowid IN (10, 11, 12)", [])
        .unwrap();
    drop(conn);
    let (calls, summary) = converted(&db, &dir.path().join("out.ferret"), false);
    assert_totals(&calls, &summary, summary.rows_read + 3);
}

/// `n` span lines of varying length (names and tags of different sizes).
fn lines(first: u64, n: u64) -> String {
    (first..first + n)
        .map(|i| {
            format!(
                "{{\"span_id\":\"{i:032x}\",\"parent_id\":null,\"run_id\":\"r\",\"name\":\"{}\",\
                 \"start_time\":{},\"end_time\":null,\"duration\":0.5,\"tags\":{{\"k\":\"{}\"}},\
                 \"status\":\"ok\"}}\n",
                "f".repeat(1 + (i % 7) as usize),
                1.7e9 + i as f64,
                "v".repeat((i % 13) as usize),
            )
        })
        .collect()
}

#[test]
fn a_json_lines_total_is_estimated_from_the_bytes_and_ends_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in.jsonl"), dir.path().join("out.ferret"));
    std::fs::write(&input, lines(0, 20_000)).unwrap();
    let (calls, summary) = converted(&input, &out, false);
    assert_eq!(summary.rows_read, 20_000);
    assert!(calls.len() > 2, "{calls:?}");
    for &(done, total) in &calls {
        assert!(total >= done, "{calls:?}");
        // Lines alike in length: the first batch's bytes per row already say the total.
        assert!(total.abs_diff(20_000) <= 200, "{calls:?}");
    }
    assert_eq!(*calls.last().unwrap(), (20_000, 20_000));

    // An append estimates only the lines after the ones already converted.
    let mut grown = std::fs::read_to_string(&input).unwrap();
    grown.push_str(&lines(20_000, 5_000));
    std::fs::write(&input, grown).unwrap();
    let (calls, summary) = converted(&input, &out, true);
    assert_eq!(summary.rows_read, 5_000);
    assert!(
        calls.iter().all(|&(_, total)| total.abs_diff(5_000) <= 50),
        "{calls:?}"
    );
    assert_eq!(*calls.last().unwrap(), (5_000, 5_000));
}
