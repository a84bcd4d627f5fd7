//! `ferret-scan`'s modes: argument parsing and dispatch to one module per mode, over the
//! `ferret-scan` crate. The binary calls [`main`]; the Python module calls [`answer_json`] with
//! the same arguments, so both print the numbers of one implementation.

mod compare;
mod flame;
mod html;
mod parquet;
mod runs;
mod select;
mod source;
pub mod spans;
mod stats;
mod timeline;
mod trees;
mod watch;
mod watch_view;

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use ferret_report::functions::SORT_KEYS;

use crate::scan::select::Runs;
use crate::scan::source::Opened;

/// Per-function statistics, call trees, flame graphs and Parquet exports of a ferret trace
/// converted by ferret-convert, computed over the mapped file in memory bounded by the number of
/// distinct names.
#[derive(Parser, Debug, Clone)]
#[command(name = "ferret-scan", version)]
struct Args {
    /// Record files written by ferret-convert, or traces themselves (BeaverDB files or JSON
    /// lines), in any mix: each trace's record file (a sidecar beside it, or in the cache folder
    /// when its folder is read-only) is made the first time and brought up to date with only
    /// the new rows after. Several files are one population (a service's workers): every mode
    /// answers over the union of their chosen runs.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// BeaverDB namespace (log name) of the traces given directly.
    #[arg(long, default_value = ferret_convert::sidecar::DEFAULT_NAMESPACE)]
    namespace: String,
    /// For a trace given directly: convert into a temporary file, removed at exit, instead of
    /// keeping a sidecar.
    #[arg(long)]
    no_sidecar: bool,
    /// Run id or unique prefix, in whichever file holds it; repeat for several runs (default:
    /// each file's run of its latest span, as ferret picks).
    #[arg(short, long, value_name = "RUN")]
    run: Vec<String>,
    /// Every run of every file.
    #[arg(long, conflicts_with = "run")]
    all_runs: bool,
    /// Break the table down by file or by run: a leading column (JSON: groups, each a scan's
    /// functions).
    #[arg(long, value_enum, conflicts_with_all = ["runs", "tree", "folded", "flamegraph", "chrome_trace", "to_parquet", "verify", "timeline", "html", "baseline", "baseline_since", "baseline_until"])]
    by: Option<By>,
    /// Rows to print (0 = all).
    #[arg(short, long, default_value_t = 20)]
    limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Sort key (descending; `name` ascending).
    #[arg(long, default_value = "total", value_parser = clap::builder::PossibleValuesParser::new(SORT_KEYS))]
    sort: String,
    /// Only spans starting at or after T: RFC 3339, Unix seconds, or relative to the
    /// population's last span end like -1h.
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
    /// List the runs of the files instead of statistics.
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
    /// Write the population's spans to a Parquet file for DuckDB, Spark, DataFusion or Trino
    /// (see docs/SCALE-OUT.md); the filters choose the spans.
    #[arg(long, value_name = "OUT.parquet")]
    to_parquet: Option<PathBuf>,
    /// Compare the population with a baseline: a run id or unique prefix in the files given, or
    /// another trace or record file (its default run, or --baseline-run). The filters apply to
    /// both sides; each function gets a verdict (slower, faster, same, new, gone) from its two
    /// duration distributions. With --flamegraph, the graph is the differential one.
    #[arg(long, value_name = "BASE", conflicts_with_all = ["runs", "tree", "folded", "chrome_trace", "to_parquet", "verify"])]
    baseline: Option<String>,
    /// With --baseline naming another file: the run in it (id or unique prefix); repeat for
    /// several.
    #[arg(long, requires = "baseline", value_name = "RUN")]
    baseline_run: Vec<String>,
    /// The baseline's window: spans starting at or after T (same forms as --since; relative
    /// times count back from the baseline's last span end). Without --baseline, the baseline
    /// is the same population in this window.
    #[arg(long, value_name = "T", allow_hyphen_values = true, conflicts_with_all = ["runs", "tree", "folded", "chrome_trace", "to_parquet", "verify"])]
    baseline_since: Option<String>,
    /// The baseline's window: spans starting before T (see --baseline-since).
    #[arg(long, value_name = "T", allow_hyphen_values = true, conflicts_with_all = ["runs", "tree", "folded", "chrome_trace", "to_parquet", "verify"])]
    baseline_until: Option<String>,
    /// With --baseline: the smallest shift of a function's median duration called slower or
    /// faster, in percent, however significant a smaller one is.
    #[arg(long, default_value_t = 5.0, value_name = "PCT")]
    min_effect: f64,
    /// With --baseline: the false-discovery rate of the verdicts, in percent (Benjamini-Hochberg
    /// over every function compared).
    #[arg(long, default_value_t = 5.0, value_name = "PCT")]
    fdr: f64,
    /// With a baseline: exit with code 3 when a function is called slower and its median
    /// duration moved up by more than PCT percent (a CI gate).
    #[arg(long, value_name = "PCT")]
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
    /// Watch the population live: at each --interval, add the traces' new rows and show each
    /// function over the last --window of span ends (a full-screen view on a terminal; one
    /// JSON object per line otherwise, or with --format json).
    #[arg(long, conflicts_with_all = ["runs", "tree", "folded", "flamegraph", "chrome_trace", "to_parquet", "verify", "timeline", "html", "baseline", "baseline_since", "baseline_until", "by", "since", "until"])]
    watch: bool,
    /// With --watch: time between refreshes.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s", requires = "watch")]
    interval: std::time::Duration,
    /// With --watch: the window of span ends each refresh shows.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1m", requires = "watch")]
    window: std::time::Duration,
    /// With --watch: stop after this many refreshes.
    #[arg(long, requires = "watch")]
    count: Option<u64>,
    /// No progress bar while a trace's sidecar is made the first time.
    #[arg(short, long)]
    quiet: bool,
    /// Print the process's peak resident memory to stderr at exit (tests and benchmarks).
    #[arg(long, hide = true)]
    print_peak_rss: bool,
    /// Where the answer goes: standard output, or a buffer for [`answer_json`].
    #[arg(skip)]
    sink: Sink,
}

