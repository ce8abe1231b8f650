//! A query result kept across frames until what it depends on changes.
//!
//! egui redraws up to 60 times a second while anything runs; lists read from
//! SQLite (conversations, search hits, classify runs) are keyed by
//! [`crate::db::Db::revision`] so they are read again only after a write.

pub struct Cached<K, V> {
    entry: Option<(K, V)>,
}

impl<K, V> Default for Cached<K, V> {
    fn default() -> Self {
        Cached { entry: None }
    }
}

impl<K: PartialEq, V> Cached<K, V> {
    /// The value for `key`, computed only when the key differs from last time.
    pub fn get(&mut self, key: K, compute: impl FnOnce() -> V) -> &V {
        if self.entry.as_ref().is_none_or(|(k, _)| *k != key) {
            self.entry = Some((key, compute()));
        }
        let (_, v) = self.entry.as_ref().expect("filled above");
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_again_only_when_the_key_changes() {
        let mut cache = Cached::default();
        let mut calls = 0;
        for key in [1, 1, 2, 2, 1] {
            cache.get(key, || {
                calls += 1;
                key * 10
            });
        }
        assert_eq!(calls, 3);
        assert_eq!(*cache.get(1, || unreachable!()), 10);
    }
}
