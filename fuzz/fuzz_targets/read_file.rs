//! Any bytes handed to the reader give a value or an error, never a panic: open, verify, and
//! read every record, name and extras entry of whatever opens.
#![no_main]

use ferret_format::{AlignedBytes, SpanFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = SpanFile::from_bytes(AlignedBytes::copy_from(data)) else {
        return;
    };
    let _ = file.verify();
    let _ = file.watermark();
    for seg in file.segments() {
        for r in file.records(seg) {
            let _ = file.name(r.name);
            let _ = file.string(r.run);
            let _ = file.extras(seg, r).tags_json();
            let _ = file.status(seg, r);
        }
    }
});
