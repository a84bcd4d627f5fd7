//! [`SpanFile`]: a read-only view of the committed prefix of a span record file, generic over
//! `AsRef<[u8]>` so a memory map and an in-memory buffer share one code path.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use crate::bloom::words_may_hold;
use crate::checksum::{checksum, table_checksum};
use crate::error::{FormatError, Region};
use crate::header::{read_header, Header, Watermark, DATA_START};
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
    layout: SegmentLayout,
    tags_len: u64,
    names_checksum: u64,
    strings_checksum: u64,
    tags_checksum: u64,
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
}

impl SpanFile<Mmap> {
    /// Opens and maps the committed prefix of the file at `path`, checking the header, every
    /// segment header and the string tables. Record and tag checksums are checked by
    /// [`SpanFile::verify`] and by scans as they read.
    pub fn open(path: &Path) -> Result<SpanFile<Mmap>, FormatError> {
        let io = |e| FormatError::io(path, e);
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut head = vec![0u8; len.min(DATA_START) as usize];
        file.read_exact_at(&mut head, 0).map_err(io)?;
        let header = read_header(&head, len)?;
        let committed = header.raw.committed_len as usize;
        // SAFETY: the map is read-only and covers only the committed prefix, which writers never
        // modify or truncate (they append past it and rewrite only the header slots, which we
        // have already copied and never read through the map). Another program truncating the
        // file would be outside the format's contract.
        let map = unsafe { MmapOptions::new().len(committed).map(&file) }.map_err(io)?;
        SpanFile::with_header(map, header)
    }

    /// Tells the kernel the records will be read sequentially (more read-ahead).
    pub fn advise_sequential(&self) {
        // Advice is a hint: failing to give it changes nothing but speed.
        let _ = self.data.advise(memmap2::Advice::Sequential);
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
        let header = read_header(head, bytes.len() as u64)?;
        SpanFile::with_header(data, header)
    }

    fn with_header(data: D, header: Header) -> Result<SpanFile<D>, FormatError> {
        if !(data.as_ref().as_ptr() as usize).is_multiple_of(8) {
            return Err(FormatError::Misaligned);
        }
        let mut file = SpanFile {
            data,
            committed: header.raw.committed_len as usize,
            header,
            segments: Vec::new(),
            names: StringTable::default(),
            strings: StringTable::default(),
            links: Links::default(),
        };
        file.load_segments()?;
        Ok(file)
    }

    fn load_segments(&mut self) -> Result<(), FormatError> {
        let bytes = &self.data.as_ref()[..self.committed];
        let mut offset = DATA_START;
        let mut records = 0u64;
        while offset < self.committed as u64 {
            let index = self.segments.len();
            let (h, layout) = read_segment_header(bytes, index, offset)?;
            let invalid = |what: String| FormatError::InvalidSegment {
                segment: index,
                offset,
                what,
            };
            if h.first_record != records
                || h.first_name as usize != self.names.len()
                || h.first_string as usize != self.strings.len()
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
            self.names
                .extend_from(bytes, names.start, names.len(), h.name_count, "name")
                .map_err(invalid)?;
            self.strings
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
            self.links.extend(adoptions);
            self.segments.push(Segment {
                index,
                offset,
                first_record: records,
                record_count: h.record_count,
                layout,
                tags_len: h.tags_len,
                names_checksum: h.names_checksum,
                strings_checksum: h.strings_checksum,
                tags_checksum: h.tags_checksum,
                meta,
            });
            records += h.record_count;
            offset = layout.end;
        }
        let raw = &self.header.raw;
        if offset != self.committed as u64
            || records != raw.record_count
            || self.segments.len() as u64 != raw.segment_count
            || self.names.len() as u64 != raw.name_count
            || self.strings.len() as u64 != raw.string_count
        {
            return Err(FormatError::InvalidHeader(
                "the header's counts do not match its segments".into(),
            ));
        }
        Ok(())
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
    /// version 1 segment has none, and may hold anything).
    pub fn may_hold(&self, segment: &Segment, id: &SpanId) -> bool {
        let words: &[u64] = bytemuck::cast_slice(&self.bytes()[segment.meta.id_filter.clone()]);
        words_may_hold(words, id)
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

    /// Checks the checksums of blocks `blocks` of `segment`.
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
        }
        Ok(())
    }

    /// Checks every checksum in the file and every record's references (names, strings, parent,
    /// root, extras). Returns the number of records checked.
    pub fn verify(&self) -> Result<u64, FormatError> {
        for seg in &self.segments {
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
            self.verify_blocks(seg, 0..seg.block_count())?;
            for (i, r) in self.records(seg).iter().enumerate() {
                self.check_record(seg, seg.first_record + i as u64, r)?;
            }
            for a in self.adoptions(seg) {
                self.check_adoption(a)?;
            }
            if self.has_index() {
                self.check_index(seg)?;
            }
            if !self.orphans(seg).is_sorted() {
                return Err(FormatError::InvalidSegment {
                    segment: seg.index,
                    offset: seg.offset,
                    what: "orphan table is not sorted by parent id".into(),
                });
            }
        }
        Ok(self.record_count())
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

    /// Checks that the block zones and run directory of `seg` are exactly those of its records.
    fn check_index(&self, seg: &Segment) -> Result<(), FormatError> {
        let (zones, run_ids, runs) = index_records(self.records(seg), seg.first_record);
        let stored = self.zones(seg);
        // A stored list out of range reads as empty, which a rebuilt zone never is.
        let zones_agree = stored.len() == zones.len()
            && stored.iter().zip(&zones).all(|(a, b)| {
                let rebuilt = &run_ids[b.runs_at as usize..(b.runs_at + b.runs_len) as usize];
                a.min_start.to_bits() == b.min_start.to_bits()
                    && a.max_start.to_bits() == b.max_start.to_bits()
                    && self.zone_runs(seg, a) == rebuilt
            });
        let runs_agree = bytemuck::cast_slice::<RunEntry, u8>(self.runs(seg))
            == bytemuck::cast_slice::<RunEntry, u8>(&runs);
        let filtered = self
            .records(seg)
            .iter()
            .all(|r| self.may_hold(seg, &SpanId(r.span_id)));
        if zones_agree && runs_agree && filtered {
            return Ok(());
        }
        Err(FormatError::InvalidSegment {
            segment: seg.index,
            offset: seg.offset,
            what: "its block zones, run directory or span-id filter do not match its records"
                .into(),
        })
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
        if std::str::from_utf8(extras.tags).is_err() {
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

/// Checks the metadata region of the segment with header `h` (its checksum, that its tables
/// fill it, a zone per block) and returns where its tables lie in the file.
fn read_meta(
    bytes: &[u8],
    h: &crate::segment::SegmentHeader,
    layout: &SegmentLayout,
) -> Result<MetaLayout, MetaError> {
    let start = layout.meta as usize;
    let region = &bytes[start..start + h.meta_len as usize];
    if table_checksum(region) != h.meta_checksum {
        return Err(MetaError::Checksum);
    }
    let toc: MetaToc = match region.get(..std::mem::size_of::<MetaToc>()) {
        Some(b) => bytemuck::pod_read_unaligned(b),
        None if region.is_empty() => MetaToc::default(),
        None => {
            return Err(MetaError::Invalid(
                "metadata shorter than its table of contents".into(),
            ))
        }
    };
    let tables = toc
        .layout(region.len())
        .ok_or_else(|| MetaError::Invalid("metadata tables do not fill its region".into()))?;
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
