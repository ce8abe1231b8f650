//! SetFit's contrastive step: fine-tune the sentence embedder so that texts
//! with the same label land closer together and texts with different labels
//! further apart, before the head is taught again on the new vectors.
//!
//! Pairs are drawn from the taught rows only (never the held-out ones), half
//! with the same label (target cosine 1) and half with different labels
//! (target 0); the loss is the squared error of the pair's cosine, as in
//! sentence-transformers' CosineSimilarityLoss that SetFit uses. The number
//! of pairs is bounded, so the time is bounded whatever the file's size.
//!
//! This runs a differentiable BERT in candle operations (batched, with
//! padding) rather than duet's inference forward pass in `embed::bert`; the
//! weights it returns are read back by that forward pass under the same names.

use super::data::{Examples, Rng, Split};
use super::{Base, TeachError};
use crate::progress::{Cancel, Progress};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};

/// How the body is fine-tuned. The defaults were chosen on the product-review
/// set's own held-out rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BodyOptions {
    /// Pairs seen (one epoch over them).
    pub pairs: usize,
    /// Pairs per step.
    pub batch: usize,
    pub learning_rate: f64,
    /// Texts are cut to this many tokens while fine-tuning (reviews are short; time grows with length).
    pub max_tokens: usize,
}

impl Default for BodyOptions {
    fn default() -> Self {
        BodyOptions { pairs: 2000, batch: 16, learning_rate: 2e-5, max_tokens: 64 }
    }
}

/// The fine-tuned weights: (name, shape, values), named as in the base model's file.
pub type Weights = Vec<(String, Vec<usize>, Vec<f32>)>;

/// The weights as the embedder reads them (name → values).
pub fn by_name(weights: &Weights) -> std::collections::HashMap<String, Vec<f32>> {
    weights.iter().map(|(n, _, v)| (n.clone(), v.clone())).collect()
}

