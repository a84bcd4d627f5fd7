//! `--tree`: ferret-io's trees node for node and its text, bounded trees, damaged tag heaps and
//! looping parent links.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

use ferret_format::SpanFile;

use crate::util::*;

#[test]
fn trees_equal_ferret_io_node_for_node_in_ferrets_root_order() {
    for db in ["beaver1.db", "beaver2.db", "generated1.db"] {
        for_each_way(db, check_trees_against_ferret);
    }
}

#[test]
fn tree_text_equals_ferrets_own_output() {
    for_each_way("beaver1.db", check_tree_text);
    for_each_way("generated1.db", check_tree_text);
}

fn check_tree_text(db: &str, file: &Path) {
    let name = db.trim_end_matches(".db");
    let ours = ok!(run!("ferret-scan", file, "--tree"));
    let theirs = std::fs::read_to_string(fixture(&format!("{name}.ferret-tree.txt"))).unwrap();
    let ours: Vec<String> = ours
        .lines()
        .map(|l| {
            l.rsplit_once("  [self ")
                .map_or(l, |(head, _)| head)
                .to_string()
        })
        .collect();
    let theirs: Vec<&str> = theirs.lines().collect();
    assert_eq!(ours.len(), theirs.len(), "same number of lines");
    // rich reads `[...]` in a name as markup and drops it, where we print names as they are:
    // a line that differs must be ours with the bracketed words of its name dropped, exactly.
    let markup = regex::Regex::new(r"\[[^\[\]]*\]").unwrap();
    let mut equal = 0;
    for (a, b) in ours.iter().zip(&theirs) {
        if a == b {
            equal += 1;
            continue;
        }
        let (guide_and_name, rest) = a.split_once(" - ").expect("a span's line");
        let as_rich = format!("{} - {rest}", markup.replace_all(guide_and_name, ""));
        assert_eq!(as_rich, *b, "ours: {a}");
    }
    assert!(equal > 30, "only {equal} lines equal");
    if name == "beaver1" {
        assert!(ours.iter().any(|l| l.contains("├── load[config] - ")));
        let markup = "├── [bold]not markup[/bold] - ";
        assert!(ours.iter().any(|l| l.contains(markup)));
    }
}

#[test]
fn a_huge_tree_prints_within_max_nodes_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wide.jsonl");
    let span = |i: u64, parent: Option<u64>, start: f64, duration: f64| {
        let parent = parent.map_or("null".to_string(), |p| format!("\"{p:032x}\""));
        format!(
            "{{\"span_id\":\"{i:032x}\",\"parent_id\":{parent},\"run_id\":\"r\",\"name\":\"n{}\",\"start_time\":{start},\"end_time\":{},\"duration\":{duration},\"tags\":{{}},\"status\":\"ok\"}}\n",
            i % 5,
            start + duration
        )
    };
    let mut text = span(1, None, 1000.0, 60.0);
    for i in 2..5002u64 {
        text.push_str(&span(
            i,
            Some(1),
            1000.0 + i as f64 * 0.01,
            0.001 * (i % 97) as f64,
        ));
    }
    std::fs::write(&input, text).unwrap();
    let file = dir.path().join("wide.ferret");
    ok!(run!("ferret-convert", &input, "-o", &file, "--quiet"));
    let out = ok!(run!("ferret-scan", &file, "--tree", "--max-nodes", "100"));
    let nodes = out
        .lines()
        .filter(|l| l.contains(" - ") && l.contains("ms"))
        .count();
    assert_eq!(nodes, 100, "{out}");
    assert!(out.contains("└── … 4,901 more spans, "), "{out}");
    let json: Value = serde_json::from_str(&ok!(run!(
        "ferret-scan",
        &file,
        "--tree",
        "--max-nodes",
        "100",
        "--format",
        "json"
    )))
    .unwrap();
    let root = &json["roots"][0];
    assert_eq!(root["children"].as_array().unwrap().len(), 99);
    assert_eq!(root["elided"]["spans"], 4901);
    // The slowest children are the ones kept.
    let kept_min = root["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["duration"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert!(kept_min >= 0.094, "kept a child of {kept_min} s");
}

