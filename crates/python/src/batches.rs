//! `Trace.spans()`: the population's spans as Arrow record batches with the Parquet export's
//! columns (and `end_time`), made one group of rows at a time as the consumer reads the stream,
//! so memory holds one batch whatever the trace's size.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    ArrayRef, Float64Array, Int32Array, RecordBatch, RecordBatchReader, StringArray, UInt32Array,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use ferret_cli::scan::spans::SpanGroups;
use ferret_parquet::{RowGroup, TextColumn, ValueTable};

/// The batches' schema: the Parquet export's columns, with `end_time` after `start_time`.
pub fn schema() -> SchemaRef {
    let text = |name, nullable| Field::new(name, DataType::Utf8, nullable);
    let float = |name, nullable| Field::new(name, DataType::Float64, nullable);
    Arc::new(Schema::new(vec![
        text("span_id", false),
        text("parent_id", true),
        text("root_id", false),
        text("run_id", false),
        text("name", false),
        float("start_time", false),
        float("end_time", true),
        float("duration", true),
        float("self_time", false),
        text("status", false),
        Field::new("depth", DataType::Int32, false),
        text("tags", false),
    ]))
}

/// The spans of a question as a stream of record batches.
pub struct SpanBatches {
    groups: SpanGroups,
    schema: SchemaRef,
    /// The current file's names and strings as Arrow arrays, made once per file: a string
    /// table can hold millions of entries (tag values), too many to walk per batch.
    texts: Option<Texts>,
}

/// A file's value tables as Arrow arrays, and the tables they were made from.
struct Texts {
    of: Arc<ValueTable>,
    names: StringArray,
    strings: StringArray,
}

impl SpanBatches {
    /// The batches of `groups`.
    pub fn new(groups: SpanGroups) -> Self {
        SpanBatches {
            groups,
            schema: schema(),
            texts: None,
        }
    }

    /// The texts of `values`, made when the values are another file's.
    fn texts(&mut self, values: Arc<ValueTable>) -> &Texts {
        let stale = !matches!(&self.texts, Some(t) if Arc::ptr_eq(&t.of, &values));
        if stale {
            self.texts = Some(Texts {
                names: StringArray::from(values.name_texts()),
                strings: StringArray::from(values.string_texts()),
                of: values,
            });
        }
        self.texts.as_ref().expect("set above")
    }
}

impl Iterator for SpanBatches {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.groups.next_group().map_err(|e| {
            // The consumer shows this text; Python raises it as an error of the stream.
            ArrowError::ExternalError(ferret_cli::one_line(&e).into())
        });
        match next {
            Ok(Some((group, values))) => {
                let schema = Arc::clone(&self.schema);
                Some(batch(group, self.texts(values), &schema))
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl RecordBatchReader for SpanBatches {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// One group of rows as a record batch.
fn batch(g: RowGroup, texts: &Texts, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let rows = g.len();
    // Parents and durations are stored for the rows that have one; spread them over every row.
    let mut parents = g.parent_id.into_parts();
    let parent_id = spread_text(&mut parents, &g.parent_def);
    let mut durations = g.duration.iter();
    let duration: Vec<Option<f64>> = g
        .duration_def
        .iter()
        .map(|&d| {
            if d == 1 {
                durations.next().copied()
            } else {
                None
            }
        })
        .collect();
    let end_time: Float64Array = g
        .start_time
        .iter()
        .zip(&duration)
        .map(|(start, d)| d.map(|d| start + d))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(text(g.span_id)?),
        Arc::new(parent_id),
        Arc::new(text(g.root_id)?),
        lookup(g.run_id, &texts.strings)?,
        lookup(g.name, &texts.names)?,
        Arc::new(Float64Array::from(g.start_time)),
        Arc::new(end_time),
        Arc::new(Float64Array::from(duration)),
        Arc::new(Float64Array::from(g.self_time)),
        lookup(g.status, &texts.strings)?,
        Arc::new(Int32Array::from(g.depth)),
        Arc::new(text(g.tags)?),
    ];
    debug_assert!(columns.iter().all(|c| c.len() == rows));
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// A text column as a string array, its bytes moved, not copied.
fn text(column: TextColumn) -> Result<StringArray, ArrowError> {
    let (bytes, ends) = column.into_parts();
    let offsets = offsets(&ends)?;
    StringArray::try_new(offsets, bytes.into(), None)
}

/// Value offsets (0, then each value's end) for Arrow.
fn offsets(ends: &[u32]) -> Result<arrow_buffer::OffsetBuffer<i32>, ArrowError> {
    let mut out = Vec::with_capacity(ends.len() + 1);
    out.push(0i32);
    for &end in ends {
        let end = i32::try_from(end)
            .map_err(|_| ArrowError::ComputeError("a text column over 2 GiB".into()))?;
        out.push(end);
    }
    Ok(arrow_buffer::OffsetBuffer::new(out.into()))
}

/// The values of the rows that have one (`present` 1), nulls elsewhere.
fn spread_text((bytes, ends): &mut (Vec<u8>, Vec<u32>), present: &[i16]) -> StringArray {
    let mut out = StringBuilder::with_capacity(present.len(), bytes.len());
    let mut start = 0usize;
    let mut values = ends.iter();
    for &p in present {
        match (p == 1).then(|| values.next()).flatten() {
            Some(&end) => {
                out.append_value(String::from_utf8_lossy(&bytes[start..end as usize]));
                start = end as usize;
            }
            None => out.append_null(),
        }
    }
    out.finish()
}

/// Ids into a table of values, as that table's strings.
fn lookup(ids: Vec<u32>, table: &StringArray) -> Result<ArrayRef, ArrowError> {
    arrow_select::take::take(table, &UInt32Array::from(ids), None)
}
