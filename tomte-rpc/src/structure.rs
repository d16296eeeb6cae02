//! Builds a struct from members as a decoder reads them, in linear time whatever the names.
//!
//! Every decoder that reads structs (JSON objects, XML-RPC `<struct>`) goes through
//! [`Builder`], so they share one rule for a repeated name: **the last value wins, in the place
//! of the first** (`{"a":1,"b":2,"a":3}` is `{"a":3,"b":2}`), as most JSON parsers do.
//!
//! Finding an earlier member of the same name is a linear scan while the struct is small (a
//! few comparisons beat hashing), and a hash index once it grows past [`Builder::INDEX_FROM`]
//! members, so a struct of n members costs O(n) to build, not O(n²).

use std::collections::HashMap;

use crate::value::Value;

/// The members of a struct being decoded.
#[derive(Default)]
pub(crate) struct Builder {
    members: Vec<(String, Value)>,
    /// Name → position in `members`, built once the struct has [`Builder::INDEX_FROM`] members.
    /// The names come from the client, so the hasher is std's randomly keyed SipHash, not the
    /// FNV the registry uses for its own method names: a client must not be able to choose
    /// names that collide.
    index: Option<HashMap<String, usize>>,
}

impl Builder {
    /// From this many members on, repeated names are found through a hash index.
    pub(crate) const INDEX_FROM: usize = 16;

    pub(crate) fn new() -> Builder {
        Builder::default()
    }

    /// Adds a member; a name seen before keeps its place and takes the new value.
    pub(crate) fn insert(&mut self, name: String, value: Value) {
        let index = match &mut self.index {
            Some(index) => index,
            None => match self.members.iter().position(|(k, _)| *k == name) {
                Some(i) => {
                    self.members[i].1 = value;
                    return;
                }
                None if self.members.len() + 1 < Self::INDEX_FROM => {
                    self.members.push((name, value));
                    return;
                }
                None => {
                    // The member about to be added is the INDEX_FROM-th: index them all.
                    let mut index = HashMap::with_capacity(2 * Self::INDEX_FROM);
                    for (i, (k, _)) in self.members.iter().enumerate() {
                        index.insert(k.clone(), i);
                    }
                    self.index.insert(index)
                }
            },
        };
        match index.get(&name) {
            Some(&i) => self.members[i].1 = value,
            None => {
                index.insert(name.clone(), self.members.len());
                self.members.push((name, value));
            }
        }
    }

    /// How many distinct names so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The members, in the order their names first appeared.
    pub(crate) fn finish(self) -> Vec<(String, Value)> {
        self.members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(names: &[&str]) -> Vec<(String, Value)> {
        let mut b = Builder::new();
        for (i, n) in names.iter().enumerate() {
            b.insert((*n).to_owned(), Value::from(i));
        }
        b.finish()
    }

    #[test]
    fn last_value_wins_in_first_place() {
        assert_eq!(build(&["a", "b", "a"]), vec![("a".to_owned(), Value::Int(2)), ("b".to_owned(), Value::Int(1))]);
        assert_eq!(build(&[]), vec![]);
    }

    #[test]
    fn the_index_agrees_with_the_scan_on_both_sides_of_the_threshold() {
        for n in [Builder::INDEX_FROM - 2, Builder::INDEX_FROM - 1, Builder::INDEX_FROM, 3 * Builder::INDEX_FROM] {
            // n distinct names, then all of them again in reverse, then a few new ones.
            let names: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
            let mut b = Builder::new();
            for (i, name) in names.iter().enumerate() {
                b.insert(name.clone(), Value::from(i));
            }
            for (i, name) in names.iter().enumerate().rev() {
                b.insert(name.clone(), Value::from(1000 + i));
            }
            b.insert("new".to_owned(), Value::Nil);
            b.insert("k0".to_owned(), Value::Bool(true));
            assert_eq!(b.len(), n + 1);
            let members = b.finish();
            assert_eq!(members[0], ("k0".to_owned(), Value::Bool(true)));
            for (i, (k, v)) in members.iter().enumerate().take(n).skip(1) {
                assert_eq!((k, v), (&names[i], &Value::from(1000 + i)), "n = {n}");
            }
            assert_eq!(members[n], ("new".to_owned(), Value::Nil));
        }
    }
}
