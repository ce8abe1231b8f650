//! A BERT encoder forward pass for sentence embeddings, written for a small
//! CPU: one text at a time per thread, so no padding is ever computed and
//! both cores stay busy on whole texts; every matrix product is one call of
//! the `gemm` crate (the kernels candle itself uses) reading strided views
//! in place, so attention heads are never copied or transposed; layer norm,
//! softmax and GELU work in place on reused buffers.
//!
//! Measured against candle's `BertModel` on the same weights (2 threads,
//! 99 passages of ~220 tokens): see `duet bench --docs`. candle spent most
//! of its time outside the matrix products (page faults on fresh tensors,
//! element-wise passes) and kept one core busy for much of it.

use std::collections::HashMap;

/// What the encoder needs from `config.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
}

fn gelu() -> String {
    "gelu".into()
}

struct Layer {
    /// Query, key and value stacked: [3·hidden, hidden], one product for all three.
    qkv_w: Vec<f32>,
    qkv_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    ln1: (Vec<f32>, Vec<f32>),
    up_w: Vec<f32>,
    up_b: Vec<f32>,
    down_w: Vec<f32>,
    down_b: Vec<f32>,
    ln2: (Vec<f32>, Vec<f32>),
}

pub struct Bert {
    pub config: BertConfig,
    words: Vec<f32>,
    positions: Vec<f32>,
    /// Token type 0 (a single text is all type 0).
    type0: Vec<f32>,
    ln0: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
}

/// Buffers one thread reuses from text to text.
#[derive(Default)]
pub struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    tmp: Vec<f32>,
    scores: Vec<f32>,
    up: Vec<f32>,
}

