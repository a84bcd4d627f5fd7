//! The slowest trees as Chrome trace-event JSON, which Perfetto UI and speedscope open.

use std::io::{self, Write};

use ferret_format::SpanFile;
use ferret_scan::tree::TreeNode;

use crate::trees::TreeIn;

/// One event of a Chrome trace.
struct Placed {
    index: u64,
    track: usize,
}

/// Assigns the spans of a tree to tracks so that each track nests properly: a span goes on its
/// parent's track when it fits inside what is open there, else on the first track where it fits,
/// else on a new one. Concurrent children (asyncio tasks, threads) thus get tracks of their own.
fn place<D: AsRef<[u8]>>(
    file: &SpanFile<D>,
    tree: &TreeNode,
    tracks: &mut Vec<Vec<f64>>,
    placed: &mut Vec<Placed>,
) {
    let interval = |i: u64| {
        let r = file.record(i);
        let s = r.map_or(0.0, |r| r.start_time);
        (s, s + r.and_then(|r| r.duration()).unwrap_or(0.0))
    };
    // Pre-order with parents' tracks, children by start time.
    let mut stack: Vec<(&TreeNode, Option<usize>)> = vec![(tree, None)];
    while let Some((node, parent_track)) = stack.pop() {
        let (start, end) = interval(node.index);
        let fits = |open: &mut Vec<f64>| {
            while open.last().is_some_and(|&e| e <= start) {
                open.pop();
            }
            open.last().is_none_or(|&e| end <= e)
        };
        let mut chosen = parent_track.filter(|&t| fits(&mut tracks[t]));
        if chosen.is_none() {
            chosen = (0..tracks.len()).find(|&t| fits(&mut tracks[t]));
        }
        let track = chosen.unwrap_or_else(|| {
            tracks.push(Vec::new());
            tracks.len() - 1
        });
        tracks[track].push(end);
        placed.push(Placed {
            index: node.index,
            track,
        });
        let mut children: Vec<&TreeNode> = node.children.iter().collect();
        children.sort_by(|a, b| interval(b.index).0.total_cmp(&interval(a.index).0));
        for child in children {
            stack.push((child, Some(track)));
        }
    }
}

/// Writes the trees as Chrome trace-event JSON (`ph: "X"`, microseconds), one process per tree
/// and one thread id per track, which Perfetto UI and speedscope open. A population's trees get
/// a process name each: the file and run they come from.
pub fn write_chrome_trace<D: AsRef<[u8]>>(
    trees: &[TreeIn<D>],
    out: &mut dyn Write,
) -> io::Result<()> {
    let base = trees
        .iter()
        .filter_map(|t| t.file.record(t.tree.root.index))
        .map(|r| r.start_time)
        .fold(f64::INFINITY, f64::min);
    // Every string goes through serde_json, which escapes what JSON needs escaped (a hashed id
    // keeps the source's text, which may hold `"` or `\\`).
    let text = |s: &str| serde_json::Value::from(s).to_string();
    write!(out, "{{\"traceEvents\":[")?;
    let mut first = true;
    for (pid, TreeIn { file, tree, origin }) in trees.iter().enumerate() {
        if let Some((path, run)) = origin {
            write!(
                out,
                "{}{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{},\"args\":{{\"name\":{}}}}}",
                if first { "" } else { "," },
                pid + 1,
                text(&format!("{path} · run {run}")),
            )?;
            first = false;
        }
        let mut tracks = Vec::new();
        let mut placed = Vec::new();
        place(file, &tree.root, &mut tracks, &mut placed);
        for p in placed {
            let (Some(seg), Some(r)) = (file.segment_of(p.index), file.record(p.index)) else {
                continue;
            };
            let name = text(file.name(r.name).unwrap_or("?"));
            let status = text(file.status(seg, r));
            let span_id = text(&file.span_id_text(seg, r));
            write!(
                out,
                "{}{{\"name\":{name},\"ph\":\"X\",\"ts\":{:.3},\"dur\":{:.3},\"pid\":{},\"tid\":{},\"args\":{{\"span_id\":{span_id},\"status\":{status},\"tags\":{}}}}}",
                if first { "" } else { "," },
                (r.start_time - base) * 1e6,
                r.duration().unwrap_or(0.0) * 1e6,
                pid + 1,
                p.track + 1,
                file.extras(seg, r).tags_json(),
            )?;
            first = false;
        }
    }
    writeln!(out, "],\"displayTimeUnit\":\"ms\"}}")
}
