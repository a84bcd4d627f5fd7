//! `ferret-scan`: argument parsing, run selection and output over the `ferret-scan` crate.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use ferret_format::{FormatError, Region, SpanFile};
use ferret_parquet::{export_parquet, ExportError, ExportOptions};
use ferret_scan::export::{
    folded_stacks, write_chrome_trace, write_flamegraph, write_folded, DEEPER_FRAMES,
    MAX_STACK_FRAMES,
};
use ferret_scan::report::SORT_KEYS;
use ferret_scan::tree::{slowest_trees, TreeOptions};
use ferret_scan::tree_report::{write_trees_json, write_trees_text, TextStyle};
use ferret_scan::{
    default_run, resolve_run, scan_runs, scan_stats, Filter, RunSummary, ScanError, ScanOptions,
    StatsReport,
};
use memmap2::Mmap;
use std::io::IsTerminal;

/// Per-function statistics, call trees, flame graphs and Parquet exports of a ferret trace
/// converted by ferret-convert, computed over the mapped file in memory bounded by the number of
/// distinct names.
#[derive(Parser, Debug, Clone)]
#[command(name = "ferret-scan", version)]
struct Args {
    /// The record file written by ferret-convert, or a trace itself (a BeaverDB file or JSON
    /// lines): its record file (a sidecar beside it, or in the cache folder when its folder is
    /// read-only) is made the first time and brought up to date with only the new rows after.
    file: PathBuf,
    /// BeaverDB namespace (log name) of a trace given directly.
    #[arg(long, default_value = ferret_convert::sidecar::DEFAULT_NAMESPACE)]
    namespace: String,
    /// For a trace given directly: convert into a temporary file, removed at exit, instead of
    /// keeping a sidecar.
    #[arg(long)]
    no_sidecar: bool,
    /// Run id or unique prefix (default: the run of the latest span, as ferret picks).
    #[arg(short, long)]
    run: Option<String>,
    /// Rows to print (0 = all).
    #[arg(short, long, default_value_t = 20)]
    limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Sort key (descending; `name` ascending).
    #[arg(long, default_value = "total", value_parser = clap::builder::PossibleValuesParser::new(SORT_KEYS))]
    sort: String,
    /// Only spans starting at or after T: RFC 3339, Unix seconds, or relative to the run's end
    /// like -1h.
    #[arg(long, allow_hyphen_values = true)]
    since: Option<String>,
    /// Only spans starting before T (same forms as --since).
    #[arg(long, allow_hyphen_values = true)]
    until: Option<String>,
    /// Only names matching this regular expression.
    #[arg(long)]
    name: Option<regex::Regex>,
    /// Only spans with this status.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// Only spans with this tag (KEY=VALUE; a non-string tag matches its JSON text, e.g.
    /// code=200 or retried=true).
    #[arg(long, value_parser = parse_tag)]
    tag: Option<(String, String)>,
    /// List the runs in the file instead of statistics.
    #[arg(long)]
    runs: bool,
    /// Print the --limit slowest call trees (roots chosen by the filters) instead of statistics.
    #[arg(short, long)]
    tree: bool,
    /// Spans kept per tree; the fastest of the rest are folded into a summary line.
    #[arg(long, default_value_t = 10_000)]
    max_nodes: usize,
    /// Fold spans (other than roots) faster than this many milliseconds into the summary.
    #[arg(long, default_value_t = 0.0)]
    min_ms: f64,
    /// Print the run's flame-graph folded stacks (`a;b;c <microseconds of self time>`).
    #[arg(long)]
    folded: bool,
    /// Write the run's flame graph as an interactive SVG.
    #[arg(long, value_name = "OUT.svg")]
    flamegraph: Option<PathBuf>,
    /// Write the --limit slowest trees as Chrome trace-event JSON (Perfetto UI, speedscope).
    #[arg(long, value_name = "OUT.json")]
    chrome_trace: Option<PathBuf>,
    /// Write the run's spans (every run's with --all-runs) to a Parquet file for DuckDB, Spark,
    /// DataFusion or Trino (see docs/SCALE-OUT.md); the filters choose the spans.
    #[arg(long, value_name = "OUT.parquet")]
    to_parquet: Option<PathBuf>,
    /// With --to-parquet: export every run, not one.
    #[arg(long, requires = "to_parquet", conflicts_with = "run")]
    all_runs: bool,
    /// Check every checksum and record in the file, then exit.
    #[arg(long)]
    verify: bool,
    /// Skip the per-block checksum checks of the scan.
    #[arg(long)]
    no_verify: bool,
    /// Print the process's peak resident memory to stderr at exit (tests and benchmarks).
    #[arg(long, hide = true)]
    print_peak_rss: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StatusArg {
    Ok,
    Error,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = with_record_file(&args);
    ferret_cli::finish("ferret-scan", result, args.print_peak_rss)
}

/// Runs on the record file: the one given, or the sidecar of the trace given.
fn with_record_file(args: &Args) -> anyhow::Result<()> {
    if !is_trace(&args.file)? {
        return run(args);
    }
    let sidecar = match ferret_convert::sidecar::refresh(&args.file, &args.namespace, !args.no_sidecar) {
        Err(ferret_convert::ConvertError::UnknownInput(path)) => bail!(
            "{}: not a ferret span file, a SQLite database or a JSON lines file (.jsonl, .ndjson): give a trace ferret-io wrote, or its conversion",
            path.display()
        ),
        refreshed => refreshed?,
    };
    if let Some(why) = &sidecar.rebuilt {
        eprintln!(
            "ferret-scan: note: {}: made anew: {why}",
            sidecar.path.display()
        );
    }
    let s = &sidecar.summary;
    for w in &s.warnings {
        eprintln!("ferret-scan: warning: {w}");
    }
    if s.rows_skipped > 0 {
        eprintln!(
            "ferret-scan: warning: {}: {} rows skipped as bad (ferret-convert names them)",
            args.file.display(),
            s.rows_skipped
        );
    }
    let mut on_sidecar = args.clone();
    on_sidecar.file = sidecar.path.clone();
    run(&on_sidecar)
}

/// True when `path` is a trace rather than a record file: it exists, is not empty, and does
/// not start with ferret's magic (a missing or empty file is left to the record file's errors).
fn is_trace(path: &std::path::Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut head = Vec::new();
    match std::fs::File::open(path) {
        Ok(f) => f.take(8).read_to_end(&mut head).map(|_| ())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(anyhow::Error::new(e).context(path.display().to_string())),
    }
    Ok(!head.is_empty() && !head.starts_with(&ferret_format::MAGIC[..6]))
}

/// Opens the file and answers. When the newest commit fails its checks (on open, or in a record
/// block or tag heap a scan reads) and the commit before it is intact, the answer is the previous
/// commit's, with one warning naming what was left out.
fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let path = &args.file;
    let file = SpanFile::open(path).with_context(|| path.display().to_string())?;
    // --verify reports the damage as its error instead.
    if let (Some(f), false) = (file.fallback(), args.verify) {
        warn_fallback(path, f.lost_records, &f.reason);
    }
    let answered = answer(args, &file, started);
    // A record block or tag heap that the newest commit added failed its checksum during the
    // scan: answered again from the commit before it (--verify reports the damage instead).
    let damage = match &answered {
        Err(e) if !args.verify => checksum_damage(e)
            .filter(|(segment, _)| file.previous_commit_lacks(*segment))
            .map(|(_, damage)| damage.brief()),
        _ => None,
    };
    let Some(reason) = damage else {
        return answered;
    };
    let previous = SpanFile::open_previous(path).with_context(|| path.display().to_string())?;
    warn_fallback(path, file.record_count() - previous.record_count(), &reason);
    answer(args, &previous, started)
}

