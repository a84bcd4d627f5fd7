//! `--html OUT.html`: one self-contained page of the chosen run, built from the same reports as
//! the text answers (and, with `--baseline`, the comparison's).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ferret_report::comparison::ComparisonReport;
use ferret_report::html::{write_page, Page};
use ferret_report::trees::write_trees_html;

use crate::select::Selection;
use crate::{create, flame, local, local_time, stats, timeline, trees, Asked};

/// Spans kept per tree on a page unless `--max-nodes` says otherwise.
const PAGE_MAX_NODES: usize = 300;

/// Scans the chosen run (statistics, timeline, stacks, slowest trees) and writes the page to
/// `page` (and its flame graph to `flamegraph`, when given), with the comparison and its
/// differential flame graph (an SVG document) when a baseline was given.
pub fn write_html(
    q: &Asked,
    (page, flamegraph): (&Path, Option<&Path>),
    chosen: Selection,
    comparison: Option<(&ComparisonReport, String)>,
) -> anyhow::Result<()> {
    let (args, file) = (q.args, q.file);
    let functions = stats::report(q, chosen.clone(), 0)?;
    let timeline = timeline::timeline(q, chosen.clone())?;
    let stacks = flame::stacks(q, chosen.run, true)?;
    let svg = flame::svg(q, chosen.run, &stacks)?;
    if let Some(path) = flamegraph {
        flame::save(path, &svg)?;
    }
    let max_nodes = args.max_nodes.unwrap_or(PAGE_MAX_NODES);
    let slowest = trees::slowest(q, &chosen, max_nodes)?;
    let mut trees_html = Vec::new();
    write_trees_html(file, &slowest, &mut trees_html)?;
    let run = chosen.runs.iter().find(|r| r.run == chosen.run);
    let mut facts = vec![
        ("File".to_string(), args.file.display().to_string()),
        ("Run".to_string(), functions.run_id.clone()),
        (
            "Spans".to_string(),
            format!("{} of {} in the file", functions.spans, file.record_count()),
        ),
    ];
    if let Some(r) = run {
        facts.push(("First start".into(), local_time(r.first_start)));
        facts.push(("Last start".into(), local_time(r.last_start)));
        facts.push((
            "Wall time".into(),
            format!("{:.3} s", r.last_end - r.first_start),
        ));
    }
    facts.push(("Format version".into(), file.version().to_string()));
    let title = args.file.file_name().map_or_else(
        || args.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let page_parts = Page {
        title,
        facts,
        functions: &functions,
        timeline: &timeline,
        local_time: &local_time,
        axis_time: &time_of_day,
        flamegraph_svg: String::from_utf8(svg).context("the flame graph is not UTF-8")?,
        trees_html: String::from_utf8(trees_html).context("a tree is not UTF-8")?,
        comparison,
    };
    let mut w = create(page)?;
    write_page(&page_parts, &mut w)
        .and_then(|()| w.flush())
        .with_context(|| page.display().to_string())
}

/// The local time of day with milliseconds, for the chart's axis.
fn time_of_day(t: f64) -> String {
    local(t, "%H:%M:%S%.3f")
}
