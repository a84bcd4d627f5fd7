//! The default answer: per-function statistics of the chosen run, as ferret's table, JSON or
//! CSV.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use ferret_format::SpanFile;
use ferret_scan::engine::AfterChunk;
use ferret_scan::{scan_stats, ScanOptions, StatsReport};
use memmap2::Mmap;

use crate::select::Selection;
use crate::{Args, Format};

/// Scans the chosen run and prints its functions.
pub fn write_stats(
    args: &Args,
    path: &Path,
    file: &SpanFile<Mmap>,
    chosen: Selection,
    started: Instant,
    release: AfterChunk,
) -> anyhow::Result<()> {
    let opts = ScanOptions {
        verify: !args.no_verify,
        filter: chosen.filter,
        ..ScanOptions::default()
    };
    let stats =
        scan_stats(file, chosen.run, &opts, release).with_context(|| path.display().to_string())?;
    let run_id = file.string(chosen.run).unwrap_or_default().to_string();
    let name_of = |id| file.name(id).unwrap_or_default().to_string();
    let report = StatsReport::build(run_id, &stats, name_of, &args.sort, args.limit);
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Table => {
            writeln!(
                out,
                "{} · run {} · {} spans of {} · {:.3} s",
                path.display(),
                report.run_id,
                report.spans,
                file.record_count(),
                started.elapsed().as_secs_f64()
            )?;
            report.write_table(&mut out)?;
        }
        Format::Json => report.write_json(&mut out)?,
        Format::Csv => report.write_csv(&mut out)?,
    }
    Ok(out.flush()?)
}
