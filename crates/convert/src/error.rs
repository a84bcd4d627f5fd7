//! Errors of a conversion, each naming the input or output and what to do.

use std::path::PathBuf;

/// Everything that stops a conversion.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// I/O on an input or output file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused something.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// A database page that is not what SQLite's file format says it must be.
    #[error("{path}: database disk image is malformed: {what}")]
    Damaged {
        /// The database.
        path: PathBuf,
        /// Which page and what was wrong.
        what: String,
    },
    /// The input is neither a SQLite database nor JSON lines.
    #[error("{0}: not a SQLite database or a JSON lines file (.jsonl, .ndjson or - for stdin)")]
    UnknownInput(PathBuf),
    /// A SQLite file without ferret's log table.
    #[error("{0}: SQLite database without a BeaverDB log table (beaver_logs or __beaver_logs__): not a ferret trace")]
    NoLogTable(PathBuf),
    /// The namespace asked for is not in the file.
    #[error("{path}: namespace {namespace:?} not found; the file has: {available}")]
    NoNamespace {
        /// The database.
        path: PathBuf,
        /// What was asked.
        namespace: String,
        /// The namespaces present with their row counts.
        available: String,
    },
    /// The output exists and is not a ferret file.
    #[error("{0}: exists and is not a ferret file; refusing to overwrite it")]
    OutputNotFerret(PathBuf),
    /// The output is a ferret file and neither --append nor --force was given.
    #[error(
        "{0}: already a ferret file; pass --append to add newer spans or --force to replace it"
    )]
    OutputExists(PathBuf),
    /// Appending from a different namespace than the file holds.
    #[error("{path}: holds namespace {have:?}, not {want:?}; convert into a new file")]
    NamespaceMismatch {
        /// The output.
        path: PathBuf,
        /// Namespace in the file.
        have: String,
        /// Namespace asked for.
        want: String,
    },
    /// Appending with a source of another kind than the watermark's.
    #[error("{0}: its watermark is of another source kind (database vs JSON lines); convert into a new file")]
    WatermarkKind(PathBuf),
    /// The source no longer holds the rows an earlier conversion read.
    #[error("{path}: the source changed since it was last converted ({what}): it was vacuumed, cut or replaced by another file; convert it anew with --force")]
    SourceRewritten {
        /// The source.
        path: PathBuf,
        /// What differs.
        what: String,
    },
    /// The format layer failed.
    #[error("{path}: {source}")]
    Format {
        /// The output.
        path: PathBuf,
        /// The error.
        #[source]
        source: ferret_format::FormatError,
    },
    /// A bad row under `--strict`.
    #[error("{path}: {row}: {reason} (--strict: nothing was written)")]
    StrictBadRow {
        /// The input.
        path: PathBuf,
        /// Which row or line.
        row: String,
        /// Why.
        reason: String,
    },
    /// Neither the trace's folder nor a cache folder can hold its sidecar.
    #[error("{0}: its folder is not writable and there is no cache folder (XDG_CACHE_HOME or HOME) to keep its record file in; convert it with ferret-convert TRACE -o FILE and scan FILE, or pass --no-sidecar")]
    NoSidecarRoom(PathBuf),
    /// A sidecar was asked for standard input.
    #[error("standard input cannot be scanned directly: convert it with ferret-convert - -o FILE, then scan FILE")]
    SidecarOfStdin,
    /// A sidecar is not one this process may trust as its own.
    #[error("{path}: not a record file ferret-scan made for this user ({why}); remove it, or scan with --no-sidecar")]
    UntrustedOutput {
        /// The output.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// A sidecar was never committed to.
    #[error("{0}: a record file never committed to")]
    NeverCommitted(PathBuf),
    /// The reader thread died.
    #[error("the input reader stopped unexpectedly")]
    ReaderGone,
}
