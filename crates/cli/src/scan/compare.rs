//! A comparison: the population (the files, runs and window asked for) against a baseline
//! (other runs of the same files, another trace or record file, or the same population in
//! another window), function by function, with a verdict per function, an optional
//! differential flame graph, and `--fail-on-regression`'s exit code 3.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use ferret_report::comparison::{CompareOptions, ComparisonReport, Side};
use ferret_report::flame::{write_differential_flamegraph, FoldedLine};
use ferret_scan::stats::ChunkStats;
use ferret_scan::ScanError;
use serde_json::Value;

use crate::scan::select::{self, Runs};
use crate::scan::source::{self, RecordFile};
use crate::scan::{asking, flame, html, print_json, runs_asked, stats, window, Args, Format};

/// One side, scanned: what the comparison needs once its files are closed.
struct ScannedSide {
    /// What the side is, for the header: `FILE · run ID`, or the population's size.
    label: String,
    /// The run id of a one-run side; the label otherwise.
    run_id: String,
    /// What JSON says the side is.
    population: Value,
    /// True when the side is one run.
    one_run: bool,
    stats: ChunkStats,
    /// The side's names (the union of its files'), by name id.
    names: Vec<String>,
    /// Its folded stacks, for `--flamegraph` and the page.
    stacks: Option<Vec<FoldedLine>>,
}

/// Where the baseline comes from.
enum Baseline<'a> {
    /// Runs of the files given: `--baseline RUN`, or without `--baseline` the same runs (in the
    /// baseline's window).
    SameFiles(Runs<'a>),
    /// Another trace or record file, and the runs in it.
    OtherFile(&'a Path, Runs<'a>),
}

/// True when the arguments ask for a comparison.
pub fn asked(args: &Args) -> bool {
    args.baseline.is_some() || args.baseline_since.is_some() || args.baseline_until.is_some()
}

