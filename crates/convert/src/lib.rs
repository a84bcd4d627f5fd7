//! Streams ferret-io spans out of a BeaverDB file (either layout) or JSON lines into a ferret
//! record file, with parent, root and parent-name links resolved exactly as ferret's analyzer
//! would, in memory bounded by the spans open at one time.
//!
//! The pipeline: a [`source`] thread reads rows in ferret's order into batches; a parse thread
//! turns them into [`span::ParsedSpan`]s; the calling thread links them ([`link::Linker`]) and
//! appends them with the format crate's writer, committing every few hundred thousand spans.

pub mod error;
pub mod link;
pub mod pipeline;
pub mod sidecar;
pub mod source;
pub mod span;

pub use error::ConvertError;
pub use pipeline::{convert, BadRow, ConvertOptions, Summary};
pub use source::{detect, SourceKind};
