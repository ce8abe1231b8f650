//! Which tokens the KV cache holds, and how far back it can go.
//!
//! The keys and values themselves live inside the weights
//! ([`super::model::Weights`]); this is the bookkeeping beside them, kept in
//! one place so that the code feeding the model asks it instead of knowing
//! which implementation runs. The two differ: duet's own kernels write a
//! token's keys and values at its position, so their cache can be cut back to
//! any length and refilled from there; candle's models only append to theirs
//! (a forward at position 0 starts it afresh), so there the only ways back are
//! keeping everything or starting over.
//!
//! Every forward goes at position [`KvCache::len`] and is recorded with
//! [`KvCache::fed`]. Before one, a caller asks how much of its ids the cache
//! can keep ([`KvCache::reuse`]), or to go back to a length
//! ([`KvCache::rewind`]), which an append-only cache refuses by starting over.

/// The tokens whose keys and values are in the cache, in position order.
#[derive(Debug, Clone)]
pub struct KvCache {
    tokens: Vec<u32>,
    /// Whether tokens can be dropped from the end (else only all at once).
    rewinds: bool,
}

/// A [`KvCache::rewind`] the cache could not do: it is empty now, so the
/// tokens wanted have to be fed again from position 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MustRestart;

impl KvCache {
    /// A cache that can be overwritten from any position (duet's kernels).
    pub fn rewindable() -> Self {
        KvCache { tokens: Vec::new(), rewinds: true }
    }

    /// A cache that only grows, or starts over at position 0 (candle's models).
    pub fn append_only() -> Self {
        KvCache { tokens: Vec::new(), rewinds: false }
    }

    /// Whether tokens can be dropped from its end.
    pub fn can_rewind(&self) -> bool {
        self.rewinds
    }

    /// Tokens held; also the position the next fed token goes to.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// How many leading `ids` the cache could keep when `ids` are fed next.
    /// At least one id is always left to compute (its logits are the point).
    /// A rewindable cache keeps the prefix it shares with `ids`; an
    /// append-only one keeps all it holds when that is a prefix of `ids`,
    /// else nothing.
    pub fn reusable(&self, ids: &[u32]) -> usize {
        let common = self.tokens.iter().zip(ids).take_while(|(a, b)| a == b).count();
        if self.rewinds {
            common.min(ids.len().saturating_sub(1))
        } else if common == self.tokens.len() && common < ids.len() {
            common
        } else {
            0
        }
    }

    /// Keep the [`reusable`](Self::reusable) prefix of `ids` and drop the rest;
    /// returns its length: `ids[n..]` are to be fed next, at position `n`.
    pub fn reuse(&mut self, ids: &[u32]) -> usize {
        let n = self.reusable(ids);
        self.tokens.truncate(n);
        n
    }

    /// Go back to the first `n` tokens (nothing to do when it holds no more).
    /// An append-only cache can only empty itself: for `0 < n < len` it does
    /// that and says [`MustRestart`].
    pub fn rewind(&mut self, n: usize) -> Result<(), MustRestart> {
        if n >= self.tokens.len() {
            return Ok(());
        }
        if self.rewinds || n == 0 {
            self.tokens.truncate(n);
            Ok(())
        } else {
            self.tokens.clear();
            Err(MustRestart)
        }
    }

    /// Forget everything (the next forward goes at position 0).
    pub fn reset(&mut self) {
        self.tokens.clear();
    }

    /// Record `ids` as just fed at positions `len()..`.
    pub fn fed(&mut self, ids: &[u32]) {
        self.tokens.extend_from_slice(ids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(mut cache: KvCache, ids: &[u32]) -> KvCache {
        cache.fed(ids);
        cache
    }

    #[test]
    fn a_rewindable_cache_reuses_the_shared_prefix() {
        let mut c = holding(KvCache::rewindable(), &[1, 2, 3, 4]);
        assert_eq!(c.reusable(&[1, 2, 9, 9, 9]), 2);
        assert_eq!(c.reusable(&[1, 2, 3, 4, 5, 6]), 4);
        assert_eq!(c.reusable(&[7, 8]), 0);
        assert_eq!(c.reuse(&[1, 2, 9, 9, 9]), 2);
        assert_eq!(c.tokens, [1, 2]);
        c.fed(&[9, 9, 9]);
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn an_append_only_cache_reuses_only_all_it_holds_or_restarts() {
        let mut c = holding(KvCache::append_only(), &[1, 2, 3]);
        assert_eq!(c.reusable(&[1, 2, 3, 4, 5]), 3);
        // Sharing a prefix is not enough: dropping the 3 is not possible.
        assert_eq!(c.reusable(&[1, 2, 9, 4]), 0);
        assert_eq!(c.reusable(&[1, 2]), 0);
        assert_eq!(c.reuse(&[1, 2, 9, 4]), 0);
        assert!(c.is_empty(), "a restart forgets everything");
        let mut c = holding(KvCache::append_only(), &[1, 2, 3]);
        assert_eq!(c.reuse(&[1, 2, 3, 4]), 3);
        assert_eq!(c.tokens, [1, 2, 3]);
    }

    #[test]
    fn a_reused_prefix_always_leaves_a_token_to_compute() {
        let c = holding(KvCache::rewindable(), &[1, 2, 3]);
        assert_eq!(c.reusable(&[1, 2, 3]), 2);
        assert_eq!(c.reusable(&[1, 2]), 1);
        assert_eq!(c.reusable(&[1]), 0);
        assert_eq!(c.reusable(&[]), 0);
        let c = holding(KvCache::append_only(), &[1, 2, 3]);
        assert_eq!(c.reusable(&[1, 2, 3]), 0, "the same ids again: start over to get the last logits");
        assert_eq!(KvCache::append_only().reusable(&[1, 2]), 0);
    }

    #[test]
    fn rewinding_an_append_only_cache_forces_a_restart() {
        let mut c = holding(KvCache::rewindable(), &[1, 2, 3, 4]);
        assert_eq!(c.rewind(2), Ok(()));
        assert_eq!(c.tokens, [1, 2]);

        let mut c = holding(KvCache::append_only(), &[1, 2, 3, 4]);
        assert_eq!(c.rewind(2), Err(MustRestart));
        assert!(c.is_empty());

        // Keeping all it holds, or nothing, it can do.
        for kept in [4, 9] {
            let mut c = holding(KvCache::append_only(), &[1, 2, 3, 4]);
            assert_eq!(c.rewind(kept), Ok(()));
            assert_eq!(c.len(), 4);
        }
        let mut c = holding(KvCache::append_only(), &[1, 2, 3, 4]);
        assert_eq!(c.rewind(0), Ok(()));
        assert!(c.is_empty());
        assert!(!c.can_rewind() && KvCache::rewindable().can_rewind());
    }
}
