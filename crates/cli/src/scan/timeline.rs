//! `--timeline`: the population (or its window) cut into time buckets by span start, as a table
//! (with sparklines on a terminal), JSON or CSV.

use std::io::Write;

use anyhow::Context;
use ferret_report::timeline::TimelineReport;
use ferret_scan::buckets::{scan_timeline, Buckets};
use ferret_scan::stats::ChunkStats;
use ferret_scan::ScanOptions;

use crate::scan::select::Selection;
use crate::scan::{local_time, print_json, Asked, Format};

/// Scans the population into buckets and prints them.
pub fn write_timeline(q: &Asked, chosen: Selection) -> anyhow::Result<()> {
    let report = timeline(q, &chosen)?;
    let mut out = q.args.sink.out();
    match q.args.format {
        Format::Table => {
            let spans: u64 = report.buckets.iter().map(|b| b.spans).sum();
            writeln!(
                out,
                "{} · {spans} spans in {} buckets of {} s · {:.3} s",
                chosen.describe(q),
                report.buckets.len(),
                report.bucket_seconds,
                q.started.elapsed().as_secs_f64()
            )?;
            report.write_table(&mut out, local_time, q.args.sink.is_terminal())?;
        }
        Format::Json => print_json(&chosen.with_population(q, report.to_json()), &mut out)?,
        Format::Csv => report.write_csv(&mut out)?,
    }
    Ok(out.flush()?)
}

/// The timeline of the population over its runs' starts (within --since/--until): one grid of
/// buckets, every run's spans counted into it.
pub fn timeline(q: &Asked, chosen: &Selection) -> anyhow::Result<TimelineReport> {
    let summaries: Vec<_> = chosen
        .members
        .iter()
        .filter_map(|&m| chosen.summary(m))
        .collect();
    let first = summaries
        .iter()
        .map(|r| r.first_start)
        .fold(f64::INFINITY, f64::min);
    let last = summaries
        .iter()
        .map(|r| r.last_start)
        .fold(f64::NEG_INFINITY, f64::max);
    let (first, last) = if first <= last {
        (first, last)
    } else {
        (0.0, 0.0)
    };
    let from = chosen.filter.since.map_or(first, |t| t.max(first));
    let to = chosen.filter.until.map_or(last, |t| t.min(last)).max(from);
    let buckets =
        Buckets::over(from, to, q.args.bucket).with_context(|| match chosen.members[..] {
            [m] => q.files[m.file].path.display().to_string(),
            _ => chosen.describe(q),
        })?;
    let opts = ScanOptions {
        verify: !q.args.no_verify,
        filter: chosen.filter.clone(),
        ..ScanOptions::default()
    };
    let mut stats = ChunkStats::new(0);
    for &m in &chosen.members {
        let f = &q.files[m.file];
        let run = scan_timeline(&f.file, m.run, &opts, &buckets, &f.release())
            .with_context(|| f.ctx())?;
        stats = stats.merge(run);
    }
    let run_id = chosen.one_run_id(q).unwrap_or_default();
    Ok(TimelineReport::build(run_id, &stats, &buckets))
}
