//! [`SketchTable`]: mergeable percentile sketches with at most 0.79% relative error.
//!
//! A positive duration's bucket is its f64 exponent (the octave) and its top 6 mantissa bits,
//! read straight from the bits (no `log` call): each octave splits into 64 buckets of relative
//! width 1/64, and a bucket reports the middle of its range, so the estimate is within 1/128
//! (0.79%) of a value of the right rank. Octaves cover 2^-40 s (about 1 ps) to 2^24 s (194
//! days); a duration outside lands in the edge octave's edge bucket, where the bound does not
//! hold (the report clamps percentiles to the name's exact min and max). Durations of zero or
//! less (a clock that stepped back) share one bucket reported as the smallest value seen.

const SUB_BITS: u32 = 6;
const SUBS: usize = 1 << SUB_BITS;
const MIN_EXP: i32 = -40;
const OCTAVES: usize = 64;
type Block = [u64; SUBS];

/// The percentile sketches of every name of one chunk (or several merged). Each name has 64
/// octave slots; an octave's 64 counters are a block taken from one arena on its first
/// duration, so memory is 256 bytes per name plus 512 bytes per octave actually used (a name
/// whose durations span ten octaves costs 5 KB), and an insert is an index load and an add.
#[derive(Clone, Debug, PartialEq)]
pub struct SketchTable {
    /// `names x OCTAVES`: 1 + the block of that octave, or 0 for none yet.
    slots: Vec<u32>,
    blocks: Vec<Block>,
    nonpositive: Vec<u64>,
    total: Vec<u64>,
}

/// The octave and sub-bucket of a positive finite duration.
#[inline]
fn bucket_of(x: f64) -> (usize, usize) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let sub = ((bits >> (52 - SUB_BITS)) & (SUBS as u64 - 1)) as usize;
    match exp - MIN_EXP {
        e if e < 0 => (0, 0),
        e if e >= OCTAVES as i32 => (OCTAVES - 1, SUBS - 1),
        e => (e as usize, sub),
    }
}

fn bucket_mid(octave: usize, sub: usize) -> f64 {
    let base = 2f64.powi(octave as i32 + MIN_EXP);
    base * (1.0 + (sub as f64 + 0.5) / SUBS as f64)
}

impl SketchTable {
    /// Empty sketches for `names` names.
    pub fn new(names: usize) -> SketchTable {
        SketchTable {
            slots: vec![0; names * OCTAVES],
            blocks: Vec::new(),
            nonpositive: vec![0; names],
            total: vec![0; names],
        }
    }

    /// Number of names.
    pub fn names(&self) -> usize {
        self.total.len()
    }

    /// The counters of `octave` of `name`, taken from the arena on first use.
    #[inline]
    fn block_mut(&mut self, name: usize, octave: usize) -> &mut Block {
        let slot = &mut self.slots[name * OCTAVES + octave];
        if *slot == 0 {
            self.blocks.push([0; SUBS]);
            *slot = self.blocks.len() as u32;
        }
        &mut self.blocks[*slot as usize - 1]
    }

    /// Adds a duration of name `name` (which must be below [`names`](Self::names)).
    #[inline]
    pub fn insert(&mut self, name: usize, x: f64) {
        self.total[name] += 1;
        if !(x > 0.0 && x.is_finite()) {
            self.nonpositive[name] += 1;
            return;
        }
        let (octave, sub) = bucket_of(x);
        self.block_mut(name, octave)[sub] += 1;
    }

    /// Adds another table's counts (same number of names).
    pub fn merge(&mut self, other: &SketchTable) {
        for name in 0..self.names().min(other.names()) {
            self.total[name] += other.total[name];
            self.nonpositive[name] += other.nonpositive[name];
            for octave in 0..OCTAVES {
                let theirs = other.slots[name * OCTAVES + octave];
                if theirs != 0 {
                    let theirs = &other.blocks[theirs as usize - 1];
                    for (a, b) in self.block_mut(name, octave).iter_mut().zip(theirs) {
                        *a += b;
                    }
                }
            }
        }
    }

    /// The duration of nearest rank `ceil(q * n)` (q in 0..=1) of name `name`, to within 0.79%;
    /// `floor` stands for the non-positive bucket. `None` when the name has no durations.
    pub fn quantile(&self, name: usize, q: f64, floor: f64) -> Option<f64> {
        let total = *self.total.get(name)?;
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        if rank <= self.nonpositive[name] {
            return Some(floor.min(0.0));
        }
        let mut seen = self.nonpositive[name];
        for octave in 0..OCTAVES {
            let slot = self.slots[name * OCTAVES + octave];
            if slot == 0 {
                continue;
            }
            for (sub, &c) in self.blocks[slot as usize - 1].iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Some(bucket_mid(octave, sub));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(mut v: Vec<f64>, q: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    proptest! {
        #[test]
        fn quantiles_are_within_the_documented_bound(v in prop::collection::vec(1e-9f64..1e4, 1..400), q in 0.0f64..=1.0) {
            let mut h = SketchTable::new(2);
            for &x in &v { h.insert(1, x); }
            let est = h.quantile(1, q, 0.0).unwrap();
            let want = exact(v, q);
            prop_assert!(((est - want) / want).abs() <= 1.0 / 128.0, "{} vs {}", est, want);
        }

        #[test]
        fn merging_equals_inserting_all(a in prop::collection::vec(1e-6f64..1e2, 0..100), b in prop::collection::vec(1e-6f64..1e2, 0..100)) {
            let mut ha = SketchTable::new(1);
            let mut hb = SketchTable::new(1);
            let mut all = SketchTable::new(1);
            for &x in &a { ha.insert(0, x); all.insert(0, x); }
            for &x in &b { hb.insert(0, x); all.insert(0, x); }
            ha.merge(&hb);
            for q in [0.5, 0.9, 0.99] {
                prop_assert_eq!(ha.quantile(0, q, 0.0), all.quantile(0, q, 0.0));
            }
        }
    }
}
