//! duet's own CPU kernels for quantized matrix × vector products.
//!
//! Why: candle 0.11 picks its SIMD paths at compile time (a plain
//! `cargo build` gets scalar code), and its Q4_1 path gave wrong answers on
//! the default model. These kernels choose AVX2+FMA+F16C at run time and fall
//! back to portable scalar code that computes the same sums.
//!
//! Weights are repacked at load: per matrix, all block scales (`d`), all block
//! minimums (`m`) and all quants (`qs`) sit in three arrays, so a row's scales
//! convert eight at a time. Q4_0 becomes Q4_1 with `m = -8·d` (exact in f16).
//! The 4-bit quants of each pair of neighbouring blocks are interleaved byte by
//! byte, so one 32-byte load read as sixteen 16-bit lanes yields both blocks'
//! weights with four masks and shifts, already widened to 16 bits, in element
//! order (see `QMatrix::q4_block`). That unpack costs less than half of
//! widening bytes, and decode is bound by it as much as by memory.
//! Activations are quantized once per product to 16 bits per value, 32 per
//! block, with the block's scale and scaled sum. llama.cpp uses 8 bits here;
//! on SmolLM2 that flips near-tied choices (the very first token of "What is
//! the capital of France?" is one: the answer turns into French gibberish),
//! while 16 bits track the exact float result to ~1e-4 at nearly the same cost,
//! because AVX2's 16-bit multiply-add handles as many pairs per instruction.

#[cfg(target_arch = "aarch64")]
mod neon;
pub mod pool;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use half::f16;

pub const QK: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QKind {
    /// 4-bit quants with scale and minimum per block: w = d·q + m.
    Q4_1,
    /// 8-bit quants with scale: w = d·q.
    Q8_0,
    /// llama.cpp's Q4_K: Q4_1's quants, the block's scale and minimum being
    /// 6-bit integers times a scale and a minimum shared by 8 blocks.
    Q4K,
    /// llama.cpp's Q6_K: 6-bit quants, kept here as Q8_0's 8-bit ones
    /// (q − 32), with an 8-bit scale per half block times one per 8 blocks.
    Q6K,
}

/// Blocks of 32 that share a K-quant's super-block scale (256 values).
pub const KB: usize = 8;

/// A weight matrix `[rows, cols]` in repacked block form.
pub struct QMatrix {
    pub kind: QKind,
    pub rows: usize,
    pub cols: usize,
    /// Blocks per row.
    pub nb: usize,
    /// f16 bits: per block (`rows·nb`); per super-block (`rows·nb/8`) for K kinds.
    pub d: Vec<u16>,
    /// f16 bits: Q4_1's block minimums; Q4K's super-block minimum scales,
    /// stored negated so that w = d·q + m holds for every 4-bit kind.
    pub m: Vec<u16>,
    /// Q4K: 6-bit scale of each block. Q6K: signed 8-bit scale of each half
    /// block (two per block).
    pub sc: Vec<u8>,
    /// Q4K: 6-bit minimum of each block.
    pub mn: Vec<u8>,
    /// Q4_1, Q4K: 16 bytes per block (low nibble = element j, high = j+16), the
    /// bytes of blocks 2i and 2i+1 of a row interleaved (a row's odd last block
    /// stays as it is). Q8_0, Q6K: 32 signed bytes.
    pub qs: Vec<u8>,
}

impl QMatrix {
    pub fn bytes_per_block(kind: QKind) -> usize {
        match kind {
            QKind::Q4_1 | QKind::Q4K => 16,
            QKind::Q8_0 | QKind::Q6K => 32,
        }
    }

    /// The GGML type codes this can repack: 2 = Q4_0, 3 = Q4_1, 6 = Q5_0,
    /// 8 = Q8_0, 12 = Q4_K, 14 = Q6_K. K types need rows of whole super-blocks (256).
    /// Empty rows never: a crafted file's zero-width tensor would make the
    /// repack split its bytes into chunks of nothing.
    pub fn can_repack(ggml_type: u32, cols: usize) -> bool {
        if cols == 0 {
            return false;
        }
        match ggml_type {
            2 | 3 | 6 | 8 => cols.is_multiple_of(QK),
            12 | 14 => cols.is_multiple_of(QK * KB),
            _ => false,
        }
    }

