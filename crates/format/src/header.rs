//! The file header: two 4 KiB slots at the start of the file, each a checksummed [`RawHeader`].
//!
//! Commits alternate between the slots, so the slot not being written always holds the previous
//! commit intact: a torn header write leaves the older slot, whose data is fully on disk.

use bytemuck::{Pod, Zeroable};

use crate::checksum::checksum;
use crate::error::FormatError;

/// Magic bytes at offset 0 of every slot.
pub const MAGIC: [u8; 8] = *b"FERRET\x00\x01";
/// The version this build writes.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest version this build reads.
pub const MIN_READ_VERSION: u32 = 1;
/// Bytes reserved for one header slot; the data area starts after two slots.
pub const HEADER_SLOT_SIZE: u64 = 4096;
/// Offset of the first segment.
pub const DATA_START: u64 = 2 * HEADER_SLOT_SIZE;

/// Header flag: the conversion that wrote the file finished (an interrupted one leaves it clear).
pub const HEADER_FLAG_COMPLETE: u64 = 1;
const KNOWN_HEADER_FLAGS: u64 = HEADER_FLAG_COMPLETE;

const WM_NONE: u32 = 0;
const WM_REAL: u32 = 1;
const WM_TEXT: u32 = 2;
const WM_LINE: u32 = 3;
const WM_TEXT_CAP: usize = 64;

/// The on-disk header, 256 bytes, little-endian. See `docs/FORMAT.md`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct RawHeader {
    pub magic: [u8; 8],
    pub version: u32,
    pub record_size: u32,
    pub sequence: u64,
    pub committed_len: u64,
    pub segment_count: u64,
    pub record_count: u64,
    pub name_count: u64,
    pub string_count: u64,
    pub flags: u64,
    pub wm_kind: u32,
    pub wm_source: u32,
    pub wm_namespace: u32,
    pub wm_text_len: u32,
    pub wm_real: f64,
    pub wm_text: [u8; WM_TEXT_CAP],
    pub wm_line: u64,
    pub wm_rowid_done: u64,
    pub wm_rowid_upto: u64,
    pub wm_row_check: u64,
    pub latest_start: f64,
    pub latest_record: u64,
    pub reserved: [u8; 40],
    pub checksum: u64,
}

const _: () = assert!(std::mem::size_of::<RawHeader>() == 256);

/// The last source timestamp a conversion committed, in the source's own type.
#[derive(Clone, Debug, PartialEq)]
pub enum LastTimestamp {
    /// Nothing converted yet.
    None,
    /// A REAL timestamp (beaver-db 1.x, or a JSON line's start time).
    Real(f64),
    /// A TEXT timestamp (beaver-db 2.x), compared as SQLite compares text.
    Text(String),
    /// The number of JSON lines consumed (blank lines included).
    Line(u64),
}

/// Where a BeaverDB conversion stands in the source's rowids (version 2). ferret-io inserts a
/// span when it ends, so the rowid follows the write order: every row added after a conversion
/// has a larger rowid, whatever its timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowidMark {
    /// Every row of the namespace with a rowid up to this one is converted.
    pub done: u64,
    /// The rows in `done + 1 ..= upto` are being converted in timestamp order: those up to the
    /// watermark's timestamp are in the file. Equal to `done` when no conversion is under way.
    pub upto: u64,
    /// xxh3-64 of the row at rowid `done` (its namespace, a zero byte, its data), so that a
    /// source rewritten since (vacuumed, cut, replaced) is noticed; 0 when `done` is 0.
    pub check: u64,
}

/// Where an incremental conversion resumes: which source, which namespace, which position.
#[derive(Clone, Debug, PartialEq)]
pub struct Watermark {
    /// The source's identity (its canonical path, or `-` for stdin).
    pub source: String,
    /// The namespace (`log_name`) converted.
    pub namespace: String,
    /// The last timestamp committed within the rowids under way (or the JSON lines read).
    pub last: LastTimestamp,
    /// The rowids converted (BeaverDB sources), or the bytes converted and their tail's hash
    /// (JSON lines); all zero for version 1 files.
    pub rowids: RowidMark,
}

/// The decoded header, with watermark strings still as string ids.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub raw: RawHeader,
}

