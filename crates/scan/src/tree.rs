//! The N slowest call trees of a run, found without a list of all roots: a sharded top-N of
//! roots, then a second pass that gathers only the spans of the chosen trees, each bounded by
//! `max_nodes` (the slowest spans are kept, the rest folded into a summary). When a tree left
//! spans out, a third pass sums the durations of every child of its kept spans: a span's self
//! time is ferret's (its duration minus all its children's), whatever was kept.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use ferret_format::{Segment, SpanFile, SpanRecord};

use crate::chunk::{plan, BlockSelect};
use crate::engine::{fold_per_thread, for_each_chunk_block, AfterChunk, ScanError, ScanOptions};
use crate::sum::ExactSum;

/// How many trees and how much of each.
#[derive(Clone, Debug)]
pub struct TreeOptions {
    /// Trees to return.
    pub limit: usize,
    /// Spans kept per tree; past it the fastest are folded into the tree's elided summary.
    pub max_nodes: usize,
    /// Spans (other than roots) shorter than this many seconds are folded into the summary.
    pub min_duration: f64,
}

/// A root's place in ferret's CLI order: duration descending (null counts as 0), then start
/// time, then position (ferret iterates by start, then sorts stably by duration).
#[derive(Clone, Copy, Debug, PartialEq)]
struct RootRank {
    duration: f64,
    start: f64,
    index: u64,
}

impl Eq for RootRank {}

impl Ord for RootRank {
    /// `Less` means earlier in ferret's order (a slower root).
    fn cmp(&self, o: &Self) -> Ordering {
        o.duration
            .total_cmp(&self.duration)
            .then(self.start.total_cmp(&o.start))
            .then(self.index.cmp(&o.index))
    }
}

impl PartialOrd for RootRank {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// The best `n` ranks seen: a max-heap whose top is the worst kept, so it is evicted first.
#[derive(Clone, Debug)]
struct TopN {
    n: usize,
    heap: BinaryHeap<RootRank>,
}

impl TopN {
    fn new(n: usize) -> TopN {
        TopN {
            n,
            heap: BinaryHeap::with_capacity(n.min(1 << 16) + 1),
        }
    }

    fn offer(&mut self, rank: RootRank) {
        if self.heap.len() < self.n {
            self.heap.push(rank);
        } else if self.heap.peek().is_some_and(|worst| rank < *worst) {
            self.heap.pop();
            self.heap.push(rank);
        }
    }

    fn merge(mut self, other: TopN) -> TopN {
        for rank in other.heap {
            self.offer(rank);
        }
        self
    }
}

/// One span of a tree, by record index, with its children in ferret's order (by start time).
#[derive(Clone, Debug, PartialEq)]
pub struct TreeNode {
    /// Global record index.
    pub index: u64,
    /// ferret's `TraceNode.self_time`: the duration minus the durations of all the span's
    /// children (kept or not), floored at zero.
    pub self_time: f64,
    /// Children, in ferret's order.
    pub children: Vec<TreeNode>,
}

/// A call tree: the root and what was left out of it.
#[derive(Clone, Debug, PartialEq)]
pub struct CallTree {
    /// The root span.
    pub root: TreeNode,
    /// Spans of the tree not kept (past `max_nodes`, or under `min_duration`).
    pub elided_spans: u64,
    /// The time they take under the kept spans, in seconds: the durations of those whose
    /// parent is kept (a left-out span's own left-out children are inside its duration).
    pub elided_seconds: f64,
    /// Spans whose parent links loop (a cycle or a self-parent, only in damaged or hand-made
    /// files), attached to the root instead.
    pub broken_links: u64,
}

/// The spans kept for one tree while gathering: the `max_nodes` longest, and the number of the
/// rest. The root is offered with infinite priority so it is always kept.
#[derive(Clone, Debug, Default)]
struct TreeAccumulator {
    kept: BinaryHeap<std::cmp::Reverse<(OrdF64, u64)>>,
    elided_spans: u64,
}

/// f64 with a total order, for heaps.
#[derive(Clone, Copy, Debug, PartialEq)]
struct OrdF64(f64);
impl Eq for OrdF64 {}
impl Ord for OrdF64 {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl TreeAccumulator {
    fn offer(&mut self, priority: f64, index: u64, max: usize) {
        self.kept.push(std::cmp::Reverse((OrdF64(priority), index)));
        if self.kept.len() > max {
            self.kept.pop();
            self.elided_spans += 1;
        }
    }

