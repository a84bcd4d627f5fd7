//! Scanning a mapped ferret record file: the file is split into [`chunk`]s, rayon workers fold
//! each chunk's records into dense per-name [`stats::ChunkStats`] (checking block checksums as
//! they go), the chunk results [`merge`](stats::ChunkStats::merge), and [`report`] turns the
//! result into ferret's table, JSON or CSV. Memory is bounded by the number of distinct names.

pub mod chunk;
pub mod compare;
pub mod comparison;
pub mod derived;
pub mod engine;
pub mod export;
pub mod html;
pub mod pass;
pub mod report;
pub mod sketch;
pub mod stats;
pub mod sum;
pub mod table;
pub mod timeline;
pub mod tree;
pub mod tree_report;

pub use engine::{
    default_run, resolve_run, scan_runs, scan_stats, Filter, RunSummary, ScanError, ScanOptions,
};
pub use report::{FunctionRow, StatsReport};
