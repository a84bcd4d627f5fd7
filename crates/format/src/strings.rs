//! String tables: the reader's [`StringTable`] view and the writer's [`Interner`].
//!
//! Each entry on disk is a little-endian `u32` byte length followed by the UTF-8 bytes; ids are
//! dense, in order of first appearance across segments.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::FormatError;

/// A read-only table of strings whose bytes live in the file; holds only their positions.
#[derive(Clone, Debug, Default)]
pub struct StringTable {
    spans: Vec<(usize, u32)>,
}

impl StringTable {
    /// Appends the entries of one segment's table (`bytes[start..start+len]`, `count` entries),
    /// checking UTF-8 once so lookups need not.
    pub(crate) fn extend_from(
        &mut self,
        bytes: &[u8],
        start: usize,
        len: usize,
        count: u32,
        table: &'static str,
    ) -> Result<(), String> {
        let end = start + len;
        let mut pos = start;
        for _ in 0..count {
            let id = self.spans.len() as u32;
            let n = bytes
                .get(pos..pos + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                .ok_or_else(|| format!("{table} table ends inside entry {id}"))?;
            let s = pos + 4;
            let e = s + n as usize;
            if e > end {
                return Err(format!("{table} table entry {id} runs past its table"));
            }
            std::str::from_utf8(&bytes[s..e])
                .map_err(|_| FormatError::BadString { table, id }.to_string())?;
            self.spans.push((s, n));
            pos = e;
        }
        if pos != end {
            return Err(format!("{table} table has {} stray bytes", end - pos));
        }
        Ok(())
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The string with id `id`, resolved against the file's bytes.
    pub fn get<'a>(&self, bytes: &'a [u8], id: u32) -> Option<&'a str> {
        let &(s, n) = self.spans.get(id as usize)?;
        // Checked as UTF-8 in `extend_from`; a failure here means the bytes changed under us.
        std::str::from_utf8(bytes.get(s..s + n as usize)?).ok()
    }
}

/// Passes a precomputed u64 hash straight through, so the interner hashes each string once.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Interns strings to dense ids. Strings are found by their xxh3 hash, and every hash hit is
/// confirmed by comparing the bytes, so two different strings never share an id even if their
/// hashes collide.
pub struct Interner {
    hash: fn(&[u8]) -> u64,
    by_hash: HashMap<u64, Vec<u32>, BuildHasherDefault<PassThrough>>,
    strings: Vec<Box<str>>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner::with_hash(xxhash_rust::xxh3::xxh3_64)
    }
}

impl Interner {
    /// An interner hashing with `hash` (tests pass a colliding one).
    pub fn with_hash(hash: fn(&[u8]) -> u64) -> Interner {
        Interner {
            hash,
            by_hash: HashMap::default(),
            strings: Vec::new(),
        }
    }

    /// The id of `s`, interning it if new.
    pub fn intern(&mut self, s: &str) -> u32 {
        let h = (self.hash)(s.as_bytes());
        let ids = self.by_hash.entry(h).or_default();
        if let Some(&id) = ids.iter().find(|&&id| &*self.strings[id as usize] == s) {
            return id;
        }
        let id = self.strings.len() as u32;
        ids.push(id);
        self.strings.push(s.into());
        id
    }

    /// The id of `s` if interned.
    pub fn lookup(&self, s: &str) -> Option<u32> {
        let h = (self.hash)(s.as_bytes());
        let ids = self.by_hash.get(&h)?;
        ids.iter()
            .copied()
            .find(|&id| &*self.strings[id as usize] == s)
    }

    /// The string with id `id`.
    pub fn get(&self, id: u32) -> Option<&str> {
        self.strings.get(id as usize).map(|s| &**s)
    }

    /// Number of strings interned.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// Encodes strings `from..` as table entries.
    pub(crate) fn encode_from(&self, from: usize, out: &mut Vec<u8>) {
        for s in &self.strings[from..] {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_hashes_never_share_an_id() {
        let mut i = Interner::with_hash(|_| 42);
        let a = i.intern("alpha");
        let b = i.intern("beta");
        let c = i.intern("gamma");
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert_eq!(i.intern("beta"), b);
        assert_eq!(i.lookup("gamma"), Some(c));
        assert_eq!(i.lookup("delta"), None);
        assert_eq!(i.get(a), Some("alpha"));
    }

    #[test]
    fn encoded_entries_read_back() {
        let mut i = Interner::default();
        for s in ["main", "", "load[config]", "naïve ✓"] {
            i.intern(s);
        }
        let mut bytes = Vec::new();
        i.encode_from(0, &mut bytes);
        let mut t = StringTable::default();
        t.extend_from(&bytes, 0, bytes.len(), 4, "name").unwrap();
        assert_eq!(t.get(&bytes, 3), Some("naïve ✓"));
        assert_eq!(t.get(&bytes, 1), Some(""));
        assert!(t.extend_from(&bytes, 0, bytes.len(), 5, "name").is_err());
    }
}
