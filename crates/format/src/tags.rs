//! Span extras in the tag heap: the tags JSON kept verbatim, an odd status string, and the
//! original text of a hashed span id.
//!
//! An entry is three little-endian `u32`s (tags length, status string id or `u32::MAX`, id text
//! length) followed by the tags bytes and the id text. A span with `{}` tags, status "ok" or
//! "error", and a hex id has no entry at all.

/// What a span carries besides its fixed fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanExtras<'a> {
    /// The tags object as the source's JSON text; empty means `{}`.
    pub tags: &'a [u8],
    /// String id of a status that is neither "ok" nor "error".
    pub status: Option<u32>,
    /// The source span id, when it was not 32 lowercase hex digits.
    pub original_id: &'a [u8],
}

const ENTRY_HEADER: usize = 12;

impl<'a> SpanExtras<'a> {
    /// True when there is nothing to store (the record's extras field is then `u32::MAX`).
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.status.is_none() && self.original_id.is_empty()
    }

    /// The tags as JSON text (`{}` when there were none).
    pub fn tags_json(&self) -> &'a str {
        if self.tags.is_empty() {
            "{}"
        } else {
            // Written from a `&str` by the converter; verified by checksum on read.
            std::str::from_utf8(self.tags).unwrap_or("{}")
        }
    }

    /// Appends the encoded entry to `heap`.
    pub(crate) fn encode(&self, heap: &mut Vec<u8>) {
        heap.extend_from_slice(&(self.tags.len() as u32).to_le_bytes());
        heap.extend_from_slice(&self.status.unwrap_or(u32::MAX).to_le_bytes());
        heap.extend_from_slice(&(self.original_id.len() as u32).to_le_bytes());
        heap.extend_from_slice(self.tags);
        heap.extend_from_slice(self.original_id);
    }

    /// Decodes the entry at `offset` of a segment's tag heap.
    pub(crate) fn decode(heap: &'a [u8], offset: usize) -> Option<SpanExtras<'a>> {
        let head = heap.get(offset..offset + ENTRY_HEADER)?;
        let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
        let (tags_len, status, id_len) = (word(0) as usize, word(4), word(8) as usize);
        let tags_start = offset + ENTRY_HEADER;
        let tags = heap.get(tags_start..tags_start + tags_len)?;
        let original_id = heap.get(tags_start + tags_len..tags_start + tags_len + id_len)?;
        Some(SpanExtras {
            tags,
            status: (status != u32::MAX).then_some(status),
            original_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_back_to_back() {
        let a = SpanExtras {
            tags: br#"{"k":[1,2.5,null]}"#,
            status: Some(7),
            original_id: b"",
        };
        let b = SpanExtras {
            tags: b"",
            status: None,
            original_id: b"request-17",
        };
        let mut heap = Vec::new();
        a.encode(&mut heap);
        let at = heap.len();
        b.encode(&mut heap);
        assert_eq!(SpanExtras::decode(&heap, 0), Some(a));
        assert_eq!(SpanExtras::decode(&heap, at), Some(b.clone()));
        assert_eq!(b.tags_json(), "{}");
        assert_eq!(SpanExtras::decode(&heap, heap.len() - 3), None);
    }
}
