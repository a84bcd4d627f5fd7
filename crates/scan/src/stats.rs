//! Per-name statistics of one chunk, folded record by record, and their associative merge.

use crate::sketch::SketchTable;
use crate::sum::{ChunkSum, ExactSum, SettledSum};

/// What ferret's `AggregatedStats` holds for one name. One cache line, aligned: the scan
/// updates one of these per span.
#[derive(Clone, Debug)]
#[repr(align(64))]
pub struct NameStats {
    /// Spans of this name.
    pub count: u64,
    /// Spans whose status is not "ok".
    pub errors: u64,
    /// Smallest non-null duration.
    pub min: f64,
    /// Largest non-null duration.
    pub max: f64,
    /// The current chunk's durations, until [`ChunkStats::settle`] moves them into the total.
    sum: ChunkSum,
}

// The hot loop's one cache line per name.
const _: () = assert!(std::mem::size_of::<NameStats>() <= 64);

impl Default for NameStats {
    fn default() -> Self {
        NameStats {
            count: 0,
            errors: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: ChunkSum::default(),
        }
    }
}

impl NameStats {
    /// Adds a span of this name (its duration goes to the sketch separately).
    // Always inlined: the scan's loop calls it for every span and must stay free of calls.
    #[inline(always)]
    pub fn add_span(&mut self, duration: Option<f64>, error: bool) {
        self.count += 1;
        self.errors += u64::from(error);
        if let Some(d) = duration {
            self.sum.add(d);
            // Plain compares (`f64::min` spends instructions on NaN, which the converter never
            // writes as a duration).
            if d < self.min {
                self.min = d;
            }
            if d > self.max {
                self.max = d;
            }
        }
    }

