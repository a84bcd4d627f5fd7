//! `--timeline`: the chosen run (or window) cut into time buckets by span start, as a table
//! (with sparklines on a terminal), JSON or CSV.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use ferret_report::timeline::TimelineReport;
use ferret_scan::buckets::{scan_timeline, Buckets};
use ferret_scan::ScanOptions;

use crate::select::Selection;
use crate::{local_time, Asked, Format};

/// Scans the chosen run into buckets and prints them.
pub fn write_timeline(q: &Asked, chosen: Selection) -> anyhow::Result<()> {
    let report = timeline(q, chosen)?;
    let mut out = std::io::stdout().lock();
    match q.args.format {
        Format::Table => {
            let spans: u64 = report.buckets.iter().map(|b| b.spans).sum();
            writeln!(
                out,
                "{} · run {} · {spans} spans in {} buckets of {} s · {:.3} s",
                q.path.display(),
                report.run_id,
                report.buckets.len(),
                report.bucket_seconds,
                q.started.elapsed().as_secs_f64()
            )?;
            report.write_table(&mut out, local_time, std::io::stdout().is_terminal())?;
        }
        Format::Json => report.write_json(&mut out)?,
        Format::Csv => report.write_csv(&mut out)?,
    }
    Ok(out.flush()?)
}

/// The timeline of the chosen run over its starts (within --since/--until).
pub fn timeline(q: &Asked, chosen: Selection) -> anyhow::Result<TimelineReport> {
    let ctx = || q.path.display().to_string();
    let run = chosen.runs.iter().find(|r| r.run == chosen.run);
    let (first, last) = run.map_or((0.0, 0.0), |r| (r.first_start, r.last_start));
    let from = chosen.filter.since.map_or(first, |t| t.max(first));
    let to = chosen.filter.until.map_or(last, |t| t.min(last)).max(from);
    let buckets = Buckets::over(from, to, q.args.bucket).with_context(ctx)?;
    let opts = ScanOptions {
        verify: !q.args.no_verify,
        filter: chosen.filter,
        ..ScanOptions::default()
    };
    let stats = scan_timeline(q.file, chosen.run, &opts, &buckets, q.release).with_context(ctx)?;
    let run_id = q.file.string(chosen.run).unwrap_or_default().to_string();
    Ok(TimelineReport::build(run_id, &stats, &buckets))
}
