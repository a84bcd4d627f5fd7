//! [`SpanFile`]: a read-only view of the committed prefix of a span record file, generic over
//! `AsRef<[u8]>` so a memory map and an in-memory buffer share one code path.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use memmap2::{Mmap, MmapOptions};
use rayon::prelude::*;

use crate::bloom::{words_may_hold, IdBloom};
use crate::checksum::{checksum, table_checksum};
use crate::error::{FormatError, Region};
use crate::header::{read_header_slots, Header, HeaderSlots, Watermark, DATA_START};
use crate::links::{Adoption, Links, Orphan};
use crate::meta::{MetaLayout, MetaToc};
use crate::record::{SpanId, SpanRecord, FLAG_CUSTOM_STATUS, KNOWN_FLAGS, NONE_NAME, NO_EXTRAS};
use crate::segment::{block_count, read_segment_header, SegmentLayout, BLOCK_RECORDS};
use crate::strings::StringTable;
use crate::tags::SpanExtras;
use crate::zones::{index_records, BlockZone, RunEntry};

/// One committed segment: a contiguous run of records with its own checksums and tag heap.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Position of the segment in the file.
    pub index: usize,
    /// Byte offset of its header.
    pub offset: u64,
    /// Global index of its first record.
    pub first_record: u64,
    /// Number of records.
    pub record_count: u64,
    /// Index of its first checksum block among the file's (for [`SpanFile::checked_record`]).
    first_block: usize,
    layout: SegmentLayout,
    tags_len: u64,
    names_checksum: u64,
    strings_checksum: u64,
    tags_checksum: u64,
    filter_checksum: u64,
    /// The metadata tables' absolute byte ranges.
    meta: MetaLayout,
}

impl Segment {
    /// Global record indices of this segment.
    pub fn record_range(&self) -> Range<u64> {
        self.first_record..self.first_record + self.record_count
    }

    /// Number of checksum blocks.
    pub fn block_count(&self) -> usize {
        block_count(self.record_count) as usize
    }
}

/// A heap buffer aligned for a zero-copy record view, for reading a file into memory.
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into an 8-byte aligned buffer.
    pub fn copy_from(bytes: &[u8]) -> AlignedBytes {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        AlignedBytes {
            words,
            len: bytes.len(),
        }
    }
}

impl AsRef<[u8]> for AlignedBytes {
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }
}

/// The committed spans of a file, its strings and its watermark.
pub struct SpanFile<D> {
    data: D,
    committed: usize,
    header: Header,
    segments: Vec<Segment>,
    names: StringTable,
    strings: StringTable,
    links: Links,
    /// The previous commit's header (the other slot), when it is intact enough to read.
    previous: Option<Header>,
    /// Set when the newest commit failed its checks and this view is the previous commit.
    fallback: Option<Fallback>,
    /// One bit per checksum block of the file, set once the block's checksum has passed: a
    /// record read out of a pass's order ([`SpanFile::checked_record`]) checks its block once.
    checked: Vec<AtomicU64>,
    /// Per segment, whether its span-id filter was checked ([`SpanFile::may_hold`]).
    filters: Vec<AtomicU8>,
}

/// States of a segment's span-id filter: not checked yet, passed its checksum, failed it.
const FILTER_UNCHECKED: u8 = 0;
const FILTER_GOOD: u8 = 1;
const FILTER_DAMAGED: u8 = 2;

/// What a view lost by reading the previous commit because the newest failed its checks
/// (a torn or damaged last segment): that commit's records, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    /// Why the newest commit was not read.
    pub reason: String,
    /// Its records that this view does not hold (`--append` adds them again).
    pub lost_records: u64,
}

/// Which commit a view reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Commit {
    /// The newest whose checks pass (the previous one if the newest's fail).
    Newest,
    /// The previous one, as if the newest had failed.
    Previous,
}

/// The segments, strings and links of one commit.
#[derive(Default)]
struct Loaded {
    segments: Vec<Segment>,
    names: StringTable,
    strings: StringTable,
    links: Links,
}

