//! Any bytes handed to the record reader give a value or an error, never a panic: open, verify,
//! and read every record, name, extras entry, adoption, orphan, zone and run directory entry of
//! whatever opens, and follow every record's links.
#![no_main]

use ferret_format::{AlignedBytes, SpanFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = SpanFile::from_bytes(AlignedBytes::copy_from(data)) else {
        return;
    };
    let _ = file.verify();
    let _ = file.verify_last_commit();
    let _ = file.watermark();
    let _ = file.latest_start_record();
    for seg in file.segments() {
        let _ = file.verify_blocks(seg, 0..seg.block_count());
        for (i, r) in file.records(seg).iter().enumerate() {
            let index = seg.first_record + i as u64;
            let _ = file.name(r.name);
            let _ = file.string(r.run);
            let _ = file.extras(seg, r).tags_json();
            let _ = file.status(seg, r);
            let _ = file.span_id_text(seg, r);
            let _ = file.parent_of(index, r);
            let _ = file.root_of(r);
            let _ = file.checked_record(index);
        }
        for a in file.adoptions(seg) {
            let _ = file.record(a.child);
        }
        let _ = file.orphans(seg).len();
        for zone in file.zones(seg) {
            let _ = file.zone_runs(seg, zone);
        }
        let _ = file.runs(seg).len();
    }
});
