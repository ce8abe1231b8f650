//! The head: multinomial logistic regression from a sentence vector to the
//! labels, trained with candle's autograd and AdamW on mini-batches, with
//! the held-out rows deciding when to stop.
//!
//! Logistic regression is what SetFit puts on its body, and on unit-length
//! sentence vectors it is hard to beat: a hidden layer was tried and only
//! overfits a thousand rows (see the note in the measurements).

use super::data::Rng;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

/// A trained head: `logits = weight · v + bias`.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// `labels × dim`, row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub dim: usize,
}

impl Head {
    pub fn labels(&self) -> usize {
        self.bias.len()
    }

    /// The probability of every label for one sentence vector.
    pub fn probabilities(&self, v: &[f32]) -> Vec<f64> {
        let logits: Vec<f64> = self
            .weight
            .chunks_exact(self.dim)
            .zip(&self.bias)
            .map(|(row, b)| (crate::embed::dot(row, v) + b) as f64)
            .collect();
        crate::tasks::classify::softmax(&logits)
    }
}

/// One epoch of the learning curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Epoch {
    pub epoch: usize,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub held_out_loss: f32,
    pub held_out_accuracy: f32,
}

/// How the head learns. The defaults were chosen on the product-review set's
/// own held-out rows (never on the restaurant rows it is reported on).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadOptions {
    pub max_epochs: usize,
    /// Stop after this many epochs without a better held-out loss.
    pub patience: usize,
    pub learning_rate: f64,
    /// L2 penalty on the weights (in the loss, as in scikit-learn's C = 1/(2·n·l2)).
    pub l2: f64,
    pub batch: usize,
}

impl Default for HeadOptions {
    fn default() -> Self {
        HeadOptions { max_epochs: 100, patience: 10, learning_rate: 0.02, l2: 1e-4, batch: 32 }
    }
}

/// Vectors and their label indices.
pub struct Set<'a> {
    pub vectors: &'a [Vec<f32>],
    pub targets: &'a [usize],
}

/// The trained head, the curve, and the epoch whose weights were kept.
pub struct Trained {
    pub head: Head,
    pub curve: Vec<Epoch>,
    pub best_epoch: usize,
}

/// Train a head on `train`, keeping the weights of the epoch with the lowest
/// loss on `held_out` (all of them when there is nothing held out).
/// `on_epoch` sees each epoch as it ends and returns false to stop early.
pub fn train(
    train: &Set,
    held_out: &Set,
    labels: usize,
    options: &HeadOptions,
    seed: u64,
    on_epoch: &mut dyn FnMut(&Epoch) -> bool,
) -> candle_core::Result<Trained> {
    let device = Device::Cpu;
    let dim = train.vectors.first().map_or(0, Vec::len);
    let x = matrix(train.vectors, dim)?;
    let y = targets(train.targets)?;
    let (hx, hy) = (matrix(held_out.vectors, dim)?, targets(held_out.targets)?);
    // Zeros: the loss is convex, so the start only matters for reproducibility.
    let w = Var::zeros((dim, labels), DType::F32, &device)?;
    let b = Var::zeros(labels, DType::F32, &device)?;
    let params = ParamsAdamW { lr: options.learning_rate, weight_decay: 0.0, ..Default::default() };
    let mut opt = AdamW::new(vec![w.clone(), b.clone()], params)?;
    let mut rng = Rng::new(seed);
    let mut order: Vec<u32> = (0..train.vectors.len() as u32).collect();
    let (mut curve, mut best) = (Vec::new(), None::<(f32, usize, Tensor, Tensor)>);
    for epoch in 1..=options.max_epochs {
        rng.shuffle(&mut order);
        for batch in order.chunks(options.batch.max(1)) {
            let idx = Tensor::new(batch, &device)?;
            let (bx, by) = (x.index_select(&idx, 0)?, y.index_select(&idx, 0)?);
            let loss =
                (candle_nn::loss::cross_entropy(&logits(&bx, &w, &b)?, &by)? + (w.sqr()?.sum_all()? * options.l2)?)?;
            opt.backward_step(&loss)?;
        }
        let (train_loss, train_accuracy) = evaluate(&x, &y, &w, &b)?;
        let (held_out_loss, held_out_accuracy) =
            if held_out.vectors.is_empty() { (train_loss, train_accuracy) } else { evaluate(&hx, &hy, &w, &b)? };
        let e = Epoch { epoch, train_loss, train_accuracy, held_out_loss, held_out_accuracy };
        curve.push(e);
        if best.as_ref().is_none_or(|(loss, ..)| held_out_loss < *loss) {
            best = Some((held_out_loss, epoch, w.as_tensor().copy()?, b.as_tensor().copy()?));
        }
        let best_epoch = best.as_ref().map_or(epoch, |(_, e, ..)| *e);
        if !on_epoch(&e) || epoch - best_epoch >= options.patience {
            break;
        }
    }
    let (_, best_epoch, bw, bb) = match best {
        Some(best) => best,
        None => (0.0, 0, w.as_tensor().copy()?, b.as_tensor().copy()?),
    };
    let head = Head { weight: bw.t()?.flatten_all()?.to_vec1()?, bias: bb.to_vec1()?, dim };
    Ok(Trained { head, curve, best_epoch })
}

