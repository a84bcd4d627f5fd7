//! Rows of a SQLite table read straight from its B-tree pages (the documented file format,
//! <https://www.sqlite.org/fileformat2.html>), for the one case where that is both safe and
//! worth it: a database whose snapshot is the main file alone.
//!
//! Why: fetching a row through SQLite (a statement step, the VDBE, column accessors) was ~70% of
//! the reader thread's time, and the reader thread is a third of a conversion's CPU. Here a
//! row costs a varint or two and a copy.
//!
//! When: [`super::sqlite`] opens its read transaction first, and uses this only when, inside
//! it, the database has no write-ahead log with frames (no `-wal` file, or an empty one). A
//! reader whose snapshot holds no WAL frames reads the main file only, and SQLite forbids a
//! checkpoint to write into the main file while such a reader is open (in rollback mode, its
//! shared lock keeps writers out), so the pages read here are the snapshot's. The order comes
//! from [`super::index_walk`], which reads the index's pages under the same conditions.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Why a page could not be read as a page of its B-tree: a damaged file (SQLite would refuse it
/// too), named by page number.
#[derive(Debug, PartialEq, Eq)]
pub struct PageError {
    /// The page number (1-based, as SQLite counts).
    pub page: u32,
    /// What was wrong.
    pub what: String,
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "page {}: {}", self.page, self.what)
    }
}

pub(super) type PageResult<T> = Result<T, PageError>;

/// Takes each row a scan finds: its rowid and its column's bytes, or why it has none.
pub type RowFn<'a> = dyn FnMut(i64, Result<&[u8], String>) + 'a;

pub(super) fn bad<T>(page: u32, what: impl Into<String>) -> PageResult<T> {
    Err(PageError {
        page,
        what: what.into(),
    })
}

/// Bytes of interior pages kept in memory: a 2.3 GB table has ~1,500 of them (6 MB at 4 KiB).
const INTERIOR_CACHE_BYTES: usize = 32 << 20;

/// The deepest B-tree SQLite builds or reads (`BTCURSOR_MAX_DEPTH`): a deeper one is damaged
/// or crafted, and following it would only recurse (or stack pages) without end.
pub(crate) const MAX_BTREE_DEPTH: usize = 20;

/// A database file read page by page with `pread`.
pub(super) struct PageFile {
    file: File,
    /// The file's length: no payload can be longer.
    len: u64,
    pub(super) page_size: usize,
    /// Page size less the reserved bytes at the end of each page.
    pub(super) usable: usize,
}

/// A table B-tree of a database file.
pub struct TablePages {
    pages: PageFile,
    root: u32,
    interior: HashMap<u32, Box<[u8]>>,
    leaf: Vec<u8>,
}

/// The header fields of the database file this reader needs, or why it will not read it.
fn file_header(file: &File) -> std::io::Result<Option<(usize, usize)>> {
    let mut header = [0u8; 100];
    file.read_exact_at(&mut header, 0)?;
    if &header[..16] != b"SQLite format 3\0" {
        return Ok(None);
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => usize::from(n),
    };
    let reserved = usize::from(header[20]);
    let utf8 = u32::from_be_bytes(header[56..60].try_into().expect("4 bytes")) == 1;
    // SQLite converts UTF-16 text to UTF-8 for its callers; this reader would not.
    let sane = page_size.is_power_of_two() && (512..=65_536).contains(&page_size);
    Ok((utf8 && sane && page_size - reserved >= 480).then_some((page_size, page_size - reserved)))
}

impl PageFile {
    /// Reads the database open as `file` (the very file SQLite's read transaction is on), or
    /// `None` when it is one this reader leaves to SQLite (a text encoding other than UTF-8).
    pub(super) fn open(file: File) -> std::io::Result<Option<PageFile>> {
        let Some((page_size, usable)) = file_header(&file)? else {
            return Ok(None);
        };
        let len = file.metadata()?.len();
        Ok(Some(PageFile {
            file,
            len,
            page_size,
            usable,
        }))
    }

    /// Reads page `page` (1-based) into `into`, a page-sized buffer.
    pub(super) fn read_page(&self, page: u32, into: &mut [u8]) -> PageResult<()> {
        // A damaged pointer can say 0; its offset would be computed below the file's start.
        let Some(index) = page.checked_sub(1) else {
            return bad(page, "page number 0");
        };
        self.file
            .read_exact_at(into, u64::from(index) * self.page_size as u64)
            .or_else(|e| bad(page, format!("cannot be read: {e}")))
    }

