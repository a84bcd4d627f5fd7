//! [`SpanFileWriter`]: appends records, strings and tags, and commits them crash-safely.
//!
//! The commit protocol: (1) write the new segment past the committed length, (2) `fsync`,
//! (3) write the header with the next sequence number into the slot the previous commit did not
//! use, (4) `fsync`. Until (3) lands, readers and a crashed writer's successor see the previous
//! commit; a torn (3) fails its checksum and the other slot, still the previous commit, wins.
//!
//! [`SpanFileWriter::commit_in_background`] does (1) and leaves (2) to (4) to a thread of their
//! own, so that the caller goes on with the next segment while the disk works: the `fsync`s were
//! a sixth of a conversion's time. Commits still land in order, as each waits for the one before.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use bytemuck::Zeroable;
use memmap2::Mmap;

use crate::bloom::IdBloom;
use crate::checksum::{checksum, table_checksum};
use crate::error::FormatError;
use crate::header::{Header, Watermark, DATA_START, FORMAT_VERSION, HEADER_FLAG_COMPLETE};
use crate::links::{Adoption, Orphan};
use crate::lock::{OutputFile, WhenLocked};
use crate::meta::MetaTables;
use crate::reader::{Commit, Fallback, SpanFile};
use crate::record::{SpanId, SpanRecord, NO_EXTRAS};
use crate::segment::{pad64, SegmentHeader, BLOCK_RECORDS, SEGMENT_HEADER_SIZE, SEGMENT_MAGIC};
use crate::strings::Interner;
use crate::tags::SpanExtras;
use crate::zones::index_records;

/// Bits of a segment's span-id filter per record (rounded up to a power of two): 2 bytes a span,
/// 1/32 of the records, for under 1% of false positives, each of which costs a read of one
/// segment in a later `--append`.
const ID_FILTER_BITS_PER_SPAN: usize = 16;

/// Appends spans to a record file. Nothing is visible to readers until [`commit`](Self::commit).
pub struct SpanFileWriter {
    path: PathBuf,
    file: File,
    header: Header,
    initial: Header,
    names: Interner,
    strings: Interner,
    committed_names: usize,
    committed_strings: usize,
    pending: Vec<SpanRecord>,
    tag_heap: Vec<u8>,
    /// Committed roots adopted since the last commit.
    adoptions: Vec<Adoption>,
    /// Uncommitted roots still waiting for their parent id, for the next segment's orphan table.
    orphans: Vec<Orphan>,
    committed: Option<SpanFile<Mmap>>,
    /// A commit whose `fsync`s and header are being written by another thread.
    in_flight: Option<InFlight>,
    /// Set when appending resumed from the previous commit.
    fallback: Option<Fallback>,
}

/// What a link fix-up before a commit works on: the uncommitted records, the global index of
/// the first, and a view of the committed ones.
pub type FixUpView<'a> = (&'a mut [SpanRecord], u64, Option<&'a SpanFile<Mmap>>);

/// The rest of a commit, running on its own thread: `done` yields its I/O result.
struct InFlight {
    done: JoinHandle<std::io::Result<()>>,
    has_data: bool,
}

impl SpanFileWriter {
    /// Creates (or truncates) `path` as an empty record file, holding its writer's lock (see
    /// [`SpanFileWriter::create_in`]); another writer makes it fail.
    pub fn create(path: &Path) -> Result<SpanFileWriter, FormatError> {
        SpanFileWriter::create_in(OutputFile::lock(path, WhenLocked::Fail)?)
    }

    /// Makes the locked `out` an empty record file, whatever it held, and makes that durable.
    /// The lock is held until the writer is dropped.
    pub fn create_in(out: OutputFile) -> Result<SpanFileWriter, FormatError> {
        let path = out.path().to_path_buf();
        let io = |e| FormatError::io(&path, e);
        let file = out.into_file();
        file.set_len(0).map_err(io)?;
        let header = Header::new();
        file.write_all_at(&vec![0u8; DATA_START as usize], 0)
            .map_err(io)?;
        file.write_all_at(&header.encode(), 0).map_err(io)?;
        file.sync_all().map_err(io)?;
        sync_parent_dir(&path);
        SpanFileWriter::over(path, file, header, None)
    }

