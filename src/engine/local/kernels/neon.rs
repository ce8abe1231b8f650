//! NEON kernels for 64-bit ARM (Apple silicon, Graviton, Snapdragon laptops).
//!
//! NEON is part of every aarch64 CPU, so nothing is detected: this table is
//! the default there. Only the matrix × vector products have hand-written
//! code; they are most of a decode step. The rest (quantizing activations,
//! attention sums, SwiGLU) is the portable code, which the compiler already
//! vectorizes with NEON. Integer sums per block and one float multiply-add,
//! as in `scalar.rs`, so results match it to float rounding.
#![allow(unsafe_op_in_unsafe_fn)]

use super::{scalar, Kernels, QActs, QKind, QMatrix, QK};
use std::arch::aarch64::*;

pub const KERNELS: Kernels = Kernels {
    name: "neon",
    dot_rows,
    quantize: scalar::quantize,
    dot_rows_n,
    dot_f32: scalar::dot_f32,
    dot_many: scalar::dot_many,
    weighted_sum: scalar::weighted_sum,
    silu_mul: scalar::silu_mul,
    gelu_mul: scalar::gelu_mul,
    exp_sum: scalar::exp_sum,
};

fn dot_rows_n(w: &QMatrix, r0: usize, a: &QActs, t0: usize, outs: &mut [&mut [f32]]) {
    for (k, out) in outs.iter_mut().enumerate() {
        dot_rows(w, r0, a, t0 + k, out);
    }
}

fn dot_rows(w: &QMatrix, r0: usize, a: &QActs, t: usize, out: &mut [f32]) {
    assert!((r0 + out.len()) <= w.rows && t < a.t && a.nb == w.nb, "dot_rows: shapes do not match");
    // SAFETY: NEON is always present on aarch64; the bounds above keep every
    // pointer inside its slice.
    unsafe {
        match w.kind {
            QKind::Q4_1 | QKind::Q4K => dot_q4_1(w, r0, a, t, out),
            QKind::Q8_0 | QKind::Q6K => dot_q8_0(w, r0, a, t, out),
        }
    }
}

/// One block's 32 weights, as four vectors of eight 16-bit lanes (elements 0–7, 8–15, 16–23, 24–31).
type Block = [int16x8_t; 4];

/// Σ over vectors `k0..k1` of a block (8 values each) of weights × 16-bit
/// activations, as four i32 lanes.
#[inline(always)]
unsafe fn block_sum(w: &Block, x: *const i16, k0: usize, k1: usize) -> int32x4_t {
    let mut acc = vdupq_n_s32(0);
    for (k, wk) in w.iter().enumerate().take(k1).skip(k0) {
        let xv = vld1q_s16(x.add(8 * k));
        acc = vmlal_s16(acc, vget_low_s16(*wk), vget_low_s16(xv));
        acc = vmlal_high_s16(acc, *wk, xv);
    }
    acc
}

/// Two neighbouring 4-bit blocks stored interleaved (see `QMatrix::q4_block`):
/// read as 16-bit lanes, nibble k of lane i is element i + 16k of the pair.
#[inline(always)]
unsafe fn unpack_q4_pair(p: *const u8) -> (Block, Block) {
    let v0 = vld1q_u16(p as *const u16);
    let v1 = vld1q_u16(p.add(16) as *const u16);
    let m = vdupq_n_u16(0x0F);
    let s = |v: uint16x8_t| vreinterpretq_s16_u16(v);
    let b0 = [
        s(vandq_u16(v0, m)),
        s(vandq_u16(v1, m)),
        s(vandq_u16(vshrq_n_u16::<4>(v0), m)),
        s(vandq_u16(vshrq_n_u16::<4>(v1), m)),
    ];
    let b1 = [
        s(vandq_u16(vshrq_n_u16::<8>(v0), m)),
        s(vandq_u16(vshrq_n_u16::<8>(v1), m)),
        s(vshrq_n_u16::<12>(v0)),
        s(vshrq_n_u16::<12>(v1)),
    ];
    (b0, b1)
}

