//! `--folded` and `--flamegraph`: the population's stacks of self time, as folded lines or an
//! interactive SVG (the stacks also feed a comparison's differential graph and the page).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ferret_report::flame::{
    folded_lines, write_flamegraph, write_folded, FoldedLine, DEEPER_FRAMES,
};
use ferret_scan::stacks::{folded_stacks, DRAWN_SHARE, MAX_STACK_FRAMES};

use crate::scan::select::Selection;
use crate::scan::{warn_broken, Asked};

/// The folded stacks of the population (each run's, then the same stacks' weights added), with
/// warnings about loops and frames beyond the depth kept; `drawn` folds the stacks too thin to
/// draw into their ancestors (for a flame graph alone).
pub fn stacks(q: &Asked, chosen: &Selection, drawn: bool) -> anyhow::Result<Vec<FoldedLine>> {
    let min_share = if drawn { DRAWN_SHARE } else { 0.0 };
    let verify = !q.args.no_verify;
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for &m in &chosen.members {
        let f = &q.files[m.file];
        let scratch = crate::scan::source::scratch_dir(&f.path);
        let folded = folded_stacks(&f.file, m.run, verify, min_share, &scratch, &f.release())
            .with_context(|| f.ctx())?;
        warn_broken(&f.path, folded.broken_links);
        if folded.deeper_spans > 0 {
            eprintln!(
                "ferret-scan: note: {}: {} spans lie deeper than {MAX_STACK_FRAMES} frames; each stack keeps its {MAX_STACK_FRAMES} outermost frames and folds the rest into '{DEEPER_FRAMES}'",
                f.path.display(),
                folded.deeper_spans
            );
        }
        if chosen.is_one_run() {
            return Ok(folded_lines(&f.file, &folded));
        }
        for (stack, weight) in folded_lines(&f.file, &folded) {
            *merged.entry(stack).or_default() += weight;
        }
    }
    Ok(merged.into_iter().collect())
}

/// The flame graph of the stacks `lines`, as an SVG document titled by the population.
pub fn svg(q: &Asked, chosen: &Selection, lines: &[FoldedLine]) -> anyhow::Result<Vec<u8>> {
    let title = match chosen.one_run_id(q) {
        Some(run_id) => format!("ferret · run {run_id}"),
        None => format!("ferret · {}", chosen.describe(q)),
    };
    let mut svg = Vec::new();
    write_flamegraph(lines, &title, &mut svg)?;
    Ok(svg)
}

/// Writes a flame graph's SVG to `--flamegraph`'s path.
pub fn save(path: &Path, svg: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, svg).with_context(|| path.display().to_string())
}

/// Prints the population's folded lines (`--folded`) and writes its flame graph
/// (`--flamegraph`).
pub fn write(q: &Asked, chosen: &Selection) -> anyhow::Result<()> {
    let lines = stacks(q, chosen, !q.args.folded)?;
    if let Some(path) = &q.args.flamegraph {
        save(path, &svg(q, chosen, &lines)?)?;
    }
    if q.args.folded {
        let mut out = q.args.sink.out();
        write_folded(&lines, &mut out)?;
        out.flush()?;
    }
    Ok(())
}
