//! `--folded` and `--flamegraph`: the chosen run's stacks of self time, as folded lines or an
//! interactive SVG (the stacks also feed `--baseline`'s differential graph and the page).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ferret_report::flame::{
    folded_lines, write_flamegraph, write_folded, FoldedLine, DEEPER_FRAMES,
};
use ferret_scan::stacks::{folded_stacks, DRAWN_SHARE, MAX_STACK_FRAMES};

use crate::{warn_broken, Asked};

/// The folded stacks of `run`, with warnings about loops and frames beyond the depth kept;
/// `drawn` folds the stacks too thin to draw into their ancestors (for a flame graph alone).
pub fn stacks(q: &Asked, run: u32, drawn: bool) -> anyhow::Result<Vec<FoldedLine>> {
    let path = q.path;
    let min_share = if drawn { DRAWN_SHARE } else { 0.0 };
    let scratch = crate::source::scratch_dir(path);
    let verify = !q.args.no_verify;
    let folded = folded_stacks(q.file, run, verify, min_share, &scratch, q.release)
        .with_context(|| path.display().to_string())?;
    warn_broken(path, folded.broken_links);
    if folded.deeper_spans > 0 {
        eprintln!(
            "ferret-scan: note: {}: {} spans lie deeper than {MAX_STACK_FRAMES} frames; each stack keeps its {MAX_STACK_FRAMES} outermost frames and folds the rest into '{DEEPER_FRAMES}'",
            path.display(),
            folded.deeper_spans
        );
    }
    Ok(folded_lines(q.file, &folded))
}

/// The flame graph of `run`'s stacks `lines`, as an SVG document.
pub fn svg(q: &Asked, run: u32, lines: &[FoldedLine]) -> anyhow::Result<Vec<u8>> {
    let run_id = q.file.string(run).unwrap_or_default();
    let mut svg = Vec::new();
    write_flamegraph(lines, &format!("ferret · run {run_id}"), &mut svg)?;
    Ok(svg)
}

/// Writes a flame graph's SVG to `--flamegraph`'s path.
pub fn save(path: &Path, svg: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, svg).with_context(|| path.display().to_string())
}

/// Prints the folded lines of `run` (`--folded`) and writes its flame graph (`--flamegraph`).
pub fn write(q: &Asked, run: u32) -> anyhow::Result<()> {
    let lines = stacks(q, run, !q.args.folded)?;
    if let Some(path) = &q.args.flamegraph {
        save(path, &svg(q, run, &lines)?)?;
    }
    if q.args.folded {
        let mut out = std::io::stdout().lock();
        write_folded(&lines, &mut out)?;
        out.flush()?;
    }
    Ok(())
}