    /// From GGML block bytes (see `can_repack` for the types).
    pub fn from_ggml(ggml_type: u32, rows: usize, cols: usize, raw: &[u8]) -> Option<Self> {
        if !Self::can_repack(ggml_type, cols) {
            return None;
        }
        let nb = cols / QK;
        let n = rows * nb;
        if ggml_type == 12 || ggml_type == 14 {
            return Self::from_k_quants(ggml_type, rows, cols, raw);
        }
        let (kind, block_len) = match ggml_type {
            2 => (QKind::Q4_1, 18),
            3 => (QKind::Q4_1, 20),
            6 => (QKind::Q8_0, 22),
            _ => (QKind::Q8_0, 34),
        };
        if raw.len() < n * block_len {
            return None;
        }
        let qb = Self::bytes_per_block(kind);
        let mut d = Vec::with_capacity(n);
        let mut m = Vec::with_capacity(if kind == QKind::Q4_1 { n } else { 0 });
        let mut qs = Vec::with_capacity(n * qb);
        for block in raw[..n * block_len].chunks_exact(block_len) {
            let dd = u16::from_le_bytes([block[0], block[1]]);
            d.push(dd);
            match ggml_type {
                2 => {
                    m.push(f16::from_f32(-8.0 * f16::from_bits(dd).to_f32()).to_bits());
                    qs.extend_from_slice(&block[2..18]);
                }
                3 => {
                    m.push(u16::from_le_bytes([block[2], block[3]]));
                    qs.extend_from_slice(&block[4..20]);
                }
                // Q5_0: the fifth bits of all 32 quants in one u32, the low four
                // in nibbles as Q4_0's; w = d·(q − 16). Kept as Q8_0's signed
                // bytes (34 bytes a block instead of 22): Gemma 3's file holds
                // Q5_0 only in its q, k, gate and up matrices, a sixth of what a
                // decode step reads, and the 8-bit kernels need no new code.
                6 => {
                    let high = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
                    let q = &block[6..22];
                    let value = |j: usize, nibble: u8| (nibble | ((((high >> j) & 1) as u8) << 4)) as i8 - 16;
                    qs.extend((0..16).map(|j| value(j, q[j] & 0x0F) as u8));
                    qs.extend((0..16).map(|j| value(j + 16, q[j] >> 4) as u8));
                }
                _ => qs.extend_from_slice(&block[2..34]),
            }
        }
        if kind == QKind::Q4_1 {
            interleave_pairs(&mut qs, nb);
        }
        Some(QMatrix { kind, rows, cols, nb, d, m, sc: Vec::new(), mn: Vec::new(), qs })
    }

