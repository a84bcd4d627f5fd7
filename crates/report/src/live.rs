//! The live view's snapshot: each function over a window of span ends (a call is observed when
//! it completes, as a metrics system observes it), its rate, percentiles, error rate, total and
//! share of the window's time, and its change against the window before by the comparison's
//! verdict. `ferret-scan --watch` draws it or prints it as one JSON line.

use ferret_scan::stats::ChunkStats;
use serde_json::json;

use crate::comparison::{Change, CompareOptions, ComparisonReport, Side};
use crate::functions::FunctionRow;

/// One function over the window.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveRow {
    /// The function's statistics over the window (ferret's formulas).
    pub row: FunctionRow,
    /// Calls per second over the window.
    pub rate: f64,
    /// Its share of the time of every function over the window.
    pub share: f64,
    /// The verdict against the window before: `None` when either window has too few of its
    /// spans for one (no interval), or it had none before.
    pub change: Option<Change>,
}

/// What one refresh of the live view shows.
#[derive(Clone, Debug)]
pub struct LiveSnapshot {
    /// The window's end (Unix seconds): just past the population's latest span end.
    pub at: f64,
    /// The window's width in seconds.
    pub window_seconds: f64,
    /// Spans that ended in the window.
    pub spans: u64,
    /// Those whose status is not "ok".
    pub errors: u64,
    /// Every function with a span in the window, by total time.
    pub functions: Vec<LiveRow>,
}

impl LiveSnapshot {
    /// The snapshot of `current` (the window's statistics) against `previous` (the window
    /// before), names by `name_of`.
    pub fn build(
        (at, window_seconds): (f64, f64),
        current: &ChunkStats,
        previous: &ChunkStats,
        name_of: &dyn Fn(u32) -> String,
    ) -> LiveSnapshot {
        let side = |stats| Side {
            run_id: String::new(),
            stats,
            name_of,
        };
        let compared = ComparisonReport::build(
            side(previous),
            side(current),
            CompareOptions::default(),
            "total",
            0,
        );
        let grand_total: f64 = compared
            .functions
            .iter()
            .filter_map(|f| f.target.as_ref())
            .map(|r| r.total_duration)
            .sum();
        let functions = compared
            .functions
            .into_iter()
            .filter_map(|f| {
                let row = f.target?;
                let change = f.shift.and_then(|s| s.interval).map(|_| f.change);
                Some(LiveRow {
                    rate: row.count as f64 / window_seconds,
                    share: if grand_total > 0.0 {
                        row.total_duration / grand_total
                    } else {
                        0.0
                    },
                    change,
                    row,
                })
            })
            .collect();
        LiveSnapshot {
            at,
            window_seconds,
            spans: current.spans(),
            errors: current.names.iter().map(|n| n.errors).sum(),
            functions,
        }
    }

    /// `{"at", "window_seconds", "spans", "errors", "functions": [{"name", "count", "rate",
    /// "p50", "p90", "p99", "error_rate", "total_duration", "change"}]}`, `change` one of
    /// `slower`, `faster`, `same`, or null.
    pub fn to_json(&self) -> serde_json::Value {
        let functions: Vec<serde_json::Value> = self
            .functions
            .iter()
            .map(|f| {
                let r = &f.row;
                json!({
                    "name": r.name, "count": r.count, "rate": f.rate, "p50": r.p50, "p90": r.p90,
                    "p99": r.p99, "error_rate": r.error_rate, "total_duration": r.total_duration,
                    "share": f.share, "change": f.change.map(Change::as_str),
                })
            })
            .collect();
        json!({
            "at": self.at, "window_seconds": self.window_seconds, "spans": self.spans,
            "errors": self.errors, "functions": functions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_rates_shares_and_the_verdict_against_the_window_before() {
        let (mut before, mut now) = (ChunkStats::new(3), ChunkStats::new(3));
        for i in 0..400 {
            let jitter = 1.0 + (i % 7) as f64 * 0.01;
            before.add_span(0, Some(0.010 * jitter), false);
            now.add_span(0, Some(0.015 * jitter), i % 100 == 0);
            before.add_span(1, Some(0.002 * jitter), false);
            now.add_span(1, Some(0.002 * jitter), false);
        }
        now.add_span(2, Some(0.5), false); // one span, new: no verdict
        let name_of = |id: u32| format!("f{id}");
        let snap = LiveSnapshot::build((100.0, 10.0), &now, &before, &name_of);
        let by_name = |n: &str| snap.functions.iter().find(|f| f.row.name == n).unwrap();
        assert_eq!(snap.spans, 801);
        assert_eq!(snap.errors, 4);
        assert_eq!(by_name("f0").change, Some(Change::Slower));
        assert_eq!(by_name("f1").change, Some(Change::Same));
        assert_eq!(by_name("f2").change, None);
        assert_eq!(by_name("f0").rate, 40.0);
        let shares: f64 = snap.functions.iter().map(|f| f.share).sum();
        assert!((shares - 1.0).abs() < 1e-12);
        let json = snap.to_json();
        assert_eq!(json["functions"][0]["name"], "f0");
        assert_eq!(json["functions"][0]["change"], "slower");
    }
}
