//! A run comparison (`ferret-scan TARGET --baseline BASE`): every function's rows on both sides,
//! their differences and ratios, and a verdict from the two duration distributions ([`verdict`](crate::verdict)),
//! sorted by the size of the change and rendered as a table, JSON or CSV.
//!
//! Both sides are the [`ChunkStats`] of an ordinary scan, so their numbers are the ones a scan of
//! each run prints; functions are matched by name.

use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::json;

use crate::functions::{number, FunctionRow, VALUE_FIELDS};
use crate::text_table::write_table;
use crate::verdict::{benjamini_hochberg, hodges_lehmann, mann_whitney, Shift};
use ferret_scan::stats::ChunkStats;

/// How changes are decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompareOptions {
    /// The smallest shift of the durations that counts as a change (0.05: 5%), however
    /// significant a smaller one is.
    pub min_effect: f64,
    /// The false-discovery rate: a function is called changed only when its Benjamini-Hochberg
    /// q-value is below this.
    pub fdr: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            min_effect: 0.05,
            fdr: 0.05,
        }
    }
}

/// What happened to a function between the base and the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// Its durations shifted up by at least the minimum effect, significantly.
    Slower,
    /// Its durations shifted down by at least the minimum effect, significantly.
    Faster,
    /// No significant shift of at least the minimum effect.
    Same,
    /// Only the target has it.
    New,
    /// Only the base has it.
    Gone,
}

impl Change {
    /// The JSON and CSV word.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Slower => "slower",
            Change::Faster => "faster",
            Change::Same => "same",
            Change::New => "new",
            Change::Gone => "gone",
        }
    }

    /// The table's sign and its terminal colour (an SGR code).
    fn sign(self) -> (&'static str, &'static str) {
        match self {
            Change::Slower => ("▲", "31"),
            Change::Faster => ("▼", "32"),
            Change::Same => ("=", "2"),
            Change::New => ("+", "33"),
            Change::Gone => ("-", "36"),
        }
    }
}

/// One function on both sides.
#[derive(Clone, Debug)]
pub struct FunctionChange {
    /// Function name.
    pub name: String,
    /// Its row in the base, if the base has it.
    pub base: Option<FunctionRow>,
    /// Its row in the target, if the target has it.
    pub target: Option<FunctionRow>,
    /// The verdict.
    pub change: Change,
    /// Mann-Whitney's two-sided p-value (`None` for a function on one side, or when every
    /// duration of both sides falls in one bucket).
    pub p_value: Option<f64>,
    /// The p-value adjusted for the number of functions compared (Benjamini-Hochberg).
    pub q_value: Option<f64>,
    /// How far the durations moved.
    pub shift: Option<Shift>,
}

impl FunctionChange {
    /// Target minus base of every value (in [`VALUE_FIELDS`] order), a missing side counting as
    /// zeros.
    pub fn deltas(&self) -> [f64; 11] {
        let values = |r: &Option<FunctionRow>| r.as_ref().map_or([0.0; 11], FunctionRow::values);
        let (b, t) = (values(&self.base), values(&self.target));
        std::array::from_fn(|i| t[i] - b[i])
    }

    /// The difference `--sort` orders by: its absolute size.
    fn sort_value(&self, key: &str) -> f64 {
        let value = |r: &Option<FunctionRow>| r.as_ref().map_or(0.0, |r| r.sort_value(key));
        (value(&self.target) - value(&self.base)).abs()
    }
}

/// One side of a comparison: a run's statistics and its names.
pub struct Side<'a> {
    /// The run.
    pub run_id: String,
    /// The run's statistics, from a scan.
    pub stats: &'a ChunkStats,
    /// The name of a name id of this side's file.
    pub name_of: &'a dyn Fn(u32) -> String,
}

/// How many functions got each verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Called slower.
    pub slower: usize,
    /// Called faster.
    pub faster: usize,
    /// Called the same.
    pub same: usize,
    /// Only in the target.
    pub new: usize,
    /// Only in the base.
    pub gone: usize,
}

/// Two runs compared, ready to print.
#[derive(Clone, Debug)]
pub struct ComparisonReport {
    /// The base's run.
    pub base_run_id: String,
    /// The target's run.
    pub target_run_id: String,
    /// Spans of the base that passed the filters.
    pub base_spans: u64,
    /// Spans of the target that passed the filters.
    pub target_spans: u64,
    /// How changes were decided.
    pub options: CompareOptions,
    /// Every function of either side, sorted.
    pub functions: Vec<FunctionChange>,
    /// Rows to print (0 = all).
    pub limit: usize,
}

