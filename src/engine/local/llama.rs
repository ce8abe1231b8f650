//! duet's own forward pass for `llama`-architecture GGUF files whose matrices
//! are Q4_0, Q4_1, Q8_0 (the default model among them), Q4_K or Q6_K (the
//! "Q4_K_M" files), on the CPU.
//!
//! Why not candle here: candle 0.11 chooses SIMD at compile time, allocates
//! per op, and its Q4_1 product gave wrong answers on SmolLM2 (see the
//! repository notes). This file is the whole model: RMSNorm, RoPE (llama.cpp's
//! "normal" pairing: adjacent elements rotate together), grouped-query
//! attention over an f32 KV cache, SwiGLU, tied or separate output, Llama 3's
//! per-frequency RoPE factors. Files it cannot run (other quant types, other
//! RoPE scaling) go to candle instead.

use super::gguf::Gguf;
use super::kernels::pool::{Pool, SharedMut};
use super::kernels::{kernels, QActs, QMatrix};
use candle_core::quantized::GgmlDType;
use std::io::{Read, Seek, SeekFrom};

#[derive(Debug, Clone)]
pub struct Config {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub eps: f32,
    pub rope_base: f32,
    pub vocab: usize,
}

struct Layer {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    wo: QMatrix,
    gate: QMatrix,
    up: QMatrix,
    down: QMatrix,
}

/// Reusable buffers: a decode step allocates nothing.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    acts: QActs,
    /// One score row per thread.
    scores: Vec<Vec<f32>>,
}

pub struct FastLlama {
    pub cfg: Config,
    embd: QMatrix,
    output: Option<QMatrix>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    ctx: usize,
    k_cache: Vec<f32>,
    v_cache: Vec<f32>,
    rope_cos: Vec<f32>,
    rope_sin: Vec<f32>,
    pool: Pool,
    s: Scratch,
}

/// Why a file goes to the general (candle) path instead.
pub type Unsupported = String;

fn ggml_code(t: GgmlDType) -> Option<u32> {
    Some(match t {
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q4K => 12,
        GgmlDType::Q6K => 14,
        _ => return None,
    })
}

/// The file's bytes for the repack: mapped, so nothing is copied into a
/// buffer first and pages come straight from the OS's file cache; read whole
/// where the file cannot be mapped.
enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl FileBytes {
    fn of(file: &std::fs::File) -> Result<Self, Unsupported> {
        // SAFETY: the mapping is read only during `load` and dropped at its end;
        // `Gguf::open` checked the file holds every tensor. Another program
        // truncating the model file in that window would fault this one, the
        // same risk every mmap-based loader (llama.cpp's too) takes.
        if let Ok(map) = unsafe { memmap2::Mmap::map(file) } {
            // A hint only; `madvise` exists on Unix alone.
            #[cfg(unix)]
            let _ = map.advise(memmap2::Advice::Sequential);
            return Ok(FileBytes::Mapped(map));
        }
        let mut bytes = Vec::new();
        let mut f = file;
        f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        f.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        Ok(FileBytes::Read(bytes))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Read(v) => v,
        }
    }

    /// Done with `range`: a mapped file's pages leave this process's memory
    /// (they stay in the OS's file cache), so peak RSS stays near the
    /// repacked weights instead of weights plus file.
    fn release(&self, range: std::ops::Range<usize>) {
        // Windows has no `madvise`; its working-set manager trims clean file
        // pages on its own, so there is nothing to do there.
        #[cfg(unix)]
        if let FileBytes::Mapped(m) = self {
            // `madvise` wants a page-aligned start, and pages are 4 KiB on x86,
            // 16 KiB on Apple silicon, 64 KiB on some ARM servers; rounding to
            // a too-large size would keep tens of MB resident until load ends.
            // SAFETY: sysconf reads a constant and has no preconditions.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
            let start = range.start.div_ceil(page) * page;
            let end = range.end / page * page;
            if end > start {
                // SAFETY: a read-only shared file mapping that nothing writes:
                // dropped pages are read again from the file if touched, never lost.
                let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }
}

fn raw<'a>(g: &Gguf, file: &'a FileBytes, name: &str) -> Result<(GgmlDType, Vec<usize>, &'a [u8]), Unsupported> {
    let info = g.content.tensor_infos.get(name).ok_or_else(|| format!("no tensor {name}"))?;
    let elems = info.shape.elem_count();
    let len = elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
    let start = (g.content.tensor_data_offset + info.offset) as usize;
    let bytes = file.bytes().get(start..start + len).ok_or_else(|| format!("{name} lies past the end of the file"))?;
    Ok((info.ggml_dtype, info.shape.dims().to_vec(), bytes))
}

