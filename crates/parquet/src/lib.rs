//! Streams a ferret record file into Parquet, for the engines a team already runs over a fleet's
//! traces (DuckDB, Spark, DataFusion, Trino). `docs/SCALE-OUT.md` is the user's side.
//!
//! The pipeline, file by file of the population: one pass over the chosen runs' records fills a
//! `DerivedTable` (the scan crate's `derived.rs`: each span's children's time and depth, in a
//! mapped temporary file); then, run by run in run-id order, ranges of records become row groups (`rows.rs`), built,
//! encoded and compressed (`write.rs`) by rayon workers one per core at a time and appended in
//! order. Memory is bounded by those few row groups; the output appears under its name only
//! when complete.

mod rows;
mod write;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferret_format::{FormatError, Segment, SpanFile, SpanRecord};
use ferret_scan::chunk::BlockSelect;
use ferret_scan::engine::AfterChunk;
use ferret_scan::{Filter, RunSummary};
use parquet::errors::ParquetError;
use rayon::prelude::*;

use crate::rows::{RowGroupBuilder, ValueTable};
use crate::write::{EncodedGroup, SpanParquetWriter};
use ferret_scan::derived::{Derive, DerivedTable};
use ferret_scan::pass::{for_each_record, Behind};

pub use crate::write::SCHEMA;

/// Errors of an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The record file failed a check.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The Parquet encoder failed.
    #[error("{path}: cannot write Parquet: {source}")]
    Parquet {
        /// The output.
        path: PathBuf,
        /// What the encoder said.
        source: ParquetError,
    },
    /// The pass over the records failed (damage, a link loop, the scratch file).
    #[error(transparent)]
    Scan(#[from] ferret_scan::ScanError),
}

/// How to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Which spans become rows (trees, self time and depth still count every span).
    pub filter: Filter,
    /// Rows per row group (a run's last group is smaller; groups never mix runs).
    pub rows_per_group: usize,
    /// zstd compression level.
    pub zstd_level: i32,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            filter: Filter::default(),
            rows_per_group: 1 << 17,
            zstd_level: 1,
        }
    }
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Spans written.
    pub rows: u64,
    /// Row groups written.
    pub row_groups: u64,
    /// Runs exported.
    pub runs: usize,
    /// Size of the Parquet file.
    pub bytes: u64,
}

/// A Parquet export under way: files are added one by one (each its chosen runs, in run-id
/// order), and the output appears under its name only when [`finish`](ParquetExport::finish)ed.
/// Dropped before that, it leaves nothing behind.
pub struct ParquetExport {
    out: PathBuf,
    dir: PathBuf,
    options: ExportOptions,
    /// Written beside the output and renamed into place only when complete: an interrupted or
    /// failed export leaves no file that looks valid.
    partial: tempfile::NamedTempFile,
    writer: SpanParquetWriter<std::fs::File>,
    summary: ExportSummary,
}

impl ParquetExport {
    /// Starts an export to `out`.
    pub fn create(out: &Path, options: &ExportOptions) -> Result<ParquetExport, ExportError> {
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let partial = tempfile::Builder::new()
            .prefix(".ferret-export-")
            .suffix(".partial")
            // The mode a plain create would give (the umask applies), not a temp file's 0600.
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(io(dir))?;
        let sink = partial.as_file().try_clone().map_err(io(out))?;
        let writer = SpanParquetWriter::new(sink, options.zstd_level).map_err(parquet_err(out))?;
        Ok(ParquetExport {
            out: out.to_path_buf(),
            dir: dir.to_path_buf(),
            options: options.clone(),
            partial,
            writer,
            summary: ExportSummary::default(),
        })
    }

