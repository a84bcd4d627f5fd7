//! [`LogHistogram`]: a mergeable percentile sketch with at most 0.79% relative error.
//!
//! A positive duration's bucket is its f64 exponent and top 6 mantissa bits, read straight from
//! the bits (no `log` call): each octave splits into 64 buckets of relative width 1/64, and a
//! bucket reports the middle of its range, so the estimate is within 1/128 (0.79%) of some value
//! of the right rank. Counts are kept only for the range of buckets seen, so a name whose
//! durations span a few octaves costs about a kilobyte. Durations of zero or less (a clock that
//! stepped back) share one bucket reported as the smallest value seen.

const SUB_BITS: u32 = 6;

/// Counts of durations per logarithmic bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogHistogram {
    first: u32,
    counts: Vec<u64>,
    nonpositive: u64,
    total: u64,
}

#[inline]
fn bucket_of(x: f64) -> u32 {
    // Positive finite f64s order like their bits; drop the low mantissa bits.
    (x.to_bits() >> (52 - SUB_BITS)) as u32
}

fn bucket_mid(b: u32) -> f64 {
    let lo = f64::from_bits(u64::from(b) << (52 - SUB_BITS));
    let hi = f64::from_bits(u64::from(b + 1) << (52 - SUB_BITS));
    (lo + hi) / 2.0
}

impl LogHistogram {
    /// Adds one duration.
    #[inline]
    pub fn insert(&mut self, x: f64) {
        self.total += 1;
        if x <= 0.0 || !x.is_finite() {
            self.nonpositive += 1;
            return;
        }
        let b = bucket_of(x);
        if self.counts.is_empty() {
            self.first = b;
            self.counts.push(0);
        } else if b < self.first {
            let grow = (self.first - b) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = b;
        } else if (b - self.first) as usize >= self.counts.len() {
            self.counts.resize((b - self.first) as usize + 1, 0);
        }
        self.counts[(b - self.first) as usize] += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &LogHistogram) {
        self.total += other.total;
        self.nonpositive += other.nonpositive;
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.first = other.first;
            self.counts = other.counts.clone();
            return;
        }
        let first = self.first.min(other.first);
        let last = (self.first as usize + self.counts.len())
            .max(other.first as usize + other.counts.len());
        if first < self.first {
            let grow = (self.first - first) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = first;
        }
        self.counts.resize(last - first as usize, 0);
        let off = (other.first - first) as usize;
        for (i, c) in other.counts.iter().enumerate() {
            self.counts[off + i] += c;
        }
    }

    /// The value of nearest rank `ceil(q * n)` (q in 0..=1), to within 0.79%; `floor` stands
    /// for the non-positive bucket. `None` when empty.
    pub fn quantile(&self, q: f64, floor: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank <= self.nonpositive {
            return Some(floor.min(0.0));
        }
        let mut seen = self.nonpositive;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_mid(self.first + i as u32));
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
            let mut h = LogHistogram::default();
            for &x in &v { h.insert(x); }
            let est = h.quantile(q, 0.0).unwrap();
            let want = exact(v, q);
            prop_assert!(((est - want) / want).abs() <= 1.0 / 128.0, "{} vs {}", est, want);
        }

        #[test]
        fn merging_equals_inserting_all(a in prop::collection::vec(1e-6f64..1e2, 0..100), b in prop::collection::vec(1e-6f64..1e2, 0..100)) {
            let mut ha = LogHistogram::default();
            let mut hb = LogHistogram::default();
            let mut all = LogHistogram::default();
            for &x in &a { ha.insert(x); all.insert(x); }
            for &x in &b { hb.insert(x); all.insert(x); }
            ha.merge(&hb);
            for q in [0.5, 0.9, 0.99] {
                prop_assert_eq!(ha.quantile(q, 0.0), all.quantile(q, 0.0));
            }
        }
    }
}
