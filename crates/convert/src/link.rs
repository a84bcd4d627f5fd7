//! Resolving parent, root and parent-name links in one pass, in bounded memory.
//!
//! Rows arrive in start order, so a parent nearly always precedes its children. The [`Linker`]
//! keeps a *window* of spans that may still get children, keyed by span id, and drops a span once
//! the stream's start time has passed its end by a margin (or the window is full). Then:
//! - a child whose parent is in the window is linked at once;
//! - a child whose parent is not in the window is written as a provisional root and waits. If a
//!   span with its parent's id arrives before the child is committed (only possible when a clock
//!   stepped back), the child is linked then. At the commit, a child whose parent was dropped
//!   from the window (its id is in a Bloom filter of dropped ids) is a *miss*, resolved by
//!   scanning the records already written, newest first, for the few missing ids; any other
//!   child's parent was never written, and it stays a root.
//!
//! Dropped ids reach the Bloom filter at the commit, sorted by the filter word they set: set one
//! at a time, each was a cache and TLB miss in the 16 MiB filter (12% of a conversion).
//!
//! Linking a provisional root re-roots its subtree: the old root index maps to the new one in a
//! remap table consulted whenever a root is read, and applied to the batch before it commits.
//! A parent in another run, or one never written, leaves the child a root, as ferret does.
//! `docs/LINKING.md` gives the memory bound.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use ferret_format::{SpanFile, SpanId, SpanRecord, NONE_NAME};

/// How long after a span's end it stays in the window, in seconds of stream time. Only speed
/// depends on it: a child starting later still links, through the miss scan.
pub const WINDOW_MARGIN_SECONDS: f64 = 0.25;
/// The most spans the window holds; past it the earliest-ending are dropped.
pub const WINDOW_CAPACITY: usize = 1 << 19;
const BLOOM_BITS: usize = 1 << 27; // 16 MiB: ~0.1% false positives at 10M dropped ids

/// Hashes a [`SpanId`] (or a record index) by mixing its two halves: ids are uuid4s or xxh3 hashes, already
/// random, so one multiply spreads them (SipHash cost 5% of a conversion). Sequential test ids
/// differ in the low half, which the mix carries into the high bits hashbrown uses.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            let x = self.0 ^ u64::from_le_bytes(word);
            self.0 = (x ^ (x >> 29))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(23);
        }
    }
}

/// A hash map keyed by span ids.
pub type IdMap<V> = HashMap<SpanId, V, BuildHasherDefault<IdHasher>>;

/// A span that may still get children.
#[derive(Clone, Copy, Debug)]
struct OpenSpan {
    index: u64,
    run: u32,
    name: u32,
    root: u64,
}

/// Counters reported in the converter's summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Most spans held in the window at once.
    pub window_peak: usize,
    /// Children whose parent had left the window.
    pub misses: u64,
    /// Misses found by scanning the records written.
    pub misses_resolved: u64,
    /// Children linked to a parent that arrived after them.
    pub late_parents: u64,
    /// Links refused because they would close a cycle.
    pub cycles: u64,
    /// Spans whose id repeats an id still in the window (skipped).
    pub duplicates: u64,
}

/// Why a span could not be linked.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    /// Its span id repeats a span still in the window.
    Duplicate,
}

/// The records pushed since the last commit, which linking may still patch.
pub struct PendingBatch<'a> {
    /// The uncommitted records.
    pub records: &'a mut [SpanRecord],
    /// Global index of the first.
    pub first: u64,
}

/// The linking state of one conversion.
pub struct Linker {
    window: IdMap<OpenSpan>,
    /// Window entries in arrival (start) order: `(start, end key, index, id)`.
    recent: VecDeque<(f64, u64, u64, SpanId)>,
    /// Entries still open `WINDOW_MARGIN_SECONDS` after they started, by end.
    long_lived: BinaryHeap<Reverse<(u64, u64, SpanId)>>,
    dropped: Bloom,
    /// Ids dropped from the window since the last commit, not yet in `dropped`.
    dropped_since_commit: Vec<SpanId>,
    /// Children not linked yet, by the parent id they wait for.
    pending: IdMap<Vec<u64>>,
    /// Re-rooted subtrees: old root index to new. Looked up for every span once a late child
    /// was linked, so it hashes as the window does (SipHash was 2% of a conversion).
    remap: HashMap<u64, u64, BuildHasherDefault<IdHasher>>,
    stats: LinkStats,
}