#[allow(clippy::too_many_arguments)]
pub fn fine_tune(
    base: &Base,
    examples: &Examples,
    split: &Split,
    options: &BodyOptions,
    seed: u64,
    progress: &dyn Progress,
    cancel: &Cancel,
    on_step: &mut dyn FnMut(usize, usize, f32),
) -> Result<Weights, TeachError> {
    let device = Device::Cpu;
    let fail = |why: String| {
        TeachError::Embed(crate::embed::EmbedError::Load {
            id: base.entry.id.clone(),
            path: base.dir.display().to_string(),
            why,
        })
    };
    let config_text = std::fs::read_to_string(base.dir.join("config.json")).map_err(|e| fail(e.to_string()))?;
    let config: Config = serde_json::from_str(&config_text).map_err(|e| fail(e.to_string()))?;
    let weights = candle_core::safetensors::load(base.dir.join("model.safetensors"), &device)?;
    let model = Trainable::new(&config, weights).map_err(|e| fail(e.to_string()))?;

    let pairs = draw_pairs(examples, &split.train, options.pairs, seed);
    let steps = pairs.len().div_ceil(options.batch.max(1));
    let params = ParamsAdamW { lr: options.learning_rate, weight_decay: 0.01, ..Default::default() };
    let learned = model.vars.iter().filter(|(n, _)| n != WORDS).map(|(_, v)| v.clone()).collect();
    let mut opt = AdamW::new(learned, params)?;
    progress.begin_items("fine-tuning the body", steps as u64, "step");
    let ids: Vec<Vec<u32>> = examples.texts.iter().map(|t| base.embedder.token_ids(t, options.max_tokens)).collect();
    for (step, batch) in pairs.chunks(options.batch.max(1)).enumerate() {
        if cancel.is_cancelled() {
            return Err(TeachError::Cancelled);
        }
        // Warm up over the first tenth of the steps, then decay linearly (as sentence-transformers does).
        let warm = (steps / 10).max(1);
        let scale = if step < warm {
            (step + 1) as f64 / warm as f64
        } else {
            (steps - step) as f64 / (steps - warm).max(1) as f64
        };
        opt.set_learning_rate(options.learning_rate * scale);
        let texts: Vec<&[u32]> = batch.iter().flat_map(|p| [ids[p.0].as_slice(), ids[p.1].as_slice()]).collect();
        let vectors = embed_batch(&model, &texts, &device)?;
        let n = batch.len();
        let u = vectors.reshape((n, 2, ()))?;
        let cos = (u.narrow(1, 0, 1)?.squeeze(1)? * u.narrow(1, 1, 1)?.squeeze(1)?)?.sum(D::Minus1)?;
        let target = Tensor::from_vec(batch.iter().map(|p| p.2).collect::<Vec<f32>>(), n, &device)?;
        let loss = (cos - target)?.sqr()?.mean_all()?;
        opt.backward_step(&loss)?;
        progress.set_position(step as u64 + 1);
        on_step(step + 1, steps, loss.to_scalar::<f32>()?);
    }
    progress.finish();
    let mut out: Weights = Vec::new();
    for (name, var) in &model.vars {
        let t = var.as_tensor();
        out.push((name.clone(), t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The word-embedding table, kept as it came (see `Trainable::forward`).
const WORDS: &str = "embeddings.word_embeddings.weight";

/// What the trainable encoder needs from `config.json`.
#[derive(serde::Deserialize)]
struct Config {
    num_attention_heads: usize,
    layer_norm_eps: f64,
}

/// BERT written out in candle operations that all have gradients. (candle's
/// own BertModel normalises with a fused layer norm that has none, so
/// nothing before it learns.) Every weight is a `Var`, kept with its name.
struct Trainable {
    vars: Vec<(String, Var)>,
    heads: usize,
    eps: f64,
    layers: usize,
}

impl Trainable {
    fn new(config: &Config, mut weights: std::collections::HashMap<String, Tensor>) -> Result<Self, String> {
        let names: Vec<String> = weights.keys().filter(|n| *n != "embeddings.position_ids").cloned().collect();
        let layers =
            (0..).take_while(|i| weights.contains_key(&format!("encoder.layer.{i}.output.dense.weight"))).count();
        let mut vars = Vec::new();
        for name in names {
            let t = weights.remove(&name).ok_or("missing")?.to_dtype(DType::F32).map_err(|e| e.to_string())?;
            vars.push((name, Var::from_tensor(&t).map_err(|e| e.to_string())?));
        }
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let model = Trainable { vars, heads: config.num_attention_heads, eps: config.layer_norm_eps, layers };
        model.get(WORDS).map_err(|e| e.to_string())?;
        Ok(model)
    }

    fn get(&self, name: &str) -> candle_core::Result<&Tensor> {
        let i = self.vars.binary_search_by(|(n, _)| n.as_str().cmp(name));
        i.map(|i| self.vars[i].1.as_tensor()).map_err(|_| candle_core::Error::Msg(format!("tensor {name} is missing")))
    }

    fn linear(&self, x: &Tensor, name: &str) -> candle_core::Result<Tensor> {
        let w = self.get(&format!("{name}.weight"))?;
        x.broadcast_matmul(&w.t()?)?.broadcast_add(self.get(&format!("{name}.bias"))?)
    }

    fn norm(&self, x: &Tensor, name: &str) -> candle_core::Result<Tensor> {
        let (w, b) = (self.get(&format!("{name}.weight"))?, self.get(&format!("{name}.bias"))?);
        candle_nn::ops::layer_norm_slow(x, w, b, self.eps as f32)
    }

    /// Last hidden states `[batch, tokens, hidden]`; `mask` is 1 for real tokens.
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        // Not learned: its gradient would be a dense copy of the whole table
        // at every step (most of the step's time and memory on a CPU), for
        // the few hundred rows a batch touches.
        let words = self.get(WORDS)?.detach();
        let h = words.dim(1)?;
        let dh = h / self.heads;
        let x = words.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, h))?;
        let x = x.broadcast_add(&self.get("embeddings.position_embeddings.weight")?.narrow(0, 0, t)?)?;
        let x = x.broadcast_add(&self.get("embeddings.token_type_embeddings.weight")?.narrow(0, 0, 1)?)?;
        let mut x = self.norm(&x, "embeddings.LayerNorm")?;
        // Padding gets a large negative score, so no real token attends to it.
        let blocked = ((mask.ones_like()? - mask)? * -1e4)?.reshape((b, 1, 1, t))?;
        let split = |y: Tensor| y.reshape((b, t, self.heads, dh))?.transpose(1, 2)?.contiguous();
        for i in 0..self.layers {
            let p = format!("encoder.layer.{i}");
            let q = split(self.linear(&x, &format!("{p}.attention.self.query"))?)?;
            let k = split(self.linear(&x, &format!("{p}.attention.self.key"))?)?;
            let v = split(self.linear(&x, &format!("{p}.attention.self.value"))?)?;
            let scores = (q.matmul(&k.t()?.contiguous()?)? / (dh as f64).sqrt())?.broadcast_add(&blocked)?;
            let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
            let attended = self.linear(&ctx, &format!("{p}.attention.output.dense"))?;
            x = self.norm(&(x + attended)?, &format!("{p}.attention.output.LayerNorm"))?;
            let up = self.linear(&x, &format!("{p}.intermediate.dense"))?.gelu_erf()?;
            let down = self.linear(&up, &format!("{p}.output.dense"))?;
            x = self.norm(&(x + down)?, &format!("{p}.output.LayerNorm"))?;
        }
        Ok(x)
    }
}

/// Unit-length mean-pooled vectors of a padded batch (what `embed` computes for one text).
fn embed_batch(model: &Trainable, texts: &[&[u32]], device: &Device) -> candle_core::Result<Tensor> {
    let longest = texts.iter().map(|t| t.len()).max().unwrap_or(1);
    let mut ids = Vec::with_capacity(texts.len() * longest);
    let mut mask = Vec::with_capacity(texts.len() * longest);
    for t in texts {
        ids.extend_from_slice(t);
        ids.extend(std::iter::repeat_n(0u32, longest - t.len()));
        mask.extend(std::iter::repeat_n(1f32, t.len()));
        mask.extend(std::iter::repeat_n(0f32, longest - t.len()));
    }
    let ids = Tensor::from_vec(ids, (texts.len(), longest), device)?;
    let mask = Tensor::from_vec(mask, (texts.len(), longest), device)?;
    let hidden = model.forward(&ids, &mask)?;
    let summed = hidden.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
    let mean = summed.broadcast_div(&mask.sum_keepdim(1)?)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
    mean.broadcast_div(&norm)
}

/// `count` pairs of taught rows, half same-label (target 1) and half
/// different-label (target 0), in a seeded random order.
fn draw_pairs(examples: &Examples, train: &[usize], count: usize, seed: u64) -> Vec<(usize, usize, f32)> {
    let mut rng = Rng::new(seed ^ 0x5e7f);
    let by_label: Vec<Vec<usize>> = (0..examples.labels.len())
        .map(|l| train.iter().copied().filter(|&i| examples.targets[i] == l).collect())
        .collect();
    let usable: Vec<usize> = (0..by_label.len()).filter(|&l| by_label[l].len() >= 2).collect();
    let mut pairs = Vec::with_capacity(count);
    for k in 0..count {
        if k % 2 == 0 && !usable.is_empty() {
            let group = &by_label[usable[rng.below(usable.len())]];
            let a = rng.below(group.len());
            let b = (a + 1 + rng.below(group.len() - 1)) % group.len();
            pairs.push((group[a], group[b], 1.0));
        } else {
            let a = train[rng.below(train.len())];
            let others: Vec<usize> =
                (0..by_label.len()).filter(|&l| l != examples.targets[a] && !by_label[l].is_empty()).collect();
            if others.is_empty() {
                continue;
            }
            let group = &by_label[others[rng.below(others.len())]];
            pairs.push((a, group[rng.below(group.len())], 0.0));
        }
    }
    rng.shuffle(&mut pairs);
    pairs
}