    /// Opens an existing record file to append to it, holding its writer's lock (see
    /// [`SpanFileWriter::append_to`]); another writer makes it fail.
    pub fn open_append(path: &Path) -> Result<SpanFileWriter, FormatError> {
        SpanFileWriter::append_to(OutputFile::lock(path, WhenLocked::Fail)?)
    }

    /// Opens the locked record file `out` to append to it. Bytes past the committed length (left
    /// by an interrupted writer) are discarded. When the newest commit fails its checks (all of
    /// them: its record blocks, tags and span-id filters too) and the previous commit is intact,
    /// the writer resumes from the previous one, whose watermark makes the conversion redo what
    /// was lost; [`SpanFileWriter::fallback`] says so. Files of an older format version are
    /// refused.
    pub fn append_to(out: OutputFile) -> Result<SpanFileWriter, FormatError> {
        let path = out.path().to_path_buf();
        let io = |e| FormatError::io(&path, e);
        let mut view = SpanFile::map(out.file(), &path, Commit::Newest)?;
        if view.version() < FORMAT_VERSION {
            return Err(FormatError::AppendToOlder {
                found: view.version(),
            });
        }
        let mut fallback = view.fallback().cloned();
        // Opening checked the structure; a torn or damaged record block, tag heap or filter of
        // the newest commit shows only in its checksums, checked here (the newest commit is one
        // segment of at most a commit's records, not the file).
        if let (None, Err(e)) = (&fallback, view.verify_last_commit()) {
            let Ok(previous) = SpanFile::map(out.file(), &path, Commit::Previous) else {
                return Err(e);
            };
            fallback = Some(Fallback {
                reason: e.brief(),
                lost_records: view.record_count().saturating_sub(previous.record_count()),
            });
            view = previous;
        }
        // The linker trusts the span-id filters' "not here" to skip segments: checked first,
        // those the newest commit's check above did not cover (all, after a fallback).
        let unchecked = match fallback {
            None => view.last_commit_start(),
            Some(_) => view.segments().len(),
        };
        for seg in &view.segments()[..unchecked] {
            view.verify_id_filter(seg)?;
        }
        let header = *view.header();
        let file = out.into_file();
        file.set_len(header.raw.committed_len).map_err(io)?;
        let mut writer = SpanFileWriter::over(path, file, header, Some(view))?;
        writer.fallback = fallback;
        Ok(writer)
    }

    /// Set when the newest commit of the file appended to failed its checks and this writer
    /// resumed from the previous commit.
    pub fn fallback(&self) -> Option<&Fallback> {
        self.fallback.as_ref()
    }

    /// A writer over `file` (locked) whose committed state is `header`, viewed as `view`. The
    /// view's names and strings are interned again, so each must be there once: a table holding
    /// one twice (never written by ferret-convert) would give later records the wrong ids.
    fn over(
        path: PathBuf,
        file: File,
        header: Header,
        view: Option<SpanFile<Mmap>>,
    ) -> Result<SpanFileWriter, FormatError> {
        let mut names = Interner::default();
        let mut strings = Interner::default();
        if let Some(view) = &view {
            for id in 0..view.name_count() as u32 {
                names.intern(view.name(id).unwrap_or_default());
            }
            for id in 0..view.string_count() as u32 {
                strings.intern(view.string(id).unwrap_or_default());
            }
            if names.len() != view.name_count() || strings.len() != view.string_count() {
                return Err(FormatError::DuplicateStrings);
            }
        }
        Ok(SpanFileWriter {
            path,
            file,
            header,
            initial: header,
            committed_names: names.len(),
            committed_strings: strings.len(),
            names,
            strings,
            pending: Vec::new(),
            tag_heap: Vec::new(),
            adoptions: Vec::new(),
            orphans: Vec::new(),
            committed: view.filter(|v| v.record_count() > 0),
            in_flight: None,
            fallback: None,
        })
    }

