//! Sources of spans: BeaverDB files of either layout and JSON lines, read on a thread of their own
//! into batches of raw rows, in ferret's order.

mod index_walk;
mod jsonl;
mod pages;
mod sqlite;

use std::io::Read;
use std::path::Path;

use crossbeam_channel::Sender;
use ferret_format::{LastTimestamp, RowidMark};

use crate::error::ConvertError;

pub use sqlite::{open_beaver, BeaverSource};

/// What kind of input a path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// beaver-db 1.x: `beaver_logs`, REAL timestamps.
    Beaver1,
    /// beaver-db 2.x: `__beaver_logs__`, TEXT timestamps.
    Beaver2,
    /// One span JSON object per line.
    JsonLines,
}

/// Where a row came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locator {
    /// A SQLite rowid.
    RowId(i64),
    /// A 1-based line number.
    Line(u64),
}

impl std::fmt::Display for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Locator::RowId(r) => write!(f, "rowid {r}"),
            Locator::Line(l) => write!(f, "line {l}"),
        }
    }
}

/// A row's text range in its batch, or why it has none.
pub type RowText = Result<std::ops::Range<usize>, String>;

/// A batch of rows as read: their JSON texts back to back in one buffer (one allocation per
/// batch, not per row), and the watermark the batch advances to. The texts are bytes: the parse
/// thread checks that they are UTF-8, taking that work off the reader, the busiest thread.
#[derive(Debug)]
pub struct RowBatch {
    /// The rows' JSON texts, concatenated.
    pub text: Vec<u8>,
    /// Where each row came from, and its text's byte range in `text` (or why it has none).
    pub rows: Vec<(Locator, RowText)>,
    /// The watermark after the last row of the batch.
    pub last: LastTimestamp,
    /// The rowids the batch's watermark stands in (BeaverDB), or for JSON lines the bytes
    /// converted and the hash of their tail (see [`LinesDone`]).
    pub rowids: RowidMark,
    /// How far into its input the source is after this batch, for estimating the rows of a
    /// source that cannot count them (JSON lines).
    pub bytes: InputBytes,
}

/// Bytes of a source's input read so far and in all, leaving out what an append skips.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputBytes {
    /// Bytes read.
    pub done: u64,
    /// Bytes in all, or 0 when unknown (stdin, SQLite).
    pub total: u64,
}

impl InputBytes {
    /// The rows of the whole input estimated from `rows` read so far, or `None` when the input's
    /// size is unknown.
    pub fn estimate_rows(&self, rows: u64) -> Option<u64> {
        if self.total == 0 || self.done == 0 {
            return None;
        }
        let estimate = (rows as f64 * self.total as f64 / self.done as f64).round() as u64;
        Some(estimate.max(rows))
    }
}

impl RowBatch {
    fn with_capacity() -> RowBatch {
        RowBatch {
            text: Vec::with_capacity(BATCH_ROWS * 320),
            rows: Vec::with_capacity(BATCH_ROWS),
            ..RowBatch::empty()
        }
    }

    /// A batch of no rows, which only moves the watermark.
    fn empty() -> RowBatch {
        RowBatch {
            text: Vec::new(),
            rows: Vec::new(),
            last: LastTimestamp::None,
            rowids: RowidMark::default(),
            bytes: InputBytes::default(),
        }
    }

    /// Appends a row whose text is `data`.
    fn push(&mut self, locator: Locator, data: Result<&[u8], String>) {
        let text = self.push_text(data);
        self.rows.push((locator, text));
    }

    /// Appends `data` to the texts only, for a row placed later.
    fn push_text(&mut self, data: Result<&[u8], String>) -> RowText {
        data.map(|d| {
            let start = self.text.len();
            self.text.extend_from_slice(d);
            start..self.text.len()
        })
    }

    fn is_full(&self) -> bool {
        self.rows.len() >= BATCH_ROWS
    }
}

/// Rows per batch handed from the reader to the parser: large enough to amortize channel
/// overhead, small enough (about 1 MB of JSON) to keep memory flat.
pub const BATCH_ROWS: usize = 4096;

/// Sends batches of rows, or the error that stopped the source.
pub type RowSender = Sender<Result<RowBatch, ConvertError>>;

/// Detects the kind of `path` by its first bytes (SQLite magic) or its name (JSON lines).
pub fn detect(path: &Path) -> Result<SourceKind, ConvertError> {
    if path == Path::new("-") {
        return Ok(SourceKind::JsonLines);
    }
    let mut magic = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let n = file.read(&mut magic).map_err(|e| io(path, e))?;
    if n == 16 && &magic == b"SQLite format 3\0" {
        return sqlite::layout(path);
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if matches!(ext, "jsonl" | "ndjson" | "json") {
        return Ok(SourceKind::JsonLines);
    }
    Err(ConvertError::UnknownInput(path.to_path_buf()))
}

pub(crate) fn io(path: &Path, source: std::io::Error) -> ConvertError {
    ConvertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub use jsonl::{read_json_lines, LinesDone};

/// For tests: the next number of a xorshift sequence (deterministic, so failures reproduce).
#[cfg(test)]
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// For tests: the root page of the table or index `name` of `db`.
#[cfg(test)]
fn root_page(db: &rusqlite::Connection, name: &str) -> u32 {
    db.query_row(
        "SELECT rootpage FROM sqlite_master WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .unwrap()
}
