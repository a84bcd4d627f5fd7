//! `--baseline`: the chosen run compared with a baseline run (of the same file, or of another
//! trace or record file), function by function, with a verdict per function, an optional
//! differential flame graph, and `--fail-on-regression`'s exit code 3.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use ferret_report::comparison::{CompareOptions, ComparisonReport, Side};
use ferret_report::flame::{write_differential_flamegraph, FoldedLine};
use ferret_scan::stats::ChunkStats;
use ferret_scan::{scan_stats, ScanError, ScanOptions};

use crate::{asking, flame, html, select, source, Args, Format};

/// One side's run, scanned: what the comparison needs once the file is closed.
struct ScannedRun {
    /// The file it came from, as given.
    path: std::path::PathBuf,
    run_id: String,
    stats: ChunkStats,
    /// The file's names, by name id.
    names: Vec<String>,
    /// Its folded stacks, for `--flamegraph`.
    stacks: Option<Vec<FoldedLine>>,
}

/// Where the baseline comes from.
enum Baseline<'a> {
    /// A run of the target's file.
    RunOfTarget(&'a str),
    /// Another trace or record file, and the run in it (`None`: its default run).
    OtherFile(&'a Path, Option<&'a str>),
}

/// Scans both runs, prints the comparison, draws the differential flame graph, writes the
/// page, and fails with exit code 3 when `--fail-on-regression` finds a regression.
pub fn compare(args: &Args, base: &str, started: Instant) -> anyhow::Result<()> {
    let options = options(args)?;
    let baseline = baseline(args, base)?;
    let target_file = source::record_file(&args.file, &args.namespace, !args.no_sidecar)?;
    let target_path = (args.file.as_path(), target_file.path.as_path());
    let base = match baseline {
        Baseline::RunOfTarget(run) => {
            scan_side(args, target_path, Some(run), started).map_err(|e| unknown_run(e, run))?
        }
        Baseline::OtherFile(path, run) => {
            let base_file = source::record_file(path, &args.namespace, !args.no_sidecar)?;
            scan_side(args, (path, &base_file.path), run, started)?
        }
    };
    let target = scan_side(args, target_path, args.run.as_deref(), started)?;
    let report = build_report(&base, &target, options, args);
    // The differential flame graph, drawn once for `--flamegraph` and the page.
    let mut svg = Vec::new();
    if let (Some(b), Some(t)) = (&base.stacks, &target.stacks) {
        let title = format!("ferret · run {} against {}", target.run_id, base.run_id);
        write_differential_flamegraph(b, t, &title, &mut svg)?;
    }
    if let Some(path) = &args.flamegraph {
        flame::save(path, &svg)?;
    }
    if let Some(page) = &args.html {
        let svg = String::from_utf8(svg).context("the flame graph is not UTF-8")?;
        let path = &target_file.path;
        source::with_span_file(path, false, |file| {
            asking(args, (path, file), started, |q| {
                let chosen = select::select(q, args.run.as_deref(), true)?;
                let comparison = Some((&report, svg.clone()));
                html::write_html(q, (page, None), chosen, comparison)
            })
        })?;
    }
    print(&report, (&base, &target), args, started)?;
    match args.fail_on_regression {
        Some(pct) => gate(&report, pct),
        None => Ok(()),
    }
}

/// `--min-effect` and `--fdr` as fractions, checked.
fn options(args: &Args) -> anyhow::Result<CompareOptions> {
    let fdr_ok = args.fdr > 0.0 && args.fdr <= 100.0;
    if !fdr_ok || args.min_effect.is_nan() || args.min_effect < 0.0 {
        anyhow::bail!(
            "--fdr must lie in (0, 100] and --min-effect be 0 or more (both in percent); got {} and {}",
            args.fdr,
            args.min_effect
        );
    }
    Ok(CompareOptions {
        min_effect: args.min_effect / 100.0,
        fdr: args.fdr / 100.0,
    })
}

/// What `--baseline BASE` names: a file when one is there, else a run of the target's file.
fn baseline<'a>(args: &'a Args, base: &'a str) -> anyhow::Result<Baseline<'a>> {
    match Path::new(base) {
        path if path.exists() => Ok(Baseline::OtherFile(path, args.baseline_run.as_deref())),
        _ if args.baseline_run.is_some() => anyhow::bail!(
            "--baseline {base}: no such file (--baseline-run picks a run in another file; to compare two runs of {}, give --baseline RUN)",
            args.file.display()
        ),
        _ => Ok(Baseline::RunOfTarget(base)),
    }
}

