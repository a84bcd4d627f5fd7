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
