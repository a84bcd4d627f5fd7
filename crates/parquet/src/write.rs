//! The Parquet side: the schema, the writer's properties (zstd, dictionaries only where values
//! repeat, statistics for skipping), encoding one [`RowGroup`] column by column into buffers of
//! its own (on any thread), and splicing encoded groups into the file in order.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::writer::{
    get_column_writer, get_typed_column_writer_mut, ColumnCloseResult, ColumnWriter,
};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, DoubleType, Int32Type};
use parquet::errors::Result;
use parquet::file::properties::{
    EnabledStatistics, WriterProperties, WriterPropertiesPtr, WriterVersion,
};
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{ColumnPath, SchemaDescriptor};

use crate::rows::{RowGroup, TextColumn, ValueTable};

/// The export's schema; `docs/SCALE-OUT.md` describes each column.
pub const SCHEMA: &str = "message ferret_span {
    REQUIRED BYTE_ARRAY span_id (STRING);
    OPTIONAL BYTE_ARRAY parent_id (STRING);
    REQUIRED BYTE_ARRAY root_id (STRING);
    REQUIRED BYTE_ARRAY run_id (STRING);
    REQUIRED BYTE_ARRAY name (STRING);
    REQUIRED DOUBLE start_time;
    OPTIONAL DOUBLE duration;
    REQUIRED DOUBLE self_time;
    REQUIRED BYTE_ARRAY status (STRING);
    REQUIRED INT32 depth;
    REQUIRED BYTE_ARRAY tags (STRING);
}";

/// Columns whose values are (nearly) all distinct: a dictionary would only be built and dropped.
/// (`root_id` keeps one: a tree's spans share it, so it shrinks to a few bits a row. Parents
/// are too many for one: measured, the file grew and the export slowed.)
const DISTINCT_COLUMNS: [&str; 5] = [
    "span_id",
    "parent_id",
    "start_time",
    "duration",
    "self_time",
];

/// Columns whose min/max says nothing useful (random ids, JSON text).
const UNORDERED_COLUMNS: [&str; 4] = ["span_id", "parent_id", "root_id", "tags"];

/// Writes row groups of spans to one Parquet file.
pub struct SpanParquetWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    schema: SchemaDescriptor,
    props: WriterPropertiesPtr,
}

impl<W: Write + Send> SpanParquetWriter<W> {
    /// A writer for the export's schema, compressing with zstd at `zstd_level`.
    pub fn new(out: W, zstd_level: i32) -> Result<Self> {
        let schema = Arc::new(parse_message_type(SCHEMA)?);
        let mut props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level)?))
            .set_created_by(format!("ferret-scan {}", env!("CARGO_PKG_VERSION")));
        for column in DISTINCT_COLUMNS {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        // Comparing random ids for min/max was a tenth of the work, for statistics no engine uses.
        for column in UNORDERED_COLUMNS {
            props = props
                .set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::None);
        }
        let props = Arc::new(props.build());
        Ok(SpanParquetWriter {
            file: SerializedFileWriter::new(out, Arc::clone(&schema), Arc::clone(&props))?,
            schema: SchemaDescriptor::new(schema),
            props,
        })
    }

    /// What encodes row groups for this writer (on any thread).
    pub fn encoder(&self) -> GroupEncoder {
        GroupEncoder {
            schema: self.schema.clone(),
            props: Arc::clone(&self.props),
        }
    }

    /// Appends an encoded row group.
    pub fn append(&mut self, group: EncodedGroup) -> Result<()> {
        let mut rg = self.file.next_row_group()?;
        for (bytes, close) in group.columns {
            rg.append_column(&bytes, close)?;
        }
        rg.close()?;
        Ok(())
    }

    /// Writes the footer.
    pub fn close(self) -> Result<()> {
        self.file.close().map(drop)
    }
}

