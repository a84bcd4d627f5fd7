//! The statistics under a run comparison (`--baseline`, the run-comparison issue): whether a
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
    use crate::sketch::SketchTable;

    /// The sketch histogram of `durations`.
    fn histogram(durations: &[f64]) -> Vec<(u32, u64)> {
        let mut t = SketchTable::new(1);
        for &d in durations {
            t.insert(0, d);
        }
        t.histogram(0)
    }

    /// Log-normal durations around `median` seconds (a service's latencies), from a xorshift.
    fn latencies(n: usize, median: f64, seed: &mut u64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let mut uniform = || {
                    *seed ^= *seed << 13;
                    *seed ^= *seed >> 7;
                    *seed ^= *seed << 17;
                    (*seed >> 11) as f64 / (1u64 << 53) as f64
                };
                // Box-Muller.
                let (u1, u2) = (uniform().max(1e-300), uniform());
                let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                median * (0.5 * normal).exp()
            })
            .collect()
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
        let mut seed = 0x5eed_u64;
        let base = histogram(&latencies(400, 0.010, &mut seed));
        let slower = histogram(&latencies(400, 0.0125, &mut seed));
        assert!(mann_whitney(&base, &slower).unwrap() < 1e-6);
        // 400 comparisons of equal distributions: about 5% below 0.05, as a test should.
        let alarms = (0..400)
            .filter(|_| {
                let a = histogram(&latencies(200, 0.010, &mut seed));
                let b = histogram(&latencies(200, 0.010, &mut seed));
                mann_whitney(&a, &b).unwrap() < 0.05
            })
            .count();
        assert!(
            (8..=35).contains(&alarms),
            "{alarms} of 400 false alarms at 5%"
        );
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
