//! Streams a ferret record file into Parquet, for the engines a team already runs over a fleet's
//! traces (DuckDB, Spark, DataFusion, Trino). `docs/SCALE-OUT.md` is the user's side. The same
//! rows feed the Python module's Arrow batches ([`FileRows`]).
//!
//! The pipeline, file by file of the population: one pass over the chosen runs' records fills a
//! `DerivedTable` (the scan crate's `derived.rs`: each span's children's time and depth, in a
//! mapped temporary file); then, run by run in run-id order, ranges of records become row groups
//! (`spans.rs`, `rows.rs`), built, encoded and compressed (`write.rs`) by rayon workers one per
//! core at a time and appended in order. Memory is bounded by those few row groups; the output appears under its name only
//! when complete.

mod rows;
mod spans;
mod write;

use std::path::{Path, PathBuf};

use ferret_format::{FormatError, SpanFile};
use ferret_scan::engine::AfterChunk;
use ferret_scan::pass::Behind;
use ferret_scan::{Filter, RunSummary};
use parquet::errors::ParquetError;
use rayon::prelude::*;

use crate::write::{EncodedGroup, SpanParquetWriter};

pub use crate::rows::{RowGroup, TextColumn, ValueTable};
pub use crate::spans::{FileRows, RowRange};
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
        let rows = FileRows::new(
            file,
            runs,
            &self.options.filter,
            self.options.rows_per_group,
            &self.dir,
            release,
        )?;
        let encoder = self.writer.encoder();
        let mut behind = Behind::new(file, release);
        // Row groups are built and encoded in parallel, one per worker at a time, and written
        // in order: memory holds at most this many groups (about 25 MB each).
        let in_flight = rayon::current_num_threads();
        let mut run = None;
        for batch in rows.groups().chunks(in_flight) {
            let encoded: Vec<Option<EncodedGroup>> = batch
                .par_iter()
                .map(|range| {
                    let group = rows.build(file, range)?;
                    // A range the filters emptied is not encoded at all.
                    (!group.is_empty())
                        .then(|| encoder.encode(group, rows.values()))
                        .transpose()
                        .map_err(parquet_err(&self.out))
                })
                .collect::<Result<_, ExportError>>()?;
            for group in encoded.into_iter().flatten() {
                self.summary.rows += group.rows;
                self.summary.row_groups += 1;
                self.writer.append(group).map_err(parquet_err(&self.out))?;
            }
            for range in batch {
                // Each run starts its own pass from its first record.
                if run.replace(range.run) != Some(range.run) {
                    behind.restart();
                }
                rows.release_before(range.records.end);
                behind.advance(range.records.end);
            }
        }
        self.summary.runs += rows.runs();
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
