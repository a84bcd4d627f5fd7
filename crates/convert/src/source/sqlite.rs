//! BeaverDB input: opened read-only, read inside one transaction in `ORDER BY timestamp` order.

use std::path::{Path, PathBuf};

use ferret_format::LastTimestamp;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{Locator, Row, RowSender, SourceKind, BATCH_ROWS};
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

/// Opens `path`, starts the read transaction, checks the namespace and counts the rows newer
/// than `after`.
pub fn open_beaver(
    path: &Path,
    kind: SourceKind,
    namespace: &str,
    after: LastTimestamp,
) -> Result<BeaverSource, ConvertError> {
    let db = open_ro(path)?;
    let table = table_of(kind);
    // One read transaction for the count and the rows: a consistent snapshot of a live file.
    db.execute_batch("BEGIN DEFERRED").map_err(sql(path))?;
    let mut counts = Vec::new();
    {
        let mut stmt = db
            .prepare(&format!(
                "SELECT log_name, count(*) FROM {table} GROUP BY log_name ORDER BY log_name"
            ))
            .map_err(sql(path))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(sql(path))?;
        for row in rows {
            counts.push(row.map_err(sql(path))?);
        }
    }
    if !counts.iter().any(|(n, _)| n == namespace) {
        let available = if counts.is_empty() {
            "no namespaces (the log table is empty)".to_string()
        } else {
            counts
                .iter()
                .map(|(n, c)| format!("{n:?} ({c} rows)"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(ConvertError::NoNamespace {
            path: path.to_path_buf(),
            namespace: namespace.to_string(),
            available,
        });
    }
    let (cond, _) = after_clause(&after);
    let rows: i64 = db
        .query_row(
            &format!("SELECT count(*) FROM {table} WHERE log_name = ?1 {cond}"),
            rusqlite::params_from_iter(params(namespace, &after)),
            |r| r.get(0),
        )
        .map_err(sql(path))?;
    Ok(BeaverSource {
        path: path.to_path_buf(),
        db,
        table,
        namespace: namespace.to_string(),
        after,
        rows: rows as u64,
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
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        while let Some(r) = rows.next().map_err(sql(&self.path))? {
            let rowid: i64 = r.get(0).map_err(sql(&self.path))?;
            let position = match r.get_ref(1).map_err(sql(&self.path))? {
                ValueRef::Real(t) => LastTimestamp::Real(t),
                ValueRef::Integer(t) => LastTimestamp::Real(t as f64),
                ValueRef::Text(t) => LastTimestamp::Text(String::from_utf8_lossy(t).into_owned()),
                _ => LastTimestamp::None,
            };
            let data = match r.get_ref(2).map_err(sql(&self.path))? {
                ValueRef::Text(b) | ValueRef::Blob(b) => std::str::from_utf8(b)
                    .map(str::to_owned)
                    .map_err(|e| format!("data is not UTF-8 ({e})")),
                ValueRef::Null => Err("data is NULL".to_string()),
                _ => Err("data is not text".to_string()),
            };
            batch.push(Row {
                locator: Locator::RowId(rowid),
                position,
                data,
            });
            if batch.len() == BATCH_ROWS {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                if tx.send(Ok(full)).is_err() {
                    return Ok(()); // the consumer stopped (an error or --strict); nothing to add
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(Ok(batch));
        }
        Ok(())
    }
}