    /// The path written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Interns a function name.
    pub fn intern_name(&mut self, name: &str) -> u32 {
        self.names.intern(name)
    }

    /// Interns a run id, status or other string.
    pub fn intern_string(&mut self, s: &str) -> u32 {
        self.strings.intern(s)
    }

    /// Number of distinct names so far.
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// Number of distinct strings so far.
    pub fn string_count(&self) -> usize {
        self.strings.len()
    }

    /// Queues a record (its `extras` field is set here) and returns its global index.
    pub fn push(
        &mut self,
        mut record: SpanRecord,
        extras: &SpanExtras,
    ) -> Result<u64, FormatError> {
        record.extras = NO_EXTRAS;
        if !extras.is_empty() {
            let at = self.tag_heap.len();
            if at >= NO_EXTRAS as usize {
                return Err(FormatError::Limit(
                    "a segment's tag heap reached 4 GiB; commit more often".into(),
                ));
            }
            record.extras = at as u32;
            extras.encode(&mut self.tag_heap);
        }
        let index = self.next_index();
        // ferret's last span is the latest start; of equal starts, the last to arrive.
        let raw = &mut self.header.raw;
        if raw.latest_record == 0 || record.start_time >= raw.latest_start {
            raw.latest_start = record.start_time;
            raw.latest_record = index + 1;
        }
        self.pending.push(record);
        Ok(index)
    }

    /// Global index the next pushed record will get.
    pub fn next_index(&self) -> u64 {
        self.header.raw.record_count + self.pending.len() as u64
    }

    /// Global index of the first uncommitted record.
    pub fn first_pending(&self) -> u64 {
        self.header.raw.record_count
    }

    /// The records pushed since the last commit, for link fix-ups before they are committed.
    pub fn pending_mut(&mut self) -> &mut [SpanRecord] {
        &mut self.pending
    }

