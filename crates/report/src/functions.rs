//! Turning merged statistics into ferret's rows, sorted and limited, and rendering them as
//! ferret's table, JSON (`AggregatedStats` field names) or CSV.

use std::io::{self, Write};

use serde_json::json;

use crate::text_table::write_table;
use ferret_scan::stats::{ChunkStats, NameStats};

/// One row of ferret's table, plus percentiles and self time. Durations in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionRow {
    /// Function name.
    pub name: String,
    /// Spans.
    pub count: u64,
    /// Sum of non-null durations.
    pub total_duration: f64,
    /// Mean of non-null durations.
    pub avg_duration: f64,
    /// Smallest duration.
    pub min_duration: f64,
    /// Largest duration.
    pub max_duration: f64,
    /// Spans whose status is not "ok".
    pub error_count: u64,
    /// error_count / count.
    pub error_rate: f64,
    /// Median duration (within 0.91%).
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Total minus the time of child spans, floored at zero.
    pub self_time: f64,
}

/// Sort keys of `--sort`.
pub const SORT_KEYS: &[&str] = &[
    "total",
    "count",
    "avg",
    "min",
    "max",
    "errors",
    "error_rate",
    "p50",
    "p90",
    "p99",
    "self",
    "name",
];

/// The JSON and CSV names of a row's values, in the order of [`FunctionRow::values`]
/// (ferret's `AggregatedStats` names, then ours).
pub const VALUE_FIELDS: [&str; 11] = [
    "count",
    "total_duration",
    "avg_duration",
    "min_duration",
    "max_duration",
    "error_count",
    "error_rate",
    "p50",
    "p90",
    "p99",
    "self_time",
];

impl FunctionRow {
    /// The row's values in [`VALUE_FIELDS`] order (counts as exact floats).
    pub fn values(&self) -> [f64; 11] {
        [
            self.count as f64,
            self.total_duration,
            self.avg_duration,
            self.min_duration,
            self.max_duration,
            self.error_count as f64,
            self.error_rate,
            self.p50,
            self.p90,
            self.p99,
            self.self_time,
        ]
    }

    /// `{"name", "count", ...}`: a `functions` entry of the JSON output.
    pub fn to_json(&self) -> serde_json::Value {
        let mut entry = serde_json::Map::new();
        entry.insert("name".into(), json!(self.name));
        for (field, value) in VALUE_FIELDS.iter().zip(self.values()) {
            entry.insert(field.to_string(), number(field, value));
        }
        serde_json::Value::Object(entry)
    }

    /// The row of name id `id` of `stats`, named `name`, or `None` when it has no non-null
    /// duration (ferret leaves it out).
    pub fn from_stats(name: &str, stats: &ChunkStats, id: usize) -> Option<FunctionRow> {
        let s = &stats.names[id];
        if stats.timed(id) == 0 {
            return None;
        }
        let total = stats.total(id);
        let [p50, p90, p99] = stats
            .sketches
            .quantiles(id, [0.5, 0.9, 0.99], s.min)
            .map(|q| within(q.unwrap_or(0.0), s));
        Some(FunctionRow {
            name: name.to_string(),
            count: s.count,
            total_duration: total,
            avg_duration: total / stats.timed(id) as f64,
            min_duration: s.min,
            max_duration: s.max,
            error_count: s.errors,
            error_rate: s.errors as f64 / s.count as f64,
            p50,
            p90,
            p99,
            self_time: (total - stats.child_time[id].value()).max(0.0),
        })
    }

    /// The rows of every name with a duration, with their name ids, in name-id order.
    pub fn all(stats: &ChunkStats, name_of: impl Fn(u32) -> String) -> Vec<(usize, FunctionRow)> {
        (0..stats.names.len())
            .filter_map(|id| {
                FunctionRow::from_stats(&name_of(id as u32), stats, id).map(|row| (id, row))
            })
            .collect()
    }

    /// The value `--sort` orders by (any key of [`SORT_KEYS`] but `name`).
    pub fn sort_value(&self, key: &str) -> f64 {
        match key {
            "count" => self.count as f64,
            "avg" => self.avg_duration,
            "min" => self.min_duration,
            "max" => self.max_duration,
            "errors" => self.error_count as f64,
            "error_rate" => self.error_rate,
            "p50" => self.p50,
            "p90" => self.p90,
            "p99" => self.p99,
            "self" => self.self_time,
            _ => self.total_duration,
        }
    }
}

/// The statistics of one run, ready to print.
#[derive(Clone, Debug)]
pub struct StatsReport {
    /// The run.
    pub run_id: String,
    /// Spans that passed the filters.
    pub spans: u64,
    /// Rows, sorted and limited.
    pub functions: Vec<FunctionRow>,
}

