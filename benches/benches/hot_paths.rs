//! Hot paths side by side in one run: the stats scan and the top-N trees against the physical
//! ceiling (a plain parallel read of the same mapped records), the merge, the sketch, and span
//! JSON parsing.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferret_format::SpanFile;
use ferret_scan::sketch::SketchTable;
use ferret_scan::stats::ChunkStats;
use ferret_scan::tree::{slowest_trees, TreeOptions};
use ferret_scan::{scan_stats, ScanOptions};

const SPANS: u64 = 2_000_000;

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.ferret");
    ferret_benches::write_trace(&path, SPANS, 200);
    let file = SpanFile::open(&path).unwrap();
    let run = file.record(0).unwrap().run;
    let mut g = c.benchmark_group("scan_2M_records");
    g.throughput(Throughput::Bytes(SPANS * 64));
    g.sample_size(20);
    g.bench_function("ceiling_plain_parallel_read", |b| {
        b.iter(|| black_box(ferret_benches::ceiling_read(&file)))
    });
    for verify in [true, false] {
        let opts = ScanOptions {
            verify,
            ..ScanOptions::default()
        };
        let name = if verify {
            "stats_verified"
        } else {
            "stats_unverified"
        };
        g.bench_function(name, |b| {
            b.iter(|| black_box(scan_stats(&file, run, &opts, &|_, _| {}).unwrap().spans()))
        });
    }
    // `--tree --limit 10`: the sharded top-N heap over every root, then the second pass that
    // gathers the ten chosen trees.
    let tree_opts = TreeOptions {
        limit: 10,
        max_nodes: 10_000,
        min_duration: 0.0,
    };
    g.bench_function("top_10_trees", |b| {
        b.iter(|| {
            let trees = slowest_trees(
                &file,
                run,
                &ScanOptions::default(),
                &tree_opts,
                &|_, _| true,
                &|_, _| {},
            );
            black_box(trees.unwrap().len())
        })
    });
    g.finish();
}

fn merge_and_sketch(c: &mut Criterion) {
    let mut a = ChunkStats::new(1000);
    for i in 0..1000 {
        for k in 0..50 {
            a.add_span(i, Some(1e-4 * (1 + i + k) as f64), k % 7 == 0);
        }
    }
    c.bench_function("merge_chunk_stats_1000_names", |b| {
        b.iter(|| black_box(a.clone().merge(a.clone()).spans()))
    });
    let mut h = SketchTable::new(200);
    let durations: Vec<f64> = (0..4096).map(|i| 1e-6 * 1.0037f64.powi(i)).collect();
    let mut i = 0usize;
    c.bench_function("sketch_insert_200_names", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            h.insert(i * 7 % 200, black_box(durations[i % 4096]))
        })
    });
}

fn parse(c: &mut Criterion) {
    let json = r#"{"span_id":"effb39edf9a54126bfc91fdc87a0acb7","parent_id":"da992886d90d4f4a95522fbc2cd2dda6","run_id":"d328e006c64f4cc2a91e353d98346f09","name":"handle_request","start_time":1795628036.6272376,"end_time":1795628036.6272469,"duration":9.298324584960938e-6,"tags":{"path":"/api/v1/items","status_code":200},"status":"ok"}"#;
    // The same span with a space after each comma: not pydantic's compact shape, so the fast
    // path declines and serde_json parses it (what any other writer's JSON costs).
    let spaced = json.replace(",\"", ", \"");
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(1));
    let mut strings = String::new();
    for (name, text) in [("parse_span", json), ("parse_span_general", &spaced)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                strings.clear();
                black_box(ferret_convert::span::parse_span(black_box(text), &mut strings).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, scan, merge_and_sketch, parse);
criterion_main!(benches);
