//! BeaverDB input: opened read-only, read inside one transaction, by rowid *phases*.
//!
//! ferret-io inserts a span when it ends, so the rowid follows the write order and every row
//! added after a conversion has a larger rowid than every row it read, whatever its timestamp.
//! A conversion therefore reads the rowids past its watermark (`done`) up to the snapshot's
//! largest (`upto`), in `ORDER BY timestamp` within that range, so that parents mostly come
//! before their children; the linker takes care of the rest. A conversion interrupted inside a
//! range first finishes that range from its timestamp, then reads the rows added since.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ferret_format::{LastTimestamp, RowidMark};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::index_walk::IndexWalk;
use super::pages::{PageError, TablePages};
use super::{Locator, RowBatch, RowSender, RowText, SourceKind, BATCH_ROWS};
use crate::error::ConvertError;

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> ConvertError + '_ {
    move |source| ConvertError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

fn open_ro(path: &Path) -> Result<Connection, ConvertError> {
    // SQLITE_OPEN_READ_ONLY is what the `mode=ro` URI parameter sets. Never `immutable=1`: that
    // would skip the WAL and silently miss rows of a trace still being written.
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(path))
}

fn table_of(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Beaver2 => "__beaver_logs__",
        _ => "beaver_logs",
    }
}

/// True when `path` names the very file `file` is (same device and inode).
fn names_file(path: &Path, file: &File) -> std::io::Result<bool> {
    let (named, held) = (std::fs::metadata(path)?, file.metadata()?);
    Ok(named.dev() == held.dev() && named.ino() == held.ino())
}

/// Which BeaverDB layout a SQLite file has.
pub(crate) fn layout(path: &Path) -> Result<SourceKind, ConvertError> {
    let db = open_ro(path)?;
    let has = |t: &str| -> Result<bool, ConvertError> {
        db.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [t],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(sql(path))
    };
    if has("beaver_logs")? {
        Ok(SourceKind::Beaver1)
    } else if has("__beaver_logs__")? {
        Ok(SourceKind::Beaver2)
    } else {
        Err(ConvertError::NoLogTable(path.to_path_buf()))
    }
}

/// An open BeaverDB source inside its read transaction, with the row count to convert.
pub struct BeaverSource {
    path: PathBuf,
    db: Connection,
    table: &'static str,
    namespace: String,
    /// The rowid ranges to read, in order.
    phases: Vec<Phase>,
    /// The table's pages, when its rows can be read from the main file (see [`direct_pages`]).
    pages: Option<(TablePages, usize)>,
    /// The `(log_name, timestamp)` index's pages, read under the same conditions.
    walk: Option<IndexWalk>,
    /// Rows that will be read, or a close upper bound (for progress; 0 when not asked for).
    pub rows: u64,
}

/// One range of rowids read in timestamp order: `lo < rowid <= hi`, timestamps after `after`.
#[derive(Clone, Debug)]
struct Phase {
    lo: u64,
    hi: u64,
    after: LastTimestamp,
    /// The check of the row at `hi` (see [`RowidMark::check`]).
    check_hi: u64,
}

impl Phase {
    /// The watermark while the phase is under way (with the timestamp of its batches): it keeps
    /// the check of the row at `hi`, the range's last, so that a conversion interrupted in its
    /// first phase (nothing done yet) is checked against its source when resumed too.
    fn under_way(&self) -> RowidMark {
        RowidMark {
            done: self.lo,
            upto: self.hi,
            check: self.check_hi,
        }
    }

    /// The watermark once the phase is read.
    fn finished(&self) -> RowidMark {
        RowidMark {
            done: self.hi,
            upto: self.hi,
            check: self.check_hi,
        }
    }
}