/// Encodes and compresses column `i` of the group into a buffer of its own.
fn encode(
    schema: &SchemaDescriptor,
    props: &WriterPropertiesPtr,
    i: usize,
    g: &RowGroup,
    texts: &Texts,
    table: &ValueTable,
) -> Result<(Bytes, ColumnCloseResult)> {
    let mut sink = TrackedWrite::new(Vec::new());
    let pages = Box::new(SerializedPageWriter::new(&mut sink));
    let mut w = get_column_writer(schema.column(i), Arc::clone(props), pages);
    match i {
        0 => text(&mut w, &g.span_id, &texts.span_id, None),
        1 => text(&mut w, &g.parent_id, &texts.parent_id, Some(&g.parent_def)),
        2 => text(&mut w, &g.root_id, &texts.root_id, None),
        3 => interned(&mut w, &g.run_id, &table.strings),
        4 => interned(&mut w, &g.name, &table.names),
        5 => plain::<DoubleType>(&mut w, &g.start_time, None),
        6 => plain::<DoubleType>(&mut w, &g.duration, Some(&g.duration_def)),
        7 => plain::<DoubleType>(&mut w, &g.self_time, None),
        8 => interned(&mut w, &g.status, &table.strings),
        9 => plain::<Int32Type>(&mut w, &g.depth, None),
        _ => text(&mut w, &g.tags, &texts.tags, None),
    }?;
    let close = w.close()?;
    Ok((Bytes::from(sink.into_inner()?), close))
}

/// Encodes row groups for a [`SpanParquetWriter`].
pub struct GroupEncoder {
    schema: SchemaDescriptor,
    props: WriterPropertiesPtr,
}

/// A row group encoded and compressed, column by column, ready to append.
pub struct EncodedGroup {
    /// Rows in the group.
    pub rows: u64,
    columns: Vec<(Bytes, ColumnCloseResult)>,
}

impl GroupEncoder {
    /// Encodes `group`, its ids resolved through `table`.
    pub fn encode(&self, mut group: RowGroup, table: &ValueTable) -> Result<EncodedGroup> {
        let texts = Texts {
            span_id: group.span_id.take_bytes(),
            parent_id: group.parent_id.take_bytes(),
            root_id: group.root_id.take_bytes(),
            tags: group.tags.take_bytes(),
        };
        let columns = (0..self.schema.num_columns())
            .map(|i| encode(&self.schema, &self.props, i, &group, &texts, table))
            .collect::<Result<_>>()?;
        Ok(EncodedGroup {
            rows: group.len() as u64,
            columns,
        })
    }
}

/// The text columns' bytes, frozen so every value can share them.
struct Texts {
    span_id: Bytes,
    parent_id: Bytes,
    root_id: Bytes,
    tags: Bytes,
}

/// Values handed to the encoder per call: bounds the Parquet values alive at once.
const SLICE: usize = 8192;

/// Writes a text column a slice at a time; `def_levels` (one per row) for an optional one.
fn text(
    w: &mut ColumnWriter<'_>,
    col: &TextColumn,
    all: &Bytes,
    def_levels: Option<&[i16]>,
) -> Result<()> {
    let writer = get_typed_column_writer_mut::<ByteArrayType>(w);
    let mut values = Vec::with_capacity(SLICE);
    match def_levels {
        // The column's values belong to the rows with level 1, in order.
        Some(levels) => {
            let mut at = 0;
            for rows in levels.chunks(SLICE) {
                let present = rows.iter().filter(|&&l| l == 1).count();
                col.values(all, at..at + present, &mut values);
                writer.write_batch(&values, Some(rows), None)?;
                at += present;
            }
        }
        None => {
            for start in (0..col.len()).step_by(SLICE) {
                col.values(all, start..(start + SLICE).min(col.len()), &mut values);
                writer.write_batch(&values, None, None)?;
            }
        }
    }
    Ok(())
}

/// Writes a column of ids into `table`, a slice at a time.
fn interned(w: &mut ColumnWriter<'_>, ids: &[u32], table: &[ByteArray]) -> Result<()> {
    let writer = get_typed_column_writer_mut::<ByteArrayType>(w);
    let unknown = ByteArray::from("?");
    let mut values = Vec::with_capacity(SLICE);
    for slice in ids.chunks(SLICE) {
        values.clear();
        values.extend(
            slice
                .iter()
                .map(|&id| table.get(id as usize).unwrap_or(&unknown).clone()),
        );
        writer.write_batch(&values, None, None)?;
    }
    Ok(())
}

/// Writes a column of numbers: `values` (non-null only) and, for an optional column, one
/// definition level per row.
fn plain<T: DataType>(
    w: &mut ColumnWriter<'_>,
    values: &[T::T],
    def_levels: Option<&[i16]>,
) -> Result<()> {
    get_typed_column_writer_mut::<T>(w).write_batch(values, def_levels, None)?;
    Ok(())
}
