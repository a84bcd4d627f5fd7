//! JSON lines input: one span object per line, from a file or stdin.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use ferret_format::LastTimestamp;

use super::{io, InputBytes, Locator, RowBatch, RowSender};

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Streams the lines of `path` (`-` for stdin) after the first `skip` lines into `tx`. Blank
/// lines are passed over but counted, so line numbers and the watermark match the file; a UTF-8
/// byte-order mark at the start is dropped.
pub fn read_json_lines(path: &Path, skip: u64, tx: RowSender) {
    // The size of a file (0 for stdin: unknown) lets the progress bar estimate the rows.
    let (input, size): (Box<dyn Read>, u64) = if path == Path::new("-") {
        (Box::new(std::io::stdin()), 0)
    } else {
        match std::fs::File::open(path) {
            Ok(f) => {
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                (Box::new(f), size)
            }
            Err(e) => {
                let _ = tx.send(Err(io(path, e)));
                return;
            }
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut line_no = 0u64;
    let (mut read, mut skipped) = (0u64, 0u64);
    let mut buf = Vec::new();
    let mut batch = RowBatch::with_capacity();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(io(path, e)));
                return;
            }
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
            if tx.send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if !batch.rows.is_empty() {
        let _ = tx.send(Ok(batch));
    }
}