/// Opens `path`, starts the read transaction, checks the namespace and that the rows up to the
/// watermark `rowids` are still those converted, and, if `count`, estimates the rows to read
/// (for a progress bar). `after` is the timestamp reached within `rowids.done..=rowids.upto`.
pub fn open_beaver(
    path: &Path,
    kind: SourceKind,
    namespace: &str,
    after: LastTimestamp,
    rowids: RowidMark,
    count: bool,
) -> Result<BeaverSource, ConvertError> {
    // Opened before SQLite opens the path, and checked to be what the path names once the
    // snapshot is taken: the page readers read this very file, never one renamed over it.
    let pinned = File::open(path).map_err(|e| super::io(path, e))?;
    let db = open_ro(path)?;
    let table = table_of(kind);
    // One read transaction for the count and the rows: a consistent snapshot of a live file.
    db.execute_batch("BEGIN DEFERRED").map_err(sql(path))?;
    let present: Option<i64> = db
        .query_row(
            &format!("SELECT 1 FROM {table} WHERE log_name = ?1 LIMIT 1"),
            [namespace],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(path))?;
    if present.is_none() {
        return Err(ConvertError::NoNamespace {
            path: path.to_path_buf(),
            namespace: namespace.to_string(),
            available: namespaces(&db, table).map_err(sql(path))?,
        });
    }
    if !names_file(path, &pinned).map_err(|e| super::io(path, e))? {
        return Err(ConvertError::SourceRewritten {
            path: path.to_path_buf(),
            what: "it was replaced while it was being opened".into(),
        });
    }
    let phases = plan_phases(&db, path, table, after, rowids)?;
    let rows = match phases.first() {
        Some(first) if count => {
            estimate_rows(&db, table, namespace, first.lo, &first.after).map_err(sql(path))?
        }
        _ => 0,
    };
    let pages = direct_pages(&db, path, &pinned, table)?;
    // The index walk serves a range that starts at the first rowid: it visits the whole
    // namespace, which only that range needs (a later range is read by rowid, then sorted).
    let walk = match (&pages, phases.first()) {
        (Some(_), Some(first)) if first.lo == 0 => {
            order_index(&db, path, &pinned, table, namespace, &first.after)?
        }
        _ => None,
    };
    Ok(BeaverSource {
        path: path.to_path_buf(),
        db,
        table,
        namespace: namespace.to_string(),
        phases,
        pages,
        walk,
        rows,
    })
}

