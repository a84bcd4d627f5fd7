//! Typed errors of the format crate. Each message names what is wrong and what to do about it.

use std::path::PathBuf;

/// The region of a file a checksum covers, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Region {
    /// The file header (both slots).
    Header,
    /// The header of one segment.
    SegmentHeader {
        /// Index of the segment in the file.
        segment: usize,
    },
    /// A block of records.
    Records {
        /// Index of the segment in the file.
        segment: usize,
        /// First global record index of the block.
        first: u64,
        /// One past the last global record index of the block.
        end: u64,
    },
    /// The names added by one segment.
    Names {
        /// Index of the segment in the file.
        segment: usize,
    },
    /// The other strings (run ids, statuses) added by one segment.
    Strings {
        /// Index of the segment in the file.
        segment: usize,
    },
    /// The tag heap of one segment.
    Tags {
        /// Index of the segment in the file.
        segment: usize,
        /// First global record index of the segment.
        first: u64,
        /// One past the last global record index of the segment.
        end: u64,
    },
    /// The metadata region of one segment (late links, block zones, run directory).
    Meta {
        /// Index of the segment in the file.
        segment: usize,
    },
    /// The span-id filter of one segment.
    IdFilter {
        /// Index of the segment in the file.
        segment: usize,
    },
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Region::Header => write!(f, "file header"),
            Region::SegmentHeader { segment } => write!(f, "header of segment {segment}"),
            Region::Records {
                segment,
                first,
                end,
            } => write!(f, "records {first}..{end} (segment {segment})"),
            Region::Names { segment } => write!(f, "name table of segment {segment}"),
            Region::Strings { segment } => write!(f, "string table of segment {segment}"),
            Region::Tags {
                segment,
                first,
                end,
            } => write!(f, "tag heap of segment {segment} (records {first}..{end})"),
            Region::Meta { segment } => write!(f, "metadata of segment {segment}"),
            Region::IdFilter { segment } => write!(f, "span-id filter of segment {segment}"),
        }
    }
}

/// Everything that can go wrong reading or writing a span record file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// An I/O error on the named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("empty file: not a ferret span file (convert a trace with ferret-convert first)")]
    Empty,
    /// The file does not start with the ferret magic.
    #[error("not a ferret span file (bad magic bytes); convert a trace with ferret-convert first")]
    NotFerret,
    /// The file is shorter than its two header slots.
    #[error("truncated header: the file is {len} bytes, a ferret file needs at least {need}")]
    TruncatedHeader {
        /// Actual length.
        len: u64,
        /// Minimum length.
        need: u64,
    },
    /// Neither header slot has a valid checksum.
    #[error("corrupt header: neither header slot passes its checksum")]
    CorruptHeader,
    /// The file was written by a newer ferret.
    #[error("format version {found} is newer than this ferret reads (versions {min}..={max}): upgrade ferret to read this file")]
    NewerVersion {
        /// Version in the file.
        found: u32,
        /// Oldest version read.
        min: u32,
        /// Newest version read.
        max: u32,
    },
    /// The file is of a version too old to read.
    #[error("format version {found} is older than this ferret reads (versions {min}..={max}): reconvert the trace")]
    OlderVersion {
        /// Version in the file.
        found: u32,
        /// Oldest version read.
        min: u32,
        /// Newest version read.
        max: u32,
    },
    /// The header is internally inconsistent (sizes out of range).
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// The file is shorter than its committed length.
    #[error("truncated file: the header commits {committed} bytes but the file has {len}; the file was cut short after it was written")]
    Truncated {
        /// Committed length.
        committed: u64,
        /// Actual length.
        len: u64,
    },
    /// A segment's structure is inconsistent.
    #[error("invalid segment {segment} at byte {offset}: {what}")]
    InvalidSegment {
        /// Segment index.
        segment: usize,
        /// Byte offset of the segment.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// A checksum did not match.
    #[error("checksum mismatch in {region}: the file is damaged (run `ferret-scan --verify FILE` to see every damaged region, then reconvert from the source)")]
    Checksum {
        /// Which region.
        region: Region,
    },
    /// A string in a table is not UTF-8.
    #[error("string {id} in the {table} table is not valid UTF-8")]
    BadString {
        /// Which table.
        table: &'static str,
        /// String id.
        id: u32,
    },
    /// A record refers to something that does not exist.
    #[error("record {index}: {what}")]
    BadRecord {
        /// Global record index.
        index: u64,
        /// What was wrong.
        what: String,
    },
    /// The in-memory buffer is not aligned for a zero-copy view.
    #[error("buffer is not 8-byte aligned: load files with SpanFile::open or AlignedBytes")]
    Misaligned,
    /// An older format version cannot be appended to.
    #[error("format version {found} cannot be appended to (its watermark misses spans that were still open): convert the trace anew with --force")]
    AppendToOlder {
        /// Version in the file.
        found: u32,
    },
    /// A name or string table holds the same text twice (ferret-convert interns each once).
    #[error("its name or string table holds the same text twice, which ferret-convert never writes: the file is damaged or hand-made; convert the trace anew")]
    DuplicateStrings,
    /// A limit of the format was reached.
    #[error("format limit reached: {0}")]
    Limit(String),
    /// `verify` of a view that fell back to the previous commit: the newest is damaged.
    #[error("the newest commit ({lost_records} records) failed its checks: {reason}; readers use the previous commit, which is intact, and ferret-convert --append adds the lost spans again")]
    NewestCommitDamaged {
        /// Why the newest commit was set aside.
        reason: String,
        /// Its records.
        lost_records: u64,
    },
    /// A reader was asked for the previous commit of a file that holds none intact.
    #[error("the file holds no intact previous commit to fall back to")]
    NoPreviousCommit,
    /// Another writer holds the file's lock.
    #[error("another ferret-convert is writing this file; wait for it to finish, or pass --wait to wait for it and then add what it left to do")]
    Locked {
        /// The record file.
        path: PathBuf,
    },
    /// The output is a symbolic link, which writers do not follow.
    #[error("is a symbolic link, which ferret-convert does not write through (a link planted in a shared folder could redirect the write); give the file itself: {target}")]
    SymlinkOutput {
        /// The link.
        path: PathBuf,
        /// Where it points, as far as it resolves.
        target: String,
    },
}

impl FormatError {
    /// What failed, without the advice the full message adds (for a message that gives its
    /// own, such as a fallback's warning).
    pub fn brief(&self) -> String {
        match self {
            FormatError::Checksum { region } => format!("checksum mismatch in {region}"),
            other => other.to_string(),
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.into(),
            source,
        }
    }
}
