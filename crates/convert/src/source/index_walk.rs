//! ferret's order read straight from BeaverDB's `(log_name, timestamp)` index pages: the rowids
//! of one namespace's rows in timestamp order, after a watermark. The conditions that make
//! [`super::pages`] safe make this safe (a snapshot of the main file alone); it replaces a
//! statement step and two column reads per row.
//!
//! An index B-tree keeps its entries in order with interior cells between their children, so the
//! walk is in order: child 0, cell 0, child 1, cell 1, ..., the right-most child. Each entry is a
//! record `(log_name, timestamp, rowid)`; comparisons follow SQLite's rules for the query this
//! replaces (`WHERE log_name = ?1 AND timestamp > ?2 ORDER BY timestamp`): BINARY collation, and
//! NULL before numbers before text before blobs.

use std::cmp::Ordering;
use std::collections::HashSet;

use ferret_format::LastTimestamp;

use super::pages::{
    bad, be_u32, cell_count, cell_offset, header_start, varint, PageFile, PageResult, RecordValues,
    Tree, MAX_BTREE_DEPTH,
};

/// One level of the walk: a page, and where in it the walk is.
struct Frame {
    page: u32,
    bytes: Box<[u8]>,
    leaf: bool,
    /// The next cell to hand out (on an interior page, the one whose left child comes first).
    cell: usize,
    /// On an interior page: the child before `cell` has been walked.
    descended: bool,
}

/// A timestamp as the index holds it, ordered as SQLite orders values.
#[derive(Clone, Debug, PartialEq)]
enum Stamp {
    Null,
    Number(f64),
    Text(Vec<u8>),
    Blob,
}

impl Stamp {
    /// Whether this timestamp is after the watermark `after` (`timestamp > ?2`).
    fn after(&self, after: &LastTimestamp) -> bool {
        match (after, self) {
            (_, Stamp::Null) => false,
            (LastTimestamp::Real(w), Stamp::Number(v)) => v > w,
            (LastTimestamp::Text(w), Stamp::Text(t)) => t.as_slice() > w.as_bytes(),
            (LastTimestamp::Text(_), Stamp::Number(_)) => false,
            // Text and blobs sort after every number, blobs after text; no watermark: all.
            _ => true,
        }
    }
}

/// One index entry: its namespace against the one walked, its timestamp and rowid.
struct Entry {
    namespace: Ordering,
    stamp: Stamp,
    rowid: i64,
}

/// Walks one namespace's index entries in order.
pub struct IndexWalk {
    pages: PageFile,
    /// The root, until the first call reads it.
    root: Option<u32>,
    stack: Vec<Frame>,
    visited: HashSet<u32>,
    namespace: Vec<u8>,
    after: LastTimestamp,
    payload: Vec<u8>,
    /// The timestamp of the last rowid handed out.
    last: Stamp,
}

impl IndexWalk {
    /// Opens the index whose root page is `root` in the database open as `file`, to walk the
    /// entries of `namespace` after `after`; `None` when the file is one left to SQLite (see
    /// [`PageFile::open`]).
    pub fn open(
        file: std::fs::File,
        root: u32,
        namespace: &str,
        after: LastTimestamp,
    ) -> std::io::Result<Option<IndexWalk>> {
        Ok(PageFile::open(file)?.map(|pages| IndexWalk {
            pages,
            root: Some(root),
            stack: Vec::new(),
            visited: HashSet::new(),
            namespace: namespace.as_bytes().to_vec(),
            after,
            payload: Vec::new(),
            last: Stamp::Null,
        }))
    }

    /// The rowid of the namespace's next row after the watermark, in timestamp order.
    pub fn next_rowid(&mut self) -> PageResult<Option<i64>> {
        while let Some(entry) = self.next_entry()? {
            match entry.namespace {
                Ordering::Less => continue,
                Ordering::Greater => break,
                Ordering::Equal if entry.stamp.after(&self.after) => {
                    self.last = entry.stamp;
                    return Ok(Some(entry.rowid));
                }
                Ordering::Equal => continue,
            }
        }
        self.stack.clear();
        Ok(None)
    }

    /// The watermark after the last rowid handed out.
    pub fn position(&self) -> LastTimestamp {
        match &self.last {
            Stamp::Number(v) => LastTimestamp::Real(*v),
            Stamp::Text(t) => LastTimestamp::Text(String::from_utf8_lossy(t).into_owned()),
            Stamp::Null | Stamp::Blob => LastTimestamp::None,
        }
    }