impl ComparisonReport {
    /// Compares every function of either side, sorted by the absolute change of `sort` (a
    /// [`crate::report::SORT_KEYS`] key; `name` ascending), ties in the target's name order, then
    /// the base's. `limit` bounds the rows printed, not the functions compared.
    pub fn build(
        base: Side,
        target: Side,
        options: CompareOptions,
        sort: &str,
        limit: usize,
    ) -> ComparisonReport {
        let mut functions = matched(&base, &target);
        decide(&mut functions, options);
        if sort == "name" {
            functions.sort_by(|a, b| a.name.cmp(&b.name));
        } else {
            functions.sort_by(|a, b| b.sort_value(sort).total_cmp(&a.sort_value(sort)));
        }
        ComparisonReport {
            base_run_id: base.run_id,
            target_run_id: target.run_id,
            base_spans: base.stats.spans(),
            target_spans: target.stats.spans(),
            options,
            functions,
            limit,
        }
    }

    /// The functions printed: the first `limit`.
    pub fn shown(&self) -> &[FunctionChange] {
        match self.limit {
            0 => &self.functions,
            n => &self.functions[..n.min(self.functions.len())],
        }
    }

    /// How many functions got each verdict (all of them, not only those shown).
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for f in &self.functions {
            *match f.change {
                Change::Slower => &mut t.slower,
                Change::Faster => &mut t.faster,
                Change::Same => &mut t.same,
                Change::New => &mut t.new,
                Change::Gone => &mut t.gone,
            } += 1;
        }
        t
    }

    /// The functions called slower whose durations moved up by more than `fraction` (0.1: 10%):
    /// what `--fail-on-regression` gates on.
    pub fn regressions(&self, fraction: f64) -> Vec<&FunctionChange> {
        self.functions
            .iter()
            .filter(|f| f.change == Change::Slower)
            .filter(|f| f.shift.is_some_and(|s| s.estimate > fraction))
            .collect()
    }

    /// The verdict line: how many functions got each verdict, and the rule behind them.
    pub fn summary_line(&self) -> String {
        let t = self.tally();
        format!(
            "{} slower, {} faster, {} same, {} new, {} gone (changed: median shift of at least {}% at a false-discovery rate of {}%)",
            t.slower,
            t.faster,
            t.same,
            t.new,
            t.gone,
            self.options.min_effect * 100.0,
            self.options.fdr * 100.0
        )
    }

    /// A table with a sign per row (▲ slower, ▼ faster, = same, + new, - gone), the target's
    /// values beside their changes, and the verdict; signs and verdicts coloured when `color`.
    pub fn write_table(&self, out: &mut dyn Write, color: bool) -> io::Result<()> {
        let header = [
            "", "Function", "Count", "ΔCount", "Total", "ΔTotal", "×Total", "Avg", "ΔAvg", "Δp50",
            "Δp90", "Δp99", "Errors", "ΔErrors", "Self", "ΔSelf", "Change", "q",
        ];
        let rows: Vec<Vec<String>> = self.shown().iter().map(table_cells).collect();
        let shown = self.shown();
        // The sign and the verdict in the change's colour.
        let paint = |row: usize, column: usize, cell: String| match (color, column) {
            (true, 0 | 16) => format!("\x1b[{}m{cell}\x1b[0m", shown[row].change.sign().1),
            _ => cell,
        };
        writeln!(out, "{}", self.summary_line())?;
        write_table(out, &header, &[0, 1, 16], &rows, paint)
    }

    /// `{"base": {"run_id", "spans"}, "target": {...}, "min_effect", "fdr", "summary",
    /// "functions": [{"name", "change", "p_value", "q_value", "shift", "base", "target",
    /// "delta", "ratio"}]}`: `base` and `target` of a function are today's `functions` entries
    /// (or null), `delta` and `ratio` are target minus and over base per value (null for a
    /// function on one side; a ratio over zero is null).
    pub fn to_json(&self) -> serde_json::Value {
        let t = self.tally();
        let functions: Vec<serde_json::Value> = self.shown().iter().map(function_json).collect();
        json!({
            "base": {"run_id": self.base_run_id, "spans": self.base_spans},
            "target": {"run_id": self.target_run_id, "spans": self.target_spans},
            "min_effect": self.options.min_effect,
            "fdr": self.options.fdr,
            "summary": {
                "slower": t.slower, "faster": t.faster, "same": t.same, "new": t.new, "gone": t.gone,
            },
            "functions": functions,
        })
    }

    /// One row per function: name, change, p and q values, the shift and its interval, then
    /// every value of the base, of the target, and their difference (`base_count`, ...,
    /// `target_count`, ..., `delta_count`, ...); a missing side's cells are empty.
    pub fn write_csv(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        let mut header: Vec<String> = ["name", "change", "p_value", "q_value"]
            .into_iter()
            .chain(["shift", "shift_low", "shift_high"])
            .map(String::from)
            .collect();
        for side in ["base", "target", "delta"] {
            header.extend(VALUE_FIELDS.iter().map(|f| format!("{side}_{f}")));
        }
        w.write_record(&header)?;
        let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        let side = |r: &Option<FunctionRow>| -> Vec<String> {
            match r {
                Some(r) => r.values().iter().map(|v| v.to_string()).collect(),
                None => vec![String::new(); VALUE_FIELDS.len()],
            }
        };
        for f in self.shown() {
            let mut record = vec![
                f.name.clone(),
                f.change.as_str().to_string(),
                cell(f.p_value),
                cell(f.q_value),
                cell(f.shift.map(|s| s.estimate)),
                cell(f.shift.and_then(|s| s.interval).map(|i| i[0])),
                cell(f.shift.and_then(|s| s.interval).map(|i| i[1])),
            ];
            record.extend(side(&f.base));
            record.extend(side(&f.target));
            let both = f.base.is_some() && f.target.is_some();
            record.extend(f.deltas().iter().map(|&d| cell(both.then_some(d))));
            w.write_record(&record)?;
        }
        w.flush()
    }
}

