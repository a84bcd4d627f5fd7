//! `--watch`: the population live. Each refresh adds the traces' new rows (each sidecar's
//! append, so a replaced trace gets its sidecar made anew), opens the record files again and
//! scans, per function, the last `--window` of span ends against the window before: only the
//! segments whose run directory reaches the window are read. On a terminal the view is drawn
//! full-screen (`watch_view`); otherwise, or with `--format json`, each refresh is one JSON
//! line.

use std::io::Write;
use std::time::{Duration, Instant};

use ferret_report::live::LiveSnapshot;
use ferret_scan::Filter;

use crate::scan::select::{self, Selection};
use crate::scan::source;
use crate::scan::{runs_asked, stats, watch_view, Args, Asked, Format};

/// What one refresh found.
pub struct Refresh {
    /// Each function over the window, against the window before.
    pub snapshot: LiveSnapshot,
    /// What the population is (files, runs).
    pub population: String,
    /// The population's latest span end (Unix seconds): where the window ends.
    pub latest_end: f64,
    /// What the refresh cost, from adding the new rows to the snapshot.
    pub cost: Duration,
    /// What bringing the record files up to date noted (a sidecar made anew, bad rows).
    pub notes: Vec<String>,
}

/// Watches until `--count` refreshes, `q`, Ctrl-C or SIGTERM. The first refresh's failure
/// (a missing file, a file of no spans) ends the watch; later ones are shown and retried.
pub fn watch(args: &Args) -> anyhow::Result<()> {
    let first = refresh(args, !args.quiet)?;
    if args.format == Format::Json || !args.sink.is_terminal() {
        print_lines(args, first)
    } else {
        watch_view::show(args, first)
    }
}

/// Brings the record files up to date (a progress bar on a terminal when `progress`) and takes
/// the window's snapshot.
pub fn refresh(args: &Args, progress: bool) -> anyhow::Result<Refresh> {
    let started = Instant::now();
    let records = source::record_files(&args.files, &args.namespace, !args.no_sidecar, progress)?;
    let notes: Vec<String> = records.iter().flat_map(|r| r.notes.clone()).collect();
    source::with_span_files(&records, false, |files| {
        let q = Asked {
            args,
            files,
            started,
        };
        let (snapshot, population, latest_end) = window_snapshot(&q, args.window)?;
        Ok(Refresh {
            snapshot,
            population,
            latest_end,
            cost: started.elapsed(),
            notes: notes.clone(),
        })
    })
}

/// Each function over `[at - window, at)` of span ends, `at` just past the population's latest
/// end, against the window before; the population's description; its latest end.
fn window_snapshot(q: &Asked, window: Duration) -> anyhow::Result<(LiveSnapshot, String, f64)> {
    let chosen = select::select(q, runs_asked(q.args), (None, None), true)?;
    let latest = chosen.last_end();
    let at = latest.next_up();
    let w = window.as_secs_f64();
    let names = stats::name_union(q);
    let ended = |from: f64, to: f64| Selection {
        filter: Filter {
            ended: Some((from, to)),
            ..chosen.filter.clone()
        },
        ..chosen.clone()
    };
    let current = stats::merged(q, &ended(at - w, at), &chosen.members, &names)?;
    let previous = stats::merged(q, &ended(at - 2.0 * w, at - w), &chosen.members, &names)?;
    let name_of = |id: u32| names.0.name(id).to_string();
    let snapshot = LiveSnapshot::build((at, w), &current, &previous, &name_of);
    Ok((snapshot, chosen.describe(q), latest))
}

/// Prints each refresh as one JSON line (the snapshot, and what the refresh cost in
/// `refresh_seconds`), at fixed deadlines (a slow refresh does not shift the ones after it); a
/// failed refresh is said on stderr and retried at the next.
fn print_lines(args: &Args, first: Refresh) -> anyhow::Result<()> {
    let mut out = args.sink.out();
    let mut next = Instant::now();
    let mut current = Ok(first);
    let mut done = 0u64;
    loop {
        match &current {
            Ok(r) => {
                for note in &r.notes {
                    eprintln!("ferret-scan: {note}");
                }
                let mut line = r.snapshot.to_json();
                line["refresh_seconds"] = r.cost.as_secs_f64().into();
                writeln!(out, "{line}")?;
                out.flush()?;
            }
            Err(e) => eprintln!("ferret-scan: warning: {e:#} (retrying at the next refresh)"),
        }
        done += 1;
        if args.count.is_some_and(|count| done >= count) {
            return Ok(());
        }
        next += args.interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        current = refresh(args, false);
    }
}
