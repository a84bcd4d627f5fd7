//! The reports built on the scan engine (`ferret-scan`): what the binaries print and write.
//! Each takes what a pass of the engine returned (statistics, trees, stacks, buckets) and renders
//! it; none reads records itself.
//!
//! - [`functions`]: ferret's function table (text, JSON, CSV), and [`text_table`] the aligned
//!   text tables every report prints;
//! - [`trees`]: call trees as ferret's text, JSON and collapsible HTML; [`chrome`]: as Chrome
//!   trace events;
//! - [`flame`]: folded stacks and inferno's flame graphs, plain and differential;
//! - [`timeline`]: the buckets of a timeline, with sparklines;
//! - [`verdict`]: the statistics of a comparison's verdicts, [`comparison`] the comparison
//!   report, and [`calibration`] how well the verdicts are calibrated on generated runs;
//! - [`html`]: one self-contained page of all of them;
//! - [`live`]: the live view's snapshot of a window of span ends (`--watch`).

pub mod calibration;
pub mod chrome;
pub mod comparison;
pub mod flame;
pub mod functions;
pub mod html;
pub mod live;
pub mod text_table;
pub mod timeline;
pub mod trees;
pub mod verdict;

pub use functions::{FunctionRow, StatsReport};
