//! The decoder's steps outside the weight products' inner loops: products
//! split across the thread pool, RMSNorm, RoPE in both element orders, and
//! causal attention (whole or over a sliding window) on the f32 KV cache.

use super::arch::{Config, RopeStyle};
use crate::engine::local::kernels::pool::{Pool, SharedMut};
use crate::engine::local::kernels::{kernels, QActs, QMatrix};

/// out[t][r] = W[r] · a[t], rows split across the pool.
pub fn matmul(pool: &Pool, w: &QMatrix, a: &QActs, out: &mut Vec<f32>) {
    matmul_many(pool, &mut [(w, out)], a);
}

/// Several products of the same activations (q, k, v; gate, up) in one pass
/// of the pool: each thread takes its share of every matrix's rows, so a
/// decode step waits at one barrier instead of one per matrix.
pub fn matmul_many(pool: &Pool, jobs: &mut [(&QMatrix, &mut Vec<f32>)], a: &QActs) {
    let t = a.t;
    let k = kernels();
    let shared: Vec<(&QMatrix, SharedMut<f32>)> = jobs
        .iter_mut()
        .map(|(w, out)| {
            out.resize(t * w.rows, 0.0);
            (*w, SharedMut::new(out))
        })
        .collect();
    pool.run(|i, n| {
        for (w, out) in &shared {
            let rows = w.rows;
            let r = Pool::chunk(rows, i, n);
            if r.is_empty() {
                continue;
            }
            let mut t0 = 0;
            while t0 < t {
                let nt = (t - t0).min(4);
                // SAFETY: thread i writes only its own rows of each token's output.
                let mut outs: Vec<&mut [f32]> =
                    (t0..t0 + nt).map(|ti| unsafe { out.slice(ti * rows + r.start..ti * rows + r.end) }).collect();
                if nt == 1 {
                    (k.dot_rows)(w, r.start, a, t0, outs[0]);
                } else {
                    (k.dot_rows_n)(w, r.start, a, t0, &mut outs);
                }
                t0 += nt;
            }
        }
    });
}

/// out = RMSNorm of each `w.len()`-wide row of x, times w.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut Vec<f32>) {
    out.resize(x.len(), 0.0);
    let e = w.len();
    for (row, o) in x.chunks_exact(e).zip(out.chunks_exact_mut(e)) {
        let inv = inv_rms(row, eps);
        for ((o, v), g) in o.iter_mut().zip(row).zip(w) {
            *o = v * inv * g;
        }
    }
}

/// RMSNorm in place, each `w.len()`-wide row (Gemma's per-head q/k norms).
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(w.len()) {
        let inv = inv_rms(row, eps);
        for (v, g) in row.iter_mut().zip(w) {
            *v *= inv * g;
        }
    }
}

fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let ms = (kernels().dot_f32)(row, row) / row.len() as f32;
    1.0 / (ms + eps).sqrt()
}

/// Cosines and sines of every position's angles for one RoPE base.
pub struct RopeTable {
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    half: usize,
}

impl RopeTable {
    /// `factors` divide each frequency (Llama 3); `linear` divides positions.
    pub fn new(ctx: usize, head_dim: usize, base: f32, factors: &[f32], linear: f32) -> Self {
        let half = head_dim / 2;
        let mut cos = vec![0f32; ctx * half];
        let mut sin = vec![0f32; ctx * half];
        for pos in 0..ctx {
            for i in 0..half {
                let freq = base.powf(-(2.0 * i as f32) / head_dim as f32) / factors[i];
                let angle = pos as f32 / linear * freq;
                cos[pos * half + i] = angle.cos();
                sin[pos * half + i] = angle.sin();
            }
        }
        RopeTable { cos, sin, half }
    }

    /// Rotate every head of `x` (a whole number of heads) at position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize, style: RopeStyle) {
        let (cos, sin) = (&self.cos[pos * self.half..][..self.half], &self.sin[pos * self.half..][..self.half]);
        for h in x.chunks_exact_mut(head_dim) {
            match style {
                RopeStyle::Pairs => {
                    for (i, pair) in h.chunks_exact_mut(2).enumerate() {
                        let (a, b) = (pair[0], pair[1]);
                        pair[0] = a * cos[i] - b * sin[i];
                        pair[1] = a * sin[i] + b * cos[i];
                    }
                }
                RopeStyle::Halves => {
                    let (lo, hi) = h.split_at_mut(self.half);
                    for i in 0..self.half {
                        let (a, b) = (lo[i], hi[i]);
                        lo[i] = a * cos[i] - b * sin[i];
                        hi[i] = a * sin[i] + b * cos[i];
                    }
                }
            }
        }
    }
}

/// One layer's causal attention of `t` queries at positions `pos..` over the
/// cache; `window` limits each query to its last `window` keys (itself included).
pub struct Attention<'a> {
    pub c: &'a Config,
    pub k_cache: &'a [f32],
    pub v_cache: &'a [f32],
    pub window: Option<usize>,
    pub scale: f32,
}

impl Attention<'_> {
    pub fn run(&self, pool: &Pool, q: &[f32], pos: usize, t: usize, out: &mut [f32], scores: &mut [Vec<f32>]) {
        let c = self.c;
        let (hd, kv_dim, q_dim) = (c.head_dim, c.kv_dim(), c.q_dim());
        let group = c.n_head / c.n_kv_head;
        // A unit of work is one token's heads that share a KV head (their keys and
        // values stay in cache between them), or single heads when there are too
        // few of those to keep every thread busy (decoding one token).
        let per_unit = if t * c.n_kv_head >= 4 * pool.threads() { group } else { 1 };
        let units = t * c.n_head / per_unit;
        let out_shared = SharedMut::new(out);
        let k = kernels();
        let scores_shared = SharedMut::new(scores);
        pool.run(|i, n| {
            // SAFETY: each thread uses its own score row and its own (token, head) outputs.
            let sc = unsafe { &mut scores_shared.slice(i..i + 1)[0] };
            // Units dealt round-robin: later tokens attend to more keys, so
            // contiguous ranges would give the last thread most of the work.
            for unit in (i..units).step_by(n) {
                for task in unit * per_unit..(unit + 1) * per_unit {
                    let (ti, h) = (task / c.n_head, task % c.n_head);
                    let kvh = h / group;
                    let qh = &q[ti * q_dim + h * hd..ti * q_dim + (h + 1) * hd];
                    let end = pos + ti + 1;
                    let first = self.window.map_or(0, |w| end.saturating_sub(w));
                    let sc = &mut sc[..end - first];
                    (k.dot_many)(qh, &self.k_cache[first * kv_dim + kvh * hd..], kv_dim, sc);
                    let mut max = f32::NEG_INFINITY;
                    for s in sc.iter_mut() {
                        *s *= self.scale;
                        max = max.max(*s);
                    }
                    let inv = 1.0 / (k.exp_sum)(sc, max);
                    // SAFETY: this unit, hence task (ti, h) and its output, is this thread's alone.
                    let o = unsafe { out_shared.slice(ti * q_dim + h * hd..ti * q_dim + (h + 1) * hd) };
                    (k.weighted_sum)(sc, &self.v_cache[first * kv_dim + kvh * hd..], kv_dim, o);
                    for v in o.iter_mut() {
                        *v *= inv;
                    }
                }
            }
        });
    }
}
