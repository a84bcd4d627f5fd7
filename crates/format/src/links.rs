//! Late links (format version 2): the *adoption* and *orphan* tables a segment carries.
//!
//! ferret-io writes a span when it ends, so a parent can reach the file after its children were
//! committed (a live trace converted with `--append`, JSON lines in write order). Committed
//! records are never rewritten. Instead:
//! - an [`Orphan`] entry lists a committed provisional root whose parent id was not found yet,
//!   keyed by that id, so that a later conversion can find the children of a span that arrives;
//! - an [`Adoption`] entry says that such a root now has a parent. A record's parent is its own
//!   parent field or, for an adopted root, the adoption's; its root is its root field followed
//!   through the adoptions ([`Links::root_of`]).
//!
//! Adoptions are few next to the records (a span adopts across commits only when it outlived a
//! commit), so readers hold them in a hash map, loaded when the file is opened.

use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};

use crate::record::SpanRecord;

/// A committed provisional root adopted by a parent that arrived later. 24 bytes on disk.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Adoption {
    /// Global index of the adopted record (committed before this entry's segment).
    pub child: u64,
    /// Global index of its parent (in this entry's segment or before it).
    pub parent: u64,
    /// Name id of the parent, so self time needs no lookup of the parent.
    pub parent_name: u32,
    /// Zero.
    pub reserved: u32,
}

/// A committed provisional root waiting for the span named by its parent id. 24 bytes on disk;
/// a segment's orphans are sorted by `(parent_id, child)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Pod, Zeroable)]
pub struct Orphan {
    /// The parent id the child names, as a record's `span_id` would hold it.
    pub parent_id: [u8; 16],
    /// Global index of the waiting record.
    pub child: u64,
}

const _: () = assert!(std::mem::size_of::<Adoption>() == 24);
const _: () = assert!(std::mem::size_of::<Orphan>() == 24);

/// The adoptions of a whole file, by child. The first adoption of a child wins (a later one
/// could only come from a repeated span id).
#[derive(Clone, Debug, Default)]
pub struct Links {
    adopted: HashMap<u64, Adoption>,
}

impl Links {
    /// Adds the adoptions of one segment, in file order.
    pub(crate) fn extend(&mut self, adoptions: &[Adoption]) {
        for a in adoptions {
            self.adopted.entry(a.child).or_insert(*a);
        }
    }

    /// True when no record was adopted (every version 1 file, and most version 2 ones).
    pub fn is_empty(&self) -> bool {
        self.adopted.is_empty()
    }

    /// Number of adopted records.
    pub fn len(&self) -> usize {
        self.adopted.len()
    }

    /// The adoption of record `index`, if it was adopted.
    #[inline]
    pub fn adoption(&self, index: u64) -> Option<&Adoption> {
        if self.adopted.is_empty() {
            return None;
        }
        self.adopted.get(&index)
    }

    /// Every adoption, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Adoption> {
        self.adopted.values()
    }

    /// The parent of record `index`: its parent field, or its adoption's parent.
    #[inline]
    pub fn parent_of(&self, index: u64, record: &SpanRecord) -> Option<u64> {
        record
            .parent()
            .or_else(|| self.adoption(index).map(|a| a.parent))
    }

    /// The parent's name id of record `index` (or [`crate::NONE_NAME`]).
    #[inline]
    pub fn parent_name_of(&self, index: u64, record: &SpanRecord) -> u32 {
        match self.adoption(index) {
            Some(a) if record.parent().is_none() => a.parent_name,
            _ => record.parent_name,
        }
    }

    /// True when record `index` is a root for ferret: no parent field and not adopted.
    #[inline]
    pub fn is_root(&self, index: u64, record: &SpanRecord) -> bool {
        record.parent().is_none() && self.adoption(index).is_none()
    }

    /// The root of a record whose root field is `root`: the field, followed through adoptions
    /// (each step reads the adopting parent's root field through `root_field`). A walk longer
    /// than the number of adoptions can only be a loop in a damaged file; it stops there.
    #[inline]
    pub fn root_of(&self, mut root: u64, root_field: impl Fn(u64) -> Option<u64>) -> u64 {
        for _ in 0..=self.adopted.len() {
            match self.adoption(root).and_then(|a| root_field(a.parent)) {
                Some(next) if next != root => root = next,
                _ => return root,
            }
        }
        root
    }
}