/// Where a mode writes its answer.
#[derive(Clone, Debug, Default)]
struct Sink(Option<Arc<Mutex<Vec<u8>>>>);

impl Sink {
    /// The writer of the answer: standard output (locked, buffered: Rust's standard output
    /// writes a line at a time, and a tree of 8,000 lines was 8,000 system calls), or the
    /// buffer. Every mode flushes it when done.
    fn out(&self) -> Box<dyn io::Write + '_> {
        match &self.0 {
            None => Box::new(io::BufWriter::with_capacity(1 << 16, io::stdout().lock())),
            Some(buffer) => Box::new(SharedBuffer(buffer)),
        }
    }

    /// True when the answer goes to a terminal (colours, sparklines).
    fn is_terminal(&self) -> bool {
        self.0.is_none() && io::stdout().is_terminal()
    }
}

/// A writer appending to a shared buffer.
struct SharedBuffer<'a>(&'a Mutex<Vec<u8>>);

impl io::Write for SharedBuffer<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut buffer = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Csv,
}

/// What `--by` breaks the table down by.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum By {
    File,
    Run,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StatusArg {
    Ok,
    Error,
}

/// `ferret-scan`'s process: parses the command line, answers, and ends with the exit code.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let result = scan(&args);
    crate::finish("ferret-scan", result, args.print_peak_rss)
}

/// Answers `ferret-scan ARGS --format json` in this process: the JSON document the command
/// would print. Fails with the error the command would print (after `ferret-scan: `, see
/// [`crate::one_line`]); `--watch`, `--verify` and the modes that write files are refused.
pub fn answer_json<I, T>(args: I) -> anyhow::Result<serde_json::Value>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut args = in_process(args)?;
    let buffer = Arc::new(Mutex::new(Vec::new()));
    args.sink = Sink(Some(Arc::clone(&buffer)));
    scan(&args)?;
    let bytes = std::mem::take(&mut *buffer.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(serde_json::from_slice(&bytes)?)
}