    /// A cell's whole payload (its `body` offset and `size` from the cell) on a page of a table
    /// or an index B-tree: in place when it fits the page, else gathered from its overflow pages
    /// into `buf`.
    pub(super) fn payload<'p>(
        &self,
        page: u32,
        p: &'p [u8],
        (body, size): (usize, i64),
        tree: Tree,
        buf: &'p mut Vec<u8>,
    ) -> PageResult<&'p [u8]> {
        let size = match usize::try_from(size) {
            Ok(n) if n as u64 <= self.len => n,
            _ => {
                return bad(
                    page,
                    format!("payload of {size} bytes in a file of {}", self.len),
                )
            }
        };
        let local = local_payload(size, self.usable, tree);
        let Some(here) = p.get(body..body + local) else {
            return bad(page, "payload runs past the page");
        };
        if local == size {
            return Ok(here);
        }
        buf.clear();
        buf.extend_from_slice(here);
        let Some(mut next) = be_u32(p, body + local) else {
            return bad(page, "overflow pointer runs past the page");
        };
        let mut chunk = vec![0u8; self.page_size];
        while buf.len() < size {
            if next == 0 {
                return bad(page, "overflow chain ends before the payload does");
            }
            self.read_page(next, &mut chunk)?;
            let take = (size - buf.len()).min(self.usable - 4);
            buf.extend_from_slice(&chunk[4..4 + take]);
            next = be_u32(&chunk, 0).expect("a page holds 4 bytes");
        }
        Ok(buf)
    }
}

impl TablePages {
    /// Opens the table whose root page is `root` in the database open as `file`, or `None` when
    /// the file is one this reader leaves to SQLite (a text encoding other than UTF-8).
    pub fn open(file: File, root: u32) -> std::io::Result<Option<TablePages>> {
        Ok(PageFile::open(file)?.map(|pages| TablePages {
            leaf: vec![0; pages.page_size],
            pages,
            root,
            interior: HashMap::new(),
        }))
    }

    /// Calls `row(rowid, text)` for every row with a rowid in `lo..=hi`, in rowid order, where
    /// `text` is the bytes of column `column` (a text or blob value), or why it has none.
    pub fn scan(&mut self, lo: i64, hi: i64, column: usize, row: &mut RowFn) -> PageResult<()> {
        let mut rows = RowSink {
            lo,
            hi,
            column,
            payload: Vec::new(),
            visited: HashSet::new(),
            row,
        };
        self.visit(self.root, &mut rows, 1)
    }

    /// Hands the rows of the subtree under `page` that fall in the sink's range to it, in order.
    /// Interior pages are cached (a range's descent reads them again and again); each leaf is
    /// read once into the one leaf buffer.
    fn visit(&mut self, page: u32, rows: &mut RowSink, depth: usize) -> PageResult<()> {
        // A tree reaches each page once: a damaged one could otherwise loop or fan out forever.
        if !rows.visited.insert(page) {
            return bad(page, "reached twice: the B-tree has a cycle");
        }
        if depth > MAX_BTREE_DEPTH {
            return bad(page, format!("deeper than {MAX_BTREE_DEPTH} levels"));
        }
        if !self.interior.contains_key(&page) {
            let mut buf = std::mem::take(&mut self.leaf);
            self.pages.read_page(page, &mut buf)?;
            match buf[header_start(page)] {
                0x0d => {
                    let result = self.leaf_rows(page, &buf, rows);
                    self.leaf = buf;
                    return result;
                }
                0x05 => {
                    if self.interior.len() * self.pages.page_size >= INTERIOR_CACHE_BYTES {
                        self.interior.clear();
                    }
                    self.interior.insert(page, buf.into_boxed_slice());
                    self.leaf = vec![0; self.pages.page_size];
                }
                t => return bad(page, format!("page type {t:#04x} in a table B-tree")),
            }
        }
        for child in self.children_in_range(page, rows.lo, rows.hi)? {
            self.visit(child, rows, depth + 1)?;
        }
        Ok(())
    }

    /// The children of interior page `page` whose subtrees may hold rowids in `lo..=hi`: each
    /// cell's key is the largest rowid of its left child; the right-most child holds the rest.
    fn children_in_range(&self, page: u32, lo: i64, hi: i64) -> PageResult<Vec<u32>> {
        let p = &self.interior[&page];
        let h = header_start(page);
        let Some(right_most) = be_u32(p, h + 8) else {
            return bad(page, "short header");
        };
        let mut out = Vec::new();
        let mut previous_key = i64::MIN;
        for i in 0..cell_count(p, h) {
            let Some(at) = cell_offset(p, h + 12, i, self.pages.usable) else {
                return bad(page, format!("cell {i} points outside the page"));
            };
            let (Some(child), Some((key, _))) = (be_u32(p, at), varint(p, at + 4)) else {
                return bad(page, format!("cell {i} runs past the page"));
            };
            // This child holds the keys in previous_key + 1 ..= key.
            if key >= lo && previous_key < hi {
                out.push(child);
            }
            if key >= hi {
                return Ok(out);
            }
            previous_key = key;
        }
        out.push(right_most);
        Ok(out)
    }

