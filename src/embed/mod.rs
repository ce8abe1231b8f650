//! Sentence embeddings: a text in, one unit-length vector out, so that the
//! dot product of two vectors says how close their meanings are. Used by
//! Documents to find passages by meaning as well as by words.
//!
//! The model is a BERT encoder (all-MiniLM-L6-v2 by default) run by duet's
//! own forward pass (`bert`). The output must match sentence-transformers, which every other tool uses
//! with these weights: truncate to the model's sequence limit, pool the last
//! hidden states (the mean over real tokens, or the first token for models
//! trained that way), then L2-normalise. `tests/it/embed.rs` checks the
//! vectors against sentence-transformers' own.
//!
//! Nothing here touches the database or the network.

mod bert;

use crate::catalog::{ModelEntry, Pooling};
use bert::{Bert, BertConfig, Scratch};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokenizers::{Tokenizer, TruncationParams};

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("could not load the embedding model from {path}: {why}. Fetch it again: duet models pull {id}")]
    Load { id: String, path: String, why: String },
    #[error("could not split the text into tokens: {0}")]
    Tokenize(String),
}

pub struct Embedder {
    model: Bert,
    tokenizer: Tokenizer,
    pooling: Pooling,
    /// The catalog id: stored with every vector, so vectors of two models never mix.
    pub model_id: String,
    pub dim: usize,
}

impl Embedder {
    /// Load `entry` (an embedding model of the catalog) from its folder `dir`.
    pub fn load(entry: &ModelEntry, dir: &Path) -> Result<Self, EmbedError> {
        let fail = |why: String| EmbedError::Load { id: entry.id.clone(), path: dir.display().to_string(), why };
        let bytes = std::fs::read(dir.join("model.safetensors")).map_err(|e| fail(e.to_string()))?;
        let tensors = read_tensors(&bytes).map_err(|e| fail(format!("model.safetensors: {e}")))?;
        Self::load_with(entry, dir, tensors)
    }

    /// Load `entry`'s configuration and tokenizer from `dir` with other
    /// weights (a body fine-tuned by Teach), named as in its model.safetensors.
    pub fn load_with(entry: &ModelEntry, dir: &Path, tensors: HashMap<String, Vec<f32>>) -> Result<Self, EmbedError> {
        let fail = |why: String| EmbedError::Load { id: entry.id.clone(), path: dir.display().to_string(), why };
        let config_text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| fail(e.to_string()))?;
        let config: BertConfig = serde_json::from_str(&config_text).map_err(|e| fail(format!("config.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| fail(e.to_string()))?;
        // The file says "truncate at 128, pad to 128"; sentence-transformers
        // truncates at the model's own limit, and one text at a time needs no padding.
        let max_tokens = (entry.context_length as usize).min(config.max_position_embeddings);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| fail(e.to_string()))?;
        tokenizer.with_padding(None);
        let dim = config.hidden_size;
        let model = Bert::from_tensors(config, tensors).map_err(|e| fail(format!("model.safetensors: {e}")))?;
        Ok(Self { model, tokenizer, pooling: entry.pooling, model_id: entry.id.clone(), dim })
    }

    /// One unit-length vector per text, in the order given. `done(n)` is
    /// called as texts finish with the number finished so far.
    ///
    /// Texts are sorted longest first and packed, a few hundred tokens at a
    /// time, into one forward pass each ([`Bert::forward_packed`]); each
    /// thread takes the next pack, so the threads finish together and no
    /// text waits on another's padding.
    pub fn embed(&self, texts: &[&str], done: &mut dyn FnMut(usize)) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
        let packs = pack(&order, |i| encodings[i].get_ids().len());
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(packs.len()).max(1);
        let next = AtomicUsize::new(0);
        let (tx, rx) = std::sync::mpsc::channel::<Vec<(usize, Vec<f32>)>>();
        let mut out = vec![Vec::new(); texts.len()];
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let (tx, next, packs, encodings) = (tx.clone(), &next, &packs, &encodings);
                scope.spawn(move || {
                    let mut scratch = Scratch::default();
                    while let Some(pack) = packs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let ids: Vec<&[u32]> = pack.iter().map(|&i| encodings[i].get_ids()).collect();
                        let hidden = self.model.forward_packed(&ids, &mut scratch);
                        let mut row = 0;
                        let mut vectors = Vec::with_capacity(pack.len());
                        for (&i, t) in pack.iter().zip(&ids) {
                            let len = t.len().min(self.model.config.max_position_embeddings);
                            vectors.push((i, self.pool(&hidden[row * self.dim..(row + len) * self.dim])));
                            row += len;
                        }
                        if tx.send(vectors).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut finished = 0;
            for vectors in rx.iter() {
                finished += vectors.len();
                for (i, v) in vectors {
                    out[i] = v;
                }
                done(finished);
            }
        });
        Ok(out)
    }

