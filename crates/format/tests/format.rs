//! Round trips, crash simulation, corruption and versioning of the record file.

use std::path::Path;

use bytemuck::Zeroable;
use ferret_format::*;
use proptest::prelude::*;

/// A span as a test describes it, before encoding.
#[derive(Clone, Debug)]
struct TestSpan {
    name: String,
    run: String,
    start: f64,
    duration: Option<f64>,
    tags: String,
    status: String,
}

fn push(w: &mut SpanFileWriter, s: &TestSpan, parent: Option<u64>) -> u64 {
    let mut r = SpanRecord::zeroed();
    let (id, hashed) = SpanId::encode(&format!("{:032x}", w.next_index() + 1));
    r.span_id = id.0;
    r.start_time = s.start;
    r.duration = s.duration.unwrap_or(0.0);
    r.name = w.intern_name(&s.name);
    r.run = w.intern_string(&s.run);
    // Tests link to earlier records, whose first name (id 0) stands in for the parent's name.
    r.parent_name = if parent.is_some() { 0 } else { NONE_NAME };
    r.root = parent.unwrap_or(w.next_index());
    r.set_parent(parent);
    let mut flags = if hashed { FLAG_HASHED_ID } else { 0 };
    if s.duration.is_none() {
        flags |= FLAG_NULL_DURATION;
    }
    let mut status = None;
    if s.status != "ok" {
        flags |= FLAG_ERROR;
        if s.status != "error" {
            flags |= FLAG_CUSTOM_STATUS;
            status = Some(w.intern_string(&s.status));
        }
    }
    r.set_flags(flags);
    let tags = if s.tags == "{}" {
        &b""[..]
    } else {
        s.tags.as_bytes()
    };
    let extras = SpanExtras {
        tags,
        status,
        original_id: b"",
    };
    w.push(r, &extras).unwrap()
}