    /// Hands the rows of leaf `page` (its bytes in `p`) in the sink's range to it.
    fn leaf_rows(&self, page: u32, p: &[u8], rows: &mut RowSink) -> PageResult<()> {
        let h = header_start(page);
        for i in 0..cell_count(p, h) {
            let Some(at) = cell_offset(p, h + 8, i, self.pages.usable) else {
                return bad(page, format!("cell {i} points outside the page"));
            };
            let Some(((size, rowid), body)) = varint(p, at)
                .and_then(|(size, n)| varint(p, at + n).map(|(r, m)| ((size, r), at + n + m)))
            else {
                return bad(page, format!("cell {i} runs past the page"));
            };
            if rowid < rows.lo || rowid > rows.hi {
                continue;
            }
            let record =
                self.pages
                    .payload(page, p, (body, size), Tree::Table, &mut rows.payload)?;
            (rows.row)(rowid, column_text(record, rows.column));
        }
        Ok(())
    }
}

/// Where a scan's rows go: the range, the column, and a buffer for payloads that overflow.
struct RowSink<'a> {
    lo: i64,
    hi: i64,
    column: usize,
    payload: Vec<u8>,
    visited: HashSet<u32>,
    row: &'a mut RowFn<'a>,
}

/// Where the B-tree header of `page` starts: page 1 begins with the 100-byte file header.
pub(super) fn header_start(page: u32) -> usize {
    if page == 1 {
        100
    } else {
        0
    }
}

pub(super) fn cell_count(p: &[u8], h: usize) -> usize {
    p.get(h + 3..h + 5)
        .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])))
}

/// The offset of cell `i` from the pointer array at `array`, if it is inside the usable area.
pub(super) fn cell_offset(p: &[u8], array: usize, i: usize, usable: usize) -> Option<usize> {
    let b = p.get(array + 2 * i..array + 2 * i + 2)?;
    let at = usize::from(u16::from_be_bytes([b[0], b[1]]));
    (at < usable).then_some(at)
}

pub(super) fn be_u32(p: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(at..at + 4)?.try_into().ok()?))
}

/// SQLite's varint at `at`: its value and length (1 to 9 bytes, big-endian, 7 bits a byte but
/// all 8 in the ninth).
pub(super) fn varint(p: &[u8], at: usize) -> Option<(i64, usize)> {
    let mut v: u64 = 0;
    for i in 0..8 {
        let b = *p.get(at + i)?;
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Some((v as i64, i + 1));
        }
    }
    let b = *p.get(at + 8)?;
    Some((((v << 8) | u64::from(b)) as i64, 9))
}

/// The kind of B-tree a cell belongs to: the file format keeps less of an index cell's payload
/// on its page than of a table leaf's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tree {
    Table,
    Index,
}

/// Bytes of a payload of `size` kept on the page itself (the file format's rule).
fn local_payload(size: usize, usable: usize, tree: Tree) -> usize {
    let max_local = match tree {
        Tree::Table => usable - 35,
        Tree::Index => (usable - 12) * 64 / 255 - 23,
    };
    if size <= max_local {
        return size;
    }
    let min_local = (usable - 12) * 32 / 255 - 23;
    let k = min_local + (size - min_local) % (usable - 4);
    if k <= max_local {
        k
    } else {
        min_local
    }
}

/// The values of a record in column order, each its serial type and body bytes. It ends at the
/// header's end (a column past it, added by ALTER TABLE, is NULL), and after an `Err` for a
/// header or body that runs past the record.
pub(super) struct RecordValues<'r> {
    record: &'r [u8],
    /// The next serial type's offset in the header.
    at: usize,
    header_len: usize,
    /// The next value's offset in the body.
    body: usize,
}