fn read_matrix(g: &Gguf, file: &FileBytes, name: &str) -> Result<QMatrix, Unsupported> {
    let (dtype, dims, raw) = raw(g, file, name)?;
    let code = ggml_code(dtype).ok_or_else(|| format!("{name} is {dtype:?}"))?;
    let (rows, cols) = match dims.as_slice() {
        [rows, cols] => (*rows, *cols),
        _ => return Err(format!("{name} is not a matrix")),
    };
    let m = QMatrix::from_ggml(code, rows, cols, raw).ok_or_else(|| format!("{name} has an unexpected layout"))?;
    file.release(range_of(file, raw));
    Ok(m)
}

fn read_f32(g: &Gguf, file: &FileBytes, name: &str) -> Result<Vec<f32>, Unsupported> {
    let (dtype, _, raw) = raw(g, file, name)?;
    if dtype != GgmlDType::F32 {
        return Err(format!("{name} is {dtype:?}, not F32"));
    }
    Ok(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Where `part` (a slice of the file's bytes) sits in the file.
fn range_of(file: &FileBytes, part: &[u8]) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - file.bytes().as_ptr() as usize;
    start..start + part.len()
}

impl FastLlama {
    /// Whether this file can run here, without reading any weights.
    pub fn check(g: &Gguf) -> Result<(), Unsupported> {
        if g.architecture().ok() != Some("llama") {
            return Err("not a llama-architecture file".into());
        }
        if g.arch_u32("expert_count").unwrap_or(0) > 1 {
            return Err("mixture of experts".into());
        }
        // Llama 3.1+ files carry their long-context RoPE as per-frequency
        // factors (`rope_freqs.weight`), which `load` applies; other scaling
        // schemes (linear, YaRN) stay with candle.
        if g.string("llama.rope.scaling.type").is_some_and(|s| s != "none") {
            return Err("RoPE scaling".into());
        }
        for (name, info) in &g.content.tensor_infos {
            let is_matrix = info.shape.dims().len() == 2;
            let ok = if is_matrix { ggml_code(info.ggml_dtype).is_some() } else { info.ggml_dtype == GgmlDType::F32 };
            if !ok {
                return Err(format!("{name} is {:?}", info.ggml_dtype));
            }
            if let (true, Some(code)) = (is_matrix, ggml_code(info.ggml_dtype)) {
                if !QMatrix::can_repack(code, info.shape.dims()[1]) {
                    return Err(format!("{name}'s rows do not split into whole {:?} blocks", info.ggml_dtype));
                }
            }
        }
        Ok(())
    }

    pub fn load(g: &Gguf, file: &std::fs::File, ctx: usize, threads: usize) -> Result<Self, Unsupported> {
        Self::check(g)?;
        let r = &FileBytes::of(file)?;
        let n_embd = g.arch_u32("embedding_length").ok_or("no embedding_length")? as usize;
        let n_head = g.arch_u32("attention.head_count").ok_or("no head_count")? as usize;
        let n_kv_head = g.arch_u32("attention.head_count_kv").unwrap_or(n_head as u32) as usize;
        let head_dim = g.arch_u32("attention.key_length").map(|v| v as usize).unwrap_or(n_embd / n_head);
        if g.arch_u32("rope.dimension_count").is_some_and(|d| d as usize != head_dim) {
            return Err("partial RoPE".into());
        }
        let cfg = Config {
            n_layer: g.arch_u32("block_count").ok_or("no block_count")? as usize,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            n_ff: g.arch_u32("feed_forward_length").ok_or("no feed_forward_length")? as usize,
            eps: g.f32("llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_base: g.f32("llama.rope.freq_base").unwrap_or(10_000.0),
            vocab: 0,
        };
        if n_head % n_kv_head != 0 || head_dim % 2 != 0 {
            return Err("unusual head layout".into());
        }
        let embd = read_matrix(g, r, "token_embd.weight")?;
        let output = if g.content.tensor_infos.contains_key("output.weight") {
            Some(read_matrix(g, r, "output.weight")?)
        } else {
            None
        };
        let norm = read_f32(g, r, "output_norm.weight")?;
        let half = head_dim / 2;
        let rope_factors = if g.content.tensor_infos.contains_key("rope_freqs.weight") {
            let f = read_f32(g, r, "rope_freqs.weight")?;
            if f.len() != half || f.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
                return Err(format!("rope_freqs has {} factors, not {half} positive ones", f.len()));
            }
            f
        } else {
            vec![1.0; half]
        };
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: read_f32(g, r, &p("attn_norm"))?,
                ffn_norm: read_f32(g, r, &p("ffn_norm"))?,
                wq: read_matrix(g, r, &p("attn_q"))?,
                wk: read_matrix(g, r, &p("attn_k"))?,
                wv: read_matrix(g, r, &p("attn_v"))?,
                wo: read_matrix(g, r, &p("attn_output"))?,
                gate: read_matrix(g, r, &p("ffn_gate"))?,
                up: read_matrix(g, r, &p("ffn_up"))?,
                down: read_matrix(g, r, &p("ffn_down"))?,
            });
        }
        let vocab = output.as_ref().unwrap_or(&embd).rows;
        let cfg = Config { vocab, ..cfg };
        let kv_dim = cfg.n_kv_head * cfg.head_dim;
        let mut rope_cos = vec![0f32; ctx * half];
        let mut rope_sin = vec![0f32; ctx * half];
        for pos in 0..ctx {
            for i in 0..half {
                // As in llama.cpp, a factor divides its frequency (Llama 3 slows the
                // long-wavelength ones, stretching the context it was trained on).
                let freq = cfg.rope_base.powf(-(2.0 * i as f32) / cfg.head_dim as f32) / rope_factors[i];
                let angle = pos as f32 * freq;
                rope_cos[pos * half + i] = angle.cos();
                rope_sin[pos * half + i] = angle.sin();
            }
        }
        let pool = Pool::new(threads);
        let scores = (0..pool.threads()).map(|_| vec![0f32; ctx]).collect();
        Ok(FastLlama {
            embd,
            output,
            norm,
            layers,
            ctx,
            // calloc'd: untouched pages of a long context cost no memory.
            k_cache: vec![0f32; cfg.n_layer * ctx * kv_dim],
            v_cache: vec![0f32; cfg.n_layer * ctx * kv_dim],
            rope_cos,
            rope_sin,
            pool,
            s: Scratch { scores, ..Default::default() },
            cfg,
        })
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Run `tokens` at positions `pos..`; return logits of the last token, or of
    /// every token when `all` (row-major, `tokens.len() × vocab`).
    pub fn forward(&mut self, tokens: &[u32], pos: usize, all: bool) -> Vec<f32> {
        let t = tokens.len();
        assert!(t > 0 && pos + t <= self.ctx, "forward: {} tokens at {pos} exceed the context of {}", t, self.ctx);
        let c = self.cfg.clone();
        let (e, kv_dim, q_dim) = (c.n_embd, c.n_kv_head * c.head_dim, c.n_head * c.head_dim);
        let s = &mut self.s;
        s.x.resize(t * e, 0.0);
        for (i, &tok) in tokens.iter().enumerate() {
            let row = (tok as usize).min(self.embd.rows - 1);
            self.embd.dequantize_row(row, &mut s.x[i * e..(i + 1) * e]);
        }
        for (li, layer) in self.layers.iter().enumerate() {
            rms_norm(&s.x, &layer.attn_norm, c.eps, e, &mut s.xn);
            s.acts.quantize(&s.xn, t, e);
            matmul_many(
                &self.pool,
                &mut [(&layer.wq, &mut s.q), (&layer.wk, &mut s.k), (&layer.wv, &mut s.v)],
                &s.acts,
            );
            let half = c.head_dim / 2;
            for ti in 0..t {
                let p = pos + ti;
                let (cos, sin) = (&self.rope_cos[p * half..(p + 1) * half], &self.rope_sin[p * half..(p + 1) * half]);
                for h in s.q[ti * q_dim..(ti + 1) * q_dim].chunks_exact_mut(c.head_dim) {
                    rope(h, cos, sin);
                }
                for h in s.k[ti * kv_dim..(ti + 1) * kv_dim].chunks_exact_mut(c.head_dim) {
                    rope(h, cos, sin);
                }
            }
            let base = li * self.ctx * kv_dim;
            self.k_cache[base + pos * kv_dim..base + (pos + t) * kv_dim].copy_from_slice(&s.k);
            self.v_cache[base + pos * kv_dim..base + (pos + t) * kv_dim].copy_from_slice(&s.v);
            s.att.resize(t * q_dim, 0.0);
            attention(
                &self.pool,
                &c,
                &s.q,
                &self.k_cache[base..base + self.ctx * kv_dim],
                &self.v_cache[base..base + self.ctx * kv_dim],
                pos,
                t,
                &mut s.att,
                &mut s.scores,
            );
            s.acts.quantize(&s.att, t, q_dim);
            matmul(&self.pool, &layer.wo, &s.acts, &mut s.proj);
            for (x, p) in s.x.iter_mut().zip(&s.proj) {
                *x += p;
            }
            rms_norm(&s.x, &layer.ffn_norm, c.eps, e, &mut s.xn);
            s.acts.quantize(&s.xn, t, e);
            matmul_many(&self.pool, &mut [(&layer.gate, &mut s.gate), (&layer.up, &mut s.up)], &s.acts);
            (kernels().silu_mul)(&mut s.gate, &s.up);
            s.acts.quantize(&s.gate, t, c.n_ff);
            matmul(&self.pool, &layer.down, &s.acts, &mut s.proj);
            for (x, p) in s.x.iter_mut().zip(&s.proj) {
                *x += p;
            }
        }
        let first = if all { 0 } else { t - 1 };
        let rows = t - first;
        rms_norm(&s.x[first * e..], &self.norm, c.eps, e, &mut s.xn);
        s.acts.quantize(&s.xn, rows, e);
        let mut logits = Vec::new();
        matmul(&self.pool, self.output.as_ref().unwrap_or(&self.embd), &s.acts, &mut logits);
        logits
    }
}

