//! The statistics of a verdict in a run comparison (`--baseline`): whether a
//! function's durations moved between two runs, decided from the two sides' sketches, so that
//! a comparison stays in memory bounded by the number of names.
//!
//! **The test.** Mann-Whitney U over the sketches' buckets: each duration is ranked by its bucket
//! (every duration in a bucket ties, and gets the bucket's mid-rank), the normal approximation
//! with the tie correction and a continuity correction of one half gives a two-sided p-value.
//! It assumes the durations of a side are independent draws (spans of one function in one run
//! are, roughly: a trace is not a controlled experiment, and a side with a burst of slow calls
//! is a shift in that side's distribution, which is what a user asks about).
//!
//! **Bucketing.** Durations within one bucket (at most 1.75% wide) count as ties, so a shift
//! smaller than a bucket is invisible, and ties cost the test a little power; the tie
//! correction keeps its false-alarm rate right. The minimum effect a change must have to be
//! called one (5% by default) is well above a bucket's width.
//!
//! **Many functions at once.** A comparison tests every function it shows, so the p-values are
//! adjusted by Benjamini-Hochberg: among the functions called changed, the expected share of
//! false alarms is at most the level (5% by default).

/// The two-sided p-value of Mann-Whitney U between two bucketed samples, each a list of
/// `(bucket key, count)` in ascending key order (keys comparable across the two), or `None`
/// when a side is empty or every duration ties.
pub fn mann_whitney(a: &[(u32, u64)], b: &[(u32, u64)]) -> Option<f64> {
    let (na, nb) = (total(a) as f64, total(b) as f64);
    if na == 0.0 || nb == 0.0 {
        return None;
    }
    let n = na + nb;
    let (mut rank_sum_a, mut ties, mut below) = (0.0, 0.0, 0.0);
    for (ca, cb) in merged(a, b) {
        let t = (ca + cb) as f64;
        // The group's ranks are below+1 ..= below+t; each member gets their mean.
        rank_sum_a += ca as f64 * (below + (t + 1.0) / 2.0);
        ties += t * t * t - t;
        below += t;
    }
    let u = rank_sum_a - na * (na + 1.0) / 2.0;
    let mean = na * nb / 2.0;
    let variance = na * nb / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        return None;
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / variance.sqrt();
    Some(libm::erfc(z / std::f64::consts::SQRT_2).min(1.0))
}

/// The shift of a function's durations from base to target, as target / base - 1 (0.25 is 25%
/// slower), with a 95% interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shift {
    /// The Hodges-Lehmann estimate: the median of the ratios of every target duration to every
    /// base duration.
    pub estimate: f64,
    /// The interval, when the samples are large enough for the normal approximation to give
    /// one (at least one pair of durations outside it on each side).
    pub interval: Option<[f64; 2]>,
}

