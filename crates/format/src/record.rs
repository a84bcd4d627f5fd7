//! [`SpanRecord`]: the fixed 64-byte record, one per span, viewed in place from the mapped file.

use bytemuck::{Pod, Zeroable};

/// Marks "no record" in the 48-bit parent and root index fields.
pub const NONE_INDEX: u64 = (1 << 48) - 1;
/// Marks "no name" in the parent name field (the span is a root).
pub const NONE_NAME: u32 = u32::MAX;
/// Marks "no extras" in the extras field (empty tags, plain status, plain id).
pub const NO_EXTRAS: u32 = u32::MAX;

const INDEX_MASK: u64 = NONE_INDEX;
const FLAG_SHIFT: u32 = 48;

/// Status is not "ok" (ferret counts it as an error).
pub const FLAG_ERROR: u16 = 1 << 0;
/// Status is neither "ok" nor "error"; its string is kept in the span's extras.
pub const FLAG_CUSTOM_STATUS: u16 = 1 << 1;
/// Duration was null in the source; the duration field holds 0.0.
pub const FLAG_NULL_DURATION: u16 = 1 << 2;
/// The span id was not 32 lowercase hex digits: the id field is its xxh3-128 hash and the
/// original string is kept in the span's extras.
pub const FLAG_HASHED_ID: u16 = 1 << 3;
/// The source had a non-empty parent_id (whether or not it was found in the run).
pub const FLAG_HAS_PARENT_ID: u16 = 1 << 4;
/// All flags this version defines; the reader rejects records with any other bit set.
pub const KNOWN_FLAGS: u16 = 0x1f;

/// One span, 64 bytes, little-endian, `#[repr(C)]`, so a mapped file is viewed as
/// `&[SpanRecord]` with no copying. See `docs/FORMAT.md` for the byte layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct SpanRecord {
    /// The 128-bit span id: ferret's 32 hex digits as 16 bytes, or an xxh3-128 hash.
    pub span_id: [u8; 16],
    /// Start time, Unix seconds, bit-for-bit as the source's f64.
    pub start_time: f64,
    /// Duration in seconds, bit-for-bit as the source's f64 (0.0 when null: see the flag).
    pub duration: f64,
    /// Low 48 bits: record index of the parent in the same run, or [`NONE_INDEX`].
    /// High 16 bits: flags (`FLAG_*`).
    pub parent_flags: u64,
    /// Low 48 bits: record index of the root of this span's tree (itself for a root).
    /// High 16 bits: reserved, zero.
    pub root: u64,
    /// Name id in the name table.
    pub name: u32,
    /// Run id, as an id in the string table.
    pub run: u32,
    /// Name id of the parent, or [`NONE_NAME`] for a root.
    pub parent_name: u32,
    /// Byte offset of this span's extras within its segment's tag heap, or `u32::MAX`.
    pub extras: u32,
}

const _: () = assert!(std::mem::size_of::<SpanRecord>() == 64);

impl SpanRecord {
    /// The flags in the high bits of `parent_flags`.
    #[inline]
    pub fn flags(&self) -> u16 {
        (self.parent_flags >> FLAG_SHIFT) as u16
    }

    /// Sets the flags, keeping the parent index.
    #[inline]
    pub fn set_flags(&mut self, flags: u16) {
        self.parent_flags = (self.parent_flags & INDEX_MASK) | (u64::from(flags) << FLAG_SHIFT);
    }

    /// Record index of the parent, if the parent is in the file (and the same run).
    #[inline]
    pub fn parent(&self) -> Option<u64> {
        let p = self.parent_flags & INDEX_MASK;
        (p != NONE_INDEX).then_some(p)
    }

    /// Sets the parent index (or none), keeping the flags.
    #[inline]
    pub fn set_parent(&mut self, parent: Option<u64>) {
        let p = parent.unwrap_or(NONE_INDEX) & INDEX_MASK;
        self.parent_flags = (self.parent_flags & !INDEX_MASK) | p;
    }

    /// Record index of this span's root (its own index for a root).
    #[inline]
    pub fn root_index(&self) -> u64 {
        self.root & INDEX_MASK
    }

    /// True when this span is a root for ferret: no parent in the same run.
    #[inline]
    pub fn is_root(&self) -> bool {
        self.parent().is_none()
    }

    /// The duration, or `None` when the source had null.
    #[inline]
    pub fn duration(&self) -> Option<f64> {
        (self.flags() & FLAG_NULL_DURATION == 0).then_some(self.duration)
    }

    /// True when ferret counts the span as an error (status is not "ok").
    #[inline]
    pub fn is_error(&self) -> bool {
        self.flags() & FLAG_ERROR != 0
    }

    /// True when the span id field is a hash of a non-hex id.
    #[inline]
    pub fn has_hashed_id(&self) -> bool {
        self.flags() & FLAG_HASHED_ID != 0
    }
}

/// A 128-bit span id as stored in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 16]);

