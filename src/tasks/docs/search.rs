//! Finding the passages for a question two ways and fusing the two lists.
//!
//! Keywords (SQLite FTS5, BM25) find the passage that uses the question's
//! words; vectors find the one that says the same thing in other words.
//! Neither is good enough alone (published retrieval scores put MiniLM and
//! BM25 level), so the lists are fused by reciprocal rank fusion: a passage
//! scores 1/(60 + rank) in each list it is in. Ranks, not scores, are added,
//! because a BM25 score and a cosine are not on one scale.
//!
//! Vectors are searched by brute force: a dot product per chunk, streamed
//! from the database with a bounded heap, so memory does not grow with the
//! index.

use super::DocError;
use crate::db::{ChunkHit, Db};
use crate::embed::{dot_bytes, Embedder};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// How far down each list fusion looks.
const CANDIDATES: usize = 50;
/// The constant of reciprocal rank fusion (Cormack et al. 2009, and what GPT4All uses).
const RRF_K: f64 = 60.0;
/// Below this cosine, a passage found only by meaning is not about the
/// question: when no keyword matches either, duet says the documents don't
/// mention it instead of handing the model unrelated text.
pub const MIN_COSINE: f32 = 0.3;

/// Which lists a search uses (all three are measured by `duet bench docs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ranking {
    Keywords,
    Vectors,
    Hybrid,
}

/// The `k` passages that best answer `question`, best first. Without an
/// embedder (not fetched, or offline) this is keyword search alone.
pub fn search(
    db: &Db,
    embedder: Option<&Embedder>,
    question: &str,
    k: usize,
    ranking: Ranking,
) -> Result<Vec<ChunkHit>, DocError> {
    let k = k.max(1);
    let keywords = || db.search_chunks(question, CANDIDATES.max(k));
    let Some(embedder) = embedder.filter(|_| ranking != Ranking::Keywords) else {
        let mut hits = keywords()?;
        hits.truncate(k);
        return Ok(hits);
    };
    let asked = embedder.embed_one(question)?;
    let by_meaning = nearest(db, &embedder.model_id, &asked, CANDIDATES.max(k))?;
    if ranking == Ranking::Vectors {
        let top: Vec<(i64, f64)> = by_meaning.iter().take(k).map(|&(id, c)| (id, c as f64)).collect();
        return Ok(db.chunks_by_id(&top)?);
    }
    let by_words = keywords()?;
    let best_cosine = by_meaning.first().map_or(0.0, |&(_, c)| c);
    if by_words.is_empty() && best_cosine < MIN_COSINE {
        return Ok(Vec::new());
    }
    let word_ids: Vec<i64> = by_words.iter().map(|h| h.chunk_id).collect();
    let meaning_ids: Vec<i64> = by_meaning.iter().map(|&(id, _)| id).collect();
    let fused = fuse(&[&word_ids, &meaning_ids], k);
    Ok(db.chunks_by_id(&fused)?)
}

/// Reciprocal rank fusion of ranked id lists: the `k` best (id, score), best
/// first; ties go to the id ranked higher in the first list.
pub fn fuse(lists: &[&[i64]], k: usize) -> Vec<(i64, f64)> {
    let mut score: HashMap<i64, (f64, usize)> = HashMap::new();
    for (li, list) in lists.iter().enumerate() {
        for (rank, &id) in list.iter().enumerate() {
            let entry = score.entry(id).or_insert((0.0, usize::MAX));
            entry.0 += 1.0 / (RRF_K + rank as f64 + 1.0);
            // The first place it was seen, for a stable tie-break.
            entry.1 = entry.1.min(li * 1_000_000 + rank);
        }
    }
    let mut all: Vec<(i64, f64, usize)> = score.into_iter().map(|(id, (s, first))| (id, s, first)).collect();
    all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal).then(a.2.cmp(&b.2)));
    all.into_iter().take(k).map(|(id, s, _)| (id, s)).collect()
}

/// A min-heap entry: the worst of the best `n` sits on top, to be pushed out.
#[derive(PartialEq)]
struct Scored(f32, i64);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and the lowest cosine must be on top.
        other.0.total_cmp(&self.0).then(other.1.cmp(&self.1))
    }
}

/// The `n` chunks whose vectors are closest to `asked`: (chunk id, cosine), best first.
pub fn nearest(db: &Db, model: &str, asked: &[f32], n: usize) -> Result<Vec<(i64, f32)>, DocError> {
    let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(n + 1);
    db.each_vector(model, &mut |id, bytes| {
        // A blob of the wrong length (a damaged row) is skipped, never misread.
        let Some(cosine) = dot_bytes(asked, bytes) else { return };
        heap.push(Scored(cosine, id));
        if heap.len() > n {
            heap.pop();
        }
    })?;
    let mut best: Vec<(i64, f32)> = heap.into_iter().map(|Scored(c, id)| (id, c)).collect();
    best.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passage_in_both_lists_beats_one_at_the_top_of_one() {
        let fused = fuse(&[&[1, 2, 3], &[4, 2, 5]], 3);
        assert_eq!(fused[0].0, 2, "second in both lists: {fused:?}");
        assert_eq!(fused[1].0, 1, "a tie goes to the first list's order");
        assert_eq!(fused[2].0, 4);
    }

    #[test]
    fn the_nearest_vectors_come_back_best_first() {
        let mut db = Db::in_memory().unwrap();
        let chunk = |t: &str| crate::db::NewChunk {
            page: 1,
            start_char: 0,
            end_char: 1,
            heading: String::new(),
            text: t.into(),
        };
        db.replace_document("/a", "h", 1, 1, "", &[chunk("a"), chunk("b"), chunk("c")]).unwrap();
        let ids: Vec<i64> = db.chunks_without_vectors("m", 10).unwrap().iter().map(|p| p.chunk_id).collect();
        let vs = [[1.0_f32, 0.0], [0.6, 0.8], [0.0, 1.0]];
        let rows: Vec<(i64, Vec<u8>)> = ids.iter().zip(vs).map(|(&id, v)| (id, crate::embed::to_bytes(&v))).collect();
        db.store_vectors("m", &rows).unwrap();
        let near = nearest(&db, "m", &[0.0, 1.0], 2).unwrap();
        assert_eq!(near.iter().map(|n| n.0).collect::<Vec<_>>(), vec![ids[2], ids[1]]);
        assert!(nearest(&db, "other", &[0.0, 1.0], 2).unwrap().is_empty(), "another model's vectors are not used");
        assert_eq!(db.count_chunks_without_vectors("m").unwrap(), 0);
        assert_eq!(db.drop_vectors_except("other").unwrap(), 3);
        assert_eq!(db.count_chunks_without_vectors("m").unwrap(), 3);
    }
}
