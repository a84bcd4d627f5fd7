//! `ferret-gen`: writes a synthetic ferret-io trace shaped like a real service's, fast enough that
//! a multi-GB trace takes seconds: call trees of depth 1-6+ with fan-out and loops, ~200 names
//! with Zipf popularity, log-normal durations nested inside their parent, ~1% errors carrying
//! ferret's error tags, some user tags, several runs, asyncio-style children that start after
//! their parent ended, and rows inserted in ferret's flush order (children first) with the
//! timestamp column = start time rounded to the microsecond. The span JSON has pydantic's shape.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Zipf};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Layout {
    /// beaver-db 1.x: `beaver_logs`, REAL timestamps.
    Beaver1,
    /// beaver-db 2.x: `__beaver_logs__`, TEXT timestamps (naive local datetimes).
    Beaver2,
    /// JSON lines in ferret's order.
    Jsonl,
}

/// Generate a ferret-io trace.
#[derive(Parser, Debug)]
#[command(name = "ferret-gen", version, about)]
struct Args {
    /// Output file (replaced if it exists).
    #[arg(short, long)]
    output: PathBuf,
    /// Spans to write (about; whole trees are written).
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Output layout.
    #[arg(long, value_enum, default_value_t = Layout::Beaver1)]
    layout: Layout,
    /// Runs (executions) the spans are spread over.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Distinct function names.
    #[arg(long, default_value_t = 200)]
    names: usize,
    /// Random seed: the same seed writes the same trace.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// One span, with start and duration in integer microseconds so timestamps never collide.
struct Span {
    id: u128,
    parent: Option<u128>,
    run: u32,
    name: usize,
    start_us: i64,
    dur_us: i64,
    error: bool,
    user_tag: Option<u32>,
}

struct Generator {
    rng: SmallRng,
    zipf: Zipf<f64>,
    leaf: LogNormal<f64>,
    next_id: u128,
    clock_us: i64,
}

impl Generator {
    fn id(&mut self) -> u128 {
        // uuid4-like: random bits, but unique by construction.
        self.next_id += 1;
        (u128::from(self.rng.gen::<u64>()) << 64) | self.next_id
    }

    fn name(&mut self, names: usize) -> usize {
        (self.zipf.sample(&mut self.rng) as usize - 1).min(names - 1)
    }

    /// Appends one request's tree to `out` in ferret's flush order (children before parents),
    /// its root starting at the generator's clock.
    fn tree(&mut self, run: u32, names: usize, out: &mut Vec<Span>) {
        let root_id = self.id();
        let start = self.clock_us;
        let mut end = start + 1;
        let mut cursor = start + 1;
        // Iterative depth-first build: (id, depth, remaining children).
        let mut post: Vec<Span> = Vec::new();
        self.children(root_id, run, names, 1, &mut cursor, &mut post);
        end = end.max(cursor) + self.leaf_us() / 4;
        // Now and then a fire-and-forget task that outlives the request.
        if self.rng.gen_bool(0.05) {
            // Mostly right after the request, sometimes seconds later (a queued task).
            let delay = if self.rng.gen_bool(0.5) {
                self.rng.gen_range(0..3_000_000)
            } else {
                self.rng.gen_range(0..500)
            };
            let late_start = end + 1 + delay;
            let dur = self.leaf_us() * 4;
            let name = self.name(names);
            let id = self.id();
            post.push(Span {
                id,
                parent: Some(root_id),
                run,
                name,
                start_us: late_start,
                dur_us: dur,
                error: false,
                user_tag: None,
            });
            cursor = cursor.max(late_start + dur);
        }
        let error = self.rng.gen_bool(0.01);
        let name = self.name(names);
        post.push(Span {
            id: root_id,
            parent: None,
            run,
            name,
            start_us: start,
            dur_us: end - start,
            error,
            user_tag: Some(self.rng.gen_range(0..1000)),
        });
        out.extend(post);
        self.clock_us = cursor.max(end) + 1 + self.rng.gen_range(0..200);
    }

