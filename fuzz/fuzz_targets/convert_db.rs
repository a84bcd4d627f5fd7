//! Any bytes written as a SQLite file and converted: SQLite's own reader, the page readers that
//! read a finished file's table and index pages directly, and the conversion after them give a
//! record file or an error, never a panic or a hang.
#![no_main]

use ferret_convert::{convert, ConvertOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let db = dir.path().join("t.db");
    if std::fs::write(&db, data).is_err() {
        return;
    }
    let opts = ConvertOptions::new(&db, dir.path().join("t.ferret"));
    let _ = convert(&opts, &mut |_, _| {});
});
