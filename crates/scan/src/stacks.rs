//! The stacks of a run for its flame graph: each span's path of names from its root, weighed by
//! the span's own self time, folded into one line per distinct path (memory per distinct stack,
//! not per span). The report crate writes them as folded lines or draws them with inferno.

use std::ops::Range;
use std::path::Path;

use ferret_format::{SpanFile, SpanRecord};

use crate::chunk::{plan, BlockSelect, BLOCKS_PER_CHUNK};
use crate::derived::{Derive, DerivedTable};
use crate::engine::{for_each_chunk_block, release, AfterChunk, ScanError};
use crate::pass::Behind;

/// Parent stacks remembered by record index before the cache is cleared; a miss only costs a
/// walk up the parent links through the map.
const STACK_CACHE: usize = 1 << 20;
/// Frames kept in a stack, from the root down; deeper spans are folded into one
/// [`DEEPER_FRAMES`] frame under the last kept one. Like perf's `kernel.perf_event_max_stack`:
/// a 50,000-deep chain would otherwise make 50,000 stacks of up to 50,000 frames, gigabytes of
/// text that no flame graph can show.
pub const MAX_STACK_FRAMES: u32 = 512;
/// The share of a run's time below which a stack cannot show in a flame graph, with a margin:
/// inferno leaves out frames narrower than 0.1 pixel of its 1180, a share of 8.5e-5.
pub const DRAWN_SHARE: f64 = 1e-5;
/// The frame that stands for everything deeper than [`MAX_STACK_FRAMES`] (no real name id is
/// this large); a folded line names it `[deeper frames]`.
pub const DEEPER_FRAME: u32 = u32::MAX - 1;

/// Stack paths interned as (parent path, name) pairs, with their depth and the self time of
/// their spans.
#[derive(Default)]
struct Stacks {
    ids: foldhash::HashMap<(u32, u32), u32>,
    paths: Vec<(u32, u32)>,
    depth: Vec<u32>,
    /// The summed self times (ferret's, per span) of the spans with this stack.
    own: Vec<f64>,
}

const NO_STACK: u32 = u32::MAX;

impl Stacks {
    /// The stack `parent;name`, or the deeper-frames stack once `parent` is as deep as allowed.
    fn intern(&mut self, parent: u32, name: u32) -> u32 {
        let depth = match parent {
            NO_STACK => 1,
            p if self.paths[p as usize].1 == DEEPER_FRAME => return p,
            p if self.depth[p as usize] >= MAX_STACK_FRAMES && name != DEEPER_FRAME => {
                return self.intern(p, DEEPER_FRAME);
            }
            p => self.depth[p as usize] + 1,
        };
        *self.ids.entry((parent, name)).or_insert_with(|| {
            self.paths.push((parent, name));
            self.depth.push(depth);
            self.own.push(0.0);
            (self.paths.len() - 1) as u32
        })
    }

    /// The weight each stack's line carries: its spans' self time, and with `min_share` > 0
    /// the self time of every descendant whose inclusive time is below that share of the
    /// whole, folded into its nearest ancestor that is not (roots are always kept, so the whole
    /// stays the same). A parent's id is below its children's (it was interned first), so one
    /// pass down and one up suffice.
    fn weights(&self, min_share: f64) -> Vec<f64> {
        let own = &self.own;
        if min_share <= 0.0 {
            return own.clone();
        }
        let mut inclusive = own.clone();
        for id in (0..self.paths.len()).rev() {
            let parent = self.paths[id].0;
            if parent != NO_STACK {
                inclusive[parent as usize] += inclusive[id];
            }
        }
        let least = own.iter().sum::<f64>() * min_share;
        let mut into: Vec<u32> = Vec::with_capacity(self.paths.len());
        let mut folded = vec![0.0; self.paths.len()];
        for (id, &(parent, _)) in self.paths.iter().enumerate() {
            let kept = parent == NO_STACK || inclusive[id] >= least;
            let target = if kept {
                id as u32
            } else {
                into[parent as usize]
            };
            into.push(target);
            folded[target as usize] += own[id];
        }
        folded
    }

    /// True when stack `id` is the deeper-frames stack.
    fn is_cut(&self, id: u32) -> bool {
        id != NO_STACK && self.paths[id as usize].1 == DEEPER_FRAME
    }

    /// The name ids of stack `id` from its root down ([`DEEPER_FRAME`] for the cut).
    fn frames(&self, mut id: u32) -> Vec<u32> {
        let mut frames = Vec::new();
        while id != NO_STACK {
            let (parent, name) = self.paths[id as usize];
            frames.push(name);
            id = parent;
        }
        frames.reverse();
        frames
    }
}

/// A run's stack: its frames' name ids from the root down ([`DEEPER_FRAME`] stands for every
/// frame past [`MAX_STACK_FRAMES`]) and its weight, microseconds of its spans' self time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoldedStack {
    /// Name ids, root first.
    pub frames: Vec<u32>,
    /// Microseconds of self time.
    pub weight: u64,
}

/// The stacks of a run, the spans folded past the depth cap, and the number of spans whose
/// parent links loop.
pub struct Folded {
    /// One per distinct stack path with a weight, in no particular order.
    pub stacks: Vec<FoldedStack>,
    /// Spans deeper than [`MAX_STACK_FRAMES`], folded into the [`DEEPER_FRAME`] frame.
    pub deeper_spans: u64,
    /// Spans whose ancestor walk looped (damaged or hand-made files); their stack stops there.
    pub broken_links: u64,
}