impl SpanFile<Mmap> {
    /// Opens and maps the committed prefix of the file at `path`, checking the header, every
    /// segment header, the string tables and the metadata before the span-id filters. Record
    /// and tag checksums are checked by [`SpanFile::verify`] and by scans as they read. When
    /// the newest commit fails these checks and the previous one (the other header slot) passes
    /// them, the view is the previous commit and [`SpanFile::fallback`] says what was lost.
    pub fn open(path: &Path) -> Result<SpanFile<Mmap>, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        SpanFile::map(&file, path, Commit::Newest)
    }

    /// Opens the previous commit of the file at `path`, as [`SpanFile::open`] does when the
    /// newest fails its checks: for a scan that found the newest commit's records damaged.
    pub fn open_previous(path: &Path) -> Result<SpanFile<Mmap>, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        SpanFile::map(&file, path, Commit::Previous)
    }

    /// Maps the file open as `file` (named `path` in errors).
    pub(crate) fn map(
        file: &File,
        path: &Path,
        commit: Commit,
    ) -> Result<SpanFile<Mmap>, FormatError> {
        let io = |e| FormatError::io(path, e);
        let mut head = vec![0u8; DATA_START as usize];
        let mut got = 0;
        while got < head.len() {
            match file.read_at(&mut head[got..], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        head.truncate(got);
        // The length is read after the header: a commit landing between the two would
        // otherwise make a healthy file look cut short (its header naming bytes past the end).
        let len = file.metadata().map_err(io)?.len();
        let slots = read_header_slots(&head, len)?;
        let newest = match slots.refused {
            None => slots.newest.raw.committed_len,
            Some(_) => DATA_START,
        };
        let mapped = newest.max(slots.previous.map_or(DATA_START, |h| h.raw.committed_len));
        // SAFETY: the map is read-only and covers only committed bytes (of the newest commit, or
        // of the previous one when the newest's length passes the file's end), which writers
        // never modify: they append past them and rewrite only the header slots, which we have
        // already copied and never read through the map. Whatever would take committed bytes
        // away (a replaced file, a commit set aside or undone) is written as a new file renamed
        // over this one (`lock.rs`), so the inode mapped here keeps its bytes as long as the
        // map lives. Only another program truncating the file could fault a read (SIGBUS), as
        // with any mapped file; docs/FORMAT.md says so.
        let map = unsafe { MmapOptions::new().len(mapped as usize).map(file) }.map_err(io)?;
        // Opening reads a few pages of each segment (its header, tables and metadata). With
        // the kernel's read-around, each of those faults on a file not in the page cache read
        // the device's whole read-ahead window around it (8 MiB here: 916 MB of a 2 GB file for
        // `--runs`), in small pages that every later scan then maps one by one (40 ms instead
        // of 26 for a 400 MB file). Random advice reads only the pages opening touches; the
        // advice is back to normal (read-around) for what the caller reads next.
        // Advice is a hint: failing to give it changes nothing but speed.
        let _ = map.advise(memmap2::Advice::Random);
        let opened = SpanFile::with_slots(map, slots, commit)?;
        let _ = opened.data.advise(memmap2::Advice::Normal);
        Ok(opened)
    }

    /// Tells the kernel the records will be scanned: read sequentially (more read-ahead), and
    /// into huge pages. Without the second, a scan of a file that was not in the page cache left
    /// much of it in small pages (the read-ahead's page sizes did not grow under the scan's
    /// reads), which every later scan mapped a few at a time: 46 ms instead of 31 for 400 MB.
    pub fn advise_scan(&self) {
        // Advice is a hint: failing to give it changes nothing but speed.
        let _ = self.data.advise(memmap2::Advice::Sequential);
        let _ = self.data.advise(memmap2::Advice::HugePage);
    }

    /// Drops the pages of `records` of `segment` from this process's resident set once a scan is
    /// done with them. The page cache keeps the data; a later access faults it back in.
    pub fn release_records(&self, segment: &Segment, records: Range<u64>) {
        let page = 4096u64;
        let base = segment.layout.records;
        let start = (base + (records.start - segment.first_record) * 64).div_ceil(page) * page;
        let end = (base + (records.end - segment.first_record) * 64) / page * page;
        if end > start {
            // SAFETY: the map is read-only and backed by the file, so MADV_DONTNEED discards no
            // data: a later read faults the same bytes back in from the page cache. No slice into
            // the range is invalidated, only its residency.
            let _ = unsafe {
                self.data.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start as usize,
                    (end - start) as usize,
                )
            };
        }
    }
}

impl<D: AsRef<[u8]>> SpanFile<D> {
    /// Views an in-memory file (which must be 8-byte aligned: see [`AlignedBytes`]).
    pub fn from_bytes(data: D) -> Result<SpanFile<D>, FormatError> {
        let bytes = data.as_ref();
        let head = &bytes[..bytes.len().min(DATA_START as usize)];
        let slots = read_header_slots(head, bytes.len() as u64)?;
        SpanFile::with_slots(data, slots, Commit::Newest)
    }

