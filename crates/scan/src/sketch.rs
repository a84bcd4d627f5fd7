//! [`SketchTable`]: mergeable percentile sketches with at most 0.91% relative error.
//!
//! A positive duration's bucket is its f64 exponent (the octave) and, within the octave, one of
//! 40 buckets of equal ratio (2^(1/40) = 1.0175 wide), found without a `log` call: the top 10
//! mantissa bits pick one of 1024 cells, and a table maps each cell to its bucket. A bucket is a
//! run of whole cells, at most 2^(1/40) + 1/1024 wide, and reports the value whose relative
//! error to both ends is equal, so the estimate is within 0.91% of a value of the right rank
//! ([`BOUND`]). Equal-ratio buckets need 40 counters an octave where equal-width ones needed 64
//! for 0.79%: the scan's cost is the cache misses of these counters, and a realistic trace (200
//! names, each over 16 octaves) scans 14% faster with 40 than with 64 (interleaved pairs).
//!
//! Octaves cover 2^-40 s (about 1 ps) to 2^24 s (194 days); a duration outside lands in the
//! edge octave's edge bucket, where the bound does not hold (the report clamps percentiles to
//! the name's exact min and max). Durations of zero or less (a clock that stepped back) share
//! one bucket reported as the smallest value seen.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

/// Buckets per octave.
const BUCKETS: usize = 40;
/// Mantissa bits that pick a cell.
const CELL_BITS: u32 = 10;
const CELLS: usize = 1 << CELL_BITS;
/// A bucket's key is an f64's bits above this: sign, exponent and the cell, so the key's high
/// part is the biased exponent (with the sign above it).
const KEY_SHIFT: u32 = 52 - CELL_BITS;
const MIN_EXP: i32 = -40;
const OCTAVES: u32 = 64;
/// The biased exponent (as an f64 stores it) of the first octave, and one past the last.
const FIRST_OCTAVE: u32 = (1023 + MIN_EXP) as u32;
const END_OCTAVE: u32 = FIRST_OCTAVE + OCTAVES;
/// The largest relative error of a reported value against any value of its bucket.
pub const BOUND: f64 = 0.0091;

/// The ratio of two durations whose buckets' keys (as [`SketchTable::histogram`] gives them)
/// are `distance` apart: keys are equal-ratio buckets, 40 to an octave, so to within a bucket
/// this is 2^(distance / 40).
pub fn key_distance_ratio(distance: f64) -> f64 {
    (distance / BUCKETS as f64).exp2()
}

/// The buckets of an octave: each cell's bucket, and each bucket's reported value (for the
/// octave [1, 2)).
#[derive(Debug)]
struct Buckets {
    of_cell: [u8; CELLS],
    value: [f64; BUCKETS],
}

/// A cell's bucket is where the cell starts: floor(40 log2(start)). The reported value `v` of
/// cells [lo, hi) has (v - lo) / lo = (hi - v) / hi.
static OCTAVE_BUCKETS: LazyLock<Buckets> = LazyLock::new(|| {
    let start = |cell: usize| 1.0 + cell as f64 / CELLS as f64;
    let mut of_cell = [0u8; CELLS];
    for (cell, bucket) in of_cell.iter_mut().enumerate() {
        *bucket = ((start(cell).log2() * BUCKETS as f64) as usize).min(BUCKETS - 1) as u8;
    }
    let mut value = [0.0; BUCKETS];
    for (bucket, v) in value.iter_mut().enumerate() {
        // Cells map to buckets in order: a bucket's cells are a run.
        let of_this = |&b: &u8| usize::from(b) == bucket;
        let first = of_cell
            .iter()
            .position(of_this)
            .expect("every bucket has a cell");
        let last = of_cell
            .iter()
            .rposition(of_this)
            .expect("every bucket has a cell");
        let (lo, hi) = (start(first), start(last + 1));
        *v = 2.0 * lo * hi / (lo + hi);
    }
    Buckets { of_cell, value }
});