/// The arguments of a question asked in this process (with `--format json --quiet`); clap's
/// message (several lines: usage, hints) is cut to its first, which says what was wrong.
fn in_process<I, T>(args: I) -> anyhow::Result<Args>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let argv = std::iter::once(std::ffi::OsString::from("ferret-scan"))
        .chain(args.into_iter().map(Into::into))
        .chain(["--format".into(), "json".into(), "--quiet".into()]);
    let args = Args::try_parse_from(argv).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        anyhow::anyhow!("{}", first.trim_start_matches("error: "))
    })?;
    let writes_files = args.to_parquet.is_some()
        || args.html.is_some()
        || args.flamegraph.is_some()
        || args.chrome_trace.is_some();
    if args.watch || args.verify || args.folded || writes_files {
        bail!("asked in a process, a question has a JSON answer: --watch, --verify, --folded and the outputs to files are the command line's");
    }
    Ok(args)
}

/// Answers on the record files of the files given (each itself, or a trace's sidecar).
fn scan(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.fail_on_regression.is_some() && !compare::asked(args) {
        bail!("--fail-on-regression needs a baseline: --baseline, --baseline-since or --baseline-until");
    }
    if compare::asked(args) {
        return compare::compare(args, started);
    }
    if args.watch {
        return watch::watch(args);
    }
    let keep = !args.no_sidecar;
    let records = source::record_files(&args.files, &args.namespace, keep, !args.quiet)?;
    source::say_notes(&records);
    source::with_span_files(&records, args.verify, |files| answer(args, files, started))
}

/// What every mode answers from: the arguments, the files opened, and when the question
/// started.
struct Asked<'a> {
    args: &'a Args,
    files: &'a [Opened],
    started: Instant,
}

/// The answer of the mode `args` ask for, from `files`.
fn answer(args: &Args, files: &[Opened], started: Instant) -> anyhow::Result<()> {
    if args.verify {
        for m in files {
            m.file.advise_scan();
            let n = m.file.verify().with_context(|| m.ctx())?;
            println!(
                "{}: ok, {n} records, format version {}",
                m.path.display(),
                m.file.version()
            );
        }
        return Ok(());
    }
    asking(args, files, started, dispatch)
}

/// Prepares the files for a question's scans (their notes said, scanning advised,
/// a population without spans refused) and answers with `answer`.
fn asking<T>(
    args: &Args,
    files: &[Opened],
    started: Instant,
    answer: impl FnOnce(&Asked) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    for m in files {
        source::note_state(&m.path, &m.file);
        m.file.advise_scan();
    }
    match files {
        [m] if m.file.record_count() == 0 => {
            bail!("{}: the file holds no spans", m.path.display())
        }
        _ if files.iter().all(|m| m.file.record_count() == 0) => {
            bail!("none of the {} files holds spans", files.len())
        }
        _ => {}
    }
    answer(&Asked {
        args,
        files,
        started,
    })
}

/// The runs the arguments ask for.
fn runs_asked(args: &Args) -> Runs<'_> {
    match (args.all_runs, args.run.is_empty()) {
        (true, _) => Runs::All,
        (false, false) => Runs::Given(&args.run),
        (false, true) => Runs::Default,
    }
}

/// The window `--since`/`--until` gives.
fn window(args: &Args) -> (Option<&str>, Option<&str>) {
    (args.since.as_deref(), args.until.as_deref())
}

/// The mode the arguments ask for.
fn dispatch(q: &Asked) -> anyhow::Result<()> {
    let args = q.args;
    if args.runs {
        return runs::list_runs(q);
    }
    let need_runs = args.to_parquet.is_some() || args.timeline || args.html.is_some();
    let chosen = select::select(q, runs_asked(args), window(args), need_runs)?;
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
        flame::write(q, &chosen)?;
        if !args.tree && args.chrome_trace.is_none() {
            return Ok(());
        }
    }
    if args.tree || args.chrome_trace.is_some() {
        return trees::write_trees(q, chosen);
    }
    stats::write_stats(q, chosen)
}

/// Prints `doc` as pretty JSON and a newline.
fn print_json(doc: &serde_json::Value, out: &mut dyn io::Write) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc)?;
    Ok(writeln!(out)?)
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