    /// The tokens the model reads of `text` (after truncation).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode(text, true).map(|e| e.get_ids().len()).unwrap_or(0)
    }

    /// The token ids the model reads of `text`, cut to `max` (keeping the
    /// closing separator, as truncation does).
    pub fn token_ids(&self, text: &str, max: usize) -> Vec<u32> {
        let mut ids = self.tokenizer.encode(text, true).map(|e| e.get_ids().to_vec()).unwrap_or_default();
        if ids.len() > max.max(2) {
            let last = ids[ids.len() - 1];
            ids.truncate(max.max(2) - 1);
            ids.push(last);
        }
        ids
    }

    /// One vector for one text (a question).
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self.embed(&[text], &mut |_| {})?.pop().unwrap_or_default())
    }

    /// The hidden states of a text's tokens as one unit vector.
    fn pool(&self, hidden: &[f32]) -> Vec<f32> {
        let h = self.dim;
        let rows = (hidden.len() / h).max(1);
        let mut v = vec![0.0_f32; h];
        match self.pooling {
            Pooling::Cls => v.copy_from_slice(&hidden[..h.min(hidden.len())]),
            Pooling::Mean => {
                for row in hidden.chunks_exact(h) {
                    v.iter_mut().zip(row).for_each(|(a, b)| *a += b);
                }
                v.iter_mut().for_each(|a| *a /= rows as f32);
            }
        }
        // L2 normalisation, as sentence-transformers' Normalize (eps 1e-12).
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|a| *a /= norm);
        v
    }
}

/// Tokens per forward pass: enough rows for the products to run near full
/// speed, few enough that a pack's buffers stay small. (256, 512 and 1,024
/// measured within noise of each other on short reviews; one text at a time
/// was 2.4× slower.)
const PACK_TOKENS: usize = 512;

/// `order` cut into runs of texts whose lengths add up to about [`PACK_TOKENS`]
/// (a longer text is a pack of its own).
fn pack(order: &[usize], len: impl Fn(usize) -> usize) -> Vec<Vec<usize>> {
    let mut packs: Vec<Vec<usize>> = Vec::new();
    let mut tokens = 0;
    for &i in order {
        let n = len(i);
        match packs.last_mut() {
            Some(p) if tokens + n <= PACK_TOKENS => p.push(i),
            _ => {
                packs.push(vec![i]);
                tokens = 0;
            }
        }
        tokens += n;
    }
    packs
}

/// Every tensor of a safetensors file as f32 values.
fn read_tensors(bytes: &[u8]) -> Result<HashMap<String, Vec<f32>>, candle_core::Error> {
    let tensors = candle_core::safetensors::load_buffer(bytes, &candle_core::Device::Cpu)?;
    tensors
        .into_iter()
        .map(|(name, t)| Ok((name, t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?)))
        .collect()
}

/// The dot product; for unit vectors, the cosine similarity.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The dot product of `a` with a vector as stored (see [`to_bytes`]), read
/// in place: the search over every stored vector allocates nothing per row.
/// `None` when the blob is not `a.len()` floats.
pub fn dot_bytes(a: &[f32], bytes: &[u8]) -> Option<f32> {
    if bytes.len() != a.len() * 4 {
        return None;
    }
    Some(a.iter().zip(bytes.chunks_exact(4)).map(|(x, b)| x * f32::from_le_bytes([b[0], b[1], b[2], b[3]])).sum())
}

/// A vector as the bytes stored in the database (little-endian f32s).
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_the_database_round_trip() {
        let v = vec![0.25_f32, -1.5, 3.0e-7];
        assert_eq!(dot_bytes(&[2.0, 1.0, 0.0], &to_bytes(&v)), Some(-1.0));
        assert_eq!(dot_bytes(&[1.0], &to_bytes(&v)), None, "a blob of the wrong length is refused, not misread");
    }
}
