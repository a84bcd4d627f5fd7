//! One row group's columns, filled span by span, kept compact until written: text columns as
//! one buffer each, names, run ids and statuses as ids into a per-file [`ValueTable`]. The
//! writing thread turns them into Parquet values a slice at a time, so a row group in flight
//! costs about 180 bytes a row.

use std::sync::Arc;

use bytes::Bytes;
use ferret_format::{Segment, SpanFile, SpanRecord};
use parquet::data_type::ByteArray;

use ferret_scan::derived::Derived;

/// The file's names and strings (run ids, statuses) as Parquet values, shared by every row.
pub struct ValueTable {
    /// Names by name id.
    pub names: Vec<ByteArray>,
    /// Strings by string id, then "ok" and "error".
    pub strings: Vec<ByteArray>,
}

impl ValueTable {
    /// The values of `file`'s tables.
    pub fn new<D: AsRef<[u8]>>(file: &SpanFile<D>) -> ValueTable {
        let names = (0..file.name_count() as u32)
            .map(|id| ByteArray::from(file.name(id).unwrap_or("?")))
            .collect();
        let strings = (0..file.string_count() as u32)
            .map(|id| file.string(id).unwrap_or("?"))
            .chain(["ok", "error"])
            .map(ByteArray::from)
            .collect();
        ValueTable { names, strings }
    }

    /// The names as text, by name id.
    pub fn name_texts(&self) -> Vec<&str> {
        texts(&self.names)
    }

    /// The strings as text, by string id (then "ok" and "error").
    pub fn string_texts(&self) -> Vec<&str> {
        texts(&self.strings)
    }

    fn ok(&self) -> u32 {
        (self.strings.len() - 2) as u32
    }

    fn error(&self) -> u32 {
        (self.strings.len() - 1) as u32
    }
}

/// Values as text (the tables hold UTF-8 checked on open).
fn texts(values: &[ByteArray]) -> Vec<&str> {
    values
        .iter()
        .map(|v| std::str::from_utf8(v.data()).unwrap_or("?"))
        .collect()
}

/// Values of one text column, back to back.
#[derive(Default)]
pub struct TextColumn {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl TextColumn {
    fn end_value(&mut self) {
        self.ends.push(self.bytes.len() as u32);
    }

    /// Values `range` as Parquet values sharing `all` (this column's bytes, frozen).
    pub fn values(&self, all: &Bytes, range: std::ops::Range<usize>, out: &mut Vec<ByteArray>) {
        out.clear();
        let mut start = match range.start {
            0 => 0,
            i => self.ends[i - 1] as usize,
        };
        for &end in &self.ends[range] {
            out.push(ByteArray::from(all.slice(start..end as usize)));
            start = end as usize;
        }
    }

    /// Moves the bytes out (to share them as values) and leaves the offsets.
    pub fn take_bytes(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.bytes))
    }

    /// The column's bytes, back to back, and where each value ends in them.
    pub fn into_parts(self) -> (Vec<u8>, Vec<u32>) {
        (self.bytes, self.ends)
    }

    /// Values in the column.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
}

/// The columns of one row group, in the schema's order (see `write::SCHEMA`).
#[derive(Default)]
pub struct RowGroup {
    /// Span ids as the source wrote them.
    pub span_id: TextColumn,
    /// Non-null parent ids only; `parent_def` says which rows have one.
    pub parent_id: TextColumn,
    /// Per row: 1 with a parent, 0 for a root (Parquet definition levels).
    pub parent_def: Vec<i16>,
    /// The id of each row's root.
    pub root_id: TextColumn,
    /// String ids into [`ValueTable::strings`].
    pub run_id: Vec<u32>,
    /// Name ids into [`ValueTable::names`].
    pub name: Vec<u32>,
    /// Start times, Unix seconds.
    pub start_time: Vec<f64>,
    /// Non-null durations only; `duration_def` says which rows have one.
    pub duration: Vec<f64>,
    /// Per row: 1 with a duration, 0 for null.
    pub duration_def: Vec<i16>,
    /// Self time per row (see [`Derived::self_time`]).
    pub self_time: Vec<f64>,
    /// String ids into [`ValueTable::strings`].
    pub status: Vec<u32>,
    /// Depth per row: 0 for a root.
    pub depth: Vec<i32>,
    /// Tags as JSON text.
    pub tags: TextColumn,
}