impl Default for Linker {
    fn default() -> Self {
        Linker {
            window: IdMap::default(),
            recent: VecDeque::new(),
            long_lived: BinaryHeap::new(),
            dropped: Bloom::new(BLOOM_BITS),
            dropped_since_commit: Vec::new(),
            pending: IdMap::default(),
            remap: HashMap::default(),
            stats: LinkStats::default(),
        }
    }
}

/// Orders f64 end times (all finite or +inf) as u64 keys.
fn end_key(end: f64) -> u64 {
    let b = end.to_bits();
    if b >> 63 == 0 {
        b | (1 << 63)
    } else {
        !b
    }
}

impl Linker {
    /// A linker for appending to `file`: every span already written counts as possibly dropped,
    /// so children of spans in the file are found by the miss scan.
    pub fn for_append<D: AsRef<[u8]>>(file: &SpanFile<D>) -> Linker {
        let mut l = Linker::default();
        for seg in file.segments() {
            l.dropped
                .insert_all(file.records(seg).iter().map(|r| SpanId(r.span_id)));
        }
        l
    }

    /// The counters so far.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    fn resolve_root(&self, mut root: u64) -> u64 {
        while let Some(&next) = self.remap.get(&root) {
            root = next;
        }
        root
    }

    /// Links `rec` (about to become record `index`, ending at `end`) and registers it as a
    /// possible parent; children in `batch` waiting for it are linked now.
    pub fn link(
        &mut self,
        span_id: SpanId,
        parent_id: Option<SpanId>,
        end: f64,
        rec: &mut SpanRecord,
        index: u64,
        batch: PendingBatch,
    ) -> Result<(), LinkError> {
        if self.window.contains_key(&span_id) {
            self.stats.duplicates += 1;
            return Err(LinkError::Duplicate);
        }
        self.evict_before(rec.start_time);
        rec.set_parent(None);
        rec.parent_name = NONE_NAME;
        rec.root = index;
        if let Some(pid) = parent_id {
            match self.window.get(&pid) {
                Some(p) if p.run == rec.run => {
                    rec.set_parent(Some(p.index));
                    rec.parent_name = p.name;
                    rec.root = self.resolve_root(p.root);
                }
                Some(_) => {} // parent in another run: a root, as ferret says
                None => self.pending.entry(pid).or_default().push(index),
            }
        }
        let open = OpenSpan {
            index,
            run: rec.run,
            name: rec.name,
            root: rec.root,
        };
        self.window.insert(span_id, open);
        self.recent
            .push_back((rec.start_time, end_key(end), index, span_id));
        self.stats.window_peak = self.stats.window_peak.max(self.window.len());
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Some(children) = self.pending.remove(&span_id) {
            for child in children {
                self.adopt(child, open, batch.records, batch.first, true);
            }
        }
        Ok(())
    }

    /// Links uncommitted record `child` (a provisional root) under `parent`, if in the same run
    /// and not closing a cycle.
    fn adopt(
        &mut self,
        child: u64,
        parent: OpenSpan,
        batch: &mut [SpanRecord],
        batch_first: u64,
        late: bool,
    ) {
        let Some(c) = child
            .checked_sub(batch_first)
            .and_then(|i| batch.get_mut(i as usize))
        else {
            return;
        };
        if c.run != parent.run {
            return;
        }
        let new_root = self.resolve_root(parent.root);
        if new_root == child {
            self.stats.cycles += 1;
            return;
        }
        c.set_parent(Some(parent.index));
        c.parent_name = parent.name;
        c.root = new_root;
        self.remap.insert(child, new_root);
        if late {
            self.stats.late_parents += 1;
        }
    }

    /// Drops spans that ended more than the margin before `now`. Most spans are short: they
    /// leave from the front of the arrival queue in O(1). A span still open a margin after it
    /// started moves to a heap by end time, which therefore holds only long-lived spans.
    fn evict_before(&mut self, now: f64) {
        let horizon_time = now - WINDOW_MARGIN_SECONDS;
        let horizon = end_key(horizon_time);
        while let Some(&(start, end, index, id)) = self.recent.front() {
            let full = self.window.len() >= WINDOW_CAPACITY;
            if end < horizon || (full && self.long_lived.is_empty()) {
                self.recent.pop_front();
                self.drop_entry(index, id);
            } else if start < horizon_time {
                self.recent.pop_front();
                self.long_lived.push(Reverse((end, index, id)));
            } else {
                break;
            }
        }
        while let Some(&Reverse((end, index, id))) = self.long_lived.peek() {
            if end >= horizon && self.window.len() < WINDOW_CAPACITY {
                break;
            }
            self.long_lived.pop();
            self.drop_entry(index, id);
        }
    }

    fn drop_entry(&mut self, index: u64, id: SpanId) {
        // Ids in the window are unique (a repeat is refused), so the entry is this one.
        if let Some(open) = self.window.remove(&id) {
            debug_assert_eq!(open.index, index);
            self.dropped_since_commit.push(id);
        }
    }

    /// Sorts the children still waiting into misses (their parent was dropped from the window)
    /// and roots (it was never written), resolves the misses by scanning the batch and then the
    /// committed records, newest first, and applies all re-rootings to the batch.
    pub fn before_commit<D: AsRef<[u8]>>(
        &mut self,
        batch: PendingBatch,
        committed: Option<&SpanFile<D>>,
    ) {
        self.dropped.insert_all(self.dropped_since_commit.drain(..));
        let mut wanted = std::mem::take(&mut self.pending);
        wanted.retain(|pid, _| self.dropped.maybe_contains(pid));
        if !wanted.is_empty() {
            self.stats.misses += wanted.values().map(|c| c.len() as u64).sum::<u64>();
            self.resolve_misses(wanted, batch.records, batch.first, committed);
        }
        if !self.remap.is_empty() {
            for r in batch.records.iter_mut() {
                r.root = self.resolve_root(r.root);
            }
        }
    }

    fn resolve_misses<D: AsRef<[u8]>>(
        &mut self,
        mut wanted: IdMap<Vec<u64>>,
        batch: &mut [SpanRecord],
        batch_first: u64,
        committed: Option<&SpanFile<D>>,
    ) {
        let mut found = Vec::new();
        for (i, r) in batch.iter().enumerate().rev() {
            if wanted.is_empty() {
                break;
            }
            if let Some(children) = wanted.remove(&SpanId(r.span_id)) {
                found.push((batch_first + i as u64, *r, children));
            }
        }
        if let Some(file) = committed {
            'segments: for seg in file.segments().iter().rev() {
                for (i, r) in file.records(seg).iter().enumerate().rev() {
                    if wanted.is_empty() {
                        break 'segments;
                    }
                    if let Some(children) = wanted.remove(&SpanId(r.span_id)) {
                        found.push((seg.first_record + i as u64, *r, children));
                    }
                }
            }
        }
        // Link in index order of the parents so that chains of misses re-root consistently.
        found.sort_by_key(|f| f.0);
        for (index, r, children) in found {
            let parent = OpenSpan {
                index,
                run: r.run,
                name: r.name,
                root: r.root_index(),
            };
            for child in children {
                self.stats.misses_resolved += 1;
                self.adopt(child, parent, batch, batch_first, false);
            }
        }
    }
}

