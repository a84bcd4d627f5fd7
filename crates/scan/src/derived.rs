//! What a span's own figures need from the rest of its tree: the summed durations of its
//! children (for ferret's per-span self time) and its depth. Both are per span, so for a
//! multi-GB trace they live in an unlinked temporary file mapped into memory, 16 bytes per
//! record of the range asked about: the page cache holds them, and pages behind the pass are
//! released from our resident set as it moves on. The flame graph and the Parquet export read
//! them; the table keeps its per-name figure in memory bounded by names.

use std::fs::File;
use std::ops::Range;
use std::path::Path;

use bytemuck::{Pod, Zeroable};
use ferret_format::{FormatError, SpanFile, SpanRecord, BLOCK_RECORDS};
use memmap2::MmapMut;

use crate::chunk::BlockSelect;
use crate::engine::ScanError;
use crate::pass::{for_each_record, Behind};

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

/// What a [`DerivedTable`] computes and checks.
#[derive(Clone, Copy, Debug)]
pub struct Derive {
    /// Check each block's checksum as the pass enters it, and an ancestor's before following
    /// its link (`--no-verify` turns it off).
    pub verify: bool,
    /// Compute depths too (the Parquet export's column): a parent link that loops is then an
    /// error, where child times alone never follow a link past the parent.
    pub depth: bool,
}

/// [`Derived`] values of the records of a range, by global record index, in a mapped
/// temporary file.
pub struct DerivedTable {
    map: MmapMut,
    /// The records the table covers.
    range: Range<u64>,
    /// Keeps the (already unlinked) file open for the map's lifetime.
    _file: File,
}

impl DerivedTable {
    /// Computes the values `derive` asks for, for the records in `range` whose run `wanted`
    /// accepts, in one pass over the blocks `select` may match. Their parents must lie in
    /// `range` too: a run's records do. The temporary file is made in `dir` and its space
    /// reserved first, so a full disk is an error here rather than a fault later.
    pub fn build<D: AsRef<[u8]>>(
        file: &SpanFile<D>,
        range: Range<u64>,
        select: &BlockSelect,
        wanted: impl Fn(u32) -> bool,
        derive: Derive,
        dir: &Path,
        behind: &mut Behind<D>,
    ) -> Result<DerivedTable, ScanError> {
        let io = |source| ScanError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let range = range.start..range.end.max(range.start);
        let scratch = tempfile::tempfile_in(dir).map_err(io)?;
        let len = (range.end - range.start).max(1) * std::mem::size_of::<Derived>() as u64;
        // Reserved, not only sized: writing through a map into a sparse file that the disk has
        // no room for raises SIGBUS instead of returning an error.
        rustix::fs::fallocate(&scratch, rustix::fs::FallocateFlags::empty(), 0, len)
            .map_err(|e| io(e.into()))?;
        // SAFETY: the file is our own unlinked temporary file, so no other process can map,
        // write or truncate it; its blocks were just allocated to hold one `Derived` per record
        // of the range, so writes through the map cannot fault for want of space.
        let map = unsafe { MmapMut::map_mut(&scratch) }.map_err(io)?;
        let mut table = DerivedTable {
            map,
            range: range.clone(),
            _file: scratch,
        };
        table.fill(file, select, wanted, derive, behind)?;
        Ok(table)
    }

    fn fill<D: AsRef<[u8]>>(
        &mut self,
        file: &SpanFile<D>,
        select: &BlockSelect,
        wanted: impl Fn(u32) -> bool,
        derive: Derive,
        behind: &mut Behind<D>,
    ) -> Result<(), ScanError> {
        let range = self.range.clone();
        let mut next_release = range.start;
        // Each checksum block is checked as the pass enters it: checking whole segments up
        // front would map them all at once.
        let mut checked: Option<(usize, usize)> = None;
        for_each_record(
            file,
            range.clone(),
            select,
            |seg, index, r| -> Result<(), ScanError> {
                let block = ((index - seg.first_record) as usize) / BLOCK_RECORDS;
                if derive.verify && checked != Some((seg.index, block)) {
                    file.check_block(seg, block)?;
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
                if parent.is_some_and(|p| !range.contains(&p)) {
                    return Err(FormatError::BadRecord {
                        index,
                        what: "parent index outside the records of its run".into(),
                    }
                    .into());
                }
                if derive.depth {
                    self.settle_depth(file, index, derive.verify)?;
                }
                if let Some(p) = parent {
                    self.slot_mut(p).child_time += r.duration().unwrap_or(0.0);
                }
                Ok(())
            },
        )?;
        // The next pass starts again from the first record: the window this pass kept resident
        // would otherwise stay in our RSS until that pass reached it, on top of its own.
        self.release_before(range.end);
        behind.restart();
        Ok(())
    }

    /// Sets the depth of record `index` and of every ancestor whose depth is not known yet.
    /// Parents nearly always come first, so this is one step; records in write order (a parent
    /// after its children) walk up once to a known depth and settle the whole path, so a chain
    /// of any depth costs linear time. An ancestor's block is checked before its links are
    /// followed: a damaged parent index fails the question, never the process.
    fn settle_depth<D: AsRef<[u8]>>(
        &mut self,
        file: &SpanFile<D>,
        index: u64,
        verify: bool,
    ) -> Result<(), ScanError> {
        let mut path = Vec::new();
        let mut at = index;
        let mut depth = loop {
            let slot = self.get(at);
            if slot.known != 0 {
                break slot.depth + 1;
            }
            path.push(at);
            let record = if verify {
                file.checked_record(at)?
            } else {
                file.record(at)
            };
            let parent = record.and_then(|r| file.parent_of(at, r));
            match parent {
                Some(p) if !self.range.contains(&p) => {
                    return Err(FormatError::BadRecord {
                        index: at,
                        what: "parent index outside the records of its run".into(),
                    }
                    .into())
                }
                Some(_) if path.len() as u64 > self.range.end - self.range.start => {
                    return Err(ScanError::ParentLoop { index })
                }
                Some(p) => at = p,
                None => break 0,
            }
        };
        for &i in path.iter().rev() {
            let slot = self.slot_mut(i);
            slot.depth = depth;
            slot.known = 1;
            depth += 1;
        }
        Ok(())
    }

    /// The values of record `index` (which must lie in the table's range).
    pub fn get(&self, index: u64) -> Derived {
        self.slots()[(index - self.range.start) as usize]
    }

    fn slot_mut(&mut self, index: u64) -> &mut Derived {
        let at = (index - self.range.start) as usize;
        &mut self.slots_mut()[at]
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
        let records = index.saturating_sub(self.range.start) as usize;
        let bytes = (records * std::mem::size_of::<Derived>()) / page * page;
        if bytes == 0 {
            return;
        }
        // SAFETY: the map is a shared mapping of a file, so MADV_DONTNEED discards no data: the
        // pages stay in the page cache (or are written back) and fault in again when touched.
        // No reference into the range outlives this call's borrow of `self`.
        let _ = unsafe {
            self.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                0,
                bytes.min(self.map.len()),
            )
        };
    }
}