    /// Q4_K (144 bytes per 256 values: d, dmin, 12 bytes of packed 6-bit
    /// scales and minimums, 128 bytes of quants) and Q6_K (210 bytes: 128 of
    /// low 4 bits, 64 of high 2 bits, 16 signed scales, d), as llama.cpp lays
    /// them out.
    fn from_k_quants(ggml_type: u32, rows: usize, cols: usize, raw: &[u8]) -> Option<Self> {
        let nb = cols / QK;
        let supers = rows * nb / KB;
        let (kind, len) = if ggml_type == 12 { (QKind::Q4K, 144) } else { (QKind::Q6K, 210) };
        if raw.len() < supers * len {
            return None;
        }
        let mut w = QMatrix {
            kind,
            rows,
            cols,
            nb,
            d: Vec::with_capacity(supers),
            m: Vec::new(),
            sc: Vec::with_capacity(supers * KB * 2),
            mn: Vec::new(),
            qs: Vec::with_capacity(supers * KB * Self::bytes_per_block(kind)),
        };
        for sb in raw[..supers * len].chunks_exact(len) {
            if kind == QKind::Q4K {
                let (scales, q) = (&sb[4..16], &sb[16..144]);
                w.d.push(u16::from_le_bytes([sb[0], sb[1]]));
                let dmin = f16::from_bits(u16::from_le_bytes([sb[2], sb[3]]));
                w.m.push((-dmin).to_bits());
                for j in 0..KB {
                    // llama.cpp's packing: blocks 0-3 in the low 6 bits of bytes 0-7,
                    // blocks 4-7 split over bytes 8-11 and the top 2 bits of 0-7.
                    let (s, m) = if j < 4 {
                        (scales[j] & 63, scales[j + 4] & 63)
                    } else {
                        (
                            (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4),
                            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
                        )
                    };
                    w.sc.push(s);
                    w.mn.push(m);
                    // Block j: low nibbles (even j) or high nibbles (odd j) of 32 bytes.
                    let chunk = &q[32 * (j / 2)..32 * (j / 2) + 32];
                    let nib = |e: usize| if j % 2 == 0 { chunk[e] & 0x0F } else { chunk[e] >> 4 };
                    w.qs.extend((0..16).map(|e| nib(e) | (nib(e + 16) << 4)));
                }
            } else {
                let (ql, qh, scales) = (&sb[0..128], &sb[128..192], &sb[192..208]);
                w.d.push(u16::from_le_bytes([sb[208], sb[209]]));
                w.sc.extend_from_slice(scales);
                let mut vals = [0u8; 256];
                for half in 0..2 {
                    let (ql, qh) = (&ql[64 * half..], &qh[32 * half..]);
                    for l in 0..32 {
                        let v = |low: u8, high: u8| ((low | (high << 4)) as i8 - 32) as u8;
                        let base = 128 * half + l;
                        vals[base] = v(ql[l] & 0xF, qh[l] & 3);
                        vals[base + 32] = v(ql[l + 32] & 0xF, (qh[l] >> 2) & 3);
                        vals[base + 64] = v(ql[l] >> 4, (qh[l] >> 4) & 3);
                        vals[base + 96] = v(ql[l + 32] >> 4, (qh[l] >> 6) & 3);
                    }
                }
                w.qs.extend_from_slice(&vals);
            }
        }
        if kind == QKind::Q4K {
            interleave_pairs(&mut w.qs, nb);
        }
        Some(w)
    }

    /// Room for `more` rows after this matrix's own (so `append` never
    /// reallocates a large vector).
    pub fn reserve_rows(&mut self, more: usize) {
        let rows = self.rows.max(1);
        for v in [&mut self.d, &mut self.m] {
            v.reserve_exact(v.len() / rows * more);
        }
        for v in [&mut self.sc, &mut self.mn, &mut self.qs] {
            v.reserve_exact(v.len() / rows * more);
        }
    }

    /// The rows of `below` after this matrix's (same kind and width): the
    /// layout is row-major in every array, so this is the matrix of both.
    pub fn append(&mut self, below: QMatrix) {
        debug_assert!(self.kind == below.kind && self.cols == below.cols);
        self.rows += below.rows;
        self.d.extend_from_slice(&below.d);
        self.m.extend_from_slice(&below.m);
        self.sc.extend_from_slice(&below.sc);
        self.mn.extend_from_slice(&below.mn);
        self.qs.extend_from_slice(&below.qs);
    }

    /// Scale and minimum of 4-bit block `wi` (`row · nb + b`): w = d·q + m.
    #[inline]
    pub fn q4_scale_min(&self, wi: usize) -> (f32, f32) {
        match self.kind {
            QKind::Q4K => {
                let s = wi / KB;
                (f16_to_f32(self.d[s]) * self.sc[wi] as f32, f16_to_f32(self.m[s]) * self.mn[wi] as f32)
            }
            _ => (f16_to_f32(self.d[wi]), f16_to_f32(self.m[wi])),
        }
    }

