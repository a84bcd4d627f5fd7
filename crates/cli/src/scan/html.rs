//! `--html OUT.html`: one self-contained page of the population, built from the same reports as
//! the text answers (and, with a baseline, the comparison's).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ferret_report::comparison::ComparisonReport;
use ferret_report::html::{write_page, Page};
use ferret_report::trees::write_trees_html;

use crate::scan::select::Selection;
use crate::scan::{create, flame, local, local_time, stats, timeline, trees, Asked};

/// Spans kept per tree on a page unless `--max-nodes` says otherwise.
const PAGE_MAX_NODES: usize = 300;

/// Scans the population (statistics, timeline, stacks, slowest trees) and writes the page to
/// `page` (and its flame graph to `flamegraph`, when given), with the comparison and its
/// differential flame graph (an SVG document) when a baseline was given.
pub fn write_html(
    q: &Asked,
    (page, flamegraph): (&Path, Option<&Path>),
    chosen: Selection,
    comparison: Option<(&ComparisonReport, String)>,
) -> anyhow::Result<()> {
    let args = q.args;
    let functions = stats::report(q, &chosen, 0)?;
    let timeline = timeline::timeline(q, &chosen)?;
    let stacks = flame::stacks(q, &chosen, true)?;
    let svg = flame::svg(q, &chosen, &stacks)?;
    if let Some(path) = flamegraph {
        flame::save(path, &svg)?;
    }
    let max_nodes = args.max_nodes.unwrap_or(PAGE_MAX_NODES);
    let slowest = trees::slowest(q, &chosen, max_nodes)?;
    let mut trees_html = Vec::new();
    write_trees_html(&trees::with_origins(q, &chosen, &slowest), &mut trees_html)?;
    let page_parts = Page {
        title: title(q, &chosen),
        facts: facts(q, &chosen, functions.spans),
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

/// The page's title: the file's name, or the population's size.
fn title(q: &Asked, chosen: &Selection) -> String {
    match chosen.members[..] {
        [m] => {
            let given = &q.files[m.file].given;
            given.file_name().map_or_else(
                || given.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        }
        _ => chosen.describe(q),
    }
}

/// The header's facts: the files and runs (each run's first and last start and wall time when
/// the population is one run), the spans, the format version.
fn facts(q: &Asked, chosen: &Selection, spans: u64) -> Vec<(String, String)> {
    let mut facts = Vec::new();
    let given = |file: usize| q.files[file].given.display().to_string();
    let records = stats::records(q, chosen);
    if let [m] = chosen.members[..] {
        facts.push(("File".to_string(), given(m.file)));
        facts.push(("Run".to_string(), chosen.run_id(q, m)));
        facts.push((
            "Spans".to_string(),
            format!("{spans} of {records} in the file"),
        ));
        if let Some(r) = chosen.summary(m) {
            facts.push(("First start".into(), local_time(r.first_start)));
            facts.push(("Last start".into(), local_time(r.last_start)));
            facts.push((
                "Wall time".into(),
                format!("{:.3} s", r.last_end - r.first_start),
            ));
        }
        facts.push((
            "Format version".into(),
            q.files[m.file].file.version().to_string(),
        ));
        return facts;
    }
    let files: Vec<String> = chosen.files().map(given).collect();
    facts.push((format!("Files ({})", files.len()), files.join(", ")));
    let runs: Vec<String> = chosen
        .members
        .iter()
        .map(|&m| format!("{} ({})", chosen.run_id(q, m), given(m.file)))
        .collect();
    facts.push((format!("Runs ({})", runs.len()), runs.join(", ")));
    facts.push((
        "Spans".to_string(),
        format!("{spans} of {records} in the files"),
    ));
    let window = |t: Option<f64>| t.map_or_else(|| "-".to_string(), local_time);
    if chosen.filter.since.is_some() || chosen.filter.until.is_some() {
        facts.push(("Since".into(), window(chosen.filter.since)));
        facts.push(("Until".into(), window(chosen.filter.until)));
    }
    facts
}

/// The local time of day with milliseconds, for the chart's axis.
fn time_of_day(t: f64) -> String {
    local(t, "%H:%M:%S%.3f")
}