/// The octaves a name has counters for: `len` blocks of [`BUCKETS`] counters from block `first`
/// of the arena, for the biased exponents `lo..lo + len`. An empty window (`len` 0) matches
/// no duration.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    first: u32,
    lo: u16,
    len: u16,
}

impl Window {
    fn end(&self) -> u32 {
        u32::from(self.lo) + u32::from(self.len)
    }

    /// The arena index of the counter of `octave` (in the window) and `bucket`.
    fn counter(&self, octave: u32, bucket: usize) -> usize {
        (self.first + octave - u32::from(self.lo)) as usize * BUCKETS + bucket
    }
}

/// The percentile sketches of every name of one chunk (or several merged).
///
/// Each name has a window of consecutive octaves, one block of 40 counters each, from the
/// shortest to the longest of its durations, in an arena shared by all names. An insert is a
/// window load, a bucket table load, two compares and an increment (`HotCounters`):
/// everything else (the first duration of a name, a duration outside its window, zero,
/// negative or not finite, a counter about to spill) takes a separate path. A window that must
/// widen moves to the arena's end at twice its width or more, so it moves a few times at most
/// and leaves behind less than it uses.
///
/// Inserts count in `u8` counters (`hot`); a block's counters spill every 256 into `u32` ones
/// (`spilled`) that the block gets on its first spill, as most blocks of a chunk never fill a
/// counter. So memory is 24 bytes per name, at most 80 bytes per octave a name's durations
/// span, and 160 bytes per busy block: a name whose durations span 16 octaves costs 1-3 KB.
/// (With the `u32` counters beside every block, the page faults, zeroing and copies of fresh
/// tables took 15% of a realistic trace's pass.) A `u32` that wraps carries into `carries`
/// (multiples of 2^32 by counter), which readouts add back; only merges of billions of spans
/// ever get there.
#[derive(Clone, Debug)]
pub struct SketchTable {
    windows: Vec<Window>,
    /// Counts not yet spilled, [`BUCKETS`] per block.
    hot: Vec<u8>,
    /// Per block: 1 + the index of its spilled counts in `spilled`, or 0 for none yet.
    spill_index: Vec<u32>,
    /// Spilled counts of the blocks that have any.
    spilled: Vec<[u32; BUCKETS]>,
    /// Wraps of the spilled counts, by arena index of the counter.
    carries: HashMap<usize, u64>,
    nonpositive: Vec<u64>,
    /// The bucket table, held here so that an insert reads it without `LazyLock`'s check.
    buckets: &'static Buckets,
}

/// The hot path of [`SketchTable::insert`] over borrowed slices, so that a loop calling it has
/// no calls and keeps every pointer in a register.
pub(crate) struct HotCounters<'a> {
    windows: &'a [Window],
    hot: &'a mut [u8],
    of_cell: &'a [u8; CELLS],
}

impl HotCounters<'_> {
    /// Number of names.
    pub(crate) fn names(&self) -> usize {
        self.windows.len()
    }

    /// Counts `x` for name `name` and returns true, or returns false and counts nothing when
    /// the duration needs [`SketchTable::insert_slow`]: it falls outside the name's window, or
    /// its counter would spill.
    #[inline(always)]
    pub(crate) fn try_count(&mut self, name: usize, x: f64) -> bool {
        let Some(i) = counter_of(self.windows, self.of_cell, name, x) else {
            return false;
        };
        let hot = &mut self.hot[i];
        if *hot == u8::MAX {
            return false;
        }
        *hot += 1;
        true
    }
}