/// The stacks of run `run`, one per distinct stack path. A stack's weight is the self time of its spans, each ferret's
/// `TraceNode.self_time` (its duration minus all its children's, floored at zero), so a flame
/// graph agrees span by span with the trees and the Parquet export. Those per-span child times
/// come from a first pass into a [`DerivedTable`] (a mapped temporary file in `scratch`, 16
/// bytes per record of the run's range); the stacks pass then keeps memory per distinct stack,
/// not per span.
///
/// With `verify`, every block read is checked as it is folded: ancestors may be read from a
/// block not checked yet, but the whole pass ends before anything is printed, so a damaged
/// block fails it instead of showing.
///
/// `min_share` (0: every stack) is for a flame graph: a stack whose inclusive time is below
/// that share of the run's is folded into its nearest ancestor above it, so the ancestors keep
/// their widths and the graph draws the same frames, as wide (at [`DRAWN_SHARE`]), from far
/// fewer lines: a 2M-span run of the bench trace, 1.35M distinct stacks, drew in 0.7 s and
/// 155 MB instead of 2.9 s and 437 MB (from the complete lines, with `--folded`). Only places
/// move: the thin stacks' time joins their ancestor's own, which inferno draws before its
/// children.
pub fn folded_stacks<D: AsRef<[u8]>>(
    file: &SpanFile<D>,
    run: u32,
    verify: bool,
    min_share: f64,
    scratch: &Path,
    after_chunk: AfterChunk,
) -> Result<Folded, ScanError> {
    let mut stacks = Stacks::default();
    let mut broken_links = 0;
    let mut deeper_spans = 0;
    // Looked up for every span of the run and its ancestors: foldhash, not std's SipHash.
    let mut cache = foldhash::HashMap::default();
    // Blocks without the run are skipped unread (its spans' ancestors are the run's too).
    let select = BlockSelect::run(run);
    let derive = Derive {
        verify,
        depth: false,
    };
    let derived = DerivedTable::build(
        file,
        run_range(file, run),
        &select,
        |r| r == run,
        derive,
        scratch,
        &mut Behind::new(file, after_chunk),
    )?;
    for chunk in plan(file, BLOCKS_PER_CHUNK, &select) {
        for_each_chunk_block(file, &chunk, verify, &select, |_, first, records| {
            for (i, r) in records.iter().enumerate() {
                if r.run != run {
                    continue;
                }
                let index = first + i as u64;
                let parent = match file.parent_of(index, r) {
                    Some(p) if p != index => {
                        let (id, looped) = stack_of(file, p, &mut cache, &mut stacks);
                        broken_links += u64::from(looped);
                        id
                    }
                    Some(_) => {
                        broken_links += 1; // its own parent
                        NO_STACK
                    }
                    None => NO_STACK,
                };
                let id = stacks.intern(parent, r.name);
                deeper_spans += u64::from(stacks.is_cut(id));
                if cache.len() >= STACK_CACHE {
                    cache.clear();
                }
                cache.insert(index, id);
                stacks.own[id as usize] += derived.get(index).self_time(r);
            }
        })?;
        derived.release_before(chunk_end(file, &chunk));
        release(file, &chunk, after_chunk);
    }
    // Only stacks with a weight are returned: with `min_share`, a few thousand however many
    // distinct stacks the run has.
    let folded = stacks
        .weights(min_share)
        .iter()
        .enumerate()
        .map(|(id, w)| (id, (w * 1e6).round() as u64))
        .filter(|&(_, w)| w > 0)
        .map(|(id, weight)| FoldedStack {
            frames: stacks.frames(id as u32),
            weight,
        })
        .collect();
    Ok(Folded {
        stacks: folded,
        deeper_spans,
        broken_links,
    })
}

/// The global record index just past `chunk`.
fn chunk_end<D: AsRef<[u8]>>(file: &SpanFile<D>, chunk: &crate::chunk::Chunk) -> u64 {
    file.segments()[chunk.segment].first_record + chunk.records.end as u64
}

/// The records from the first of run `run` to its last: from the run directories of a
/// version 2 file, the whole file for version 1.
pub fn run_range<D: AsRef<[u8]>>(file: &SpanFile<D>, run: u32) -> Range<u64> {
    if !file.has_index() {
        return 0..file.record_count();
    }
    let entries = file
        .segments()
        .iter()
        .flat_map(|seg| file.runs(seg).iter().filter(|e| e.run == run));
    let (first, last) = entries.fold((u64::MAX, 0), |(first, last), e| {
        (first.min(e.first_index), last.max(e.last_index))
    });
    if first == u64::MAX {
        0..0
    } else {
        first..last + 1
    }
}

/// The stack id of record `index`, from the cache or by walking up its ancestors, and whether
/// the walk looped (it then stops where the loop closes). Every ancestor walked is cached too,
/// so records in write order (children before their parents) walk each link once: a deep
/// chain costs linear time, not quadratic.
fn stack_of<D: AsRef<[u8]>>(
    file: &SpanFile<D>,
    index: u64,
    cache: &mut foldhash::HashMap<u64, u32>,
    stacks: &mut Stacks,
) -> (u32, bool) {
    let mut chain: Vec<(u64, &SpanRecord)> = Vec::new();
    let mut seen = foldhash::HashSet::default();
    let mut at = Some(index);
    let mut base = NO_STACK;
    let mut looped = false;
    while let Some(i) = at {
        if let Some(&id) = cache.get(&i) {
            base = id;
            break;
        }
        let Some(r) = file.record(i) else { break };
        if !seen.insert(i) {
            looped = true;
            break;
        }
        chain.push((i, r));
        at = file.parent_of(i, r);
    }
    if cache.len() + chain.len() >= STACK_CACHE {
        cache.clear();
    }
    let mut id = base;
    for &(i, r) in chain.iter().rev() {
        id = stacks.intern(id, r.name);
        cache.insert(i, id);
    }
    (id, looped)
}