/// The rowid ranges a conversion from watermark `rowids` (at timestamp `after` within it) reads,
/// after checking that the source still holds the rows it converted.
fn plan_phases(
    db: &Connection,
    path: &Path,
    table: &str,
    after: LastTimestamp,
    rowids: RowidMark,
) -> Result<Vec<Phase>, ConvertError> {
    let rewritten = |what: String| ConvertError::SourceRewritten {
        path: path.to_path_buf(),
        what,
    };
    let max: i64 = db
        .query_row(
            &format!("SELECT coalesce(max(rowid), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )
        .map_err(sql(path))?;
    let max = max.max(0) as u64;
    // The check of a row the watermark names: a missing row means the source was cut.
    let check_of = |rowid: u64| -> Result<u64, ConvertError> {
        row_check(db, table, rowid)
            .map_err(sql(path))?
            .ok_or_else(|| rewritten(format!("the row at rowid {rowid} is gone")))
    };
    // The row the watermark keeps the check of: `upto`'s while a phase is under way (files
    // written before it was kept there hold `done`'s, still accepted), `done`'s after it.
    let under_way = rowids.upto > rowids.done;
    let checked = match (under_way, rowids.done) {
        (true, done) => {
            let upto = check_of(rowids.upto)?;
            upto == rowids.check || (done > 0 && check_of(done)? == rowids.check)
        }
        (false, 0) => true,
        (false, done) => check_of(done)? == rowids.check,
    };
    if !checked {
        let row = if under_way { rowids.upto } else { rowids.done };
        return Err(rewritten(format!(
            "the row at rowid {row} is not the one converted"
        )));
    }
    let mut phases = Vec::new();
    let mut lo = rowids.done;
    if under_way {
        phases.push(Phase {
            lo,
            hi: rowids.upto,
            after,
            check_hi: check_of(rowids.upto)?,
        });
        lo = rowids.upto;
    }
    if max > lo {
        phases.push(Phase {
            lo,
            hi: max,
            after: LastTimestamp::None,
            check_hi: check_of(max)?,
        });
    }
    Ok(phases)
}

/// The check of the row at `rowid`: xxh3-64 of its namespace, a zero byte and its data; `None`
/// when there is no such row.
fn row_check(db: &Connection, table: &str, rowid: u64) -> rusqlite::Result<Option<u64>> {
    db.query_row(
        &format!("SELECT CAST(log_name AS BLOB), CAST(data AS BLOB) FROM {table} WHERE rowid = ?1"),
        [rowid as i64],
        |r| {
            let mut bytes = r.get::<_, Option<Vec<u8>>>(0)?.unwrap_or_default();
            bytes.push(0);
            bytes.extend(r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default());
            Ok(xxhash_rust::xxh3::xxh3_64(&bytes))
        },
    )
    .optional()
}

/// A walk of the table's index on `(log_name, timestamp)` (BINARY, ascending: the primary key's
/// or BeaverDB's `idx_logs_timestamp`), for reading ferret's order from its pages; `None` when
/// the table has no such index.
fn order_index(
    db: &Connection,
    path: &Path,
    pinned: &File,
    table: &str,
    namespace: &str,
    after: &LastTimestamp,
) -> Result<Option<IndexWalk>, ConvertError> {
    // SQLite would compare a numeric-looking text watermark with the REAL column as a number;
    // the walk compares text as text. BeaverDB's text timestamps are datetimes, but be exact.
    if let LastTimestamp::Text(w) = after {
        if w.trim().parse::<f64>().is_ok() {
            return Ok(None);
        }
    }
    let indexes: Vec<(String, u32)> = db
        .prepare("SELECT name, rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1")
        .and_then(|mut stmt| {
            stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(sql(path))?;
    for (index, root) in indexes {
        let keys: Vec<(String, bool, String)> = db
            .prepare(
                "SELECT name, \"desc\", coll FROM pragma_index_xinfo(?1) WHERE key ORDER BY seqno",
            )
            .and_then(|mut stmt| {
                stmt.query_map([&index], |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        r.get(1)?,
                        r.get(2)?,
                    ))
                })?
                .collect()
            })
            .map_err(sql(path))?;
        let wanted = |name: &str| (name.to_string(), false, "BINARY".to_string());
        if keys == [wanted("log_name"), wanted("timestamp")] {
            let file = pinned.try_clone().map_err(|e| super::io(path, e))?;
            return IndexWalk::open(file, root, namespace, after.clone())
                .map_err(|e| super::io(path, e));
        }
    }
    Ok(None)
}

/// The table's B-tree pages and the `data` column's position, when this read transaction (which
/// must have read something, so that its snapshot is taken) sees the main file alone: no
/// write-ahead log with frames. Then no checkpoint may write into the main file until the
/// transaction ends, and rows can be read from its pages directly (`pages.rs`), ~20x cheaper than
/// through a statement. Otherwise (a trace still being written, a UTF-16 database, a table
/// without rowids) `None`: rows go through SQLite, which reads the WAL.
fn direct_pages(
    db: &Connection,
    path: &Path,
    pinned: &File,
    table: &str,
) -> Result<Option<(TablePages, usize)>, ConvertError> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Ok(None);
    }
    let (root, create): (u32, String) = db
        .query_row(
            "SELECT rootpage, sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql(path))?;
    if create.to_ascii_uppercase().contains("WITHOUT ROWID") {
        return Ok(None);
    }
    let column: Option<usize> = db
        .query_row(
            "SELECT cid FROM pragma_table_info(?1) WHERE name = 'data'",
            [table],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(path))?;
    let Some(column) = column else {
        return Ok(None);
    };
    let file = pinned.try_clone().map_err(|e| super::io(path, e))?;
    let pages = TablePages::open(file, root).map_err(|e| super::io(path, e))?;
    Ok(pages.map(|p| (p, column)))
}