/// The arena index of the counter of `x` for name `name`, if the name's window covers it.
/// Zero, negative (the sign bit lands above any exponent), subnormal, infinite and NaN
/// durations fall outside every window, whose octaves are normal exponents.
#[inline(always)]
fn counter_of(windows: &[Window], of_cell: &[u8; CELLS], name: usize, x: f64) -> Option<usize> {
    let key = x.to_bits() >> KEY_SHIFT;
    let w = windows[name];
    let offset = ((key >> CELL_BITS) as u32).wrapping_sub(u32::from(w.lo));
    if offset >= u32::from(w.len) {
        return None;
    }
    let bucket = of_cell[key as usize & (CELLS - 1)];
    Some((w.first + offset) as usize * BUCKETS + usize::from(bucket))
}

/// The octave (biased exponent) and cell of a positive finite duration, clamped to the octaves
/// the sketch covers.
fn cell_of(x: f64) -> (u32, usize) {
    let key = x.to_bits() >> KEY_SHIFT;
    match (key >> CELL_BITS) as u32 {
        octave if octave < FIRST_OCTAVE => (FIRST_OCTAVE, 0),
        octave if octave >= END_OCTAVE => (END_OCTAVE - 1, CELLS - 1),
        octave => (octave, key as usize & (CELLS - 1)),
    }
}

/// The octave and bucket of a positive finite duration, clamped to the octaves the sketch
/// covers.
fn bucket_of(x: f64) -> (u32, usize) {
    let (octave, cell) = cell_of(x);
    (octave, usize::from(OCTAVE_BUCKETS.of_cell[cell]))
}

impl SketchTable {
    /// Empty sketches for `names` names.
    pub fn new(names: usize) -> SketchTable {
        SketchTable {
            windows: vec![Window::default(); names],
            hot: Vec::new(),
            spill_index: Vec::new(),
            spilled: Vec::new(),
            carries: HashMap::new(),
            nonpositive: vec![0; names],
            buckets: &OCTAVE_BUCKETS,
        }
    }

    /// Number of names.
    pub fn names(&self) -> usize {
        self.windows.len()
    }

    /// Adds a duration of name `name` (which must be below [`names`](Self::names)).
    #[inline]
    pub fn insert(&mut self, name: usize, x: f64) {
        if !self.hot_counters().try_count(name, x) {
            self.insert_slow(name, x);
        }
    }

