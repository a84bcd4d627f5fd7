//! `--folded`, `--flamegraph` and `--chrome-trace`: stacks weighed by ferret's self time, checked
//! blocks, and the drawable stacks.

use ferret_format::SpanFile;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// Sum of ferret's own per-span self times over a list of reference trees.
/// Each stack path of ferret's trees (names joined by `;`, a name's own `;` made `:`) and the
/// summed self time of its spans, in microseconds.
fn ferret_stack_weights(roots: &Value) -> HashMap<String, f64> {
    let mut weights = HashMap::new();
    let mut stack: Vec<(&Value, String)> = roots
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r, String::new()))
        .collect();
    while let Some((n, above)) = stack.pop() {
        let name = n["name"].as_str().unwrap().replace(';', ":");
        let path = if above.is_empty() {
            name
        } else {
            format!("{above};{name}")
        };
        *weights.entry(path.clone()).or_insert(0.0) += n["self_time"].as_f64().unwrap() * 1e6;
        for c in n["children"].as_array().unwrap() {
            stack.push((c, path.clone()));
        }
    }
    weights
}

/// Folded stacks of every run of `db`: one line per path, each weighing its spans' self time in
/// ferret's own trees (rounded once to the microsecond), and no path ferret's trees lack.
fn check_folded_weights(db: &str, file: &Path) {
    let reference = reference(db);
    for (run_id, want) in reference["runs"].as_object().unwrap() {
        let folded = ok!(run!("ferret-scan", file, "--folded", "--run", run_id));
        let lines: HashMap<&str, u64> = folded
            .lines()
            .map(|l| {
                let (path, w) = l.rsplit_once(' ').unwrap();
                (path, w.parse().unwrap())
            })
            .collect();
        assert_eq!(
            lines.len(),
            folded.lines().count(),
            "one line per stack path"
        );
        if db == "beaver1.db" {
            assert!(
                lines.contains_key("main;a:b c"),
                "a `;` inside a name must not split frames"
            );
        }
        let weights = ferret_stack_weights(&want["roots"]);
        for (path, w) in &weights {
            let got = lines.get(path.as_str()).copied().unwrap_or(0);
            assert!(
                (got as f64 - w.round()).abs() <= 1.0,
                "{run_id} {path}: folded {got} µs vs ferret's {w} µs"
            );
        }
        for path in lines.keys() {
            assert!(
                weights.contains_key(*path),
                "{run_id}: {path} is no stack of ferret's"
            );
        }
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
    // Every stack of the run holding at least 1% of its time is a frame of the graph (inferno
    // titles each frame `name (n µs self time, p%)`; thinner ones may be folded into their
    // ancestors, under a pixel), and no frame is a name the stacks lack.
    let latest = reference["latest_run"].as_str().unwrap();
    let stacks = ferret_stack_weights(&reference["runs"][latest]["roots"]);
    let names: std::collections::HashSet<&str> = stacks.keys().flat_map(|p| p.split(';')).collect();
    let whole: f64 = stacks.values().sum();
    let inclusive = |path: &str| -> f64 {
        let below = format!("{path};");
        stacks
            .iter()
            .filter(|(p, _)| p.as_str() == path || p.starts_with(&below))
            .map(|(_, w)| w)
            .sum()
    };
    let wide: std::collections::HashSet<&str> = stacks
        .keys()
        .filter(|p| inclusive(p) >= 0.01 * whole)
        .map(|p| p.rsplit(';').next().unwrap())
        .collect();
    assert!(wide.len() > 5, "the run has stacks to draw");
    let titles: std::collections::HashSet<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text())
        .filter_map(|t| t.rsplit_once(" (").map(|(name, _)| name.to_string()))
        .filter(|t| t != "all")
        .collect();
    for name in &wide {
        assert!(titles.contains(*name), "no frame for {name}");
    }
    for title in &titles {
        assert!(
            names.contains(title.as_str()),
            "a frame {title} of no stack"
        );
    }
    // The Chrome trace: every span of the run's trees, by id, with its name and duration;
    // complete events nested on each track.
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&chrome).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let mut spans: HashMap<&str, (&str, f64)> = HashMap::new();
    let mut pending: Vec<&Value> = reference["runs"][latest]["roots"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    while let Some(n) = pending.pop() {
        let duration = n["duration"].as_f64().unwrap_or(0.0);
        spans.insert(
            n["span_id"].as_str().unwrap(),
            (n["name"].as_str().unwrap(), duration),
        );
        pending.extend(n["children"].as_array().unwrap());
    }
    assert_eq!(events.len(), spans.len());
    for e in events {
        let (name, duration) = spans[e["args"]["span_id"].as_str().unwrap()];
        assert_eq!(e["name"], name);
        assert!((e["dur"].as_f64().unwrap() - duration * 1e6).abs() <= 1e-3 + 1e-9 * duration);
    }
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