/// Says once that the answer comes from the commit before a damaged newest one.
fn warn_fallback(path: &std::path::Path, lost: u64, reason: &str) {
    eprintln!(
        "ferret-scan: warning: {}: the newest commit ({lost} spans) failed its checks ({reason}); answering from the commit before it (ferret-convert --append adds the lost spans again)",
        path.display()
    );
}

/// The segment whose record block or tag heap failed its checksum, and that failure, if that
/// is what `e` is.
fn checksum_damage(e: &anyhow::Error) -> Option<(usize, &FormatError)> {
    let format = e.chain().find_map(|c| {
        c.downcast_ref::<FormatError>()
            .or_else(|| match c.downcast_ref::<ScanError>() {
                Some(ScanError::Format(f)) => Some(f),
                _ => None,
            })
            .or_else(|| match c.downcast_ref::<ExportError>() {
                Some(ExportError::Format(f)) => Some(f),
                _ => None,
            })
    })?;
    match format {
        FormatError::Checksum {
            region: Region::Records { segment, .. } | Region::Tags { segment, .. },
        } => Some((*segment, format)),
        _ => None,
    }
}

/// The answer `args` ask for, from `file`.
fn answer(args: &Args, file: &SpanFile<Mmap>, started: Instant) -> anyhow::Result<()> {
    let path = &args.file;
    if args.verify {
        let n = file.verify().with_context(|| path.display().to_string())?;
        println!(
            "{}: ok, {n} records, format version {}",
            path.display(),
            file.version()
        );
        return Ok(());
    }
    if !file.has_index() {
        eprintln!(
            "ferret-scan: note: {}: format version {} has no run directory or block zones, so every question reads the whole file; convert the trace anew (ferret-convert TRACE -o FILE --force) to read only what a question selects",
            path.display(),
            file.version()
        );
    }
    if !file.is_complete() {
        eprintln!(
            "ferret-scan: warning: {}: the conversion that wrote it was interrupted; run ferret-convert --append to complete it",
            path.display()
        );
    }
    file.advise_sequential();
    let mut opts = ScanOptions {
        verify: !args.no_verify,
        ..ScanOptions::default()
    };
    let ctx = || path.display().to_string();
    // Each pass hands a chunk's pages back to the page cache once folded: resident memory stays
    // at a few chunks per worker, whatever the file's size.
    let release = |seg: &ferret_format::Segment, range| file.release_records(seg, range);
    if file.record_count() == 0 {
        bail!("{}: the file holds no spans", path.display());
    }
    let default = default_run(file).with_context(ctx)?;
    // The per-run pass is a second read of the file: done only when something needs it.
    let relative = |t: &Option<String>| t.as_deref().is_some_and(|t| t.starts_with('-'));
    let runs = if args.runs
        || args.run.is_some()
        || args.to_parquet.is_some()
        || relative(&args.since)
        || relative(&args.until)
    {
        scan_runs(file, &opts, &release).with_context(ctx)?
    } else {
        Vec::new()
    };
    let mut out = io::stdout().lock();
    if args.runs {
        return write_runs(file, &runs, default, args.format, &mut out);
    }
    let run = match &args.run {
        Some(given) => resolve_run(file, &runs, given).with_context(ctx)?,
        None => default,
    };
    // Relative times count back from the run's end (the latest run's end with --all-runs).
    let run_end = runs
        .iter()
        .filter(|r| args.all_runs || r.run == run)
        .map(|r| r.last_end)
        .fold(0.0, f64::max);
    opts.filter = Filter {
        name: args.name.clone(),
        errors: args.status.map(|s| matches!(s, StatusArg::Error)),
        since: args
            .since
            .as_deref()
            .map(|t| parse_time(t, run_end))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| parse_time(t, run_end))
            .transpose()?,
        tag: args.tag.clone(),
    };
    if let Some(parquet) = &args.to_parquet {
        let chosen: Vec<RunSummary> = runs
            .into_iter()
            .filter(|r| args.all_runs || r.run == run)
            .collect();
        let export = Export {
            input: path,
            output: parquet,
            started,
        };
        return write_parquet(file, &chosen, opts.filter, &export, &release);
    }
    let run_id = file.string(run).unwrap_or_default().to_string();
    if args.folded || args.flamegraph.is_some() {
        let folded = folded_stacks(file, run, opts.verify, &release).with_context(ctx)?;
        warn_broken(&args.file, folded.broken_links);
        if folded.deeper_spans > 0 {
            eprintln!(
                "ferret-scan: note: {}: {} spans lie deeper than {MAX_STACK_FRAMES} frames; each stack keeps its {MAX_STACK_FRAMES} outermost frames and folds the rest into '{DEEPER_FRAMES}'",
                args.file.display(),
                folded.deeper_spans
            );
        }
        let lines = folded.lines;
        if let Some(svg) = &args.flamegraph {
            let mut w = create(svg)?;
            write_flamegraph(&lines, &format!("ferret · run {run_id}"), &mut w)
                .and_then(|()| w.flush())
                .with_context(|| svg.display().to_string())?;
        }
        if args.folded {
            write_folded(&lines, &mut out)?;
        }
        if !args.tree && args.chrome_trace.is_none() {
            return Ok(out.flush()?);
        }
    }
    if args.tree || args.chrome_trace.is_some() {
        return write_trees(file, run, &run_id, args, &opts, &release, &mut out);
    }
    let stats = scan_stats(file, run, &opts, &release).with_context(ctx)?;
    let run_id = file.string(run).unwrap_or_default().to_string();
    let name_of = |id| file.name(id).unwrap_or_default().to_string();
    let report = StatsReport::build(run_id, &stats, name_of, &args.sort, args.limit);
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
    out.flush()?;
    Ok(())
}

