//! Time cut into buckets for `--timeline`: round widths aligned to Unix time, and one selective
//! pass that folds a run's spans by bucket of their start instead of by name, through the
//! engine's own fold, so a bucket's counts, totals and percentiles come from the same code and
//! bound as the function table's, in memory proportional to the buckets. The timeline report
//! (`ferret-report`'s `timeline.rs`) prints them.

use ferret_format::{FormatError, SpanFile, SpanRecord};

use crate::chunk::BlockSelect;
use crate::engine::{fold_chunks, AfterChunk, ScanError, ScanOptions};
use crate::stats::ChunkStats;

/// Bucket widths a timeline picks from, in nanoseconds: round values from a millisecond to a
/// week.
pub const ROUND_WIDTHS: &[u64] = &[
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    SECOND,
    2 * SECOND,
    5 * SECOND,
    10 * SECOND,
    15 * SECOND,
    30 * SECOND,
    60 * SECOND,
    120 * SECOND,
    300 * SECOND,
    600 * SECOND,
    900 * SECOND,
    1800 * SECOND,
    3600 * SECOND,
    7200 * SECOND,
    10800 * SECOND,
    21600 * SECOND,
    43200 * SECOND,
    86400 * SECOND,
    172800 * SECOND,
    604800 * SECOND,
];

const SECOND: u64 = 1_000_000_000;

/// At most this many buckets a default width gives over a range.
pub const DEFAULT_MAX_BUCKETS: f64 = 200.0;

/// A timeline with more buckets than this is refused (its memory is a few hundred bytes a
/// bucket, and no chart shows more).
pub const MAX_BUCKETS: usize = 100_000;

/// Time cut into equal buckets aligned to multiples of their width in Unix time (a bucket of a
/// minute starts on a minute), as Grafana aligns its panels. Bucket `k` holds the spans with
/// `floor(start_time / width) == k`, computed in f64 as a query engine computes it, so DuckDB's
/// `floor(start_time / 0.2)` groups a Parquet export the same way. Its start is `k * width`
/// as an exact decimal (the width is a whole number of nanoseconds), given as the nearest f64:
/// `1795628757.8`, not the `1795628757.8000002` that multiplying in f64 gives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Buckets {
    /// The first bucket's index: its start is `first * width`.
    pub first: i64,
    /// Buckets.
    pub count: usize,
    /// Width in seconds (the nearest f64 to `width_ns` / 1e9).
    pub width: f64,
    /// Width in nanoseconds, exactly.
    width_ns: u64,
}

/// Errors of a timeline's buckets.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The width is zero.
    #[error("a bucket must be at least a nanosecond long")]
    BadWidth,
    /// The range would need too many buckets.
    #[error("{count} buckets of {width} s over the range; at most {MAX_BUCKETS}: give a longer --bucket")]
    TooMany {
        /// Buckets needed.
        count: u64,
        /// Their width.
        width: f64,
    },
}

impl Buckets {
    /// Buckets over the starts `from..=to`: of `width`, or of the smallest round width that
    /// needs at most [`DEFAULT_MAX_BUCKETS`] buckets.
    pub fn over(
        from: f64,
        to: f64,
        width: Option<std::time::Duration>,
    ) -> Result<Buckets, BucketError> {
        let range = (to - from).max(0.0);
        let width_ns = match width.map(|w| w.as_nanos()) {
            Some(0) => return Err(BucketError::BadWidth),
            Some(ns) => u64::try_from(ns).unwrap_or(u64::MAX),
            None => ROUND_WIDTHS
                .iter()
                .copied()
                .find(|&w| range / (w as f64 / 1e9) < DEFAULT_MAX_BUCKETS)
                .unwrap_or(ROUND_WIDTHS[ROUND_WIDTHS.len() - 1]),
        };
        let width = width_ns as f64 / 1e9;
        let first = (from / width).floor() as i64;
        let last = (to / width).floor() as i64;
        let count = (last.saturating_sub(first).saturating_add(1)).max(1) as u64;
        if count > MAX_BUCKETS as u64 {
            return Err(BucketError::TooMany { count, width });
        }
        Ok(Buckets {
            first,
            count: count as usize,
            width,
            width_ns,
        })
    }

    /// The start of bucket `i` (Unix seconds): `k * width` exactly, as the nearest f64.
    pub fn start(&self, i: usize) -> f64 {
        let ns = i128::from(self.first + i as i64) * i128::from(self.width_ns);
        decimal_seconds(ns).parse().unwrap_or(f64::NAN)
    }

    /// The bucket holding start time `t`: `floor(t / width) - first`, or `None` outside the
    /// buckets.
    #[inline]
    pub fn index(&self, t: f64) -> Option<usize> {
        let k = (t / self.width).floor();
        let i = k - self.first as f64;
        (i >= 0.0 && i < self.count as f64).then_some(i as usize)
    }
}

