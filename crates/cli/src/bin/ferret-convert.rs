//! `ferret-convert`: argument parsing, progress and messages over the `ferret-convert` crate.

use std::fmt::Write;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferret_convert::{convert, ConvertOptions, Summary};

/// Stream a ferret-io trace (BeaverDB file of either layout, or JSON lines) into a ferret record
/// file that ferret-scan maps.
#[derive(Parser, Debug)]
#[command(name = "ferret-convert", version)]
struct Args {
    /// BeaverDB file, JSON lines file (.jsonl/.ndjson), or - for JSON lines on stdin.
    input: PathBuf,
    /// The record file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// BeaverDB namespace (log name) holding the spans.
    #[arg(long, default_value = "_ferret_trace")]
    namespace: String,
    /// Add only the rows newer than the file's watermark, linked to the spans already in it.
    #[arg(long, conflicts_with = "force")]
    append: bool,
    /// Stop at the first bad row, leaving OUTPUT as it was.
    #[arg(long)]
    strict: bool,
    /// Replace an existing ferret file.
    #[arg(long)]
    force: bool,
    /// When another ferret-convert is writing OUTPUT, wait for it instead of stopping (then add
    /// what it left to do).
    #[arg(long)]
    wait: bool,
    /// No progress bar and no summary line.
    #[arg(short, long)]
    quiet: bool,
    /// Spans per commit (memory and crash-loss bound).
    #[arg(long, default_value_t = 1 << 18, hide = true)]
    commit_every: usize,
    /// Print the process's peak resident memory to stderr at exit (tests and benchmarks).
    #[arg(long, hide = true)]
    print_peak_rss: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = run(&args);
    ferret_cli::finish("ferret-convert", result, args.print_peak_rss)
}

fn run(args: &Args) -> anyhow::Result<()> {
    let mut opts = ConvertOptions::new(&args.input, &args.output);
    opts.namespace = args.namespace.clone();
    opts.append = args.append;
    opts.force = args.force;
    opts.wait = args.wait;
    opts.strict = args.strict;
    opts.commit_every = args.commit_every.max(1);
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(progress_bar);
    opts.count_rows = bar.is_some();
    let mut on_progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            show_progress(bar, done, total);
        }
    };
    let summary = convert(&opts, &mut on_progress)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if !args.quiet {
        report(args, &summary);
    }
    Ok(())
}

/// A progress bar whose style waits for the first total: a bar with an ETA when the rows can be
/// estimated, a row counter when they cannot (stdin).
fn progress_bar() -> indicatif::ProgressBar {
    indicatif::ProgressBar::no_length()
}

fn style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template)
        .expect("a valid template")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn Write| {
                let _ = write!(w, "{:.2}M rows/s", average_rate(state) / 1e6);
            },
        )
        .with_key(
            "left",
            |state: &indicatif::ProgressState, w: &mut dyn Write| {
                let rate = average_rate(state);
                let left = state.len().unwrap_or(0).saturating_sub(state.pos()) as f64;
                let _ = if rate > 0.0 {
                    let secs = std::time::Duration::from_secs_f64(left / rate);
                    write!(w, "{:#}", indicatif::HumanDuration(secs))
                } else {
                    w.write_str("-")
                };
            },
        )
}

/// Rows per second since the start. indicatif's own rate is a moving estimate that starts near
/// zero and takes ~15 s to settle: longer than most conversions, so its ETA said minutes for a
/// conversion of seconds.
fn average_rate(state: &indicatif::ProgressState) -> f64 {
    state.pos() as f64 / state.elapsed().as_secs_f64().max(1e-3)
}

/// Shows `done` rows of about `total` (0: unknown), choosing the bar's style on the first call.
fn show_progress(bar: &indicatif::ProgressBar, done: u64, total: u64) {
    let first = bar.position() == 0 && bar.length().is_none();
    if first {
        bar.set_style(if total > 0 {
            // `wide_bar` fills what the counters leave: a fixed width wrapped on narrow terminals.
            style("{wide_bar} {human_pos}/{human_len} rows  {rate}  ETA {left}")
        } else {
            style("{spinner} {human_pos} rows  {rate}")
        });
    }
    if total > 0 {
        bar.set_length(total);
    } else {
        bar.tick();
    }
    bar.set_position(done);
}

fn report(args: &Args, s: &Summary) {
    for bad in &s.bad_rows {
        eprintln!(
            "ferret-convert: {}: skipped {}: {}",
            args.input.display(),
            bad.row,
            bad.reason
        );
    }
    if s.rows_skipped > s.bad_rows.len() as u64 {
        eprintln!(
            "ferret-convert: ... and {}",
            counted(s.rows_skipped - s.bad_rows.len() as u64, "more bad row")
        );
    }
    for w in &s.warnings {
        eprintln!("ferret-convert: warning: {w}");
    }
    let l = &s.link;
    eprintln!(
        "ferret-convert: wrote {} ({}, {}) to {}; {} skipped; {:.2} s, {:.0} spans/s; links: window peak {}, {} late children ({} found by scan), {} late parents, {} adopted from earlier commits, {} waiting for their parent, {} cycles refused",
        counted(s.spans_written, "span"),
        counted(s.runs as u64, "run"),
        counted(s.names as u64, "distinct name"),
        args.output.display(),
        counted(s.rows_skipped, "row"),
        s.elapsed.as_secs_f64(),
        s.spans_per_second(),
        l.window_peak,
        l.misses,
        l.misses_resolved,
        l.late_parents,
        l.adoptions,
        l.orphans,
        l.cycles,
    );
}

/// `n` and `what`, plural unless `n` is 1: "1 row", "3 rows".
fn counted(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