fn span_strategy() -> impl Strategy<Value = TestSpan> {
    (
        "[a-z_\\[\\]é✓]{0,12}",
        prop::sample::select(vec!["run-a", "run-b", "0123456789abcdef0123456789abcdef"]),
        any::<f64>(),
        prop::option::of(any::<f64>()),
        prop::sample::select(vec![
            "{}",
            r#"{"k":1}"#,
            r#"{"error":"boom","error_type":"ValueError","x":[null,true,2.5]}"#,
        ]),
        prop::sample::select(vec!["ok", "error", "timeout"]),
    )
        .prop_map(|(name, run, start, duration, tags, status)| TestSpan {
            name,
            run: run.to_string(),
            start,
            duration,
            tags: tags.to_string(),
            status: status.to_string(),
        })
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Everything a reader can see, flattened for comparison.
fn snapshot<D: AsRef<[u8]>>(f: &SpanFile<D>) -> Vec<(SpanRecord, String, String, String, String)> {
    let mut out = Vec::new();
    for seg in f.segments() {
        for r in f.records(seg) {
            out.push((
                *r,
                f.name(r.name).unwrap().to_string(),
                f.string(r.run).unwrap().to_string(),
                f.extras(seg, r).tags_json().to_string(),
                f.status(seg, r).to_string(),
            ));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn records_strings_and_tags_round_trip(batches in prop::collection::vec(prop::collection::vec(span_strategy(), 0..40), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ferret");
        let mut w = SpanFileWriter::create(&path).unwrap();
        let mut all = Vec::new();
        for batch in &batches {
            for s in batch {
                let parent = (w.next_index() > 0).then(|| w.next_index() - 1);
                push(&mut w, s, parent);
                all.push(s.clone());
            }
            w.commit(false).unwrap();
        }
        let f = SpanFile::open(&path).unwrap();
        prop_assert_eq!(f.verify().unwrap(), all.len() as u64);
        let snap = snapshot(&f);
        prop_assert_eq!(snap.len(), all.len());
        for (i, (s, (r, name, run, tags, status))) in all.iter().zip(&snap).enumerate() {
            prop_assert_eq!(r.start_time.to_bits(), s.start.to_bits());
            prop_assert_eq!(r.duration().map(f64::to_bits), s.duration.map(f64::to_bits));
            prop_assert_eq!(name, &s.name);
            prop_assert_eq!(run, &s.run);
            prop_assert_eq!(tags, &s.tags);
            prop_assert_eq!(status, &s.status);
            prop_assert_eq!(r.parent(), (i > 0).then(|| i as u64 - 1));
        }
        // The same bytes read into memory give the same view as the map.
        let mem = SpanFile::from_bytes(AlignedBytes::copy_from(&read(&path))).unwrap();
        prop_assert_eq!(snapshot(&mem), snap);
    }
}

fn sample(i: usize) -> TestSpan {
    TestSpan {
        name: format!("fn{}", i % 7),
        run: format!("run{}", i % 2),
        start: 1_700_000_000.0 + i as f64 * 0.001,
        duration: (!i.is_multiple_of(11)).then_some(i as f64 * 1e-4),
        tags: if i.is_multiple_of(3) {
            r#"{"i":1}"#.into()
        } else {
            "{}".into()
        },
        status: ["ok", "error", "timeout"][i % 3].into(),
    }
}

/// The records the first commit leaves waiting for record 1500, which the second commit brings.
fn orphaned(i: usize) -> bool {
    i < 1500 && i % 100 == 10
}

/// The span id `push` gives record `index`.
fn id_of(index: u64) -> [u8; 16] {
    SpanId::encode(&format!("{:032x}", index + 1)).0 .0
}

/// Two commits: 1500 roots, of which those `orphaned` wait for record 1500's id; then record
/// 1500, which adopts them, and 1100 children of record 3. Each commit has a rowid watermark.
fn write_two_commits(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut w = SpanFileWriter::create(path).unwrap();
    for i in 0..1500 {
        push(&mut w, &sample(i), None);
    }
    let orphans = (0..1500).filter(|&i| orphaned(i)).map(|i| Orphan {
        parent_id: id_of(1500),
        child: i as u64,
    });
    w.set_orphans(orphans.collect());
    let mut wm = Watermark {
        source: "/traces/golden.db".into(),
        namespace: "_ferret_trace".into(),
        last: LastTimestamp::Real(1_700_000_001.5),
        rowids: RowidMark {
            done: 0,
            upto: 2600,
            check: 0,
        },
    };
    w.set_watermark(&wm).unwrap();
    w.commit(false).unwrap();
    let before = read(path);
    push(&mut w, &sample(1500), None);
    let parent_name = w.intern_name(&sample(1500).name);
    for i in (0..1500).filter(|&i| orphaned(i)) {
        w.push_adoption(Adoption {
            child: i as u64,
            parent: 1500,
            parent_name,
            reserved: 0,
        });
    }
    for i in 1501..2600 {
        push(&mut w, &sample(i), Some(3));
    }
    wm.last = LastTimestamp::None;
    wm.rowids = RowidMark {
        done: 2600,
        upto: 2600,
        check: 0x0123_4567_89ab_cdef,
    };
    w.set_watermark(&wm).unwrap();
    w.commit(true).unwrap();
    (before, read(path))
}

fn open_bytes(bytes: &[u8]) -> Result<SpanFile<AlignedBytes>, FormatError> {
    SpanFile::from_bytes(AlignedBytes::copy_from(bytes))
}

#[test]
fn a_crash_at_any_step_of_a_commit_shows_the_previous_or_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = write_two_commits(&dir.path().join("t.ferret"));
    let old = snapshot(&open_bytes(&before).unwrap());
    let new = snapshot(&open_bytes(&after).unwrap());
    assert_eq!(old.len(), 1500);
    assert_eq!(new.len(), 2600);
    let slot = |seq: u64| (seq % 2 * HEADER_SLOT_SIZE) as usize;
    let new_seq = open_bytes(&after).unwrap().sequence();
    let new_slot = slot(new_seq);
    // Steps 1-2: the segment written partly or wholly, the header not yet.
    for cut in (before.len()..=after.len())
        .step_by(997)
        .chain([after.len()])
    {
        let mut bytes = after[..cut].to_vec();
        bytes[new_slot..new_slot + 256].copy_from_slice(&before[new_slot..new_slot + 256]);
        let f = open_bytes(&bytes).expect("an unfinished segment must not hide the last commit");
        assert_eq!(snapshot(&f), old, "cut at {cut}");
        assert!(f.verify().is_ok());
    }
    // Step 3: the header slot torn at every byte.
    for torn in 0..=256 {
        let mut bytes = after.clone();
        bytes[new_slot + torn..new_slot + 256]
            .copy_from_slice(&before[new_slot + torn..new_slot + 256]);
        let snap = snapshot(&open_bytes(&bytes).unwrap());
        assert!(snap == old || snap == new, "torn at {torn}");
        assert_eq!(snap == new, torn == 256);
    }
}

#[test]
fn append_after_an_interrupted_commit_discards_the_partial_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.ferret");
    let (before, after) = write_two_commits(&path);
    let mut crashed = after[..after.len() - 300].to_vec();
    let seq = open_bytes(&after).unwrap().sequence();
    let s = (seq % 2 * HEADER_SLOT_SIZE) as usize;
    crashed[s..s + 256].copy_from_slice(&before[s..s + 256]);
    std::fs::write(&path, &crashed).unwrap();
    let mut w = SpanFileWriter::open_append(&path).unwrap();
    assert_eq!(w.next_index(), 1500);
    push(&mut w, &sample(9), None);
    w.commit(true).unwrap();
    let f = SpanFile::open(&path).unwrap();
    assert_eq!(f.record_count(), 1501);
    assert_eq!(f.verify().unwrap(), 1501);
    assert!(f.is_complete());
}

#[test]
fn every_flipped_byte_region_is_detected_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = write_two_commits(&dir.path().join("t.ferret"));
    let f = open_bytes(&good).unwrap();
    let seg = f.segments()[1].clone();
    drop(f);
    // One position in each region of segment 1: header, records, checksums, names, tags.
    let rec = seg.offset as usize + 128 + 64 * 700 + 17;
    let positions = [
        seg.offset as usize + 40,
        rec,
        rec + 64 * 500,
        good.len() - 70,
    ];
    for pos in positions {
        let mut bad = good.clone();
        bad[pos] ^= 0x40;
        let err = open_bytes(&bad).and_then(|f| f.verify());
        assert!(err.is_err(), "flip at {pos} went unnoticed");
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("checksum") || msg.contains("invalid"), "{msg}");
    }
    // A flipped record byte names the block's record range.
    let mut bad = good.clone();
    bad[rec] ^= 1;
    let msg = open_bytes(&bad).unwrap().verify().unwrap_err().to_string();
    assert!(msg.contains("records 1500..2524 (segment 1)"), "{msg}");
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = write_two_commits(&dir.path().join("t.ferret"));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "empty file"),
        (
            b"SQLite format 3\0 and more bytes".to_vec(),
            "not a ferret span file",
        ),
        (good[..5000].to_vec(), "truncated header"),
        // Cut inside the first commit: neither slot's state is there.
        (good[..9000].to_vec(), "truncated file"),
        (
            {
                let mut b = good.clone();
                b[..HEADER_SLOT_SIZE as usize * 2].fill(0xAA);
                b[..8].copy_from_slice(&MAGIC);
                b
            },
            "corrupt header",
        ),
    ];
    for (bytes, want) in cases {
        let err = open_bytes(&bytes).err().expect(want).to_string();
        assert!(err.contains(want), "{err:?} lacks {want:?}");
    }
    // Cut inside the last commit: the previous commit is whole, and read, saying what was lost.
    let f = open_bytes(&good[..good.len() - 64]).unwrap();
    let fallback = f.fallback().expect("the previous commit is read");
    assert!(fallback.reason.contains("truncated file"), "{fallback:?}");
    assert_eq!((fallback.lost_records, f.record_count()), (1100, 1500));
}

