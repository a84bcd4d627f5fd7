//! The conversion: source thread, parse thread, and linking and writing on the calling thread,
//! with a commit every [`ConvertOptions::commit_every`] spans.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytemuck::Zeroable;
use crossbeam_channel::bounded;
use ferret_format::{
    FormatError, LastTimestamp, OutputFile, Replacement, RowidMark, SpanExtras, SpanFileWriter,
    SpanRecord, Watermark, WhenLocked, FLAG_CUSTOM_STATUS, FLAG_ERROR, FLAG_HASHED_ID,
    FLAG_HAS_PARENT_ID, FLAG_NULL_DURATION, MAGIC,
};

use crate::error::ConvertError;
use crate::link::{LinkError, LinkStats, Linker, PendingBatch};
use crate::source::{
    self, open_beaver, read_json_lines, InputBytes, LinesDone, Locator, RowBatch, SourceKind,
};
use crate::span::{field, parse_span, ParsedSpan};

/// What to convert and how.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// A BeaverDB file, a JSON lines file, or `-` for JSON lines on stdin.
    pub input: PathBuf,
    /// The record file to write.
    pub output: PathBuf,
    /// The BeaverDB namespace (`log_name`).
    pub namespace: String,
    /// Add only rows newer than the output's watermark.
    pub append: bool,
    /// Replace an existing ferret output.
    pub force: bool,
    /// Wait for another writer of the output to finish instead of stopping.
    pub wait: bool,
    /// Stop at the first bad row and leave the output as it was.
    pub strict: bool,
    /// Spans per commit: bounds memory (64 bytes a span plus tags) and what a crash can lose.
    pub commit_every: usize,
    /// Count the rows first, for a progress bar's total (costs one index scan up front).
    pub count_rows: bool,
    /// With `append`: when the output no longer matches its source (replaced or cut, another
    /// namespace or kind, an old format version, damage, never committed to), write a new one
    /// under the same lock instead of failing ([`Summary::rebuilt`] says why). For sidecars.
    pub rebuild_stale: bool,
    /// The permission bits of an output this conversion creates or replaces (a sidecar takes
    /// its trace's); `None`: a new file's default, a replaced file's own.
    pub mode: Option<u32>,
    /// Refuse an output owned by another user or with more than one name (a sidecar, which
    /// lives where others may write).
    pub trusted_only: bool,
}

impl ConvertOptions {
    /// Options with the defaults of the command line.
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> ConvertOptions {
        ConvertOptions {
            input: input.into(),
            output: output.into(),
            namespace: "_ferret_trace".into(),
            append: false,
            force: false,
            wait: false,
            strict: false,
            commit_every: 1 << 18,
            count_rows: false,
            rebuild_stale: false,
            mode: None,
            trusted_only: false,
        }
    }
}

/// A row that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    /// `rowid N` or `line N`.
    pub row: String,
    /// What was wrong.
    pub reason: String,
}

/// How many bad rows are kept for the report (all are counted).
pub const BAD_ROWS_KEPT: usize = 5;

/// Batches each channel of the pipeline holds.
const PIPELINE_BATCHES: usize = 16;

/// What a conversion did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Rows the source was expected to yield (0 when not counted, or JSON lines).
    pub rows_expected: u64,
    /// Rows read.
    pub rows_read: u64,
    /// Spans written.
    pub spans_written: u64,
    /// Rows skipped as bad.
    pub rows_skipped: u64,
    /// The first few bad rows.
    pub bad_rows: Vec<BadRow>,
    /// Distinct runs among the spans written.
    pub runs: usize,
    /// Distinct names in the file.
    pub names: usize,
    /// Commits made.
    pub commits: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Linking counters.
    pub link: LinkStats,
    /// Warnings worth a line each.
    pub warnings: Vec<String>,
    /// Why the output was made anew, when it was ([`ConvertOptions::rebuild_stale`]).
    pub rebuilt: Option<String>,
}

