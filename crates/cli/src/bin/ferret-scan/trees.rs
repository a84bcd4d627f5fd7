//! `--tree` and `--chrome-trace`: the slowest call trees of the chosen run, as ferret prints
//! them, as JSON, or as Chrome trace events.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use ferret_format::{Segment, SpanRecord};
use ferret_report::chrome::write_chrome_trace;
use ferret_report::trees::{write_trees_json, write_trees_text, TextStyle};
use ferret_scan::tree::{slowest_trees, CallTree, TreeOptions};
use ferret_scan::ScanOptions;

use crate::select::Selection;
use crate::{create, warn_broken, Asked, Format};

/// The `--limit` slowest trees among the roots the filters choose, each of at most
/// `max_nodes` spans.
pub fn slowest(q: &Asked, chosen: &Selection, max_nodes: usize) -> anyhow::Result<Vec<CallTree>> {
    let (args, file) = (q.args, q.file);
    let tree_opts = TreeOptions {
        limit: if args.limit == 0 {
            usize::MAX
        } else {
            args.limit
        },
        max_nodes,
        min_duration: args.min_ms / 1000.0,
    };
    let verify = !args.no_verify;
    let filter = chosen
        .filter
        .compile(file, Some(chosen.run), verify)
        .with_context(|| q.path.display().to_string())?;
    let keep = |seg: &Segment, r: &SpanRecord| filter.keep(file, seg, r);
    let opts = ScanOptions {
        verify,
        filter: chosen.filter.clone(),
        ..ScanOptions::default()
    };
    let trees = slowest_trees(file, chosen.run, &opts, &tree_opts, &keep, q.release)
        .with_context(|| q.path.display().to_string())?;
    warn_broken(q.path, trees.iter().map(|t| t.broken_links).sum());
    Ok(trees)
}

/// Finds the `--limit` slowest trees among the roots the filters choose and writes them.
pub fn write_trees(q: &Asked, chosen: Selection) -> anyhow::Result<()> {
    let (args, file) = (q.args, q.file);
    let trees = slowest(q, &chosen, args.max_nodes.unwrap_or(10_000))?;
    if let Some(json) = &args.chrome_trace {
        let mut w = create(json)?;
        write_chrome_trace(file, &trees, &mut w)
            .and_then(|()| w.flush())
            .with_context(|| json.display().to_string())?;
        if !args.tree {
            return Ok(());
        }
    }
    let run_id = file.string(chosen.run).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => write_trees_json(file, run_id, &trees, &mut out)?,
        _ => {
            writeln!(
                out,
                "Analyzing Run ID: {run_id}\n\nTop {} Slowest Traces",
                args.limit
            )?;
            let style = TextStyle {
                color: std::io::stdout().is_terminal(),
            };
            write_trees_text(file, &trees, style, &mut out)?;
        }
    }
    Ok(out.flush()?)
}