/// A row's odd last 4-bit block, in GGML's order (low nibbles 0–15, high 16–31).
#[inline(always)]
unsafe fn unpack_q4(p: *const u8) -> Block {
    let q = vld1q_u8(p);
    let lo = vandq_u8(q, vdupq_n_u8(0x0F));
    let hi = vshrq_n_u8::<4>(q);
    let w = |v: uint16x8_t| vreinterpretq_s16_u16(v);
    [w(vmovl_u8(vget_low_u8(lo))), w(vmovl_high_u8(lo)), w(vmovl_u8(vget_low_u8(hi))), w(vmovl_high_u8(hi))]
}

#[inline(always)]
unsafe fn unpack_q8(p: *const u8) -> Block {
    let a = vld1q_s8(p as *const i8);
    let b = vld1q_s8(p.add(16) as *const i8);
    [vmovl_s8(vget_low_s8(a)), vmovl_high_s8(a), vmovl_s8(vget_low_s8(b)), vmovl_high_s8(b)]
}

unsafe fn dot_q4_1(w: &QMatrix, r0: usize, a: &QActs, t: usize, out: &mut [f32]) {
    let nb = w.nb;
    let (ad, as_, aq) = (&a.d[t * nb..(t + 1) * nb], &a.s[t * nb..(t + 1) * nb], a.qs.as_ptr().add(t * nb * QK));
    for (i, o) in out.iter_mut().enumerate() {
        let r = r0 + i;
        let wq = w.qs.as_ptr().add(r * nb * 16);
        let mut acc = vdupq_n_f32(0.0);
        let mut mins = 0f32;
        let mut b = 0;
        while b < nb {
            let blocks: [Option<Block>; 2] = if b + 2 <= nb {
                let (b0, b1) = unpack_q4_pair(wq.add(b * 16));
                [Some(b0), Some(b1)]
            } else {
                [Some(unpack_q4(wq.add(b * 16))), None]
            };
            for (k, blk) in blocks.into_iter().flatten().enumerate() {
                let j = b + k;
                let (d, m) = w.q4_scale_min(r * nb + j);
                let sum = vcvtq_f32_s32(block_sum(&blk, aq.add(j * QK), 0, 4));
                acc = vfmaq_n_f32(acc, sum, d * ad[j]);
                mins += m * as_[j];
            }
            b += 2;
        }
        *o = vaddvq_f32(acc) + mins;
    }
}

/// Q8_0, and Q6K whose two halves of a block have their own scales.
unsafe fn dot_q8_0(w: &QMatrix, r0: usize, a: &QActs, t: usize, out: &mut [f32]) {
    let nb = w.nb;
    let (ad, aq) = (&a.d[t * nb..(t + 1) * nb], a.qs.as_ptr().add(t * nb * QK));
    for (i, o) in out.iter_mut().enumerate() {
        let r = r0 + i;
        let wq = w.qs.as_ptr().add(r * nb * 32);
        let mut acc = vdupq_n_f32(0.0);
        for (b, &dx) in ad.iter().enumerate() {
            let blk = unpack_q8(wq.add(b * 32));
            let (d0, d1) = w.q8_scales(r * nb + b);
            let x = aq.add(b * QK);
            if w.kind == QKind::Q6K {
                acc = vfmaq_n_f32(acc, vcvtq_f32_s32(block_sum(&blk, x, 0, 2)), d0 * dx);
                acc = vfmaq_n_f32(acc, vcvtq_f32_s32(block_sum(&blk, x, 2, 4)), d1 * dx);
            } else {
                acc = vfmaq_n_f32(acc, vcvtq_f32_s32(block_sum(&blk, x, 0, 4)), d0 * dx);
            }
        }
        *o = vaddvq_f32(acc);
    }
}