    /// Scales of the two halves (values 0–15, 16–31) of 8-bit block `wi`.
    #[inline]
    pub fn q8_scales(&self, wi: usize) -> (f32, f32) {
        match self.kind {
            QKind::Q6K => {
                let d = f16_to_f32(self.d[wi / KB]);
                (d * (self.sc[2 * wi] as i8) as f32, d * (self.sc[2 * wi + 1] as i8) as f32)
            }
            _ => {
                let d = f16_to_f32(self.d[wi]);
                (d, d)
            }
        }
    }

    /// The 16 quant bytes of 4-bit block `wi` (`row · nb + b`) in GGML order:
    /// low nibble = element j, high nibble = element j + 16.
    pub fn q4_block(&self, wi: usize) -> [u8; 16] {
        let (row_start, b) = (wi - wi % self.nb, wi % self.nb);
        let paired = b < self.nb & !1;
        let mut out = [0u8; 16];
        if paired {
            let pair = &self.qs[(row_start + (b & !1)) * 16..][..32];
            for (j, o) in out.iter_mut().enumerate() {
                *o = pair[2 * j + (b & 1)];
            }
        } else {
            out.copy_from_slice(&self.qs[wi * 16..wi * 16 + 16]);
        }
        out
    }

    /// One row as f32 (embedding lookup).
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        let qb = Self::bytes_per_block(self.kind);
        for b in 0..self.nb {
            let i = row * self.nb + b;
            let o = &mut out[b * QK..(b + 1) * QK];
            match self.kind {
                QKind::Q4_1 | QKind::Q4K => {
                    let (d, m) = self.q4_scale_min(i);
                    let q = self.q4_block(i);
                    for j in 0..16 {
                        o[j] = d * (q[j] & 0x0F) as f32 + m;
                        o[j + 16] = d * (q[j] >> 4) as f32 + m;
                    }
                }
                QKind::Q8_0 | QKind::Q6K => {
                    let (d0, d1) = self.q8_scales(i);
                    let q = &self.qs[i * qb..(i + 1) * qb];
                    for j in 0..QK {
                        o[j] = if j < 16 { d0 } else { d1 } * (q[j] as i8) as f32;
                    }
                }
            }
        }
    }
}

/// f16 bits → f32 by table: without F16C a software conversion per block
/// scale costs more than the block's arithmetic (the SIMD kernels convert
/// eight at a time with the CPU's instruction instead).
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    static T: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    T.get_or_init(|| (0..=u16::MAX).map(|b| f16::from_bits(b).to_f32()).collect())[bits as usize]
}

/// Interleave the bytes of blocks 2i and 2i+1 of every row (16 bytes each).
fn interleave_pairs(qs: &mut [u8], nb: usize) {
    for row in qs.chunks_exact_mut(nb * 16) {
        for pair in row[..(nb & !1) * 16].chunks_exact_mut(32) {
            let (a, b) = pair.split_at(16);
            let mixed: [u8; 32] = std::array::from_fn(|k| if k % 2 == 0 { a[k / 2] } else { b[k / 2] });
            pair.copy_from_slice(&mixed);
        }
    }
}

/// Activations of `t` rows of `cols` values, 16 bits per value.
#[derive(Default)]
pub struct QActs {
    pub t: usize,
    pub nb: usize,
    /// Per block: scale.
    pub d: Vec<f32>,
    /// Per block: scale × sum of quants.
    pub s: Vec<f32>,
    pub qs: Vec<i16>,
}

/// Largest quant of an activation block.
pub const ACT_MAX: f32 = 32767.0;

impl QActs {
    /// Quantize `x` (`t` rows × `cols`), reusing this buffer.
    pub fn quantize(&mut self, x: &[f32], t: usize, cols: usize) {
        debug_assert_eq!(x.len(), t * cols);
        let nb = cols / QK;
        self.t = t;
        self.nb = nb;
        self.d.resize(t * nb, 0.0);
        self.s.resize(t * nb, 0.0);
        self.qs.resize(t * nb * QK, 0);
        (kernels().quantize)(x, &mut self.d, &mut self.s, &mut self.qs);
    }
}

