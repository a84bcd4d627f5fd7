//! The scan index a version 2 segment carries, so that a question costs the data it selects:
//! a [`BlockZone`] per checksum block (its start times' range and the exact runs in it) and a
//! [`RunEntry`] per run present in the segment (the run directory). The converter builds both
//! from the records it commits ([`index_records`]); `verify` builds them again and compares.

use bytemuck::{Pod, Zeroable};

use crate::record::SpanRecord;
use crate::segment::BLOCK_RECORDS;

/// What a scan needs to skip one block of 1024 records. 24 bytes on disk.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockZone {
    /// The smallest start time in the block.
    pub min_start: f64,
    /// The largest start time in the block.
    pub max_start: f64,
    /// Where the block's runs start in the segment's run-id list.
    pub runs_at: u32,
    /// How many distinct runs the block holds (their ids follow, ascending).
    pub runs_len: u32,
}

/// One run's spans in one segment: the run directory's entry. 64 bytes on disk.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct RunEntry {
    /// The run, as a string id.
    pub run: u32,
    /// Zero.
    pub reserved: u32,
    /// Spans of the run in the segment.
    pub spans: u64,
    /// Those whose status is not "ok".
    pub errors: u64,
    /// Their smallest start time.
    pub first_start: f64,
    /// Their largest start time.
    pub last_start: f64,
    /// Their largest end (start + duration, a null duration counting as 0).
    pub last_end: f64,
    /// Global index of the run's first record in the segment.
    pub first_index: u64,
    /// Global index of its last record in the segment.
    pub last_index: u64,
}

const _: () = assert!(std::mem::size_of::<BlockZone>() == 24);
const _: () = assert!(std::mem::size_of::<RunEntry>() == 64);

/// The scan index of one segment's records (the first with global index `first`): a zone per
/// block, the run-id list the zones point into, and the run directory in order of first
/// appearance.
pub fn index_records(
    records: &[SpanRecord],
    first: u64,
) -> (Vec<BlockZone>, Vec<u32>, Vec<RunEntry>) {
    let mut zones = Vec::with_capacity(records.len().div_ceil(BLOCK_RECORDS));
    let mut run_ids = Vec::new();
    let mut runs: Vec<RunEntry> = Vec::new();
    // The entry of the last record's run; none at a block's start, so that each block lists the
    // run of its first record.
    let mut current = usize::MAX;
    for (b, block) in records.chunks(BLOCK_RECORDS).enumerate() {
        let runs_at = run_ids.len();
        let (mut min_start, mut max_start) = (f64::INFINITY, f64::NEG_INFINITY);
        for (i, r) in block.iter().enumerate() {
            // Plain compares (`f64::min` spends instructions on NaN, which verify refuses).
            if r.start_time < min_start {
                min_start = r.start_time;
            }
            if r.start_time > max_start {
                max_start = r.start_time;
            }
            // Runs change rarely from one record to the next: the last one is checked first.
            if runs.get(current).is_none_or(|e| e.run != r.run) {
                current = match runs.iter().position(|e| e.run == r.run) {
                    Some(at) => at,
                    None => {
                        runs.push(RunEntry::new(r.run));
                        runs.len() - 1
                    }
                };
                run_ids.push(r.run);
            }
            runs[current].add(first + (b * BLOCK_RECORDS + i) as u64, r);
        }
        let block_runs = &mut run_ids[runs_at..];
        block_runs.sort_unstable();
        let distinct = dedup_sorted(block_runs);
        run_ids.truncate(runs_at + distinct);
        zones.push(BlockZone {
            min_start,
            max_start,
            runs_at: runs_at as u32,
            runs_len: (run_ids.len() - runs_at) as u32,
        });
        current = usize::MAX;
    }
    (zones, run_ids, runs)
}

/// Moves the distinct values of a sorted slice to its front; returns how many there are.
fn dedup_sorted(values: &mut [u32]) -> usize {
    let mut kept = 0;
    for i in 0..values.len() {
        if kept == 0 || values[kept - 1] != values[i] {
            values[kept] = values[i];
            kept += 1;
        }
    }
    kept
}

impl RunEntry {
    /// An entry of run `run` with no spans yet.
    pub fn new(run: u32) -> RunEntry {
        RunEntry {
            run,
            reserved: 0,
            spans: 0,
            errors: 0,
            first_start: f64::INFINITY,
            last_start: f64::NEG_INFINITY,
            last_end: f64::NEG_INFINITY,
            first_index: u64::MAX,
            last_index: 0,
        }
    }

    /// Counts record `r`, of global index `index`, in the entry.
    #[inline]
    pub fn add(&mut self, index: u64, r: &SpanRecord) {
        self.spans += 1;
        self.errors += u64::from(r.is_error());
        let (start, end) = (r.start_time, r.start_time + r.duration().unwrap_or(0.0));
        // Plain compares: the NaN handling of `f64::min` cost a fifth of this function.
        if start < self.first_start {
            self.first_start = start;
        }
        if start > self.last_start {
            self.last_start = start;
        }
        if end > self.last_end {
            self.last_end = end;
        }
        self.first_index = self.first_index.min(index);
        self.last_index = self.last_index.max(index);
    }

    /// The entry of the same run over both segments' records.
    pub fn merge(&self, o: &RunEntry) -> RunEntry {
        RunEntry {
            run: self.run,
            reserved: 0,
            spans: self.spans + o.spans,
            errors: self.errors + o.errors,
            first_start: self.first_start.min(o.first_start),
            last_start: self.last_start.max(o.last_start),
            last_end: self.last_end.max(o.last_end),
            first_index: self.first_index.min(o.first_index),
            last_index: self.last_index.max(o.last_index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    fn record(run: u32, start: f64) -> SpanRecord {
        let mut r = SpanRecord::zeroed();
        r.run = run;
        r.start_time = start;
        r
    }

    #[test]
    fn zones_list_exactly_the_runs_of_each_block_however_they_interleave() {
        // Block 0: runs 3 and 7 interleaved; block 1: run 7 alone (continuing); block 2: 5, 3.
        let mut records: Vec<SpanRecord> = (0..BLOCK_RECORDS)
            .map(|i| record(if i % 2 == 0 { 3 } else { 7 }, i as f64))
            .collect();
        records.extend((0..BLOCK_RECORDS).map(|i| record(7, 5000.0 - i as f64)));
        records.extend((0..10).map(|i| record(if i < 5 { 5 } else { 3 }, 1.0)));
        let (zones, ids, runs) = index_records(&records, 100);
        let runs_of = |z: &BlockZone| &ids[z.runs_at as usize..(z.runs_at + z.runs_len) as usize];
        assert_eq!(zones.len(), 3);
        assert_eq!(runs_of(&zones[0]), [3, 7]);
        assert_eq!(runs_of(&zones[1]), [7]);
        assert_eq!(runs_of(&zones[2]), [3, 5]);
        assert_eq!(
            (zones[1].min_start, zones[1].max_start),
            (5000.0 - 1023.0, 5000.0)
        );
        let seven = runs.iter().find(|e| e.run == 7).unwrap();
        assert_eq!(seven.spans, 512 + 1024);
        assert_eq!((seven.first_index, seven.last_index), (101, 100 + 2047));
        assert_eq!(
            runs.iter().map(|e| e.spans).sum::<u64>(),
            records.len() as u64
        );
    }
}
