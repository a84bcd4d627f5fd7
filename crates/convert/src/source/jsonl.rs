//! JSON lines input: one span object per line, from a file or stdin.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use ferret_format::LastTimestamp;

use super::{io, Locator, Row, RowSender, BATCH_ROWS};

/// Streams the lines of `path` (`-` for stdin) after the first `skip` lines into `tx`. Blank
/// lines are passed over but counted, so line numbers and the watermark match the file.
pub fn read_json_lines(path: &Path, skip: u64, tx: RowSender) {
    let input: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        match std::fs::File::open(path) {
            Ok(f) => Box::new(f),
            Err(e) => {
                let _ = tx.send(Err(io(path, e)));
                return;
            }
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    let mut batch = Vec::with_capacity(BATCH_ROWS);
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
        if line_no <= skip || buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let data = std::str::from_utf8(&buf)
            .map(|s| s.trim_end().to_owned())
            .map_err(|e| format!("line is not UTF-8 ({e})"));
        batch.push(Row {
            locator: Locator::Line(line_no),
            position: LastTimestamp::Line(line_no),
            data,
        });
        if batch.len() == BATCH_ROWS
            && tx
                .send(Ok(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(BATCH_ROWS),
                )))
                .is_err()
        {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch));
    }
}