fn logits(x: &Tensor, w: &Var, b: &Var) -> candle_core::Result<Tensor> {
    x.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())
}

/// Mean cross-entropy and accuracy of the current weights on a whole set.
fn evaluate(x: &Tensor, y: &Tensor, w: &Var, b: &Var) -> candle_core::Result<(f32, f32)> {
    let logits = logits(x, w, b)?;
    let loss = candle_nn::loss::cross_entropy(&logits, y)?.to_scalar::<f32>()?;
    let hits = logits.argmax(D::Minus1)?.eq(y)?.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()?;
    Ok((loss, hits))
}

fn matrix(vectors: &[Vec<f32>], dim: usize) -> candle_core::Result<Tensor> {
    let flat: Vec<f32> = vectors.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (vectors.len(), dim), &Device::Cpu)
}

fn targets(targets: &[usize]) -> candle_core::Result<Tensor> {
    Tensor::from_vec(targets.iter().map(|&t| t as u32).collect::<Vec<_>>(), targets.len(), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two clusters of unit vectors (around +e0 and +e1), with a little noise.
    fn clusters(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for i in 0..n {
            let label = i % 2;
            let mut v: Vec<f32> = (0..8).map(|_| (rng.below(1000) as f32 / 1000.0 - 0.5) * 0.3).collect();
            v[label] += 1.0;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            xs.push(v.iter().map(|x| x / norm).collect());
            ys.push(label);
        }
        (xs, ys)
    }

    #[test]
    fn a_separable_set_is_learned_completely_and_the_same_seed_gives_the_same_head() {
        let (xs, ys) = clusters(60, 1);
        let (hx, hy) = clusters(20, 2);
        let run = |seed| {
            train(
                &Set { vectors: &xs, targets: &ys },
                &Set { vectors: &hx, targets: &hy },
                2,
                &HeadOptions::default(),
                seed,
                &mut |_| true,
            )
            .unwrap()
        };
        let trained = run(5);
        let last = trained.curve.last().unwrap();
        assert_eq!(last.train_accuracy, 1.0, "{:?}", trained.curve);
        assert_eq!(trained.curve[trained.best_epoch - 1].held_out_accuracy, 1.0);
        for (x, &y) in hx.iter().zip(&hy) {
            let p = trained.head.probabilities(x);
            assert!(p[y] > 0.5, "{p:?}");
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        assert_eq!(run(5).head, trained.head, "same data and seed, same weights");
    }

    #[test]
    fn stopping_from_outside_ends_after_that_epoch() {
        let (xs, ys) = clusters(20, 3);
        let set = Set { vectors: &xs, targets: &ys };
        let trained = train(&set, &set, 2, &HeadOptions::default(), 1, &mut |e| e.epoch < 3).unwrap();
        assert_eq!(trained.curve.len(), 3);
    }
}