    /// The counters that [`HotCounters::try_count`] bumps, borrowed for a loop.
    pub(crate) fn hot_counters(&mut self) -> HotCounters<'_> {
        HotCounters {
            windows: &self.windows,
            hot: &mut self.hot,
            of_cell: &self.buckets.of_cell,
        }
    }

    /// What [`HotCounters::try_count`] left: a hot counter about to spill, or a duration
    /// outside its name's window. Out of line, so that a loop calling `try_count` makes no
    /// calls but this one, after the loop.
    #[inline(never)]
    pub(crate) fn insert_slow(&mut self, name: usize, x: f64) {
        match counter_of(&self.windows, &self.buckets.of_cell, name, x) {
            Some(i) => self.bump(i),
            None => self.insert_outside(name, x),
        }
    }

    /// A duration outside its name's window: counted as non-positive, or in a widened window.
    fn insert_outside(&mut self, name: usize, x: f64) {
        if !(x > 0.0 && x.is_finite()) {
            self.nonpositive[name] += 1;
            return;
        }
        let (octave, bucket) = bucket_of(x);
        self.cover(name, octave, octave + 1);
        let i = self.windows[name].counter(octave, bucket);
        self.bump(i);
    }

    #[inline]
    fn bump(&mut self, i: usize) {
        let hot = &mut self.hot[i];
        *hot = hot.wrapping_add(1);
        if *hot == 0 {
            self.spill(i);
        }
    }

    /// Moves a full hot counter's 256 into the `u32` counter `i`.
    fn spill(&mut self, i: usize) {
        self.add_spilled(i, 1 << 8);
    }

    /// Adds `n` to the `u32` counter `i`, carrying what passes 2^32 into `carries`.
    fn add_spilled(&mut self, i: usize, n: u64) {
        let counter = &mut self.spilled_block(i / BUCKETS)[i % BUCKETS];
        let sum = u64::from(*counter) + n;
        *counter = sum as u32;
        if sum >> 32 > 0 {
            *self.carries.entry(i).or_default() += sum >> 32;
        }
    }

    /// The spilled counts of block `block`, made on first use.
    fn spilled_block(&mut self, block: usize) -> &mut [u32; BUCKETS] {
        if self.spill_index[block] == 0 {
            self.spilled.push([0; BUCKETS]);
            self.spill_index[block] = self.spilled.len() as u32;
        }
        &mut self.spilled[self.spill_index[block] as usize - 1]
    }

    /// Widens the window of `name` to cover octaves `lo..end`: to at least twice its width,
    /// on the side that needed it, in fresh blocks at the arena's end.
    fn cover(&mut self, name: usize, lo: u32, end: u32) {
        let old = self.windows[name];
        let (old_lo, old_end) = (u32::from(old.lo), old.end());
        if old.len > 0 && lo >= old_lo && end <= old_end {
            return;
        }
        let (mut new_lo, mut new_end) = match old.len {
            0 => (lo, end),
            _ => (lo.min(old_lo), end.max(old_end)),
        };
        let extra = (2 * u32::from(old.len))
            .min(OCTAVES)
            .saturating_sub(new_end - new_lo);
        if lo < old_lo {
            let down = extra.min(new_lo - FIRST_OCTAVE);
            new_lo -= down;
            new_end += (extra - down).min(END_OCTAVE - new_end);
        } else {
            let up = extra.min(END_OCTAVE - new_end);
            new_end += up;
            new_lo -= (extra - up).min(new_lo - FIRST_OCTAVE);
        }
        let new = Window {
            first: (self.hot.len() / BUCKETS) as u32,
            lo: new_lo as u16,
            len: (new_end - new_lo) as u16,
        };
        // Block by block: `resize` zeroed byte by byte, most of a widening's cost.
        for _ in 0..new.len {
            self.hot.extend_from_slice(&[0; BUCKETS]);
        }
        self.spill_index.resize(self.hot.len() / BUCKETS, 0);
        for octave in old_lo..old_end {
            let (from, to) = (old.counter(octave, 0), new.counter(octave, 0));
            self.hot.copy_within(from..from + BUCKETS, to);
            self.spill_index[to / BUCKETS] = std::mem::take(&mut self.spill_index[from / BUCKETS]);
            if !self.carries.is_empty() {
                for sub in 0..BUCKETS {
                    if let Some(carry) = self.carries.remove(&(from + sub)) {
                        self.carries.insert(to + sub, carry);
                    }
                }
            }
        }
        self.windows[name] = new;
    }

    /// The full counts of the block of `octave` in `window`: `u32`, hot, and carries.
    fn counts(&self, window: Window, octave: u32) -> [u64; BUCKETS] {
        self.block_counts(window.counter(octave, 0))
    }

    /// The full counts of the block from arena index `first`.
    fn block_counts(&self, first: usize) -> [u64; BUCKETS] {
        let mut counts = [0u64; BUCKETS];
        for (n, &hot) in counts.iter_mut().zip(&self.hot[first..first + BUCKETS]) {
            *n = u64::from(hot);
        }
        if let Some(spilled) = self.spilled_of(first / BUCKETS) {
            for (n, &spilled) in counts.iter_mut().zip(spilled) {
                *n += u64::from(spilled);
            }
        }
        // Only a table past 2^32 counts has carries: checked once, not per counter.
        if !self.carries.is_empty() {
            for (sub, n) in counts.iter_mut().enumerate() {
                *n += self.carries.get(&(first + sub)).copied().unwrap_or(0) << 32;
            }
        }
        counts
    }

    /// The sum of the full counts of the block from arena index `first`.
    fn block_sum(&self, first: usize) -> u64 {
        self.block_counts(first).iter().sum()
    }

    /// The spilled counts of block `block`, if it has any.
    fn spilled_of(&self, block: usize) -> Option<&[u32; BUCKETS]> {
        let index = self.spill_index[block] as usize;
        (index > 0).then(|| &self.spilled[index - 1])
    }

    /// Adds the counts of the block from arena index `from` of `other` to the `u32` counters
    /// of the block from `to`. The usual case (no counter reaches 2^32) is two passes that the
    /// compiler vectorizes; otherwise each counter is added with its carry by `add_spilled`.
    fn add_block(&mut self, to: usize, other: &SketchTable, from: usize) {
        let counts = other.block_counts(from);
        if counts.iter().all(|&n| n == 0) {
            return;
        }
        let mine = self.spilled_block(to / BUCKETS);
        let high = mine
            .iter()
            .zip(&counts)
            .fold(0, |high, (&c, &n)| high | (u64::from(c) + n) >> 32);
        if high == 0 {
            for (c, &n) in mine.iter_mut().zip(&counts) {
                *c += n as u32;
            }
            return;
        }
        for (sub, n) in counts.into_iter().enumerate() {
            self.add_spilled(to + sub, n);
        }
    }

    /// Adds another table's counts (same number of names).
    pub fn merge(&mut self, other: &SketchTable) {
        let names = self.names().min(other.names());
        self.merge_pairs(other, (0..names).map(|name| (name, name)));
    }

    /// Adds another table's counts, its name `i` counted as this table's name `to[i]` (names
    /// mapped beyond this table are left out): how the sketches of several files, each with its
    /// own name ids, merge by name.
    pub fn merge_renamed(&mut self, other: &SketchTable, to: &[u32]) {
        let names = self.names();
        let pairs = to.iter().take(other.names()).enumerate();
        self.merge_pairs(
            other,
            pairs
                .map(|(theirs, &mine)| (theirs, mine as usize))
                .filter(|&(_, mine)| mine < names),
        );
    }

    /// Adds the counts of `other`'s name `theirs` to this table's `mine`, for each pair.
    fn merge_pairs(&mut self, other: &SketchTable, pairs: impl Iterator<Item = (usize, usize)>) {
        for (theirs_name, name) in pairs {
            self.nonpositive[name] += other.nonpositive[theirs_name];
            let theirs = other.windows[theirs_name];
            let used = other.used_octaves(theirs);
            if used.is_empty() {
                continue;
            }
            self.cover(name, used.start, used.end);
            let mine = self.windows[name];
            for octave in used {
                self.add_block(mine.counter(octave, 0), other, theirs.counter(octave, 0));
            }
        }
    }

    /// The counts of every octave of `name`'s window that has any, lowest first (and the empty
    /// ones between those).
    fn octave_counts(&self, name: usize) -> impl Iterator<Item = (u32, [u64; BUCKETS])> + '_ {
        let w = self.windows[name];
        self.used_octaves(w)
            .map(move |octave| (octave, self.counts(w, octave)))
    }

    /// The octaves of `window` from its first to its last with a count. A window doubles as it
    /// widens and a merge covers both tables' windows, so most of a wide window is empty: a
    /// name over 17 octaves had a window of 50 on average, and the merges and readouts that
    /// walked whole windows were two milliseconds of a one-run question on a large file.
    fn used_octaves(&self, window: Window) -> Range<u32> {
        let used = |octave: &u32| {
            let first = window.counter(*octave, 0);
            self.spill_index[first / BUCKETS] != 0
                || self.hot[first..first + BUCKETS].iter().any(|&n| n != 0)
        };
        let octaves = u32::from(window.lo)..window.end();
        match octaves.clone().find(used) {
            Some(lo) => lo..octaves.rev().find(used).map_or(lo, |last| last + 1),
            None => 0..0,
        }
    }

    /// The value a bucket reports.
    fn bucket_value(&self, octave: u32, bucket: usize) -> f64 {
        2f64.powi(octave as i32 - 1023) * self.buckets.value[bucket]
    }

    /// The counts of `name`'s durations per bucket, as `(key, count)` in ascending order of
    /// duration, leaving out empty buckets: key 0 holds the durations of zero or less, and keys
    /// are the same in every table, so two tables' histograms compare bucket by bucket.
    pub fn histogram(&self, name: usize) -> Vec<(u32, u64)> {
        let nonpositive = self.nonpositive.get(name).copied().unwrap_or(0);
        let mut out: Vec<(u32, u64)> = Vec::new();
        if nonpositive > 0 {
            out.push((0, nonpositive));
        }
        if name < self.names() {
            for (octave, counts) in self.octave_counts(name) {
                for (sub, n) in counts.into_iter().enumerate() {
                    if n > 0 {
                        out.push((octave * BUCKETS as u32 + sub as u32 + 1, n));
                    }
                }
            }
        }
        out
    }

    /// The duration of nearest rank `ceil(q * n)` (q in 0..=1) of name `name`, to within [`BOUND`];
    /// `floor` stands for the non-positive bucket. `None` when the name has no durations.
    pub fn quantile(&self, name: usize, q: f64, floor: f64) -> Option<f64> {
        self.quantiles(name, [q], floor)[0]
    }

    /// [`quantile`](Self::quantile) of each of `qs` (ascending), in one walk of the name's
    /// counters: a report asks three of each name, and three walks of a window of up to 64
    /// octaves were a tenth of a one-run question on a large file.
    pub fn quantiles<const N: usize>(
        &self,
        name: usize,
        qs: [f64; N],
        floor: f64,
    ) -> [Option<f64>; N] {
        debug_assert!(qs.windows(2).all(|w| w[0] <= w[1]), "ascending: {qs:?}");
        let mut out = [None; N];
        let Some(&nonpositive) = self.nonpositive.get(name) else {
            return out;
        };
        let w = self.windows[name];
        let used = self.used_octaves(w);
        let block_sum = |octave| self.block_sum(w.counter(octave, 0));
        let total = nonpositive + used.clone().map(block_sum).sum::<u64>();
        if total == 0 {
            return out;
        }
        let rank = |q: f64| ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut next = 0;
        while next < N && rank(qs[next]) <= nonpositive {
            out[next] = Some(floor.min(0.0));
            next += 1;
        }
        let mut seen = nonpositive;
        for octave in used {
            if next == N {
                break;
            }
            // Only the octaves where a rank falls are read counter by counter.
            let in_octave = block_sum(octave);
            if seen + in_octave < rank(qs[next]) {
                seen += in_octave;
                continue;
            }
            for (sub, n) in self.counts(w, octave).into_iter().enumerate() {
                seen += n;
                while next < N && seen >= rank(qs[next]) {
                    out[next] = Some(self.bucket_value(octave, sub));
                    next += 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The count of the bucket of `x` in `name`'s sketch.
    fn count_of(t: &SketchTable, name: usize, x: f64) -> u64 {
        let (octave, bucket) = bucket_of(x);
        t.counts(t.windows[name], octave)[bucket]
    }

    #[test]
    fn every_bucket_is_a_run_of_cells_within_the_documented_bound() {
        let b = &*OCTAVE_BUCKETS;
        // Cells map to buckets in order, each bucket at least one cell.
        assert!(b
            .of_cell
            .windows(2)
            .all(|w| w[1] == w[0] || w[1] == w[0] + 1));
        assert_eq!((b.of_cell[0], b.of_cell[CELLS - 1]), (0, BUCKETS as u8 - 1));
        let mut worst = 0.0f64;
        for bucket in 0..BUCKETS {
            let cells: Vec<usize> = (0..CELLS)
                .filter(|&c| usize::from(b.of_cell[c]) == bucket)
                .collect();
            let lo = 1.0 + cells[0] as f64 / CELLS as f64;
            let hi = 1.0 + (cells[cells.len() - 1] + 1) as f64 / CELLS as f64;
            let v = b.value[bucket];
            assert!(lo < v && v < hi);
            worst = worst.max((v - lo) / lo).max((hi - v) / hi);
        }
        assert!(worst <= BOUND, "worst relative error {worst}");
        // The bound is tight, not loose: equal-ratio buckets are what save counters.
        assert!(worst > BOUND - 0.0002, "worst relative error {worst}");
    }

    #[test]
    fn merged_counts_carry_past_u32() {
        let mut a = SketchTable::new(1);
        let mut b = SketchTable::new(1);
        a.insert(0, 1.0);
        b.insert(0, 1.0);
        b.insert(0, 4.0);
        // Counters near the limit, as if each table had folded billions of spans.
        let (octave, sub) = bucket_of(1.0);
        let (ia, ib) = (
            a.windows[0].counter(octave, sub),
            b.windows[0].counter(octave, sub),
        );
        a.spilled_block(ia / BUCKETS)[ia % BUCKETS] = u32::MAX - 1;
        b.spilled_block(ib / BUCKETS)[ib % BUCKETS] = 5;
        (a.hot[ia], b.hot[ib]) = (0, 0);
        a.merge(&b);
        assert_eq!(count_of(&a, 0, 1.0), u64::from(u32::MAX) - 1 + 5);
        // The median is the 1.0 bucket; only the largest rank reaches 4.0.
        assert!((a.quantile(0, 0.5, 0.0).unwrap() - 1.0).abs() < 0.01);
        assert!((a.quantile(0, 1.0, 0.0).unwrap() - 4.0).abs() < 0.04);
        let mut c = SketchTable::new(1);
        c.merge(&a);
        assert_eq!(count_of(&c, 0, 1.0), count_of(&a, 0, 1.0));
        // A window that widens after a carry keeps it.
        c.insert(0, 1e-9);
        assert_eq!(count_of(&c, 0, 1.0), count_of(&a, 0, 1.0));
    }

    fn exact(mut v: Vec<f64>, q: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    /// The sketch's quantile `q` of `v` (inserted for the second of two names) is within the
    /// documented bound of the exact one.
    fn check_bound(v: Vec<f64>, q: f64) -> Result<(), TestCaseError> {
        let mut h = SketchTable::new(2);
        for &x in &v {
            h.insert(1, x);
        }
        let est = h.quantile(1, q, 0.0).unwrap();
        let want = exact(v, q);
        prop_assert!(((est - want) / want).abs() <= BOUND, "{} vs {}", est, want);
        Ok(())
    }

    #[test]
    fn hot_counters_spill_every_256() {
        let mut t = SketchTable::new(1);
        for _ in 0..1000 {
            t.insert(0, 0.5);
        }
        let (octave, sub) = bucket_of(0.5);
        let i = t.windows[0].counter(octave, sub);
        let hot = t.hot[i];
        assert_eq!((t.spilled_block(i / BUCKETS)[i % BUCKETS], hot), (768, 232));
        assert_eq!(count_of(&t, 0, 0.5), 1000);
    }

    #[test]
    fn windows_widen_keeping_counts_and_leave_other_names_alone() {
        let mut t = SketchTable::new(2);
        let values = [1.0, 0.3, 8.0, 1e-6, 1.0, 3e4, 1e-13, 1e9];
        for (k, &x) in values.iter().enumerate() {
            t.insert(0, x);
            t.insert(1, 0.5);
            for &seen in &values[..=k] {
                let want = values[..=k]
                    .iter()
                    .filter(|&&y| bucket_of(y) == bucket_of(seen));
                assert_eq!(count_of(&t, 0, seen), want.count() as u64, "after {x}");
            }
            assert_eq!(count_of(&t, 1, 0.5), k as u64 + 1);
        }
        // 1e-13 and 1e9 are outside the covered octaves: they land in the edge buckets.
        assert_eq!(t.windows[0].len as u32, OCTAVES);
        assert_eq!(
            t.quantile(0, 0.0, 0.0),
            Some(t.bucket_value(FIRST_OCTAVE, 0))
        );
        let top = t.bucket_value(END_OCTAVE - 1, BUCKETS - 1);
        assert_eq!(t.quantile(0, 1.0, 0.0), Some(top));
    }

    #[test]
    fn durations_that_are_not_positive_and_finite_count_below_every_other() {
        let mut t = SketchTable::new(1);
        for x in [0.0, -1.0, f64::NAN, f64::INFINITY, 5e-324, 2.0] {
            t.insert(0, x);
        }
        // Zero, negative, NaN and infinite share the bottom bucket; a subnormal is positive and
        // lands in the lowest octave's.
        assert_eq!(t.nonpositive[0], 4);
        assert_eq!(t.quantile(0, 0.6, -0.5), Some(-0.5)); // rank 4 of 6
        let lowest = t.bucket_value(FIRST_OCTAVE, 0);
        assert_eq!(t.quantile(0, 0.8, -0.5), Some(lowest)); // rank 5
        assert!((t.quantile(0, 1.0, -0.5).unwrap() - 2.0).abs() < 0.02);
    }

    proptest! {
        #[test]
        fn quantiles_are_within_the_documented_bound(v in prop::collection::vec(1e-9f64..1e4, 1..400), q in 0.0f64..=1.0) {
            check_bound(v, q)?;
        }

        #[test]
        fn the_bound_holds_across_octaves_in_any_order(exps in prop::collection::vec(-39.0f64..23.0, 1..300), q in 0.0f64..=1.0) {
            // Durations from 2^-39 to 2^23 s: windows that widen down and up, many times.
            check_bound(exps.iter().map(|&e| e.exp2()).collect(), q)?;
        }

        #[test]
        fn merging_equals_inserting_all(a in prop::collection::vec(-10.0f64..1e2, 0..100), b in prop::collection::vec(1e-9f64..1e5, 0..100)) {
            let mut ha = SketchTable::new(1);
            let mut hb = SketchTable::new(1);
            let mut all = SketchTable::new(1);
            for &x in &a { ha.insert(0, x); all.insert(0, x); }
            for &x in &b { hb.insert(0, x); all.insert(0, x); }
            ha.merge(&hb);
            for q in [0.0, 0.01, 0.5, 0.9, 0.99, 1.0] {
                prop_assert_eq!(ha.quantile(0, q, 0.0), all.quantile(0, q, 0.0));
            }
            // A merge copies only the octaves with counts; the buckets are the same.
            prop_assert_eq!(ha.histogram(0), all.histogram(0));
        }

        #[test]
        fn several_quantiles_in_one_walk_are_the_nearest_ranks_of_the_histogram(
            v in prop::collection::vec(prop_oneof![Just(0.0), -1.0f64..0.0, 1e-9f64..1e4], 1..500),
            mut qs in prop::collection::vec(0.0f64..=1.0, 3),
        ) {
            qs.sort_by(f64::total_cmp);
            let mut t = SketchTable::new(1);
            for &x in &v {
                t.insert(0, x);
            }
            let got = t.quantiles(0, [qs[0], qs[1], qs[2]], -2.0);
            // The nearest rank read off the histogram, bucket by bucket.
            let histogram = t.histogram(0);
            for (k, q) in qs.iter().enumerate() {
                let rank = ((q * v.len() as f64).ceil() as u64).clamp(1, v.len() as u64);
                let mut seen = 0;
                let key = histogram.iter().find(|&&(_, n)| { seen += n; seen >= rank }).unwrap().0;
                let want = match key {
                    0 => -2.0,
                    key => {
                        let (octave, bucket) = ((key - 1) / BUCKETS as u32, (key - 1) as usize % BUCKETS);
                        t.bucket_value(octave, bucket)
                    }
                };
                prop_assert_eq!(got[k], Some(want));
                prop_assert_eq!(t.quantile(0, *q, -2.0), Some(want));
            }
        }
    }
}
