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
//! This runs candle's own BERT (differentiable, batched with padding) rather
//! than duet's inference forward pass in `embed::bert`; the weights it
//! returns are read back by that forward pass under the same names.

use super::data::{Examples, Rng, Split};
use super::{Base, TeachError};
use crate::progress::{Cancel, Progress};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config};

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
    let fail = |why: String| TeachError::Embed(crate::embed::EmbedError::Load {
        id: base.entry.id.clone(),
        path: base.dir.display().to_string(),
        why,
    });
    let config_text = std::fs::read_to_string(base.dir.join("config.json")).map_err(|e| fail(e.to_string()))?;
    let config: Config = serde_json::from_str(&config_text).map_err(|e| fail(e.to_string()))?;
    let mut varmap = VarMap::new();
    let model = BertModel::load(VarBuilder::from_varmap(&varmap, DType::F32, &device), &config)?;
    varmap.load(base.dir.join("model.safetensors"))?;

    let pairs = draw_pairs(examples, &split.train, options.pairs, seed);
    let steps = pairs.len().div_ceil(options.batch.max(1));
    let params = ParamsAdamW { lr: options.learning_rate, weight_decay: 0.01, ..Default::default() };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    progress.begin_items("fine-tuning the body", steps as u64, "step");
    let ids: Vec<Vec<u32>> = examples.texts.iter().map(|t| base.embedder.token_ids(t, options.max_tokens)).collect();
    for (step, batch) in pairs.chunks(options.batch.max(1)).enumerate() {
        if cancel.is_cancelled() {
            return Err(TeachError::Cancelled);
        }
        // Warm up over the first tenth of the steps, then decay linearly (as sentence-transformers does).
        let warm = (steps / 10).max(1);
        let scale = if step < warm { (step + 1) as f64 / warm as f64 } else { (steps - step) as f64 / (steps - warm).max(1) as f64 };
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
    let vars = varmap.data().lock().map_err(|_| TeachError::Math("the weights' lock was poisoned".into()))?;
    let mut out: Weights = Vec::new();
    for (name, var) in vars.iter() {
        let t = var.as_tensor();
        out.push((name.clone(), t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Unit-length mean-pooled vectors of a padded batch (what `embed` computes for one text).
fn embed_batch(model: &BertModel, texts: &[&[u32]], device: &Device) -> candle_core::Result<Tensor> {
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
    let hidden = model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
    let summed = hidden.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
    let mean = summed.broadcast_div(&mask.sum_keepdim(1)?)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
    mean.broadcast_div(&norm)
}

/// `count` pairs of taught rows, half same-label (target 1) and half
/// different-label (target 0), in a seeded random order.
fn draw_pairs(examples: &Examples, train: &[usize], count: usize, seed: u64) -> Vec<(usize, usize, f32)> {
    let mut rng = Rng::new(seed ^ 0x5e7f);
    let by_label: Vec<Vec<usize>> =
        (0..examples.labels.len()).map(|l| train.iter().copied().filter(|&i| examples.targets[i] == l).collect()).collect();
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
            let others: Vec<usize> = (0..by_label.len()).filter(|&l| l != examples.targets[a] && !by_label[l].is_empty()).collect();
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
