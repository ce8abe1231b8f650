//! Sentence embeddings: a text in, one unit-length vector out, so that the
//! dot product of two vectors says how close their meanings are. Used by
//! Documents to find passages by meaning as well as by words.
//!
//! The model is a BERT encoder (all-MiniLM-L6-v2 by default) run by candle.
//! The output must match sentence-transformers, which every other tool uses
//! with these weights: truncate to the model's sequence limit, pool the last
//! hidden states (the mean over real tokens, or the first token for models
//! trained that way), then L2-normalise. `tests/it/embed.rs` checks the
//! vectors against sentence-transformers' own.
//!
//! Nothing here touches the database or the network.

use crate::catalog::{ModelEntry, Pooling};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::Path;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("could not load the embedding model from {path}: {why}. Fetch it again: duet models pull {id}")]
    Load { id: String, path: String, why: String },
    #[error("could not split the text into tokens: {0}")]
    Tokenize(String),
    #[error("the embedding model failed: {0}")]
    Model(#[from] candle_core::Error),
}

/// Texts per forward pass. Texts are sorted by length first, so a batch pads
/// little. Measured on 99 passages of ~220 tokens, 2 threads: batch 1 took
/// 18.3 s, 4 took 14.6 s, 16 took 16.9 s (bigger batches make candle's
/// attention tensors large enough that every one is a fresh mmap).
const BATCH: usize = 4;

pub struct Embedder {
    model: BertModel,
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
        let config_text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| fail(e.to_string()))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| fail(format!("config.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| fail(e.to_string()))?;
        // The file says "truncate at 128, pad to 128"; sentence-transformers
        // truncates at the model's own limit and pads each batch to its longest text.
        let max_tokens = entry.context_length as usize;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| fail(e.to_string()))?;
        let pad_id = config.pad_token_id as u32;
        let pad_token = tokenizer.id_to_token(pad_id).unwrap_or_else(|| "[PAD]".into());
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token,
            ..Default::default()
        }));
        let weights = std::fs::read(dir.join("model.safetensors")).map_err(|e| fail(e.to_string()))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| fail(format!("model.safetensors: {e}")))?;
        let model = BertModel::load(vb, &config).map_err(|e| fail(format!("model.safetensors: {e}")))?;
        Ok(Self { model, tokenizer, pooling: entry.pooling, model_id: entry.id.clone(), dim: config.hidden_size })
    }

    /// One unit-length vector per text, in the order given. `done(n)` is
    /// called after each batch with the number of texts embedded so far.
    pub fn embed(&self, texts: &[&str], done: &mut dyn FnMut(usize)) -> Result<Vec<Vec<f32>>, EmbedError> {
        // Longest first, so the first batch shows the worst memory at once and
        // the rest pad little.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        let mut finished = 0;
        for batch in order.chunks(BATCH) {
            let inputs: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
            for (&i, v) in batch.iter().zip(self.embed_batch(&inputs)?) {
                out[i] = v;
            }
            finished += batch.len();
            done(finished);
        }
        Ok(out)
    }

    /// The tokens the model reads of `text` (after truncation).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode(text, true).map(|e| e.get_ids().len()).unwrap_or(0)
    }

    /// One vector for one text (a question).
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self.embed(&[text], &mut |_| {})?.pop().unwrap_or_default())
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        let rows = encodings.len();
        let cols = encodings.first().map_or(0, |e| e.get_ids().len());
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings.iter().flat_map(|e| f(e).iter().copied()).collect()
        };
        let device = Device::Cpu;
        let ids = Tensor::from_vec(flat(&|e| e.get_ids()), (rows, cols), &device)?;
        let types = Tensor::from_vec(flat(&|e| e.get_type_ids()), (rows, cols), &device)?;
        let mask = Tensor::from_vec(flat(&|e| e.get_attention_mask()), (rows, cols), &device)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (rows, cols, dim)
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, cols, 1)
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                // sentence-transformers clamps the count at 1e-9; a text always has [CLS] and [SEP].
                let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
                summed.broadcast_div(&counts)?
            }
        };
        // L2 normalisation, as sentence-transformers' Normalize (eps 1e-12).
        let norms = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(pooled.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
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

/// The inverse of [`to_bytes`]; `None` for a blob whose length is not `dim` floats.
pub fn from_bytes(bytes: &[u8], dim: usize) -> Option<Vec<f32>> {
    if bytes.len() != dim * 4 {
        return None;
    }
    Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_the_database_round_trip() {
        let v = vec![0.25_f32, -1.5, 3.0e-7];
        assert_eq!(from_bytes(&to_bytes(&v), 3), Some(v));
        assert_eq!(from_bytes(&[0, 0, 0], 1), None, "a short blob is refused, not misread");
        assert_eq!(dot_bytes(&[2.0, 1.0, 0.0], &to_bytes(&v)), Some(-1.0));
        assert_eq!(dot_bytes(&[1.0], &to_bytes(&v)), None);
    }
}
