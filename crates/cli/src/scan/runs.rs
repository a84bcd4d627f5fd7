//! `--runs`: the runs of the files, each file's default one marked, as a table, JSON or CSV
//! (with several files, each run with its file: a column, a `file` field).

use std::io::Write;

use anyhow::Context;
use ferret_scan::{default_run, scan_runs, RunSummary, ScanError, ScanOptions};

use crate::scan::source::Opened;
use crate::scan::{local_time, Asked, Format};

/// One run as listed: its file, its id, its summary and whether it is the file's default.
struct Listed<'a> {
    file: &'a Opened,
    id: String,
    run: RunSummary,
    default: bool,
}

/// Reads the runs of every file and lists them.
pub fn list_runs(q: &Asked) -> anyhow::Result<()> {
    let opts = ScanOptions {
        verify: !q.args.no_verify,
        ..ScanOptions::default()
    };
    let mut listed = Vec::new();
    for f in q.files {
        let runs = scan_runs(&f.file, &opts, &f.release()).with_context(|| f.ctx())?;
        let default = match default_run(&f.file) {
            Ok(run) => Some(run),
            Err(ScanError::Empty) => None,
            Err(e) => return Err(anyhow::Error::new(e).context(f.ctx())),
        };
        listed.extend(runs.into_iter().map(|run| Listed {
            file: f,
            id: f.file.string(run.run).unwrap_or_default().to_string(),
            default: Some(run.run) == default,
            run,
        }));
    }
    let mut out = q.args.sink.out();
    write_runs(&listed, q.files.len() > 1, q.args.format, &mut out)?;
    Ok(out.flush()?)
}

fn write_runs(
    listed: &[Listed],
    with_file: bool,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let given = |l: &Listed| l.file.given.display().to_string();
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = listed
                .iter()
                .map(|l| {
                    let r = &l.run;
                    let mut row = serde_json::json!({
                        "run_id": l.id, "spans": r.spans, "errors": r.errors,
                        "first_start": r.first_start, "last_start": r.last_start,
                        "wall_seconds": r.last_end - r.first_start, "default": l.default,
                    });
                    if with_file {
                        row["file"] = given(l).into();
                    }
                    row
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            let header = [
                "run_id",
                "spans",
                "errors",
                "first_start",
                "last_start",
                "wall_seconds",
                "default",
            ];
            let file_column = with_file.then_some("file");
            w.write_record(header.into_iter().chain(file_column))?;
            for l in listed {
                let r = &l.run;
                let cells = [
                    l.id.clone(),
                    r.spans.to_string(),
                    r.errors.to_string(),
                    r.first_start.to_string(),
                    r.last_start.to_string(),
                    (r.last_end - r.first_start).to_string(),
                    l.default.to_string(),
                ];
                w.write_record(cells.into_iter().chain(with_file.then(|| given(l))))?;
            }
            w.flush()?;
        }
        Format::Table => {
            for l in listed {
                let r = &l.run;
                let file = match with_file {
                    true => format!("  {}", given(l)),
                    false => String::new(),
                };
                writeln!(
                    out,
                    "{} {}  {} spans  {} errors  {} .. {}  {:.3} s{file}",
                    if l.default { "*" } else { " " },
                    l.id,
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
