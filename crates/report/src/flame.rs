//! Flame graphs: a run's folded stacks (from the scan crate's `stacks.rs`) as folded lines, or
//! drawn by inferno as an interactive SVG, and the differential graph of two runs.

use std::io::{self, Write};

use ferret_format::SpanFile;
use ferret_scan::stacks::{Folded, DEEPER_FRAME};

use crate::text_table::printable;

/// A folded line: `(a;b;c, microseconds of self time)`.
pub type FoldedLine = (String, u64);

/// The frame that stands for every frame deeper than the stacks keep.
pub const DEEPER_FRAMES: &str = "[deeper frames]";

/// The stacks as folded lines, sorted: each frame is a name, its `;` (which separates frames)
/// made `:` and its control characters escaped (a line ends at a newline).
pub fn folded_lines<D: AsRef<[u8]>>(file: &SpanFile<D>, folded: &Folded) -> Vec<FoldedLine> {
    let mut lines: Vec<FoldedLine> = folded
        .stacks
        .iter()
        .map(|stack| {
            let frames: Vec<String> = stack
                .frames
                .iter()
                .map(|&id| match id {
                    DEEPER_FRAME => DEEPER_FRAMES.to_string(),
                    id => printable(file.name(id).unwrap_or("?")).replace(';', ":"),
                })
                .collect();
            (frames.join(";"), stack.weight)
        })
        .collect();
    lines.sort();
    lines
}

/// Writes folded lines.
pub fn write_folded(lines: &[FoldedLine], out: &mut dyn Write) -> io::Result<()> {
    for (path, weight) in lines {
        writeln!(out, "{path} {weight}")?;
    }
    Ok(())
}

/// Draws the folded lines as an interactive flame graph SVG with inferno.
pub fn write_flamegraph(lines: &[FoldedLine], title: &str, out: &mut dyn Write) -> io::Result<()> {
    let text: Vec<String> = lines.iter().map(|(p, w)| format!("{p} {w}")).collect();
    draw(text.iter().map(String::as_str), title, out)
}

/// Draws a differential flame graph (Brendan Gregg's, with inferno's `diff-folded`): the
/// target's stacks and widths, each frame coloured by how its self time changed from the base
/// (red grew, blue shrank, by the size of the change); stacks only the base has are not drawn.
pub fn write_differential_flamegraph(
    base: &[FoldedLine],
    target: &[FoldedLine],
    title: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    let (mut before, mut after) = (Vec::new(), Vec::new());
    write_folded(base, &mut before)?;
    write_folded(target, &mut after)?;
    let mut both = Vec::new();
    let opts = inferno::differential::Options::default();
    inferno::differential::from_readers(opts, &before[..], &after[..], &mut both)?;
    let text = String::from_utf8(both).map_err(io::Error::other)?;
    draw(text.lines(), title, out)
}

/// Renders folded lines (one count, or two for a differential graph) with inferno.
fn draw<'a>(
    lines: impl Iterator<Item = &'a str>,
    title: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_string();
    opts.count_name = "µs self time".to_string();
    inferno::flamegraph::from_lines(&mut opts, lines, out)
        .map_err(|e| io::Error::other(e.to_string()))
}