/// The Hodges-Lehmann shift between two bucketed samples (as [`mann_whitney`] takes them) and
/// its distribution-free 95% interval, in duration ratio: bucket keys are logarithmic, so the
/// ratio of two durations is a distance between keys, and the median of the distances of every
/// (base, target) pair is the estimate. The interval runs between the distances with n/2 -+
/// 1.96 sd of the pairs below them (sd that of the rank sum, n the pairs): the normal
/// approximation of the classic interval. Durations of zero or less (key 0)
/// have no ratio and are left out. Exact to within a bucket (1.75%). `None` when a side has no
/// positive duration.
pub fn hodges_lehmann(a: &[(u32, u64)], b: &[(u32, u64)]) -> Option<Shift> {
    let positive = |h: &[(u32, u64)]| -> Vec<(u32, u64)> {
        h.iter().copied().filter(|&(k, _)| k > 0).collect()
    };
    let (a, b) = (positive(a), positive(b));
    let (lo_a, hi_a) = (a.first()?.0, a.last()?.0);
    let (lo_b, hi_b) = (b.first()?.0, b.last()?.0);
    // Distances run from lo_b - hi_a to hi_b - lo_a: one counter each.
    let offset = i64::from(hi_a) - i64::from(lo_b);
    let mut pairs = vec![0u128; (hi_a - lo_a + hi_b - lo_b) as usize + 1];
    for &(ka, ca) in &a {
        for &(kb, cb) in &b {
            let slot = i64::from(kb) - i64::from(ka) + offset;
            pairs[slot as usize] += u128::from(ca) * u128::from(cb);
        }
    }
    let (na, nb) = (total(&a) as f64, total(&b) as f64);
    let n = na * nb;
    // The distance below which `k` of the pairs lie, as a ratio. A distance in whole buckets is
    // a distance in durations of up to a bucket more or less, so each slot's pairs are spread
    // evenly over the half-buckets either side: without that, every estimate would snap to a
    // whole bucket, off the truth by up to half of one.
    let below = |k: f64| {
        let k = k.clamp(0.0, n);
        let mut seen = 0.0;
        for (slot, &c) in pairs.iter().enumerate() {
            let c = c as f64;
            if c > 0.0 && seen + c >= k {
                let distance = (slot as i64 - offset) as f64 - 0.5 + (k - seen) / c;
                return ferret_scan::sketch::key_distance_ratio(distance) - 1.0;
            }
            seen += c;
        }
        ferret_scan::sketch::key_distance_ratio((pairs.len() as i64 - offset) as f64 - 0.5) - 1.0
    };
    let half_width = 1.959_964 * (n * (na + nb + 1.0) / 12.0).sqrt();
    let interval = (n / 2.0 - half_width >= 1.0)
        .then(|| [below(n / 2.0 - half_width), below(n / 2.0 + half_width)]);
    Some(Shift {
        estimate: below(n / 2.0),
        interval,
    })
}

/// Benjamini-Hochberg adjusted p-values (q-values), in the order given: calling changed every
/// function whose q is below a level keeps the expected share of false alarms among them at
/// most that level.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len() as f64;
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&i, &j| p[j].total_cmp(&p[i]));
    let mut q = vec![1.0; p.len()];
    let mut running = 1.0f64;
    for (from_top, &i) in order.iter().enumerate() {
        let rank = (p.len() - from_top) as f64;
        running = running.min(p[i] * m / rank);
        q[i] = running.min(1.0);
    }
    q
}

fn total(h: &[(u32, u64)]) -> u64 {
    h.iter().map(|&(_, c)| c).sum()
}

