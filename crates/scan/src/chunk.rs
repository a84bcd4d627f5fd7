//! Splitting a file's records into chunks for the workers: whole checksum blocks, never across
//! a segment, about 4 MB each so that two workers stay busy and a chunk's pages can be released
//! as soon as it is folded. A pass that selects (a run, a time range) plans only the chunks
//! whose block zones may match: the others cost it nothing, not even a task.

use std::ops::Range;

use ferret_format::{Segment, SpanFile, BLOCK_RECORDS};

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

/// Plans the chunks of `file` that `select` may need, in file order: each window of
/// `blocks_per_chunk` blocks, trimmed to its first and last block that may match, and left out
/// when none may. Blocks between those two are still tested one by one as they are read.
pub fn plan<D: AsRef<[u8]>>(
    file: &SpanFile<D>,
    blocks_per_chunk: usize,
    select: &BlockSelect,
) -> Vec<Chunk> {
    let mut out = Vec::new();
    for seg in file.segments() {
        let n = seg.record_count as usize;
        let Range {
            start: mut b,
            end: blocks,
        } = select.block_range(file, seg);
        while b < blocks {
            let e = (b + blocks_per_chunk.max(1)).min(blocks);
            let may = |block: &usize| select.may_match(file, seg, *block);
            if let (Some(first), Some(last)) = ((b..e).find(may), (b..e).rev().find(may)) {
                out.push(Chunk {
                    segment: seg.index,
                    blocks: first..last + 1,
                    records: first * BLOCK_RECORDS..((last + 1) * BLOCK_RECORDS).min(n),
                });
            }
            b = e;
        }
    }
    out
}

/// Which blocks a pass reads: a version 2 file's block zones tell which blocks hold no record
/// of the run, or no start inside the time range, and those are skipped unread (and so
/// unchecked: a scan checks the blocks it reads). A version 1 file has no zones: every block.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockSelect {
    /// Only blocks holding this run.
    pub run: Option<u32>,
    /// Only blocks with a start at or after this.
    pub since: Option<f64>,
    /// Only blocks with a start before this.
    pub until: Option<f64>,
    /// Only segments where the run (any run, without `run`) has an end at or after this: its
    /// run directory's `last_end`.
    pub ended_since: Option<f64>,
}

impl BlockSelect {
    /// The blocks a filter's conditions on time can need, of `run` (or every run): starts in
    /// `since..until`; for a window of ends, in a segment whose run directory has an end in
    /// its reach. (Not by start before the window's end: a negative duration, which a clock
    /// stepping back gives, ends before it starts.)
    pub fn of(run: Option<u32>, filter: &crate::Filter) -> BlockSelect {
        BlockSelect {
            run,
            since: filter.since,
            until: filter.until,
            ended_since: filter.ended.map(|(from, _)| from),
        }
    }

    /// Blocks holding `run`.
    pub fn run(run: u32) -> BlockSelect {
        BlockSelect {
            run: Some(run),
            ..BlockSelect::default()
        }
    }

    /// True when every start in block `block` of `seg` lies inside the time range (so a pass
    /// need not test each record's); false for a block without a zone.
    pub fn covers<D: AsRef<[u8]>>(&self, file: &SpanFile<D>, seg: &Segment, block: usize) -> bool {
        file.zones(seg).get(block).is_some_and(|zone| {
            self.since.is_none_or(|t| zone.min_start >= t)
                && self.until.is_none_or(|t| zone.max_start < t)
        })
    }

    /// The blocks of `seg` that can hold the run: from its first record's to its last's, as
    /// the segment's run directory has them (none when the run is not there). Every block
    /// without a run asked, or without a run directory (version 1). A one-run question on a
    /// file of many runs plans from the directory instead of testing every block's zone.
    pub fn block_range<D: AsRef<[u8]>>(&self, file: &SpanFile<D>, seg: &Segment) -> Range<usize> {
        let every = 0..seg.block_count();
        let (Some(run), false) = (self.run, file.zones(seg).is_empty()) else {
            return every;
        };
        let Some(entry) = file.runs(seg).iter().find(|e| e.run == run) else {
            return 0..0;
        };
        let block = |index: u64| (index.saturating_sub(seg.first_record) as usize) / BLOCK_RECORDS;
        let range = block(entry.first_index)..block(entry.last_index) + 1;
        range.start.min(every.end)..range.end.min(every.end)
    }

    /// False when block `block` of `seg` certainly holds no record this pass wants.
    #[inline]
    pub fn may_match<D: AsRef<[u8]>>(
        &self,
        file: &SpanFile<D>,
        seg: &Segment,
        block: usize,
    ) -> bool {
        let Some(zone) = file.zones(seg).get(block) else {
            return true;
        };
        self.run
            .is_none_or(|run| file.zone_runs(seg, zone).binary_search(&run).is_ok())
            && self.since.is_none_or(|t| zone.max_start >= t)
            && self.until.is_none_or(|t| zone.min_start < t)
            && self
                .ended_since
                .is_none_or(|t| self.segment_ends_after(file, seg, t))
    }

    /// True when the segment's run directory has an end (of the run, or of any run) at or
    /// after `t`.
    fn segment_ends_after<D: AsRef<[u8]>>(
        &self,
        file: &SpanFile<D>,
        seg: &Segment,
        t: f64,
    ) -> bool {
        file.runs(seg)
            .iter()
            .filter(|e| self.run.is_none_or(|run| e.run == run))
            .any(|e| e.last_end >= t)
    }
}