impl StatsReport {
    /// Rows for every name with a duration, sorted by `sort` (descending; `name` ascending) as
    /// ferret sorts (stable, ties in name-id order, i.e. first appearance), at most `limit`
    /// (0 = all).
    pub fn build(
        run_id: String,
        stats: &ChunkStats,
        name_of: impl Fn(u32) -> String,
        sort: &str,
        limit: usize,
    ) -> StatsReport {
        let mut functions: Vec<FunctionRow> = FunctionRow::all(stats, name_of)
            .into_iter()
            .map(|(_, row)| row)
            .collect();
        if sort == "name" {
            functions.sort_by(|a, b| a.name.cmp(&b.name));
        } else {
            functions.sort_by(|a, b| b.sort_value(sort).total_cmp(&a.sort_value(sort)));
        }
        if limit > 0 {
            functions.truncate(limit);
        }
        StatsReport {
            run_id,
            spans: stats.spans(),
            functions,
        }
    }

    /// ferret's table with p50/p90/p99 and self-time columns, names as plain text.
    pub fn write_table(&self, out: &mut dyn Write) -> io::Result<()> {
        write_table(
            out,
            &TABLE_HEADER,
            &[0],
            &self.table_rows(),
            |_, _, cell| cell,
        )
    }

    /// The table's cells, a row per function.
    fn table_rows(&self) -> Vec<Vec<String>> {
        let ms = |s: f64| format!("{:.2}ms", s * 1000.0);
        self.functions
            .iter()
            .map(|f| {
                vec![
                    f.name.clone(),
                    f.count.to_string(),
                    format!("{:.3}s", f.total_duration),
                    ms(f.avg_duration),
                    ms(f.min_duration),
                    ms(f.max_duration),
                    format!("{:.1}%", f.error_rate * 100.0),
                    ms(f.p50),
                    ms(f.p90),
                    ms(f.p99),
                    format!("{:.3}s", f.self_time),
                ]
            })
            .collect()
    }

    /// `{"run_id", "spans", "functions": [...]}` with ferret's `AggregatedStats` field names.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"run_id": self.run_id, "spans": self.spans, "functions": self.functions_json()})
    }

    fn functions_json(&self) -> Vec<serde_json::Value> {
        self.functions.iter().map(FunctionRow::to_json).collect()
    }

    /// The JSON fields as CSV columns, one row per function.
    pub fn write_csv(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(std::iter::once("name").chain(VALUE_FIELDS))?;
        self.csv_rows(&mut w, None)?;
        w.flush()
    }

    /// The CSV rows, each after `key` when given.
    fn csv_rows<W: Write>(&self, w: &mut csv::Writer<W>, key: Option<&str>) -> io::Result<()> {
        for f in &self.functions {
            let values = f.values().map(|v| v.to_string());
            let row = key.map(str::to_string).into_iter();
            w.write_record(row.chain(std::iter::once(f.name.clone())).chain(values))?;
        }
        Ok(())
    }
}

/// The column titles of ferret's table.
const TABLE_HEADER: [&str; 11] = [
    "Function Name",
    "Count",
    "Total Time",
    "Avg Time",
    "Min",
    "Max",
    "Error %",
    "p50",
    "p90",
    "p99",
    "Self",
];

/// A population's statistics broken down by file or by run (`--by`): a report per group, each
/// exactly what a scan of that group alone gives.
#[derive(Clone, Debug)]
pub struct GroupedReport {
    /// What the groups are: `file` or `run`.
    pub by: &'static str,
    /// Each group's key (a file as given, or a run id) and report.
    pub groups: Vec<(String, StatsReport)>,
}

impl GroupedReport {
    /// ferret's table with a leading column naming each row's group.
    pub fn write_table(&self, out: &mut dyn Write) -> io::Result<()> {
        let title = match self.by {
            "file" => "File",
            _ => "Run",
        };
        let header: Vec<&str> = std::iter::once(title).chain(TABLE_HEADER).collect();
        let rows: Vec<Vec<String>> = self
            .groups
            .iter()
            .flat_map(|(key, report)| {
                report
                    .table_rows()
                    .into_iter()
                    .map(move |row| std::iter::once(key.clone()).chain(row).collect::<Vec<_>>())
            })
            .collect();
        write_table(out, &header, &[0, 1], &rows, |_, _, cell| cell)
    }

    /// `{"by", "groups": [{"key", "spans", "functions"}]}`, each group's `functions` entries
    /// those of a scan's JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let groups: Vec<serde_json::Value> = self
            .groups
            .iter()
            .map(|(key, r)| json!({"key": key, "spans": r.spans, "functions": r.functions_json()}))
            .collect();
        json!({"by": self.by, "groups": groups})
    }

    /// The scan's CSV with a leading column (`file` or `run`) naming each row's group.
    pub fn write_csv(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        let header = [self.by, "name"].into_iter().chain(VALUE_FIELDS);
        w.write_record(header)?;
        for (key, report) in &self.groups {
            report.csv_rows(&mut w, Some(key))?;
        }
        w.flush()
    }
}

/// `x` brought inside the name's smallest and largest duration: a sketch's estimate may lie a
/// bucket beyond them. Unlike `f64::clamp` it never panics, even when a crafted file's
/// durations left no order between them.
pub fn within(x: f64, s: &NameStats) -> f64 {
    x.max(s.min).min(s.max)
}

/// A value as JSON: the counts (`count`, `error_count` and their differences) as integers.
pub fn number(field: &str, value: f64) -> serde_json::Value {
    if field.ends_with("count") {
        json!(value as i64)
    } else {
        json!(value)
    }
}
