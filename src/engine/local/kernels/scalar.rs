//! Portable kernels: the reference the SIMD ones must match.

use super::{Kernels, QActs, QKind, QMatrix, ACT_MAX, QK};
use half::f16;

pub const KERNELS: Kernels = Kernels { name: "scalar", dot_rows, quantize, dot_rows_n, dot_f32, axpy };

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

pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
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
    for (i, o) in out.iter_mut().enumerate() {
        let r = r0 + i;
        let mut sum = 0f32;
        for b in 0..nb {
            let wi = r * nb + b;
            let wd = f16::from_bits(w.d[wi]).to_f32();
            let x = &aq[b * QK..(b + 1) * QK];
            match w.kind {
                QKind::Q4_1 => {
                    let q = &w.qs[wi * 16..wi * 16 + 16];
                    let mut isum = 0i32;
                    for j in 0..16 {
                        isum += (q[j] & 0x0F) as i32 * x[j] as i32 + (q[j] >> 4) as i32 * x[j + 16] as i32;
                    }
                    let wm = f16::from_bits(w.m[wi]).to_f32();
                    sum += wd * ad[b] * isum as f32 + wm * a.s[t * nb + b];
                }
                QKind::Q8_0 => {
                    let q = &w.qs[wi * 32..wi * 32 + 32];
                    let isum: i32 = q.iter().zip(x).map(|(&w, &x)| (w as i8) as i32 * x as i32).sum();
                    sum += wd * ad[b] * isum as f32;
                }
            }
        }
        *o = sum;
    }
}
