//! Synthetic record files for the benchmarks: realistic shape (a few hundred names, nested
//! parents, ~1% errors), written with the real writer.

use bytemuck::Zeroable;
use ferret_format::{SpanExtras, SpanFileWriter, SpanId, SpanRecord, FLAG_ERROR, NONE_NAME};

/// Writes `spans` records over `names` names into `path`, committing every 262,144.
pub fn write_trace(path: &std::path::Path, spans: u64, names: u32) {
    let mut w = SpanFileWriter::create(path).expect("create bench file");
    let run = w.intern_string("bench-run");
    let ids: Vec<u32> = (0..names)
        .map(|i| w.intern_name(&format!("fn_{i}")))
        .collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..spans {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut r = SpanRecord::zeroed();
        r.span_id = SpanId::encode(&format!("{i:032x}")).0 .0;
        r.start_time = 1.7e9 + i as f64 * 1e-4;
        r.duration = ((x >> 11) as f64 / (1u64 << 53) as f64) * 0.05 + 1e-6;
        r.name = ids[(x % names as u64) as usize];
        r.run = run;
        let root = i % 8 == 0;
        r.set_parent((!root).then(|| i - 1));
        r.parent_name = if root {
            NONE_NAME
        } else {
            ids[((x >> 20) % names as u64) as usize]
        };
        r.root = i - i % 8;
        r.set_flags(if x.is_multiple_of(100) { FLAG_ERROR } else { 0 });
        w.push(r, &SpanExtras::default()).expect("push");
        if w.pending_len() == 1 << 18 {
            w.commit(false).expect("commit");
        }
    }
    w.commit(true).expect("commit");
}
