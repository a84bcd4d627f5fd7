//! [`IdBloom`]: a blocked Bloom filter of span ids. The 4 probes of an id fall in one 64-bit
//! word, so an insert or a lookup touches one cache line (a classic filter's 4 misses cost 7% of
//! a conversion), at a slightly higher false-positive rate. The converter keeps some in memory
//! (ids dropped from its window, parent ids of orphans); each version 2 segment stores one over
//! its own span ids, so that a later `--append` finds which segments may hold a parent without
//! reading every record.

use crate::record::SpanId;

/// Filters larger than this (about an L2 cache) are filled in word order.
const SWEEP_ABOVE_BYTES: usize = 1 << 20;

/// A blocked Bloom filter over span ids, of a power-of-two number of 64-bit words.
#[derive(Clone, Debug)]
pub struct IdBloom {
    words: Vec<u64>,
}

/// The word an id sets and the 4 bits it sets there, in a filter of `words` words (a power of
/// two).
#[inline]
fn slot(words: usize, id: &SpanId) -> (usize, u64) {
    let h = xxhash_rust::xxh3::xxh3_64(&id.0);
    let word = (h as usize) & (words - 1);
    let mask = (0..4).fold(0u64, |m, i| m | 1 << ((h >> (40 + 6 * i)) & 63));
    (word, mask)
}

/// True when the filter `words` (as [`IdBloom::words`] gives them) may hold `id`; an empty
/// filter may hold anything (a segment written without one).
#[inline]
pub fn words_may_hold(words: &[u64], id: &SpanId) -> bool {
    if words.is_empty() {
        return true;
    }
    let (word, mask) = slot(words.len(), id);
    words[word] & mask == mask
}

impl IdBloom {
    /// An empty filter of at least `bits` bits (rounded up to a power of two, at least a word).
    pub fn with_bits(bits: usize) -> IdBloom {
        IdBloom {
            words: vec![0; bits.div_ceil(64).next_power_of_two()],
        }
    }

    /// The filter's words.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Its size in bits.
    pub fn bits(&self) -> usize {
        self.words.len() * 64
    }

    /// Inserts all of `ids`. Into a filter larger than the L2 cache they go in the order of the
    /// words they set, so the writes sweep it once instead of jumping about it (set one by one,
    /// each was a cache and TLB miss in the converter's 16 MiB filter: 12% of a conversion); a
    /// smaller one (a segment's) takes them as they come, which the sort would only slow.
    pub fn insert_all(&mut self, ids: impl IntoIterator<Item = SpanId>) {
        let n = self.words.len();
        let slots = ids.into_iter().map(|id| slot(n, &id));
        if n * 8 <= SWEEP_ABOVE_BYTES {
            for (word, mask) in slots {
                self.words[word] |= mask;
            }
            return;
        }
        let mut slots: Vec<(usize, u64)> = slots.collect();
        slots.sort_unstable_by_key(|&(word, _)| word);
        for (word, mask) in slots {
            self.words[word] |= mask;
        }
    }

    /// False when `id` was certainly never inserted.
    pub fn maybe_contains(&self, id: &SpanId) -> bool {
        words_may_hold(&self.words, id)
    }
}
