//! `ferret-scan`: argument parsing and dispatch to one module per mode, over the `ferret-scan`
//! crate.

mod compare;
mod flame;
mod html;
mod parquet;
mod runs;
mod select;
mod source;
mod stats;
mod timeline;
mod trees;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use ferret_format::SpanFile;
use ferret_report::functions::SORT_KEYS;
use ferret_scan::engine::AfterChunk;
use memmap2::Mmap;

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
    #[arg(long, value_parser = select::parse_tag)]
    tag: Option<(String, String)>,
    /// List the runs in the file instead of statistics.
    #[arg(long)]
    runs: bool,
    /// Print the --limit slowest call trees (roots chosen by the filters) instead of statistics.
    #[arg(short, long)]
    tree: bool,
    /// Spans kept per tree; the fastest of the rest are folded into a summary line (default
    /// 10,000; 300 in --html, to keep the page small).
    #[arg(long)]
    max_nodes: Option<usize>,
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
    /// Compare the run with a baseline: a run id or unique prefix in FILE, or another trace or
    /// record file (its default run, or --baseline-run). The filters apply to both sides; each
    /// function gets a verdict (slower, faster, same, new, gone) from its two duration
    /// distributions. With --flamegraph, the graph is the differential one.
    #[arg(long, value_name = "BASE", conflicts_with_all = ["runs", "tree", "folded", "chrome_trace", "to_parquet", "verify"])]
    baseline: Option<String>,
    /// With --baseline naming another file: the run in it (id or unique prefix).
    #[arg(long, requires = "baseline", value_name = "RUN")]
    baseline_run: Option<String>,
    /// With --baseline: the smallest shift of a function's median duration called slower or
    /// faster, in percent, however significant a smaller one is.
    #[arg(long, default_value_t = 5.0, value_name = "PCT")]
    min_effect: f64,
    /// With --baseline: the false-discovery rate of the verdicts, in percent (Benjamini-Hochberg
    /// over every function compared).
    #[arg(long, default_value_t = 5.0, value_name = "PCT")]
    fdr: f64,
    /// With --baseline: exit with code 3 when a function is called slower and its median
    /// duration moved up by more than PCT percent (a CI gate).
    #[arg(long, requires = "baseline", value_name = "PCT")]
    fail_on_regression: Option<f64>,
    /// Print the run (or the --since/--until window) cut into time buckets by span start: per
    /// bucket spans, errors, total time, p50, p90, p99 (the filters apply: --name gives one
    /// function's timeline).
    #[arg(long, conflicts_with_all = ["runs", "tree", "folded", "flamegraph", "chrome_trace", "to_parquet", "verify", "baseline"])]
    timeline: bool,
    /// With --timeline or --html: the bucket width (e.g. 1s, 5m, 250ms; default: a round width
    /// giving at most 200 buckets).
    #[arg(long, value_parser = humantime::parse_duration)]
    bucket: Option<std::time::Duration>,
    /// Write one self-contained HTML page of the run: its header, the function table
    /// (sortable), the timeline chart, the flame graph and the --limit slowest trees (with
    /// --baseline, the comparison too). It opens from disk and fetches nothing.
    #[arg(long, value_name = "OUT.html", conflicts_with_all = ["runs", "tree", "folded", "chrome_trace", "to_parquet", "verify", "timeline"])]
    html: Option<PathBuf>,
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
    let result = scan(&args);
    ferret_cli::finish("ferret-scan", result, args.print_peak_rss)
}

/// Answers on the record file of the file given (itself, or a trace's sidecar).
fn scan(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    if let Some(base) = &args.baseline {
        return compare::compare(args, base, started);
    }
    let record = source::record_file(&args.file, &args.namespace, !args.no_sidecar)?;
    let path = &record.path;
    source::with_span_file(path, args.verify, |file| answer(args, path, file, started))
}

/// What every mode answers from: the arguments, the record file (its path and its mapping),
/// when the question started, and how a pass hands back its pages.
struct Asked<'a> {
    args: &'a Args,
    path: &'a Path,
    file: &'a SpanFile<Mmap>,
    started: Instant,
    release: AfterChunk<'a>,
}

/// The answer of the mode `args` ask for, from `file`.
fn answer(args: &Args, path: &Path, file: &SpanFile<Mmap>, started: Instant) -> anyhow::Result<()> {
    if args.verify {
        let n = file.verify().with_context(|| path.display().to_string())?;
        println!(
            "{}: ok, {n} records, format version {}",
            path.display(),
            file.version()
        );
        return Ok(());
    }
    asking(args, (path, file), started, dispatch)
}

/// Prepares `file` for a question's scans (its notes said, sequential reading advised, an
/// empty file refused) and answers with `answer`.
fn asking<T>(
    args: &Args,
    (path, file): (&Path, &SpanFile<Mmap>),
    started: Instant,
    answer: impl FnOnce(&Asked) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    source::note_state(path, file);
    if file.record_count() == 0 {
        bail!("{}: the file holds no spans", path.display());
    }
    file.advise_sequential();
    // Each pass hands a chunk's pages back to the page cache once folded: resident memory stays
    // at a few chunks per worker, whatever the file's size.
    let release = |seg: &ferret_format::Segment, range| file.release_records(seg, range);
    answer(&Asked {
        args,
        path,
        file,
        started,
        release: &release,
    })
}

/// The mode the arguments ask for.
fn dispatch(q: &Asked) -> anyhow::Result<()> {
    let args = q.args;
    if args.runs {
        return runs::list_runs(q);
    }
    let need_runs = args.to_parquet.is_some() || args.timeline || args.html.is_some();
    let chosen = select::select(q, args.run.as_deref(), need_runs)?;
    if let Some(page) = &args.html {
        // `--flamegraph` beside `--html` gets the page's own graph.
        let outputs = (page.as_path(), args.flamegraph.as_deref());
        return html::write_html(q, outputs, chosen, None);
    }
    if args.timeline {
        return timeline::write_timeline(q, chosen);
    }
    if let Some(output) = &args.to_parquet {
        return parquet::write_parquet(q, output, chosen);
    }
    if args.folded || args.flamegraph.is_some() {
        flame::write(q, chosen.run)?;
        if !args.tree && args.chrome_trace.is_none() {
            return Ok(());
        }
    }
    if args.tree || args.chrome_trace.is_some() {
        return trees::write_trees(q, chosen);
    }
    stats::write_stats(q, chosen)
}

/// Warns once about spans whose parent links loop.
fn warn_broken(file: &Path, broken: u64) {
    if broken > 0 {
        eprintln!(
            "ferret-scan: warning: {}: {broken} spans have parent links that loop (a cycle or a self-parent: the file is damaged or hand-made); their stacks are cut where the loop closes",
            file.display()
        );
    }
}

/// Unix seconds as local time with microseconds and the offset.
fn local_time(t: f64) -> String {
    local(t, "%Y-%m-%d %H:%M:%S%.6f %:z")
}

/// Unix seconds as local time in `format` (chrono's), or the seconds themselves out of range.
fn local(t: f64, format: &str) -> String {
    chrono::DateTime::from_timestamp_micros((t * 1e6) as i64)
        .map(|utc| utc.with_timezone(&chrono::Local).format(format).to_string())
        .unwrap_or_else(|| t.to_string())
}

/// Creates an output file, naming it in the error.
fn create(path: &Path) -> anyhow::Result<io::BufWriter<std::fs::File>> {
    let f = std::fs::File::create(path).with_context(|| path.display().to_string())?;
    Ok(io::BufWriter::new(f))
}
