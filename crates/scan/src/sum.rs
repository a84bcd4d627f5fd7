//! Exact, order-free sums of durations, so that a total is the same bits whatever the thread
//! that folded a chunk or the order of the merges: a scan prints identical output run after
//! run, and two names with equal spans have equal totals (their order then follows the name
//! ids, never the scheduling).
//!
//! A scan adds a chunk's durations of one name into a [`ChunkSum`], in record order: blocks of
//! [`BLOCK`] plain adds, each block's sum added to the chunk's (an add, an increment and a
//! compare per span, as before). That sum is the same bits on every run, as a chunk's records
//! are. When the chunk is done, its sums are *settled* into [`ExactSum`]s: fixed-point integers
//! (multiples of 2^-80 s) to which they are added exactly. Integer addition is associative and
//! commutative, so neither which worker folded a chunk nor the order of the merges changes a
//! bit. (Settling at every checksum block instead, which needs a list of the names each block
//! touched, cost 25% of the scan's speed in `scan-vs-ceiling`.)
//!
//! Precision: a block's plain sum is within 2.9e-14 relative of the exact sum of its values,
//! and a chunk's sum of at most a few thousand blocks within another 4e-13; settling rounds to
//! 2^-80 s (8.3e-25 s), and the final value is rounded once to the nearest f64, so totals stay
//! within 1e-12 of ferret's own left-to-right sum. Range: ±2^46 s (2.2 million years) for a
//! sum; beyond it (only in a crafted file) the sum is infinite, not wrong and not a panic.

/// Plain additions in a block of a [`ChunkSum`].
pub const BLOCK: u64 = 256;

/// Bits of the fixed point's fraction: values are held as integer multiples of 2^-80.
const FRACTION_BITS: i32 = 80;
/// f64's exponent bias plus its 52 mantissa bits: a value is `mantissa * 2^(biased - 1075)`.
const EXPONENT_OFFSET: i32 = 1075;
const MANTISSA_MASK: u64 = (1 << 52) - 1;
/// 2^-80, exactly: the value of one unit of the fixed point.
const UNIT: f64 = f64::from_bits(((1023 - FRACTION_BITS) as u64) << 52);
/// Sums at or beyond this magnitude (2^46 s) have left the range; the sentinels below stay put.
const LIMIT: i128 = 1 << 126;
const POSITIVE_OVERFLOW: i128 = i128::MAX;
const NEGATIVE_OVERFLOW: i128 = i128::MIN;

/// `x` as a multiple of 2^-80, truncated toward zero; `None` when it is not finite or its
/// magnitude reaches 2^46.
fn to_fixed(x: f64) -> Option<i128> {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    // A subnormal has no implicit bit and the exponent of biased 1.
    let mantissa = (bits & MANTISSA_MASK) | (u64::from(biased != 0) << 52);
    let shift = biased.max(1) - EXPONENT_OFFSET + FRACTION_BITS;
    // mantissa < 2^53, so a left shift of up to 72 stays below 2^125.
    let magnitude = if shift > 72 {
        return None; // 2^46 or more, or not finite
    } else if shift >= 0 {
        i128::from(mantissa) << shift
    } else if shift > -64 {
        i128::from(mantissa >> -shift)
    } else {
        0
    };
    Some(if bits >> 63 == 1 {
        -magnitude
    } else {
        magnitude
    })
}

/// An exact sum of values rounded to 2^-80 (see the module's documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExactSum {
    /// The sum in units of 2^-80, or a sentinel once it left the range (sticky).
    fixed: i128,
}

impl ExactSum {
    /// Adds one value.
    pub fn add(&mut self, x: f64) {
        let v = to_fixed(x).unwrap_or(if x < 0.0 {
            NEGATIVE_OVERFLOW
        } else {
            POSITIVE_OVERFLOW
        });
        self.add_fixed(v);
    }

    fn add_fixed(&mut self, v: i128) {
        self.fixed = match (self.fixed, v) {
            (s @ (POSITIVE_OVERFLOW | NEGATIVE_OVERFLOW), _) => s,
            (_, o @ (POSITIVE_OVERFLOW | NEGATIVE_OVERFLOW)) => o,
            // Both below 2^126 in magnitude, so their sum cannot wrap.
            (s, v) => match s + v {
                sum if sum >= LIMIT => POSITIVE_OVERFLOW,
                sum if sum <= -LIMIT => NEGATIVE_OVERFLOW,
                sum => sum,
            },
        };
    }

    /// Adds another sum.
    pub fn merge(&mut self, other: &ExactSum) {
        self.add_fixed(other.fixed);
    }

    /// The sum, rounded once to the nearest f64 (infinite when it left the range).
    pub fn value(&self) -> f64 {
        match self.fixed {
            POSITIVE_OVERFLOW => f64::INFINITY,
            NEGATIVE_OVERFLOW => f64::NEG_INFINITY,
            // i128 to f64 rounds to nearest; the power of two scales it exactly.
            fixed => fixed as f64 * UNIT,
        }
    }
}

/// The sum of one chunk's values: blocks of [`BLOCK`] plain adds, each added to the chunk's
/// sum, until it is settled into an [`ExactSum`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChunkSum {
    /// The current block's values.
    pending: f64,
    /// The finished blocks' sums.
    sum: f64,
    /// Values added since the last settle.
    count: u64,
}

impl ChunkSum {
    /// Adds one value.
    #[inline(always)]
    pub fn add(&mut self, x: f64) {
        self.pending += x;
        self.count += 1;
        if self.count.is_multiple_of(BLOCK) {
            self.sum += std::mem::take(&mut self.pending);
        }
    }

