//! `--to-parquet`: the population's spans as one Parquet file (file by file in the order given,
//! each file's runs by run id), with a summary line on stderr.

use std::path::Path;

use ferret_parquet::{ExportError, ExportOptions, ParquetExport};
use ferret_scan::ScanError;

use crate::scan::select::Selection;
use crate::scan::source::Opened;
use crate::scan::Asked;

/// Exports the chosen runs to `output`.
pub fn write_parquet(q: &Asked, output: &Path, chosen: Selection) -> anyhow::Result<()> {
    let options = ExportOptions {
        filter: chosen.filter.clone(),
        ..ExportOptions::default()
    };
    let mut export = ParquetExport::create(output, &options)?;
    for file in chosen.files() {
        let f = &q.files[file];
        export
            .add_file(&f.file, &chosen.chosen_runs(file), &f.release())
            .map_err(|e| in_file(e, f))?;
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

/// An export's error about `f`: damage is the input's, so it names the file (errors about the
/// output name the output already).
pub fn in_file(e: ExportError, f: &Opened) -> anyhow::Error {
    match e {
        ExportError::Format(_)
        | ExportError::Scan(ScanError::Format(_) | ScanError::ParentLoop { .. }) => {
            anyhow::Error::new(e).context(f.ctx())
        }
        other => other.into(),
    }
}