    /// Adds another chunk's statistics of the same name (both settled).
    fn merge(&mut self, o: &NameStats) {
        self.count += o.count;
        self.errors += o.errors;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// A name's settled durations: their exact sum and their number.
#[derive(Clone, Copy, Debug, Default)]
struct Total {
    sum: ExactSum,
    timed: u64,
}

/// The statistics of one chunk (or of several merged), dense by name id: no hashing on the hot
/// path, memory proportional to the number of names.
#[derive(Clone, Debug)]
pub struct ChunkStats {
    /// Per name id.
    pub names: Vec<NameStats>,
    /// Per name id: the settled sum and count of its non-null durations (apart from `names`,
    /// which the loop touches: this is touched once a chunk).
    totals: Vec<Total>,
    /// Per name id: the sum of the durations of spans whose parent has that name (a separate
    /// array, as a span updates its parent's name and its own).
    pub child_time: Vec<SettledSum>,
    /// Durations per name id, for percentiles.
    pub sketches: SketchTable,
}

impl ChunkStats {
    /// Empty statistics for `names` names.
    pub fn new(names: usize) -> ChunkStats {
        ChunkStats {
            names: vec![NameStats::default(); names],
            totals: vec![Total::default(); names],
            child_time: vec![SettledSum::default(); names],
            sketches: SketchTable::new(names),
        }
    }

    /// Spans counted: the sum of the names' counts (a count per span in the loop was an
    /// instruction and a store more per span).
    pub fn spans(&self) -> u64 {
        self.names.iter().map(|n| n.count).sum()
    }

    /// True when no span was counted and no child time added (stops at the first name with
    /// either).
    fn is_empty(&self) -> bool {
        self.names.iter().all(|n| n.count == 0)
            && self.child_time.iter().all(|c| *c == SettledSum::default())
    }

    /// The sum of name id `name`'s non-null durations.
    pub fn total(&self, name: usize) -> f64 {
        let mut total = self.totals[name].sum;
        let mut unsettled = self.names[name].sum;
        unsettled.settle_into(&mut total);
        total.value()
    }

    /// The number of name id `name`'s spans with a non-null duration.
    pub fn timed(&self, name: usize) -> u64 {
        self.totals[name].timed + self.names[name].sum.count()
    }

    /// Adds a span of name id `name` (which must be in range). The scan's loop does the same
    /// over a chunk at a time, with the sketch's slow paths set aside.
    pub fn add_span(&mut self, name: usize, duration: Option<f64>, error: bool) {
        self.names[name].add_span(duration, error);
        if let Some(d) = duration {
            self.sketches.insert(name, d);
        }
    }

    /// Moves every name's chunk sums (its durations' and its children's) into the exact
    /// totals: called at the end of each chunk, so that what a chunk adds does not depend on
    /// what its worker folded before.
    pub fn settle(&mut self) {
        for (n, total) in self.names.iter_mut().zip(&mut self.totals) {
            total.timed += n.sum.count();
            n.sum.settle_into(&mut total.sum);
        }
        self.child_time.iter_mut().for_each(SettledSum::settle);
    }

    /// Merges `other` into `self`, settling both. Associative and commutative, exactly:
    /// counts, minima, maxima and sketches are, and so are the fixed-point sums.
    pub fn merge(mut self, mut other: ChunkStats) -> ChunkStats {
        self.settle();
        other.settle();
        // The scan's final merge starts from an empty table: merging one is a no-op, so skip
        // its work.
        if other.is_empty() && other.names.len() <= self.names.len() {
            return self;
        }
        let empty_of_same_names = self.is_empty() && self.names.len() == other.names.len();
        if self.names.len() < other.names.len() || empty_of_same_names {
            return other.merge(self);
        }
        for (a, b) in self.names.iter_mut().zip(&other.names) {
            a.merge(b);
        }
        for (a, b) in self.totals.iter_mut().zip(&other.totals) {
            a.sum.merge(&b.sum);
            a.timed += b.timed;
        }
        for (a, b) in self.child_time.iter_mut().zip(&other.child_time) {
            a.merge(b);
        }
        self.sketches.merge(&other.sketches);
        self
    }
}

impl ChunkStats {
    /// Merges `other`, whose name `i` is this table's name `to[i]` (several files' statistics,
    /// each with its own name ids, merged by name text into one table). Exact as [`merge`]:
    /// the same spans in any files and any order give the same bits.
    ///
    /// [`merge`]: ChunkStats::merge
    pub fn merge_renamed(mut self, mut other: ChunkStats, to: &[u32]) -> ChunkStats {
        // Names kept as they are (a question of one file): the plain merge, which takes the
        // other table as it is when this one is empty. Copying a sketch table into an empty
        // one was a millisecond of a one-run question on a large file.
        let same_ids = to.len() == other.names.len()
            && to.iter().enumerate().all(|(i, &mine)| mine as usize == i);
        if same_ids && self.names.len() >= other.names.len() {
            return self.merge(other);
        }
        self.settle();
        other.settle();
        for (theirs, &mine) in to.iter().enumerate().take(other.names.len()) {
            let mine = mine as usize;
            self.names[mine].merge(&other.names[theirs]);
            let total = other.totals[theirs];
            self.totals[mine].sum.merge(&total.sum);
            self.totals[mine].timed += total.timed;
            self.child_time[mine].merge(&other.child_time[theirs]);
        }
        self.sketches.merge_renamed(&other.sketches, to);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fold(spans: &[(usize, Option<f64>, bool)]) -> ChunkStats {
        let mut s = ChunkStats::new(4);
        for &(name, d, e) in spans {
            s.add_span(name, d, e);
        }
        s
    }

    fn key(s: &ChunkStats) -> Vec<(u64, u64, u64, u64, u64, Option<f64>)> {
        s.names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.count,
                    n.errors,
                    s.timed(i),
                    n.min.to_bits(),
                    n.max.to_bits(),
                    s.sketches.quantile(i, 0.9, n.min),
                )
            })
            .collect()
    }

    #[test]
    fn merging_tables_of_different_name_counts_keeps_every_span() {
        let mut small = ChunkStats::new(2);
        small.add_span(1, Some(0.5), false);
        let big = ChunkStats::new(4);
        for (a, b) in [(small.clone(), big.clone()), (big, small)] {
            let m = a.merge(b);
            assert_eq!((m.names.len(), m.spans(), m.names[1].count), (4, 1, 1));
        }
    }