/// Every function of either side with its rows and, where both sides have it, its p-value and
/// shift: the target's in name-id order, then those only the base has.
fn matched(base: &Side, target: &Side) -> Vec<FunctionChange> {
    let base_rows = FunctionRow::all(base.stats, base.name_of);
    let mut base_ids: HashMap<String, usize> = base_rows
        .iter()
        .enumerate()
        .map(|(i, (_, row))| (row.name.clone(), i))
        .collect();
    let mut base_rows: Vec<Option<(usize, FunctionRow)>> =
        base_rows.into_iter().map(Some).collect();
    let mut out = Vec::new();
    for (t_id, t_row) in FunctionRow::all(target.stats, target.name_of) {
        let found = base_ids
            .remove(&t_row.name)
            .and_then(|i| base_rows[i].take());
        let (p_value, shift) = match &found {
            Some((b_id, _)) => {
                let b = base.stats.sketches.histogram(*b_id);
                let t = target.stats.sketches.histogram(t_id);
                (mann_whitney(&b, &t), hodges_lehmann(&b, &t))
            }
            None => (None, None),
        };
        let change = if found.is_some() {
            Change::Same
        } else {
            Change::New
        };
        let f = FunctionChange {
            name: t_row.name.clone(),
            base: found.map(|(_, row)| row),
            target: Some(t_row),
            change,
            p_value,
            q_value: None,
            shift,
        };
        out.push(f);
    }
    for (_, b_row) in base_rows.into_iter().flatten() {
        let f = FunctionChange {
            name: b_row.name.clone(),
            base: Some(b_row),
            target: None,
            change: Change::Gone,
            p_value: None,
            q_value: None,
            shift: None,
        };
        out.push(f);
    }
    out
}

/// The verdicts: q-values over every function with a p-value, then slower or faster where the
/// q-value is below the false-discovery rate and the shift is at least the minimum effect.
fn decide(functions: &mut [FunctionChange], options: CompareOptions) {
    let tested: Vec<usize> = (0..functions.len())
        .filter(|&i| functions[i].p_value.is_some())
        .collect();
    let p: Vec<f64> = tested
        .iter()
        .filter_map(|&i| functions[i].p_value)
        .collect();
    for (&i, q) in tested.iter().zip(benjamini_hochberg(&p)) {
        let f = &mut functions[i];
        f.q_value = Some(q);
        let shift = f.shift.map_or(0.0, |s| s.estimate);
        if q < options.fdr && shift >= options.min_effect {
            f.change = Change::Slower;
        } else if q < options.fdr && shift <= -options.min_effect {
            f.change = Change::Faster;
        }
    }
}

