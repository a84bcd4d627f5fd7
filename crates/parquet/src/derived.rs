//! What a span's row needs from the rest of its tree: the summed durations of its children (for
//! self time) and its depth. Both are per span, so for a multi-GB trace they live in an unlinked
//! temporary file mapped into memory, 16 bytes per record: the page cache holds them, and pages
//! behind the pass are released from our resident set as it moves on.

use std::fs::File;
use std::ops::Range;
use std::path::Path;

use bytemuck::{Pod, Zeroable};
use ferret_format::{FormatError, SpanFile, SpanRecord, BLOCK_RECORDS};
use ferret_scan::chunk::BlockSelect;
use memmap2::MmapMut;

use crate::release::Behind;
use crate::{for_each_record, ExportError};

/// Records between two releases of the pages behind the pass.
const RELEASE_EVERY: u64 = 1 << 16;
/// Records kept resident behind the pass: parents are nearly always this close to a child.
const RESIDENT_WINDOW: u64 = 1 << 20;

/// Derived values of one record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Derived {
    /// Sum of the children's durations (null counts as zero, as ferret's `self_time`).
    pub child_time: f64,
    /// Distance from the root: 0 for a root.
    pub depth: u32,
    /// 1 once `depth` is set.
    known: u32,
}

impl Derived {
    /// Duration minus the children's, floored at zero: ferret's `TraceNode.self_time`.
    pub fn self_time(&self, record: &SpanRecord) -> f64 {
        (record.duration().unwrap_or(0.0) - self.child_time).max(0.0)
    }
}

/// [`Derived`] values indexed by global record index, in a mapped temporary file.
pub struct DerivedTable {
    map: MmapMut,
    /// Keeps the (already unlinked) file open for the map's lifetime.
    _file: File,
}

impl DerivedTable {
    /// Computes the values for the records in `range` whose run `wanted` accepts, in one pass.
    /// The temporary file is made in `dir` (the output's folder, where there is room).
    pub fn build<D: AsRef<[u8]>>(
        file: &SpanFile<D>,
        range: Range<u64>,
        select: &BlockSelect,
        wanted: impl Fn(u32) -> bool,
        dir: &Path,
        behind: &mut Behind<D>,
    ) -> Result<DerivedTable, ExportError> {
        let io = |source| ExportError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let scratch = tempfile::tempfile_in(dir).map_err(io)?;
        let len = file.record_count().max(1) * std::mem::size_of::<Derived>() as u64;
        scratch.set_len(len).map_err(io)?;
        // SAFETY: the file is our own unlinked temporary file, so no other process can map,
        // write or truncate it; it was just sized to hold one `Derived` per record.
        let map = unsafe { MmapMut::map_mut(&scratch) }.map_err(io)?;
        let mut table = DerivedTable {
            map,
            _file: scratch,
        };
        table.fill(file, range, select, wanted, behind)?;
        Ok(table)
    }

    fn fill<D: AsRef<[u8]>>(
        &mut self,
        file: &SpanFile<D>,
        range: Range<u64>,
        select: &BlockSelect,
        wanted: impl Fn(u32) -> bool,
        behind: &mut Behind<D>,
    ) -> Result<(), ExportError> {
        let count = file.record_count();
        let mut next_release = range.start;
        // Each checksum block is checked as the pass enters it: checking whole segments up
        // front would map them all at once.
        let mut checked: Option<(usize, usize)> = None;
        for_each_record(
            file,
            range,
            select,
            |seg, index, r| -> Result<(), ExportError> {
                let block = ((index - seg.first_record) as usize) / BLOCK_RECORDS;
                if checked != Some((seg.index, block)) {
                    file.verify_blocks(seg, block..block + 1)?;
                    checked = Some((seg.index, block));
                }
                // Every record read moves the release point, whichever run it belongs to (skipped
                // blocks may jump past a multiple of RELEASE_EVERY).
                if index >= next_release {
                    self.release_before(index.saturating_sub(RESIDENT_WINDOW));
                    behind.advance(index);
                    next_release = (index / RELEASE_EVERY + 1) * RELEASE_EVERY;
                }
                if !wanted(r.run) {
                    return Ok(());
                }
                let parent = file.parent_of(index, r);
                if parent.is_some_and(|p| p >= count) {
                    return Err(FormatError::BadRecord {
                        index,
                        what: "parent index past the last record".into(),
                    }
                    .into());
                }
                self.settle_depth(file, index)?;
                if let Some(p) = parent {
                    self.slots_mut()[p as usize].child_time += r.duration().unwrap_or(0.0);
                }
                Ok(())
            },
        )?;
        // The row pass starts again from the first record: the window this pass kept resident
        // would otherwise stay in our RSS until that pass reached it, on top of its own.
        self.release_before(count);
        behind.restart();
        Ok(())
    }

    /// Sets the depth of record `index` and of every ancestor whose depth is not known yet.
    /// Parents nearly always come first, so this is one step; records in write order (a parent
    /// after its children) walk up once to a known depth and settle the whole path, so a chain
    /// of any depth costs linear time.
    fn settle_depth<D: AsRef<[u8]>>(
        &mut self,
        file: &SpanFile<D>,
        index: u64,
    ) -> Result<(), ExportError> {
        let mut path = Vec::new();
        let mut at = index;
        let mut depth = loop {
            let slot = self.get(at);
            if slot.known != 0 {
                break slot.depth + 1;
            }
            path.push(at);
            match file.record(at).and_then(|r| file.parent_of(at, r)) {
                Some(p) if (path.len() as u64) <= file.record_count() => at = p,
                Some(_) => return Err(ExportError::ParentLoop { index }),
                None => break 0,
            }
        };
        let slots = self.slots_mut();
        for &i in path.iter().rev() {
            slots[i as usize].depth = depth;
            slots[i as usize].known = 1;
            depth += 1;
        }
        Ok(())
    }

    /// The values of record `index`.
    pub fn get(&self, index: u64) -> Derived {
        self.slots()[index as usize]
    }

    fn slots(&self) -> &[Derived] {
        bytemuck::cast_slice(&self.map[..])
    }

    fn slots_mut(&mut self) -> &mut [Derived] {
        bytemuck::cast_slice_mut(&mut self.map[..])
    }

    /// Drops the pages of records before `index` from our resident set (not from the file).
    pub fn release_before(&self, index: u64) {
        let page = 4096;
        let bytes = (index as usize * std::mem::size_of::<Derived>()) / page * page;
        if bytes == 0 {
            return;
        }
        // SAFETY: the map is a shared mapping of a file, so MADV_DONTNEED discards no data: the
        // pages stay in the page cache (or are written back) and fault in again when touched.
        // No reference into the range outlives this call's borrow of `self`.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, bytes)
        };
    }
}
