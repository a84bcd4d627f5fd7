//! The default answer: per-function statistics of the chosen run, as ferret's table, JSON or
//! CSV.

use std::io::Write;

use anyhow::Context;
use ferret_report::StatsReport;
use ferret_scan::{scan_stats, ScanOptions};

use crate::select::Selection;
use crate::{Asked, Format};

/// The chosen run's functions, sorted by `--sort`, at most `limit` (0: all).
pub fn report(q: &Asked, chosen: Selection, limit: usize) -> anyhow::Result<StatsReport> {
    let opts = ScanOptions {
        verify: !q.args.no_verify,
        filter: chosen.filter,
        ..ScanOptions::default()
    };
    let stats = scan_stats(q.file, chosen.run, &opts, q.release)
        .with_context(|| q.path.display().to_string())?;
    let run_id = q.file.string(chosen.run).unwrap_or_default().to_string();
    let name_of = |id| q.file.name(id).unwrap_or_default().to_string();
    Ok(StatsReport::build(
        run_id,
        &stats,
        name_of,
        &q.args.sort,
        limit,
    ))
}

/// Scans the chosen run and prints its functions.
pub fn write_stats(q: &Asked, chosen: Selection) -> anyhow::Result<()> {
    let report = report(q, chosen, q.args.limit)?;
    let mut out = std::io::stdout().lock();
    match q.args.format {
        Format::Table => {
            writeln!(
                out,
                "{} · run {} · {} spans of {} · {:.3} s",
                q.path.display(),
                report.run_id,
                report.spans,
                q.file.record_count(),
                q.started.elapsed().as_secs_f64()
            )?;
            report.write_table(&mut out)?;
        }
        Format::Json => report.write_json(&mut out)?,
        Format::Csv => report.write_csv(&mut out)?,
    }
    Ok(out.flush()?)
}
