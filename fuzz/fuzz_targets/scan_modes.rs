//! Every question ferret-scan answers, over any bytes that open as a record file: the runs, the
//! table under each kind of filter, the trees (whole and cut), the flame-graph stacks, the
//! timeline, and what the reports print from them. Damage gives an error (or the documented
//! fallback), never a panic.
#![no_main]

use std::time::Duration;

use ferret_format::{AlignedBytes, SpanFile};
use ferret_report::chrome::write_chrome_trace;
use ferret_report::flame::folded_lines;
use ferret_report::timeline::TimelineReport;
use ferret_report::trees::{write_trees_json, write_trees_text, TextStyle, TreeIn};
use ferret_report::StatsReport;
use ferret_scan::buckets::{scan_timeline, Buckets};
use ferret_scan::stacks::folded_stacks;
use ferret_scan::tree::{slowest_trees, TreeOptions};
use ferret_scan::{default_run, scan_runs, scan_stats, Filter, ScanOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = SpanFile::from_bytes(AlignedBytes::copy_from(data)) else {
        return;
    };
    let none = |_: &_, _| {};
    let plain = ScanOptions::default();
    let Ok(runs) = scan_runs(&file, &plain, &none) else {
        return;
    };
    let _ = default_run(&file);
    let scratch = std::env::temp_dir();
    for entry in runs.iter().take(2) {
        let run = entry.run;
        let filters = [
            Filter::default(),
            Filter {
                errors: Some(true),
                ..Filter::default()
            },
            Filter {
                since: Some(entry.first_start),
                until: Some(entry.first_start + (entry.last_start - entry.first_start) / 2.0),
                ..Filter::default()
            },
            Filter {
                name: regex::Regex::new("a").ok(),
                tag: Some(("k".into(), "v".into())),
                ..Filter::default()
            },
        ];
        for filter in filters {
            let opts = ScanOptions {
                filter,
                blocks_per_chunk: 1,
                ..ScanOptions::default()
            };
            if let Ok(stats) = scan_stats(&file, run, &opts, &none) {
                let report = StatsReport::build(
                    "run".into(),
                    &stats,
                    |id| file.name(id).unwrap_or("?").to_string(),
                    "self",
                    0,
                );
                let _ = report.write_table(&mut std::io::sink());
                let _ = serde_json::to_writer(std::io::sink(), &report.to_json());
            }
        }
        for max_nodes in [1, 1_000] {
            let tree_opts = TreeOptions {
                limit: 3,
                max_nodes,
                min_duration: 0.0,
            };
            let keep = |_: &_, _: &_| true;
            if let Ok(trees) = slowest_trees(&file, run, &plain, &tree_opts, &keep, &none) {
                let style = TextStyle { color: false };
                let shown = TreeIn::of_one_run(&file, &trees);
                let _ = write_trees_text(&shown, style, &mut std::io::sink());
                let fields = serde_json::Map::new();
                let _ = write_trees_json(&fields, &shown, &mut std::io::sink());
                let _ = write_chrome_trace(&shown, &mut std::io::sink());
            }
        }
        if let Ok(folded) = folded_stacks(&file, run, true, 1e-5, &scratch, &none) {
            let _ = folded_lines(&file, &folded);
        }
        let width = Some(Duration::from_millis(250));
        if let Ok(buckets) = Buckets::over(entry.first_start, entry.last_start, width) {
            if let Ok(stats) = scan_timeline(&file, run, &plain, &buckets, &none) {
                let report = TimelineReport::build("run".into(), &stats, &buckets);
                let _ = serde_json::to_writer(std::io::sink(), &report.to_json());
            }
        }
    }
});
