//! One name table over several files: a population of traces (the workers of a service, each
//! with its own file) has a name table per file, and its statistics merge by name text. Each
//! file's name ids map to the ids of the union; memory is the distinct names, summed over the
//! files, never the spans.

use std::collections::HashMap;

use ferret_format::SpanFile;

/// The distinct names of several files, in order of first appearance (file by file, each in its
/// own name-id order: so one file's union keeps its ids, and ferret's tie order).
#[derive(Clone, Debug, Default)]
pub struct NameUnion {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl NameUnion {
    /// An empty union.
    pub fn new() -> NameUnion {
        NameUnion::default()
    }

    /// Adds `file`'s names; returns the union's id of each of its name ids.
    pub fn add<D: AsRef<[u8]>>(&mut self, file: &SpanFile<D>) -> Vec<u32> {
        (0..file.name_count() as u32)
            .map(|id| self.id_of(file.name(id).unwrap_or_default()))
            .collect()
    }

    /// The union's id of `name`, added when new.
    fn id_of(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    /// The number of distinct names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no file added a name.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of union id `id` (empty when out of range).
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_by_text_and_keep_first_appearance_order() {
        let mut union = NameUnion::new();
        assert_eq!(union.id_of("a"), 0);
        assert_eq!(union.id_of("b"), 1);
        assert_eq!(union.id_of("a"), 0);
        assert_eq!(union.id_of("c"), 2);
        assert_eq!((union.len(), union.name(1), union.name(9)), (3, "b", ""));
    }
}
