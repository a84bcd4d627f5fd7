//! `--html`: one self-contained page of a run: its header, the function table (sortable), the
//! timeline as a chart (p50/p99 and error rate over time, a range brushed to sum it up), the
//! flame graph (inferno's SVG with its search and zoom), the slowest trees (collapsible) and,
//! with a baseline, the comparison and its differential flame graph. Data, styles and script are inline: the page opens from
//! disk and fetches nothing. Every part is rendered from the reports the text outputs print.

use std::io::{self, Write};

use html_escape::{encode_double_quoted_attribute as attribute, encode_text as text};

use crate::comparison::{signed, ComparisonReport};
use crate::functions::StatsReport;
use crate::timeline::{BucketRow, TimelineReport};

/// What a page shows.
pub struct Page<'a> {
    /// The page's title (the file's name).
    pub title: String,
    /// Facts about the file and the run, in order: `("Run", "abc")`, ...
    pub facts: Vec<(String, String)>,
    /// The run's functions, every one of them.
    pub functions: &'a StatsReport,
    /// The run's timeline.
    pub timeline: &'a TimelineReport,
    /// Local time of a Unix time, for the brushed range.
    pub local_time: &'a dyn Fn(f64) -> String,
    /// A short form of it for the chart's axis (the time of day).
    pub axis_time: &'a dyn Fn(f64) -> String,
    /// The flame graph (inferno's SVG document).
    pub flamegraph_svg: String,
    /// The slowest trees as HTML (`tree_report::write_trees_html`).
    pub trees_html: String,
    /// The comparison with a baseline, when one was given, and its differential flame graph
    /// (an SVG document).
    pub comparison: Option<(&'a ComparisonReport, String)>,
}

