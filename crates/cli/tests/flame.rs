//! `--folded`, `--flamegraph` and `--chrome-trace`: stacks weighed by ferret's self time, checked
//! blocks, and the drawable stacks.

use ferret_format::SpanFile;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// Sum of ferret's own per-span self times over a list of reference trees.
fn ferret_self_total(nodes: &Value) -> f64 {
    let mut total = 0.0;
    let mut stack: Vec<&Value> = nodes.as_array().unwrap().iter().collect();
    while let Some(n) = stack.pop() {
        total += n["self_time"].as_f64().unwrap();
        stack.extend(n["children"].as_array().unwrap());
    }
    total
}

/// Folded stacks of every run of `db`: one line per path, weights adding up to ferret's own
/// per-span self time (each line rounds to the microsecond).
fn check_folded_weights(db: &str, file: &Path) {
    let reference = reference(db);
    for (run_id, want) in reference["runs"].as_object().unwrap() {
        let folded = ok!(run!("ferret-scan", file, "--folded", "--run", run_id));
        let lines: Vec<(&str, u64)> = folded
            .lines()
            .map(|l| {
                let (path, w) = l.rsplit_once(' ').unwrap();
                (path, w.parse().unwrap())
            })
            .collect();
        let paths: std::collections::HashSet<&str> = lines.iter().map(|l| l.0).collect();
        assert_eq!(paths.len(), lines.len(), "one line per stack path");
        if db == "beaver1.db" {
            assert!(
                paths.contains("main;a:b c"),
                "a `;` inside a name must not split frames"
            );
        }
        let total: u64 = lines.iter().map(|l| l.1).sum();
        let want_us = ferret_self_total(&want["roots"]) * 1e6;
        assert!(
            (total as f64 - want_us).abs() <= lines.len() as f64,
            "{run_id}: folded {total} µs vs ferret's self time {want_us} µs"
        );
    }
}

#[test]
fn exports_parse_and_add_up_to_ferrets_self_time() {
    for_each_way("generated1.db", check_folded_weights);
    for_each_way("beaver1.db", check_folded_weights);
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    let reference = reference("beaver1.db");
    // The flame graph is well-formed SVG.
    let svg = dir.path().join("f.svg");
    let chrome = dir.path().join("c.json");
    ok!(run!(
        "ferret-scan",
        &file,
        "--flamegraph",
        &svg,
        "--chrome-trace",
        &chrome
    ));
    let text = std::fs::read_to_string(&svg).unwrap();
    let xml = roxmltree::ParsingOptions {
        allow_dtd: true, // inferno declares the SVG DTD
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, xml).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(text.contains("outliving_task"));
    // The Chrome trace: every span of the run's trees, complete events nested on each track.
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&chrome).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let latest = reference["latest_run"].as_str().unwrap();
    assert_eq!(
        events.len() as u64,
        reference["runs"][latest]["span_count"].as_u64().unwrap()
    );
    let mut tracks: HashMap<(u64, u64), Vec<(f64, f64)>> = HashMap::new();
    for e in events {
        assert_eq!(e["ph"], "X");
        let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
        assert!(ts >= 0.0 && dur >= 0.0);
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        tracks.entry(key).or_default().push((ts, ts + dur));
    }
    assert!(
        tracks.keys().filter(|k| k.0 == 1).count() > 1,
        "concurrent spans get tracks of their own"
    );
    for spans in tracks.values_mut() {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<f64> = Vec::new();
        for &(start, end) in spans.iter() {
            while open.last().is_some_and(|&e| e <= start + 1e-3) {
                open.pop();
            }
            assert!(
                open.last().is_none_or(|&e| end <= e + 1e-3),
                "overlapping spans on one track"
            );
            open.push(end);
        }
    }
}

#[test]
fn folded_stacks_check_the_blocks_they_fold() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    ok!(run!("ferret-scan", &file, "--folded"));
    // One bit of the last record's duration (records start 128 bytes into the first segment).
    let mut bytes = std::fs::read(&file).unwrap();
    let records = SpanFile::open(&file).unwrap().record_count() as usize;
    bytes[8192 + 128 + (records - 1) * 64 + 24] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    fails!(
        run!("ferret-scan", &file, "--folded"),
        "checksum mismatch in records"
    );
    ok!(run!("ferret-scan", &file, "--folded", "--no-verify"));
}