/// Quantize rows of activations: (values, scales, scaled sums, quants).
pub type QuantizeFn = fn(&[f32], &mut [f32], &mut [f32], &mut [i16]);

/// The kernels chosen for this CPU.
pub struct Kernels {
    pub name: &'static str,
    /// out[r] = Σ_cols W[r]·x for rows `r0..r0+out.len()` and activation row `t`.
    pub dot_rows: fn(w: &QMatrix, r0: usize, a: &QActs, t: usize, out: &mut [f32]),
    pub quantize: QuantizeFn,
    /// Like `dot_rows` for up to four activation rows `t0..t0+outs.len()` at
    /// once, unpacking each weight block once (prompt processing).
    pub dot_rows_n: fn(w: &QMatrix, r0: usize, a: &QActs, t0: usize, outs: &mut [&mut [f32]]),
    pub dot_f32: fn(a: &[f32], b: &[f32]) -> f32,
    /// out[j] = q · keys[j·stride ..][..q.len()] (attention scores of one head).
    pub dot_many: fn(q: &[f32], keys: &[f32], stride: usize, out: &mut [f32]),
    /// out = Σ_j p[j] · values[j·stride ..][..out.len()] (attention output of one head).
    pub weighted_sum: fn(p: &[f32], values: &[f32], stride: usize, out: &mut [f32]),
    /// gate[i] = silu(gate[i]) · up[i] (SwiGLU).
    pub silu_mul: fn(gate: &mut [f32], up: &[f32]),
    /// gate[i] = gelu(gate[i]) · up[i], GELU's tanh form (GeGLU, Gemma).
    pub gelu_mul: fn(gate: &mut [f32], up: &[f32]),
    /// x[i] = exp(x[i] − max); returns Σ x[i] (softmax numerators).
    pub exp_sum: fn(x: &mut [f32], max: f32) -> f32,
}

/// Picked once, at first use, from what this CPU reports (not from build flags).
pub fn kernels() -> &'static Kernels {
    static K: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        if std::env::var("DUET_KERNELS").is_ok_and(|v| v == "scalar") {
            return scalar::KERNELS;
        }
        #[cfg(target_arch = "x86_64")]
        if x86::supported() {
            return x86::KERNELS;
        }
        // NEON is part of every aarch64 CPU: nothing to detect.
        #[cfg(target_arch = "aarch64")]
        let fallback = neon::KERNELS;
        #[cfg(not(target_arch = "aarch64"))]
        let fallback = scalar::KERNELS;
        fallback
    })
}

