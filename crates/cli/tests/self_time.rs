//! Self time is a property of the spans, never of the question: for random trees (children in
//! turn, and children running at once, whose durations add up past their parent's) and random
//! filters, each span's self time is ferret's `TraceNode.self_time` in `--tree` at any
//! `--max-nodes` and `--min-ms`, in `--folded` and in `--to-parquet`, and the table's per-name
//! figure is the name's kept spans' total minus all their children's, floored per name.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::util::*;

/// Which spans a filter keeps, as the test decides it.
type Keep = Box<dyn Fn(&Span) -> bool>;

/// A generated span.
#[derive(Clone, Debug)]
struct Span {
    id: String,
    parent: Option<usize>,
    name: &'static str,
    start: f64,
    duration: f64,
    error: bool,
    tag: &'static str,
}

const NAMES: [&str; 5] = ["handler", "db.query", "render", "cache.get", "io;wait"];

/// Random trees: each span's children run one after another inside it, or (one parent in four)
/// all at once from its start, so that their durations add up past the parent's.
fn trees(seed: u64) -> Vec<Span> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut spans: Vec<Span> = Vec::new();
    let mut start = 1.7e9;
    for _ in 0..rng.gen_range(3..8) {
        let duration = rng.gen_range(0.05..0.5);
        grow(&mut rng, &mut spans, None, start, duration, 0);
        start += duration + rng.gen_range(0.0..0.2);
    }
    spans
}

fn grow(
    rng: &mut StdRng,
    spans: &mut Vec<Span>,
    parent: Option<usize>,
    start: f64,
    d: f64,
    depth: u32,
) {
    let me = spans.len();
    spans.push(Span {
        id: format!("{:032x}", 0x5e1f_0000_0000u64 + me as u64),
        parent,
        name: NAMES[rng.gen_range(0..NAMES.len())],
        start,
        duration: d,
        error: rng.gen_bool(0.2),
        tag: ["a", "b"][rng.gen_range(0..2)],
    });
    if depth >= 4 {
        return;
    }
    let children = rng.gen_range(0..4);
    let at_once = rng.gen_bool(0.25);
    let mut at = start + d * 0.01;
    for _ in 0..children {
        if at_once {
            let len = d * rng.gen_range(0.3..0.9);
            grow(rng, spans, Some(me), start + d * 0.01, len, depth + 1);
        } else {
            let len = d * rng.gen_range(0.05..0.3);
            if at + len > start + d {
                break;
            }
            grow(rng, spans, Some(me), at, len, depth + 1);
            at += len + d * 0.01;
        }
    }
}

fn json_lines(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| {
            let line = serde_json::json!({
                "span_id": s.id,
                "parent_id": s.parent.map(|p| spans[p].id.clone()),
                "run_id": "r",
                "name": s.name,
                "start_time": s.start,
                "end_time": s.start + s.duration,
                "duration": s.duration,
                "tags": {"k": s.tag},
                "status": if s.error { "error" } else { "ok" },
            });
            format!("{line}\n")
        })
        .collect()
}

/// ferret's self time of each span, by id.
fn self_times(spans: &[Span]) -> HashMap<String, f64> {
    let mut children = vec![0.0; spans.len()];
    for s in spans {
        if let Some(p) = s.parent {
            children[p] += s.duration;
        }
    }
    spans
        .iter()
        .zip(children)
        .map(|(s, c)| (s.id.clone(), (s.duration - c).max(0.0)))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-3)
}

/// Every node of a `--tree --format json` output has its span's own self time.
fn check_trees(trees: &Value, want: &HashMap<String, f64>, what: &str) {
    let mut stack: Vec<&Value> = trees["roots"].as_array().unwrap().iter().collect();
    let mut seen = 0;
    while let Some(n) = stack.pop() {
        let id = n["span_id"].as_str().unwrap();
        let got = n["self_time"].as_f64().unwrap();
        assert!(
            close(got, want[id]),
            "{what}: {id} self {got} vs {}",
            want[id]
        );
        seen += 1;
        stack.extend(n["children"].as_array().unwrap());
    }
    assert!(seen > 0, "{what}: no node");
}

