//! The timeline report: the buckets a timeline pass folded (the scan crate's `buckets.rs`), as
//! a table with sparklines, JSON or CSV.

use std::io::{self, Write};

use ferret_scan::buckets::Buckets;
use ferret_scan::stats::ChunkStats;
use serde_json::json;

use crate::functions::within;
use crate::text_table::write_table;

/// One bucket of a timeline. Durations in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketRow {
    /// Start (Unix seconds).
    pub start: f64,
    /// Spans starting in it.
    pub spans: u64,
    /// Of those, spans whose status is not "ok".
    pub errors: u64,
    /// Sum of their non-null durations.
    pub total_duration: f64,
    /// Median duration (within the sketch's bound), `None` without a duration.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

impl BucketRow {
    /// errors / spans (0 for an empty bucket).
    pub fn error_rate(&self) -> f64 {
        if self.spans == 0 {
            0.0
        } else {
            self.errors as f64 / self.spans as f64
        }
    }
}

/// A run's timeline, ready to print.
#[derive(Clone, Debug)]
pub struct TimelineReport {
    /// The run.
    pub run_id: String,
    /// Bucket width in seconds.
    pub bucket_seconds: f64,
    /// Every bucket over the range, empty ones too.
    pub buckets: Vec<BucketRow>,
}

impl TimelineReport {
    /// The rows of `stats` from [`scan_timeline`] over `buckets`.
    pub fn build(run_id: String, stats: &ChunkStats, buckets: &Buckets) -> TimelineReport {
        let rows = stats.names.iter().enumerate().map(|(i, s)| {
            let timed = stats.timed(i) > 0;
            let [p50, p90, p99] = stats
                .sketches
                .quantiles(i, [0.5, 0.9, 0.99], s.min)
                .map(|q| q.filter(|_| timed).map(|v| within(v, s)));
            BucketRow {
                start: buckets.start(i),
                spans: s.count,
                errors: s.errors,
                total_duration: stats.total(i),
                p50,
                p90,
                p99,
            }
        });
        TimelineReport {
            run_id,
            bucket_seconds: buckets.width,
            buckets: rows.collect(),
        }
    }

    /// A table, a bucket a row, times in `local` form; with `sparklines`, two lines first that
    /// draw p99 and errors over the whole range.
    pub fn write_table(
        &self,
        out: &mut dyn Write,
        local: impl Fn(f64) -> String,
        sparklines: bool,
    ) -> io::Result<()> {
        if sparklines {
            let p99: Vec<f64> = self.buckets.iter().map(|b| b.p99.unwrap_or(0.0)).collect();
            let errors: Vec<f64> = self.buckets.iter().map(|b| b.errors as f64).collect();
            writeln!(out, "p99     {}", sparkline(&p99, 100))?;
            writeln!(out, "errors  {}", sparkline(&errors, 100))?;
        }
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{:.2}ms", s * 1000.0));
        let rows: Vec<Vec<String>> = self
            .buckets
            .iter()
            .map(|b| {
                vec![
                    local(b.start),
                    b.spans.to_string(),
                    b.errors.to_string(),
                    format!("{:.1}%", b.error_rate() * 100.0),
                    format!("{:.3}s", b.total_duration),
                    ms(b.p50),
                    ms(b.p90),
                    ms(b.p99),
                ]
            })
            .collect();
        let header = [
            "Start", "Spans", "Errors", "Error %", "Total", "p50", "p90", "p99",
        ];
        write_table(out, &header, &[0], &rows, |_, _, cell| cell)
    }

    /// `{"run_id", "bucket_seconds", "buckets": [{"start", "spans", "errors", "error_rate",
    /// "total_duration", "p50", "p90", "p99"}]}`, percentiles null in a bucket without a
    /// duration.
    pub fn to_json(&self) -> serde_json::Value {
        let buckets: Vec<serde_json::Value> = self
            .buckets
            .iter()
            .map(|b| {
                json!({
                    "start": b.start, "spans": b.spans, "errors": b.errors,
                    "error_rate": b.error_rate(), "total_duration": b.total_duration,
                    "p50": b.p50, "p90": b.p90, "p99": b.p99,
                })
            })
            .collect();
        json!({"run_id": self.run_id, "bucket_seconds": self.bucket_seconds, "buckets": buckets})
    }

    /// The JSON's bucket fields as CSV columns, one row per bucket (empty percentiles where
    /// JSON has null).
    pub fn write_csv(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record([
            "start",
            "spans",
            "errors",
            "error_rate",
            "total_duration",
            "p50",
            "p90",
            "p99",
        ])?;
        let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        for b in &self.buckets {
            w.write_record([
                b.start.to_string(),
                b.spans.to_string(),
                b.errors.to_string(),
                b.error_rate().to_string(),
                b.total_duration.to_string(),
                cell(b.p50),
                cell(b.p90),
                cell(b.p99),
            ])?;
        }
        w.flush()
    }
}

/// `values` as a line of at most `width` block characters (▁ to █, scaled to the largest; a
/// group of values shares a character, showing its largest).
pub fn sparkline(values: &[f64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let group = values.len().div_ceil(width.max(1)).max(1);
    let peaks: Vec<f64> = values
        .chunks(group)
        .map(|g| g.iter().copied().fold(0.0, f64::max))
        .collect();
    let top = peaks.iter().copied().fold(0.0, f64::max);
    peaks
        .iter()
        .map(|&v| match top > 0.0 && v > 0.0 {
            true => BARS[((v / top * 8.0).ceil() as usize).clamp(1, 8) - 1],
            false => ' ',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_peak_and_fold_groups() {
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 4.0, 8.0], 10), " ▁▂▄█");
        assert_eq!(sparkline(&[1.0, 8.0, 0.0, 0.0], 2), "█ ");
    }
}
