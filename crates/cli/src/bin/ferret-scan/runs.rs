//! `--runs`: the runs of a file, the default one marked, as a table, JSON or CSV.

use std::io::Write;

use anyhow::Context;
use ferret_format::SpanFile;
use ferret_scan::{default_run, scan_runs, RunSummary, ScanOptions};
use memmap2::Mmap;

use crate::{local_time, Asked, Format};

/// Reads the runs of the file and lists them.
pub fn list_runs(q: &Asked) -> anyhow::Result<()> {
    let ctx = || q.path.display().to_string();
    let opts = ScanOptions {
        verify: !q.args.no_verify,
        ..ScanOptions::default()
    };
    let runs = scan_runs(q.file, &opts, q.release).with_context(ctx)?;
    let default = default_run(q.file).with_context(ctx)?;
    let mut out = std::io::stdout().lock();
    write_runs(q.file, &runs, default, q.args.format, &mut out)?;
    Ok(out.flush()?)
}

fn write_runs(
    file: &SpanFile<Mmap>,
    runs: &[RunSummary],
    default: u32,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let id = |r: &RunSummary| file.string(r.run).unwrap_or_default().to_string();
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "run_id": id(r), "spans": r.spans, "errors": r.errors,
                        "first_start": r.first_start, "last_start": r.last_start,
                        "wall_seconds": r.last_end - r.first_start, "default": r.run == default,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "run_id",
                "spans",
                "errors",
                "first_start",
                "last_start",
                "wall_seconds",
                "default",
            ])?;
            for r in runs {
                w.write_record([
                    id(r),
                    r.spans.to_string(),
                    r.errors.to_string(),
                    r.first_start.to_string(),
                    r.last_start.to_string(),
                    (r.last_end - r.first_start).to_string(),
                    (r.run == default).to_string(),
                ])?;
            }
            w.flush()?;
        }
        Format::Table => {
            for r in runs {
                writeln!(
                    out,
                    "{} {}  {} spans  {} errors  {} .. {}  {:.3} s",
                    if r.run == default { "*" } else { " " },
                    id(r),
                    r.spans,
                    r.errors,
                    local_time(r.first_start),
                    local_time(r.last_start),
                    r.last_end - r.first_start
                )?;
            }
        }
    }
    Ok(())
}
