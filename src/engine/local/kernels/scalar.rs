//! Portable kernels: the reference the SIMD ones must match.

use super::{Kernels, QActs, QKind, QMatrix, ACT_MAX, QK};

pub const KERNELS: Kernels = Kernels {
    name: "scalar",
    dot_rows,
    quantize,
    dot_rows_n,
    dot_f32,
    dot_many,
    weighted_sum,
    silu_mul,
    gelu_mul,
    exp_sum,
};

pub fn dot_many(q: &[f32], keys: &[f32], stride: usize, out: &mut [f32]) {
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot_f32(q, &keys[j * stride..j * stride + q.len()]);
    }
}

pub fn weighted_sum(p: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
    out.fill(0.0);
    let n = out.len();
    for (j, &pj) in p.iter().enumerate() {
        axpy(pj, &values[j * stride..j * stride + n], out);
    }
}

pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// 0.5·x·(1 + tanh(z)) = x·sigmoid(2z), z = √(2/π)·(x + 0.044715·x³): the
/// sigmoid form needs one exp, as SiLU does.
pub fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        let x = *g;
        let z2 = GELU_2C * x * (1.0 + GELU_A * x * x);
        *g = x / (1.0 + (-z2).exp()) * u;
    }
}

/// 2·√(2/π) and the cubic coefficient of GELU's tanh approximation.
pub const GELU_2C: f32 = 1.595_769;
pub const GELU_A: f32 = 0.044_715;

pub fn exp_sum(x: &mut [f32], max: f32) -> f32 {
    let mut sum = 0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    sum
}

pub fn dot_rows_n(w: &QMatrix, r0: usize, a: &QActs, t0: usize, outs: &mut [&mut [f32]]) {
    for (i, out) in outs.iter_mut().enumerate() {
        dot_rows(w, r0, a, t0 + i, out);
    }
}

pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums so the compiler can keep them in vector registers.
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

pub fn quantize(x: &[f32], d: &mut [f32], s: &mut [f32], qs: &mut [i16]) {
    for (b, block) in x.chunks_exact(QK).enumerate() {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / ACT_MAX;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        let mut sum = 0i32;
        for (j, v) in block.iter().enumerate() {
            let q = (v * inv).round_ties_even() as i32;
            qs[b * QK + j] = q as i16;
            sum += q;
        }
        d[b] = scale;
        s[b] = scale * sum as f32;
    }
}

pub fn dot_rows(w: &QMatrix, r0: usize, a: &QActs, t: usize, out: &mut [f32]) {
    let nb = w.nb;
    let ad = &a.d[t * nb..(t + 1) * nb];
    let aq = &a.qs[t * nb * QK..(t + 1) * nb * QK];
    // Written so the compiler can vectorize it on any target (NEON on ARM,
    // SSE2 on old x86): widen a block into a plain array, then one simple
    // multiply-accumulate loop over each half of it.
    let mut wv = [0i16; QK];
    for (i, o) in out.iter_mut().enumerate() {
        let r = r0 + i;
        let mut sum = 0f32;
        for b in 0..nb {
            let wi = r * nb + b;
            let x: &[i16; QK] = aq[b * QK..(b + 1) * QK].try_into().unwrap_or(&[0; QK]);
            match w.kind {
                QKind::Q4_1 | QKind::Q4K => {
                    let q = w.q4_block(wi);
                    for j in 0..16 {
                        wv[j] = (q[j] & 0x0F) as i16;
                        wv[j + 16] = (q[j] >> 4) as i16;
                    }
                }
                QKind::Q8_0 | QKind::Q6K => {
                    for (o, &q) in wv.iter_mut().zip(&w.qs[wi * 32..wi * 32 + 32]) {
                        *o = (q as i8) as i16;
                    }
                }
            }
            let half = |h: usize| -> i32 {
                wv[16 * h..16 * h + 16].iter().zip(&x[16 * h..16 * h + 16]).map(|(&p, &q)| p as i32 * q as i32).sum()
            };
            let (lo, hi) = (half(0), half(1));
            match w.kind {
                QKind::Q4_1 | QKind::Q4K => {
                    let (d, m) = w.q4_scale_min(wi);
                    sum += d * ad[b] * (lo + hi) as f32 + m * a.s[t * nb + b];
                }
                QKind::Q8_0 => sum += w.q8_scales(wi).0 * ad[b] * (lo + hi) as f32,
                QKind::Q6K => {
                    let (d0, d1) = w.q8_scales(wi);
                    sum += (d0 * lo as f32 + d1 * hi as f32) * ad[b];
                }
            }
        }
        *o = sum;
    }
}