    /// Values added since the last settle.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Moves the values into `exact` and starts again from nothing.
    pub fn settle_into(&mut self, exact: &mut ExactSum) {
        if self.count > 0 {
            exact.add(self.sum);
            exact.add(self.pending);
            *self = ChunkSum::default();
        }
    }
}

/// A sum folded chunk by chunk: the current chunk's and the exact sum of those settled (the
/// child time of a name).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SettledSum {
    /// The current chunk's values.
    pub chunk: ChunkSum,
    /// Every settled chunk's.
    pub exact: ExactSum,
}

impl SettledSum {
    /// Adds one value and settles it at once (outside a scan's loop).
    pub fn add(&mut self, x: f64) {
        self.chunk.add(x);
        self.settle();
    }

    /// Settles the current chunk's values.
    pub fn settle(&mut self) {
        self.chunk.settle_into(&mut self.exact);
    }

    /// Adds another sum (settling both first).
    pub fn merge(&mut self, other: &SettledSum) {
        let mut other = *other;
        other.settle();
        self.settle();
        self.exact.merge(&other.exact);
    }

    /// The sum, unsettled values included.
    pub fn value(&self) -> f64 {
        let mut all = *self;
        all.settle();
        all.exact.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn recovers_what_naive_summation_loses() {
        let values = [1e13, 1e-6, -1e13, 1e-6];
        let naive: f64 = values.iter().sum();
        assert_ne!(naive, 2e-6);
        let mut s = ExactSum::default();
        values.iter().for_each(|&x| s.add(x));
        assert_eq!(s.value(), 2e-6);
    }

    #[test]
    fn long_sums_are_exact_to_the_last_bit() {
        // 1e6 values whose plain sum drifts: 0.1 is not a binary fraction, and the running sum
        // grows large against each value.
        let (mut s, mut naive) = (ExactSum::default(), 0.0f64);
        for _ in 0..1_000_000 {
            s.add(0.1);
            naive += 0.1;
        }
        let exact = 100_000.0f64;
        assert!((naive - exact).abs() / exact > 1e-12, "naive drift {naive}");
        // 0.1 as an f64 is 0.1000000000000000055511151231257827: the exact sum of 1e6 of
        // them is 1e5 + 5.6e-12, under half an ulp of 1e5 (7.3e-12), so it rounds to 1e5.
        assert_eq!(s.value(), exact);
    }

    #[test]
    fn a_chunk_sum_settles_what_it_holds_once() {
        let mut c = ChunkSum::default();
        (0..1000).for_each(|i| c.add(f64::from(i)));
        assert_eq!(c.count(), 1000);
        let mut exact = ExactSum::default();
        c.settle_into(&mut exact);
        c.settle_into(&mut exact);
        assert_eq!((exact.value(), c.count()), (499_500.0, 0));
    }

    #[test]
    fn values_out_of_range_make_the_sum_infinite_without_panicking() {
        for (x, want) in [
            (f64::NAN, f64::INFINITY),
            (f64::INFINITY, f64::INFINITY),
            (f64::NEG_INFINITY, f64::NEG_INFINITY),
            (1e300, f64::INFINITY),
            (-1e300, f64::NEG_INFINITY),
        ] {
            let mut s = ExactSum::default();
            s.add(1.0);
            s.add(x);
            s.add(2.0);
            s.add(-1e13);
            assert_eq!(s.value(), want, "{x}");
        }
        // Sums that overflow though every value fits.
        let mut s = ExactSum::default();
        (0..4).for_each(|_| s.add(3e13));
        assert_eq!(s.value(), f64::INFINITY);
        // Subnormals and the smallest values vanish; zero and negative zero add nothing.
        let mut s = ExactSum::default();
        for x in [f64::MIN_POSITIVE / 4.0, 1e-30, 0.0, -0.0, 0.5] {
            s.add(x);
        }
        assert_eq!(s.value(), 0.5);
    }

    proptest! {
        #[test]
        fn any_grouping_and_order_gives_the_same_bits(
            values in prop::collection::vec(
                prop_oneof![1e-9f64..1e-3, 1e-3f64..10.0, 10.0f64..1e6, -1.0f64..1.0], 0..400),
            cuts in prop::collection::vec(0usize..400, 3),
        ) {
            let sum_of = |v: &[f64]| {
                let mut s = ExactSum::default();
                v.iter().for_each(|&x| s.add(x));
                s
            };
            let whole = sum_of(&values);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(values.len())).collect();
            cuts.sort_unstable();
            let parts = [
                sum_of(&values[..cuts[0]]),
                sum_of(&values[cuts[0]..cuts[1]]),
                sum_of(&values[cuts[1]..cuts[2]]),
                sum_of(&values[cuts[2]..]),
            ];
            let mut forward = ExactSum::default();
            parts.iter().for_each(|p| forward.merge(p));
            let mut backward = ExactSum::default();
            parts.iter().rev().for_each(|p| backward.merge(p));
            let mut reversed = values.clone();
            reversed.reverse();
            for s in [forward, backward, sum_of(&reversed)] {
                prop_assert_eq!(s.value().to_bits(), whole.value().to_bits());
            }
            // Within 1e-12 of the plain f64 sum, as ferret computes it.
            let plain: f64 = values.iter().sum();
            let scale: f64 = values.iter().map(|x| x.abs()).sum();
            prop_assert!((whole.value() - plain).abs() <= 1e-12 * scale.max(1e-300));
        }
    }
}
