//! Resolving parent, root and parent-name links in one pass, in bounded memory, whatever the
//! order in which spans arrive.
//!
//! ferret-io writes a span when it ends and keys it by its start, so a parent can come before its
//! children (a database read in start order) or after them (write order: JSON dumps, and every
//! span still open when an earlier `--append` ran). The [`Linker`] handles both:
//! - **Parents first.** A *window* of spans that may still get children, keyed by span id, drops
//!   a span once the stream's start time has passed its end by a margin (or the window is full).
//!   A child whose parent is in the window is linked at once. A child whose parent was dropped
//!   (its id is in a Bloom filter of dropped ids) is a *miss*, resolved at the commit by scanning
//!   the records already written, newest first.
//! - **Children first.** A child whose parent has not arrived is written as a provisional root
//!   and waits in `pending`. When its parent arrives in the same batch, the child is patched in
//!   memory. At the commit, children still waiting become the segment's *orphans* (on disk,
//!   sorted by parent id); a parent arriving in a later commit or conversion finds them through a
//!   Bloom filter of orphan parent ids and a binary search per segment, and *adopts* them: an
//!   adoption entry in its own segment, since committed records are never rewritten.
//!
//! Adopting a provisional root re-roots its subtree: the old root maps to the new one in a remap
//! table (union-find with path compression, so a chain of any depth links in linear time),
//! applied to the batch and the window at each commit and then cleared. A parent in another run,
//! or one never written, leaves the child a root, as ferret says. `docs/LINKING.md` gives the
//! memory bound.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use ferret_format::{Adoption, IdBloom, Orphan, SpanFile, SpanId, SpanRecord, NONE_NAME};

/// How long after a span's end it stays in the window, in seconds of stream time. Only speed
/// depends on it: a child starting later still links, through the miss scan.
pub const WINDOW_MARGIN_SECONDS: f64 = 0.25;
/// The most spans the window holds; past it the earliest-ending are dropped.
pub const WINDOW_CAPACITY: usize = 1 << 19;
const BLOOM_BITS: usize = 1 << 27; // 16 MiB: ~0.1% false positives at 10M dropped ids
/// Bits per orphan id in the orphan filter (about 1% false positives with 4 probes in a word).
const ORPHAN_BITS_PER_ID: usize = 16;
/// The orphan filter's smallest size: 8 KiB, which stays in L1/L2 while every span probes it.
const ORPHAN_BLOOM_MIN_BITS: usize = 1 << 16;

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
    /// Children linked to a parent that arrived after them in the same batch.
    pub late_parents: u64,
    /// Committed children adopted by a parent that arrived in a later commit or conversion.
    pub adoptions: u64,
    /// Children written as orphans: their parent had not arrived at their commit.
    pub orphans: u64,
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

/// The records pushed since the last commit, which linking may still patch, and the committed
/// file as far as it is mapped (a commit may still be in flight).
pub struct PendingBatch<'a, D> {
    /// The uncommitted records.
    pub records: &'a mut [SpanRecord],
    /// Global index of the first.
    pub first: u64,
    /// The committed records, when there are any.
    pub committed: Option<&'a SpanFile<D>>,
}

/// What a commit adds besides the records: the late links the writer stores.
#[derive(Debug, Default)]
pub struct CommitLinks {
    /// Committed roots adopted during this batch.
    pub adoptions: Vec<Adoption>,
    /// Records of this batch still waiting for their parent id.
    pub orphans: Vec<Orphan>,
}

