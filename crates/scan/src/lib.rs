//! The scan engine over a mapped ferret record file: the file is split into [`chunk`]s, rayon
//! workers fold each chunk's records into dense per-name [`stats::ChunkStats`] (checking block
//! checksums as they go) and the results [`merge`](stats::ChunkStats::merge); the same fold
//! keyed by time bucket gives [`buckets`], other passes find the slowest [`tree`]s, the run's
//! flame-graph [`stacks`] and each span's [`derived`] values. Several files' statistics merge
//! by name through a [`names::NameUnion`]. Memory is bounded by the number of distinct names.
//! What is printed from these lives in `ferret-report`.

pub mod buckets;
pub mod chunk;
pub mod derived;
pub mod engine;
pub mod names;
pub mod pass;
pub mod sketch;
pub mod stacks;
pub mod stats;
pub mod sum;
pub mod tree;

pub use engine::{
    default_run, resolve_run, scan_runs, scan_stats, Filter, RunSummary, ScanError, ScanOptions,
};