    fn leaf_us(&mut self) -> i64 {
        (self.leaf.sample(&mut self.rng) as i64).clamp(1, 5_000_000)
    }

    /// Children of `parent` laid end to end from `cursor`, each with its own subtree; pushed in
    /// post-order. Iterative, with an explicit stack of pending levels.
    fn children(
        &mut self,
        parent: u128,
        run: u32,
        names: usize,
        depth: u32,
        cursor: &mut i64,
        out: &mut Vec<Span>,
    ) {
        struct Frame {
            id: u128,
            name: usize,
            start: i64,
            left: u32,
            depth: u32,
            error: bool,
        }
        let fanout = |rng: &mut SmallRng, depth: u32| {
            if depth > 6 || rng.gen_bool(0.35) {
                0
            } else {
                rng.gen_range(1..=4)
            }
        };
        let mut stack = vec![Frame {
            id: parent,
            name: 0,
            start: *cursor,
            left: fanout(&mut self.rng, depth),
            depth,
            error: false,
        }];
        while let Some(top) = stack.last_mut() {
            if top.left == 0 {
                let f = stack.pop().expect("non-empty");
                if stack.is_empty() {
                    break; // the parent itself is written by the caller
                }
                *cursor += self.leaf_us() / 8 + 1;
                out.push(Span {
                    id: f.id,
                    parent: stack.last().map(|p| p.id),
                    run,
                    name: f.name,
                    start_us: f.start,
                    dur_us: *cursor - f.start,
                    error: f.error,
                    user_tag: None,
                });
                *cursor += 1;
                continue;
            }
            top.left -= 1;
            let depth = top.depth + 1;
            // A loop: the same call repeated a few times.
            let name = self.name(names);
            let repeats = if self.rng.gen_bool(0.1) {
                self.rng.gen_range(2..6)
            } else {
                1
            };
            for r in 0..repeats {
                *cursor += 1 + self.rng.gen_range(0..20);
                let id = self.id();
                let error = self.rng.gen_bool(0.01);
                if r + 1 < repeats || depth > 6 {
                    let start = *cursor;
                    let dur = self.leaf_us();
                    *cursor += dur;
                    out.push(Span {
                        id,
                        parent: Some(stack.last().expect("non-empty").id),
                        run,
                        name,
                        start_us: start,
                        dur_us: dur,
                        error,
                        user_tag: None,
                    });
                } else {
                    let left = fanout(&mut self.rng, depth);
                    stack.push(Frame {
                        id,
                        name,
                        start: *cursor,
                        left,
                        depth,
                        error,
                    });
                    break;
                }
            }
        }
    }
}

/// Appends the span as pydantic's `model_dump_json()` writes it: fields in model order, no
/// spaces, floats in shortest round-trip form (ryu, as pydantic-core).
fn span_json(s: &Span, runs: &[String], names: &[String], out: &mut String) {
    use std::fmt::Write as _;
    let start = s.start_us as f64 / 1e6;
    let end = (s.start_us + s.dur_us) as f64 / 1e6;
    let mut f = ryu::Buffer::new();
    // Writing to a String cannot fail.
    let _ = write!(out, "{{\"span_id\":\"{:032x}\",\"parent_id\":", s.id);
    match s.parent {
        Some(p) => {
            let _ = write!(out, "\"{p:032x}\"");
        }
        None => out.push_str("null"),
    }
    let _ = write!(
        out,
        ",\"run_id\":\"{}\",\"name\":\"{}\"",
        runs[s.run as usize], names[s.name]
    );
    let _ = write!(out, ",\"start_time\":{}", f.format_finite(start));
    let _ = write!(out, ",\"end_time\":{}", f.format_finite(end));
    let _ = write!(
        out,
        ",\"duration\":{},\"tags\":{{",
        f.format_finite(end - start)
    );
    if let Some(t) = s.user_tag {
        let _ = write!(out, "\"customer\":{t}");
        if s.error {
            out.push(',');
        }
    }
    if s.error {
        out.push_str("\"error\":\"upstream timed out\",\"error_type\":\"TimeoutError\"");
    }
    let _ = write!(
        out,
        "}},\"status\":\"{}\"}}",
        if s.error { "error" } else { "ok" }
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = std::fs::remove_file(&args.output);
    let mut sink = Sink::open(&args.output, args.layout)?;
    // Three stages on their own threads: generating trees, formatting their JSON, and writing
    // (SQLite's B-trees, or a file) on this one.
    let (trees_tx, trees_rx) = crossbeam_channel::bounded::<Vec<Span>>(8);
    let (rows_tx, rows_rx) = crossbeam_channel::bounded::<Batch>(8);
    let (runs, names) = (args.runs, args.names);
    let generating = std::thread::spawn(move || generate(&args, &trees_tx));
    let formatting = std::thread::spawn(move || format_rows(runs, names, &trees_rx, &rows_tx));
    for batch in rows_rx {
        for (i, &start_us) in batch.start_us.iter().enumerate() {
            sink.write(start_us, batch.row(i))?;
        }
    }
    let panicked = |_| anyhow::anyhow!("a generator thread panicked");
    generating.join().map_err(panicked)??;
    formatting.join().map_err(panicked)?;
    sink.finish()
}

/// Rows of whole trees, in the order they are written, as JSON.
#[derive(Default)]
struct Batch {
    /// Each row's start time in microseconds (the timestamp column).
    start_us: Vec<i64>,
    /// The rows' JSON back to back; row `i` ends at `ends[i]`.
    text: String,
    ends: Vec<usize>,
}

impl Batch {
    fn row(&self, i: usize) -> &str {
        let from = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[from..self.ends[i]]
    }
}

/// Spans per batch between stages: enough to make a channel send rare.
const BATCH_SPANS: usize = 4096;

/// Generates every tree, in row order, and sends them in batches of whole trees; stops early if
/// the next stage has gone.
fn generate(args: &Args, tx: &crossbeam_channel::Sender<Vec<Span>>) -> anyhow::Result<()> {
    let mut g = Generator {
        rng: SmallRng::seed_from_u64(args.seed),
        zipf: Zipf::new(args.names as u64, 1.1).context("zipf")?,
        leaf: LogNormal::new(5.0, 1.2).context("lognormal")?,
        next_id: 0,
        clock_us: 1_795_000_000_000_000,
    };
    let per_run = args.spans.div_ceil(u64::from(args.runs));
    let mut batch = Vec::with_capacity(2 * BATCH_SPANS);
    for run in 0..args.runs {
        let mut written = 0;
        while written < per_run {
            let first = batch.len();
            g.tree(run, args.names, &mut batch);
            written += (batch.len() - first) as u64;
            if args.layout == Layout::Jsonl {
                // Trees never overlap in time: sorting one tree puts the lines in ferret's order.
                batch[first..].sort_by_key(|s| s.start_us);
            }
            if batch.len() >= BATCH_SPANS && tx.send(std::mem::take(&mut batch)).is_err() {
                return Ok(());
            }
        }
    }
    let _ = tx.send(batch);
    Ok(())
}

/// Formats batches of spans as pydantic's JSON, in order.
fn format_rows(
    runs: u32,
    names: usize,
    rx: &crossbeam_channel::Receiver<Vec<Span>>,
    tx: &crossbeam_channel::Sender<Batch>,
) {
    let names: Vec<String> = (0..names)
        .map(|i| {
            [
                "handle", "query", "fetch", "render", "parse", "load", "send", "auth",
            ][i % 8]
                .to_string()
                + &format!("_{i}")
        })
        .collect();
    let runs: Vec<String> = (0..runs)
        .map(|r| format!("{:032x}", 0x5eed_0000u128 + u128::from(r)))
        .collect();
    for spans in rx {
        let mut batch = Batch::default();
        for s in &spans {
            span_json(s, &runs, &names, &mut batch.text);
            batch.ends.push(batch.text.len());
            batch.start_us.push(s.start_us);
        }
        if tx.send(batch).is_err() {
            return;
        }
    }
}

/// Where spans go: a SQLite table in one transaction, or JSON lines.
enum Sink {
    Sqlite(rusqlite::Connection, Layout, PendingRows),
    Lines(BufWriter<std::fs::File>),
}

/// Rows waiting for one multi-row `INSERT`: a statement per row spent more in SQLite's
/// per-statement work (reset, bind, the VDBE program's setup) than in the B-trees.
#[derive(Default)]
struct PendingRows {
    timestamps: Vec<rusqlite::types::Value>,
    texts: String,
    ends: Vec<usize>,
}

/// Rows per `INSERT` statement (SQLite allows 32,766 parameters).
const ROWS_PER_INSERT: usize = 256;

impl PendingRows {
    fn push(&mut self, timestamp: rusqlite::types::Value, json: &str) {
        self.timestamps.push(timestamp);
        self.texts.push_str(json);
        self.ends.push(self.texts.len());
    }

    /// Inserts the pending rows into `table` and clears them.
    fn insert(&mut self, db: &rusqlite::Connection, table: &str) -> rusqlite::Result<()> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let values = vec!["('_ferret_trace', ?, ?)"; self.ends.len()].join(", ");
        let mut stmt = db.prepare_cached(&format!("INSERT INTO {table} VALUES {values}"))?;
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        let texts: Vec<&str> = starts
            .zip(&self.ends)
            .map(|(a, &b)| &self.texts[a..b])
            .collect();
        let params = self
            .timestamps
            .iter()
            .zip(&texts)
            .flat_map(|(t, j)| [t as &dyn rusqlite::ToSql, j as &dyn rusqlite::ToSql]);
        stmt.execute(rusqlite::params_from_iter(params))?;
        self.timestamps.clear();
        self.texts.clear();
        self.ends.clear();
        Ok(())
    }
}

impl Sink {
    fn open(path: &std::path::Path, layout: Layout) -> anyhow::Result<Sink> {
        if layout == Layout::Jsonl {
            let f = std::fs::File::create(path).with_context(|| path.display().to_string())?;
            return Ok(Sink::Lines(BufWriter::with_capacity(1 << 20, f)));
        }
        let db = rusqlite::Connection::open(path)?;
        db.execute_batch(&format!(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144; PRAGMA locking_mode=EXCLUSIVE;
             CREATE TABLE {} (log_name TEXT NOT NULL, timestamp REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (log_name, timestamp));
             BEGIN;",
            table(layout)
        ))?;
        Ok(Sink::Sqlite(db, layout, PendingRows::default()))
    }