/// Scans both sides, prints the comparison, draws the differential flame graph, writes the
/// page, and fails with exit code 3 when `--fail-on-regression` finds a regression.
pub fn compare(args: &Args, started: Instant) -> anyhow::Result<()> {
    let options = options(args)?;
    let baseline = baseline(args)?;
    let keep = !args.no_sidecar;
    let targets = source::record_files(&args.files, &args.namespace, keep, !args.quiet)?;
    source::say_notes(&targets);
    let base_window = match (&args.baseline_since, &args.baseline_until) {
        (None, None) => window(args),
        (since, until) => (since.as_deref(), until.as_deref()),
    };
    let base = match baseline {
        Baseline::SameFiles(runs) => scan_side(args, &targets, runs, base_window, started)
            .map_err(|e| unknown_run(e, args.baseline.as_deref()))?,
        Baseline::OtherFile(path, runs) => {
            let given = [path.to_path_buf()];
            let files = source::record_files(&given, &args.namespace, keep, !args.quiet)?;
            source::say_notes(&files);
            scan_side(args, &files, runs, base_window, started)?
        }
    };
    let target = scan_side(args, &targets, runs_asked(args), window(args), started)?;
    let report = build_report(&base, &target, options, args);
    // The differential flame graph, drawn once for `--flamegraph` and the page.
    let mut svg = Vec::new();
    if let (Some(b), Some(t)) = (&base.stacks, &target.stacks) {
        let title = match (target.one_run, base.one_run) {
            (true, true) => format!("ferret · run {} against {}", target.run_id, base.run_id),
            _ => format!("ferret · {} against {}", target.label, base.label),
        };
        write_differential_flamegraph(b, t, &title, &mut svg)?;
    }
    if let Some(path) = &args.flamegraph {
        flame::save(path, &svg)?;
    }
    if let Some(page) = &args.html {
        let svg =
            String::from_utf8(svg).map_err(|_| anyhow::anyhow!("the flame graph is not UTF-8"))?;
        source::with_span_files(&targets, false, |files| {
            asking(args, files, started, |q| {
                let chosen = select::select(q, runs_asked(args), window(args), true)?;
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

/// What the baseline is: `--baseline BASE` names a file when one is there, else a run of the
/// files given; without it, the population itself (in the baseline's window).
fn baseline(args: &Args) -> anyhow::Result<Baseline<'_>> {
    let Some(base) = &args.baseline else {
        return Ok(Baseline::SameFiles(runs_asked(args)));
    };
    let runs = match args.baseline_run.is_empty() {
        true => Runs::Default,
        false => Runs::Given(&args.baseline_run),
    };
    match Path::new(base) {
        path if path.exists() => Ok(Baseline::OtherFile(path, runs)),
        _ if !args.baseline_run.is_empty() => anyhow::bail!(
            "--baseline {base}: no such file (--baseline-run picks a run in another file; to compare with another run of the files given, give --baseline RUN)"
        ),
        _ => Ok(Baseline::SameFiles(Runs::Given(std::slice::from_ref(base)))),
    }
}

/// A baseline run the files given do not have is a baseline that is neither a file nor a run:
/// said so, with the runs it comes closest to. Other errors pass unchanged.
fn unknown_run(e: anyhow::Error, run: Option<&str>) -> anyhow::Error {
    let unknown = e.chain().any(|c| {
        c.is::<select::NoSuchRun>()
            || matches!(
                c.downcast_ref::<ScanError>(),
                Some(ScanError::UnknownRun { .. } | ScanError::AmbiguousRun { .. })
            )
    });
    match (unknown, run) {
        (true, Some(run)) => e.context(format!("--baseline {run} is neither a file nor a run")),
        _ => e,
    }
}

/// The comparison as a table (with both sides named), JSON (each side with its population)
/// or CSV.
fn print(
    report: &ComparisonReport,
    (base, target): (&ScannedSide, &ScannedSide),
    args: &Args,
    started: Instant,
) -> anyhow::Result<()> {
    let mut out = args.sink.out();
    match args.format {
        Format::Table => {
            writeln!(
                out,
                "base {} · {} spans  →  target {} · {} spans · {:.3} s",
                base.label,
                report.base_spans,
                target.label,
                report.target_spans,
                started.elapsed().as_secs_f64()
            )?;
            report.write_table(&mut out, args.sink.is_terminal())?;
        }
        Format::Json => {
            let mut doc = report.to_json();
            // A side of several runs is named by its population, as every mode's JSON does.
            for (key, side) in [("base", base), ("target", target)] {
                if let (Some(fields), false) = (doc[key].as_object_mut(), side.one_run) {
                    fields.remove("run_id");
                    fields.insert("population".into(), side.population.clone());
                }
            }
            print_json(&doc, &mut out)?;
        }
        Format::Csv => report.write_csv(&mut out)?,
    }
    Ok(out.flush()?)
}

/// The comparison of the two scanned sides.
fn build_report(
    base: &ScannedSide,
    target: &ScannedSide,
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

/// Scans the population of `records` (the runs `runs`, in the window `window`, relative times
/// counted from its own last span end) with the filters of `args`.
fn scan_side(
    args: &Args,
    records: &[RecordFile],
    runs: Runs,
    window: (Option<&str>, Option<&str>),
    started: Instant,
) -> anyhow::Result<ScannedSide> {
    source::with_span_files(records, false, |files| {
        asking(args, files, started, |q| {
            let chosen = select::select(q, runs, window, false)?;
            let names = stats::name_union(q);
            let merged = stats::merged(q, &chosen, &chosen.members, &names)?;
            // Exact: a differential graph colours by the change of each stack.
            let differential = args.flamegraph.is_some() || args.html.is_some();
            let stacks = match differential {
                true => Some(flame::stacks(q, &chosen, false)?),
                false => None,
            };
            let (label, run_id) = match chosen.members[..] {
                [m] => {
                    let id = chosen.run_id(q, m);
                    let given = q.files[m.file].given.display();
                    (format!("{given} · run {id}"), id)
                }
                _ => (chosen.describe(q), chosen.describe(q)),
            };
            let (union, _) = names;
            Ok(ScannedSide {
                label,
                run_id,
                population: chosen.population_json(q),
                one_run: chosen.is_one_run(),
                stats: merged,
                names: (0..union.len() as u32)
                    .map(|id| union.name(id).to_string())
                    .collect(),
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
    Err(crate::ExitWith {
        code: 3,
        message: format!(
            "regression: {} function(s) slower by more than {pct}%: {}{more}",
            slower.len(),
            named.join(", ")
        ),
    }
    .into())
}
