//! Linking beyond the window: parents that left the window long ago (found by the backward scan
//! over committed segments), parents in other runs, parents never written, parents arriving
//! after their children (in the same commit, in a later one, in a later `--append`), and
//! cycles, checked against ferret's rule applied to the whole trace, in any arrival order.

use std::collections::HashMap;
use std::path::Path;

use ferret_convert::{convert, ConvertOptions};
use ferret_format::SpanFile;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone)]
struct Span {
    id: String,
    parent: Option<String>,
    run: &'static str,
    start: f64,
}

fn id(i: u64) -> String {
    format!("{:032x}", 0xabc0_0000_0000_0000u64 + i)
}

/// 3,000 spans at 100 per second of trace time: a parent 500 spans back ended ~5 s before its
/// child starts, far outside the 1 s window margin.
fn trace(seed: u64) -> Vec<Span> {
    trace_of(seed, 3000)
}

/// `n` spans as [`trace`] makes them. Commits fall on the reader's batches of 4,096 rows, so a
/// trace that must cross commits needs more than that.
fn trace_of(seed: u64, n: u64) -> Vec<Span> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let run = if rng.below(10) == 0 { "b" } else { "a" };
            let parent = match rng.below(20) {
                0..=9 if i > 20 => Some(id(i - 1 - rng.below(20))),
                10..=12 if i > 600 => Some(id(i - 400 - rng.below(200))),
                13 => Some(format!("{:032x}", 0xdead_0000u64 + i)), // never written
                14 => Some(String::new()),                          // empty: a root for ferret
                _ => None,
            };
            Span {
                id: id(i),
                parent,
                run,
                start: 1.7e9 + i as f64 * 0.01,
            }
        })
        .collect()
}

fn jsonl(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| {
            let parent = s.parent.as_ref().map_or("null".to_string(), |p| format!("\"{p}\""));
            format!(
                "{{\"span_id\":\"{}\",\"parent_id\":{parent},\"run_id\":\"{}\",\"name\":\"n{}\",\"start_time\":{},\"end_time\":{},\"duration\":0.005,\"tags\":{{}},\"status\":\"ok\"}}\n",
                s.id,
                s.run,
                s.id.as_bytes()[31] % 3,
                s.start,
                s.start + 0.005
            )
        })
        .collect()
}

/// ferret's rule: a span's parent is the span with its parent_id in the same run, if any.
fn oracle(spans: &[Span]) -> Vec<Option<usize>> {
    let by_id: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    spans
        .iter()
        .map(|s| {
            let p = *by_id.get(s.parent.as_deref()?)?;
            (spans[p].run == s.run).then_some(p)
        })
        .collect()
}

fn convert_lines(dir: &Path, text: &str, commit_every: usize) -> SpanFile<memmap2::Mmap> {
    convert_in_parts(dir, text, commit_every, &[])
}

/// Converts `text` as JSON lines, first its lines before each cut of `cuts` (the file as it
/// stood then), each further part with `--append`, as a live trace is converted.
fn convert_in_parts(
    dir: &Path,
    text: &str,
    commit_every: usize,
    cuts: &[usize],
) -> SpanFile<memmap2::Mmap> {
    let input = dir.join("in.jsonl");
    let output = dir.join("out.ferret");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let ends = cuts.iter().copied().chain([lines.len()]);
    for (part, end) in ends.enumerate() {
        std::fs::write(&input, lines[..end].concat()).unwrap();
        let mut opts = ConvertOptions::new(&input, &output);
        opts.commit_every = commit_every;
        opts.force = part == 0;
        opts.append = part > 0;
        let summary = convert(&opts, &mut |_, _| {}).unwrap();
        assert_eq!(summary.rows_skipped, 0, "{:?}", summary.bad_rows);
    }
    SpanFile::open(&output).unwrap()
}

/// Checks every record's parent, root and parent name (through the file's adoptions) against
/// ferret's links `want`, by record index.
fn check(file: &SpanFile<memmap2::Mmap>, want: &[Option<usize>]) {
    file.verify().unwrap();
    for (i, w) in want.iter().enumerate() {
        let index = i as u64;
        let r = file.record(index).unwrap();
        assert_eq!(
            file.parent_of(index, r),
            w.map(|p| p as u64),
            "parent of record {i}"
        );
        let mut top = i;
        while let Some(p) = want[top] {
            top = p;
        }
        assert_eq!(file.root_of(r), top as u64, "root of record {i}");
        let parent_name = file.links().parent_name_of(index, r);
        match w {
            Some(p) => assert_eq!(parent_name, file.record(*p as u64).unwrap().name),
            None => assert_eq!(parent_name, ferret_format::NONE_NAME),
        }
    }
}

/// `spans` in the order ferret-io writes them: each span when it ends, so a parent after its
/// children. Here a span ends after every span that follows it in start order within its
/// subtree, so write order puts each subtree before its root.
fn write_order(spans: Vec<Span>, rng: &mut Rng) -> Vec<Span> {
    let mut spans = spans;
    // Reversed start order is an extreme write order (every parent after all its children);
    // swapping neighbours now and then mixes in the interleaving of concurrent tasks.
    spans.reverse();
    for i in 1..spans.len() {
        if rng.below(4) == 0 {
            spans.swap(i - 1, i);
        }
    }
    spans
}