#[test]
fn a_damaged_tag_heap_fails_a_tree_instead_of_printing_a_changed_tag() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    let tree = ok!(run!("ferret-scan", &file, "--tree"));
    assert!(tree.contains("depth=1"), "the default run prints its tags");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"{\"depth\":1}")
        .expect("a tag in the heap");
    bytes[at + 9] = b'7';
    std::fs::write(&file, &bytes).unwrap();
    fails!(
        run!("ferret-scan", &file, "--tree"),
        "checksum mismatch in tag heap"
    );
    let parquet = dir.path().join("t.parquet");
    fails!(
        run!("ferret-scan", &file, "--to-parquet", &parquet),
        "checksum mismatch in tag heap"
    );
    assert!(!parquet.exists(), "no export from a damaged file");
    // --tag reads the tags of every span it tests: the heap is checked before, in every mode
    // that filters (the table, the timeline, a comparison, the trees' roots).
    for mode in [
        &["--limit", "5"][..],
        &["--timeline"],
        &["--baseline", "run-one"],
        &["--tree"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
            .arg(&file)
            .args(["--tag", "depth=7"])
            .args(mode)
            .output()
            .unwrap();
        fails!(out, "checksum mismatch in tag heap");
    }
}

/// A parent link read from a block the pass has not checked yet is checked before it is
/// followed: damage there fails the export with the block's checksum, never a panic.
#[test]
fn an_unchecked_parent_is_checked_before_its_links_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    // A chain of 3,000 spans in write order: each child is written before its parent, so the
    // parents of the first blocks' spans lie in later blocks.
    let id = |i: u64| format!("{:032x}", 0xfeed_0000u64 + i);
    let lines: String = (0..3000u64)
        .rev()
        .map(|i| {
            let parent = match i {
                0 => "null".to_string(),
                _ => format!("\"{}\"", id(i - 1)),
            };
            format!(
                "{{\"span_id\":\"{}\",\"parent_id\":{parent},\"run_id\":\"r\",\"name\":\"f\",\"start_time\":{},\"end_time\":null,\"duration\":0.5,\"tags\":{{}},\"status\":\"ok\"}}\n",
                id(i),
                1.7e9 + i as f64
            )
        })
        .collect();
    let input = dir.path().join("chain.jsonl");
    std::fs::write(&input, lines).unwrap();
    let file = dir.path().join("chain.ferret");
    ok!(run!("ferret-convert", &input, "-o", &file, "--quiet"));
    let parquet = dir.path().join("t.parquet");
    ok!(run!("ferret-scan", &file, "--to-parquet", &parquet));
    // The parent index of the last record (the root's child, in the third block) made to
    // point past the file.
    let mut bytes = std::fs::read(&file).unwrap();
    let records = SpanFile::open(&file).unwrap().record_count() as usize;
    let parent_field = 8192 + 128 + (records - 2) * 64 + 32;
    bytes[parent_field + 5] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    for mode in [
        &["--to-parquet", parquet.to_str().unwrap()][..],
        &["--folded"],
        &["--tree"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
            .arg(&file)
            .args(mode)
            .output()
            .unwrap();
        fails!(out, "checksum mismatch in records");
    }
}

#[test]
fn parent_cycles_and_self_parents_never_hang_and_are_named() {
    use ferret_format::{SpanExtras, SpanFileWriter, SpanRecord, NONE_NAME};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.ferret");
    let mut w = SpanFileWriter::create(&path).unwrap();
    let run = w.intern_string("r");
    let name = w.intern_name("n");
    // 0 is a root; 1 and 2 are each other's parent; 3 is its own parent. All claim root 0.
    for (i, parent) in [(0u64, None), (1, Some(2)), (2, Some(1)), (3, Some(3))] {
        let mut r: SpanRecord = bytemuck::Zeroable::zeroed();
        r.span_id[15] = i as u8 + 1;
        r.start_time = 100.0 + i as f64;
        r.duration = 10.0 - i as f64;
        r.name = name;
        r.run = run;
        r.root = 0;
        r.set_parent(parent);
        r.parent_name = if parent.is_some() { name } else { NONE_NAME };
        w.push(r, &SpanExtras::default()).unwrap();
    }
    w.commit(true).unwrap();
    // verify names the damage; the scans still finish.
    fails!(run!("ferret-scan", &path, "--verify"), "record 3", "parent");
    let out = run!("ferret-scan", &path, "--tree");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("parent links that loop"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("n - ")).count(),
        4,
        "{text}"
    );
    let folded = run!("ferret-scan", &path, "--folded");
    assert!(folded.status.success());
    assert!(String::from_utf8_lossy(&folded.stderr).contains("parent links that loop"));
    ok!(run!("ferret-scan", &path));
}