impl SpanId {
    /// Encodes a source span id: 32 lowercase hex digits are stored losslessly (`hashed` is
    /// false); anything else is hashed with xxh3-128 (`hashed` is true).
    pub fn encode(id: &str) -> (SpanId, bool) {
        match parse_lower_hex32(id.as_bytes()) {
            Some(bytes) => (SpanId(bytes), false),
            None => {
                let h = xxhash_rust::xxh3::xxh3_128(id.as_bytes());
                (SpanId(h.to_be_bytes()), true)
            }
        }
    }

    /// The id as 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        let mut out = Vec::with_capacity(32);
        self.write_hex(&mut out);
        // Hex digits are ASCII.
        String::from_utf8(out).expect("hex digits")
    }

    /// Appends the id as 32 lowercase hex digits to `out`.
    pub fn write_hex(&self, out: &mut Vec<u8>) {
        let mut hex = [0u8; 32];
        for (pair, b) in hex.chunks_exact_mut(2).zip(self.0) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
        out.extend_from_slice(&hex);
    }
}

/// The lowercase hex digits, by value.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The two lowercase hex digits of every byte (exports write millions of ids).
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut pairs = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        pairs[b] = [HEX_DIGITS[b >> 4], HEX_DIGITS[b & 0xf]];
        b += 1;
    }
    pairs
};

fn parse_lower_hex32(s: &[u8]) -> Option<[u8; 16]> {
    let s: &[u8; 32] = s.try_into().ok()?;
    let mut out = [0u8; 16];
    let mut valid = true;
    for (o, digits) in out.chunks_exact_mut(4).zip(s.chunks_exact(8)) {
        let (bytes, ok) = hex8(u64::from_le_bytes(digits.try_into().expect("8 bytes")));
        o.copy_from_slice(&bytes);
        valid &= ok;
    }
    // Branch once per id, not per digit: every span carries one or two ids.
    valid.then_some(out)
}

/// Eight hex digits, read little-endian (the first digit is the low byte), to four bytes, and
/// whether all eight are lowercase hex digits: eight digits at a time in a word, where a table
/// lookup per digit was 7% of a conversion's instructions.
fn hex8(x: u64) -> ([u8; 4], bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // A digit's value: its low nibble, plus 9 for a letter (bit 6). No byte can pass 24, so no
    // byte carries into the next in any of the sums below.
    let v = (x & (ONES * 0x0f)) + ((x >> 6) & ONES) * 9;
    // Written back as a lowercase digit, a byte is unchanged only if it was one: '0'..='9'
    // and 'a'..='f' (and 'g'..='o', whose values pass 15, checked apart).
    let letter = ((v + ONES * 0x76) >> 7) & ONES;
    let again = v + ONES * 0x30 + letter * 0x27;
    let over_15 = (v + ONES * 0x70) & (ONES * 0x80);
    // Byte 2k of this is digit 2k's value above digit 2k + 1's; then the even bytes close up.
    let pairs = ((v << 4) | (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let pairs = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    let pairs = (pairs | (pairs >> 16)) as u32;
    (pairs.to_le_bytes(), again == x && over_15 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_round_trip_losslessly() {
        let hex = "effb39edf9a54126bfc91fdc87a0acb7";
        let (id, hashed) = SpanId::encode(hex);
        assert!(!hashed);
        assert_eq!(id.to_hex(), hex);
    }

    #[test]
    fn other_ids_are_hashed() {
        for s in [
            "EFFB39EDF9A54126BFC91FDC87A0ACB7",
            "req-1",
            "",
            "effb39edf9a54126bfc91fdc87a0acb",
        ] {
            let (id, hashed) = SpanId::encode(s);
            assert!(hashed, "{s}");
            assert_ne!(id, SpanId::encode("req-2").0);
        }
    }

    proptest::proptest! {
        /// The word-at-a-time decoder against a digit-by-digit one, on lowercase hex ids with
        /// one byte (any value, at any place) replaced or not.
        #[test]
        fn hex_ids_decode_as_digit_by_digit(
            hex in "[0-9a-f]{32}", at in 0..32usize, byte in proptest::num::u8::ANY, replace: bool
        ) {
            let mut id = hex.into_bytes();
            if replace {
                id[at] = byte;
            }
            let simple = (id.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)))
                .then(|| {
                    let text = std::str::from_utf8(&id).expect("ASCII");
                    u128::from_str_radix(text, 16).expect("hex").to_be_bytes()
                });
            proptest::prop_assert_eq!(parse_lower_hex32(&id), simple);
        }
    }

    #[test]
    fn flags_and_parent_share_a_word_without_clobbering() {
        let mut r = SpanRecord::zeroed();
        r.set_parent(Some(12345));
        r.set_flags(FLAG_ERROR | FLAG_HAS_PARENT_ID);
        assert_eq!(r.parent(), Some(12345));
        assert!(r.is_error());
        r.set_parent(None);
        assert_eq!(r.parent(), None);
        assert_eq!(r.flags(), FLAG_ERROR | FLAG_HAS_PARENT_ID);
    }
}
