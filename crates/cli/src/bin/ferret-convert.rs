//! `ferret-convert`: argument parsing, progress and messages over the `ferret-convert` crate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferret_cli::progress::Progress;
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
    let bar = Progress::on_terminal(!args.quiet);
    opts.count_rows = bar.is_some();
    let mut on_progress = |done: u64, total: u64| Progress::show(&bar, done, total);
    let summary = convert(&opts, &mut on_progress)?;
    Progress::finish(bar);
    if !args.quiet {
        report(args, &summary);
    }
    Ok(())
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