impl<'r> RecordValues<'r> {
    /// The values of `record`, or `None` when its header length is unreadable.
    pub(super) fn new(record: &'r [u8]) -> Option<RecordValues<'r>> {
        let (header_len, at) = varint(record, 0)?;
        let header_len = usize::try_from(header_len).ok()?;
        Some(RecordValues {
            record,
            at,
            header_len,
            body: header_len,
        })
    }
}

/// A record that runs past its own end.
pub(super) struct Malformed;

impl<'r> Iterator for RecordValues<'r> {
    type Item = Result<(i64, &'r [u8]), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.header_len {
            return None;
        }
        let value = (|| {
            let (serial, n) = varint(self.record, self.at)?;
            let end = self.body.checked_add(serial_len(serial)?)?;
            let bytes = self.record.get(self.body..end)?;
            self.at += n;
            self.body = end;
            Some((serial, bytes))
        })();
        if value.is_none() {
            self.at = self.header_len; // nothing sensible follows
        }
        Some(value.ok_or(Malformed))
    }
}

/// The bytes of column `column` of a record, if it is text or a blob.
fn column_text(record: &[u8], column: usize) -> Result<&[u8], String> {
    let malformed = || "malformed record".to_string();
    let mut values = RecordValues::new(record).ok_or_else(malformed)?;
    match values.nth(column) {
        None | Some(Ok((0, _))) => Err("data is NULL".to_string()),
        Some(Err(Malformed)) => Err(malformed()),
        Some(Ok((s, bytes))) if s >= 12 => Ok(bytes),
        Some(Ok(_)) => Err("data is not text".to_string()),
    }
}

/// The body length of a value of serial type `serial`.
fn serial_len(serial: i64) -> Option<usize> {
    Some(match serial {
        0 | 8 | 9 => 0,
        1 => 1,
        2 => 2,
        3 => 3,
        4 => 4,
        5 => 6,
        6 | 7 => 8,
        s if s >= 12 => usize::try_from((s - 12) / 2).ok()?,
        _ => return None,
    })
}