/// out[t][r] = W[r] · a[t], rows split across the pool.
fn matmul(pool: &Pool, w: &QMatrix, a: &QActs, out: &mut Vec<f32>) {
    matmul_many(pool, &mut [(w, out)], a);
}

/// Several products of the same activations (q, k, v; gate, up) in one pass
/// of the pool: each thread takes its share of every matrix's rows, so a
/// decode step waits at one barrier instead of one per matrix.
fn matmul_many(pool: &Pool, jobs: &mut [(&QMatrix, &mut Vec<f32>)], a: &QActs) {
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

fn rms_norm(x: &[f32], w: &[f32], eps: f32, e: usize, out: &mut Vec<f32>) {
    out.resize(x.len(), 0.0);
    for (row, o) in x.chunks_exact(e).zip(out.chunks_exact_mut(e)) {
        let ms = (kernels().dot_f32)(row, row) / e as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for ((o, v), g) in o.iter_mut().zip(row).zip(w) {
            *o = v * inv * g;
        }
    }
}

/// Rotate adjacent pairs (2i, 2i+1) by the position's angles.
fn rope(h: &mut [f32], cos: &[f32], sin: &[f32]) {
    for (i, pair) in h.chunks_exact_mut(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        pair[0] = a * cos[i] - b * sin[i];
        pair[1] = a * sin[i] + b * cos[i];
    }
}

#[allow(clippy::too_many_arguments)]
fn attention(
    pool: &Pool,
    c: &Config,
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    pos: usize,
    t: usize,
    out: &mut [f32],
    scores: &mut [Vec<f32>],
) {
    let (hd, kv_dim, q_dim) = (c.head_dim, c.n_kv_head * c.head_dim, c.n_head * c.head_dim);
    let group = c.n_head / c.n_kv_head;
    let scale = 1.0 / (hd as f32).sqrt();
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
                let len = pos + ti + 1;
                let sc = &mut sc[..len];
                (k.dot_many)(qh, &k_cache[kvh * hd..], kv_dim, sc);
                let mut max = f32::NEG_INFINITY;
                for s in sc.iter_mut() {
                    *s *= scale;
                    max = max.max(*s);
                }
                let inv = 1.0 / (k.exp_sum)(sc, max);
                // SAFETY: this unit, hence task (ti, h) and its output, is this thread's alone.
                let o = unsafe { out_shared.slice(ti * q_dim + h * hd..ti * q_dim + (h + 1) * hd) };
                (k.weighted_sum)(sc, &v_cache[kvh * hd..], kv_dim, o);
                for v in o.iter_mut() {
                    *v *= inv;
                }
            }
        }
    });
}
