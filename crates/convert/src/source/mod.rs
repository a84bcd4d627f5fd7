//! Sources of spans: BeaverDB files of either layout and JSON lines, read on a thread of their own
//! into batches of raw rows, in ferret's order.

mod jsonl;
mod sqlite;

use std::io::Read;
use std::path::Path;

use crossbeam_channel::Sender;
use ferret_format::LastTimestamp;

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

/// One row as read: where it came from, its position for the watermark, and its JSON text
/// (or why it has none).
#[derive(Debug)]
pub struct Row {
    /// Where it came from.
    pub locator: Locator,
    /// The watermark this row advances to.
    pub position: LastTimestamp,
    /// The span JSON, or the reason it could not be read as text.
    pub data: Result<String, String>,
}

/// Rows per batch handed from the reader to the parser: large enough to amortize channel
/// overhead, small enough (about 1 MB of JSON) to keep memory flat.
pub const BATCH_ROWS: usize = 4096;

/// Sends batches of rows; returns an error message if the source failed mid-way.
pub type RowSender = Sender<Result<Vec<Row>, ConvertError>>;

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

pub use jsonl::read_json_lines;
