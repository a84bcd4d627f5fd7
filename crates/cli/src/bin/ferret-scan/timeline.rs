//! `--timeline`: the chosen run (or window) cut into time buckets by span start, as a table
//! (with sparklines on a terminal), JSON or CSV.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use ferret_format::SpanFile;
use ferret_scan::engine::AfterChunk;
use ferret_scan::timeline::{scan_timeline, Buckets, TimelineReport};
use ferret_scan::ScanOptions;
use memmap2::Mmap;

use crate::select::Selection;
use crate::{local_time, Args, Format};

/// Scans the chosen run into buckets and prints them.
pub fn write_timeline(
    args: &Args,
    path: &Path,
    file: &SpanFile<Mmap>,
    chosen: Selection,
    started: Instant,
    release: AfterChunk,
) -> anyhow::Result<()> {
    let ctx = || path.display().to_string();
    let report = timeline(args, file, chosen, release).with_context(ctx)?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Table => {
            let spans: u64 = report.buckets.iter().map(|b| b.spans).sum();
            writeln!(
                out,
                "{} · run {} · {spans} spans in {} buckets of {} s · {:.3} s",
                path.display(),
                report.run_id,
                report.buckets.len(),
                report.bucket_seconds,
                started.elapsed().as_secs_f64()
            )?;
            report.write_table(&mut out, local_time, std::io::stdout().is_terminal())?;
        }
        Format::Json => report.write_json(&mut out)?,
        Format::Csv => report.write_csv(&mut out)?,
    }
    Ok(out.flush()?)
}

/// The timeline of the chosen run over its starts (within --since/--until).
pub fn timeline(
    args: &Args,
    file: &SpanFile<Mmap>,
    chosen: Selection,
    release: AfterChunk,
) -> anyhow::Result<TimelineReport> {
    let run = chosen.runs.iter().find(|r| r.run == chosen.run);
    let (first, last) = run.map_or((0.0, 0.0), |r| (r.first_start, r.last_start));
    let from = chosen.filter.since.map_or(first, |t| t.max(first));
    let to = chosen.filter.until.map_or(last, |t| t.min(last)).max(from);
    let buckets = Buckets::over(from, to, args.bucket.map(|d| d.as_secs_f64()))?;
    let opts = ScanOptions {
        verify: !args.no_verify,
        filter: chosen.filter,
        ..ScanOptions::default()
    };
    let stats = scan_timeline(file, chosen.run, &opts, &buckets, release)?;
    let run_id = file.string(chosen.run).unwrap_or_default().to_string();
    Ok(TimelineReport::build(run_id, &stats, &buckets))
}
