//! `--tree` and `--chrome-trace`: the slowest call trees of the population, as ferret prints
//! them, as JSON, or as Chrome trace events.

use std::io::Write;

use anyhow::Context;
use ferret_format::{Segment, SpanRecord};
use ferret_report::chrome::write_chrome_trace;
use ferret_report::trees::{write_trees_json, write_trees_text, TextStyle, TreeIn};
use ferret_scan::tree::{slowest_trees, CallTree, TreeOptions};
use ferret_scan::ScanOptions;
use memmap2::Mmap;

use crate::scan::select::{Member, Selection};
use crate::scan::{create, warn_broken, Asked, Format};

/// The `--limit` slowest trees among the roots the filters choose, across the population (each
/// run's slowest, then the slowest of those), each of at most `max_nodes` spans, with the run
/// it comes from; slowest first.
pub fn slowest(
    q: &Asked,
    chosen: &Selection,
    max_nodes: usize,
) -> anyhow::Result<Vec<(Member, CallTree)>> {
    let args = q.args;
    let limit = if args.limit == 0 {
        usize::MAX
    } else {
        args.limit
    };
    let tree_opts = TreeOptions {
        limit,
        max_nodes,
        min_duration: args.min_ms / 1000.0,
    };
    let verify = !args.no_verify;
    let mut all = Vec::new();
    for &m in &chosen.members {
        let f = &q.files[m.file];
        let file = &f.file;
        let filter = chosen
            .filter
            .compile(file, Some(m.run), verify)
            .with_context(|| f.ctx())?;
        let keep = |seg: &Segment, r: &SpanRecord| filter.keep(file, seg, r);
        let opts = ScanOptions {
            verify,
            filter: chosen.filter.clone(),
            ..ScanOptions::default()
        };
        let trees = slowest_trees(file, m.run, &opts, &tree_opts, &keep, &f.release())
            .with_context(|| f.ctx())?;
        warn_broken(&f.path, trees.iter().map(|t| t.broken_links).sum());
        all.extend(trees.into_iter().map(|t| (m, t)));
    }
    if chosen.members.len() > 1 {
        // Each run's trees come slowest first; across runs, by the root's duration, ties in
        // the order given.
        let duration = |(m, t): &(Member, CallTree)| {
            q.files[m.file]
                .file
                .record(t.root.index)
                .and_then(|r| r.duration())
                .unwrap_or(0.0)
        };
        all.sort_by(|a, b| duration(b).total_cmp(&duration(a)));
        all.truncate(limit);
    }
    Ok(all)
}

/// The trees to print, each with its file, and its origin when the population is several runs.
pub fn with_origins<'a>(
    q: &'a Asked,
    chosen: &Selection,
    trees: &'a [(Member, CallTree)],
) -> Vec<TreeIn<'a, Mmap>> {
    trees
        .iter()
        .map(|(m, tree)| TreeIn {
            file: &q.files[m.file].file,
            tree,
            origin: (!chosen.is_one_run()).then(|| {
                let given = q.files[m.file].given.display().to_string();
                (given, chosen.run_id(q, *m))
            }),
        })
        .collect()
}

/// Finds the `--limit` slowest trees among the roots the filters choose and writes them.
pub fn write_trees(q: &Asked, chosen: Selection) -> anyhow::Result<()> {
    let args = q.args;
    let trees = slowest(q, &chosen, args.max_nodes.unwrap_or(10_000))?;
    let shown = with_origins(q, &chosen, &trees);
    if let Some(json) = &args.chrome_trace {
        let mut w = create(json)?;
        write_chrome_trace(&shown, &mut w)
            .and_then(|()| w.flush())
            .with_context(|| json.display().to_string())?;
        if !args.tree {
            return Ok(());
        }
    }
    let mut out = q.args.sink.out();
    match args.format {
        Format::Json => {
            let fields = chosen.with_population(q, header_json(q, &chosen));
            let fields = fields.as_object().cloned().unwrap_or_default();
            write_trees_json(&fields, &shown, &mut out)?
        }
        _ => {
            let analyzing = match chosen.one_run_id(q) {
                Some(run_id) => format!("Run ID: {run_id}"),
                None => chosen.describe(q),
            };
            writeln!(
                out,
                "Analyzing {analyzing}\n\nTop {} Slowest Traces",
                args.limit
            )?;
            let style = TextStyle {
                color: q.args.sink.is_terminal(),
            };
            write_trees_text(&shown, style, &mut out)?;
        }
    }
    Ok(out.flush()?)
}

/// `{"run_id"}` of a one-run population (several runs' get the population instead).
fn header_json(q: &Asked, chosen: &Selection) -> serde_json::Value {
    serde_json::json!({"run_id": chosen.one_run_id(q)})
}