impl Header {
    pub fn new() -> Header {
        let mut raw = RawHeader::zeroed();
        raw.magic = MAGIC;
        raw.version = FORMAT_VERSION;
        raw.record_size = 64;
        raw.committed_len = DATA_START;
        raw.wm_source = u32::MAX;
        raw.wm_namespace = u32::MAX;
        Header { raw }
    }

    /// Encodes the header with its checksum.
    pub fn encode(&self) -> [u8; 256] {
        let mut raw = self.raw;
        raw.checksum = 0;
        raw.checksum = checksum(&bytemuck::bytes_of(&raw)[..248]);
        let mut out = [0u8; 256];
        out.copy_from_slice(bytemuck::bytes_of(&raw));
        out
    }

    /// True when `self` says what `other` says, but for the sequence number: a commit of it
    /// would change nothing.
    pub fn same_state(&self, other: &Header) -> bool {
        let (mut a, mut b) = (self.raw, other.raw);
        (a.sequence, a.checksum, b.sequence, b.checksum) = (0, 0, 0, 0);
        bytemuck::bytes_of(&a) == bytemuck::bytes_of(&b)
    }

    pub fn slot_offset(sequence: u64) -> u64 {
        (sequence % 2) * HEADER_SLOT_SIZE
    }

    pub fn set_last(&mut self, last: &LastTimestamp) -> Result<(), FormatError> {
        let raw = &mut self.raw;
        raw.wm_text = [0; WM_TEXT_CAP];
        raw.wm_text_len = 0;
        raw.wm_real = 0.0;
        raw.wm_line = 0;
        match last {
            LastTimestamp::None => raw.wm_kind = WM_NONE,
            LastTimestamp::Real(t) => {
                raw.wm_kind = WM_REAL;
                raw.wm_real = *t;
            }
            LastTimestamp::Text(s) => {
                if s.len() > WM_TEXT_CAP {
                    return Err(FormatError::Limit(format!(
                        "text timestamp {s:?} is longer than {WM_TEXT_CAP} bytes"
                    )));
                }
                raw.wm_kind = WM_TEXT;
                raw.wm_text_len = s.len() as u32;
                raw.wm_text[..s.len()].copy_from_slice(s.as_bytes());
            }
            LastTimestamp::Line(n) => {
                raw.wm_kind = WM_LINE;
                raw.wm_line = *n;
            }
        }
        Ok(())
    }

    pub fn set_rowids(&mut self, rowids: RowidMark) {
        self.raw.wm_rowid_done = rowids.done;
        self.raw.wm_rowid_upto = rowids.upto;
        self.raw.wm_row_check = rowids.check;
    }

    pub fn rowids(&self) -> RowidMark {
        RowidMark {
            done: self.raw.wm_rowid_done,
            upto: self.raw.wm_rowid_upto,
            check: self.raw.wm_row_check,
        }
    }