/// A fixed-size blocked Bloom filter of span ids dropped from the window: the 4 probes of an id
/// fall in one 64-bit word, so an insert or a lookup touches one cache line (a classic filter's
/// 4 misses cost 7% of a conversion), at a slightly higher false-positive rate.
struct Bloom {
    words: Vec<u64>,
}

impl Bloom {
    fn new(bits: usize) -> Bloom {
        Bloom {
            words: vec![0; bits / 64],
        }
    }

    fn slot(&self, id: &SpanId) -> (usize, u64) {
        let h = xxhash_rust::xxh3::xxh3_64(&id.0);
        let word = (h as usize) & (self.words.len() - 1);
        let mask = (0..4).fold(0u64, |m, i| m | 1 << ((h >> (40 + 6 * i)) & 63));
        (word, mask)
    }

    /// Inserts all of `ids`, in the order of the words they set, so the writes sweep the filter
    /// once instead of jumping about it.
    fn insert_all(&mut self, ids: impl IntoIterator<Item = SpanId>) {
        let mut slots: Vec<(usize, u64)> = ids.into_iter().map(|id| self.slot(&id)).collect();
        slots.sort_unstable_by_key(|&(word, _)| word);
        for (word, mask) in slots {
            self.words[word] |= mask;
        }
    }

    fn maybe_contains(&self, id: &SpanId) -> bool {
        let (word, mask) = self.slot(id);
        self.words[word] & mask == mask
    }
}