#[test]
fn a_newer_version_is_refused_with_the_version_needed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut bytes) = write_two_commits(&dir.path().join("t.ferret"));
    // Rewrite both slots as the next version with valid checksums.
    let next = FORMAT_VERSION + 1;
    for slot in 0..2 {
        let at = slot * HEADER_SLOT_SIZE as usize;
        bytes[at + 8..at + 12].copy_from_slice(&next.to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64(&bytes[at..at + 248]);
        bytes[at + 248..at + 256].copy_from_slice(&sum.to_le_bytes());
    }
    let err = open_bytes(&bytes).err().unwrap().to_string();
    assert!(
        err.contains(&format!("format version {next} is newer")),
        "{err}"
    );
    assert!(err.contains("upgrade ferret"), "{err}");
}

/// Readers opened at every step of a writer's appends (before a commit, while one is in flight,
/// after it landed) see whole commits only, every state in turn; a reader opened at one state
/// keeps reading that state whole while later commits land.
#[test]
fn a_reader_during_appends_sees_only_whole_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.ferret");
    let mut w = SpanFileWriter::create(&path).unwrap();
    w.commit(false).unwrap();
    let open = || {
        let f = SpanFile::open(&path).unwrap();
        let n = f.record_count();
        assert_eq!(f.verify().unwrap(), n, "what a reader sees verifies");
        (f, n)
    };
    let mut seen = vec![0];
    let mut held = Vec::new();
    for batch in 0..40u64 {
        for i in 0..100 {
            push(&mut w, &sample((batch * 100 + i) as usize), None);
        }
        // Pushed, not committed: the reader sees the commit before.
        assert_eq!(open().1, batch * 100);
        w.commit_in_background(false).unwrap();
        // In flight: the segment may be written and the header not: either whole state.
        let (_, during) = open();
        assert!(
            during == batch * 100 || during == (batch + 1) * 100,
            "{during}"
        );
        w.wait_for_commit().unwrap();
        let (f, n) = open();
        assert_eq!(n, (batch + 1) * 100);
        seen.push(n);
        if batch % 10 == 0 {
            held.push((f, n)); // read again at the end, after the later commits
        }
    }
    assert_eq!(seen, (0..=40).map(|b| b * 100).collect::<Vec<u64>>());
    for (f, n) in held {
        assert_eq!(f.verify().unwrap(), n, "an older view stays whole");
    }
}

