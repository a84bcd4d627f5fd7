//! `--to-parquet`: the chosen runs' spans as a Parquet file, with a summary line on stderr.

use std::path::Path;

use ferret_parquet::{export_parquet, ExportError, ExportOptions};
use ferret_scan::{RunSummary, ScanError};

use crate::select::Selection;
use crate::Asked;

/// Exports the chosen run (every run with `--all-runs`) to `output`.
pub fn write_parquet(q: &Asked, output: &Path, chosen: Selection) -> anyhow::Result<()> {
    let runs: Vec<RunSummary> = chosen
        .runs
        .into_iter()
        .filter(|r| q.args.all_runs || r.run == chosen.run)
        .collect();
    let options = ExportOptions {
        filter: chosen.filter,
        ..ExportOptions::default()
    };
    let done = export_parquet(q.file, &runs, &options, output, q.release).map_err(|e| match e {
        // Damage is the input's: name it (output errors name the output already).
        ExportError::Format(_)
        | ExportError::Scan(ScanError::Format(_) | ScanError::ParentLoop { .. }) => {
            anyhow::Error::new(e).context(q.path.display().to_string())
        }
        other => other.into(),
    })?;
    let secs = q.started.elapsed().as_secs_f64();
    eprintln!(
        "ferret-scan: wrote {} spans of {} run(s) to {} ({} row groups, {:.1} MB) in {secs:.2} s ({:.2}M spans/s)",
        done.rows,
        done.runs,
        output.display(),
        done.row_groups,
        done.bytes as f64 / 1e6,
        done.rows as f64 / secs.max(1e-9) / 1e6,
    );
    Ok(())
}
