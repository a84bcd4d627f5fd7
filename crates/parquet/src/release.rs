//! Hands the records a pass has left behind to the caller's release hook (which drops their
//! pages from our resident set), a step at a time, so resident memory stays flat however long
//! the file is.

use ferret_format::SpanFile;
use ferret_scan::engine::AfterChunk;

/// Records a pass moves on before their pages are released (about 4 MB of records).
const STEP: u64 = 1 << 16;

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
        for seg in self.file.segments() {
            let range = seg.record_range();
            let (from, until) = (range.start.max(self.done), range.end.min(to));
            if from < until {
                (self.after)(seg, from..until);
            }
        }
        self.done = to;
    }

    /// A new pass begins (at any record): hands over everything behind.
    pub fn restart(&mut self) {
        self.advance(self.file.record_count() + STEP);
        self.done = 0;
    }
}