    fn merge(mut self, other: TreeAccumulator, max: usize) -> TreeAccumulator {
        self.elided_spans += other.elided_spans;
        for std::cmp::Reverse((OrdF64(p), index)) in other.kept {
            self.offer(p, index, max);
        }
        self
    }

    /// The kept spans' record indices.
    fn kept(&self) -> impl Iterator<Item = u64> + '_ {
        self.kept.iter().map(|std::cmp::Reverse((_, i))| *i)
    }
}

/// What the kept spans of the trees need from every span: the summed durations of each kept
/// span's children (exact sums, so any pass order gives the same bits), and per tree the
/// durations of the left-out spans whose parent is kept.
#[derive(Clone, Debug, Default)]
struct ChildTimes {
    of_kept: foldhash::HashMap<u64, ExactSum>,
    elided: Vec<ExactSum>,
}

impl ChildTimes {
    fn new(trees: usize) -> ChildTimes {
        ChildTimes {
            of_kept: foldhash::HashMap::default(),
            elided: vec![ExactSum::default(); trees],
        }
    }

    fn merge(mut self, other: ChildTimes) -> ChildTimes {
        for (index, sum) in other.of_kept {
            self.of_kept.entry(index).or_default().merge(&sum);
        }
        for (mine, theirs) in self.elided.iter_mut().zip(&other.elided) {
            mine.merge(theirs);
        }
        self
    }
}

/// The `opts.limit` slowest trees of `run` whose roots pass `keep_root`, in ferret's order.
pub fn slowest_trees<D: AsRef<[u8]> + Sync>(
    file: &SpanFile<D>,
    run: u32,
    scan: &ScanOptions,
    opts: &TreeOptions,
    keep_root: &(dyn Fn(&Segment, &SpanRecord) -> bool + Sync),
    after_chunk: AfterChunk,
) -> Result<Vec<CallTree>, ScanError> {
    // Both passes read only blocks holding the run (roots and their trees are the run's).
    let select = BlockSelect::run(run);
    let chunks = plan(file, scan.blocks_per_chunk, &select);
    let links = file.links();
    // Each pass keeps one accumulator per thread (a heap, or one per tree asked for), not per
    // rayon split: with `--limit 0` there is one per root.
    let top = fold_per_thread(
        file,
        &chunks,
        false,
        || TopN::new(opts.limit),
        |top, chunk| {
            for_each_chunk_block(file, chunk, scan.verify, &select, |seg, first, records| {
                for (i, r) in records.iter().enumerate() {
                    let index = first + i as u64;
                    if r.run == run && links.is_root(index, r) && keep_root(seg, r) {
                        top.offer(RootRank {
                            duration: r.duration().unwrap_or(0.0),
                            start: r.start_time,
                            index,
                        });
                    }
                }
            })?;
            Ok(())
        },
        TopN::merge,
        after_chunk,
    )?
    .unwrap_or_else(|| TopN::new(0));
    let mut roots: Vec<RootRank> = top.heap.into_vec();
    roots.sort();
    // Looked up for every record of the run: with std's SipHash, hashing was a quarter of the
    // pass, and foldhash still a sixth; a binary search of the few roots asked for is a few
    // compares.
    let mut slots: Vec<(u64, usize)> = roots
        .iter()
        .enumerate()
        .map(|(s, r)| (r.index, s))
        .collect();
    slots.sort_unstable();
    let slot_of = |root: u64| {
        slots
            .binary_search_by_key(&root, |&(index, _)| index)
            .ok()
            .map(|at| slots[at].1)
    };
    let max = opts.max_nodes.max(1);
    let empty = || vec![TreeAccumulator::default(); roots.len()];
    let gathered = fold_per_thread(
        file,
        &chunks,
        false,
        empty,
        |accs, chunk| {
            for_each_chunk_block(file, chunk, scan.verify, &select, |_, first, records| {
                for (i, r) in records.iter().enumerate() {
                    if r.run != run {
                        continue;
                    }
                    let root = file.root_of(r);
                    let Some(s) = slot_of(root) else {
                        continue;
                    };
                    let index = first + i as u64;
                    let duration = r.duration().unwrap_or(0.0);
                    if index == root {
                        accs[s].offer(f64::INFINITY, index, max);
                    } else if duration < opts.min_duration {
                        accs[s].elided_spans += 1;
                    } else {
                        accs[s].offer(duration, index, max);
                    }
                }
            })?;
            Ok(())
        },
        |a, b| a.into_iter().zip(b).map(|(x, y)| x.merge(y, max)).collect(),
        after_chunk,
    )?
    .unwrap_or_else(empty);
    let times = if gathered.iter().any(|acc| acc.elided_spans > 0) {
        child_times_of_every_span(file, run, scan, &gathered, after_chunk)?
    } else {
        child_times_of_kept_spans(file, &gathered)
    };
    let trees: Vec<CallTree> = roots
        .iter()
        .zip(gathered)
        .enumerate()
        .map(|(s, (root, acc))| build(file, root.index, acc, &times, s))
        .collect();
    if scan.verify {
        verify_tag_heaps(file, &trees)?;
    }
    Ok(trees)
}

/// The child times of the kept spans when every span of every tree was kept: their children
/// are kept spans too.
fn child_times_of_kept_spans<D: AsRef<[u8]>>(
    file: &SpanFile<D>,
    gathered: &[TreeAccumulator],
) -> ChildTimes {
    let mut times = ChildTimes::new(gathered.len());
    for acc in gathered {
        for index in acc.kept() {
            let Some(r) = file.record(index) else {
                continue;
            };
            if let (Some(p), Some(d)) = (file.parent_of(index, r), r.duration()) {
                times.of_kept.entry(p).or_default().add(d);
            }
        }
    }
    times
}

/// The child times of the kept spans when some trees left spans out: one more pass over the
/// run's blocks adds every span's duration to its parent's, when the parent is kept, and to
/// its tree's elided time when the span itself is not. Memory is per kept span.
fn child_times_of_every_span<D: AsRef<[u8]> + Sync>(
    file: &SpanFile<D>,
    run: u32,
    scan: &ScanOptions,
    gathered: &[TreeAccumulator],
    after_chunk: AfterChunk,
) -> Result<ChildTimes, ScanError> {
    let kept_in: foldhash::HashMap<u64, usize> = gathered
        .iter()
        .enumerate()
        .flat_map(|(s, acc)| acc.kept().map(move |i| (i, s)))
        .collect();
    let select = BlockSelect::run(run);
    let chunks = plan(file, scan.blocks_per_chunk, &select);
    let new = || ChildTimes::new(gathered.len());
    let times = fold_per_thread(
        file,
        &chunks,
        false,
        new,
        |times, chunk| {
            for_each_chunk_block(file, chunk, scan.verify, &select, |_, first, records| {
                for (i, r) in records.iter().enumerate() {
                    let index = first + i as u64;
                    let (Some(d), true) = (r.duration(), r.run == run) else {
                        continue;
                    };
                    let Some(p) = file.parent_of(index, r) else {
                        continue;
                    };
                    let Some(&tree) = kept_in.get(&p) else {
                        continue;
                    };
                    times.of_kept.entry(p).or_default().add(d);
                    if !kept_in.contains_key(&index) {
                        times.elided[tree].add(d);
                    }
                }
            })?;
            Ok(())
        },
        ChildTimes::merge,
        after_chunk,
    )?;
    Ok(times.unwrap_or_else(new))
}

/// Checks the tag heap of every segment a tree's span lies in: trees print tags, statuses and
/// hashed ids from there, and a damaged byte must fail the scan, not change what is printed.
fn verify_tag_heaps<D: AsRef<[u8]>>(
    file: &SpanFile<D>,
    trees: &[CallTree],
) -> Result<(), ScanError> {
    let mut segments = std::collections::BTreeSet::new();
    let mut stack: Vec<&TreeNode> = trees.iter().map(|t| &t.root).collect();
    while let Some(node) = stack.pop() {
        if let Some(seg) = file.segment_of(node.index) {
            segments.insert(seg.index);
        }
        stack.extend(&node.children);
    }
    for s in segments {
        file.verify_tags(&file.segments()[s])?;
    }
    Ok(())
}

/// Most ancestors followed to find a kept one: a guard against link cycles in damaged files.
const MAX_DEPTH: usize = 100_000;

/// A span's place among its siblings in ferret's order: by start time (ferret iterates `ORDER BY
/// timestamp`), then by position, whatever order the records arrived in.
fn ferret_order<D: AsRef<[u8]>>(file: &SpanFile<D>, index: u64) -> (OrdF64, u64) {
    let start = file.record(index).map_or(f64::INFINITY, |r| r.start_time);
    (OrdF64(start), index)
}

/// Links the kept spans of one tree: each under its parent if kept, else under its nearest
/// kept ancestor, else under the root. Children end up in ferret's order.
fn build<D: AsRef<[u8]>>(
    file: &SpanFile<D>,
    root: u64,
    acc: TreeAccumulator,
    times: &ChildTimes,
    tree: usize,
) -> CallTree {
    let mut kept: Vec<u64> = acc.kept().collect();
    // Each key read once: a key reads its record, and comparing by looking both up was most
    // of building a tree of thousands of spans.
    kept.sort_by_cached_key(|&i| ferret_order(file, i));
    let parent_of = |i: u64| file.record(i).and_then(|r| file.parent_of(i, r));
    let is_kept: foldhash::HashSet<u64> = kept.iter().copied().collect();
    let mut children: foldhash::HashMap<u64, Vec<u64>> = foldhash::HashMap::default();
    let mut broken_links = 0;
    for &index in kept.iter().filter(|&&i| i != root) {
        let mut up = parent_of(index);
        let mut steps = 0;
        while let Some(p) = up {
            if is_kept.contains(&p) || p == index || steps >= MAX_DEPTH {
                break;
            }
            up = parent_of(p);
            steps += 1;
        }
        let looped = up == Some(index) || steps >= MAX_DEPTH;
        broken_links += u64::from(looped);
        let parent = up
            .filter(|p| is_kept.contains(p) && !looped)
            .unwrap_or(root);
        children.entry(parent).or_default().push(index);
    }
    // Kept spans that reach the root only through a loop among themselves would never print:
    // cut each such loop by attaching its spans to the root.
    let reachable = reachable_from(root, &children);
    let stranded: Vec<u64> = kept
        .iter()
        .copied()
        .filter(|i| *i != root && !reachable.contains(i))
        .collect();
    for lost in &stranded {
        for list in children.values_mut() {
            list.retain(|c| c != lost);
        }
        children.entry(root).or_default().push(*lost);
    }
    broken_links += stranded.len() as u64;
    if let Some(list) = children.get_mut(&root) {
        list.sort_by_cached_key(|&i| ferret_order(file, i));
    }
    let self_time = |index: u64| {
        let duration = file.record(index).and_then(|r| r.duration()).unwrap_or(0.0);
        let children = times.of_kept.get(&index).map_or(0.0, ExactSum::value);
        (duration - children).max(0.0)
    };
    CallTree {
        root: assemble(root, &mut children, self_time),
        elided_spans: acc.elided_spans,
        elided_seconds: times.elided[tree].value(),
        broken_links,
    }
}

/// The spans reachable from `root` through the child lists.
fn reachable_from(
    root: u64,
    children: &foldhash::HashMap<u64, Vec<u64>>,
) -> foldhash::HashSet<u64> {
    let mut seen = foldhash::HashSet::from_iter([root]);
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        for &c in children.get(&n).into_iter().flatten() {
            if seen.insert(c) {
                stack.push(c);
            }
        }
    }
    seen
}