/// `ns` nanoseconds as decimal seconds, with no trailing zeros: `1795628757.8`.
fn decimal_seconds(ns: i128) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let (whole, frac) = (
        ns.unsigned_abs() / 1_000_000_000,
        ns.unsigned_abs() % 1_000_000_000,
    );
    let frac = format!("{frac:09}");
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{frac}")
    }
}

/// Folds the spans of run `run` that pass the filter into one [`ChunkStats`] entry per bucket
/// of `buckets` (entry `i` is bucket `i`); spans starting outside the buckets are left out.
/// Reads only the blocks that may hold the run inside the buckets' time range.
pub fn scan_timeline<D: AsRef<[u8]> + Sync>(
    file: &SpanFile<D>,
    run: u32,
    opts: &ScanOptions,
    buckets: &Buckets,
    after_chunk: AfterChunk,
) -> Result<ChunkStats, ScanError> {
    let filter = opts.filter.compile(file, Some(run), opts.verify)?;
    // A bucket's members are chosen by division, not by comparing with its start: the blocks
    // read reach a bucket's width past both ends, and `index` decides.
    let (from, end) = (
        buckets.start(0) - buckets.width,
        buckets.start(buckets.count + 1),
    );
    let select = BlockSelect {
        run: Some(run),
        since: Some(opts.filter.since.map_or(from, |t| t.max(from))),
        until: Some(opts.filter.until.map_or(end, |t| t.min(end))),
        ended_since: None,
    };
    fold_chunks(
        file,
        opts,
        &select,
        buckets.count,
        after_chunk,
        |stats, seg, _, records| {
            fold_into_buckets(stats, records, buckets, |r| {
                r.run == run && filter.keep(file, seg, r)
            })
        },
    )
}

fn fold_into_buckets(
    stats: &mut ChunkStats,
    records: &[SpanRecord],
    buckets: &Buckets,
    keep: impl Fn(&SpanRecord) -> bool,
) -> Result<(), FormatError> {
    for r in records {
        if !keep(r) {
            continue;
        }
        if let Some(i) = buckets.index(r.start_time) {
            stats.add_span(i, r.duration(), r.is_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_millis(n))
    }

    #[test]
    fn default_widths_are_round_and_give_at_most_200_buckets() {
        // Five minutes: 2 s buckets (150), aligned to even seconds.
        let b = Buckets::over(1000.5, 1300.5, None).unwrap();
        assert_eq!((b.width, b.count, b.start(0)), (2.0, 151, 1000.0));
        // A day: 10-minute buckets.
        let day = Buckets::over(0.0, 86_399.0, None).unwrap();
        assert_eq!((day.width, day.count), (600.0, 144));
        // One instant: one bucket.
        assert_eq!(Buckets::over(5.0, 5.0, None).unwrap().count, 1);
        assert!(matches!(
            Buckets::over(0.0, 1e9, ms(1000)),
            Err(BucketError::TooMany { .. })
        ));
        assert!(matches!(
            Buckets::over(0.0, 1.0, ms(0)),
            Err(BucketError::BadWidth)
        ));
    }

    #[test]
    fn a_start_belongs_to_the_bucket_its_division_names() {
        let b = Buckets::over(1.7e9, 1.7e9 + 1.0, ms(100)).unwrap();
        for i in 0..b.count {
            let k = b.first + i as i64;
            // Every f64 near the boundary goes where floor(t / width) says.
            let near = b.start(i);
            for t in [
                f64::from_bits(near.to_bits() - 2),
                f64::from_bits(near.to_bits() - 1),
                near,
                f64::from_bits(near.to_bits() + 1),
            ] {
                let want = (t / b.width).floor() as i64 - b.first;
                let got = b.index(t).map(|i| i as i64);
                assert_eq!(
                    got,
                    (0..b.count as i64).contains(&want).then_some(want),
                    "{t}"
                );
            }
            assert_eq!(b.index(near + 0.05), Some(i), "k {k}");
        }
        assert_eq!(b.index(b.start(0) - 1e-3), None);
        assert_eq!(b.index(b.start(b.count) + 1e-3), None);
    }

    #[test]
    fn starts_are_exact_decimals() {
        // 0.2 s buckets at 2026-11-25: k * 0.2 in f64 would print 1795628757.8000002.
        let b = Buckets::over(1_795_628_757.9, 1_795_628_760.0, ms(200)).unwrap();
        assert_eq!(b.start(0).to_string(), "1795628757.8");
        assert_eq!(serde_json::json!(b.start(1)).to_string(), "1795628758.0");
        assert_eq!(b.width.to_string(), "0.2");
        assert_eq!(decimal_seconds(-1_500_000_000), "-1.5");
        assert_eq!(decimal_seconds(7_000_000_000), "7");
    }
}