    /// Reads `page` onto the stack (each page once: a damaged tree could loop).
    fn push(&mut self, page: u32) -> PageResult<()> {
        if !self.visited.insert(page) {
            return bad(page, "reached twice: the B-tree has a cycle");
        }
        if self.stack.len() >= MAX_BTREE_DEPTH {
            return bad(page, format!("deeper than {MAX_BTREE_DEPTH} levels"));
        }
        let mut bytes = vec![0; self.pages.page_size].into_boxed_slice();
        self.pages.read_page(page, &mut bytes)?;
        let leaf = match bytes[header_start(page)] {
            0x0a => true,
            0x02 => false,
            t => return bad(page, format!("page type {t:#04x} in an index B-tree")),
        };
        self.stack.push(Frame {
            page,
            bytes,
            leaf,
            cell: 0,
            descended: false,
        });
        Ok(())
    }

    /// The next entry in index order.
    fn next_entry(&mut self) -> PageResult<Option<Entry>> {
        if let Some(root) = self.root.take() {
            self.push(root)?;
        }
        loop {
            let Some(top) = self.stack.last_mut() else {
                return Ok(None);
            };
            let h = header_start(top.page);
            let cells = cell_count(&top.bytes, h);
            if top.leaf || top.descended {
                if top.cell < cells {
                    let i = top.cell;
                    top.cell += 1;
                    top.descended = false;
                    let frame = self.stack.last().expect("just seen");
                    return entry(&self.pages, frame, i, &self.namespace, &mut self.payload)
                        .map(Some);
                }
                self.stack.pop();
                continue;
            }
            top.descended = true;
            let page = top.page;
            let child = if top.cell < cells {
                cell_offset(&top.bytes, h + 12, top.cell, self.pages.usable)
                    .and_then(|at| be_u32(&top.bytes, at))
            } else {
                be_u32(&top.bytes, h + 8)
            };
            match child {
                Some(child) => self.push(child)?,
                None => return bad(page, "a child pointer runs past the page"),
            }
        }
    }
}

/// Entry `i` of `frame`'s page.
fn entry(
    pages: &PageFile,
    frame: &Frame,
    i: usize,
    namespace: &[u8],
    payload: &mut Vec<u8>,
) -> PageResult<Entry> {
    let (page, p) = (frame.page, &frame.bytes[..]);
    let h = header_start(page);
    let array = h + if frame.leaf { 8 } else { 12 };
    let Some(at) = cell_offset(p, array, i, pages.usable) else {
        return bad(page, format!("cell {i} points outside the page"));
    };
    let at = if frame.leaf { at } else { at + 4 };
    let Some((size, n)) = varint(p, at) else {
        return bad(page, format!("cell {i} runs past the page"));
    };
    let record = pages.payload(page, p, (at + n, size), Tree::Index, payload)?;
    match read_entry(record, namespace) {
        Some(entry) => Ok(entry),
        None => bad(page, format!("cell {i}: malformed index record")),
    }
}

/// A record `(log_name, timestamp, rowid)`, compared with `namespace`.
fn read_entry(record: &[u8], namespace: &[u8]) -> Option<Entry> {
    let mut values = RecordValues::new(record)?;
    let mut value = || values.next()?.ok();
    let (name_type, name) = value()?;
    let namespace = match name_type {
        s if s >= 13 && s % 2 == 1 => name.cmp(namespace),
        s if s >= 12 => Ordering::Greater, // a blob sorts after text
        _ => Ordering::Less,               // NULL and numbers sort before text
    };
    let (stamp_type, stamp) = value()?;
    let stamp = match stamp_type {
        0 => Stamp::Null,
        7 => Stamp::Number(f64::from_bits(u64::from_be_bytes(stamp.try_into().ok()?))),
        1..=6 | 8 | 9 => Stamp::Number(integer(stamp_type, stamp) as f64),
        s if s % 2 == 1 => Stamp::Text(stamp.to_vec()),
        _ => Stamp::Blob,
    };
    let (rowid_type, rowid) = value()?;
    matches!(rowid_type, 1..=6 | 8 | 9).then(|| Entry {
        namespace,
        stamp,
        rowid: integer(rowid_type, rowid),
    })
}