/// How many rows a conversion will read, for the progress bar. A whole table of our namespace
/// alone (what ferret-io writes) is bounded by its rowid range, found in two B-tree descents; a
/// `count(*)` walks the whole index (0.8 s of a 6.9 s conversion of 6M rows). ferret-io never
/// deletes, so the bound is exact on its files. Other namespaces or a watermark: an exact count
/// of the rows concerned.
fn estimate_rows(
    db: &Connection,
    table: &str,
    namespace: &str,
    lo: u64,
    after: &LastTimestamp,
) -> rusqlite::Result<u64> {
    if lo > 0 {
        // Rows added since a conversion: a range scan of the new rowids, not of the namespace.
        return db.query_row(
            &format!("SELECT count(*) FROM {table} NOT INDEXED WHERE rowid > ?2 AND log_name = ?1"),
            rusqlite::params![namespace, lo as i64],
            |r| r.get::<_, i64>(0).map(|n| n.max(0) as u64),
        );
    }
    let edge = |order: &str| -> rusqlite::Result<Option<String>> {
        db.query_row(
            &format!("SELECT log_name FROM {table} ORDER BY log_name {order} LIMIT 1"),
            [],
            |r| r.get(0),
        )
        .optional()
    };
    let alone =
        edge("ASC")?.as_deref() == Some(namespace) && edge("DESC")?.as_deref() == Some(namespace);
    let rows: i64 = if alone && after_clause(after).is_empty() {
        let rowid = |f: &str| -> rusqlite::Result<Option<i64>> {
            db.query_row(&format!("SELECT {f}(rowid) FROM {table}"), [], |r| r.get(0))
        };
        match (rowid("min")?, rowid("max")?) {
            (Some(min), Some(max)) => max - min + 1,
            _ => 0,
        }
    } else {
        let cond = after_clause(after);
        db.query_row(
            &format!("SELECT count(*) FROM {table} WHERE log_name = ?1 {cond}"),
            rusqlite::params_from_iter(params(namespace, after)),
            |r| r.get(0),
        )?
    };
    Ok(rows.max(0) as u64)
}