/// The counts of both sides per key, in ascending key order.
fn merged<'h>(a: &'h [(u32, u64)], b: &'h [(u32, u64)]) -> impl Iterator<Item = (u64, u64)> + 'h {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let (ka, kb) = (a.get(i).map(|e| e.0), b.get(j).map(|e| e.0));
        let step = match (ka, kb) {
            (None, None) => return None,
            (Some(x), Some(y)) if x == y => (a[i].1, b[j].1, 1, 1),
            (Some(x), Some(y)) if x < y => (a[i].1, 0, 1, 0),
            (Some(_), None) => (a[i].1, 0, 1, 0),
            _ => (0, b[j].1, 0, 1),
        };
        i += step.2;
        j += step.3;
        Some((step.0, step.1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferret_scan::sketch::SketchTable;
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Distribution, LogNormal};

    /// The sketch histogram of `durations`.
    fn histogram(durations: &[f64]) -> Vec<(u32, u64)> {
        let mut t = SketchTable::new(1);
        for &d in durations {
            t.insert(0, d);
        }
        t.histogram(0)
    }

    /// Log-normal durations around `median` seconds (a service's latencies: sigma 0.5).
    fn latencies(n: usize, median: f64, rng: &mut StdRng) -> Vec<f64> {
        let noise = LogNormal::new(median.ln(), 0.5).unwrap();
        (0..n).map(|_| noise.sample(rng)).collect()
    }

    #[test]
    fn agrees_with_the_textbook_value_and_sees_ties() {
        // scipy.stats.mannwhitneyu([1, 2, 3], [4, 5, 6], method="asymptotic"): p = 0.0808.
        let keyed = |v: &[u32]| v.iter().map(|&k| (k, 1)).collect::<Vec<_>>();
        let p = mann_whitney(&keyed(&[1, 2, 3]), &keyed(&[4, 5, 6])).unwrap();
        assert!((p - 0.0808).abs() < 5e-4, "{p}");
        // The same sample on both sides: no evidence at all.
        let same = keyed(&[1, 2, 3, 4]);
        assert_eq!(mann_whitney(&same, &same), Some(1.0));
        // Everything in one bucket: no test possible.
        assert_eq!(mann_whitney(&[(7, 10)], &[(7, 5)]), None);
        assert_eq!(mann_whitney(&[], &[(7, 5)]), None);
    }

    #[test]
    fn a_quarter_slower_is_seen_and_equal_runs_rarely_are() {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let base = histogram(&latencies(400, 0.010, &mut rng));
        let slower = histogram(&latencies(400, 0.0125, &mut rng));
        assert!(mann_whitney(&base, &slower).unwrap() < 1e-6);
        // 400 comparisons of equal distributions: about 5% below 0.05, as a test should.
        let alarms = (0..400)
            .filter(|_| {
                let a = histogram(&latencies(200, 0.010, &mut rng));
                let b = histogram(&latencies(200, 0.010, &mut rng));
                mann_whitney(&a, &b).unwrap() < 0.05
            })
            .count();
        assert!(
            (8..=35).contains(&alarms),
            "{alarms} of 400 false alarms at 5%"
        );
    }

    #[test]
    fn the_shift_estimate_finds_a_quarter_and_its_interval_holds_it() {
        let mut rng = StdRng::seed_from_u64(0xfeed);
        let base = histogram(&latencies(2000, 0.010, &mut rng));
        let slower = histogram(&latencies(2000, 0.0125, &mut rng));
        let s = hodges_lehmann(&base, &slower).unwrap();
        assert!((s.estimate - 0.25).abs() < 0.05, "{s:?}");
        let [low, high] = s.interval.unwrap();
        assert!(
            low < 0.25 && 0.25 < high && low > 0.15 && high < 0.35,
            "{s:?}"
        );
        // The same sample: no shift, an interval around zero.
        let same = hodges_lehmann(&base, &base).unwrap();
        let [low, high] = same.interval.unwrap();
        assert!(
            same.estimate.abs() < 0.01 && low < 0.0 && high > 0.0,
            "{same:?}"
        );
        // One duration a side: an estimate, but too few for an interval.
        let one = hodges_lehmann(&[(100, 1)], &[(110, 1)]).unwrap();
        let quarter_octave = 0.25f64.exp2() - 1.0;
        assert!((one.estimate - quarter_octave).abs() < 0.02 && one.interval.is_none());
        // Exactly twice as slow: one octave, 40 keys.
        let doubled: Vec<(u32, u64)> = base.iter().map(|&(k, c)| (k + 40, c)).collect();
        let twice = hodges_lehmann(&base, &doubled).unwrap();
        assert!((twice.estimate - 1.0).abs() < 1e-12, "{twice:?}");
        // Durations of zero or less have no ratio.
        assert_eq!(hodges_lehmann(&[(0, 5)], &base), None);
    }

    #[test]
    fn benjamini_hochberg_matches_its_definition() {
        // R's p.adjust(c(0.01, 0.04, 0.03, 0.5), "BH") = 0.04 0.0533 0.0533 0.5.
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
        let want = [0.04, 0.16 / 3.0, 0.16 / 3.0, 0.5];
        for (got, want) in q.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
        assert!(benjamini_hochberg(&[]).is_empty());
    }
}