    /// Appends the spans of `file`'s `runs` (from `ferret_scan::scan_runs`) that pass the
    /// filter, sorted by run id; each row group's rows in ferret's order (start time).
    /// `release` is handed the records each pass has left behind (to drop their pages).
    pub fn add_file<D: AsRef<[u8]> + Sync>(
        &mut self,
        file: &SpanFile<D>,
        runs: &[RunSummary],
        release: AfterChunk,
    ) -> Result<(), ExportError> {
        let mut runs: Vec<&RunSummary> = runs.iter().collect();
        runs.sort_by_key(|r| file.string(r.run).unwrap_or(""));
        // Rows carry tags, statuses and hashed ids from the tag heaps: checked before any is
        // written (record blocks are checked as the first pass reads them).
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
            &self.dir,
            &mut Behind::new(file, release),
        )?;
        let encoder = self.writer.encoder();
        let table = Arc::new(ValueTable::new(file));
        // Every tag heap was checked above.
        let filter = self.options.filter.compile(file, None, false)?;
        let mut behind = Behind::new(file, release);
        // Row groups are built and encoded in parallel, one per worker at a time, and written
        // in order: memory holds at most this many groups (about 25 MB each).
        let in_flight = rayon::current_num_threads();
        for run in &runs {
            // Rows: only blocks holding the run with a start inside the time filter.
            let select = BlockSelect::of(Some(run.run), &self.options.filter);
            let ranges = group_ranges(run, self.options.rows_per_group);
            for batch in ranges.chunks(in_flight) {
                let encoded: Vec<Option<EncodedGroup>> = batch
                    .par_iter()
                    .map(|range| {
                        let mut builder = RowGroupBuilder::new(file, Arc::clone(&table));
                        let keep = |seg: &Segment, r: &SpanRecord| {
                            r.run == run.run && filter.keep(file, seg, r)
                        };
                        let chosen = group_in_start_order(file, range.clone(), &select, keep);
                        for (seg, index, r) in chosen {
                            builder.push(seg, index, r, derived.get(index));
                        }
                        // A range the filters emptied is not encoded at all.
                        let group = builder.finish();
                        (group.len() > 0)
                            .then(|| encoder.encode(group, &table))
                            .transpose()
                    })
                    .collect::<Result<_, ParquetError>>()
                    .map_err(parquet_err(&self.out))?;
                for group in encoded.into_iter().flatten() {
                    self.summary.rows += group.rows;
                    self.summary.row_groups += 1;
                    self.writer.append(group).map_err(parquet_err(&self.out))?;
                }
                if let Some(last) = batch.last() {
                    derived.release_before(last.end);
                    behind.advance(last.end);
                }
            }
            // The next run starts its own pass from its first record.
            behind.restart();
        }
        self.summary.runs += runs.len();
        Ok(())
    }

    /// Closes the Parquet file, makes it durable and renames it into place.
    pub fn finish(self) -> Result<ExportSummary, ExportError> {
        let out = self.out;
        self.writer.close().map_err(parquet_err(&out))?;
        self.partial.as_file().sync_all().map_err(io(&out))?;
        let done = self.partial.persist(&out).map_err(|e| io(&out)(e.error))?;
        Ok(ExportSummary {
            bytes: done.metadata().map_err(io(&out))?.len(),
            ..self.summary
        })
    }
}

/// An I/O error about `path`.
fn io(path: &Path) -> impl Fn(std::io::Error) -> ExportError {
    let path = path.to_path_buf();
    move |source| ExportError::Io {
        path: path.clone(),
        source,
    }
}

/// A Parquet encoder's error writing `out`.
fn parquet_err(out: &Path) -> impl Fn(ParquetError) -> ExportError {
    let path = out.to_path_buf();
    move |source| ExportError::Parquet {
        path: path.clone(),
        source,
    }
}

/// The records of `range` that `keep` accepts, in ferret's order: by start time, then position.
/// Records sit in arrival order, which is start order for a database converted in one go; a
/// file that grew by `--append`, or JSON lines in write order, needs the sort (one row group's
/// keys, about 2 MB).
fn group_in_start_order<'f, D: AsRef<[u8]>>(
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

/// The record ranges of `run` that become one row group each: about `rows_per_group` of the
/// run's spans, however densely other runs interleave with it.
fn group_ranges(run: &RunSummary, rows_per_group: usize) -> Vec<Range<u64>> {
    let (first, end) = (run.first_index, run.last_index + 1);
    let per_span = (end - first) as f64 / run.spans.max(1) as f64;
    let step = ((rows_per_group.max(1) as f64 * per_span).ceil() as u64).max(1);
    (first..end)
        .step_by(step as usize)
        .map(|start| start..(start + step).min(end))
        .collect()
}
