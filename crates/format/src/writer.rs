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
//! A commit that would change nothing (no record, string or link, the same watermark) is not
//! made, and one that only moves the watermark or the completion flag rewrites the newest slot
//! in place: the other slot keeps the previous commit, the one a reader falls back to.
//!
//! A writer never truncates or rewrites committed bytes (`lock.rs`): a new file
//! ([`SpanFileWriter::replace`]), setting aside a damaged newest commit, and undoing a `--strict`
//! append ([`SpanFileWriter::abandon`]) write a new file that is renamed over the old one.

use std::fs::File;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use bytemuck::Zeroable;
use memmap2::Mmap;

use crate::bloom::IdBloom;
use crate::checksum::{checksum, table_checksum};
use crate::error::FormatError;
use crate::header::{Header, Watermark, DATA_START, FORMAT_VERSION, HEADER_FLAG_COMPLETE};
use crate::links::{Adoption, Orphan};
use crate::lock::{OutputFile, Replacement, WhenLocked};
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
    /// The locked handle written to: the record file's, or its replacement's.
    file: File,
    /// The new file being written, until [`SpanFileWriter::finish`] installs it.
    replacement: Option<Replacement>,
    /// True when this writer created the file (in place: it did not exist, or was empty).
    created: bool,
    header: Header,
    /// The state the writer opened: what [`SpanFileWriter::abandon`] brings the file back to.
    initial: Header,
    /// The last commit's header (the opening state before any).
    last_commit: Header,
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
    /// Creates `path` as an empty record file, holding its writer's lock; another writer makes
    /// it fail. An existing file is replaced as [`SpanFileWriter::replace`] does, once
    /// [`SpanFileWriter::finish`] installs the new one.
    pub fn create(path: &Path) -> Result<SpanFileWriter, FormatError> {
        let out = OutputFile::lock(path, WhenLocked::Fail)?;
        if out.metadata()?.len() == 0 {
            SpanFileWriter::create_in(&out)
        } else {
            SpanFileWriter::replace(&out, out.metadata()?.permissions().mode())
        }
    }

    /// Makes the locked, empty `out` (a file just created, which no reader can have mapped
    /// whole) an empty record file, durably: its first bytes, the two header slots, in one
    /// write, so that no kill leaves a file that is neither empty nor a record file.
    pub fn create_in(out: &OutputFile) -> Result<SpanFileWriter, FormatError> {
        let file = out.handle()?;
        let path = out.path().to_path_buf();
        start_file(&file, &path)?;
        sync_parent_dir(&path);
        let mut writer = SpanFileWriter::over(path, file, Header::new(), None)?;
        writer.created = true;
        Ok(writer)
    }

    /// A writer of a new, empty record file that will replace the locked `out` (with permission
    /// bits `mode`): it is written beside it and renamed over it by
    /// [`SpanFileWriter::finish`]. Until then readers, and the file, are untouched; a writer
    /// dropped before that (a failed conversion) removes the new file.
    pub fn replace(out: &OutputFile, mode: u32) -> Result<SpanFileWriter, FormatError> {
        let replacement = Replacement::beside(out.path(), mode)?;
        let file = replacement.handle()?;
        start_file(&file, replacement.temp_path())?;
        let mut writer = SpanFileWriter::over(out.path().to_path_buf(), file, Header::new(), None)?;
        writer.replacement = Some(replacement);
        Ok(writer)
    }

    /// Opens an existing record file to append to it, holding its writer's lock (see
    /// [`SpanFileWriter::append_to`]); another writer makes it fail.
    pub fn open_append(path: &Path) -> Result<SpanFileWriter, FormatError> {
        SpanFileWriter::append_to(&OutputFile::lock(path, WhenLocked::Fail)?)
    }

    /// Opens the locked record file `out` to append to it. Bytes past the committed length (left
    /// by an interrupted writer, and never committed, so mapped by no reader) are discarded.
    /// When the newest commit fails its checks (all of them: its record blocks, tags and
    /// span-id filters too) and the previous commit is intact, the writer resumes from the
    /// previous one, whose watermark makes the conversion redo what was lost;
    /// [`SpanFileWriter::fallback`] says so. The previous commit's bytes are then copied into a
    /// new file renamed over the old one, so that no reader mapping the newest commit loses its
    /// bytes. Files of an older format version are refused.
    pub fn append_to(out: &OutputFile) -> Result<SpanFileWriter, FormatError> {
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
        let file = match fallback {
            // The newest commit's bytes stay in the old file, for its readers.
            Some(_) => {
                let new = copy_prefix(out.file(), &path, view.header())?;
                view = SpanFile::map(&new, &path, Commit::Newest)?;
                new
            }
            None => {
                let file = out.handle()?;
                file.set_len(view.header().raw.committed_len).map_err(io)?;
                file
            }
        };
        // The new file's header, after a set-aside: its sequence numbers are past both slots'.
        let header = *view.header();
        let mut writer = SpanFileWriter::over(path, file, header, Some(view))?;
        writer.fallback = fallback;
        Ok(writer)
    }

    /// The sequence number of the last commit (0: the file was never committed to).
    pub fn committed_sequence(&self) -> u64 {
        self.last_commit.raw.sequence
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
            replacement: None,
            created: false,
            header,
            initial: header,
            last_commit: header,
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
        next.raw.flags = if complete { HEADER_FLAG_COMPLETE } else { 0 };
        if !has_data && next.same_state(&self.last_commit) {
            return Ok(()); // nothing to say: the previous commit's slot stays the fallback
        }
        if has_data {
            let len = self.write_segment()?;
            next.raw.committed_len += len;
            next.raw.segment_count += 1;
            next.raw.record_count += self.pending.len() as u64;
            next.raw.name_count = self.names.len() as u64;
            next.raw.string_count = self.strings.len() as u64;
        }
        // A commit of new bytes takes the other slot, keeping the newest as the fallback. One
        // that only moves the watermark or marks the conversion complete rewrites the newest
        // slot in place under its own sequence number: the other slot keeps the commit before,
        // which a damaged newest segment falls back to. Torn, it shows that previous commit, as
        // a crash before this commit would have.
        if has_data {
            next.raw.sequence += 1;
        }
        let file = self.file.try_clone().map_err(io)?;
        let (header, slot) = (next.encode(), Header::slot_offset(next.raw.sequence));
        let done = std::thread::spawn(move || {
            if has_data {
                fault_point("segment-written");
                file.sync_data()?;
            }
            fault_point("before-header");
            file.write_all_at(&header, slot)?;
            fault_point("header-written");
            file.sync_data()
        });
        self.in_flight = Some(InFlight { done, has_data });
        self.header = next;
        self.last_commit = next;
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
            // Through the writer's own handle: the path may name another file by now (or, for
            // a replacement, not yet this one).
            self.committed = Some(SpanFile::map(&self.file, &self.path, Commit::Newest)?);
        }
        Ok(())
    }

    /// Ends the writing: waits for the commit in flight, and a replacement is renamed over the
    /// file it replaces. The lock is released when the writer is dropped.
    pub fn finish(mut self) -> Result<(), FormatError> {
        self.wait_for_commit()?;
        if let Some(replacement) = self.replacement.take() {
            replacement.install()?;
        }
        Ok(())
    }

    /// Undoes what this writer did. A replacement is removed (the old file was never touched);
    /// commits appended to an existing file are undone by a new file holding the state the
    /// writer opened, renamed over it, so that the bytes readers mapped stay theirs. A file the
    /// writer created is the caller's to remove (under the lock, see `OutputFile::remove`).
    pub fn abandon(mut self) -> Result<(), FormatError> {
        let waited = self.wait_for_commit();
        if let Some(replacement) = self.replacement.take() {
            replacement.discard();
            return Ok(());
        }
        waited?;
        if !self.created && self.last_commit.raw.sequence != self.initial.raw.sequence {
            copy_prefix(&self.file, &self.path, &self.initial)?;
        }
        Ok(())
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

impl Drop for SpanFileWriter {
    /// A replacement never installed (a conversion that failed) is removed.
    fn drop(&mut self) {
        if let Some(replacement) = self.replacement.take() {
            replacement.discard();
        }
    }
}

/// Writes the first bytes of a new record file, the two header slots of an empty file, in one
/// write, and makes them durable.
fn start_file(file: &File, path: &Path) -> Result<(), FormatError> {
    let io = |e| FormatError::io(path, e);
    let mut head = vec![0u8; DATA_START as usize];
    head[..256].copy_from_slice(&Header::new().encode());
    file.write_all_at(&head, 0).map_err(io)?;
    file.sync_all().map_err(io)
}

/// A new file holding the committed bytes `state` describes of the locked file `old`, both
/// header slots set to `state` (with the next sequence numbers), renamed over it: what
/// setting aside a damaged newest commit and undoing commits write instead of truncating.
/// Returns the new file's locked handle.
fn copy_prefix(old: &File, path: &Path, state: &Header) -> Result<File, FormatError> {
    let mode = old
        .metadata()
        .map_err(|e| FormatError::io(path, e))?
        .permissions()
        .mode();
    let replacement = Replacement::beside(path, mode)?;
    let file = replacement.handle()?;
    let io = |e| FormatError::io(replacement.temp_path(), e);
    let source = old.try_clone().map_err(io)?;
    let mut src = std::io::Read::take(&source, state.raw.committed_len);
    let mut dst = file.try_clone().map_err(io)?;
    std::io::copy(&mut src, &mut dst).map_err(io)?;
    for step in 1..=2 {
        let mut slot = *state;
        slot.raw.sequence = state.raw.sequence + step;
        file.write_all_at(&slot.encode(), Header::slot_offset(slot.raw.sequence))
            .map_err(io)?;
    }
    replacement.install()?;
    Ok(file)
}

/// Test builds only (the `fault-injection` feature): `FERRET_FAULT=STEP` kills the process with
/// SIGKILL at its first pass by the named step, `FERRET_FAULT=STEP:N` at its Nth;
/// `FERRET_PAUSE=STEP:FILE` creates FILE there and waits until it is removed. The steps:
/// `segment-written`, `before-header`, `header-written` (a commit), `before-rename` (a
/// replacement, a set-aside, an undo). Tests drive kills and races with these, never with a
/// wall-clock gap.
#[cfg(feature = "fault-injection")]
pub(crate) fn fault_point(step: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PASSES: AtomicU64 = AtomicU64::new(0);
    if let Ok(fault) = std::env::var("FERRET_FAULT") {
        let (name, nth) = fault.split_once(':').unwrap_or((&fault, "1"));
        if name == step && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == nth.parse().unwrap_or(1) {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
    }
    if let Some((name, marker)) = std::env::var("FERRET_PAUSE").ok().and_then(|p| {
        p.split_once(':')
            .map(|(a, b)| (a.to_string(), b.to_string()))
    }) {
        if name == step {
            let _ = std::fs::write(&marker, b"paused");
            while std::path::Path::new(&marker).exists() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

/// Without the `fault-injection` feature, nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn fault_point(_step: &str) {}

/// Makes a newly created file's directory entry durable; best effort (not every filesystem
/// allows opening a directory).
pub(crate) fn sync_parent_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