    fn write(&mut self, start_us: i64, json: &str) -> anyhow::Result<()> {
        match self {
            Sink::Sqlite(db, layout, pending) => {
                let timestamp = if *layout == Layout::Beaver1 {
                    rusqlite::types::Value::Real(start_us as f64 / 1e6)
                } else {
                    rusqlite::types::Value::Text(text_timestamp(start_us))
                };
                pending.push(timestamp, json);
                if pending.ends.len() == ROWS_PER_INSERT {
                    pending.insert(db, table(*layout))?;
                }
            }
            Sink::Lines(w) => writeln!(w, "{json}")?,
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            // BeaverDB's second index, built once at the end rather than row by row.
            Sink::Sqlite(db, layout, mut pending) => {
                pending.insert(&db, table(layout))?;
                db.execute_batch(&format!(
                    "COMMIT; CREATE INDEX idx_logs_timestamp ON {} (log_name, timestamp);",
                    table(layout)
                ))?
            }
            Sink::Lines(mut w) => w.flush()?,
        }
        Ok(())
    }
}

/// The log table of a BeaverDB layout.
fn table(layout: Layout) -> &'static str {
    if layout == Layout::Beaver1 {
        "beaver_logs"
    } else {
        "__beaver_logs__"
    }
}

/// A naive local datetime as Python's `str(datetime)` prints it (no fraction when it is zero).
fn text_timestamp(us: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(us)
        .expect("in range")
        .with_timezone(&chrono::Local);
    if us % 1_000_000 == 0 {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}