/// For tests: 300 copies of the database `pristine`, each with 8 random bytes past the file
/// header (which decides whether the readers are used at all) overwritten, written into `dir`
/// and handed to `check`.
#[cfg(test)]
pub(super) fn each_damaged_copy(
    pristine: &[u8],
    dir: &std::path::Path,
    mut check: impl FnMut(&std::path::Path),
) {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        let mut bytes = pristine.to_vec();
        for _ in 0..8 {
            let x = super::xorshift(&mut x);
            let at = 100 + (x as usize) % (bytes.len() - 100);
            bytes[at] = (x >> 32) as u8;
        }
        let damaged = dir.join("damaged.db");
        std::fs::write(&damaged, &bytes).unwrap();
        check(&damaged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value;
    use std::path::Path;

    /// A table like BeaverDB's with rows of every kind the reader must handle: short texts, texts
    /// spilling over one or many overflow pages, blobs, NULLs, integers, and holes in the rowids.
    fn table(path: &Path, page_size: u32) -> u32 {
        let db = rusqlite::Connection::open(path).unwrap();
        db.execute_batch(&format!(
            "PRAGMA page_size = {page_size}; \
             CREATE TABLE t (log_name TEXT, timestamp REAL, data TEXT); BEGIN;"
        ))
        .unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..3000u64 {
            let x = super::super::xorshift(&mut seed);
            let data = match i % 50 {
                7 => Value::Null,
                8 => Value::Integer(i as i64),
                9 => Value::Blob(vec![0xff; (x % 9000) as usize]),
                10 => Value::Text("é".repeat((x % 70_000) as usize)),
                _ => Value::Text(format!(
                    "{{\"i\":{i},\"pad\":\"{}\"}}",
                    "x".repeat((x % 600) as usize)
                )),
            };
            db.execute(
                "INSERT INTO t VALUES ('ns', ?1, ?2)",
                rusqlite::params![i as f64, data],
            )
            .unwrap();
        }
        db.execute_batch("DELETE FROM t WHERE rowid % 97 = 3; COMMIT;")
            .unwrap();
        super::super::root_page(&db, "t")
    }

    type Rows = Vec<(i64, Result<Vec<u8>, String>)>;

    fn direct(pages: &mut TablePages, lo: i64, hi: i64) -> PageResult<Rows> {
        let mut out = Vec::new();
        pages.scan(lo, hi, 2, &mut |rowid, data| {
            out.push((rowid, data.map(<[u8]>::to_vec)))
        })?;
        Ok(out)
    }

    fn through_sqlite(path: &Path, lo: i64, hi: i64) -> Rows {
        let db = rusqlite::Connection::open(path).unwrap();
        let mut stmt = db
            .prepare("SELECT rowid, data FROM t WHERE rowid BETWEEN ?1 AND ?2 ORDER BY rowid")
            .unwrap();
        let rows = stmt
            .query_map([lo, hi], |r| {
                Ok((
                    r.get(0)?,
                    super::super::sqlite::text_of(r.get_ref(1)?).map(<[u8]>::to_vec),
                ))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn ranges_read_from_the_pages_equal_sqlites_at_every_page_size() {
        let dir = tempfile::tempdir().unwrap();
        for page_size in [512, 4096, 65_536] {
            let path = dir.path().join(format!("t{page_size}.db"));
            let root = table(&path, page_size);
            let mut pages = TablePages::open(File::open(&path).unwrap(), root)
                .unwrap()
                .unwrap();
            let ranges = [
                (i64::MIN, i64::MAX),
                (1, 1),
                (0, 0),
                (3, 3),
                (95, 2101),
                (2999, 4000),
            ];
            let more = (0..40).map(|k| (k * 71 % 3000, k * 71 % 3000 + k * 13));
            for (lo, hi) in ranges.into_iter().chain(more) {
                let want = through_sqlite(&path, lo, hi);
                assert_eq!(
                    direct(&mut pages, lo, hi).unwrap(),
                    want,
                    "{page_size}: {lo}..={hi}"
                );
            }
        }
    }

    #[test]
    fn damaged_pages_give_errors_naming_the_page_never_a_panic_or_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let root = table(&path, 512);
        let pristine = std::fs::read(&path).unwrap();
        let mut errors = 0;
        each_damaged_copy(&pristine, dir.path(), |damaged| {
            let mut pages = TablePages::open(File::open(damaged).unwrap(), root)
                .unwrap()
                .unwrap();
            if let Err(e) = direct(&mut pages, i64::MIN, i64::MAX) {
                assert!(e.page > 0 && !e.what.is_empty(), "{e}");
                errors += 1;
            }
        });
        assert!(errors > 0, "no damage was noticed");
        // A cycle: the root's first child made the root itself.
        let mut bytes = pristine;
        let at = (root as usize - 1) * 512;
        assert_eq!(bytes[at], 0x05, "the root is an interior page at this size");
        let first_cell = usize::from(u16::from_be_bytes([bytes[at + 12], bytes[at + 13]]));
        bytes[at + first_cell..at + first_cell + 4].copy_from_slice(&root.to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let mut pages = TablePages::open(File::open(&path).unwrap(), root)
            .unwrap()
            .unwrap();
        let e = direct(&mut pages, i64::MIN, i64::MAX).unwrap_err();
        assert_eq!(
            e,
            PageError {
                page: root,
                what: "reached twice: the B-tree has a cycle".into()
            }
        );
        // A child pointer of 0 (no such page): named, not an offset below the file's start.
        bytes[at + first_cell..at + first_cell + 4].copy_from_slice(&0u32.to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let mut pages = TablePages::open(File::open(&path).unwrap(), root)
            .unwrap()
            .unwrap();
        let e = direct(&mut pages, i64::MIN, i64::MAX).unwrap_err();
        assert_eq!(
            e,
            PageError {
                page: 0,
                what: "page number 0".into()
            }
        );
    }

    #[test]
    fn a_chain_of_interior_pages_deeper_than_sqlite_builds_is_refused() {
        // Each page an interior page without cells whose right-most child is the next: no cycle,
        // so only a depth bound ends the descent (which recursed until the stack overflowed).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let root = table(&path, 512);
        let mut bytes = std::fs::read(&path).unwrap();
        let pages = (bytes.len() / 512) as u32;
        let chain: Vec<u32> = std::iter::once(root)
            .chain((2..=pages).filter(|&p| p != root))
            .take(40)
            .collect();
        assert_eq!(chain.len(), 40, "the table has pages enough");
        for pair in chain.windows(2) {
            let at = (pair[0] as usize - 1) * 512;
            let header = [0x05, 0, 0, 0, 0, 0x02, 0, 0];
            bytes[at..at + 8].copy_from_slice(&header);
            bytes[at + 8..at + 12].copy_from_slice(&pair[1].to_be_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let mut pages = TablePages::open(File::open(&path).unwrap(), root)
            .unwrap()
            .unwrap();
        let e = direct(&mut pages, i64::MIN, i64::MAX).unwrap_err();
        assert_eq!(e.what, format!("deeper than {MAX_BTREE_DEPTH} levels"));
        assert_eq!(e.page, chain[MAX_BTREE_DEPTH]);
    }

    #[test]
    fn a_utf16_database_is_left_to_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u16.db");
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch("PRAGMA encoding = 'UTF-16le'; CREATE TABLE t (data TEXT);")
            .unwrap();
        drop(db);
        assert!(TablePages::open(File::open(&path).unwrap(), 2)
            .unwrap()
            .is_none());
    }
}
