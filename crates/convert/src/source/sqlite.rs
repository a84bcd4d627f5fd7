//! BeaverDB input: opened read-only, read inside one transaction in `ORDER BY timestamp` order.

use std::path::{Path, PathBuf};

use ferret_format::LastTimestamp;
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
    after: LastTimestamp,
    /// The table's pages, when its rows can be read from the main file (see [`direct_pages`]).
    pages: Option<(TablePages, usize)>,
    /// The `(log_name, timestamp)` index's pages, read under the same conditions.
    walk: Option<IndexWalk>,
    /// Rows that will be read, or a close upper bound (for progress; 0 when not asked for).
    pub rows: u64,
}

/// Opens `path`, starts the read transaction, checks the namespace and, if `count`, estimates
/// the rows newer than `after` (for a progress bar).
pub fn open_beaver(
    path: &Path,
    kind: SourceKind,
    namespace: &str,
    after: LastTimestamp,
    count: bool,
) -> Result<BeaverSource, ConvertError> {
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
    let rows = if count {
        estimate_rows(&db, table, namespace, &after).map_err(sql(path))?
    } else {
        0
    };
    let pages = direct_pages(&db, path, table)?;
    let walk = match pages {
        Some(_) => order_index(&db, path, table, namespace, &after)?,
        None => None,
    };
    Ok(BeaverSource {
        path: path.to_path_buf(),
        db,
        table,
        namespace: namespace.to_string(),
        after,
        pages,
        walk,
        rows,
    })
}

/// A walk of the table's index on `(log_name, timestamp)` (BINARY, ascending: the primary key's
/// or BeaverDB's `idx_logs_timestamp`), for reading ferret's order from its pages; `None` when
/// the table has no such index.
fn order_index(
    db: &Connection,
    path: &Path,
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
            return IndexWalk::open(path, root, namespace, after.clone())
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
    let pages = TablePages::open(path, root).map_err(|e| super::io(path, e))?;
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
    after: &LastTimestamp,
) -> rusqlite::Result<u64> {
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
    /// Streams the rows in ferret's order into `tx`, in batches.
    pub fn stream(mut self, tx: RowSender) {
        if let Err(e) = self.stream_rows(&tx) {
            let _ = tx.send(Err(e));
        }
    }

    fn prepare(&self, query: &str) -> Result<rusqlite::Statement<'_>, ConvertError> {
        self.db.prepare(query).map_err(sql(&self.path))
    }

    /// Walks the timestamp index for the order (cheap: the index holds rowid and timestamp) and
    /// fetches each batch's rows in rowid order, by range scans over the clusters of rowids the
    /// batch needs. Fetching every row by its rowid in timestamp order instead (what `SELECT data
    /// ... ORDER BY timestamp` does) costs a B-tree descent per row: two thirds of the reading.
    /// ferret-io inserts a span when it ends and stamps it with its start, so rowid order is
    /// nearly timestamp order and a batch's rowids fall in a few dense runs.
    fn stream_rows(&mut self, tx: &RowSender) -> Result<(), ConvertError> {
        let (mut pages, mut walk) = (self.pages.take(), self.walk.take());
        let cond = after_clause(&self.after);
        let table = self.table;
        let mut order = self.prepare(&format!(
            "SELECT rowid, timestamp FROM {table} WHERE log_name = ?1 {cond} ORDER BY timestamp"
        ))?;
        let mut fetch = self.prepare(&format!(
            "SELECT rowid, data FROM {table} WHERE rowid BETWEEN ?1 AND ?2"
        ))?;
        let mut rows = match walk {
            Some(_) => None,
            None => Some(
                order
                    .query(rusqlite::params_from_iter(params(
                        &self.namespace,
                        &self.after,
                    )))
                    .map_err(sql(&self.path))?,
            ),
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
                wanted.push(rowid);
            }
            if wanted.is_empty() {
                return Ok(());
            }
            if let Some(walk) = &walk {
                last = walk.position();
            }
            let mut batch = self.fetch(&mut fetch, &mut pages, &wanted)?;
            batch.last = last;
            if tx.send(Ok(batch)).is_err() {
                return Ok(()); // the consumer stopped (an error or --strict); nothing to add
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

    fn streamed(path: &Path, after: LastTimestamp) -> (Vec<String>, LastTimestamp) {
        let src = open_beaver(path, SourceKind::Beaver1, "_ferret_trace", after, true).unwrap();
        let expected_rows = src.rows;
        let (texts, last) = stream_all(src);
        assert_eq!(texts.len() as u64, expected_rows);
        (texts, last)
    }

    fn stream_all(src: BeaverSource) -> (Vec<String>, LastTimestamp) {
        let (tx, rx) = crossbeam_channel::unbounded();
        src.stream(tx);
        let (mut texts, mut last) = (Vec::new(), LastTimestamp::None);
        for batch in rx {
            let batch = batch.unwrap();
            for (_, range) in &batch.rows {
                let text = &batch.text[range.clone().unwrap()];
                texts.push(String::from_utf8(text.to_vec()).unwrap());
            }
            last = batch.last;
        }
        (texts, last)
    }

    /// The main file's pages are read directly only when the snapshot is the main file alone,
    /// and SQLite keeps them so: a writer's commit and checkpoint meanwhile change nothing the
    /// conversion sees. Once the WAL holds frames, rows go through SQLite.
    #[test]
    fn pages_read_directly_stay_the_snapshots_while_a_writer_commits_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        scrambled_log(&path);
        let before = streamed(&path, LastTimestamp::None).0;
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        let open = || {
            let ns = "_ferret_trace";
            open_beaver(&path, SourceKind::Beaver1, ns, LastTimestamp::None, false).unwrap()
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
        let during = stream_all(src).0;
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
        let after = stream_all(src).0;
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
        let src = open_beaver(&live, SourceKind::Beaver1, ns, LastTimestamp::None, false).unwrap();
        assert!(
            src.pages.is_none() && src.walk.is_none(),
            "the WAL has frames"
        );
        drop(src);
        check_order(&live, rows);
    }

    /// The database at `path`, made by `scrambled_log`, streams its rows (all, then those after
    /// a watermark) in timestamp order.
    fn check_order(path: &Path, mut rows: Vec<(f64, String, String)>) {
        rows.retain(|(_, ns, _)| ns == "_ferret_trace");
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
        let (got, last) = streamed(path, LastTimestamp::None);
        assert_eq!(got, want);
        assert_eq!(last, LastTimestamp::Real(rows.last().unwrap().0));
        // Appending: only the rows after the watermark, still in order.
        let (got, _) = streamed(path, LastTimestamp::Real(9_999.5));
        let newer: Vec<String> = rows
            .iter()
            .filter(|r| r.0 > 9_999.5)
            .map(|r| r.2.clone())
            .collect();
        assert_eq!(got, newer);
    }
}