    pub fn last(&self) -> LastTimestamp {
        match self.raw.wm_kind {
            WM_REAL => LastTimestamp::Real(self.raw.wm_real),
            WM_TEXT => {
                let len = (self.raw.wm_text_len as usize).min(WM_TEXT_CAP);
                LastTimestamp::Text(String::from_utf8_lossy(&self.raw.wm_text[..len]).into_owned())
            }
            WM_LINE => LastTimestamp::Line(self.raw.wm_line),
            _ => LastTimestamp::None,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.raw.flags & HEADER_FLAG_COMPLETE != 0
    }
}

/// Decodes one slot: `None` when its magic or checksum does not hold (a torn or unwritten slot).
fn decode_slot(bytes: &[u8]) -> Option<RawHeader> {
    let raw: RawHeader = bytemuck::pod_read_unaligned(bytes.get(..256)?);
    if raw.magic != MAGIC || checksum(&bytes[..248]) != raw.checksum {
        return None;
    }
    Some(raw)
}

/// The two header slots of a file: the newest whose checksum holds, checked against the cheap
/// invariants (version window, record size, flags, committed length), and the other, the
/// previous commit, when it is older, holds spans and passes them too.
pub(crate) struct HeaderSlots {
    /// The newest commit's header.
    pub newest: Header,
    /// Why its cheap checks refused it, if they did.
    pub refused: Option<FormatError>,
    /// The previous commit's header, the state a reader falls back to.
    pub previous: Option<Header>,
}

/// Reads both slots of the first `2 * HEADER_SLOT_SIZE` bytes of a file of `file_len` bytes.
/// A newest slot of a version this ferret does not read is an error, not a reason to fall back:
/// the previous commit would hide spans that are there.
pub(crate) fn read_header_slots(bytes: &[u8], file_len: u64) -> Result<HeaderSlots, FormatError> {
    if bytes.is_empty() {
        return Err(FormatError::Empty);
    }
    if bytes.len() < 8 || bytes[..6] != MAGIC[..6] {
        return Err(FormatError::NotFerret);
    }
    if (bytes.len() as u64) < DATA_START {
        return Err(FormatError::TruncatedHeader {
            len: bytes.len() as u64,
            need: DATA_START,
        });
    }
    let a = decode_slot(&bytes[..HEADER_SLOT_SIZE as usize]);
    let b = decode_slot(&bytes[HEADER_SLOT_SIZE as usize..DATA_START as usize]);
    let (newest, other) = match (a, b) {
        (Some(a), Some(b)) if a.sequence >= b.sequence => (a, Some(b)),
        (Some(a), Some(b)) => (b, Some(a)),
        (Some(a), None) => (a, None),
        (None, Some(b)) => (b, None),
        (None, None) => return Err(FormatError::CorruptHeader),
    };
    let checked = check_header(&newest, file_len);
    if let Err(e @ (FormatError::NewerVersion { .. } | FormatError::OlderVersion { .. })) = checked
    {
        return Err(e);
    }
    // An empty previous commit (the state a new file starts from) is nothing to fall back to:
    // the newest commit's error says more than an empty answer.
    // Nor is a slot that does not describe a prefix of the newest commit (left by a writer
    // killed while undoing commits, say): falling back to it would show what was taken back.
    let previous = other
        .filter(|o| o.sequence < newest.sequence && o.record_count > 0)
        .filter(|o| is_prefix(o, &newest))
        .filter(|o| check_header(o, file_len).is_ok())
        .map(|raw| Header { raw });
    Ok(HeaderSlots {
        newest: Header { raw: newest },
        refused: checked.err(),
        previous,
    })
}

/// True when the commit `earlier` can be a prefix of `later`: none of its counts is larger.
/// (That its segments are the first of `later`'s is checked when it is loaded: its walk must
/// end exactly at its length with its counts.)
fn is_prefix(earlier: &RawHeader, later: &RawHeader) -> bool {
    earlier.committed_len <= later.committed_len
        && earlier.segment_count <= later.segment_count
        && earlier.record_count <= later.record_count
        && earlier.name_count <= later.name_count
        && earlier.string_count <= later.string_count
}

fn check_header(raw: &RawHeader, file_len: u64) -> Result<(), FormatError> {
    if raw.version > FORMAT_VERSION {
        return Err(FormatError::NewerVersion {
            found: raw.version,
            min: MIN_READ_VERSION,
            max: FORMAT_VERSION,
        });
    }
    if raw.version < MIN_READ_VERSION {
        return Err(FormatError::OlderVersion {
            found: raw.version,
            min: MIN_READ_VERSION,
            max: FORMAT_VERSION,
        });
    }
    if raw.record_size != 64 {
        return Err(FormatError::InvalidHeader(format!(
            "record size {} (records are 64 bytes)",
            raw.record_size
        )));
    }
    if raw.flags & !KNOWN_HEADER_FLAGS != 0 {
        return Err(FormatError::InvalidHeader(format!(
            "unknown header flags {:#x}",
            raw.flags
        )));
    }
    if raw.committed_len < DATA_START || !raw.committed_len.is_multiple_of(64) {
        return Err(FormatError::InvalidHeader(format!(
            "committed length {} is not a 64-byte multiple past the header slots",
            raw.committed_len
        )));
    }
    if raw.committed_len > file_len {
        return Err(FormatError::Truncated {
            committed: raw.committed_len,
            len: file_len,
        });
    }
    Ok(())
}