fn shuffled(mut spans: Vec<Span>, rng: &mut Rng) -> Vec<Span> {
    for i in (1..spans.len()).rev() {
        spans.swap(i, rng.below(i as u64 + 1) as usize);
    }
    spans
}

#[test]
fn links_far_beyond_the_window_are_exact_whatever_the_commit_size() {
    for (seed, commit_every) in [(1, 7), (2, 100), (3, 1 << 18)] {
        let spans = trace(seed);
        let want = oracle(&spans);
        let far = want
            .iter()
            .enumerate()
            .filter(|(i, p)| p.is_some_and(|p| i - p >= 400))
            .count();
        assert!(
            far > 50,
            "the trace must exercise the miss scan ({far} far links)"
        );
        let dir = tempfile::tempdir().unwrap();
        check(
            &convert_lines(dir.path(), &jsonl(&spans), commit_every),
            &want,
        );
    }
}

#[test]
fn a_parent_that_arrives_after_its_child_is_linked_within_a_commit() {
    // A clock stepped back: the child's line (and start) precede its parent's.
    let span = |i, parent: Option<u64>, start| Span {
        id: id(i),
        parent: parent.map(id),
        run: "a",
        start,
    };
    let spans = vec![
        span(1, Some(2), 10.0),
        span(3, Some(1), 10.5),
        span(2, None, 11.0),
        span(4, Some(2), 11.2),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = convert_lines(dir.path(), &jsonl(&spans), 1 << 18);
    assert_eq!(file.record(0).unwrap().parent(), Some(2));
    assert_eq!(
        file.record(1).unwrap().root_index(),
        2,
        "the subtree moved under the late parent"
    );
    assert_eq!(file.record(3).unwrap().parent(), Some(2));
}

#[test]
fn a_parent_cycle_terminates_and_leaves_a_root() {
    let span = |i, parent, start| Span {
        id: id(i),
        parent: Some(id(parent)),
        run: "a",
        start,
    };
    let spans = vec![span(1, 2, 1.0), span(2, 1, 2.0)];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cycle.jsonl");
    std::fs::write(&input, jsonl(&spans)).unwrap();
    let mut opts = ConvertOptions::new(&input, dir.path().join("c.ferret"));
    opts.force = true;
    let summary = convert(&opts, &mut |_, _| {}).unwrap();
    assert_eq!(summary.link.cycles, 1);
    let file = SpanFile::open(&dir.path().join("c.ferret")).unwrap();
    let roots = (0..2)
        .filter(|&i| file.record(i).unwrap().is_root())
        .count();
    assert_eq!(roots, 1);
    file.verify().unwrap();
}

#[test]
fn links_are_exact_in_write_order_and_shuffled_whatever_the_commit_size() {
    for (seed, commit_every) in [(4, 7), (5, 100), (6, 1 << 18)] {
        let mut rng = Rng(seed * 7919);
        for spans in [
            write_order(trace_of(seed, 20_000), &mut rng),
            shuffled(trace_of(seed, 20_000), &mut rng),
        ] {
            let want = oracle(&spans);
            let dir = tempfile::tempdir().unwrap();
            check(
                &convert_lines(dir.path(), &jsonl(&spans), commit_every),
                &want,
            );
        }
    }
}

#[test]
fn appends_in_write_order_adopt_what_earlier_conversions_left_waiting() {
    for (seed, commit_every) in [(7, 50), (8, 1 << 18)] {
        let mut rng = Rng(seed * 104_729);
        let spans = write_order(trace(seed), &mut rng);
        let want = oracle(&spans);
        let dir = tempfile::tempdir().unwrap();
        let file = convert_in_parts(dir.path(), &jsonl(&spans), commit_every, &[700, 1500, 2999]);
        check(&file, &want);
        let adopted = file.links().len();
        assert!(
            adopted > 10,
            "the cuts must leave children waiting ({adopted} adopted)"
        );
    }
}

#[test]
fn a_task_that_outlives_its_parent_links_to_it_across_an_append() {
    // The parent ended (and was converted) before its fire-and-forget task ended: the task
    // arrives in a later conversion and must find its parent in the file.
    let span = |i, parent: Option<u64>, start| Span {
        id: id(i),
        parent: parent.map(id),
        run: "a",
        start,
    };
    let mut spans = vec![span(1, None, 10.0), span(2, Some(1), 10.1)];
    spans.extend((3..5000).map(|i| span(i, None, 20.0 + i as f64)));
    spans.push(span(9999, Some(2), 10.2));
    let want = oracle(&spans);
    let dir = tempfile::tempdir().unwrap();
    let cut = spans.len() - 1;
    check(
        &convert_in_parts(dir.path(), &jsonl(&spans), 1000, &[cut]),
        &want,
    );
}

#[test]
fn deep_chains_link_in_either_order() {
    // One chain 20,000 deep: record i's parent is record i - 1 in start order.
    let chain: Vec<Span> = (0..20_000u64)
        .map(|i| Span {
            id: id(i),
            parent: i.checked_sub(1).map(id),
            run: "a",
            start: 1.7e9 + i as f64 * 1e-4,
        })
        .collect();
    let mut reversed = chain.clone();
    reversed.reverse();
    for (spans, commit_every) in [(chain, 1 << 18), (reversed, 3000)] {
        let want = oracle(&spans);
        let dir = tempfile::tempdir().unwrap();
        check(
            &convert_lines(dir.path(), &jsonl(&spans), commit_every),
            &want,
        );
    }
}