impl Summary {
    /// Spans written per second.
    pub fn spans_per_second(&self) -> f64 {
        self.spans_written as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A batch of parsed spans: their text fields live in `strings`.
struct ParsedBatch {
    strings: String,
    spans: Vec<(Locator, Result<ParsedSpan, String>)>,
    last: LastTimestamp,
    rowids: RowidMark,
    bytes: InputBytes,
}

/// Parses every row of a batch.
fn parse_batch(batch: RowBatch) -> ParsedBatch {
    let mut strings = String::with_capacity(batch.text.len() / 2);
    let spans = batch
        .rows
        .into_iter()
        .map(|(locator, data)| {
            let span = data
                .and_then(|range| utf8(&batch.text[range], locator))
                .and_then(|json| parse_span(json, &mut strings));
            (locator, span)
        })
        .collect();
    ParsedBatch {
        strings,
        spans,
        last: batch.last,
        rowids: batch.rowids,
        bytes: batch.bytes,
    }
}

/// A row's text as UTF-8, or why it is not. simdutf8 checks (std's check was 6% of a
/// conversion's CPU, simdutf8's SIMD one a fraction of that); std explains a failure.
fn utf8(bytes: &[u8], locator: Locator) -> Result<&str, String> {
    if let Ok(text) = simdutf8::basic::from_utf8(bytes) {
        return Ok(text);
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let what = match locator {
            Locator::RowId(_) => "data",
            Locator::Line(_) => "line",
        };
        format!("{what} is not UTF-8 ({e})")
    })
}

fn fmt_err(path: &Path) -> impl Fn(FormatError) -> ConvertError + '_ {
    move |source| ConvertError::Format {
        path: path.to_path_buf(),
        source,
    }
}