    fn with_slots(data: D, slots: HeaderSlots, commit: Commit) -> Result<SpanFile<D>, FormatError> {
        if !(data.as_ref().as_ptr() as usize).is_multiple_of(8) {
            return Err(FormatError::Misaligned);
        }
        let HeaderSlots {
            newest,
            refused,
            previous,
        } = slots;
        let tried = match (commit, refused) {
            (Commit::Previous, _) => Err(FormatError::NoPreviousCommit),
            (Commit::Newest, Some(e)) => Err(e),
            (Commit::Newest, None) => SpanFile::<D>::load(data.as_ref(), &newest),
        };
        let (header, loaded, fallback, previous) = match (tried, previous) {
            (Ok(loaded), previous) => (newest, loaded, None, previous),
            (Err(e), None) => return Err(e),
            (Err(e), Some(prev)) => {
                // The previous commit's bytes are a prefix of the newest's: if they fail too,
                // the newest's error is the one to report.
                let Ok(loaded) = SpanFile::<D>::load(data.as_ref(), &prev) else {
                    return Err(e);
                };
                let fallback = Fallback {
                    reason: e.brief(),
                    lost_records: newest
                        .raw
                        .record_count
                        .saturating_sub(prev.raw.record_count),
                };
                (prev, loaded, Some(fallback), None)
            }
        };
        let blocks = loaded
            .segments
            .last()
            .map_or(0, |s| s.first_block + s.block_count());
        Ok(SpanFile {
            data,
            committed: header.raw.committed_len as usize,
            header,
            checked: (0..blocks.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            filters: (0..loaded.segments.len())
                .map(|_| AtomicU8::new(FILTER_UNCHECKED))
                .collect(),
            segments: loaded.segments,
            names: loaded.names,
            strings: loaded.strings,
            links: loaded.links,
            previous,
            fallback,
        })
    }

    fn load(bytes: &[u8], header: &Header) -> Result<Loaded, FormatError> {
        let mut l = Loaded::default();
        let committed = header.raw.committed_len;
        let bytes = bytes
            .get(..committed as usize)
            .ok_or(FormatError::Truncated {
                committed,
                len: bytes.len() as u64,
            })?;
        let mut offset = DATA_START;
        let mut records = 0u64;
        let mut blocks = 0usize;
        while offset < committed {
            let index = l.segments.len();
            let (h, layout) = read_segment_header(bytes, index, offset)?;
            let invalid = |what: String| FormatError::InvalidSegment {
                segment: index,
                offset,
                what,
            };
            if h.first_record != records
                || h.first_name as usize != l.names.len()
                || h.first_string as usize != l.strings.len()
            {
                return Err(invalid(
                    "does not continue where the previous segment ended".into(),
                ));
            }
            let names = layout.names as usize..layout.strings as usize;
            let strings = layout.strings as usize..layout.tags as usize;
            if checksum(&bytes[names.clone()]) != h.names_checksum {
                return Err(FormatError::Checksum {
                    region: Region::Names { segment: index },
                });
            }
            if checksum(&bytes[strings.clone()]) != h.strings_checksum {
                return Err(FormatError::Checksum {
                    region: Region::Strings { segment: index },
                });
            }
            l.names
                .extend_from(bytes, names.start, names.len(), h.name_count, "name")
                .map_err(invalid)?;
            l.strings
                .extend_from(
                    bytes,
                    strings.start,
                    strings.len(),
                    h.string_count,
                    "string",
                )
                .map_err(invalid)?;
            let meta = read_meta(bytes, &h, &layout).map_err(|e| match e {
                MetaError::Checksum => FormatError::Checksum {
                    region: Region::Meta { segment: index },
                },
                MetaError::Invalid(what) => invalid(what),
            })?;
            // An 8-aligned offset in an 8-aligned buffer, a length of 24-byte entries: the cast
            // holds (read from `bytes`, so the links can take them while `self` is borrowed).
            let adoptions: &[Adoption] = bytemuck::cast_slice(&bytes[meta.adoptions.clone()]);
            let end = records + h.record_count;
            if let Some(a) = adoptions
                .iter()
                .find(|a| a.child >= records || a.parent >= end || a.child == a.parent)
            {
                return Err(invalid(format!(
                    "adoption of record {} by record {} points outside the records before its end",
                    a.child, a.parent
                )));
            }
            l.links.extend(adoptions);
            l.segments.push(Segment {
                index,
                offset,
                first_record: records,
                record_count: h.record_count,
                first_block: blocks,
                layout,
                tags_len: h.tags_len,
                names_checksum: h.names_checksum,
                strings_checksum: h.strings_checksum,
                tags_checksum: h.tags_checksum,
                filter_checksum: h.filter_checksum,
                meta,
            });
            records += h.record_count;
            blocks += block_count(h.record_count) as usize;
            offset = layout.end;
        }
        let raw = &header.raw;
        if offset != committed
            || records != raw.record_count
            || l.segments.len() as u64 != raw.segment_count
            || l.names.len() as u64 != raw.name_count
            || l.strings.len() as u64 != raw.string_count
        {
            return Err(FormatError::InvalidHeader(
                "the header's counts do not match its segments".into(),
            ));
        }
        Ok(l)
    }

    /// Set when the newest commit failed its checks and this view reads the previous one.
    pub fn fallback(&self) -> Option<&Fallback> {
        self.fallback.as_ref()
    }

    /// True when `segment` was added by the newest commit and the previous commit, which does
    /// not hold it, is intact enough to read instead ([`SpanFile::open_previous`]).
    pub fn previous_commit_lacks(&self, segment: usize) -> bool {
        self.previous.is_some() && segment >= self.last_commit_start()
    }

    /// The first segment the newest commit added: 0 when there is no intact previous commit
    /// to tell (then every segment counts as the newest commit's).
    pub(crate) fn last_commit_start(&self) -> usize {
        self.previous.map_or(0, |p| p.raw.segment_count as usize)
    }

    fn bytes(&self) -> &[u8] {
        &self.data.as_ref()[..self.committed]
    }

    /// The committed segments, in file order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The adoptions `segment` records: roots committed earlier that got a parent in it.
    pub fn adoptions(&self, segment: &Segment) -> &[Adoption] {
        bytemuck::cast_slice(&self.bytes()[segment.meta.adoptions.clone()])
    }

    /// The orphans `segment` records: its roots still waiting for a parent id, sorted by it.
    pub fn orphans(&self, segment: &Segment) -> &[Orphan] {
        bytemuck::cast_slice(&self.bytes()[segment.meta.orphans.clone()])
    }

    /// The zone of each checksum block of `segment` (empty for a version 1 segment).
    pub fn zones(&self, segment: &Segment) -> &[BlockZone] {
        bytemuck::cast_slice(&self.bytes()[segment.meta.zones.clone()])
    }

    /// The runs (string ids, ascending) present in `zone` of `segment`.
    pub fn zone_runs(&self, segment: &Segment, zone: &BlockZone) -> &[u32] {
        let ids: &[u32] = bytemuck::cast_slice(&self.bytes()[segment.meta.run_ids.clone()]);
        let at = zone.runs_at as usize;
        ids.get(at..at + zone.runs_len as usize).unwrap_or(&[])
    }

    /// The run directory of `segment`: one entry per run present (empty for version 1).
    pub fn runs(&self, segment: &Segment) -> &[RunEntry] {
        bytemuck::cast_slice(&self.bytes()[segment.meta.runs.clone()])
    }

    /// False when `segment` certainly holds no span with id `id` (its span-id filter says so; a
    /// version 1 segment has none, and may hold anything). Opening leaves the filters unchecked
    /// (only a converter appending reads them, and they are most of the metadata); a segment's
    /// is checked the first time it is asked, and one that fails its checksum answers "may
    /// hold" for every id: the segment is read, so the answer stays right, only slower.
    pub fn may_hold(&self, segment: &Segment, id: &SpanId) -> bool {
        let state = &self.filters[segment.index];
        if state.load(Ordering::Relaxed) == FILTER_UNCHECKED {
            let checked = match self.verify_id_filter(segment) {
                Ok(()) => FILTER_GOOD,
                Err(_) => FILTER_DAMAGED,
            };
            state.store(checked, Ordering::Relaxed);
        }
        if state.load(Ordering::Relaxed) == FILTER_DAMAGED {
            return true;
        }
        words_may_hold(self.filter_words(segment), id)
    }

    /// True when every segment has its scan index (version 2), so runs and blocks can be
    /// chosen without reading the records.
    pub fn has_index(&self) -> bool {
        self.version() >= 2
    }

    /// Every adoption of the file, by child.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The parent of record `index` (`record`), following an adoption.
    #[inline]
    pub fn parent_of(&self, index: u64, record: &SpanRecord) -> Option<u64> {
        self.links.parent_of(index, record)
    }

    /// The root of `record`'s tree: its root field followed through adoptions.
    #[inline]
    pub fn root_of(&self, record: &SpanRecord) -> u64 {
        let root = record.root_index();
        if self.links.is_empty() {
            return root;
        }
        self.links
            .root_of(root, |p| self.record(p).map(|r| r.root_index()))
    }

    /// The records of `segment`, viewed in place.
    pub fn records(&self, segment: &Segment) -> &[SpanRecord] {
        let l = &segment.layout;
        bytemuck::cast_slice(&self.bytes()[l.records as usize..l.checksums as usize])
    }

    /// The segment holding global record `index`.
    pub fn segment_of(&self, index: u64) -> Option<&Segment> {
        let i = self
            .segments
            .partition_point(|s| s.first_record + s.record_count <= index);
        self.segments
            .get(i)
            .filter(|s| s.record_range().contains(&index))
    }

    /// The record with global index `index`.
    pub fn record(&self, index: u64) -> Option<&SpanRecord> {
        let seg = self.segment_of(index)?;
        self.records(seg).get((index - seg.first_record) as usize)
    }

    /// Total committed records.
    pub fn record_count(&self) -> u64 {
        self.header.raw.record_count
    }

    /// The name with id `id`.
    pub fn name(&self, id: u32) -> Option<&str> {
        self.names.get(self.bytes(), id)
    }

    /// Number of distinct names.
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// The string (run id, status, namespace, source) with id `id`.
    pub fn string(&self, id: u32) -> Option<&str> {
        self.strings.get(self.bytes(), id)
    }

    /// Number of distinct strings.
    pub fn string_count(&self) -> usize {
        self.strings.len()
    }

    /// The record that comes last in ferret's order: the latest start (the last of equal
    /// starts). Version 1 files are in that order; version 2 files name it in the header.
    pub fn latest_start_record(&self) -> Option<u64> {
        let raw = &self.header.raw;
        match raw.version {
            1 => raw.record_count.checked_sub(1),
            _ => raw.latest_record.checked_sub(1),
        }
    }

    /// The format version of the file.
    pub fn version(&self) -> u32 {
        self.header.raw.version
    }

    /// True when the conversion that wrote the file ran to its end.
    pub fn is_complete(&self) -> bool {
        self.header.is_complete()
    }

    /// Where an incremental conversion would resume, if the file has a watermark.
    pub fn watermark(&self) -> Option<Watermark> {
        let raw = &self.header.raw;
        let source = self.string(raw.wm_source)?.to_string();
        let namespace = self.string(raw.wm_namespace)?.to_string();
        Some(Watermark {
            source,
            namespace,
            last: self.header.last(),
            rowids: self.header.rowids(),
        })
    }

    /// The header's commit sequence number.
    pub fn sequence(&self) -> u64 {
        self.header.raw.sequence
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    /// The extras (tags, odd status, original id) of `record`, which must belong to `segment`.
    pub fn extras(&self, segment: &Segment, record: &SpanRecord) -> SpanExtras<'_> {
        if record.extras == NO_EXTRAS {
            return SpanExtras::default();
        }
        SpanExtras::decode(self.tag_heap(segment), record.extras as usize).unwrap_or_default()
    }

    /// Appends the span id of `record` (of `segment`) as the source wrote it: 32 hex digits, or
    /// the original text of a hashed id.
    pub fn write_span_id(&self, segment: &Segment, record: &SpanRecord, out: &mut Vec<u8>) {
        if record.has_hashed_id() {
            out.extend_from_slice(self.extras(segment, record).original_id);
        } else {
            SpanId(record.span_id).write_hex(out);
        }
    }

    /// The span id of `record` (of `segment`) as the source wrote it (see [`Self::write_span_id`]).
    pub fn span_id_text(&self, segment: &Segment, record: &SpanRecord) -> String {
        let mut out = Vec::with_capacity(32);
        self.write_span_id(segment, record, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The status string of a record as ferret would show it.
    pub fn status<'a>(&'a self, segment: &Segment, record: &SpanRecord) -> &'a str {
        if !record.is_error() {
            return "ok";
        }
        match self.extras(segment, record).status {
            Some(id) => self.string(id).unwrap_or("error"),
            None => "error",
        }
    }

    fn tag_heap(&self, segment: &Segment) -> &[u8] {
        let l = &segment.layout;
        &self.bytes()[l.tags as usize..(l.tags + segment.tags_len) as usize]
    }

    /// Checks the checksums of blocks `blocks` of `segment`, each hashed again even if checked
    /// before (see [`check_block`](Self::check_block)).
    pub fn verify_blocks(
        &self,
        segment: &Segment,
        blocks: Range<usize>,
    ) -> Result<(), FormatError> {
        let bytes = self.bytes();
        let records = self.records(segment);
        let sums = &bytes[segment.layout.checksums as usize..];
        for b in blocks {
            let start = b * BLOCK_RECORDS;
            let end = ((b + 1) * BLOCK_RECORDS).min(records.len());
            let want = u64::from_le_bytes(sums[b * 8..b * 8 + 8].try_into().expect("8 bytes"));
            let got = checksum(bytemuck::cast_slice(&records[start..end]));
            if got != want {
                return Err(FormatError::Checksum {
                    region: Region::Records {
                        segment: segment.index,
                        first: segment.first_record + start as u64,
                        end: segment.first_record + end as u64,
                    },
                });
            }
            let (word, bit) = Self::checked_bit(segment, b);
            self.checked[word].fetch_or(bit, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The word and bit of [`SpanFile::checked`] for block `block` of `segment`.
    fn checked_bit(segment: &Segment, block: usize) -> (usize, u64) {
        let global = segment.first_block + block;
        (global / 64, 1 << (global % 64))
    }

    /// The record with global index `index`, its block's checksum checked first (once per
    /// block and view): for reads that follow links (a parent, an ancestor, an adopted child)
    /// into blocks a pass may not have read, so that damage fails the question instead of
    /// changing its answer.
    pub fn checked_record(&self, index: u64) -> Result<Option<&SpanRecord>, FormatError> {
        let Some(seg) = self.segment_of(index) else {
            return Ok(None);
        };
        let block = ((index - seg.first_record) as usize) / BLOCK_RECORDS;
        self.check_block(seg, block)?;
        Ok(self.records(seg).get((index - seg.first_record) as usize))
    }

    /// Checks the checksum of block `block` of `segment` unless this view has checked it
    /// already: the mapped bytes of a commit never change (writers replace files, they do not
    /// rewrite them), so a pass that reads a block a second time (a tree's, a window's second
    /// pass) need not hash it again.
    pub fn check_block(&self, segment: &Segment, block: usize) -> Result<(), FormatError> {
        let (word, bit) = Self::checked_bit(segment, block);
        if self.checked[word].load(Ordering::Relaxed) & bit == 0 {
            self.verify_blocks(segment, block..block + 1)?;
        }
        Ok(())
    }

    /// Checks every checksum in the file and every record's references (names, strings, parent,
    /// root, extras), the block zones, run directories and span-id filters against the records.
    /// Returns the number of records checked. Segments are checked in parallel; the error
    /// reported is the first damaged segment's, whatever the order they were checked in.
    pub fn verify(&self) -> Result<u64, FormatError>
    where
        D: Sync,
    {
        if let Some(f) = &self.fallback {
            return Err(FormatError::NewestCommitDamaged {
                reason: f.reason.clone(),
                lost_records: f.lost_records,
            });
        }
        self.verify_unique_strings()?;
        let checked: Vec<Result<(), FormatError>> = self
            .segments
            .par_iter()
            .map(|seg| self.verify_segment(seg))
            .collect();
        for (seg, result) in self.segments.iter().zip(checked) {
            result.map_err(|e| match self.previous {
                // Damage in what the newest commit added, with the commit before it intact.
                Some(p) if self.previous_commit_lacks(seg.index) => {
                    FormatError::NewestCommitDamaged {
                        reason: e.brief(),
                        lost_records: self.record_count().saturating_sub(p.raw.record_count),
                    }
                }
                _ => e,
            })?;
        }
        Ok(self.record_count())
    }

    /// Checks that no name and no string is in its table twice: writers intern each once, and
    /// an appending writer relies on it.
    fn verify_unique_strings(&self) -> Result<(), FormatError> {
        let mut names = std::collections::HashSet::new();
        let mut strings = std::collections::HashSet::new();
        let names_unique = (0..self.name_count() as u32).all(|id| names.insert(self.name(id)));
        let strings_unique =
            (0..self.string_count() as u32).all(|id| strings.insert(self.string(id)));
        if names_unique && strings_unique {
            Ok(())
        } else {
            Err(FormatError::DuplicateStrings)
        }
    }

    /// Checks every checksum and record of `seg` (see [`SpanFile::verify`]).
    fn verify_segment(&self, seg: &Segment) -> Result<(), FormatError> {
        let names = &self.bytes()[seg.layout.names as usize..seg.layout.strings as usize];
        let strings = &self.bytes()[seg.layout.strings as usize..seg.layout.tags as usize];
        if checksum(names) != seg.names_checksum {
            return Err(FormatError::Checksum {
                region: Region::Names { segment: seg.index },
            });
        }
        if checksum(strings) != seg.strings_checksum {
            return Err(FormatError::Checksum {
                region: Region::Strings { segment: seg.index },
            });
        }
        self.verify_tags(seg)?;
        self.verify_id_filter(seg)?;
        self.verify_records(seg)?;
        for a in self.adoptions(seg) {
            self.check_adoption(a)?;
        }
        if !self.orphans(seg).is_sorted() {
            return Err(FormatError::InvalidSegment {
                segment: seg.index,
                offset: seg.offset,
                what: "orphan table is not sorted by parent id".into(),
            });
        }
        Ok(())
    }

    /// Checks the checksums that opening leaves to readers (record blocks, tag heap, span-id
    /// filter) of the segments the newest commit added: what a torn or damaged last commit
    /// shows in. Those are all the segments when the file has no intact previous commit.
    pub fn verify_last_commit(&self) -> Result<(), FormatError> {
        for seg in &self.segments[self.last_commit_start()..] {
            self.verify_segment_checksums(seg)?;
        }
        Ok(())
    }

    fn verify_segment_checksums(&self, seg: &Segment) -> Result<(), FormatError> {
        self.verify_tags(seg)?;
        self.verify_id_filter(seg)?;
        self.verify_blocks(seg, 0..seg.block_count())
    }

    /// Checks the checksum of `segment`'s span-id filter. Opening a file leaves it unchecked
    /// (only a converter appending reads it, see [`SpanFile::may_hold`]), so a writer checks
    /// every segment's before it trusts a "not here".
    pub fn verify_id_filter(&self, seg: &Segment) -> Result<(), FormatError> {
        if table_checksum(&self.bytes()[seg.meta.id_filter.clone()]) != seg.filter_checksum {
            return Err(FormatError::Checksum {
                region: Region::IdFilter { segment: seg.index },
            });
        }
        Ok(())
    }

    /// Checks the checksum of `segment`'s tag heap: anything printed from tags must be checked
    /// first (a flipped byte would otherwise change a printed tag silently).
    pub fn verify_tags(&self, seg: &Segment) -> Result<(), FormatError> {
        if checksum(self.tag_heap(seg)) != seg.tags_checksum {
            return Err(FormatError::Checksum {
                region: Region::Tags {
                    segment: seg.index,
                    first: seg.first_record,
                    end: seg.first_record + seg.record_count,
                },
            });
        }
        Ok(())
    }

    /// Checks the records of `seg` a checksum block at a time, in one pass while the block is in
    /// cache: its checksum, each record's references, and (version 2) that the block's zone, the
    /// segment's run directory and its span-id filter are exactly those of its records.
    fn verify_records(&self, seg: &Segment) -> Result<(), FormatError> {
        let records = self.records(seg);
        let indexed = self.has_index();
        let (stored, filter) = (self.zones(seg), self.filter_words(seg));
        let mut runs: Vec<RunEntry> = Vec::new();
        let mut index_agrees = !indexed || stored.len() == seg.block_count();
        // The filter of the segment's ids, to hold against the stored one (none: may hold any).
        let mut ids = (!filter.is_empty()).then(|| IdBloom::with_bits(filter.len() * 64));
        for (b, block) in records.chunks(BLOCK_RECORDS).enumerate() {
            self.verify_blocks(seg, b..b + 1)?;
            let first = seg.first_record + (b * BLOCK_RECORDS) as u64;
            for (i, r) in block.iter().enumerate() {
                self.check_record(seg, first + i as u64, r)?;
            }
            if !indexed || !index_agrees {
                continue;
            }
            let (zone, run_ids, block_runs) = index_records(block, first);
            index_agrees = stored.get(b).is_some_and(|s| {
                s.min_start.to_bits() == zone[0].min_start.to_bits()
                    && s.max_start.to_bits() == zone[0].max_start.to_bits()
                    && self.zone_runs(seg, s) == run_ids
            });
            if let Some(ids) = &mut ids {
                ids.insert_all(block.iter().map(|r| SpanId(r.span_id)));
            }
            // The directory lists runs as they first appear: merged block by block, in order.
            for e in block_runs {
                match runs.iter_mut().find(|known| known.run == e.run) {
                    Some(known) => *known = known.merge(&e),
                    None => runs.push(e),
                }
            }
        }
        let runs_agree = !indexed
            || bytemuck::cast_slice::<RunEntry, u8>(self.runs(seg))
                == bytemuck::cast_slice::<RunEntry, u8>(&runs);
        let filter_agrees = !indexed || ids.is_none_or(|ids| ids.is_within(filter));
        if index_agrees && runs_agree && filter_agrees {
            return Ok(());
        }
        Err(FormatError::InvalidSegment {
            segment: seg.index,
            offset: seg.offset,
            what: "its block zones, run directory or span-id filter do not match its records"
                .into(),
        })
    }

    /// The words of `segment`'s span-id filter, unchecked.
    fn filter_words(&self, segment: &Segment) -> &[u64] {
        bytemuck::cast_slice(&self.bytes()[segment.meta.id_filter.clone()])
    }

    /// Checks that an adoption names a root of the parent's run and the parent's name.
    fn check_adoption(&self, a: &Adoption) -> Result<(), FormatError> {
        let bad = |what: &str| {
            Err(FormatError::BadRecord {
                index: a.child,
                what: format!("adoption by record {}: {what}", a.parent),
            })
        };
        let (Some(child), Some(parent)) = (self.record(a.child), self.record(a.parent)) else {
            return bad("record out of range");
        };
        if child.parent().is_some() {
            return bad("the record already has a parent");
        }
        if child.run != parent.run {
            return bad("parent in another run");
        }
        if a.parent_name != parent.name {
            return bad("parent name disagrees with the parent");
        }
        Ok(())
    }

    /// Checks that a record's references point inside the file.
    pub fn check_record(
        &self,
        seg: &Segment,
        index: u64,
        r: &SpanRecord,
    ) -> Result<(), FormatError> {
        let bad = |what: String| Err(FormatError::BadRecord { index, what });
        let names = self.names.len() as u32;
        if r.name >= names {
            return bad(format!("name id {} out of range ({names} names)", r.name));
        }
        if r.parent_name != NONE_NAME && r.parent_name >= names {
            return bad(format!("parent name id {} out of range", r.parent_name));
        }
        if r.run as usize >= self.strings.len() {
            return bad(format!("run id {} out of range", r.run));
        }
        if r.flags() & !KNOWN_FLAGS != 0 {
            return bad(format!("unknown flags {:#x}", r.flags()));
        }
        // JSON holds no infinity or NaN, so a converted span never has one.
        if !r.start_time.is_finite() || !r.duration.is_finite() {
            return bad("start time or duration is not a finite number".into());
        }
        let count = self.record_count();
        if r.parent().is_some_and(|p| p == index || p >= count) || r.root_index() >= count {
            return bad("parent or root index out of range".into());
        }
        if r.parent().is_some() != (r.parent_name != NONE_NAME) {
            return bad("parent index and parent name disagree".into());
        }
        let extras = if r.extras == NO_EXTRAS {
            SpanExtras::default()
        } else {
            match SpanExtras::decode(self.tag_heap(seg), r.extras as usize) {
                Some(x) => x,
                None => return bad(format!("extras offset {} outside the tag heap", r.extras)),
            }
        };
        if extras
            .status
            .is_some_and(|s| s as usize >= self.strings.len())
        {
            return bad("status string id out of range".into());
        }
        // Tags are nearly always ASCII, checked in place; the rest by the UTF-8 rules.
        if !extras.tags.is_ascii() && std::str::from_utf8(extras.tags).is_err() {
            return bad("tags are not UTF-8".into());
        }
        if r.flags() & FLAG_CUSTOM_STATUS != 0 && extras.status.is_none() {
            return bad("custom status flag without a status string".into());
        }
        Ok(())
    }
}

/// Why a segment's metadata region was refused.
enum MetaError {
    Checksum,
    Invalid(String),
}

/// Checks the metadata region of the segment with header `h` (the checksum of everything but
/// the span-id filter, that its tables fill it, a zone per block) and returns where its tables
/// lie in the file. The filter, most of the region's bytes, is checked apart
/// ([`SpanFile::verify_id_filters`]): only a converter appending reads it.
fn read_meta(
    bytes: &[u8],
    h: &crate::segment::SegmentHeader,
    layout: &SegmentLayout,
) -> Result<MetaLayout, MetaError> {
    let start = layout.meta as usize;
    let region = &bytes[start..start + h.meta_len as usize];
    let toc: MetaToc = match region.get(..std::mem::size_of::<MetaToc>()) {
        Some(b) => bytemuck::pod_read_unaligned(b),
        None if region.is_empty() => MetaToc::default(),
        None => {
            return Err(MetaError::Invalid(
                "metadata shorter than its table of contents".into(),
            ))
        }
    };
    // A damaged table of contents shows as a checksum mismatch: the checksum covers it.
    let tables = toc.layout(region.len()).ok_or(MetaError::Checksum)?;
    if table_checksum(&region[..tables.id_filter.start]) != h.meta_checksum {
        return Err(MetaError::Checksum);
    }
    if !region.is_empty() && toc.zones != block_count(h.record_count) {
        return Err(MetaError::Invalid(format!(
            "{} block zones for {} blocks",
            toc.zones,
            block_count(h.record_count)
        )));
    }
    let shift = |r: Range<usize>| r.start + start..r.end + start;
    Ok(MetaLayout {
        adoptions: shift(tables.adoptions),
        orphans: shift(tables.orphans),
        zones: shift(tables.zones),
        run_ids: shift(tables.run_ids),
        runs: shift(tables.runs),
        id_filter: shift(tables.id_filter),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SpanId;
    use crate::tags::SpanExtras;
    use crate::writer::SpanFileWriter;
    use bytemuck::Zeroable;

    /// A file of spans of one run committed in `commits` commits of `n` each, as bytes.
    fn file_of(n: u64, commits: u64) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ferret");
        let mut w = SpanFileWriter::create(&path).unwrap();
        for i in 0..n * commits {
            let mut r = crate::SpanRecord::zeroed();
            r.span_id = SpanId::encode(&format!("{:032x}", i + 1)).0 .0;
            r.start_time = i as f64;
            r.name = w.intern_name("f");
            r.run = w.intern_string("run");
            r.parent_name = crate::NONE_NAME;
            r.root = i;
            r.set_parent(None);
            w.push(r, &SpanExtras::default()).unwrap();
            if (i + 1) % n == 0 {
                w.commit(true).unwrap();
            }
        }
        std::fs::read(&path).unwrap()
    }

    /// Segment `i` of the file `bytes`.
    fn segment(bytes: &[u8], i: usize) -> Segment {
        let f = SpanFile::from_bytes(AlignedBytes::copy_from(bytes)).unwrap();
        f.segments[i].clone()
    }

    #[test]
    fn a_name_held_twice_or_a_value_not_finite_is_refused() {
        use crate::segment::SegmentHeader;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ferret");
        let mut w = SpanFileWriter::create(&path).unwrap();
        for (i, name) in ["dup", "dvp"].into_iter().enumerate() {
            let mut r = crate::SpanRecord::zeroed();
            r.name = w.intern_name(name);
            r.run = w.intern_string("run");
            r.parent_name = crate::NONE_NAME;
            r.root = i as u64;
            r.set_parent(None);
            r.duration = if i == 1 { f64::NAN } else { 1.0 };
            w.push(r, &SpanExtras::default()).unwrap();
        }
        w.commit(true).unwrap();
        drop(w);
        let good = std::fs::read(&path).unwrap();
        // A duration that is not a number: verify names the record.
        let f = SpanFile::from_bytes(AlignedBytes::copy_from(&good)).unwrap();
        let e = f.verify().unwrap_err().to_string();
        assert!(e.contains("record 1") && e.contains("not a finite"), "{e}");
        // "dvp" made "dup", the names' checksum and the header resealed: a table that only
        // hand-made files hold, refused by verify and by a writer (which would give later
        // records the wrong name ids).
        let seg = segment(&good, 0);
        let mut bad = good.clone();
        let names = seg.layout.names as usize..seg.layout.strings as usize;
        let at = names.start
            + bad[names.clone()]
                .windows(3)
                .position(|w| w == b"dvp")
                .unwrap();
        bad[at + 1] = b'u';
        let offset = seg.offset as usize;
        let mut h: SegmentHeader = bytemuck::pod_read_unaligned(&bad[offset..offset + 128]);
        h.names_checksum = checksum(&bad[names]);
        bad[offset..offset + 128].copy_from_slice(bytemuck::bytes_of(&h.seal()));
        let f = SpanFile::from_bytes(AlignedBytes::copy_from(&bad)).unwrap();
        assert!(matches!(f.verify(), Err(FormatError::DuplicateStrings)));
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(
            SpanFileWriter::open_append(&path),
            Err(FormatError::DuplicateStrings)
        ));
    }

    #[test]
    fn sizes_that_overflow_give_no_layout() {
        use crate::segment::SegmentHeader;
        let mut h = SegmentHeader::zeroed();
        h.record_count = 10;
        assert!(h.layout(8192).is_some());
        for field in 0..4 {
            let mut big = h;
            match field {
                0 => big.names_len = u64::MAX - 100,
                1 => big.tags_len = u64::MAX - 7,
                2 => big.meta_len = u64::MAX - 64,
                _ => big.record_count = u64::MAX / 64,
            }
            assert!(big.layout(8192).is_none(), "field {field}");
        }
        assert!(h.layout(u64::MAX - 10).is_none());
    }

    #[test]
    fn a_damaged_id_filter_is_named_by_verify_and_never_says_not_here() {
        let good = file_of(3000, 2);
        let seg = segment(&good, 0);
        assert!(seg.meta.id_filter.len() >= 3000 * 2);
        let mut bad = good.clone();
        bad[seg.meta.id_filter.start + 5] ^= 0x10;
        // Opening and reading the records and their index never touch the filter.
        let f = SpanFile::from_bytes(AlignedBytes::copy_from(&bad)).unwrap();
        assert_eq!(f.runs(&f.segments()[0]).len(), 1);
        assert!(f.verify_blocks(&f.segments()[0], 0..3).is_ok());
        // Verify names the damaged filter.
        let msg = f.verify().unwrap_err().to_string();
        assert!(msg.contains("span-id filter of segment 0"), "{msg}");
        // A writer asking it is never told "not here" by it: checked at its first question, the
        // damaged filter says "may hold" for every id (its segment is read), the intact one of
        // segment 1 still answers.
        let absent = SpanId::encode(&format!("{:032x}", 99_999)).0;
        let present = SpanId::encode(&format!("{:032x}", 1)).0;
        let (seg0, seg1) = (&f.segments()[0], &f.segments()[1]);
        assert!(f.may_hold(seg0, &absent) && f.may_hold(seg0, &present));
        assert!(!f.may_hold(seg1, &absent));
        let intact = SpanFile::from_bytes(AlignedBytes::copy_from(&good)).unwrap();
        assert!(!intact.may_hold(&intact.segments()[0], &absent));
        assert!(intact.may_hold(&intact.segments()[0], &present));
    }

    #[test]
    fn verify_refuses_a_span_id_filter_without_an_id_of_its_segment() {
        use crate::segment::SegmentHeader;
        let good = file_of(3000, 1);
        let f = SpanFile::from_bytes(AlignedBytes::copy_from(&good)).unwrap();
        assert_eq!(f.verify().unwrap(), 3000);
        // The word holding record 1234's id cleared, the filter's checksum and the header
        // resealed: damage no checksum shows (a writer's mistake), which verify still finds.
        let seg = segment(&good, 0);
        let record = &f.records(&seg)[1234];
        let words = f.filter_words(&seg);
        let word = (0..words.len())
            .find(|&w| {
                let mut cleared = words.to_vec();
                cleared[w] = 0;
                !words_may_hold(&cleared, &SpanId(record.span_id))
            })
            .unwrap();
        let mut bad = good.clone();
        let at = seg.meta.id_filter.start + word * 8;
        bad[at..at + 8].fill(0);
        let offset = seg.offset as usize;
        let mut h: SegmentHeader = bytemuck::pod_read_unaligned(&bad[offset..offset + 128]);
        h.filter_checksum = table_checksum(&bad[seg.meta.id_filter.clone()]);
        bad[offset..offset + 128].copy_from_slice(bytemuck::bytes_of(&h.seal()));
        let f = SpanFile::from_bytes(AlignedBytes::copy_from(&bad)).unwrap();
        let msg = f.verify().unwrap_err().to_string();
        assert!(
            msg.contains("span-id filter do not match its records"),
            "{msg}"
        );
    }

    #[test]
    fn a_damaged_last_commit_is_set_aside_by_an_appending_writer() {
        let good = file_of(3000, 2);
        let last = segment(&good, 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ferret");
        // One flipped byte in the last commit's span-id filter, then in its records: neither is
        // checked on open, both before appending.
        let records = last.layout.records as usize;
        for at in [last.meta.id_filter.start + 9, records + 64 * 2500 + 8] {
            let mut bad = good.clone();
            bad[at] ^= 0x04;
            std::fs::write(&path, &bad).unwrap();
            assert!(SpanFile::open(&path).unwrap().fallback().is_none());
            let w = SpanFileWriter::open_append(&path).unwrap();
            let fallback = w.fallback().expect("the last commit is set aside");
            assert_eq!(fallback.lost_records, 3000);
            assert!(fallback.reason.contains("segment 1"), "{}", fallback.reason);
            assert_eq!(w.next_index(), 3000, "appends from the previous commit");
        }
    }
}
