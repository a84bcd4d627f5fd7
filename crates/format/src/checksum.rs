//! The checksum of every checksummed region of the file: XXH3-64 with seed 0 (docs/FORMAT.md).
//!
//! Computed with twox-hash, which picks its SIMD at run time (AVX2 where the CPU has it, SSE2
//! otherwise), while xxhash-rust, which hashes the in-memory keys (interned strings, span ids),
//! picks it at compile time, so a portable x86-64 build would check blocks with SSE2 on every
//! CPU. Block checksums are hashed on every scan: with SSE2 they were a fifth of a checked stats
//! pass, with AVX2 about a tenth. Both crates compute the same function; a test holds them
//! equal, so the bytes on disk do not depend on which one wrote them.

/// XXH3-64 (seed 0) of `bytes`: the checksum of a record block, a table or a header.
#[inline]
pub fn checksum(bytes: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(bytes)
}

/// The checksum of a link table: 0 for an empty one, so that the zero bytes version 1 wrote in
/// their place describe empty tables.
pub(crate) fn table_checksum(bytes: &[u8]) -> u64 {
    if bytes.is_empty() {
        0
    } else {
        checksum(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every length up to two 1 KiB stripes blocks and around a record block's 64 KiB, where
    /// the implementations change paths (short inputs, mid inputs, stripes, the last stripe).
    #[test]
    fn equals_xxhash_rust_at_every_path() {
        let bytes: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let lengths = (0..=2100).chain(65_400..=65_700).chain([70_000]);
        for len in lengths {
            let data = &bytes[..len];
            assert_eq!(
                checksum(data),
                xxhash_rust::xxh3::xxh3_64(data),
                "length {len}"
            );
        }
    }

    proptest! {
        #[test]
        fn equals_xxhash_rust_on_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            prop_assert_eq!(checksum(&data), xxhash_rust::xxh3::xxh3_64(&data));
        }
    }
}