/// A record's integer of serial type 1..=6, 8 or 9 (big-endian two's complement; 8 and 9 are
/// the constants 0 and 1).
fn integer(serial: i64, bytes: &[u8]) -> i64 {
    match serial {
        8 => 0,
        9 => 1,
        _ => {
            let sign = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                -1i64
            } else {
                0
            };
            bytes.iter().fold(sign, |v, &b| (v << 8) | i64::from(b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::pages::each_damaged_copy;
    use super::*;
    use rusqlite::types::Value;
    use std::path::Path;

    /// BeaverDB's log table (primary key and `idx_logs_timestamp`) with four namespaces
    /// interleaved, timestamps numbers (integral ones are stored as integers) or, as beaver-db
    /// 2.x writes them, datetime text in the same REAL column, and a long namespace whose index
    /// entries overflow their page at small page sizes.
    fn log(path: &Path, page_size: u32, text: bool, long: &str) {
        let db = rusqlite::Connection::open(path).unwrap();
        db.execute_batch(&format!(
            "PRAGMA page_size = {page_size}; \
             CREATE TABLE t (log_name TEXT NOT NULL, timestamp REAL NOT NULL, data TEXT NOT NULL, \
             PRIMARY KEY (log_name, timestamp)); \
             CREATE INDEX idx_logs_timestamp ON t (log_name, timestamp); BEGIN;"
        ))
        .unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..4000u64 {
            let x = super::super::xorshift(&mut seed);
            let ns = ["_ferret_trace", "a", "zz", long][(x % 4) as usize];
            let t = 1.7e9 + (x % 1_000_000) as f64 / if i % 3 == 0 { 1.0 } else { 64.0 };
            let stamp = if text {
                Value::Text(format!("2026-11-{:02} {:.6}", 1 + x % 28, t))
            } else {
                Value::Real(t)
            };
            db.execute(
                "INSERT OR IGNORE INTO t VALUES (?1, ?2, '{}')",
                rusqlite::params![ns, stamp],
            )
            .unwrap();
        }
        db.execute_batch("COMMIT").unwrap();
    }

    fn walked(path: &Path, ns: &str, after: &LastTimestamp) -> Vec<(i64, LastTimestamp)> {
        let db = rusqlite::Connection::open(path).unwrap();
        let root = super::super::root_page(&db, "sqlite_autoindex_t_1");
        let mut walk = IndexWalk::open(std::fs::File::open(path).unwrap(), root, ns, after.clone())
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        while let Some(rowid) = walk.next_rowid().unwrap() {
            out.push((rowid, walk.position()));
        }
        out
    }

    fn queried(path: &Path, ns: &str, after: &LastTimestamp) -> Vec<(i64, LastTimestamp)> {
        let db = rusqlite::Connection::open(path).unwrap();
        let (cond, bound) = match after {
            LastTimestamp::Real(w) => ("AND timestamp > ?2", Value::Real(*w)),
            LastTimestamp::Text(w) => ("AND timestamp > ?2", Value::Text(w.clone())),
            _ => ("AND ?2 IS NULL", Value::Null),
        };
        let mut stmt = db
            .prepare(&format!(
                "SELECT rowid, timestamp FROM t WHERE log_name = ?1 {cond} ORDER BY timestamp"
            ))
            .unwrap();
        let rows = stmt
            .query_map(rusqlite::params![ns, bound], |r| {
                Ok((r.get(0)?, super::super::sqlite::position(r.get_ref(1)?)))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn the_walk_gives_sqlites_order_namespace_and_watermark_at_every_page_size() {
        let dir = tempfile::tempdir().unwrap();
        let long = "n".repeat(1500);
        for (page_size, text) in [
            (512, false),
            (512, true),
            (4096, false),
            (4096, true),
            (65_536, false),
        ] {
            let path = dir.path().join(format!("{page_size}-{text}.db"));
            log(&path, page_size, text, &long);
            for ns in ["_ferret_trace", "a", "zz", long.as_str(), "absent", ""] {
                let all = queried(&path, ns, &LastTimestamp::None);
                let mut watermarks = vec![LastTimestamp::None];
                if let Some((_, middle)) = all.get(all.len() / 2) {
                    watermarks.push(middle.clone());
                }
                watermarks.extend(if text {
                    [
                        LastTimestamp::Text("0000-".into()),
                        LastTimestamp::Text("9999-".into()),
                    ]
                } else {
                    [LastTimestamp::Real(0.0), LastTimestamp::Real(2e9)]
                });
                for after in &watermarks {
                    let want = queried(&path, ns, after);
                    assert_eq!(
                        walked(&path, ns, after),
                        want,
                        "{page_size} {text} {ns:.9} {after:?}"
                    );
                }
                assert!(ns == "absent" || ns.is_empty() || !all.is_empty());
            }
        }
    }

    #[test]
    fn a_damaged_index_gives_errors_naming_the_page_never_a_panic_or_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        log(&path, 512, false, "long");
        let db = rusqlite::Connection::open(&path).unwrap();
        let root = super::super::root_page(&db, "sqlite_autoindex_t_1");
        let pristine = std::fs::read(&path).unwrap();
        let mut errors = 0;
        each_damaged_copy(&pristine, dir.path(), |damaged| {
            let after = LastTimestamp::None;
            let mut walk = IndexWalk::open(
                std::fs::File::open(damaged).unwrap(),
                root,
                "_ferret_trace",
                after,
            )
            .unwrap()
            .unwrap();
            loop {
                match walk.next_rowid() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        assert!(e.page > 0 && !e.what.is_empty(), "{e}");
                        errors += 1;
                        break;
                    }
                }
            }
        });
        assert!(errors > 0, "no damage was noticed");
    }
}
