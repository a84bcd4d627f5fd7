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
        let mut slots = ids.into_iter().map(|id| slot(n, &id));
        if n * 8 <= SWEEP_ABOVE_BYTES {
            // A batch of slots is hashed first and written after: a loop of writes alone keeps
            // many cache misses in flight, where one that also hashes waits for each in turn.
            let mut batch = [(0, 0); 256];
            loop {
                let len = batch
                    .iter_mut()
                    .zip(slots.by_ref())
                    .map(|(b, s)| *b = s)
                    .count();
                for &(word, mask) in &batch[..len] {
                    self.words[word] |= mask;
                }
                if len < batch.len() {
                    return;
                }
            }
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

    /// True when every bit of this filter is set in the filter `words` of the same size: then
    /// `words` may hold every id inserted here. Checking a filter this way, by filling one
    /// from the ids and comparing, is nearly twice as fast as looking each id up in it (the
    /// writes of a fill do not wait for the cache as a lookup's reads do).
    pub fn is_within(&self, words: &[u64]) -> bool {
        self.words.len() == words.len() && self.words.iter().zip(words).all(|(a, b)| a & b == *a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u64) -> SpanId {
        SpanId::encode(&format!("{i:032x}")).0
    }

    /// One by one, as a lookup sees them.
    fn inserted_one_by_one(bits: usize, ids: &[SpanId]) -> Vec<u64> {
        let mut words = vec![0; bits.div_ceil(64).next_power_of_two()];
        for id in ids {
            let (word, mask) = slot(words.len(), id);
            words[word] |= mask;
        }
        words
    }

    #[test]
    fn batched_inserts_set_the_bits_of_every_id_at_any_count() {
        // Around the batch length, in a filter filled in place and in one filled by sweeping.
        for bits in [4096, 16 << 20] {
            for n in [0, 1, 255, 256, 257, 512, 1000] {
                let ids: Vec<SpanId> = (0..n).map(id).collect();
                let mut bloom = IdBloom::with_bits(bits);
                bloom.insert_all(ids.iter().copied());
                assert_eq!(
                    bloom.words(),
                    inserted_one_by_one(bits, &ids),
                    "{bits} bits, {n} ids"
                );
                assert!(ids.iter().all(|i| bloom.maybe_contains(i)));
            }
        }
    }

    #[test]
    fn a_filter_is_within_one_holding_its_bits_and_no_other() {
        let mut some = IdBloom::with_bits(4096);
        some.insert_all((0..100).map(id));
        let mut more = some.clone();
        more.insert_all((100..200).map(id));
        assert!(some.is_within(more.words()));
        assert!(some.is_within(some.words()));
        assert!(!more.is_within(some.words()));
        // A filter of another size is never a match, whatever its bits.
        assert!(!some.is_within(&vec![u64::MAX; some.words().len() * 2]));
    }
}