impl Bert {
    /// Build from the tensors of a safetensors file (names as Hugging Face
    /// writes them, with or without a `bert.` prefix).
    pub fn from_tensors(config: BertConfig, mut t: HashMap<String, Vec<f32>>) -> Result<Self, String> {
        if config.hidden_act != "gelu" {
            return Err(format!("activation {} is not supported (only gelu)", config.hidden_act));
        }
        if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err("hidden size is not a multiple of the head count".into());
        }
        let h = config.hidden_size;
        let mut raw = |name: &str| -> Result<Vec<f32>, String> {
            t.remove(name)
                .or_else(|| t.remove(&format!("bert.{name}")))
                .ok_or_else(|| format!("tensor {name} is missing"))
        };
        // The vocabulary size is whatever the table holds.
        let words = raw("embeddings.word_embeddings.weight")?;
        if words.is_empty() || words.len() % h != 0 {
            return Err("the word embedding table does not match the hidden size".into());
        }
        let types = raw("embeddings.token_type_embeddings.weight")?;
        if types.len() < h {
            return Err("the token type table is too small".into());
        }
        let type0 = types[..h].to_vec();
        let mut take = |name: &str, len: usize| -> Result<Vec<f32>, String> {
            let v = raw(name)?;
            if v.len() != len {
                return Err(format!("tensor {name} has {} values, expected {len}", v.len()));
            }
            Ok(v)
        };
        let positions = take("embeddings.position_embeddings.weight", config.max_position_embeddings * h)?;
        let ln0 = (take("embeddings.LayerNorm.weight", h)?, take("embeddings.LayerNorm.bias", h)?);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        let i_size = config.intermediate_size;
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let mut qkv_w = take(&format!("{p}.attention.self.query.weight"), h * h)?;
            qkv_w.extend(take(&format!("{p}.attention.self.key.weight"), h * h)?);
            qkv_w.extend(take(&format!("{p}.attention.self.value.weight"), h * h)?);
            let mut qkv_b = take(&format!("{p}.attention.self.query.bias"), h)?;
            qkv_b.extend(take(&format!("{p}.attention.self.key.bias"), h)?);
            qkv_b.extend(take(&format!("{p}.attention.self.value.bias"), h)?);
            layers.push(Layer {
                qkv_w,
                qkv_b,
                out_w: take(&format!("{p}.attention.output.dense.weight"), h * h)?,
                out_b: take(&format!("{p}.attention.output.dense.bias"), h)?,
                ln1: (
                    take(&format!("{p}.attention.output.LayerNorm.weight"), h)?,
                    take(&format!("{p}.attention.output.LayerNorm.bias"), h)?,
                ),
                up_w: take(&format!("{p}.intermediate.dense.weight"), i_size * h)?,
                up_b: take(&format!("{p}.intermediate.dense.bias"), i_size)?,
                down_w: take(&format!("{p}.output.dense.weight"), h * i_size)?,
                down_b: take(&format!("{p}.output.dense.bias"), h)?,
                ln2: (
                    take(&format!("{p}.output.LayerNorm.weight"), h)?,
                    take(&format!("{p}.output.LayerNorm.bias"), h)?,
                ),
            });
        }
        Ok(Bert { config, words, positions, type0, ln0, layers })
    }

    pub fn vocab_size(&self) -> usize {
        self.words.len() / self.config.hidden_size
    }

    /// The last hidden state of every token of several texts, packed one
    /// after another into one matrix and left in `s.x`. Ids must be below
    /// [`Bert::vocab_size`]; a text longer than the position table is cut.
    /// Packing matters: every layer's products run over all their tokens
    /// together (short texts alone make matrices too thin to be fast), while
    /// attention stays within each text. The result is the texts' hidden
    /// states in order, each `len × hidden`, with no padding anywhere.
    pub fn forward_packed<'s>(&self, texts: &[&[u32]], s: &'s mut Scratch) -> &'s [f32] {
        let c = &self.config;
        let (h, heads) = (c.hidden_size, c.num_attention_heads);
        let dh = h / heads;
        let eps = c.layer_norm_eps as f32;
        s.x.clear();
        let mut segments = Vec::with_capacity(texts.len());
        for ids in texts {
            let len = ids.len().min(c.max_position_embeddings);
            segments.push((s.x.len() / h, len));
            for (pos, &id) in ids.iter().take(len).enumerate() {
                let id = (id as usize).min(self.vocab_size() - 1);
                let w = &self.words[id * h..(id + 1) * h];
                let p = &self.positions[pos * h..(pos + 1) * h];
                s.x.extend(w.iter().zip(p).zip(&self.type0).map(|((a, b), t)| a + b + t));
            }
        }
        let n = s.x.len() / h;
        layer_norm(&mut s.x, h, &self.ln0, eps);
        let scale = 1.0 / (dh as f32).sqrt();
        for layer in &self.layers {
            linear(&mut s.qkv, &s.x, n, h, &layer.qkv_w, &layer.qkv_b);
            let q3 = 3 * h;
            s.ctx.resize(n * h, 0.0);
            for &(start, len) in segments.iter().filter(|(_, len)| *len > 0) {
                s.scores.resize(len * len, 0.0);
                let qkv = &s.qkv[start * q3..];
                let ctx = &mut s.ctx[start * h..];
                for head in 0..heads {
                    let q = head * dh;
                    let k = h + head * dh;
                    let v = 2 * h + head * dh;
                    // scores = Q_h · K_hᵀ, read in place from the stacked qkv rows.
                    matmul(&mut s.scores, (len, 1), (&qkv[q..], q3, 1), (&qkv[k..], 1, q3), (len, len, dh));
                    for row in s.scores.chunks_exact_mut(len) {
                        softmax(row, scale);
                    }
                    // ctx_h = P · V_h, written into the head's columns.
                    matmul(&mut ctx[head * dh..], (h, 1), (&s.scores, len, 1), (&qkv[v..], q3, 1), (len, dh, len));
                }
            }
            linear(&mut s.tmp, &s.ctx, n, h, &layer.out_w, &layer.out_b);
            add_in_place(&mut s.x, &s.tmp);
            layer_norm(&mut s.x, h, &layer.ln1, eps);
            linear(&mut s.up, &s.x, n, h, &layer.up_w, &layer.up_b);
            s.up.iter_mut().for_each(|v| *v = gelu_erf(*v));
            linear(&mut s.tmp, &s.up, n, c.intermediate_size, &layer.down_w, &layer.down_b);
            add_in_place(&mut s.x, &s.tmp);
            layer_norm(&mut s.x, h, &layer.ln2, eps);
        }
        &s.x
    }
}

/// `out[n × o] = x[n × i] · wᵀ + b`, with `w` stored [o × i] as in the file.
fn linear(out: &mut Vec<f32>, x: &[f32], n: usize, i: usize, w: &[f32], b: &[f32]) {
    let o = b.len();
    out.clear();
    for _ in 0..n {
        out.extend_from_slice(b);
    }
    // wᵀ viewed in place: element (k, j) of the [i × o] operand is w[j·i + k].
    matmul_acc(out, (o, 1), (x, i, 1), (w, 1, i), (n, o, i), true);
}

/// `dst = a · b` for strided views: each operand is (data, row stride,
/// column stride), `dims` is (m, n, k); `dst` is (row stride, column stride).
fn matmul(
    dst: &mut [f32],
    dst_strides: (usize, usize),
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    dims: (usize, usize, usize),
) {
    matmul_acc(dst, dst_strides, a, b, dims, false);
}

