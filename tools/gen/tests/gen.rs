//! The generator's three layouts carry the same trace: converted, they give the same spans.

use std::process::Command;

use ferret_convert::{convert, ConvertOptions};
use ferret_format::SpanFile;

fn generate(dir: &std::path::Path, layout: &str, ext: &str) -> std::path::PathBuf {
    let out = dir.join(format!("trace-{layout}.{ext}"));
    let status = Command::new(env!("CARGO_BIN_EXE_ferret-gen"))
        .args(["--spans", "20000", "--seed", "7", "--layout", layout, "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn every_layout_converts_to_the_same_spans() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for (layout, ext) in [("beaver1", "db"), ("beaver2", "db"), ("jsonl", "jsonl")] {
        let input = generate(dir.path(), layout, ext);
        let output = dir.path().join(format!("{layout}.ferret"));
        let summary = convert(&ConvertOptions::new(&input, &output), &mut |_, _| {}).unwrap();
        assert_eq!(summary.rows_skipped, 0, "{layout}: {:?}", summary.bad_rows);
        assert!(summary.spans_written >= 20_000);
        assert_eq!(summary.runs, 3);
        outputs.push(output);
    }
    let first = SpanFile::open(&outputs[0]).unwrap();
    // Shape: errors near 1%, roots and children both present, several names.
    let records: Vec<_> = first
        .segments()
        .iter()
        .flat_map(|s| first.records(s).iter().copied())
        .collect();
    let errors = records.iter().filter(|r| r.is_error()).count() as f64 / records.len() as f64;
    assert!((0.003..0.03).contains(&errors), "error share {errors}");
    assert!(records.iter().any(|r| r.parent().is_some()) && records.iter().any(|r| r.is_root()));
    assert!(first.name_count() > 50);
    for other in &outputs[1..] {
        ferret_benches::assert_same_records(&outputs[0], other);
    }
}
