//! A live ferret-io service converted while it runs (`make test-live`).

use ferret_format::SpanFile;
use std::path::{Path, PathBuf};

use crate::util::*;

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

/// Run by `make test-live` (tools/live-test.sh), which runs `ferret-scan --watch --format json
/// --interval 1s --window 3s --count 6` on the trace of a real ferret-io service while it runs,
/// leaving its lines in `FERRET_LIVE_WATCH/watch.jsonl` (and when it started and ended) and the
/// finished trace, with ferret-io's answers, in `FERRET_LIVE_DB`. Each snapshot counts, per
/// function, the spans of the finished trace that ended in its window, but for those ferret-io
/// had not yet flushed (its buffer of 1,000 spans); the windows move with the trace; the six
/// refreshes took their five intervals at least.
#[test]
#[ignore = "needs a live ferret-io trace: run `make test-live`"]
fn the_watch_of_a_live_trace_counts_what_ended_in_each_window() {
    let var = |name: &str| std::env::var(name).expect("set by tools/live-test.sh");
    let db = var("FERRET_LIVE_DB");
    let work = PathBuf::from(var("FERRET_LIVE_WATCH"));
    let read = |name: &str| std::fs::read_to_string(work.join(name)).unwrap();
    let snapshots: Vec<serde_json::Value> = read("watch.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(snapshots.len(), 6, "--count 6");
    let seconds = |name: &str| read(name).trim().parse::<f64>().unwrap();
    assert!(seconds("watch.ended") - seconds("watch.started") >= 5.0);
    // Every span of the finished trace: (name, end).
    let reference = reference(&db);
    let mut ends: Vec<(String, f64)> = Vec::new();
    let mut stack: Vec<&serde_json::Value> = Vec::new();
    for run in reference["runs"].as_object().unwrap().values() {
        stack.extend(run["roots"].as_array().unwrap());
    }
    while let Some(n) = stack.pop() {
        if let Some(d) = n["duration"].as_f64() {
            let end = n["start_time"].as_f64().unwrap() + d;
            ends.push((n["name"].as_str().unwrap().to_string(), end));
        }
        stack.extend(n["children"].as_array().unwrap());
    }
    let mut previous_at = f64::NEG_INFINITY;
    for snap in &snapshots {
        let (at, w) = (
            snap["at"].as_f64().unwrap(),
            snap["window_seconds"].as_f64().unwrap(),
        );
        assert_eq!(w, 3.0);
        assert!(at >= previous_at, "the window follows the trace");
        previous_at = at;
        let mut want: std::collections::HashMap<&str, u64> = Default::default();
        for (name, end) in &ends {
            if *end >= at - w && *end < at {
                *want.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut seen = 0;
        for f in snap["functions"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap();
            let got = f["count"].as_u64().unwrap();
            let finished = want.get(name).copied().unwrap_or(0);
            assert!(
                got <= finished && finished - got <= 1000,
                "{name} at {at}: {got} in the window, {finished} in the finished trace"
            );
            seen += got;
        }
        assert_eq!(snap["spans"].as_u64().unwrap(), seen);
    }
    assert!(
        snapshots.iter().any(|s| s["spans"].as_u64().unwrap() > 0),
        "the watch saw spans"
    );
}
