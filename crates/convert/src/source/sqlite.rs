//! BeaverDB input: opened read-only, read inside one transaction in `ORDER BY timestamp` order.

use std::path::{Path, PathBuf};

use ferret_format::LastTimestamp;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{Locator, RowBatch, RowSender, SourceKind};
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
    /// Rows that will be read (for progress).
    pub rows: u64,
}

/// Opens `path`, starts the read transaction, checks the namespace and, if `count`, counts the
/// rows newer than `after` (for a progress bar).
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
    let rows: i64 = if count {
        let (cond, _) = after_clause(&after);
        db.query_row(
            &format!("SELECT count(*) FROM {table} WHERE log_name = ?1 {cond}"),
            rusqlite::params_from_iter(params(namespace, &after)),
            |r| r.get(0),
        )
        .map_err(sql(path))?
    } else {
        0
    };
    Ok(BeaverSource {
        path: path.to_path_buf(),
        db,
        table,
        namespace: namespace.to_string(),
        after,
        rows: rows as u64,
    })
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

fn after_clause(after: &LastTimestamp) -> (&'static str, bool) {
    match after {
        LastTimestamp::Real(_) | LastTimestamp::Text(_) => ("AND timestamp > ?2", true),
        _ => ("", false),
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
    pub fn stream(self, tx: RowSender) {
        if let Err(e) = self.stream_rows(&tx) {
            let _ = tx.send(Err(e));
        }
    }

    fn stream_rows(&self, tx: &RowSender) -> Result<(), ConvertError> {
        let (cond, _) = after_clause(&self.after);
        let mut stmt = self
            .db
            .prepare(&format!(
                "SELECT rowid, timestamp, data FROM {} WHERE log_name = ?1 {cond} ORDER BY timestamp",
                self.table
            ))
            .map_err(sql(&self.path))?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params(
                &self.namespace,
                &self.after,
            )))
            .map_err(sql(&self.path))?;
        let mut batch = RowBatch::with_capacity();
        while let Some(r) = rows.next().map_err(sql(&self.path))? {
            let rowid: i64 = r.get(0).map_err(sql(&self.path))?;
            let data = match r.get_ref(2).map_err(sql(&self.path))? {
                ValueRef::Text(b) | ValueRef::Blob(b) => {
                    std::str::from_utf8(b).map_err(|e| format!("data is not UTF-8 ({e})"))
                }
                ValueRef::Null => Err("data is NULL".to_string()),
                _ => Err("data is not text".to_string()),
            };
            batch.push(Locator::RowId(rowid), data);
            if batch.is_full() {
                batch.last = position(r.get_ref(1).map_err(sql(&self.path))?);
                let full = std::mem::replace(&mut batch, RowBatch::with_capacity());
                if tx.send(Ok(full)).is_err() {
                    return Ok(()); // the consumer stopped (an error or --strict); nothing to add
                }
            }
        }
        if !batch.rows.is_empty() {
            batch.last = self.last_position(&batch)?;
            let _ = tx.send(Ok(batch));
        }
        Ok(())
    }

    /// The timestamp of the batch's last row, read back by rowid (the cursor has moved on).
    fn last_position(&self, batch: &RowBatch) -> Result<LastTimestamp, ConvertError> {
        let Some((Locator::RowId(rowid), _)) = batch.rows.last() else {
            return Ok(LastTimestamp::None);
        };
        self.db
            .query_row(
                &format!("SELECT timestamp FROM {} WHERE rowid = ?1", self.table),
                [rowid],
                |r| Ok(position(r.get_ref(0)?)),
            )
            .map_err(sql(&self.path))
    }
}

/// A timestamp column value as a watermark.
fn position(v: ValueRef) -> LastTimestamp {
    match v {
        ValueRef::Real(t) => LastTimestamp::Real(t),
        ValueRef::Integer(t) => LastTimestamp::Real(t as f64),
        ValueRef::Text(t) => LastTimestamp::Text(String::from_utf8_lossy(t).into_owned()),
        _ => LastTimestamp::None,
    }
}
