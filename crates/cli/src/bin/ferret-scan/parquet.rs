//! `--to-parquet`: the population's spans as one Parquet file (file by file in the order given,
//! each file's runs by run id), with a summary line on stderr.

use std::path::Path;

use ferret_parquet::{ExportError, ExportOptions, ParquetExport};
use ferret_scan::{RunSummary, ScanError};

use crate::select::Selection;
use crate::Asked;

/// Exports the chosen runs to `output`.
pub fn write_parquet(q: &Asked, output: &Path, chosen: Selection) -> anyhow::Result<()> {
    let options = ExportOptions {
        filter: chosen.filter.clone(),
        ..ExportOptions::default()
    };
    let mut export = ParquetExport::create(output, &options)?;
    for file in chosen.files() {
        let f = &q.files[file];
        let runs: Vec<RunSummary> = chosen.runs[file]
            .iter()
            .filter(|r| chosen.runs_of(file).any(|run| run == r.run))
            .copied()
            .collect();
        export
            .add_file(&f.file, &runs, &f.release())
            .map_err(|e| match e {
                // Damage is the input's: name it (output errors name the output already).
                ExportError::Format(_)
                | ExportError::Scan(ScanError::Format(_) | ScanError::ParentLoop { .. }) => {
                    anyhow::Error::new(e).context(f.ctx())
                }
                other => other.into(),
            })?;
    }
    let done = export.finish()?;
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
