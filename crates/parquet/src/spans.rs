//! The rows of one file's chosen runs, a group at a time: what the Parquet export encodes and
//! the Python module hands over as Arrow batches. Built once per file: the tag heaps checked,
//! then one pass fills the [`DerivedTable`] (each span's children's time and depth, whatever the
//! filter keeps); each group is then a range of one run's records, its rows in ferret's order.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use ferret_format::{Segment, SpanFile, SpanRecord};
use ferret_scan::chunk::BlockSelect;
use ferret_scan::derived::{Derive, DerivedTable};
use ferret_scan::engine::AfterChunk;
use ferret_scan::pass::{for_each_record, Behind};
use ferret_scan::{Filter, RunSummary};

use crate::rows::{RowGroup, RowGroupBuilder, ValueTable};
use crate::ExportError;

/// One group's records: a range of one run's (the run by its place in [`FileRows`]' order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowRange {
    /// The run's place among the file's chosen runs (sorted by run id).
    pub run: usize,
    /// The records the group draws from (other runs' records in it are skipped).
    pub records: Range<u64>,
}

/// A file's chosen runs as groups of rows.
pub struct FileRows {
    runs: Vec<RunSummary>,
    groups: Vec<RowRange>,
    derived: DerivedTable,
    values: Arc<ValueTable>,
    filter: Filter,
}

impl FileRows {
    /// Prepares the rows of `file`'s `runs` that pass `filter`, in groups of about
    /// `rows_per_group` (groups never mix runs; runs in run-id order). The derived table's
    /// scratch file goes in `scratch`; `release` is handed the records the pass has left.
    pub fn new<D: AsRef<[u8]> + Sync>(
        file: &SpanFile<D>,
        runs: &[RunSummary],
        filter: &Filter,
        rows_per_group: usize,
        scratch: &Path,
        release: AfterChunk,
    ) -> Result<FileRows, ExportError> {
        let mut runs = runs.to_vec();
        runs.sort_by_key(|r| file.string(r.run).unwrap_or(""));
        // Rows carry tags, statuses and hashed ids from the tag heaps: checked before any is
        // built (record blocks are checked as the first pass reads them).
        for seg in file.segments() {
            file.verify_tags(seg)?;
        }
        let mut wanted = vec![false; file.string_count()];
        for r in &runs {
            if let Some(w) = wanted.get_mut(r.run as usize) {
                *w = true;
            }
        }
        let range = runs.iter().map(|r| r.first_index).min().unwrap_or(0)
            ..runs.iter().map(|r| r.last_index + 1).max().unwrap_or(0);
        // Depths and child times need every record of the chosen runs, whatever the time
        // filter: the first pass skips only blocks without them (one run; several may share
        // every block).
        let of_runs = BlockSelect {
            run: (runs.len() == 1).then(|| runs[0].run),
            ..BlockSelect::default()
        };
        let derived = DerivedTable::build(
            file,
            range,
            &of_runs,
            |run| wanted.get(run as usize).copied().unwrap_or(false),
            Derive {
                verify: true,
                depth: true,
            },
            scratch,
            &mut Behind::new(file, release),
        )?;
        let groups = runs
            .iter()
            .enumerate()
            .flat_map(|(at, run)| {
                group_ranges(run, rows_per_group)
                    .into_iter()
                    .map(move |records| RowRange { run: at, records })
            })
            .collect();
        Ok(FileRows {
            runs,
            groups,
            derived,
            values: Arc::new(ValueTable::new(file)),
            filter: filter.clone(),
        })
    }

    /// The groups, in order.
    pub fn groups(&self) -> &[RowRange] {
        &self.groups
    }

    /// The runs the rows come from.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// The names and strings the groups' ids point into.
    pub fn values(&self) -> &Arc<ValueTable> {
        &self.values
    }

    /// The rows of `group` (of this `file`) that pass the filter, by start time. Every tag
    /// heap was checked when the rows were prepared.
    pub fn build<D: AsRef<[u8]>>(
        &self,
        file: &SpanFile<D>,
        group: &RowRange,
    ) -> Result<RowGroup, ExportError> {
        let run = &self.runs[group.run];
        let filter = self.filter.compile(file, None, false)?;
        // Only blocks holding the run with a start inside the time filter.
        let select = BlockSelect::of(Some(run.run), &self.filter);
        let keep = |seg: &Segment, r: &SpanRecord| r.run == run.run && filter.keep(file, seg, r);
        let mut builder = RowGroupBuilder::new(file, Arc::clone(&self.values));
        for (seg, index, r) in in_start_order(file, group.records.clone(), &select, keep) {
            builder.push(seg, index, r, self.derived.get(index));
        }
        Ok(builder.finish())
    }

    /// The groups before record `index` are done: their derived values leave memory.
    pub fn release_before(&self, index: u64) {
        self.derived.release_before(index);
    }
}

/// The records of `range` that `keep` accepts, in ferret's order: by start time, then position.
/// Records sit in arrival order, which is start order for a database converted in one go; a
/// file that grew by `--append`, or JSON lines in write order, needs the sort (one row group's
/// keys, about 2 MB).
fn in_start_order<'f, D: AsRef<[u8]>>(
    file: &'f SpanFile<D>,
    range: Range<u64>,
    select: &BlockSelect,
    keep: impl Fn(&Segment, &SpanRecord) -> bool,
) -> impl Iterator<Item = (&'f Segment, u64, &'f SpanRecord)> {
    let mut chosen: Vec<(f64, u64)> = Vec::new();
    for_each_record(file, range, select, |seg, index, r| {
        if keep(seg, r) {
            chosen.push((r.start_time, index));
        }
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap_or_else(|never| match never {});
    if !chosen.is_sorted_by(|a, b| a.0 <= b.0) {
        chosen.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    }
    chosen
        .into_iter()
        .filter_map(|(_, index)| Some((file.segment_of(index)?, index, file.record(index)?)))
}

/// The record ranges of `run` that become one group each: about `rows_per_group` of the run's
/// spans, however densely other runs interleave with it.
fn group_ranges(run: &RunSummary, rows_per_group: usize) -> Vec<Range<u64>> {
    let (first, end) = (run.first_index, run.last_index + 1);
    let per_span = (end - first) as f64 / run.spans.max(1) as f64;
    let step = ((rows_per_group.max(1) as f64 * per_span).ceil() as u64).max(1);
    (first..end)
        .step_by(step as usize)
        .map(|start| start..(start + step).min(end))
        .collect()
}