const STYLE: &str = r##"
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 28px 0 8px; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 0; }
dl.facts dt { color: #666; } dl.facts dd { margin: 0; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { cursor: pointer; background: #f6f6f6; position: sticky; top: 0; user-select: none; }
th[data-order="desc"]::after { content: " ▼"; } th[data-order="asc"]::after { content: " ▲"; }
td.name, th.name { text-align: left; font-family: ui-monospace, monospace; }
.scroll { max-height: 480px; overflow: auto; border: 1px solid #ddd; display: inline-block; max-width: 100%; }
#timeline-chart { border: 1px solid #ddd; background: #fff; }
#timeline-readout { font-family: ui-monospace, monospace; margin-top: 4px; min-height: 1.4em; }
iframe { border: 1px solid #ddd; width: 100%; }
.tree { font-family: ui-monospace, monospace; font-size: 13px; margin: 0 0 12px; }
.tree details > :not(summary), .tree details > div { margin-left: 20px; }
.tree .leaf { margin-left: 20px; } .tree > .leaf { margin-left: 0; }
.error { color: #c00; } .elided { color: #888; }
tr.slower td.change { color: #c00; font-weight: 600; } tr.faster td.change { color: #080; font-weight: 600; }
tr.new td.change { color: #a60; } tr.gone td.change { color: #07a; }
"##;

const SCRIPT: &str = r##"
(function () {
  // Sortable tables: a header's click sorts by its column (numbers by data-v), again reverses.
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, column) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var desc = th.dataset.order !== "desc";
        table.querySelectorAll("th").forEach(function (h) { delete h.dataset.order; });
        th.dataset.order = desc ? "desc" : "asc";
        rows.sort(function (a, b) {
          var x = a.cells[column], y = b.cells[column];
          var c = x.dataset.v !== undefined && y.dataset.v !== undefined
            ? parseFloat(x.dataset.v) - parseFloat(y.dataset.v)
            : x.textContent.localeCompare(y.textContent);
          return desc ? -c : c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  // The timeline: drag across the chart to sum up a range of buckets.
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var chart = document.getElementById("timeline-chart");
  var brush = document.getElementById("timeline-brush");
  var readout = document.getElementById("timeline-readout");
  var plot = { left: +chart.dataset.left, width: +chart.dataset.plotWidth };
  var n = data.buckets.length, from = null;
  function bucketAt(event) {
    var box = chart.getBoundingClientRect();
    var x = (event.clientX - box.left) * (chart.viewBox.baseVal.width / box.width) - plot.left;
    return Math.max(0, Math.min(n - 1, Math.floor(x / plot.width * n)));
  }
  function show(a, b) {
    var lo = Math.min(a, b), hi = Math.max(a, b);
    brush.setAttribute("x", plot.left + lo / n * plot.width);
    brush.setAttribute("width", (hi - lo + 1) / n * plot.width);
    var spans = 0, errors = 0, total = 0, p99 = 0;
    for (var i = lo; i <= hi; i++) {
      var k = data.buckets[i];
      spans += k.spans; errors += k.errors; total += k.total_duration;
      if (k.p99 !== null) p99 = Math.max(p99, k.p99);
    }
    var since = data.buckets[lo].start, until = data.buckets[hi].start + data.bucket_seconds;
    readout.textContent = data.labels[lo] + " .. " + data.labels[hi] + ": " + spans + " spans, " +
      errors + " errors, " + total.toFixed(3) + " s, p99 up to " + (p99 * 1000).toFixed(2) +
      " ms  (ferret-scan --since " + since + " --until " + until + ")";
  }
  chart.addEventListener("mousedown", function (e) { from = bucketAt(e); show(from, from); });
  chart.addEventListener("mousemove", function (e) { if (from !== null) show(from, bucketAt(e)); });
  window.addEventListener("mouseup", function () { from = null; });

  // Each flame graph lives in a frame of its own (its script expects a document to itself);
  // the frame's holder records how many frames it drew and whether its script (search, zoom)
  // started.
  document.querySelectorAll("iframe.flame").forEach(function (frame) {
    function counted() {
      var doc = frame.contentDocument, holder = frame.parentElement;
      holder.dataset.frames = doc ? doc.querySelectorAll("#frames > g").length : 0;
      holder.dataset.interactive = frame.contentWindow.searching === 0;
    }
    if (frame.contentDocument && frame.contentDocument.readyState === "complete") counted();
    else frame.addEventListener("load", counted);
  });
})();
"##;

/// Writes the page.
pub fn write_page(page: &Page, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>ferret · {}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        text(&page.title)
    )?;
    writeln!(
        out,
        "<h1>ferret · {}</h1>\n<dl class=\"facts\">",
        text(&page.title)
    )?;
    for (key, value) in &page.facts {
        writeln!(out, "<dt>{}</dt><dd>{}</dd>", text(key), text(value))?;
    }
    writeln!(out, "</dl>")?;
    if let Some((comparison, differential_svg)) = &page.comparison {
        write_comparison(comparison, differential_svg, out)?;
    }
    write_functions(page.functions, out)?;
    write_timeline(page, out)?;
    write_flamegraph(&page.flamegraph_svg, out)?;
    writeln!(
        out,
        "<section id=\"trees\">\n<h2>Slowest call trees</h2>\n{}</section>",
        page.trees_html
    )?;
    writeln!(out, "<script>{SCRIPT}</script>\n</body>\n</html>")
}

/// A table cell holding a number: shown as `shown`, sorted by `value`.
fn number_cell(value: f64, shown: &str) -> String {
    format!("<td data-v=\"{value}\">{}</td>", text(shown))
}

fn ms(seconds: f64) -> String {
    format!("{:.2}ms", seconds * 1000.0)
}

/// The function table: every function of the run, sortable by any column.
fn write_functions(report: &StatsReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "<section id=\"functions\">\n<h2>Functions ({} spans)</h2>\n<div class=\"scroll\"><table class=\"sortable\">",
        report.spans
    )?;
    writeln!(out, "<thead><tr><th class=\"name\">Function</th><th>Count</th><th>Total</th><th>Avg</th><th>Min</th><th>Max</th><th>Error %</th><th>p50</th><th>p90</th><th>p99</th><th>Self</th></tr></thead><tbody>")?;
    for f in &report.functions {
        let secs = |s: f64| format!("{s:.3}s");
        let cells = [
            number_cell(f.count as f64, &f.count.to_string()),
            number_cell(f.total_duration, &secs(f.total_duration)),
            number_cell(f.avg_duration, &ms(f.avg_duration)),
            number_cell(f.min_duration, &ms(f.min_duration)),
            number_cell(f.max_duration, &ms(f.max_duration)),
            number_cell(f.error_rate, &format!("{:.1}%", f.error_rate * 100.0)),
            number_cell(f.p50, &ms(f.p50)),
            number_cell(f.p90, &ms(f.p90)),
            number_cell(f.p99, &ms(f.p99)),
            number_cell(f.self_time, &secs(f.self_time)),
        ];
        writeln!(
            out,
            "<tr class=\"function\"><td class=\"name\">{}</td>{}</tr>",
            text(&f.name),
            cells.concat()
        )?;
    }
    writeln!(out, "</tbody></table></div>\n</section>")
}

/// Chart geometry: the plot's left edge, width and height inside the SVG.
const CHART: (f64, f64, f64) = (64.0, 860.0, 220.0);

/// A latency axis in decades: from the decade at or below the smallest value to the one at or
/// above the largest (at least one decade), so p50 and a p99 a hundred times larger both show.
struct LogAxis {
    low: f64,
    decades: f64,
}

impl LogAxis {
    fn over(values: impl Iterator<Item = f64>) -> LogAxis {
        let (lo, hi) = values
            .filter(|v| *v > 0.0 && v.is_finite())
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if hi == 0.0 {
            return LogAxis {
                low: -3.0,
                decades: 1.0,
            };
        }
        let low = lo.log10().floor();
        LogAxis {
            low,
            decades: (hi.log10().ceil() - low).max(1.0),
        }
    }

    /// Where `v` lies from the bottom (0) to the top (1); values at or below zero at the bottom.
    fn share(&self, v: f64) -> f64 {
        if v <= 0.0 {
            return 0.0;
        }
        ((v.log10() - self.low) / self.decades).clamp(0.0, 1.0)
    }

    /// The decades' values, bottom to top.
    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        (0..=self.decades as i32).map(|d| 10f64.powf(self.low + f64::from(d)))
    }
}

/// The timeline as an SVG chart: p50 and p99 as lines against a log axis of latency (left),
/// the error rate as bars against an axis up to its largest rate (right), five time labels;
/// and its data for the brush.
fn write_timeline(page: &Page, out: &mut dyn Write) -> io::Result<()> {
    let report = page.timeline;
    let (left, width, height) = CHART;
    let (top, n) = (16.0, report.buckets.len().max(1) as f64);
    let latency = LogAxis::over(report.buckets.iter().flat_map(|b| [b.p50, b.p99]).flatten());
    let worst_rate = report
        .buckets
        .iter()
        .map(BucketRow::error_rate)
        .fold(0.0, f64::max);
    let x = |i: usize| left + (i as f64 + 0.5) / n * width;
    let y = |v: f64| top + height - latency.share(v) * height;
    writeln!(
        out,
        "<section id=\"timeline\">\n<h2>Timeline ({} buckets of {} s)</h2>",
        report.buckets.len(),
        report.bucket_seconds
    )?;
    writeln!(
        out,
        "<svg id=\"timeline-chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" data-left=\"{left}\" data-plot-width=\"{width}\">",
        left + width + 56.0,
        height + top + 36.0,
        left + width + 56.0,
        height + top + 36.0
    )?;
    // A faint line at each decade of latency.
    for tick in latency.ticks() {
        writeln!(
            out,
            "<line class=\"decade\" x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\" stroke-width=\"1\"/>",
            left + width,
            y = y(tick)
        )?;
    }
    // The error rate: bars against the right axis, from 0 to the largest rate of a bucket.
    for (i, b) in report.buckets.iter().enumerate() {
        if b.errors > 0 {
            let h = b.error_rate() / worst_rate * height;
            writeln!(
                out,
                "<rect class=\"errors\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{h:.1}\" fill=\"#f3b0b0\"><title>{} errors of {}</title></rect>",
                left + i as f64 / n * width,
                top + height - h,
                (width / n).max(1.0),
                b.errors,
                b.spans
            )?;
        }
    }
    for (key, colour) in [("p50", "#2a6fdb"), ("p99", "#d9480f")] {
        let pick = |b: &BucketRow| if key == "p50" { b.p50 } else { b.p99 };
        // A line per run of buckets with a value: an empty bucket breaks it.
        let mut points: Vec<String> = Vec::new();
        let mut lines: Vec<String> = Vec::new();
        for (i, b) in report.buckets.iter().enumerate() {
            match pick(b) {
                Some(v) => points.push(format!("{:.1},{:.1}", x(i), y(v))),
                None if !points.is_empty() => lines.push(std::mem::take(&mut points).join(" ")),
                None => {}
            }
        }
        if !points.is_empty() {
            lines.push(points.join(" "));
        }
        for line in lines {
            writeln!(
                out,
                "<polyline class=\"{key}\" points=\"{line}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>"
            )?;
        }
    }
    // Axes: latency on the left, error rate on the right, five times below.
    let axis = "stroke=\"#999\" stroke-width=\"1\"";
    writeln!(
        out,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" {axis}/><line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" {axis}/>",
        top + height,
        top + height,
        left + width,
        top + height
    )?;
    let label = |x: f64, y: f64, anchor: &str, s: &str| {
        format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"11\" text-anchor=\"{anchor}\" fill=\"#555\">{}</text>",
            text(s)
        )
    };
    for tick in latency.ticks() {
        writeln!(
            out,
            "{}",
            label(left - 6.0, y(tick) + 4.0, "end", &ms(tick))
        )?;
    }
    if worst_rate > 0.0 {
        let top_rate = format!("{:.1}% err", worst_rate * 100.0);
        writeln!(
            out,
            "{}",
            label(left + width + 6.0, top + 4.0, "start", &top_rate)
        )?;
        writeln!(
            out,
            "{}",
            label(left + width + 6.0, top + height, "start", "0%")
        )?;
    }
    let count = report.buckets.len();
    for k in 0..5 {
        let i = (count.saturating_sub(1)) * k / 4;
        if let Some(b) = report.buckets.get(i) {
            let anchor = ["start", "middle", "middle", "middle", "end"][k];
            let at = (page.axis_time)(b.start);
            writeln!(out, "{}", label(x(i), top + height + 16.0, anchor, &at))?;
        }
    }
    for (i, (key, colour)) in [("p50", "#2a6fdb"), ("p99", "#d9480f")].iter().enumerate() {
        let at = left + 8.0 + 52.0 * i as f64;
        let legend = label(at, top + 12.0, "start", &format!("— {key}"));
        writeln!(
            out,
            "{}",
            legend.replace("fill=\"#555\"", &format!("fill=\"{colour}\""))
        )?;
    }
    writeln!(
        out,
        "<rect id=\"timeline-brush\" x=\"0\" y=\"{top}\" width=\"0\" height=\"{height}\" fill=\"#4a90e2\" fill-opacity=\"0.15\"/>\n</svg>\n<div id=\"timeline-readout\">Drag across the chart to sum up a range.</div>"
    )?;
    // The brush's data: the timeline's JSON and each bucket's label; `</` escaped so that no
    // name can end the script element.
    let mut data = report.to_json();
    let labels: Vec<String> = report
        .buckets
        .iter()
        .map(|b| (page.local_time)(b.start))
        .collect();
    data["labels"] = serde_json::json!(labels);
    let json = data.to_string().replace("</", "<\\/");
    writeln!(
        out,
        "<script type=\"application/json\" id=\"timeline-data\">{json}</script>\n</section>"
    )
}

/// The run's flame graph.
fn write_flamegraph(svg: &str, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "<section id=\"flamegraph\">\n<h2>Flame graph (self time)</h2>\n{}</section>",
        flame_frame(svg)
    )
}

/// A flame graph in a frame of its own document (inferno's script finds its SVG as the
/// document's first), sized to the graph.
fn flame_frame(svg: &str) -> String {
    // The XML prolog and doctype mean nothing inside an HTML document.
    let svg = svg.find("<svg").map_or(svg, |at| &svg[at..]);
    let height = svg
        .split_once("height=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .and_then(|(h, _)| h.parse::<f64>().ok())
        .unwrap_or(600.0);
    // An SVG in an HTML document without a width is 300 pixels wide.
    let doc = format!(
        "<!DOCTYPE html><html><head><style>body{{margin:0}} svg{{width:100%}}</style></head><body>{svg}</body></html>"
    );
    format!(
        "<iframe class=\"flame\" title=\"flame graph\" style=\"height:{}px\" srcdoc=\"{}\"></iframe>\n",
        height + 8.0,
        attribute(&doc)
    )
}

/// The comparison with the baseline: every function's verdict, shift and change of total, and
/// the differential flame graph.
fn write_comparison(
    report: &ComparisonReport,
    differential_svg: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(
        out,
        "<section id=\"comparison\">\n<h2>Against run {} ({} spans)</h2>\n<p>{}</p>\n<div class=\"scroll\"><table class=\"sortable\">",
        text(&report.base_run_id),
        report.base_spans,
        text(&report.summary_line())
    )?;
    writeln!(out, "<thead><tr><th class=\"name\">Function</th><th>Change</th><th>Shift</th><th>q</th><th>Count</th><th>ΔCount</th><th>Total</th><th>ΔTotal</th><th>Δp99</th></tr></thead><tbody>")?;
    for f in &report.functions {
        let d = f.deltas();
        let shown = f
            .target
            .as_ref()
            .or(f.base.as_ref())
            .expect("a side has it");
        let shift = f.shift.map_or(0.0, |s| s.estimate);
        let p99 = match (&f.base, &f.target) {
            (Some(b), Some(t)) if b.p99 > 0.0 => t.p99 / b.p99 - 1.0,
            _ => 0.0,
        };
        let cells = [
            format!("<td class=\"change\">{}</td>", f.change.as_str()),
            number_cell(shift, &format!("{}%", signed(shift * 100.0, 1))),
            number_cell(
                f.q_value.unwrap_or(1.0),
                &f.q_value.map_or(String::new(), |q| format!("{q:.2e}")),
            ),
            number_cell(shown.count as f64, &shown.count.to_string()),
            number_cell(d[0], &format!("{:+}", d[0] as i64)),
            number_cell(
                shown.total_duration,
                &format!("{:.3}s", shown.total_duration),
            ),
            number_cell(d[1], &format!("{}s", signed(d[1], 3))),
            number_cell(p99, &format!("{}%", signed(p99 * 100.0, 1))),
        ];
        writeln!(
            out,
            "<tr class=\"{}\"><td class=\"name\">{}</td>{}</tr>",
            f.change.as_str(),
            text(&f.name),
            cells.concat()
        )?;
    }
    writeln!(
        out,
        "</tbody></table></div>\n<h3>Differential flame graph (the target's stacks; red: more self time than the base, blue: less)</h3>\n<div id=\"differential\">{}</div>\n</section>",
        flame_frame(differential_svg)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_axis_shows_a_p50_a_hundred_times_below_the_p99() {
        let axis = LogAxis::over([0.002, 0.2, 0.0, f64::NAN].into_iter());
        assert_eq!((axis.low, axis.decades), (-3.0, 3.0));
        let (p50, p99) = (axis.share(0.002), axis.share(0.2));
        // On a linear axis p50 would sit at 1% of the height; here a third of it apart.
        assert!(p50 > 0.1 && p99 - p50 > 0.6, "{p50} {p99}");
        assert_eq!(axis.share(0.0), 0.0);
        let ticks: Vec<f64> = axis.ticks().collect();
        assert_eq!(ticks.len(), 4);
        assert!((ticks[0] - 1e-3).abs() < 1e-15 && (ticks[3] - 1.0).abs() < 1e-12);
        // No value: one decade, from 1 ms.
        let empty = LogAxis::over(std::iter::empty());
        assert_eq!((empty.low, empty.decades), (-3.0, 1.0));
    }
}
