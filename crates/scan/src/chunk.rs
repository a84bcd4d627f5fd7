//! Splitting a file's records into chunks for the workers: whole checksum blocks, never across
//! a segment, about 4 MB each so that two workers stay busy and a chunk's pages can be released
//! as soon as it is folded.

use std::ops::Range;

use ferret_format::{SpanFile, BLOCK_RECORDS};

/// Checksum blocks per chunk: 64 blocks of 64 KiB = 4 MiB.
pub const BLOCKS_PER_CHUNK: usize = 64;

/// A run of whole blocks of one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the segment in the file.
    pub segment: usize,
    /// Blocks of the segment.
    pub blocks: Range<usize>,
    /// Records of the segment (local indices).
    pub records: Range<usize>,
}

/// Plans the chunks of `file`, in file order.
pub fn plan<D: AsRef<[u8]>>(file: &SpanFile<D>, blocks_per_chunk: usize) -> Vec<Chunk> {
    let mut out = Vec::new();
    for seg in file.segments() {
        let blocks = seg.block_count();
        let n = seg.record_count as usize;
        let mut b = 0;
        while b < blocks {
            let e = (b + blocks_per_chunk.max(1)).min(blocks);
            out.push(Chunk {
                segment: seg.index,
                blocks: b..e,
                records: b * BLOCK_RECORDS..(e * BLOCK_RECORDS).min(n),
            });
            b = e;
        }
    }
    out
}
