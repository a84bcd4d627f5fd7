//! Segments: what one commit appends. A 128-byte [`SegmentHeader`], then the records, their block
//! checksums, the names and strings first seen in this segment, the tag heap, and (version 2)
//! the metadata region (`meta.rs`: late links and the scan index).

use bytemuck::{Pod, Zeroable};

use crate::checksum::checksum;
use crate::error::{FormatError, Region};

/// Magic bytes opening every segment.
pub const SEGMENT_MAGIC: [u8; 4] = *b"FSEG";
/// Size of a segment header.
pub const SEGMENT_HEADER_SIZE: u64 = 128;
/// Records per checksum block: 1024 records, 64 KiB, small enough to stay in L2 between the
/// checksum and the fold that follows it, large enough that the checksum table is 1/8192 of the
/// records.
pub const BLOCK_RECORDS: usize = 1024;

/// The on-disk segment header, 128 bytes. See `docs/FORMAT.md`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct SegmentHeader {
    pub magic: [u8; 4],
    pub flags: u32,
    pub first_record: u64,
    pub record_count: u64,
    pub first_name: u32,
    pub name_count: u32,
    pub first_string: u32,
    pub string_count: u32,
    pub names_len: u64,
    pub strings_len: u64,
    pub tags_len: u64,
    pub names_checksum: u64,
    pub strings_checksum: u64,
    pub tags_checksum: u64,
    /// Bytes of the metadata region (version 2; zero in version 1).
    pub meta_len: u64,
    /// The checksum of the region before the span-id filter (zero when the region is empty).
    pub meta_checksum: u64,
    /// The checksum of the span-id filter (zero when there is none). Kept apart because only a
    /// converter appending reads the filter, and it is most of the region: opening a file for a
    /// scan checks the rest alone.
    pub filter_checksum: u64,
    pub reserved: [u8; 8],
    pub header_checksum: u64,
}

const _: () = assert!(std::mem::size_of::<SegmentHeader>() == SEGMENT_HEADER_SIZE as usize);

/// Rounds up to a multiple of 64.
pub fn pad64(n: u64) -> u64 {
    n.div_ceil(64) * 64
}

/// Number of checksum blocks for `records` records.
pub fn block_count(records: u64) -> u64 {
    records.div_ceil(BLOCK_RECORDS as u64)
}

/// Byte offsets of a segment's parts, all absolute in the file.
#[derive(Clone, Copy, Debug)]
pub struct SegmentLayout {
    pub records: u64,
    pub checksums: u64,
    pub names: u64,
    pub strings: u64,
    pub tags: u64,
    pub meta: u64,
    pub end: u64,
}

impl SegmentHeader {
    /// Seals the header with its checksum.
    pub fn seal(mut self) -> SegmentHeader {
        self.header_checksum = checksum(&bytemuck::bytes_of(&self)[..120]);
        self
    }

    /// True when the header's own checksum holds.
    pub fn is_sealed(&self) -> bool {
        self.magic == SEGMENT_MAGIC
            && checksum(&bytemuck::bytes_of(self)[..120]) == self.header_checksum
    }

    /// Where each part of a segment starting at `offset` lies.
    pub fn layout(&self, offset: u64) -> Option<SegmentLayout> {
        // Every size comes from the file: a crafted one must give `None`, never overflow.
        let records = offset.checked_add(SEGMENT_HEADER_SIZE)?;
        let checksums = records.checked_add(self.record_count.checked_mul(64)?)?;
        let sums = block_count(self.record_count).checked_mul(8)?;
        let names = checksums.checked_add(sums.checked_next_multiple_of(64)?)?;
        let strings = names.checked_add(self.names_len)?;
        let tags = strings.checked_add(self.strings_len)?;
        let meta = tags
            .checked_add(self.tags_len)?
            .checked_next_multiple_of(8)?;
        let end = meta
            .checked_add(self.meta_len)?
            .checked_next_multiple_of(64)?;
        Some(SegmentLayout {
            records,
            checksums,
            names,
            strings,
            tags,
            meta,
            end,
        })
    }
}

/// Reads and checks the segment header at `offset`, returning it with its layout.
pub(crate) fn read_segment_header(
    bytes: &[u8],
    index: usize,
    offset: u64,
) -> Result<(SegmentHeader, SegmentLayout), FormatError> {
    let invalid = |what: &str| FormatError::InvalidSegment {
        segment: index,
        offset,
        what: what.to_string(),
    };
    let start = offset as usize;
    let raw = bytes
        .get(start..start + SEGMENT_HEADER_SIZE as usize)
        .ok_or_else(|| invalid("header runs past the committed length"))?;
    let header: SegmentHeader = bytemuck::pod_read_unaligned(raw);
    if header.magic != SEGMENT_MAGIC {
        return Err(invalid("bad segment magic"));
    }
    if !header.is_sealed() {
        return Err(FormatError::Checksum {
            region: Region::SegmentHeader { segment: index },
        });
    }
    let layout = header
        .layout(offset)
        .ok_or_else(|| invalid("sizes overflow"))?;
    if layout.end > bytes.len() as u64 {
        return Err(invalid("segment runs past the committed length"));
    }
    Ok((header, layout))
}