/// As [`matmul`]; with `accumulate`, `dst += a · b`.
fn matmul_acc(
    dst: &mut [f32],
    (d_rs, d_cs): (usize, usize),
    (a, a_rs, a_cs): (&[f32], usize, usize),
    (b, b_rs, b_cs): (&[f32], usize, usize),
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // Every element the product touches lies inside its slice: checked here,
    // once, so the unchecked kernel below never reads or writes outside.
    let last = |rows: usize, rs: usize, cols: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(last(m, d_rs, n, d_cs) < dst.len(), "matmul: destination too small");
    assert!(last(m, a_rs, k, a_cs) < a.len(), "matmul: left operand too small");
    assert!(last(k, b_rs, n, b_cs) < b.len(), "matmul: right operand too small");
    // SAFETY: the bounds of all three views were checked above; `dst` is a
    // unique borrow and does not overlap `a` or `b` (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            d_cs as isize,
            d_rs as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// Per row of width `h`: (x - mean) / sqrt(var + eps) · weight + bias.
fn layer_norm(x: &mut [f32], h: usize, (weight, bias): &(Vec<f32>, Vec<f32>), eps: f32) {
    for row in x.chunks_exact_mut(h) {
        let mean = row.iter().sum::<f32>() / h as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(weight).zip(bias) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

/// softmax(row · scale), in place.
fn softmax(row: &mut [f32], scale: f32) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * scale;
    row.iter_mut().for_each(|v| *v = exp_nonpositive(*v * scale - max));
    let inv = 1.0 / row.iter().sum::<f32>();
    row.iter_mut().for_each(|v| *v *= inv);
}

/// e^x for x ≤ 0 (softmax after subtracting the maximum), to within a few
/// units in the last place: 2^n · p(r) with r = x - n·ln2 in [-ln2/2, ln2/2]
/// and a degree-6 Taylor polynomial. Branch-free and call-free, so the loop
/// above vectorizes; the libm call it replaces was a tenth of all the time.
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    // Round to nearest by the 1.5·2^23 trick: `round()` is a libm call on baseline x86-64.
    const MAGIC: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    // ln 2 in two parts (Cody and Waite), so r keeps its low bits for large n.
    let r = (x - n * 0.693_359_4) + n * 2.121_944_4e-4;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n built in the exponent bits (n ≥ -126 since x ≥ -87).
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// GELU as BERT defines it: x · Φ(x) = x/2 · (1 + erf(x/√2)).
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf(x) as a rational function of x² (the approximation Eigen and XLA
/// use for float32, accurate to about 1e-7), no calls or branches, so the
/// GELU loop vectorizes; libm's erff was an eighth of all the time.
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = x
        * (-1.609_603_3e-2
            + x2 * (-2.954_6e-3
                + x2 * (-7.349_906e-4
                    + x2 * (-5.692_506_4e-5 + x2 * (-2.101_024e-6 + x2 * (2.770_681_4e-8 + x2 * -2.726_142_3e-10))))));
    let q = -1.426_474e-2 + x2 * (-7.373_329e-3 + x2 * (-1.682_827e-3 + x2 * (-2.133_740_6e-4 + x2 * -1.456_607_2e-5)));
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_products_match_the_schoolbook_ones() {
        // a [2×3], b [3×2] given transposed ([2×3] read with swapped strides).
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bt = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
        let mut out = vec![0.0; 4];
        matmul(&mut out, (2, 1), (&a, 3, 1), (&bt, 1, 3), (2, 2, 3));
        assert_eq!(out, vec![50.0, 68.0, 122.0, 167.0]);
        let mut y = Vec::new();
        linear(&mut y, &a, 2, 3, &bt, &[1.0, -1.0]);
        assert_eq!(y, vec![51.0, 67.0, 123.0, 166.0]);
    }

    #[test]
    fn softmax_and_layer_norm_are_the_textbook_ones() {
        let mut row = [1.0, 2.0, 3.0];
        softmax(&mut row, 1.0);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6 && row[2] > row[1]);
        let mut x = [1.0, 3.0];
        layer_norm(&mut x, 2, &(vec![1.0, 1.0], vec![0.0, 0.5]), 0.0);
        assert!((x[0] + 1.0).abs() < 1e-6 && (x[1] - 1.5).abs() < 1e-6, "{x:?}");
        assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
    }

    #[test]
    fn the_fast_exp_and_erf_agree_with_libm() {
        let (mut worst_exp, mut worst_erf) = (0.0_f32, 0.0_f32);
        for i in 0..=20_000 {
            let x = -20.0 + i as f32 * 0.002;
            let want = x.exp();
            worst_exp = worst_exp.max((exp_nonpositive(x) - want).abs() / want);
            let y = -6.0 + i as f32 * 0.0006;
            worst_erf = worst_erf.max((erf(y) - libm::erff(y)).abs());
        }
        assert!(worst_exp < 1e-6, "exp relative error {worst_exp}");
        assert!(worst_erf < 1e-6, "erf absolute error {worst_erf}");
        assert_eq!(exp_nonpositive(-200.0).min(1e-30), exp_nonpositive(-200.0), "tiny, not garbage");
    }
}