/// A baseline run the target's file does not have is a baseline that is neither a file nor a
/// run: said so, with the runs it comes closest to. Other errors pass unchanged.
fn unknown_run(e: anyhow::Error, run: &str) -> anyhow::Error {
    let unknown = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ScanError>(),
            Some(ScanError::UnknownRun { .. } | ScanError::AmbiguousRun { .. })
        )
    });
    match unknown {
        true => e.context(format!("--baseline {run} is neither a file nor a run")),
        false => e,
    }
}

/// The comparison as a table (with both sides named), JSON or CSV.
fn print(
    report: &ComparisonReport,
    (base, target): (&ScannedRun, &ScannedRun),
    args: &Args,
    started: Instant,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Table => {
            writeln!(
                out,
                "base {} · run {} · {} spans  →  target {} · run {} · {} spans · {:.3} s",
                base.path.display(),
                report.base_run_id,
                report.base_spans,
                target.path.display(),
                report.target_run_id,
                report.target_spans,
                started.elapsed().as_secs_f64()
            )?;
            report.write_table(&mut out, std::io::stdout().is_terminal())?;
        }
        Format::Json => report.write_json(&mut out)?,
        Format::Csv => report.write_csv(&mut out)?,
    }
    Ok(out.flush()?)
}

/// The comparison of the two scanned runs.
fn build_report(
    base: &ScannedRun,
    target: &ScannedRun,
    options: CompareOptions,
    args: &Args,
) -> ComparisonReport {
    let base_name = |id: u32| base.names.get(id as usize).cloned().unwrap_or_default();
    let target_name = |id: u32| target.names.get(id as usize).cloned().unwrap_or_default();
    let base_side = Side {
        run_id: base.run_id.clone(),
        stats: &base.stats,
        name_of: &base_name,
    };
    let target_side = Side {
        run_id: target.run_id.clone(),
        stats: &target.stats,
        name_of: &target_name,
    };
    ComparisonReport::build(base_side, target_side, options, &args.sort, args.limit)
}

/// Scans `run` (`None`: the default run) of the record file at `path`, the record file of
/// `given`, with the filters of `args`, relative times counted from that run's end.
fn scan_side(
    args: &Args,
    (given, path): (&Path, &Path),
    run: Option<&str>,
    started: Instant,
) -> anyhow::Result<ScannedRun> {
    source::with_span_file(path, false, |file| {
        asking(args, (path, file), started, |q| {
            let chosen = select::select(q, run, false)?;
            let run = chosen.run;
            let opts = ScanOptions {
                verify: !args.no_verify,
                filter: chosen.filter,
                ..ScanOptions::default()
            };
            let stats = scan_stats(file, run, &opts, q.release)
                .with_context(|| path.display().to_string())?;
            // Exact: a differential graph colours by the change of each stack.
            let differential = args.flamegraph.is_some() || args.html.is_some();
            let stacks = match differential {
                true => Some(flame::stacks(q, run, false)?),
                false => None,
            };
            let names = (0..file.name_count() as u32)
                .map(|id| file.name(id).unwrap_or_default().to_string())
                .collect();
            Ok(ScannedRun {
                path: given.to_path_buf(),
                run_id: file.string(run).unwrap_or_default().to_string(),
                stats,
                names,
                stacks,
            })
        })
    })
}

/// `--fail-on-regression PCT`: an error with exit code 3 naming the functions called slower by
/// more than PCT percent.
fn gate(report: &ComparisonReport, pct: f64) -> anyhow::Result<()> {
    let slower = report.regressions(pct / 100.0);
    if slower.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = slower
        .iter()
        .take(5)
        .map(|f| {
            let shift = f.shift.map_or(0.0, |s| s.estimate * 100.0);
            format!("{} ({shift:+.1}%)", f.name)
        })
        .collect();
    let more = match slower.len() {
        n if n > 5 => format!(" and {} more", n - 5),
        _ => String::new(),
    };
    Err(ferret_cli::ExitWith {
        code: 3,
        message: format!(
            "regression: {} function(s) slower by more than {pct}%: {}{more}",
            slower.len(),
            named.join(", ")
        ),
    }
    .into())
}