/// A function's JSON entry.
fn function_json(f: &FunctionChange) -> serde_json::Value {
    let both = f.base.as_ref().zip(f.target.as_ref());
    let per_field = |value: &dyn Fn(&str, f64, f64) -> serde_json::Value| {
        both.map(|(b, t)| {
            let fields = VALUE_FIELDS
                .iter()
                .zip(b.values().into_iter().zip(t.values()));
            let entries = fields.map(|(name, (b, t))| (name.to_string(), value(name, b, t)));
            serde_json::Value::Object(entries.collect())
        })
    };
    let delta = per_field(&|name, b, t| number(name, t - b));
    let ratio = per_field(&|_, b, t| if b == 0.0 { json!(null) } else { json!(t / b) });
    json!({
        "name": f.name,
        "change": f.change.as_str(),
        "p_value": f.p_value,
        "q_value": f.q_value,
        "shift": f.shift.map(|s| {
            let [low, high] = s.interval.map_or([None, None], |i| i.map(Some));
            json!({"estimate": s.estimate, "low": low, "high": high})
        }),
        "base": f.base.as_ref().map(FunctionRow::to_json),
        "target": f.target.as_ref().map(FunctionRow::to_json),
        "delta": delta,
        "ratio": ratio,
    })
}

/// A row of the table.
fn table_cells(f: &FunctionChange) -> Vec<String> {
    let shown = f
        .target
        .as_ref()
        .or(f.base.as_ref())
        .expect("a side has it");
    let both = f.base.as_ref().zip(f.target.as_ref());
    let d = f.deltas();
    let secs = |s: f64| format!("{s:.3}s");
    let signed_secs = |s: f64| format!("{}s", signed(s, 3));
    let ms = |s: f64| format!("{:.2}ms", s * 1000.0);
    // A relative change of a value both sides have.
    let percent = |pick: fn(&FunctionRow) -> f64| match both {
        Some((b, t)) if pick(b) != 0.0 => {
            format!("{}%", signed((pick(t) / pick(b) - 1.0) * 100.0, 1))
        }
        _ => String::new(),
    };
    let ratio = match both {
        Some((b, t)) if b.total_duration != 0.0 => {
            format!("{:.2}×", t.total_duration / b.total_duration)
        }
        _ => String::new(),
    };
    let percent_of = |x: f64| format!("{}%", signed(x * 100.0, 1));
    let verdict = match (f.change, f.shift) {
        (change, Some(s)) => {
            let interval = s.interval.map_or(String::new(), |[low, high]| {
                format!(" [{}, {}]", percent_of(low), percent_of(high))
            });
            format!("{} {}{interval}", change.as_str(), percent_of(s.estimate))
        }
        (change, None) => change.as_str().to_string(),
    };

    vec![
        f.change.sign().0.to_string(),
        f.name.clone(),
        shown.count.to_string(),
        format!("{:+}", d[0] as i64),
        secs(shown.total_duration),
        signed_secs(d[1]),
        ratio,
        ms(shown.avg_duration),
        percent(|r| r.avg_duration),
        percent(|r| r.p50),
        percent(|r| r.p90),
        percent(|r| r.p99),
        shown.error_count.to_string(),
        format!("{:+}", d[5] as i64),
        secs(shown.self_time),
        signed_secs(d[10]),
        verdict,
        f.q_value.map_or(String::new(), |q| match q {
            q if q < 0.001 => format!("{q:.1e}"),
            q => format!("{q:.3}"),
        }),
    ]
}