    /// The uncommitted records with the index of the first, beside a view of the committed ones:
    /// what a link fix-up before a commit reads and patches. Waits for a commit in flight.
    pub fn pending_with_committed(&mut self) -> Result<FixUpView<'_>, FormatError> {
        self.wait_for_commit()?;
        let first = self.header.raw.record_count;
        Ok((&mut self.pending, first, self.committed.as_ref()))
    }

    /// Records that committed root `adoption.child` now has a parent; written with the next
    /// commit. The caller checks that the child is a committed root of the parent's run.
    pub fn push_adoption(&mut self, adoption: Adoption) {
        self.adoptions.push(adoption);
    }

    /// The adoptions pushed since the last commit.
    pub fn pending_adoptions(&self) -> &[Adoption] {
        &self.adoptions
    }

    /// Sets the uncommitted roots that wait for a parent id (the next segment's orphan table).
    pub fn set_orphans(&mut self, mut orphans: Vec<Orphan>) {
        orphans.sort_unstable();
        self.orphans = orphans;
    }

    /// The uncommitted records with the index of the first, beside the committed ones as far as
    /// they are mapped: a commit in flight is not waited for (its segment is not in the view).
    pub fn pending_with_mapped(&mut self) -> FixUpView<'_> {
        let first = self.header.raw.record_count;
        (&mut self.pending, first, self.committed.as_ref())
    }

    /// Number of records pushed since the last commit.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of tags pushed since the last commit.
    pub fn pending_tag_bytes(&self) -> usize {
        self.tag_heap.len()
    }

    /// A read-only view of everything committed so far (`None` before the first record commit),
    /// as of the last commit that finished.
    pub fn committed(&self) -> Option<&SpanFile<Mmap>> {
        self.committed.as_ref()
    }

    /// The watermark recorded by the last commit.
    pub fn watermark(&self) -> Option<Watermark> {
        self.committed.as_ref().and_then(|f| f.watermark())
    }

    /// Sets the watermark the next commit records.
    pub fn set_watermark(&mut self, wm: &Watermark) -> Result<(), FormatError> {
        self.header.raw.wm_source = self.strings.intern(&wm.source);
        self.header.raw.wm_namespace = self.strings.intern(&wm.namespace);
        self.header.set_rowids(wm.rowids);
        self.header.set_last(&wm.last)
    }

    /// Makes everything pushed so far durable and visible. `complete` marks the conversion as
    /// finished (an interrupted one leaves the flag clear, so readers can warn).
    pub fn commit(&mut self, complete: bool) -> Result<(), FormatError> {
        self.commit_in_background(complete)?;
        self.wait_for_commit()
    }

    /// Writes everything pushed so far and returns: another thread makes it durable, then
    /// visible (the protocol's steps 2 to 4). The next commit, [`pending_with_committed`],
    /// [`wait_for_commit`] and [`abandon`] wait for it and report its error.
    ///
    /// [`pending_with_committed`]: Self::pending_with_committed
    /// [`wait_for_commit`]: Self::wait_for_commit
    /// [`abandon`]: Self::abandon
    pub fn commit_in_background(&mut self, complete: bool) -> Result<(), FormatError> {
        // Headers land in sequence order: the previous commit's first.
        self.wait_for_commit()?;
        let io = |e| FormatError::io(&self.path, e);
        let has_data = !self.pending.is_empty()
            || !self.adoptions.is_empty()
            || !self.orphans.is_empty()
            || self.names.len() > self.committed_names
            || self.strings.len() > self.committed_strings;
        let mut next = self.header;
        if has_data {
            let len = self.write_segment()?;
            next.raw.committed_len += len;
            next.raw.segment_count += 1;
            next.raw.record_count += self.pending.len() as u64;
            next.raw.name_count = self.names.len() as u64;
            next.raw.string_count = self.strings.len() as u64;
        }
        next.raw.sequence += 1;
        next.raw.flags = if complete { HEADER_FLAG_COMPLETE } else { 0 };
        let file = self.file.try_clone().map_err(io)?;
        let (header, slot) = (next.encode(), Header::slot_offset(next.raw.sequence));
        let done = std::thread::spawn(move || {
            if has_data {
                file.sync_data()?;
            }
            file.write_all_at(&header, slot)?;
            file.sync_data()
        });
        self.in_flight = Some(InFlight { done, has_data });
        self.header = next;
        self.pending.clear();
        self.tag_heap.clear();
        self.adoptions.clear();
        self.orphans.clear();
        self.committed_names = self.names.len();
        self.committed_strings = self.strings.len();
        Ok(())
    }

    /// Waits for the commit in flight, if any, and maps what it committed.
    pub fn wait_for_commit(&mut self) -> Result<(), FormatError> {
        let Some(InFlight { done, has_data }) = self.in_flight.take() else {
            return Ok(());
        };
        let io = |e| FormatError::io(&self.path, e);
        match done.join() {
            Ok(result) => result.map_err(io)?,
            Err(_) => return Err(io(std::io::Error::other("the commit thread panicked"))),
        }
        if has_data {
            self.committed = Some(SpanFile::open(&self.path)?);
        }
        Ok(())
    }

    /// Undoes every commit made since this writer was opened, as a commit of its own: the
    /// header of the opening state is written with the next sequence number, then the file is
    /// cut back to that state's length.
    pub fn abandon(mut self) -> Result<(), FormatError> {
        self.wait_for_commit()?;
        let io = |e| FormatError::io(&self.path, e);
        let mut back = self.initial;
        back.raw.sequence = self.header.raw.sequence + 1;
        self.file
            .write_all_at(&back.encode(), Header::slot_offset(back.raw.sequence))
            .map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.header = back;
        self.file.set_len(back.raw.committed_len).map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    /// Writes the pending segment past the committed length; returns its padded length.
    fn write_segment(&self) -> Result<u64, FormatError> {
        let io = |e| FormatError::io(&self.path, e);
        let mut names = Vec::new();
        self.names.encode_from(self.committed_names, &mut names);
        let mut strings = Vec::new();
        self.strings
            .encode_from(self.committed_strings, &mut strings);
        let mut sums = Vec::with_capacity(self.pending.len() / BLOCK_RECORDS * 8 + 64);
        for block in self.pending.chunks(BLOCK_RECORDS) {
            sums.extend_from_slice(&checksum(bytemuck::cast_slice(block)).to_le_bytes());
        }
        sums.resize(pad64(sums.len() as u64) as usize, 0);
        let mut h = SegmentHeader::zeroed();
        h.magic = SEGMENT_MAGIC;
        h.first_record = self.header.raw.record_count;
        h.record_count = self.pending.len() as u64;
        h.first_name = self.committed_names as u32;
        h.name_count = (self.names.len() - self.committed_names) as u32;
        h.first_string = self.committed_strings as u32;
        h.string_count = (self.strings.len() - self.committed_strings) as u32;
        h.names_len = names.len() as u64;
        h.strings_len = strings.len() as u64;
        h.tags_len = self.tag_heap.len() as u64;
        h.names_checksum = checksum(&names);
        h.strings_checksum = checksum(&strings);
        h.tags_checksum = checksum(&self.tag_heap);
        let (zones, run_ids, runs) = index_records(&self.pending, h.first_record);
        let mut ids = IdBloom::with_bits(self.pending.len() * ID_FILTER_BITS_PER_SPAN);
        ids.insert_all(self.pending.iter().map(|r| SpanId(r.span_id)));
        let meta = MetaTables {
            adoptions: &self.adoptions,
            orphans: &self.orphans,
            zones: &zones,
            run_ids: &run_ids,
            runs: &runs,
            id_filter: ids.words(),
        }
        .encode();
        // The filter is the region's last table: the rest is checked on every open, the filter
        // only by a converter appending (see `SegmentHeader::filter_checksum`).
        let (tables, filter) = meta.split_at(meta.len() - std::mem::size_of_val(ids.words()));
        h.meta_len = meta.len() as u64;
        h.meta_checksum = table_checksum(tables);
        h.filter_checksum = table_checksum(filter);
        let h = h.seal();
        let start = self.header.raw.committed_len;
        let layout = h
            .layout(start)
            .ok_or_else(|| FormatError::Limit("segment too large".into()))?;
        let tags_end = layout.tags + self.tag_heap.len() as u64;
        let gap = vec![0u8; (layout.meta - tags_end) as usize];
        let parts: [(u64, &[u8]); 8] = [
            (start, bytemuck::bytes_of(&h)),
            (
                start + SEGMENT_HEADER_SIZE,
                bytemuck::cast_slice(&self.pending),
            ),
            (layout.checksums, &sums),
            (layout.names, &names),
            (layout.strings, &strings),
            (layout.tags, &self.tag_heap),
            (tags_end, &gap),
            (layout.meta, &meta),
        ];
        for (offset, bytes) in parts {
            self.file.write_all_at(bytes, offset).map_err(io)?;
        }
        let tail = layout.meta + meta.len() as u64;
        if layout.end > tail {
            let pad = vec![0u8; (layout.end - tail) as usize];
            self.file.write_all_at(&pad, tail).map_err(io)?;
        }
        Ok(layout.end - start)
    }
}

/// Makes a newly created file's directory entry durable; best effort (not every filesystem
/// allows opening a directory).
fn sync_parent_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