/// Turns the child lists into nodes without recursion (trees can be millions deep in damaged
/// input; here they are at most `max_nodes`, but the stack stays flat either way).
fn assemble(
    root: u64,
    children: &mut foldhash::HashMap<u64, Vec<u64>>,
    self_time: impl Fn(u64) -> f64,
) -> TreeNode {
    // Post-order over an explicit stack: (index, child nodes built so far).
    let mut stack: Vec<(u64, std::vec::IntoIter<u64>, Vec<TreeNode>)> = vec![(
        root,
        children.remove(&root).unwrap_or_default().into_iter(),
        Vec::new(),
    )];
    loop {
        let next = stack.last_mut().and_then(|(_, pending, _)| pending.next());
        match next {
            Some(child) => {
                let grand = children.remove(&child).unwrap_or_default();
                stack.push((child, grand.into_iter(), Vec::new()));
            }
            None => {
                let (index, _, built) = stack.pop().expect("the stack holds the root");
                let node = TreeNode {
                    index,
                    self_time: self_time(index),
                    children: built,
                };
                match stack.last_mut() {
                    Some((_, _, siblings)) => siblings.push(node),
                    None => return node,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_keeps_ferrets_order_under_any_merge() {
        let ranks: Vec<RootRank> = (0..50u64)
            .map(|i| RootRank {
                duration: (i % 7) as f64,
                start: (i % 5) as f64,
                index: i,
            })
            .collect();
        let mut sorted = ranks.clone();
        sorted.sort();
        let mut a = TopN::new(6);
        let mut b = TopN::new(6);
        for (i, r) in ranks.iter().enumerate() {
            if i % 3 == 0 {
                a.offer(*r)
            } else {
                b.offer(*r)
            }
        }
        let mut top = a.merge(b).heap.into_vec();
        top.sort();
        assert_eq!(top, sorted[..6]);
        assert_eq!(top[0].duration, 6.0);
        assert!(top.windows(2).all(|w| w[0] < w[1]));
    }
}
