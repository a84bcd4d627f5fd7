//! Synthetic record files for the benchmarks and tests: realistic shape (a few hundred names,
//! nested parents, ~1% errors), written with the real writer; and the comparison the tests use
//! to say two record files hold the same spans; and the ceiling read the scan is measured against.

use bytemuck::Zeroable;
use ferret_format::{
    SpanExtras, SpanFile, SpanFileWriter, SpanId, SpanRecord, FLAG_ERROR, NONE_NAME,
};

/// The physical ceiling of a scan of `file`: every record's cache line read once (one word of
/// each), in parallel, summed so that nothing is optimized away.
pub fn ceiling_read<D: AsRef<[u8]> + Sync>(file: &SpanFile<D>) -> u64 {
    use rayon::prelude::*;
    file.segments()
        .par_iter()
        .flat_map(|s| file.records(s).par_chunks(65536))
        .map(|chunk| chunk.iter().map(|r| r.root).fold(0u64, u64::wrapping_add))
        .sum()
}

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
    w.finish().expect("finish");
}

/// Asserts two record files hold the same spans, field by field (segment boundaries, and so
/// extras offsets, may differ).
pub fn assert_same_records(a: &std::path::Path, b: &std::path::Path) {
    let (a, b) = (SpanFile::open(a).unwrap(), SpanFile::open(b).unwrap());
    assert_eq!(a.record_count(), b.record_count());
    let fields = |f: &SpanFile<memmap2::Mmap>, i: u64| {
        let r = f.record(i).unwrap();
        let seg = f.segment_of(i).unwrap();
        (
            r.span_id,
            r.start_time.to_bits(),
            r.duration.to_bits(),
            r.parent_flags,
            r.root,
            f.name(r.name).unwrap().to_string(),
            f.string(r.run).unwrap().to_string(),
            r.parent_name,
            f.extras(seg, r).tags_json().to_string(),
        )
    };
    for i in 0..a.record_count() {
        assert_eq!(fields(&a, i), fields(&b, i), "record {i}");
    }
}

/// Asserts two record files hold the same spans with the same links, compared by span id
/// whatever the records' order: start, duration, flags, name, run, tags, and the span ids of the
/// parent and the root (read through adoptions).
pub fn assert_same_spans(a: &std::path::Path, b: &std::path::Path) {
    let (a, b) = (SpanFile::open(a).unwrap(), SpanFile::open(b).unwrap());
    assert_eq!(a.record_count(), b.record_count());
    let spans = |f: &SpanFile<memmap2::Mmap>| {
        let id = |i: u64| f.record(i).map(|r| r.span_id);
        let mut all: Vec<_> = (0..f.record_count())
            .map(|i| {
                let r = f.record(i).unwrap();
                let seg = f.segment_of(i).unwrap();
                (
                    r.span_id,
                    r.start_time.to_bits(),
                    r.duration.to_bits(),
                    r.flags(),
                    f.parent_of(i, r).and_then(id),
                    id(f.root_of(r)),
                    f.name(r.name).unwrap().to_string(),
                    f.string(r.run).unwrap().to_string(),
                    f.extras(seg, r).tags_json().to_string(),
                )
            })
            .collect();
        all.sort();
        all
    };
    let (sa, sb) = (spans(&a), spans(&b));
    for (x, y) in sa.iter().zip(&sb) {
        assert_eq!(x, y, "span {}", ferret_format::SpanId(x.0).to_hex());
    }
}