/// The linking state of one conversion.
pub struct Linker {
    window: IdMap<OpenSpan>,
    /// Window entries in arrival order: `(start, end key, index, id)`.
    recent: VecDeque<(f64, u64, u64, SpanId)>,
    /// Entries still open `WINDOW_MARGIN_SECONDS` after they started, by end.
    long_lived: BinaryHeap<Reverse<(u64, u64, SpanId)>>,
    dropped: IdBloom,
    /// Ids dropped from the window since the last commit, not yet in `dropped`.
    dropped_since_commit: Vec<SpanId>,
    /// Children of this batch not linked yet, by the parent id they wait for.
    pending: IdMap<Vec<u64>>,
    /// Parent ids of every committed orphan (a hit is confirmed on disk or in `recent_orphans`).
    /// Every arriving span probes it, so it is sized to the orphans it holds ([`OrphanFilter`]).
    orphan_ids: OrphanFilter,
    /// The orphans of the last commit, `(child, run)` by parent id: that commit may still be in
    /// flight, so its segment is not mapped yet.
    recent_orphans: IdMap<Vec<(u64, u32)>>,
    /// First record of the last commit: mapped segments from there on are in `recent_orphans`.
    recent_first: u64,
    /// Committed roots adopted by this conversion (the file's own adoptions are in its links).
    adopted: HashSet<u64, BuildHasherDefault<IdHasher>>,
    /// Adoptions of committed roots since the last commit.
    new_adoptions: Vec<Adoption>,
    /// Records before this index were written by earlier conversions: their ids are not in
    /// `dropped`, so children waiting at a commit probe those segments' span-id filters.
    earlier: u64,
    /// Re-rooted subtrees since the last commit: old root index to new (path-compressed).
    remap: HashMap<u64, u64, BuildHasherDefault<IdHasher>>,
    stats: LinkStats,
}