impl RowGroup {
    /// Rows in the group.
    pub fn len(&self) -> usize {
        self.start_time.len()
    }

    /// True when the filters left no row in the group.
    pub fn is_empty(&self) -> bool {
        self.start_time.is_empty()
    }
}

/// Builds row groups from records.
pub struct RowGroupBuilder<'f, D> {
    file: &'f SpanFile<D>,
    table: Arc<ValueTable>,
    group: RowGroup,
    /// The last root index seen and its id text.
    last_root: (Option<u64>, Vec<u8>),
}

impl<'f, D: AsRef<[u8]>> RowGroupBuilder<'f, D> {
    /// A builder for rows of `file`, whose values are in `table`.
    pub fn new(file: &'f SpanFile<D>, table: Arc<ValueTable>) -> Self {
        RowGroupBuilder {
            file,
            table,
            group: RowGroup::default(),
            last_root: (None, Vec::new()),
        }
    }

    /// Adds record `r` (global index `index`) of segment `seg` as a row.
    pub fn push(&mut self, seg: &Segment, index: u64, r: &SpanRecord, derived: Derived) {
        self.write_root_id(seg, r);
        let file = self.file;
        let g = &mut self.group;
        file.write_span_id(seg, r, &mut g.span_id.bytes);
        g.span_id.end_value();
        match file.parent_of(index, r).and_then(|p| located(file, p)) {
            Some((pseg, parent)) => {
                file.write_span_id(pseg, parent, &mut g.parent_id.bytes);
                g.parent_id.end_value();
                g.parent_def.push(1);
            }
            None => g.parent_def.push(0),
        }
        g.run_id.push(r.run);
        g.name.push(r.name);
        g.start_time.push(r.start_time);
        match r.duration() {
            Some(d) => {
                g.duration.push(d);
                g.duration_def.push(1);
            }
            None => g.duration_def.push(0),
        }
        g.self_time.push(derived.self_time(r));
        let extras = file.extras(seg, r);
        g.status.push(match (r.is_error(), extras.status) {
            (false, _) => self.table.ok(),
            (true, Some(id)) => id,
            (true, None) => self.table.error(),
        });
        g.depth
            .push(i32::try_from(derived.depth).unwrap_or(i32::MAX));
        g.tags
            .bytes
            .extend_from_slice(extras.tags_json().as_bytes());
        g.tags.end_value();
    }

    /// Appends the root's id: a tree's spans mostly follow each other, so the last root's text
    /// is reused rather than looked up and formatted again.
    fn write_root_id(&mut self, seg: &Segment, r: &SpanRecord) {
        let g = &mut self.group;
        let root = self.file.root_of(r);
        if self.last_root.0 != Some(root) {
            self.last_root.1.clear();
            match located(self.file, root) {
                Some((rseg, rr)) => self.file.write_span_id(rseg, rr, &mut self.last_root.1),
                None => self.file.write_span_id(seg, r, &mut self.last_root.1),
            }
            self.last_root.0 = Some(root);
        }
        g.root_id.bytes.extend_from_slice(&self.last_root.1);
        g.root_id.end_value();
    }

    /// The rows pushed so far as a row group; the builder starts a new one.
    pub fn finish(&mut self) -> RowGroup {
        std::mem::take(&mut self.group)
    }
}

/// The segment and record of global index `index`.
fn located<D: AsRef<[u8]>>(file: &SpanFile<D>, index: u64) -> Option<(&Segment, &SpanRecord)> {
    Some((file.segment_of(index)?, file.record(index)?))
}