/// `--tree`: the slowest trees as ferret prints them, or as JSON.
fn write_trees(
    file: &SpanFile<Mmap>,
    run: u32,
    run_id: &str,
    args: &Args,
    opts: &ScanOptions,
    release: ferret_scan::engine::AfterChunk,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let tree_opts = TreeOptions {
        limit: if args.limit == 0 {
            usize::MAX
        } else {
            args.limit
        },
        max_nodes: args.max_nodes,
        min_duration: args.min_ms / 1000.0,
    };
    let filter = opts.filter.compile(file);
    let keep =
        |seg: &ferret_format::Segment, r: &ferret_format::SpanRecord| filter.keep(file, seg, r);
    let trees = slowest_trees(file, run, opts, &tree_opts, &keep, release)
        .with_context(|| args.file.display().to_string())?;
    warn_broken(&args.file, trees.iter().map(|t| t.broken_links).sum());
    if let Some(path) = &args.chrome_trace {
        let mut w = create(path)?;
        write_chrome_trace(file, &trees, &mut w)
            .and_then(|()| w.flush())
            .with_context(|| path.display().to_string())?;
        if !args.tree {
            return Ok(());
        }
    }
    match args.format {
        Format::Json => write_trees_json(file, run_id, &trees, out)?,
        _ => {
            writeln!(
                out,
                "Analyzing Run ID: {run_id}\n\nTop {} Slowest Traces",
                args.limit
            )?;
            let style = TextStyle {
                color: std::io::stdout().is_terminal(),
            };
            write_trees_text(file, &trees, style, out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Where `--to-parquet` reads and writes.
struct Export<'a> {
    input: &'a std::path::Path,
    output: &'a std::path::Path,
    started: Instant,
}

/// `--to-parquet`: the chosen runs' spans as Parquet, with a summary line on stderr.
fn write_parquet(
    file: &SpanFile<Mmap>,
    runs: &[RunSummary],
    filter: Filter,
    export: &Export,
    release: ferret_scan::engine::AfterChunk,
) -> anyhow::Result<()> {
    let options = ExportOptions {
        filter,
        ..ExportOptions::default()
    };
    let out = export.output;
    let done = export_parquet(file, runs, &options, out, release).map_err(|e| match e {
        // Damage is the input's: name it (output errors name the output already).
        ExportError::Format(_) | ExportError::ParentLoop { .. } => {
            anyhow::Error::new(e).context(export.input.display().to_string())
        }
        other => other.into(),
    })?;
    let secs = export.started.elapsed().as_secs_f64();
    eprintln!(
        "ferret-scan: wrote {} spans of {} run(s) to {} ({} row groups, {:.1} MB) in {secs:.2} s ({:.2}M spans/s)",
        done.rows,
        done.runs,
        out.display(),
        done.row_groups,
        done.bytes as f64 / 1e6,
        done.rows as f64 / secs.max(1e-9) / 1e6,
    );
    Ok(())
}

/// Warns once about spans whose parent links loop.
fn warn_broken(file: &std::path::Path, broken: u64) {
    if broken > 0 {
        eprintln!(
            "ferret-scan: warning: {}: {broken} spans have parent links that loop (a cycle or a self-parent: the file is damaged or hand-made); their stacks are cut where the loop closes",
            file.display()
        );
    }
}

/// Creates an output file, naming it in the error.
fn create(path: &std::path::Path) -> anyhow::Result<io::BufWriter<std::fs::File>> {
    let f = std::fs::File::create(path).with_context(|| path.display().to_string())?;
    Ok(io::BufWriter::new(f))
}

/// Parses `--tag KEY=VALUE`.
fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// Parses a time bound: Unix seconds, RFC 3339, or `-DURATION` before the run's end.
fn parse_time(t: &str, run_end: f64) -> anyhow::Result<f64> {
    if let Ok(secs) = t.parse::<f64>() {
        return Ok(secs);
    }
    if let Some(rel) = t.strip_prefix('-') {
        let d = humantime::parse_duration(rel)
            .with_context(|| format!("bad relative time {t:?} (want e.g. -1h, -30s)"))?;
        return Ok(run_end - d.as_secs_f64());
    }
    let at = humantime::parse_rfc3339_weak(t)
        .with_context(|| format!("bad time {t:?} (want RFC 3339, Unix seconds, or -1h)"))?;
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0))
}

fn write_runs(
    file: &SpanFile<Mmap>,
    runs: &[RunSummary],
    default: u32,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let id = |r: &RunSummary| file.string(r.run).unwrap_or_default().to_string();
    let local = |t: f64| {
        chrono::DateTime::from_timestamp_micros((t * 1e6) as i64)
            .map(|utc| {
                utc.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S%.6f %:z")
                    .to_string()
            })
            .unwrap_or_else(|| t.to_string())
    };
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
                    local(r.first_start),
                    local(r.last_start),
                    r.last_end - r.first_start
                )?;
            }
        }
    }
    Ok(())
}