#[test]
fn background_commits_land_in_order_and_are_mapped_once_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.ferret");
    let mut w = SpanFileWriter::create(&path).unwrap();
    for i in 0..1000 {
        push(&mut w, &sample(i), None);
    }
    w.commit_in_background(false).unwrap();
    for i in 1000..1500 {
        push(&mut w, &sample(i), Some(7));
    }
    // The fix-up view waits for the commit in flight and maps it.
    let (pending, first, committed) = w.pending_with_committed().unwrap();
    assert_eq!((pending.len(), first), (500, 1000));
    assert_eq!(committed.unwrap().record_count(), 1000);
    w.commit_in_background(true).unwrap();
    let seen = SpanFile::open(&path).unwrap().record_count();
    assert!(seen == 1000 || seen == 1500, "a reader saw {seen} records");
    w.wait_for_commit().unwrap();
    let file = SpanFile::open(&path).unwrap();
    assert_eq!((file.record_count(), file.sequence()), (1500, 2));
    assert!(file.is_complete());
    assert_eq!(w.committed().unwrap().record_count(), 1500);
    assert_eq!(file.verify().unwrap(), 1500);
}

/// The golden file of format version 1, written once by `write_golden` below and committed:
/// later versions of this crate must keep reading it exactly.
#[test]
fn golden_v1_file_still_reads() {
    let f = open_golden(1);
    for (i, r) in snapshot(&f).iter().map(|s| s.0).enumerate() {
        assert_eq!(r.parent(), (i >= 1500).then_some(3));
    }
}

/// Opens the golden file of `version`, verifies it, and checks every record's own fields
/// against the [`sample`] it was written from.
fn open_golden(version: u32) -> SpanFile<memmap2::Mmap> {
    let f = SpanFile::open(&golden(version)).expect("a golden file must open");
    assert_eq!(f.version(), version);
    assert_eq!(f.verify().unwrap(), 2600);
    for (i, (r, name, run, tags, status)) in snapshot(&f).iter().enumerate() {
        let s = sample(i);
        assert_eq!(r.start_time, s.start);
        assert_eq!(r.duration(), s.duration);
        assert_eq!(
            (name, run, tags, status),
            (&s.name, &s.run, &s.tags, &s.status)
        );
    }
    f
}

/// The golden file of format version 2, written once by `write_golden` below and committed:
/// records, link tables (orphans, adoptions), the rowid watermark and the latest start.
#[test]
fn golden_v2_file_still_reads() {
    let f = open_golden(2);
    for (i, r) in snapshot(&f).iter().map(|s| s.0).enumerate() {
        let index = i as u64;
        let parent = match i {
            _ if orphaned(i) => Some(1500),
            1501.. => Some(3),
            _ => None,
        };
        assert_eq!(f.parent_of(index, &r), parent, "parent of {i}");
        let root = match i {
            _ if orphaned(i) => 1500,
            1501.. => 3,
            _ => index,
        };
        assert_eq!(f.root_of(&r), root, "root of {i}");
    }
    let segments = f.segments();
    assert_eq!(f.orphans(&segments[0]).len(), 15);
    assert!(f
        .orphans(&segments[0])
        .iter()
        .all(|o| o.parent_id == id_of(1500)));
    assert_eq!(f.adoptions(&segments[1]).len(), 15);
    // The scan index: a zone per block, listing both runs (they alternate), and the directory.
    let run_ids: Vec<u32> = ["run0", "run1"]
        .iter()
        .map(|name| {
            (0..f.string_count() as u32)
                .find(|&id| f.string(id) == Some(name))
                .unwrap()
        })
        .collect();
    assert_eq!(f.zones(&segments[0]).len(), 2);
    assert_eq!(f.zones(&segments[1]).len(), 2);
    for seg in segments {
        for z in f.zones(seg) {
            assert_eq!(f.zone_runs(seg, z), run_ids.as_slice());
            assert!(z.min_start <= z.max_start);
        }
    }
    let first = f.runs(&segments[0]);
    assert_eq!(first.len(), 2);
    assert_eq!(
        (first[0].spans, first[0].first_index, first[0].last_index),
        (750, 0, 1498)
    );
    assert_eq!(
        f.runs(&segments[1]).iter().map(|e| e.spans).sum::<u64>(),
        1100
    );
    assert_eq!(f.latest_start_record(), Some(2599));
    let wm = f.watermark().unwrap();
    assert_eq!(
        (wm.rowids.done, wm.rowids.upto, wm.rowids.check),
        (2600, 2600, 0x0123_4567_89ab_cdef)
    );
    assert_eq!(wm.source, "/traces/golden.db");
}

