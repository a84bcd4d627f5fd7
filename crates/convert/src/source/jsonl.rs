//! JSON lines input: one span object per line, from a file or stdin.
//!
//! A file converted in part is resumed from the byte after its last converted line, and checked
//! first like a database: the watermark keeps that byte offset and a hash of the
//! [`TAIL_CHECKED`] bytes before it (in the header's rowid fields, see `docs/FORMAT.md`), so a
//! file replaced, rewritten or cut since is refused ([`ConvertError::SourceRewritten`]) and a
//! sidecar made anew, instead of its new lines being read as if the old file had grown. A last
//! line without its newline that is not yet a whole JSON value is being written: it is left for
//! the next conversion, with a note.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ferret_format::{LastTimestamp, RowidMark};

use super::{io, InputBytes, Locator, RowBatch, RowSender};
use crate::error::ConvertError;

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Bytes before a converted prefix's end whose hash the watermark keeps: several lines, span
/// ids included (a line's end alone, `"status":"ok"}`, is the same in every file).
pub const TAIL_CHECKED: u64 = 4096;

/// Where a conversion of JSON lines resumes: lines and bytes already converted, and the hash of
/// the bytes before that point (0 bytes: the start, or a file converted before the fingerprint
/// was kept, which is resumed by its line count alone).
#[derive(Clone, Copy, Debug, Default)]
pub struct LinesDone {
    /// Lines converted (blank lines included).
    pub lines: u64,
    /// Their bytes and the hash of the last ones, as the watermark keeps them.
    pub mark: RowidMark,
}

/// Streams the lines of `path` (`-` for stdin) after those `done` into `tx`. Blank lines are
/// passed over but counted, so line numbers and the watermark match the file; a UTF-8
/// byte-order mark at the start is dropped. Returns a note when a last line was left for later.
pub fn read_json_lines(path: &Path, done: LinesDone, tx: RowSender) -> Option<String> {
    match open(path, done) {
        Ok(input) => stream(path, input, done, &tx),
        Err(e) => {
            let _ = tx.send(Err(e));
            None
        }
    }
}

/// An input of JSON lines positioned after what was converted: the stream read, the file
/// itself for fingerprints (none for stdin), and its size (0 for stdin: unknown).
struct Input {
    stream: Box<dyn Read>,
    file: Option<File>,
    size: u64,
}

/// The input positioned after what `done` converted, checked against the file first.
fn open(path: &Path, done: LinesDone) -> Result<Input, ConvertError> {
    if path == Path::new("-") {
        return Ok(Input {
            stream: Box::new(std::io::stdin()),
            file: None,
            size: 0,
        });
    }
    let mut file = File::open(path).map_err(|e| io(path, e))?;
    let size = file.metadata().map_err(|e| io(path, e))?.len();
    let offset = done.mark.done;
    if offset > 0 {
        let rewritten = |what: String| ConvertError::SourceRewritten {
            path: path.to_path_buf(),
            what,
        };
        if size < offset {
            return Err(rewritten(format!(
                "it holds {size} bytes, fewer than the {offset} converted"
            )));
        }
        if tail_hash(&file, offset).map_err(|e| io(path, e))? != done.mark.check {
            return Err(rewritten(format!(
                "the lines before byte {offset} are not those converted"
            )));
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io(path, e))?;
    }
    let stream = Box::new(file.try_clone().map_err(|e| io(path, e))?);
    Ok(Input {
        stream,
        file: Some(file),
        size,
    })
}

/// The xxh3-64 of the [`TAIL_CHECKED`] bytes (or fewer, at the start) before `offset`.
fn tail_hash(file: &File, offset: u64) -> std::io::Result<u64> {
    let start = offset.saturating_sub(TAIL_CHECKED);
    let mut tail = vec![0u8; (offset - start) as usize];
    file.read_exact_at(&mut tail, start)?;
    Ok(xxhash_rust::xxh3::xxh3_64(&tail))
}

/// True when `line` (no newline) is a whole JSON value: a last line without its newline that is
/// not is still being written.
fn is_whole(line: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

fn stream(path: &Path, input: Input, done: LinesDone, tx: &RowSender) -> Option<String> {
    let (file, size) = (input.file.as_ref(), input.size);
    let mut reader = BufReader::with_capacity(1 << 20, input.stream);
    let start = done.mark.done;
    // Old watermarks (no byte offset) skip their lines; new ones start after them.
    let skip = if start > 0 { 0 } else { done.lines };
    let mut line_no = if start > 0 { done.lines } else { 0 };
    let (mut read, mut skipped) = (start, start);
    let mut buf = Vec::new();
    let mut batch = RowBatch::with_capacity();
    let mut note = None;
    // A last line converted without its newline: the newline written since ends that line, it
    // is not a blank line of its own.
    let mut ends_converted_line = start > 0
        && file.is_some_and(|f| {
            let mut before = [0u8];
            f.read_exact_at(&mut before, start - 1).is_ok() && before[0] != b'\n'
        });
    // The watermark after the batch's last line: its byte offset and tail hash.
    let mark = |offset: u64| -> Result<RowidMark, ConvertError> {
        let check = match file {
            Some(f) => tail_hash(f, offset).map_err(|e| io(path, e))?,
            None => 0,
        };
        Ok(RowidMark {
            done: offset,
            upto: offset,
            check,
        })
    };
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(io(path, e)));
                return None;
            }
        }
        if std::mem::take(&mut ends_converted_line) && buf.as_slice() == b"\n" {
            read += 1;
            skipped = read;
            continue;
        }
        if buf.last() != Some(&b'\n') && !is_whole(buf.trim_ascii()) {
            note = Some(format!(
                "{}: line {} has no newline yet and is not a whole span: left for the next conversion",
                path.display(),
                line_no + 1
            ));
            break;
        }
        line_no += 1;
        read += buf.len() as u64;
        // A byte-order mark before the first line, as some Windows tools write UTF-8, is not
        // part of the JSON.
        let line = if line_no == 1 {
            buf.strip_prefix(UTF8_BOM).unwrap_or(&buf)
        } else {
            &buf
        };
        if line_no <= skip {
            skipped = read;
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        batch.push(Locator::Line(line_no), Ok(line.trim_ascii_end()));
        batch.last = LastTimestamp::Line(line_no);
        batch.bytes = InputBytes {
            done: read - skipped,
            total: size.saturating_sub(skipped),
        };
        if batch.is_full() {
            let full = std::mem::replace(&mut batch, RowBatch::with_capacity());
            if !send(tx, full, mark(read)) {
                return note;
            }
        }
    }
    if !batch.rows.is_empty() {
        send(tx, batch, mark(read));
    }
    note
}

/// Sends `batch` with its watermark, or the error that computing it gave; false once the
/// receiver is gone.
fn send(tx: &RowSender, mut batch: RowBatch, mark: Result<RowidMark, ConvertError>) -> bool {
    match mark {
        Ok(m) => {
            batch.rowids = m;
            tx.send(Ok(batch)).is_ok()
        }
        Err(e) => {
            let _ = tx.send(Err(e));
            false
        }
    }
}
