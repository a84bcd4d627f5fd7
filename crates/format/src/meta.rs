//! The metadata region of a version 2 segment, after its tag heap: a [`MetaToc`] (how many
//! entries each table has), then the late links (`links.rs`: adoptions, orphans) and the scan
//! index (`zones.rs`: block zones, their run-id list, the run directory) and a Bloom filter of
//! the segment's span ids (`bloom.rs`), last. The segment header gives its length and two
//! checksums: one of everything before the filter, small next to the records (about 24 bytes per
//! 1024 records, plus the links) and checked whenever the file is opened, and one of the filter
//! (2 bytes a span, most of the region), checked only by a converter about to append and by
//! `verify`, since only the linker reads it.

use std::ops::Range;

use bytemuck::{Pod, Zeroable};

use crate::links::{Adoption, Orphan};
use crate::zones::{BlockZone, RunEntry};

/// The metadata region's table of contents: entries in each table. 64 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct MetaToc {
    /// Adoption entries (24 bytes each).
    pub adoptions: u64,
    /// Orphan entries (24 bytes each, sorted).
    pub orphans: u64,
    /// Block zones (24 bytes each): one per checksum block of the segment.
    pub zones: u64,
    /// Run ids the zones point into (4 bytes each, the list padded to 8 bytes).
    pub run_ids: u64,
    /// Run directory entries (64 bytes each).
    pub runs: u64,
    /// Words of the span-id filter (8 bytes each, a power of two; 0 for none).
    pub id_filter: u64,
    /// Zero.
    pub reserved: [u64; 2],
}

const TOC_SIZE: usize = std::mem::size_of::<MetaToc>();
const _: () = assert!(TOC_SIZE == 64);

/// Byte ranges of the tables within the region.
#[derive(Clone, Debug, Default)]
pub(crate) struct MetaLayout {
    pub adoptions: Range<usize>,
    pub orphans: Range<usize>,
    pub zones: Range<usize>,
    pub run_ids: Range<usize>,
    pub runs: Range<usize>,
    pub id_filter: Range<usize>,
}

impl MetaToc {
    /// Where each table lies in a region of `len` bytes, or `None` when the counts do not fill
    /// it exactly. An empty region (a version 1 segment) has no tables.
    pub(crate) fn layout(&self, len: usize) -> Option<MetaLayout> {
        if len == 0 {
            return Some(MetaLayout::default());
        }
        let mut at = TOC_SIZE;
        let mut next = |count: u64, size: usize, align: usize| -> Option<Range<usize>> {
            let bytes = usize::try_from(count).ok()?.checked_mul(size)?;
            let start = at;
            at = start.checked_add(bytes)?.div_ceil(align) * align;
            Some(start..start + bytes)
        };
        let layout = MetaLayout {
            adoptions: next(self.adoptions, std::mem::size_of::<Adoption>(), 8)?,
            orphans: next(self.orphans, std::mem::size_of::<Orphan>(), 8)?,
            zones: next(self.zones, std::mem::size_of::<BlockZone>(), 8)?,
            run_ids: next(self.run_ids, 4, 8)?,
            runs: next(self.runs, std::mem::size_of::<RunEntry>(), 8)?,
            id_filter: next(self.id_filter, 8, 8)?,
        };
        let filter_ok = self.id_filter == 0 || self.id_filter.is_power_of_two();
        (at == len && filter_ok && self.reserved == [0; 2]).then_some(layout)
    }
}

/// The tables of one segment's metadata region.
pub(crate) struct MetaTables<'a> {
    pub adoptions: &'a [Adoption],
    pub orphans: &'a [Orphan],
    pub zones: &'a [BlockZone],
    pub run_ids: &'a [u32],
    pub runs: &'a [RunEntry],
    pub id_filter: &'a [u64],
}

impl MetaTables<'_> {
    /// The region's bytes: the table of contents, then each table, each padded to 8 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let toc = MetaToc {
            adoptions: self.adoptions.len() as u64,
            orphans: self.orphans.len() as u64,
            zones: self.zones.len() as u64,
            run_ids: self.run_ids.len() as u64,
            runs: self.runs.len() as u64,
            id_filter: self.id_filter.len() as u64,
            reserved: [0; 2],
        };
        let mut out = bytemuck::bytes_of(&toc).to_vec();
        let tables: [&[u8]; 6] = [
            bytemuck::cast_slice(self.adoptions),
            bytemuck::cast_slice(self.orphans),
            bytemuck::cast_slice(self.zones),
            bytemuck::cast_slice(self.run_ids),
            bytemuck::cast_slice(self.runs),
            bytemuck::cast_slice(self.id_filter),
        ];
        for table in tables {
            out.extend_from_slice(table);
            out.resize(out.len().div_ceil(8) * 8, 0);
        }
        out
    }
}
