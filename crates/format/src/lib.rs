//! The ferret span record file.
//!
//! A `.ferret` file holds the spans of one ferret-io trace as fixed 64-byte [`SpanRecord`]s that a
//! reader maps and views as `&[SpanRecord]` without copying or parsing. Strings (function names,
//! run ids, odd status strings) are interned in two string tables; tags live verbatim in a heap.
//!
//! The file is append-only: a writer ([`SpanFileWriter`]) appends a *segment* (records, block
//! checksums, new strings, tags), flushes it, and only then advances one of two header slots. A
//! reader ([`SpanFile`]) picks the newest valid slot and sees exactly the committed prefix, so a
//! crash or a concurrent append never shows it anything partial. `docs/FORMAT.md` documents every
//! byte.

#[cfg(not(target_endian = "little"))]
compile_error!("ferret's record file is little-endian and is viewed in place: big-endian hosts are not supported");

mod bloom;
mod checksum;
mod error;
mod header;
mod links;
mod lock;
mod meta;
mod reader;
mod record;
mod segment;
mod strings;
mod tags;
mod writer;
mod zones;

pub use bloom::{words_may_hold, IdBloom};
pub use checksum::checksum;
pub use error::{FormatError, Region};
pub use header::{
    LastTimestamp, RowidMark, Watermark, FORMAT_VERSION, HEADER_SLOT_SIZE, MAGIC, MIN_READ_VERSION,
};
pub use links::{Adoption, Links, Orphan};
pub use lock::{OutputFile, Replacement, WhenLocked};
pub use meta::MetaToc;
pub use reader::{AlignedBytes, Fallback, Segment, SpanFile};
pub use record::{
    SpanId, SpanRecord, FLAG_CUSTOM_STATUS, FLAG_ERROR, FLAG_HASHED_ID, FLAG_HAS_PARENT_ID,
    FLAG_NULL_DURATION, NONE_INDEX, NONE_NAME, NO_EXTRAS,
};
pub use segment::BLOCK_RECORDS;
pub use strings::{Interner, StringTable};
pub use tags::SpanExtras;
pub use writer::{FixUpView, SpanFileWriter};
pub use zones::{index_records, BlockZone, RunEntry};