    #[test]
    fn merging_by_name_map_equals_folding_under_the_merged_ids() {
        // File A names (0: x, 1: y), file B names (0: y, 1: z, 2: x); merged: x 0, y 1, z 2.
        let (to_a, to_b) = ([0u32, 1], [1u32, 2, 0]);
        let a_spans = [
            (0, Some(0.25), false),
            (1, Some(2.0), true),
            (0, None, false),
        ];
        let b_spans = [
            (0, Some(1.5), false),
            (2, Some(0.125), false),
            (1, Some(3.0), true),
        ];
        let (mut a, mut b) = (ChunkStats::new(2), ChunkStats::new(3));
        let mut whole = ChunkStats::new(3);
        for &(name, d, e) in &a_spans {
            a.add_span(name, d, e);
            whole.add_span(to_a[name] as usize, d, e);
        }
        for &(name, d, e) in &b_spans {
            b.add_span(name, d, e);
            whole.add_span(to_b[name] as usize, d, e);
        }
        let ab = ChunkStats::new(3)
            .merge_renamed(a.clone(), &to_a)
            .merge_renamed(b.clone(), &to_b);
        let ba = ChunkStats::new(3)
            .merge_renamed(b, &to_b)
            .merge_renamed(a, &to_a);
        for m in [&ab, &ba] {
            assert_eq!(key(m), key(&whole));
            for name in 0..3 {
                assert_eq!(m.total(name).to_bits(), whole.total(name).to_bits());
            }
        }
    }

    #[test]
    fn merging_under_the_same_ids_keeps_every_span() {
        let spans = [
            (0, Some(0.25), false),
            (2, Some(3.0), true),
            (2, None, false),
        ];
        let mut a = ChunkStats::new(3);
        for &(name, d, e) in &spans {
            a.add_span(name, d, e);
        }
        a.child_time[1].add(0.5);
        // The identity map merges as `merge` does: into an empty table of the same names, into
        // one with a span already, into a wider one.
        let same = ChunkStats::new(3).merge_renamed(a.clone(), &[0, 1, 2]);
        let mut one = ChunkStats::new(3);
        one.add_span(1, Some(1.0), false);
        let general = one.merge_renamed(a.clone(), &[0, 1, 2]);
        let wider = ChunkStats::new(4).merge_renamed(a.clone(), &[0, 1, 2]);
        assert_eq!(key(&same), key(&a));
        assert_eq!(key(&wider)[..3], key(&a)[..]);
        assert_eq!(general.spans(), a.spans() + 1);
        for m in [&same, &general, &wider] {
            assert_eq!(m.child_time[1].value(), 0.5);
            assert_eq!(m.total(2).to_bits(), a.total(2).to_bits());
        }
    }

    proptest! {
        #[test]
        fn any_split_and_merge_order_gives_the_same_result(
            spans in prop::collection::vec((0usize..4, prop::option::of(1e-7f64..10.0), any::<bool>()), 0..300),
            cuts in prop::collection::vec(0usize..300, 2),
        ) {
            let (mut a, mut b) = (cuts[0].min(spans.len()), cuts[1].min(spans.len()));
            if a > b { std::mem::swap(&mut a, &mut b); }
            let (x, y, z) = (fold(&spans[..a]), fold(&spans[a..b]), fold(&spans[b..]));
            let whole = fold(&spans);
            let left = x.clone().merge(y.clone()).merge(z.clone());
            let right = x.clone().merge(y.clone().merge(z.clone()));
            let swapped = z.merge(y).merge(x);
            let regrouped = fold(&spans[b..]).merge(fold(&spans[..b]));
            for m in [&left, &right, &swapped, &regrouped] {
                prop_assert_eq!(key(m), key(&whole));
                for name in 0..4 {
                    let (p, q) = (m.total(name), whole.total(name));
                    prop_assert!((p - q).abs() <= 1e-12 * q.abs().max(1e-300));
                }
            }
            // The same parts in any grouping and order: the same bits.
            for m in [&right, &swapped] {
                for name in 0..4 {
                    prop_assert_eq!(m.total(name).to_bits(), left.total(name).to_bits());
                }
            }
        }
    }
}
