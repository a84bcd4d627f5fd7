//! An answer's rows (a JSON array of objects, as the CLI prints them) as an Arrow table: the
//! columns and their types are the JSON's (numbers written as integers are Int64, others
//! Float64, text Utf8, nested objects structs), through arrow-json.

use std::sync::Arc;

use anyhow::Context;
use arrow_array::RecordBatch;
use arrow_json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use arrow_schema::SchemaRef;
use serde_json::Value;

/// The array `key` of `doc` (`doc` itself for an empty key) as record batches and their
/// schema.
pub fn table_of(doc: &Value, key: &str) -> anyhow::Result<(Vec<RecordBatch>, SchemaRef)> {
    let rows = match key {
        "" => doc,
        key => &doc[key],
    };
    let rows = rows
        .as_array()
        .with_context(|| format!("the answer has no array {key:?}"))?;
    let schema = Arc::new(infer_json_schema_from_iterator(rows.iter().map(Ok))?);
    let mut decoder = ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(rows.len().max(1))
        .build_decoder()?;
    decoder.serialize(rows)?;
    let batches = decoder.flush()?.into_iter().collect();
    Ok((batches, schema))
}