/// `x` with its sign and `decimals` decimals; a value that rounds to zero is `+0.000`, never
/// `-0.000` (a change too small to show has no direction).
pub(crate) fn signed(x: f64, decimals: usize) -> String {
    let text = format!("{x:+.decimals$}");
    match text.strip_prefix('-') {
        Some(digits) if digits.bytes().all(|b| b == b'0' || b == b'.') => format!("+{digits}"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration;

    #[test]
    fn a_change_that_rounds_to_zero_has_no_sign_of_its_own() {
        assert_eq!(signed(-0.0004, 3), "+0.000");
        assert_eq!(signed(-0.0, 1), "+0.0");
        assert_eq!(signed(-0.0006, 3), "-0.001");
        assert_eq!(signed(0.25, 1), "+0.2");
        assert_eq!(signed(-12.5, 1), "-12.5");
    }

    fn compare(base: &ChunkStats, target: &ChunkStats, sort: &str) -> ComparisonReport {
        let name_of = |id: u32| format!("f{id}");
        let side = |run_id: &str, stats| Side {
            run_id: run_id.to_string(),
            stats,
            name_of: &name_of,
        };
        let (b, t) = (side("base", base), side("target", target));
        ComparisonReport::build(b, t, CompareOptions::default(), sort, 0)
    }

    #[test]
    fn a_function_made_20_to_30_percent_slower_is_ranked_first_and_called_slower() {
        // `make bench-verdicts` runs 100 pairs; a dozen here, with binomial slack.
        let got = calibration::slowed_pairs(12, 60, 0x5eed);
        assert_eq!(got.found, 12, "{got:?}");
        // A 95% interval holds the truth 11.4 times in 12: fewer than 10 has a 2% chance.
        assert!(got.covered >= 10, "{got:?}");
        // The documented rate: at most 5% of the functions called changed are false alarms;
        // with a 5% minimum effect, an unchanged function is all but never called changed.
        assert!(got.false_alarms * 100 <= got.unchanged, "{got:?}");
    }

    #[test]
    fn equal_runs_raise_an_alarm_in_at_most_the_false_discovery_rate_of_comparisons() {
        // With nothing changed, every call is a false alarm, and Benjamini-Hochberg keeps the
        // chance of any at 5%; the minimum effect lowers it further. Here the effect is set to
        // zero, so that the rate is the test's own.
        let options = CompareOptions {
            min_effect: 0.0,
            fdr: 0.05,
        };
        let with_alarm = calibration::equal_pairs_with_alarm(40, 30, options, 0xa1a2);
        // 5% of 40 is 2; 6 or more has a binomial chance below 2%.
        assert!(
            with_alarm <= 5,
            "{with_alarm} of 40 equal comparisons raised an alarm"
        );
    }

    #[test]
    fn functions_on_one_side_are_new_or_gone_and_deltas_are_differences() {
        let mut base = ChunkStats::new(3);
        let mut target = ChunkStats::new(3);
        for i in 0..100 {
            base.add_span(0, Some(0.010 + i as f64 * 1e-5), i % 10 == 0);
            target.add_span(0, Some(0.020 + i as f64 * 1e-5), false);
            base.add_span(1, Some(0.001), false);
            target.add_span(2, Some(0.002), false);
        }
        let report = compare(&base, &target, "name");
        let names: Vec<(&str, Change)> = report
            .functions
            .iter()
            .map(|f| (f.name.as_str(), f.change))
            .collect();
        assert_eq!(
            names,
            [
                ("f0", Change::Slower),
                ("f1", Change::Gone),
                ("f2", Change::New)
            ]
        );
        let f0 = &report.functions[0];
        let (b, t) = (f0.base.as_ref().unwrap(), f0.target.as_ref().unwrap());
        let d = f0.deltas();
        assert_eq!((d[0], d[5]), (0.0, -10.0));
        assert!((d[1] - (t.total_duration - b.total_duration)).abs() < 1e-12);
        assert_eq!(report.regressions(0.5).len(), 1);
        assert!(report.regressions(1.5).is_empty());
        assert_eq!(
            report.tally(),
            Tally {
                slower: 1,
                faster: 0,
                same: 0,
                new: 1,
                gone: 1
            }
        );
        // The default sort: the largest change of total time first (f0 gained 1 s).
        let by_total = compare(&base, &target, "total");
        assert_eq!(by_total.functions[0].name, "f0");
        // Any key sorts by the size of its change: f0's count did not change, f1 lost 100
        // spans and f2 gained 100 (new and gone count whole).
        let by_count = compare(&base, &target, "count");
        let order: Vec<&str> = by_count.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(order, ["f2", "f1", "f0"]);
        let doc = by_total.to_json();
        let gone = doc["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "f1")
            .unwrap();
        assert_eq!(
            (
                gone["change"].as_str(),
                gone["target"].is_null(),
                gone["p_value"].is_null()
            ),
            (Some("gone"), true, true)
        );
        assert_eq!(doc["functions"][0]["delta"]["error_count"], -10);
    }
}