/// SIMD features of this CPU, as people name them (for `duet bench`).
pub fn cpu_features() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    let f = [
        ("sse4.2", std::arch::is_x86_feature_detected!("sse4.2")),
        ("avx", std::arch::is_x86_feature_detected!("avx")),
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ("fma", std::arch::is_x86_feature_detected!("fma")),
        ("f16c", std::arch::is_x86_feature_detected!("f16c")),
        ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    #[cfg(target_arch = "aarch64")]
    let f = vec!["neon"];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let f = Vec::new();
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    fn q4_1_raw(rows: usize, cols: usize) -> Vec<u8> {
        let v = random(rows * cols, 7);
        let mut raw = Vec::new();
        for b in v.chunks(QK) {
            let (mn, mx) = b.iter().fold((f32::MAX, f32::MIN), |(a, c), &x| (a.min(x), c.max(x)));
            let d = (mx - mn) / 15.0;
            raw.extend_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
            raw.extend_from_slice(&f16::from_f32(mn).to_bits().to_le_bytes());
            for j in 0..16 {
                let q = |x: f32| (((x - mn) / d).round() as u8).min(15);
                raw.push(q(b[j]) | (q(b[j + 16]) << 4));
            }
        }
        raw
    }

    fn q8_0_raw(rows: usize, cols: usize) -> Vec<u8> {
        let mut raw = Vec::new();
        for b in random(rows * cols, 11).chunks(QK) {
            let amax = b.iter().fold(0f32, |m, x| m.max(x.abs()));
            let d = amax / 127.0;
            raw.extend_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
            raw.extend(b.iter().map(|x| ((x / d).round() as i8) as u8));
        }
        raw
    }

    /// Repacking (pairs of blocks interleaved, an odd last block alone) keeps
    /// every weight: rows read back equal GGML's own dequantization.
    #[test]
    fn a_zero_width_tensor_is_refused_not_repacked() {
        for ggml_type in [2, 3, 6, 8, 12, 14] {
            assert!(QMatrix::from_ggml(ggml_type, 4, 0, &[]).is_none(), "type {ggml_type}");
        }
        assert!(QMatrix::from_ggml(3, 1, 32, &[0; 20]).is_some(), "one Q4_1 block still repacks");
    }

    #[test]
    fn q4_rows_read_back_as_ggml_wrote_them() {
        for cols in [256, 288] {
            let rows = 3;
            let raw = q4_1_raw(rows, cols);
            let w = QMatrix::from_ggml(3, rows, cols, &raw).expect("q4_1");
            let mut got = vec![0f32; cols];
            for r in 0..rows {
                w.dequantize_row(r, &mut got);
                for (j, g) in got.iter().enumerate() {
                    let block = &raw[(r * cols + j) / QK * 20..][..20];
                    let d = f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
                    let m = f16::from_bits(u16::from_le_bytes([block[2], block[3]])).to_f32();
                    let e = j % QK;
                    let q = if e < 16 { block[4 + e] & 0x0F } else { block[4 + e - 16] >> 4 };
                    assert_eq!(*g, d * q as f32 + m, "cols {cols} row {r} element {j}");
                }
            }
        }
    }

    /// Q4_K, Q6_K and Q5_0 blocks made by candle's quantizer (llama.cpp's layout):
    /// rows read back as candle dequantizes them, and every kernel set's
    /// products equal the dequantized dot, one token or several.
    #[test]
    fn k_quants_read_back_as_candle_writes_them() {
        use candle_core::quantized::{GgmlDType, QTensor};
        use candle_core::{Device, Tensor};
        let (rows, cols, t) = (6, 512, 5);
        let values = random(rows * cols, 13);
        let x = random(t * cols, 17);
        let mut a = QActs::default();
        a.quantize(&x, t, cols);
        for (dtype, code) in [(GgmlDType::Q4K, 12), (GgmlDType::Q6K, 14), (GgmlDType::Q5_0, 6)] {
            let src = Tensor::from_vec(values.clone(), (rows, cols), &Device::Cpu).expect("tensor");
            let q = QTensor::quantize(&src, dtype).expect("quantizes");
            let want: Vec<Vec<f32>> = q.dequantize(&Device::Cpu).expect("dequantizes").to_vec2().expect("rows");
            let w = QMatrix::from_ggml(code, rows, cols, &q.data().expect("bytes")).expect("repacks");
            let mut got = vec![0f32; cols];
            for (r, want_row) in want.iter().enumerate() {
                w.dequantize_row(r, &mut got);
                assert_eq!(&got, want_row, "{dtype:?} row {r}");
            }
            let exact_for = |tt: usize| -> Vec<f32> {
                let xs = &x[tt * cols..(tt + 1) * cols];
                want.iter().map(|row| row.iter().zip(xs).map(|(a, b)| a * b).sum()).collect()
            };
            for tt in 0..t {
                let exact = exact_for(tt);
                for k in [&scalar::KERNELS, kernels()] {
                    let mut out = vec![0f32; rows - 1];
                    (k.dot_rows)(&w, 1, &a, tt, &mut out);
                    let mut outs4 = vec![vec![0f32; rows - 1]; 4.min(t - tt)];
                    let mut refs: Vec<&mut [f32]> = outs4.iter_mut().map(|o| o.as_mut_slice()).collect();
                    (k.dot_rows_n)(&w, 1, &a, tt, &mut refs);
                    for (r, o) in out.iter().enumerate() {
                        let e = exact[r + 1];
                        assert!(
                            (o - e).abs() < 1e-3 * e.abs().max(1.0),
                            "{dtype:?} {} row {}: {o} vs {e}",
                            k.name,
                            r + 1
                        );
                    }
                    for (j, o4) in outs4.iter().enumerate() {
                        for (r, (o, e)) in o4.iter().zip(&exact_for(tt + j)[1..]).enumerate() {
                            let ok = (o - e).abs() < 1e-3 * e.abs().max(1.0);
                            assert!(ok, "{dtype:?} {} token {} of 4, row {}: {o} vs {e}", k.name, j, r + 1);
                        }
                    }
                }
            }
        }
        // Rows that do not split into 256-value super-blocks are refused, not misread.
        assert!(!QMatrix::can_repack(12, 576) && QMatrix::can_repack(3, 576));
    }

    #[test]
    fn multi_token_products_equal_single_ones() {
        // 9 blocks per row: eight taken together (four interleaved pairs for
        // Q4_1) and an odd last block.
        let (rows, cols, t) = (5, 288, 7);
        let x = random(t * cols, 5);
        let mut a = QActs::default();
        a.quantize(&x, t, cols);
        let q41 = QMatrix::from_ggml(3, rows, cols, &q4_1_raw(rows, cols)).expect("q4_1");
        let q80 = QMatrix::from_ggml(8, rows, cols, &q8_0_raw(rows, cols)).expect("q8_0");
        let k = kernels();
        for (w, t0) in [(&q41, 0), (&q41, 3), (&q80, 0), (&q80, 3)] {
            let nt = (t - t0).min(4);
            let mut bufs = vec![vec![0f32; rows - 1]; nt];
            let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
            (k.dot_rows_n)(w, 1, &a, t0, &mut outs);
            for (i, b) in bufs.iter().enumerate() {
                let mut one = vec![0f32; rows - 1];
                (k.dot_rows)(w, 1, &a, t0 + i, &mut one);
                for (p, q) in b.iter().zip(&one) {
                    assert!((p - q).abs() <= 1e-4 * q.abs().max(1.0), "{p} vs {q}");
                }
            }
        }
        let (u, v) = (random(67, 1), random(67, 2));
        let want: f32 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
        assert!(((k.dot_f32)(&u, &v) - want).abs() < 1e-4);
    }

    /// Attention's two loops over the cache, against plain sums, for head
    /// sizes on and off the vector width and key counts on and off four.
    #[test]
    fn attention_sums_match_plain_loops() {
        let k = kernels();
        for (hd, stride, keys) in [(64, 192, 37), (64, 64, 4), (12, 20, 5), (136, 136, 3)] {
            let cache = random(keys * stride, 4);
            let q = random(hd, 6);
            let mut got = vec![0f32; keys];
            (k.dot_many)(&q, &cache, stride, &mut got);
            for (j, g) in got.iter().enumerate() {
                let want: f32 = q.iter().zip(&cache[j * stride..]).map(|(a, b)| a * b).sum();
                assert!((g - want).abs() < 1e-4, "hd {hd} key {j}: {g} vs {want}");
            }
            let p = random(keys, 8);
            let mut o = vec![f32::NAN; hd];
            (k.weighted_sum)(&p, &cache, stride, &mut o);
            for (c, o) in o.iter().enumerate() {
                let want: f32 = (0..keys).map(|j| p[j] * cache[j * stride + c]).sum();
                assert!((o - want).abs() < 1e-4, "hd {hd} column {c}: {o} vs {want}");
            }
        }
    }

    /// GELU computed as x·sigmoid(2z) equals its tanh form.
    #[test]
    fn gelu_matches_its_tanh_formula() {
        let x: Vec<f32> = (0..4003).map(|i| (i as f32 - 2000.0) * 0.01).collect();
        let up: Vec<f32> = random(x.len(), 5);
        for k in [&scalar::KERNELS, kernels()] {
            let mut g = x.clone();
            (k.gelu_mul)(&mut g, &up);
            for ((g, &x), u) in g.iter().zip(&x).zip(&up) {
                let (x64, u64) = (x as f64, *u as f64);
                let inner = (2.0 / std::f64::consts::PI).sqrt() * (x64 + 0.044715 * x64.powi(3));
                let want = 0.5 * x64 * (1.0 + inner.tanh()) * u64;
                assert!(
                    (*g as f64 - want).abs() <= 2e-6 * want.abs().max(1e-3),
                    "{}: gelu({x})·{u}: {g} vs {want}",
                    k.name
                );
            }
        }
    }

    /// The vector exp behind SwiGLU and softmax stays within a few float
    /// rounding steps of the library one, over the whole range they see.
    #[test]
    fn silu_and_softmax_match_the_library_exp() {
        let k = kernels();
        let x: Vec<f32> = (0..4003).map(|i| (i as f32 - 2000.0) * 0.045).collect();
        let up: Vec<f32> = random(x.len(), 9);
        let mut g = x.clone();
        (k.silu_mul)(&mut g, &up);
        for ((g, x), u) in g.iter().zip(&x).zip(&up) {
            let want = x / (1.0 + (-x).exp()) * u;
            assert!((g - want).abs() <= 4e-7 * want.abs().max(1e-30) + 1e-30, "silu({x})·{u}: {g} vs {want}");
        }
        let mut e = x.clone();
        let max = x.iter().fold(f32::MIN, |m, &v| m.max(v));
        let sum = (k.exp_sum)(&mut e, max);
        let mut want_sum = 0f64;
        for (e, x) in e.iter().zip(&x) {
            let want = (x - max).exp();
            want_sum += want as f64;
            assert!((e - want).abs() <= 4e-7 * want + 1e-37, "exp({x} - {max}): {e} vs {want}");
        }
        // Summed in f32 in another order than this f64 sum.
        assert!(((sum as f64 - want_sum) / want_sum).abs() < 1e-5, "{sum} vs {want_sum}");
    }

    /// Both kernel sets give the same products as a plain dequantized dot.
    #[test]
    fn simd_and_scalar_agree_with_dequantized_dot() {
        let (rows, cols, t) = (8, 288, 3);
        let x = random(t * cols, 3);
        let mut a = QActs::default();
        a.quantize(&x, t, cols);
        let q41 = QMatrix::from_ggml(3, rows, cols, &q4_1_raw(rows, cols)).expect("q4_1");
        let q80 = QMatrix::from_ggml(8, rows, cols, &q8_0_raw(rows, cols)).expect("q8_0");
        for w in [&q41, &q80] {
            for tt in 0..t {
                let mut want = vec![0f32; rows];
                let mut row = vec![0f32; cols];
                for (r, o) in want.iter_mut().enumerate() {
                    w.dequantize_row(r, &mut row);
                    *o = row.iter().zip(&x[tt * cols..(tt + 1) * cols]).map(|(a, b)| a * b).sum();
                }
                let mut got_scalar = vec![0f32; rows];
                (scalar::KERNELS.dot_rows)(w, 0, &a, tt, &mut got_scalar);
                let mut got = vec![0f32; rows];
                (kernels().dot_rows)(w, 0, &a, tt, &mut got);
                for r in 0..rows {
                    // 16-bit activations: the product is exact to float rounding.
                    let tol = 1e-3 * want[r].abs().max(1.0);
                    assert!(
                        (got_scalar[r] - want[r]).abs() < tol,
                        "{:?} scalar row {r}: {} vs {}",
                        w.kind,
                        got_scalar[r],
                        want[r]
                    );
                    assert!(
                        (got[r] - got_scalar[r]).abs() < 1e-4 * want[r].abs().max(1.0),
                        "{:?} {} vs scalar",
                        w.kind,
                        kernels().name
                    );
                }
            }
        }
    }
}