/// The golden files are frozen: their bytes are what each released version wrote, and a reader
/// must read them as they are. A change of layout bumps the version and adds a file; it never
/// rewrites one of these (v2's was rewritten three times while unreleased, see docs/FORMAT.md).
#[test]
fn golden_files_are_frozen() {
    use sha2::{Digest, Sha256};
    for (version, want) in [
        (
            1,
            "532bfc0599e0dc3fc633fe43f04f4a0b66394e26d1c140780210d9a0ee5a3ed5",
        ),
        (
            2,
            "8f9f3e8273cb7bb27151bb9fbafc1844d34cb99d040c853cb7f2eb9009441feb",
        ),
    ] {
        let bytes = std::fs::read(golden(version)).unwrap();
        let got: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, want, "testdata/golden/v{version}.ferret changed");
    }
}

fn golden(version: u32) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/golden")
        .join(format!("v{version}.ferret"))
}

/// Writes the golden file of the current version; run by hand only when a new format version
/// is released (`cargo test -p ferret-format -- --ignored write_golden`), never to make a test
/// pass. Earlier versions' files stay as they were committed.
#[test]
#[ignore]
fn write_golden() {
    let path = golden(FORMAT_VERSION);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_two_commits(&path);
}

/// Damaged files give errors, never panics: random byte flips and cuts of each golden file,
/// each opened, verified and read through every accessor, links included.
#[test]
fn damaged_files_never_panic() {
    for version in MIN_READ_VERSION..=FORMAT_VERSION {
        damage_never_panics(&golden(version));
    }
}

fn damage_never_panics(path: &Path) {
    let good = read(path);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut rejected = 0;
    for round in 0..3000 {
        let mut bytes = good.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        }
        if round % 10 == 0 {
            bytes.truncate((next() % bytes.len() as u64) as usize);
        }
        let Ok(f) = open_bytes(&bytes) else {
            rejected += 1;
            continue;
        };
        if f.verify().is_err() {
            rejected += 1;
        }
        for seg in f.segments() {
            for (i, r) in f.records(seg).iter().enumerate() {
                let index = seg.first_record + i as u64;
                let _ = (f.name(r.name), f.string(r.run), f.status(seg, r));
                let _ = f.extras(seg, r).tags_json();
                let _ = (f.parent_of(index, r), f.root_of(r));
            }
            let _ = (f.orphans(seg).len(), f.adoptions(seg).len());
        }
    }
    // Almost every damage is caught: only flips in padding or reserved bytes go unnoticed.
    assert!(
        rejected > 2700,
        "only {rejected} of 3000 damaged files were rejected"
    );
}

/// Damage anywhere inside the last commit's segment, after its header was written, costs only
/// that commit: whatever a reader or `verify` notices, an appending writer resumes from the
/// previous commit, and a reader reads either the whole newest commit or the previous one.
#[test]
fn damage_inside_the_last_commit_costs_only_that_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.ferret");
    let (_, good) = write_two_commits(&path);
    let old = snapshot(&open_bytes(&good[..]).unwrap())[..1500].to_vec();
    let last = open_bytes(&good).unwrap().segments()[1].clone();
    let mut noticed = 0;
    for at in (last.offset as usize..good.len()).step_by(331) {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        let view = open_bytes(&bad).expect("the previous commit is always there to read");
        let records = view.record_count();
        assert!(
            records == 1500 || records == 2600,
            "flip at {at}: {records}"
        );
        if records == 1500 {
            assert_eq!(snapshot(&view), old, "flip at {at}");
        }
        let damaged = view.verify().is_err();
        drop(view);
        std::fs::write(&path, &bad).unwrap();
        let w = SpanFileWriter::open_append(&path).unwrap();
        // A flip the checksums cannot see (padding, reserved bytes) leaves the commit whole.
        if damaged {
            noticed += 1;
            assert!(w.fallback().is_some(), "flip at {at}");
            assert_eq!(w.next_index(), 1500, "flip at {at}");
        }
    }
    assert!(noticed > 20, "only {noticed} flips were noticed");
}