/// The namespaces of the log table with their row counts, for the error naming what exists.
fn namespaces(db: &Connection, table: &str) -> rusqlite::Result<String> {
    let mut stmt = db.prepare(&format!(
        "SELECT log_name, count(*) FROM {table} GROUP BY log_name ORDER BY log_name"
    ))?;
    let counts = stmt
        .query_map([], |r| {
            Ok(format!(
                "{:?} ({} rows)",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(if counts.is_empty() {
        "no namespaces (the log table is empty)".to_string()
    } else {
        counts.join(", ")
    })
}

/// The condition that keeps only rows after the watermark (bound as `?2`), if there is one.
fn after_clause(after: &LastTimestamp) -> &'static str {
    match after {
        LastTimestamp::Real(_) | LastTimestamp::Text(_) => "AND timestamp > ?2",
        _ => "",
    }
}

fn params(namespace: &str, after: &LastTimestamp) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value;
    let mut p = vec![Value::Text(namespace.to_string())];
    match after {
        LastTimestamp::Real(t) => p.push(Value::Real(*t)),
        LastTimestamp::Text(t) => p.push(Value::Text(t.clone())),
        _ => {}
    }
    p
}

impl BeaverSource {
    /// Streams the rows into `tx`, in batches: each phase in timestamp order, closed by an empty
    /// batch that carries the phase's finished watermark.
    pub fn stream(mut self, tx: RowSender) {
        if let Err(e) = self.stream_rows(&tx) {
            let _ = tx.send(Err(e));
        }
    }

    fn prepare(&self, query: &str) -> Result<rusqlite::Statement<'_>, ConvertError> {
        self.db.prepare(query).map_err(sql(&self.path))
    }

    fn stream_rows(&mut self, tx: &RowSender) -> Result<(), ConvertError> {
        let mut pages = self.pages.take();
        for phase in std::mem::take(&mut self.phases) {
            let walk = if phase.lo == 0 {
                self.walk.take()
            } else {
                None
            };
            if !self.stream_phase(tx, &phase, walk, &mut pages)? {
                return Ok(()); // the consumer stopped (an error or --strict); nothing to add
            }
            let mut end = RowBatch::empty();
            end.rowids = phase.finished();
            if tx.send(Ok(end)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Streams one phase. The order comes from the timestamp index (walked from its pages, or
    /// through SQLite) for a range from the first rowid, and from a sort of the range's rows
    /// otherwise; each batch's rows are then fetched in rowid order, by range scans over the
    /// clusters of rowids the batch needs. Fetching every row by its rowid in timestamp order
    /// instead (what `SELECT data ... ORDER BY timestamp` does) costs a B-tree descent per row:
    /// two thirds of the reading. ferret-io inserts a span when it ends and stamps it with its
    /// start, so rowid order is nearly timestamp order and a batch's rowids fall in a few dense
    /// runs. Returns false when the consumer is gone.
    fn stream_phase(
        &self,
        tx: &RowSender,
        phase: &Phase,
        mut walk: Option<IndexWalk>,
        pages: &mut Option<(TablePages, usize)>,
    ) -> Result<bool, ConvertError> {
        let table = self.table;
        let cond = after_clause(&phase.after);
        // From the first rowid the index gives the order cheaply; a later range is a rowid
        // range scan and a sort of its rows (never a walk of the whole namespace's index).
        let hint = if phase.lo == 0 { "" } else { "NOT INDEXED" };
        let mut order = self.prepare(&format!(
            "SELECT rowid, timestamp FROM {table} {hint} WHERE rowid > ?3 AND rowid <= ?4 \
             AND log_name = ?1 {cond} ORDER BY timestamp"
        ))?;
        let mut fetch = self.prepare(&format!(
            "SELECT rowid, data FROM {table} WHERE rowid BETWEEN ?1 AND ?2"
        ))?;
        let mut rows = match walk {
            Some(_) => None,
            None => {
                use rusqlite::types::Value;
                // ?2 is bound even when the statement has no timestamp condition: ?3 and ?4
                // make it one of the statement's parameters all the same.
                let mut p = params(&self.namespace, &phase.after);
                p.resize(2, Value::Null);
                p.extend([
                    Value::Integer(phase.lo as i64),
                    Value::Integer(phase.hi as i64),
                ]);
                let rows = order.query(rusqlite::params_from_iter(p));
                Some(rows.map_err(sql(&self.path))?)
            }
        };
        let mut wanted = Vec::with_capacity(BATCH_ROWS);
        loop {
            wanted.clear();
            let mut last = LastTimestamp::None;
            while wanted.len() < BATCH_ROWS {
                let next = match (&mut walk, &mut rows) {
                    (Some(walk), _) => walk.next_rowid().map_err(|e| self.damaged(e))?,
                    (None, Some(rows)) => match rows.next().map_err(sql(&self.path))? {
                        Some(r) => {
                            last = position(r.get_ref(1).map_err(sql(&self.path))?);
                            Some(r.get::<_, i64>(0).map_err(sql(&self.path))?)
                        }
                        None => None,
                    },
                    (None, None) => None,
                };
                let Some(rowid) = next else {
                    break;
                };
                // A walk sees the whole snapshot: rows past the range are the next phase's.
                if rowid as u64 > phase.hi {
                    continue;
                }
                wanted.push(rowid);
            }
            if wanted.is_empty() {
                return Ok(true);
            }
            if let Some(walk) = &walk {
                last = walk.position();
            }
            let mut batch = self.fetch(&mut fetch, pages, &wanted)?;
            batch.last = last;
            batch.rowids = phase.under_way();
            if tx.send(Ok(batch)).is_err() {
                return Ok(false);
            }
        }
    }

    /// A damaged page of the database, as the error that names it.
    fn damaged(&self, e: PageError) -> ConvertError {
        ConvertError::Damaged {
            path: self.path.clone(),
            what: e.to_string(),
        }
    }

    /// The rows `wanted` (rowids in timestamp order) as a batch in that order.
    fn fetch(
        &self,
        fetch: &mut rusqlite::Statement,
        pages: &mut Option<(TablePages, usize)>,
        wanted: &[i64],
    ) -> Result<RowBatch, ConvertError> {
        let mut by_rowid: Vec<(i64, usize)> =
            wanted.iter().enumerate().map(|(i, &r)| (r, i)).collect();
        by_rowid.sort_unstable();
        let mut texts: Vec<Option<RowText>> = vec![None; wanted.len()];
        let mut batch = RowBatch::with_capacity();
        for run in rowid_runs(&by_rowid) {
            let (lo, hi) = (run[0].0, run[run.len() - 1].0);
            let mut next = run.iter().peekable();
            // Rows of another batch, namespace or run of the append are passed over.
            let mut take = |rowid: i64, data: Result<&[u8], String>| {
                while next.next_if(|&&(want, _)| want < rowid).is_some() {}
                if let Some(&(_, slot)) = next.next_if(|&&(want, _)| want == rowid) {
                    texts[slot] = Some(batch.push_text(data));
                }
            };
            match pages {
                Some((pages, column)) => pages
                    .scan(lo, hi, *column, &mut take)
                    .map_err(|e| self.damaged(e))?,
                None => {
                    let mut rows = fetch.query([lo, hi]).map_err(sql(&self.path))?;
                    while let Some(r) = rows.next().map_err(sql(&self.path))? {
                        let rowid: i64 = r.get(0).map_err(sql(&self.path))?;
                        take(rowid, text_of(r.get_ref(1).map_err(sql(&self.path))?));
                    }
                }
            }
        }
        batch.rows = wanted
            .iter()
            .zip(texts)
            .map(|(&rowid, text)| {
                // One read transaction: a row the index lists is in the table.
                let text = text.unwrap_or_else(|| Err("row vanished while reading".to_string()));
                (Locator::RowId(rowid), text)
            })
            .collect();
        Ok(batch)
    }
}

/// Rowids further apart than this are fetched by separate range scans. Stepping over a row costs
/// a fraction of a descent from the root, so even a batch whose rows are spread out (another
/// namespace interleaved, every fourth row ours) costs no more than descents would; on ferret-io's
/// files the runs barely change with the gap (1M spans: 816 range scans at 4, 556 at 16).
const MAX_ROWID_GAP: i64 = 4;

/// Splits rowids (sorted) into runs without a gap wider than [`MAX_ROWID_GAP`].
fn rowid_runs(sorted: &[(i64, usize)]) -> impl Iterator<Item = &[(i64, usize)]> {
    sorted.chunk_by(|a, b| b.0 - a.0 <= MAX_ROWID_GAP)
}

/// The data column's bytes (UTF-8 is checked by the parser), or why it has none.
pub(super) fn text_of(v: ValueRef<'_>) -> Result<&[u8], String> {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => Ok(b),
        ValueRef::Null => Err("data is NULL".to_string()),
        _ => Err("data is not text".to_string()),
    }
}

/// A timestamp column value as a watermark.
pub(super) fn position(v: ValueRef) -> LastTimestamp {
    match v {
        ValueRef::Real(t) => LastTimestamp::Real(t),
        ValueRef::Integer(t) => LastTimestamp::Real(t as f64),
        ValueRef::Text(t) => LastTimestamp::Text(String::from_utf8_lossy(t).into_owned()),
        _ => LastTimestamp::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log table whose rowid order is far from its timestamp order (rows shuffled within
    /// windows, a few inserted last with the earliest timestamps, like long-lived spans) with a
    /// second namespace interleaved.
    fn scrambled_log(path: &Path) -> Vec<(f64, String, String)> {
        scrambled_log_in(&Connection::open(path).unwrap())
    }

    fn scrambled_log_in(db: &Connection) -> Vec<(f64, String, String)> {
        db.execute_batch(
            "CREATE TABLE beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL, \
             data TEXT NOT NULL, PRIMARY KEY (log_name, timestamp)); \
             CREATE INDEX idx_logs_timestamp ON beaver_logs (log_name, timestamp); BEGIN;",
        )
        .unwrap();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rows: Vec<(f64, String, String)> = (0..20_000u32)
            .map(|i| {
                let x = super::super::xorshift(&mut seed);
                let ns = if x % 5 == 1 { "other" } else { "_ferret_trace" };
                (f64::from(i), ns.to_string(), format!("{{\"i\":{i}}}"))
            })
            .collect();
        for (i, window) in rows.chunks_mut(700).enumerate() {
            window.reverse();
            window.rotate_left(i * 37 % 700 % window.len().max(1));
        }
        rows.rotate_left(25); // the earliest rows go in last
        let mut insert = db
            .prepare("INSERT INTO beaver_logs VALUES (?1, ?2, ?3)")
            .unwrap();
        for (ts, ns, data) in &rows {
            insert.execute(rusqlite::params![ns, ts, data]).unwrap();
        }
        drop(insert);
        db.execute_batch("COMMIT").unwrap();
        rows
    }

    /// What a source streamed: the rows' texts, the timestamp of the last row, and the rowid
    /// mark of the last batch (the watermark a conversion ends on).
    struct Streamed {
        texts: Vec<String>,
        last: LastTimestamp,
        rowids: RowidMark,
    }

    fn open_at(path: &Path, after: LastTimestamp, rowids: RowidMark) -> BeaverSource {
        open_beaver(
            path,
            SourceKind::Beaver1,
            "_ferret_trace",
            after,
            rowids,
            true,
        )
        .unwrap()
    }

    fn streamed(path: &Path, after: LastTimestamp, rowids: RowidMark) -> Streamed {
        let src = open_at(path, after, rowids);
        let expected_rows = src.rows;
        let got = stream_all(src);
        assert_eq!(got.texts.len() as u64, expected_rows);
        got
    }

    fn stream_all(src: BeaverSource) -> Streamed {
        let (tx, rx) = crossbeam_channel::unbounded();
        src.stream(tx);
        let mut got = Streamed {
            texts: Vec::new(),
            last: LastTimestamp::None,
            rowids: RowidMark::default(),
        };
        for batch in rx {
            let batch = batch.unwrap();
            for (_, range) in &batch.rows {
                let text = &batch.text[range.clone().unwrap()];
                got.texts.push(String::from_utf8(text.to_vec()).unwrap());
            }
            if !batch.rows.is_empty() {
                got.last = batch.last;
            }
            got.rowids = batch.rowids;
        }
        got
    }

    fn none() -> RowidMark {
        RowidMark::default()
    }

    /// The main file's pages are read directly only when the snapshot is the main file alone,
    /// and SQLite keeps them so: a writer's commit and checkpoint meanwhile change nothing the
    /// conversion sees. Once the WAL holds frames, rows go through SQLite.
    #[test]
    fn pages_read_directly_stay_the_snapshots_while_a_writer_commits_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        scrambled_log(&path);
        let before = streamed(&path, LastTimestamp::None, none()).texts;
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        let open = || {
            let ns = "_ferret_trace";
            open_beaver(
                &path,
                SourceKind::Beaver1,
                ns,
                LastTimestamp::None,
                none(),
                false,
            )
            .unwrap()
        };
        let src = open();
        assert!(
            src.pages.is_some(),
            "no WAL frames: the pages are read directly"
        );
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer
            .execute("UPDATE beaver_logs SET data = '{\"changed\":1}'", [])
            .unwrap();
        // Not allowed to copy the new pages into the main file while the conversion reads it.
        let _: (i64, i64, i64) = writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        let during = stream_all(src).texts;
        let differ = during.iter().zip(&before).filter(|(a, b)| a != b).count();
        assert!(
            during.len() == before.len() && differ == 0,
            "{differ} rows changed"
        );
        let src = open();
        assert!(
            src.pages.is_none(),
            "the WAL holds the update: rows go through SQLite"
        );
        let after = stream_all(src).texts;
        let changed = after.iter().filter(|t| *t == "{\"changed\":1}").count();
        assert_eq!((changed, after.len()), (before.len(), before.len()));
    }

    #[test]
    fn rows_come_in_timestamp_order_whatever_their_rowids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        check_order(&path, scrambled_log(&path));
        // The same rows held in a WAL (the writer still open, no checkpoint), so that the order
        // and the rows come through SQLite statements rather than the pages.
        let live = dir.path().join("live.db");
        let writer = Connection::open(&live).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        let rows = scrambled_log_in(&writer);
        let ns = "_ferret_trace";
        let src = open_beaver(
            &live,
            SourceKind::Beaver1,
            ns,
            LastTimestamp::None,
            none(),
            false,
        )
        .unwrap();
        assert!(
            src.pages.is_none() && src.walk.is_none(),
            "the WAL has frames"
        );
        drop(src);
        check_order(&live, rows);
    }

    /// The database at `path`, made by `scrambled_log`, streams its rows (all, then those after
    /// a timestamp inside an interrupted conversion) in timestamp order.
    fn check_order(path: &Path, mut rows: Vec<(f64, String, String)>) {
        rows.retain(|(_, ns, _)| ns == "_ferret_trace");
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
        let all = streamed(path, LastTimestamp::None, none());
        assert_eq!(all.texts, want);
        assert_eq!(all.last, LastTimestamp::Real(rows.last().unwrap().0));
        assert_eq!(
            all.rowids.done, 20_000,
            "every rowid of the snapshot is converted"
        );
        // Resuming a conversion interrupted at a timestamp: the rest of its rows, in order. Its
        // watermark holds the check of the phase's last row (here the snapshot's last), so the
        // source is checked even before any phase is done: another file is refused.
        let interrupted = RowidMark {
            done: 0,
            upto: all.rowids.done,
            check: all.rowids.check,
        };
        let replaced = RowidMark {
            check: interrupted.check ^ 1,
            ..interrupted
        };
        let refused = open_beaver(
            path,
            SourceKind::Beaver1,
            "_ferret_trace",
            LastTimestamp::Real(9_999.5),
            replaced,
            false,
        );
        assert!(matches!(refused, Err(ConvertError::SourceRewritten { .. })));
        let got = streamed(path, LastTimestamp::Real(9_999.5), interrupted);
        let newer: Vec<String> = rows
            .iter()
            .filter(|r| r.0 > 9_999.5)
            .map(|r| r.2.clone())
            .collect();
        assert_eq!(got.texts, newer);
        assert_eq!(got.rowids, all.rowids);
    }

    /// ferret-io writes a span when it ends, keyed by its start: rows added after a conversion
    /// can be older than every row it read. The rowid watermark reads exactly those.
    #[test]
    fn rows_added_later_are_read_whatever_their_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        scrambled_log(&path);
        let first = streamed(&path, LastTimestamp::None, none());
        let db = Connection::open(&path).unwrap();
        // A span that was open: it started first and is written last. And one new span.
        for (ts, data) in [(-5.0, "main"), (30_000.0, "late"), (-1.0, "task")] {
            db.execute(
                "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
                rusqlite::params![ts, data],
            )
            .unwrap();
        }
        let next = streamed(&path, LastTimestamp::None, first.rowids);
        assert_eq!(next.texts, ["main", "task", "late"]);
        assert_eq!(next.rowids.done, 20_003);
        // Nothing new: nothing read, and the watermark stays.
        let again = open_at(&path, LastTimestamp::None, next.rowids);
        assert_eq!(again.phases.len(), 0);
    }

    #[test]
    fn a_source_rewritten_since_the_last_conversion_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        scrambled_log(&path);
        let mark = streamed(&path, LastTimestamp::None, none()).rowids;
        let refused = |path: &Path| {
            let e = open_beaver(
                path,
                SourceKind::Beaver1,
                "_ferret_trace",
                LastTimestamp::None,
                mark,
                false,
            )
            .err()
            .expect("refused");
            assert!(matches!(e, ConvertError::SourceRewritten { .. }), "{e}");
            assert!(e.to_string().contains("--force"), "{e}");
        };
        // Another file in its place: the row at the watermark differs.
        let other = dir.path().join("other.db");
        let db = Connection::open(&other).unwrap();
        scrambled_log_in(&db);
        db.execute(
            "UPDATE beaver_logs SET data = 'x' WHERE rowid = ?1",
            [mark.done as i64],
        )
        .unwrap();
        refused(&other);
        // Rows cut off the end: the row at the watermark is gone.
        let db = Connection::open(&path).unwrap();
        db.execute(
            "DELETE FROM beaver_logs WHERE rowid >= ?1",
            [mark.done as i64 - 10],
        )
        .unwrap();
        refused(&path);
    }
}