/// Converts `opts.input` into `opts.output`. `progress` is called after each batch with the
/// rows read so far and the rows expected (0 when unknown).
///
/// The output is locked first (waiting for another writer with `--wait`), and everything after
/// is decided from what it holds under the lock: a writer that waited appends to what the other
/// wrote, or refuses to replace it without `--force`. Only the magic decides what a file is: an
/// empty one has nothing to lose and is written in place, anything else that does not start
/// with ferret's magic (however short) is someone else's and never overwritten. A ferret file is
/// appended to (only past its committed bytes), or replaced by a new file renamed over it once
/// complete (`--force`, or a sidecar that no longer matches its source): readers keep the file
/// they opened, and a failure leaves it as it was.
pub fn convert(
    opts: &ConvertOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, ConvertError> {
    let started = Instant::now();
    let kind = source::detect(&opts.input)?;
    let path = &opts.output;
    let when = if opts.wait {
        WhenLocked::Wait
    } else {
        WhenLocked::Fail
    };
    let out = OutputFile::lock(path, when).map_err(fmt_err(path))?;
    // A replacement a killed writer left is garbage now that we hold the lock.
    Replacement::remove_stale(path).map_err(fmt_err(path))?;
    if opts.trusted_only {
        check_trusted(&out)?;
    }
    // Only these bytes are read: an existing output can be gigabytes.
    let head = out.head(MAGIC.len()).map_err(fmt_err(path))?;
    let mut summary = match (!head.is_empty()).then(|| head.starts_with(&MAGIC)) {
        Some(false) => return Err(ConvertError::OutputNotFerret(path.clone())),
        None => convert_fresh(opts, kind, out, progress)?,
        Some(true) if opts.append => match convert_append(opts, kind, &out, progress) {
            Err(e) if opts.rebuild_stale => {
                let Some(why) = stale(&e) else {
                    return Err(e);
                };
                let mut made = convert_replacing(opts, kind, &out, progress)?;
                made.rebuilt = Some(why);
                made
            }
            done => done?,
        },
        Some(true) if opts.force => convert_replacing(opts, kind, &out, progress)?,
        Some(true) => return Err(ConvertError::OutputExists(path.clone())),
    };
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// A conversion into the file just locked, empty (it did not exist, or held nothing): written
/// in place, and removed (under the lock) when the conversion fails.
fn convert_fresh(
    opts: &ConvertOptions,
    kind: SourceKind,
    out: OutputFile,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, ConvertError> {
    let path = &opts.output;
    if let Some(mode) = opts.mode {
        out.set_mode(mode).map_err(fmt_err(path))?;
    }
    let writer = SpanFileWriter::create_in(&out).map_err(fmt_err(path))?;
    run_and_finish(opts, kind, writer, progress, |writer| {
        drop(writer.abandon());
        out.remove().map_err(fmt_err(path))
    })
}

/// Runs the conversion into `writer` and finishes it (its last commit made durable, or its
/// replacement renamed into place); on failure, hands the writer to `undo` first.
fn run_and_finish(
    opts: &ConvertOptions,
    kind: SourceKind,
    mut writer: SpanFileWriter,
    progress: &mut dyn FnMut(u64, u64),
    undo: impl FnOnce(SpanFileWriter) -> Result<(), ConvertError>,
) -> Result<Summary, ConvertError> {
    match run(opts, kind, &mut writer, progress) {
        Ok(summary) => {
            writer.finish().map_err(fmt_err(&opts.output))?;
            Ok(summary)
        }
        Err(e) => {
            undo(writer)?;
            Err(e)
        }
    }
}

/// A conversion appending to the locked ferret file `out`: only past its committed bytes. On
/// failure, what earlier commits of this run added stays, unless `--strict`: then they are
/// undone (a new file holding the state before, renamed over it).
fn convert_append(
    opts: &ConvertOptions,
    kind: SourceKind,
    out: &OutputFile,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, ConvertError> {
    let path = &opts.output;
    let writer = SpanFileWriter::append_to(out).map_err(fmt_err(path))?;
    if opts.rebuild_stale && writer.committed_sequence() == 0 {
        // A ferret file never committed to: made by a conversion killed at once, or not by us.
        return Err(ConvertError::NeverCommitted(path.clone()));
    }
    let fell_back = writer.fallback().map(|f| {
        format!(
            "{}: the last commit ({} spans) failed its checks ({}); appended from the commit before it, adding those spans again",
            path.display(),
            f.lost_records,
            f.reason
        )
    });
    let mut summary = run_and_finish(opts, kind, writer, progress, |writer| match opts.strict {
        true => writer.abandon().map_err(fmt_err(path)),
        // What earlier commits of this run added stays.
        false => Ok(()),
    })?;
    summary.warnings.splice(0..0, fell_back);
    Ok(summary)
}

/// A conversion into a new file beside the locked `out`, renamed over it once complete; a
/// failure removes the new file and leaves `out` as it was.
fn convert_replacing(
    opts: &ConvertOptions,
    kind: SourceKind,
    out: &OutputFile,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, ConvertError> {
    let path = &opts.output;
    let mode = match opts.mode {
        Some(mode) => mode,
        None => out.metadata().map_err(fmt_err(path))?.permissions().mode(),
    };
    let writer = SpanFileWriter::replace(out, mode).map_err(fmt_err(path))?;
    // A writer dropped unfinished discards its replacement.
    run_and_finish(opts, kind, writer, progress, |_| Ok(()))
}

/// Refuses an output this process must not trust as its own (a sidecar): owned by another
/// user, or with other names (a hard link planted to make us write into another file).
fn check_trusted(out: &OutputFile) -> Result<(), ConvertError> {
    let meta = out.metadata().map_err(fmt_err(out.path()))?;
    let me = rustix::process::geteuid().as_raw();
    let why = if meta.uid() != me {
        format!("it belongs to user {}, not to this one ({me})", meta.uid())
    } else if meta.nlink() > 1 {
        format!("it has {} names (hard links), not one", meta.nlink())
    } else {
        return Ok(());
    };
    Err(ConvertError::UntrustedOutput {
        path: out.path().to_path_buf(),
        why,
    })
}

/// Why an output must be made anew, when `e` says it no longer matches its source: the source
/// was replaced or cut, the output is of another namespace, source kind or format version, was
/// never committed to, or is damaged.
pub fn stale(e: &ConvertError) -> Option<String> {
    let why = match e {
        ConvertError::SourceRewritten { what, .. } => {
            format!("its source was replaced, vacuumed or shrank ({what})")
        }
        ConvertError::NamespaceMismatch { have, .. } => format!("it holds namespace {have:?}"),
        ConvertError::WatermarkKind(_) => "it was made from another kind of source".into(),
        ConvertError::NeverCommitted(_) => "it was never committed to".into(),
        ConvertError::Format { source, .. } => match source {
            FormatError::AppendToOlder { found }
            | FormatError::OlderVersion { found, .. }
            | FormatError::NewerVersion { found, .. } => {
                format!("it is of format version {found}")
            }
            FormatError::Io { .. } | FormatError::Locked { .. } => return None,
            FormatError::SymlinkOutput { .. } => return None,
            damage => format!("it is damaged ({})", damage.brief()),
        },
        _ => return None,
    };
    Some(why)
}

fn source_identity(input: &Path) -> String {
    if input == Path::new("-") {
        return "-".into();
    }
    std::fs::canonicalize(input)
        .unwrap_or_else(|_| input.to_path_buf())
        .display()
        .to_string()
}

fn run(
    opts: &ConvertOptions,
    kind: SourceKind,
    writer: &mut SpanFileWriter,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, ConvertError> {
    let mut summary = Summary::default();
    let identity = source_identity(&opts.input);
    let (after, rowids) = resume_point(opts, kind, writer, &identity, &mut summary)?;
    let mut linker = match writer.committed() {
        Some(file) if opts.append => Linker::for_append(file),
        _ => Linker::default(),
    };
    // Deep enough (2 x 64k rows, ~30 MB) that reading and parsing go on through a commit's
    // fdatasync (~30 ms here): with 4 batches each they stalled, 10% of the wall time.
    let (row_tx, row_rx) = bounded(PIPELINE_BATCHES);
    let (span_tx, span_rx) = bounded::<ParsedBatch>(PIPELINE_BATCHES);
    let reader = match kind {
        SourceKind::JsonLines => {
            let done = LinesDone {
                lines: match after {
                    LastTimestamp::Line(n) => n,
                    _ => 0,
                },
                mark: rowids,
            };
            let input = opts.input.clone();
            spawn("ferret-read", move || read_json_lines(&input, done, row_tx))
        }
        _ => {
            let src = open_beaver(
                &opts.input,
                kind,
                &opts.namespace,
                after.clone(),
                rowids,
                opts.count_rows,
            )?;
            summary.rows_expected = src.rows;
            spawn("ferret-read", move || {
                src.stream(row_tx);
                None
            })
        }
    };
    let parser = spawn("ferret-parse", move || {
        for batch in row_rx {
            if span_tx.send(parse_batch(batch?)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    });
    let mut state = WriteState {
        writer,
        linker: &mut linker,
        summary: &mut summary,
        runs: Vec::new(),
        last: after,
        rowids,
        opts,
        identity,
    };
    let written = state.consume(span_rx, progress);
    let parse_result = parser.join().map_err(|_| ConvertError::ReaderGone)?;
    let note = reader.join().ok().flatten();
    written?;
    parse_result?;
    state.commit(true)?;
    let runs = state.runs.iter().filter(|&&seen| seen).count();
    summary.warnings.extend(note);
    summary.runs = runs;
    summary.names = writer.name_count();
    summary.link = linker.stats().clone();
    Ok(summary)
}

/// Spawns a named thread (names show in `top -H` and profiles).
fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("the OS starts a thread")
}

/// Where this run starts: nothing for a new file, the watermark for `--append` (checked against
/// this source).
fn resume_point(
    opts: &ConvertOptions,
    kind: SourceKind,
    writer: &SpanFileWriter,
    identity: &str,
    summary: &mut Summary,
) -> Result<(LastTimestamp, RowidMark), ConvertError> {
    let Some(wm) = writer.watermark().filter(|_| opts.append) else {
        return Ok((LastTimestamp::None, RowidMark::default()));
    };
    if wm.namespace != opts.namespace && kind != SourceKind::JsonLines {
        return Err(ConvertError::NamespaceMismatch {
            path: opts.output.clone(),
            have: wm.namespace,
            want: opts.namespace.clone(),
        });
    }
    // A JSON lines watermark always names a line; a database's, after a conversion ends, names
    // no timestamp but its rowids: only a watermark of nothing at all fits either.
    let nothing = wm.last == LastTimestamp::None && wm.rowids == RowidMark::default();
    let fits = match (&wm.last, kind) {
        (LastTimestamp::Line(_), SourceKind::JsonLines) => true,
        (LastTimestamp::Line(_), _) | (_, SourceKind::JsonLines) => nothing,
        _ => true,
    };
    if !fits {
        return Err(ConvertError::WatermarkKind(opts.output.clone()));
    }
    if wm.source != identity {
        summary.warnings.push(format!(
            "appending from {identity}, but the file was converted from {}",
            wm.source
        ));
    }
    Ok((wm.last, wm.rowids))
}

struct WriteState<'a> {
    writer: &'a mut SpanFileWriter,
    linker: &'a mut Linker,
    summary: &'a mut Summary,
    /// Which run string ids have spans (dense: no hashing per span).
    runs: Vec<bool>,
    last: LastTimestamp,
    rowids: RowidMark,
    opts: &'a ConvertOptions,
    identity: String,
}

impl WriteState<'_> {
    fn consume(
        &mut self,
        rx: crossbeam_channel::Receiver<ParsedBatch>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), ConvertError> {
        for batch in rx {
            for (locator, parsed) in batch.spans {
                self.summary.rows_read += 1;
                let outcome = parsed.and_then(|span| self.write_span(&span, &batch.strings));
                if let Err(reason) = outcome {
                    self.bad_row(locator, reason)?;
                }
            }
            // Commits fall on batch boundaries, where the watermark is known.
            self.last = batch.last;
            self.rowids = batch.rowids;
            if self.writer.pending_len() >= self.opts.commit_every
                || self.writer.pending_tag_bytes() >= 256 << 20
            {
                self.commit(false)?;
            }
            let expected = batch.bytes.estimate_rows(self.summary.rows_read);
            progress(
                self.summary.rows_read,
                expected.unwrap_or(self.summary.rows_expected),
            );
        }
        Ok(())
    }

    fn bad_row(&mut self, locator: Locator, reason: String) -> Result<(), ConvertError> {
        if self.opts.strict {
            return Err(ConvertError::StrictBadRow {
                path: self.opts.input.clone(),
                row: locator.to_string(),
                reason,
            });
        }
        self.summary.rows_skipped += 1;
        if self.summary.bad_rows.len() < crate::pipeline::BAD_ROWS_KEPT {
            self.summary.bad_rows.push(BadRow {
                row: locator.to_string(),
                reason,
            });
        }
        Ok(())
    }

    fn write_span(&mut self, span: &ParsedSpan, strings: &str) -> Result<(), String> {
        let w = &mut *self.writer;
        let text = |r: &std::ops::Range<u32>| field(strings, r);
        let status_text = text(&span.status);
        let mut rec = SpanRecord::zeroed();
        rec.span_id = span.span_id.0;
        rec.start_time = span.start_time;
        rec.duration = span.duration.unwrap_or(0.0);
        rec.name = w.intern_name(text(&span.name));
        rec.run = w.intern_string(text(&span.run_id));
        let mut flags = 0;
        if span.duration.is_none() {
            flags |= FLAG_NULL_DURATION;
        }
        if span.original_id.is_some() {
            flags |= FLAG_HASHED_ID;
        }
        if span.parent_id.is_some() {
            flags |= FLAG_HAS_PARENT_ID;
        }
        let mut status = None;
        if status_text != "ok" {
            flags |= FLAG_ERROR;
            if status_text != "error" {
                flags |= FLAG_CUSTOM_STATUS;
                status = Some(w.intern_string(status_text));
            }
        }
        rec.set_flags(flags);
        let end = span.start_time + span.duration.unwrap_or(f64::INFINITY);
        let index = w.next_index();
        let (records, first, committed) = w.pending_with_mapped();
        self.linker
            .link(
                span.span_id,
                span.parent_id,
                end,
                &mut rec,
                index,
                PendingBatch {
                    records,
                    first,
                    committed,
                },
            )
            .map_err(|LinkError::Duplicate| {
                format!(
                    "span_id {} repeats a span written shortly before",
                    span.span_id.to_hex()
                )
            })?;
        let extras = SpanExtras {
            tags: text(&span.tags).as_bytes(),
            status,
            original_id: span.original_id.as_ref().map_or("", text).as_bytes(),
        };
        w.push(rec, &extras).map_err(|e| e.to_string())?;
        let run = rec.run as usize;
        if run >= self.runs.len() {
            self.runs.resize(run + 1, false);
        }
        self.runs[run] = true;
        self.summary.spans_written += 1;
        Ok(())
    }

    fn commit(&mut self, complete: bool) -> Result<(), ConvertError> {
        let out = self.opts.output.clone();
        let (records, first, committed) = self
            .writer
            .pending_with_committed()
            .map_err(fmt_err(&out))?;
        let links = self.linker.before_commit(PendingBatch {
            records,
            first,
            committed,
        });
        for adoption in links.adoptions {
            self.writer.push_adoption(adoption);
        }
        self.writer.set_orphans(links.orphans);
        let wm = Watermark {
            source: self.identity.clone(),
            namespace: self.opts.namespace.clone(),
            last: self.last.clone(),
            rowids: self.rowids,
        };
        self.writer.set_watermark(&wm).map_err(fmt_err(&out))?;
        // The last commit is waited for; the others finish while the next segment fills.
        if complete {
            self.writer.commit(true)
        } else {
            self.writer.commit_in_background(false)
        }
        .map_err(fmt_err(&out))?;
        self.summary.commits += 1;
        Ok(())
    }
}