/// The folded lines weigh each stack with its spans' own self times (µs, rounded once).
fn check_folded(folded: &str, spans: &[Span], want: &HashMap<String, f64>, what: &str) {
    let path = |mut i: usize| {
        let mut frames = vec![spans[i].name.replace(';', ":")];
        while let Some(p) = spans[i].parent {
            frames.push(spans[p].name.replace(';', ":"));
            i = p;
        }
        frames.reverse();
        frames.join(";")
    };
    let mut weights: BTreeMap<String, f64> = BTreeMap::new();
    for (i, s) in spans.iter().enumerate() {
        *weights.entry(path(i)).or_default() += want[&s.id];
    }
    let got: BTreeMap<String, u64> = folded
        .lines()
        .map(|l| {
            let (stack, w) = l.rsplit_once(' ').unwrap();
            (stack.to_string(), w.parse().unwrap())
        })
        .collect();
    for (stack, w) in &weights {
        let micros = (w * 1e6).round() as u64;
        let g = got.get(stack).copied().unwrap_or(0);
        assert!(
            g.abs_diff(micros) <= 1,
            "{what}: {stack} weighs {g}, want {micros}"
        );
    }
    assert!(
        got.keys().all(|k| weights.contains_key(k)),
        "{what}: a stack no span has"
    );
}

/// The table's self time of each name under a filter: its kept spans' total minus the
/// durations of all their children, floored at zero.
fn check_table(table: &Value, spans: &[Span], keep: impl Fn(&Span) -> bool, what: &str) {
    let mut total: HashMap<&str, f64> = HashMap::new();
    let mut child: HashMap<&str, f64> = HashMap::new();
    for s in spans {
        if keep(s) {
            *total.entry(s.name).or_default() += s.duration;
        }
        if let Some(p) = s.parent.map(|p| &spans[p]).filter(|p| keep(p)) {
            *child.entry(p.name).or_default() += s.duration;
        }
    }
    let rows = table["functions"].as_array().unwrap();
    assert_eq!(rows.len(), total.len(), "{what}: rows");
    for row in rows {
        let name = row["name"].as_str().unwrap();
        let want = (total[name] - child.get(name).copied().unwrap_or(0.0)).max(0.0);
        let got = row["self_time"].as_f64().unwrap();
        assert!(close(got, want), "{what}: {name} self {got} vs {want}");
    }
}

#[test]
fn each_span_has_one_self_time_whatever_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    for seed in 0..12 {
        let spans = trees(seed);
        let want = self_times(&spans);
        let input = dir.path().join(format!("{seed}.jsonl"));
        std::fs::write(&input, json_lines(&spans)).unwrap();
        let file = dir.path().join(format!("{seed}.ferret"));
        ok!(run!("ferret-convert", &input, "-o", &file, "--quiet"));
        let what = format!("seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed + 1000);
        // Trees whole, and cut at a random size and duration.
        let max_nodes = rng.gen_range(1..20).to_string();
        let min_ms = rng.gen_range(0.0..50.0).to_string();
        for (max, min) in [
            ("100000", "0"),
            (max_nodes.as_str(), "0"),
            ("100000", min_ms.as_str()),
        ] {
            let trees = json_of(run!(
                "ferret-scan",
                &file,
                "--tree",
                "--limit",
                "0",
                "--format",
                "json",
                "--max-nodes",
                max,
                "--min-ms",
                min
            ));
            check_trees(
                &trees,
                &want,
                &format!("{what} --max-nodes {max} --min-ms {min}"),
            );
        }
        check_folded(
            &ok!(run!("ferret-scan", &file, "--folded")),
            &spans,
            &want,
            &what,
        );
        // Parquet rows.
        let parquet = dir.path().join(format!("{seed}.parquet"));
        ok!(run!("ferret-scan", &file, "--to-parquet", &parquet));
        for row in parquet_rows(&parquet) {
            let id = row["span_id"].as_str().unwrap();
            let got = row["self_time"].as_f64().unwrap();
            assert!(
                close(got, want[id]),
                "{what} parquet {id}: {got} vs {}",
                want[id]
            );
        }
        // The table, unfiltered and under a random filter of each kind.
        check_table(
            &table_json(&file, &["--sort", "self"]),
            &spans,
            |_| true,
            &what,
        );
        let cut = spans[rng.gen_range(0..spans.len())].start;
        let since = cut.to_string();
        let until = (cut + 0.3).to_string();
        let name = NAMES[rng.gen_range(0..NAMES.len())];
        let pattern = format!("^{}$", regex::escape(name));
        let filters: [(&[&str], Keep); 5] = [
            (&["--status", "error"], Box::new(|s: &Span| s.error)),
            (
                &["--name", &pattern],
                Box::new(move |s: &Span| s.name == name),
            ),
            (&["--tag", "k=a"], Box::new(|s: &Span| s.tag == "a")),
            (
                &["--since", &since],
                Box::new(move |s: &Span| s.start >= cut),
            ),
            (
                &["--until", &until],
                Box::new(move |s: &Span| s.start < cut + 0.3),
            ),
        ];
        for (args, keep) in filters {
            let table = table_json(&file, args);
            check_table(&table, &spans, keep, &format!("{what} {args:?}"));
        }
    }
}