/// The frames of a flame graph SVG: (name, y, x, width) of every `<g>` with a title, x and
/// width in percent.
fn svg_frames(svg: &Path) -> Vec<(String, String, f64, f64)> {
    let text = std::fs::read_to_string(svg).unwrap();
    let xml = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, xml).unwrap();
    let percent = |v: Option<&str>| v.unwrap().trim_end_matches('%').parse::<f64>().unwrap();
    let mut frames: Vec<(String, String, f64, f64)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("g"))
        .filter_map(|g| {
            let title = g.children().find(|c| c.has_tag_name("title"))?.text()?;
            let rect = g.children().find(|c| c.has_tag_name("rect"))?;
            let name = title.split(" (").next().unwrap().to_string();
            let y = rect.attribute("y").unwrap().to_string();
            Some((
                name,
                y,
                percent(rect.attribute("x")),
                percent(rect.attribute("width")),
            ))
        })
        .collect();
    frames.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    frames
}

/// A flame graph alone folds the stacks too thin to draw into their ancestors: 20,000 distinct
/// 10 µs stacks under one root draw the same frames, as wide, as the complete lines `--folded`
/// prints (and still prints, every one). Only places move: the thin stacks' time joins their
/// parent's own, which inferno draws first.
#[test]
fn a_flame_graph_draws_the_same_frames_from_the_drawable_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    let mut span = |id: u64, parent: Option<u64>, name: &str, start: f64, duration: f64| {
        let parent = parent.map_or("null".to_string(), |p| format!("\"{p:032x}\""));
        lines.push_str(&format!(
            "{{\"span_id\":\"{id:032x}\",\"parent_id\":{parent},\"run_id\":\"r\",\"name\":\"{name}\",\"start_time\":{start},\"end_time\":{},\"duration\":{duration},\"tags\":{{}},\"status\":\"ok\"}}\n",
            start + duration
        ));
    };
    span(1, None, "main", 1.7e9, 10.0);
    span(2, Some(1), "big", 1.7e9, 4.0);
    span(3, Some(2), "inner", 1.7e9, 1.0);
    for i in 0..20_000u64 {
        span(
            10 + i,
            Some(1),
            &format!("tiny_{i}"),
            1.7e9 + 4.0 + i as f64 * 1e-5,
            1e-5,
        );
    }
    let input = dir.path().join("thin.jsonl");
    std::fs::write(&input, lines).unwrap();
    let file = dir.path().join("thin.ferret");
    ok!(run!("ferret-convert", &input, "-o", &file, "--quiet"));
    let (drawn, complete) = (
        dir.path().join("drawn.svg"),
        dir.path().join("complete.svg"),
    );
    ok!(run!("ferret-scan", &file, "--flamegraph", &drawn));
    let folded = ok!(run!(
        "ferret-scan",
        &file,
        "--flamegraph",
        &complete,
        "--folded"
    ));
    assert_eq!(folded.lines().count(), 20_003, "every stack in --folded");
    let (a, b) = (svg_frames(&drawn), svg_frames(&complete));
    assert_eq!(a.len(), b.len(), "{a:?}\n{b:?}");
    assert!(a.iter().any(|f| f.0 == "inner"), "{a:?}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.0, &x.1), (&y.0, &y.1));
        assert!((x.3 - y.3).abs() < 1e-3, "{x:?} vs {y:?}");
    }
}

/// Runs `script` (sh) in a mount namespace of its own, with a tmpfs of `kib` KiB at `$ROOM`, so
/// a test can fill a disk without touching the machine's (as root, or in a user namespace).
fn with_small_disk(room: &Path, kib: u32, script: &str) -> std::process::Output {
    let full = format!("mount -t tmpfs -o size={kib}k tmpfs \"$ROOM\" && {script}");
    for flags in ["-m", "-rm"] {
        let out = Command::new("unshare")
            .args([flags, "sh", "-c", &full])
            .env("ROOM", room)
            .env("SCAN", env!("CARGO_BIN_EXE_ferret-scan"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("unshare:") && !err.contains("mount:") {
            return out;
        }
    }
    panic!("no mount namespace for a small disk: this test needs root or user namespaces");
}

/// A per-span table that the disk has no room for is an error naming the folder, not a SIGBUS:
/// its space is reserved before it is written through a map. So is the Parquet export's.
#[test]
fn a_full_disk_gives_an_error_not_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("generated1.db"), dir.path());
    let room = dir.path().join("room");
    std::fs::create_dir(&room).unwrap();
    let size = std::fs::metadata(&file).unwrap().len() / 1024 + 8;
    let script = format!(
        "cp \"{}\" \"$ROOM/t.ferret\" && (dd if=/dev/zero of=\"$ROOM/filler\" bs=1k 2>/dev/null; true) && \
         \"$SCAN\" \"$ROOM/t.ferret\" --folded >/dev/null; echo folded=$?; \
         \"$SCAN\" \"$ROOM/t.ferret\" --to-parquet \"$ROOM/t.parquet\"; echo parquet=$?",
        file.display()
    );
    let out = with_small_disk(&room, size as u32 + 64, &script);
    let said = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("folded=1") && said.contains("parquet=1"),
        "{said}\n{err}"
    );
    assert_eq!(err.matches("No space left on device").count(), 2, "{err}");
}