impl Default for Linker {
    fn default() -> Self {
        Linker {
            window: IdMap::default(),
            recent: VecDeque::new(),
            long_lived: BinaryHeap::new(),
            dropped: IdBloom::with_bits(BLOOM_BITS),
            dropped_since_commit: Vec::new(),
            pending: IdMap::default(),
            orphan_ids: OrphanFilter::default(),
            recent_orphans: IdMap::default(),
            recent_first: u64::MAX,
            adopted: HashSet::default(),
            earlier: 0,
            new_adoptions: Vec::new(),
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
    /// A linker for appending to `file`: every orphan in the file can be adopted by a parent
    /// that arrives now, and a child whose parent is in the file is found through the span-id
    /// filters of the file's segments (at the commit, `before_commit`). Nothing here reads the
    /// records: an append costs what arrives, not the file.
    pub fn for_append<D: AsRef<[u8]>>(file: &SpanFile<D>) -> Linker {
        let mut l = Linker {
            earlier: file.record_count(),
            ..Linker::default()
        };
        l.orphan_ids.add(Vec::new(), Some(file));
        l
    }

    /// The counters so far.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// The root `root` now stands under.
    fn resolve_root(&mut self, root: u64) -> u64 {
        resolve(&mut self.remap, root)
    }

    /// Links `rec` (about to become record `index`, ending at `end`) and registers it as a
    /// possible parent; children waiting for it, in `batch` or committed, are linked now.
    pub fn link<D: AsRef<[u8]>>(
        &mut self,
        span_id: SpanId,
        parent_id: Option<SpanId>,
        end: f64,
        rec: &mut SpanRecord,
        index: u64,
        batch: PendingBatch<D>,
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
            match self.window.get(&pid).copied() {
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
        if let Some(children) = self.pending_for(&span_id) {
            for child in children {
                self.adopt(child, open, batch.records, batch.first, true);
            }
        }
        if self.orphan_ids.maybe_contains(&span_id) {
            self.adopt_committed(span_id, open, batch.committed);
        }
        Ok(())
    }

    /// The children of this batch waiting for `id`, taken out of `pending` (most spans find
    /// `pending` empty: no lookup then).
    fn pending_for(&mut self, id: &SpanId) -> Option<Vec<u64>> {
        if self.pending.is_empty() {
            return None;
        }
        self.pending.remove(id)
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

    /// Adopts the committed orphans waiting for `id`: those of the last commit (in memory), then
    /// those of the mapped segments before it (binary search in each orphan table).
    fn adopt_committed<D: AsRef<[u8]>>(
        &mut self,
        id: SpanId,
        parent: OpenSpan,
        committed: Option<&SpanFile<D>>,
    ) {
        if let Some(children) = self.recent_orphans.remove(&id) {
            for (child, run) in children {
                self.adopt_committed_child(child, run, parent);
            }
        }
        let Some(file) = committed else {
            return;
        };
        for seg in file.segments() {
            if seg.first_record >= self.recent_first {
                break;
            }
            let orphans = file.orphans(seg);
            let from = orphans.partition_point(|o| o.parent_id < id.0);
            for o in orphans[from..].iter().take_while(|o| o.parent_id == id.0) {
                let known = file.links().adoption(o.child).is_some();
                if let (false, Some(r)) = (known, file.record(o.child)) {
                    self.adopt_committed_child(o.child, r.run, parent);
                }
            }
        }
    }

    /// Adopts committed root `child` (of run `run`) under `parent`: an adoption entry, and its
    /// subtree re-rooted for everything linked from now on.
    fn adopt_committed_child(&mut self, child: u64, run: u32, parent: OpenSpan) {
        if run != parent.run || self.adopted.contains(&child) {
            return;
        }
        let new_root = self.resolve_root(parent.root);
        if new_root == child {
            self.stats.cycles += 1;
            return;
        }
        self.remap.insert(child, new_root);
        self.adopted.insert(child);
        self.new_adoptions.push(Adoption {
            child,
            parent: parent.index,
            parent_name: parent.name,
            reserved: 0,
        });
        self.stats.adoptions += 1;
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

    /// Before the batch commits: resolves the misses (children whose parent was dropped from
    /// the window) by scanning the batch and then the committed records, newest first; applies
    /// every re-rooting to the batch and the window; and returns the adoptions to record and
    /// the children still waiting, which become the segment's orphans.
    pub fn before_commit<D: AsRef<[u8]>>(&mut self, batch: PendingBatch<D>) -> CommitLinks {
        self.dropped.insert_all(self.dropped_since_commit.drain(..));
        let earlier = self.earlier;
        let in_earlier_file = |pid: &SpanId| {
            batch.committed.is_some_and(|file| {
                let segments = file.segments().iter();
                segments
                    .take_while(|seg| seg.first_record < earlier)
                    .any(|seg| file.may_hold(seg, pid))
            })
        };
        let (mut misses, mut waiting): (IdMap<Vec<u64>>, IdMap<Vec<u64>>) =
            std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|(pid, _)| self.dropped.maybe_contains(pid) || in_earlier_file(pid));
        if !misses.is_empty() {
            self.stats.misses += misses.values().map(|c| c.len() as u64).sum::<u64>();
            self.resolve_misses(&mut misses, batch.records, batch.first, batch.committed);
            waiting.extend(misses); // not found: a false positive of the filter
        }
        if !self.remap.is_empty() {
            for r in batch.records.iter_mut() {
                r.root = self.resolve_root(r.root);
            }
            for open in self.window.values_mut() {
                open.root = resolve(&mut self.remap, open.root);
            }
            self.remap.clear();
        }
        self.recent_first = batch.first;
        self.recent_orphans.clear();
        let mut orphans = Vec::new();
        for (pid, children) in waiting {
            for &child in &children {
                orphans.push(Orphan {
                    parent_id: pid.0,
                    child,
                });
            }
            let runs = children
                .into_iter()
                .map(|c| (c, batch.records[(c - batch.first) as usize].run))
                .collect();
            self.recent_orphans.insert(pid, runs);
        }
        let ids = self.recent_orphans.keys().copied().collect();
        self.orphan_ids.add(ids, batch.committed);
        self.stats.orphans += orphans.len() as u64;
        CommitLinks {
            adoptions: std::mem::take(&mut self.new_adoptions),
            orphans,
        }
    }

    fn resolve_misses<D: AsRef<[u8]>>(
        &mut self,
        wanted: &mut IdMap<Vec<u64>>,
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
            for seg in file.segments().iter().rev() {
                if wanted.is_empty() {
                    break;
                }
                // Only segments whose span-id filter may hold a wanted id are read.
                if !wanted.keys().any(|id| file.may_hold(seg, id)) {
                    continue;
                }
                for (i, r) in file.records(seg).iter().enumerate().rev() {
                    if let Some(children) = wanted.remove(&SpanId(r.span_id)) {
                        found.push((seg.first_record + i as u64, *r, children));
                    }
                }
            }
        }
        // Link in index order of the parents so that chains of misses re-root consistently.
        found.sort_by_key(|f| f.0);
        for (index, r, children) in found {
            let root = match file_root(committed, index) {
                Some(root) => root,
                None => r.root_index(),
            };
            let parent = OpenSpan {
                index,
                run: r.run,
                name: r.name,
                root,
            };
            for child in children {
                self.stats.misses_resolved += 1;
                self.adopt(child, parent, batch, batch_first, false);
            }
        }
    }
}

/// The root of committed record `index`, followed through the file's adoptions (`None` when
/// the record is not committed: it is in the batch, whose roots are current).
fn file_root<D: AsRef<[u8]>>(committed: Option<&SpanFile<D>>, index: u64) -> Option<u64> {
    let file = committed?;
    file.record(index).map(|r| file.root_of(r))
}

/// The root `root` now stands under in `remap`, compressing the path walked (union-find), so a
/// chain adopted link by link from its leaf up resolves in linear time, not quadratic.
fn resolve(remap: &mut HashMap<u64, u64, BuildHasherDefault<IdHasher>>, root: u64) -> u64 {
    let mut top = root;
    while let Some(&next) = remap.get(&top) {
        top = next;
    }
    let mut at = root;
    while at != top {
        at = remap.insert(at, top).unwrap_or(top);
    }
    top
}

/// The parent ids of every committed orphan, as a Bloom filter sized to their number: every
/// arriving span probes it, and a fixed 4 MiB filter was a cache miss per span. It doubles (and
/// is refilled from the file's orphan tables and the ids just added) when it passes
/// [`ORPHAN_BITS_PER_ID`] bits per id; a file that never has orphans never probes it at all.
#[derive(Default)]
struct OrphanFilter {
    bloom: Option<IdBloom>,
    ids: usize,
}

impl OrphanFilter {
    fn maybe_contains(&self, id: &SpanId) -> bool {
        self.bloom.as_ref().is_some_and(|b| b.maybe_contains(id))
    }

    /// Adds `new` ids, about to be committed, to those of `committed`'s orphan tables (already
    /// in the filter, unless it must grow and is refilled from them).
    fn add<D: AsRef<[u8]>>(&mut self, new: Vec<SpanId>, committed: Option<&SpanFile<D>>) {
        let on_disk = || {
            committed.into_iter().flat_map(|file| {
                file.segments()
                    .iter()
                    .flat_map(move |seg| file.orphans(seg).iter().map(|o| SpanId(o.parent_id)))
            })
        };
        let total = match &self.bloom {
            Some(_) => self.ids + new.len(),
            None => on_disk().count() + new.len(),
        };
        if total == 0 {
            return;
        }
        let bits = (total * ORPHAN_BITS_PER_ID)
            .next_power_of_two()
            .max(ORPHAN_BLOOM_MIN_BITS);
        match &mut self.bloom {
            Some(bloom) if bloom.bits() >= bits / 2 => bloom.insert_all(new),
            _ => {
                let mut bloom = IdBloom::with_bits(bits);
                bloom.insert_all(on_disk().chain(new));
                self.bloom = Some(bloom);
            }
        }
        self.ids = total;
    }
}
