//! Sequential passes over a range of records, for the exports that read records in order
//! rather than through the chunked fold: [`for_each_record`] walks the blocks a selection may
//! match, and [`Behind`] hands the records a pass has left behind to the caller's release hook
//! (which drops their pages from our resident set), a step at a time, so resident memory stays
//! flat however long the file is.

use std::ops::Range;

use ferret_format::{Segment, SpanFile, SpanRecord, BLOCK_RECORDS};

use crate::chunk::BlockSelect;
use crate::engine::AfterChunk;

/// Records a pass moves on before their pages are released (about 4 MB of records).
const STEP: u64 = 1 << 16;

/// Calls `f` with the segment, global index and record of every record in `range` that lies in
/// a block `select` may match, in order, stopping at its first error. The other blocks are not
/// read (version 2 block zones; a version 1 file is read whole).
pub fn for_each_record<D: AsRef<[u8]>, E>(
    file: &SpanFile<D>,
    range: Range<u64>,
    select: &BlockSelect,
    mut f: impl FnMut(&Segment, u64, &SpanRecord) -> Result<(), E>,
) -> Result<(), E> {
    for seg in file.segments() {
        let first = seg.first_record;
        let local = |i: u64| (i.clamp(first, first + seg.record_count) - first) as usize;
        let (from, to) = (local(range.start), local(range.end));
        let records = file.records(seg);
        for block in from / BLOCK_RECORDS..to.div_ceil(BLOCK_RECORDS) {
            if !select.may_match(file, seg, block) {
                continue;
            }
            let start = (block * BLOCK_RECORDS).max(from);
            let end = ((block + 1) * BLOCK_RECORDS).min(to);
            for (i, r) in records[start..end].iter().enumerate() {
                f(seg, first + (start + i) as u64, r)?;
            }
        }
    }
    Ok(())
}

/// Hands the records of `range` to `after`, segment by segment.
pub fn hand_over<D: AsRef<[u8]>>(file: &SpanFile<D>, range: Range<u64>, after: AfterChunk) {
    for seg in file.segments() {
        let records = seg.record_range();
        let (from, until) = (records.start.max(range.start), records.end.min(range.end));
        if from < until {
            after(seg, from..until);
        }
    }
}

/// The release point of one pass over the records.
pub struct Behind<'a, D> {
    file: &'a SpanFile<D>,
    after: AfterChunk<'a>,
    /// Records before this index have been handed over.
    done: u64,
}

impl<'a, D: AsRef<[u8]>> Behind<'a, D> {
    /// A release point at the start of `file`.
    pub fn new(file: &'a SpanFile<D>, after: AfterChunk<'a>) -> Self {
        Behind {
            file,
            after,
            done: 0,
        }
    }

    /// The pass is at record `index`: hands over what lies a step or more behind it.
    pub fn advance(&mut self, index: u64) {
        let to = index.saturating_sub(STEP);
        if to < self.done + STEP {
            return;
        }
        hand_over(self.file, self.done..to, self.after);
        self.done = to;
    }

    /// A new pass begins (at any record): hands over everything behind.
    pub fn restart(&mut self) {
        self.advance(self.file.record_count() + STEP);
        self.done = 0;
    }
}
