//! duet's own forward pass on the CPU for `llama`, `qwen2` and `gemma3`
//! GGUF files whose matrices are Q4_0, Q4_1, Q5_0, Q8_0, Q4_K or Q6_K (the
//! catalog's "Q4_K_M" files mix these).
//!
//! Why not candle here: candle 0.11 chooses SIMD at compile time, allocates
//! per op, expands Gemma's 262k-row embedding table to f32 (3.7 GB for a
//! 253 MB file), its Q4_1 product gave wrong answers on SmolLM2, and its
//! Gemma 3 uses SiLU where the model was trained with GELU. This module is the
//! whole model: the decoder block of `arch.rs`'s architectures over an f32 KV
//! cache. Files it cannot run (other quant types, other RoPE scaling) go to
//! candle instead.

pub mod arch;
mod file;
mod ops;

use crate::engine::local::gguf::Gguf;
use crate::engine::local::kernels::pool::Pool;
use crate::engine::local::kernels::{kernels, QActs, QMatrix};
use arch::{Activation, Arch, Config};
use file::{FileBytes, Tensors};
use ops::{matmul, matmul_many, rms_norm, rms_norm_in_place, Attention, RopeTable};

/// Why a file goes to the general (candle) path instead, or will not load.
pub type Unsupported = String;

struct Layer {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// Gemma: RMSNorm of each query and key head.
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    /// Gemma: RMSNorm of the attention's and the feed-forward's outputs.
    post_attn_norm: Option<Vec<f32>>,
    post_ffn_norm: Option<Vec<f32>>,
    /// Qwen2: biases of q, k and v.
    bias: Option<[Vec<f32>; 3]>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    wo: QMatrix,
    gate: QMatrix,
    up: QMatrix,
    down: QMatrix,
    /// Index into `Decoder::ropes`.
    rope: usize,
    window: Option<usize>,
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

pub struct Decoder {
    pub cfg: Config,
    embd: QMatrix,
    output: Option<QMatrix>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    ctx: usize,
    k_cache: Vec<f32>,
    v_cache: Vec<f32>,
    ropes: Vec<RopeTable>,
    pool: Pool,
    s: Scratch,
}

impl Decoder {
    /// Whether this file can run here, without reading any weights.
    pub fn check(g: &Gguf) -> Result<(), Unsupported> {
        arch::check(g).map(|_| ())
    }

    pub fn load(g: &Gguf, file: &std::fs::File, ctx: usize, threads: usize) -> Result<Self, Unsupported> {
        let mut cfg = arch::config(g)?;
        let bytes = FileBytes::of(file)?;
        let w = Tensors { g, file: &bytes };
        let (e, q_dim, kv_dim, hd) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.head_dim);
        let vocab =
            g.content.tensor_infos.get("token_embd.weight").and_then(|i| i.shape.dims().first().copied()).unwrap_or(0);
        if vocab == 0 {
            return Err("the tensor token_embd.weight is missing or empty".into());
        }
        let embd = w.matrix("token_embd.weight", vocab, e)?;
        let output = if w.has("output.weight") { Some(w.matrix("output.weight", vocab, e)?) } else { None };
        let norm = w.vector("output_norm.weight", e)?;
        let half = hd / 2;
        let factors = match w.optional_vector("rope_freqs.weight", half)? {
            Some(f) if f.iter().any(|x| !(x.is_finite() && *x > 0.0)) => {
                return Err("rope_freqs.weight holds a factor that is not a positive number".into())
            }
            Some(f) => f,
            None => vec![1.0; half],
        };
        let mut ropes = vec![RopeTable::new(ctx, hd, cfg.rope_base, &factors, cfg.rope_linear)];
        if let Some(s) = cfg.sliding {
            ropes.push(RopeTable::new(ctx, hd, s.rope_base, &vec![1.0; half], 1.0));
        }
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            let gemma = cfg.arch == Arch::Gemma3;
            let gemma_norm = |s: &str, len| if gemma { w.vector(&p(s), len).map(Some) } else { Ok(None) };
            let bias = if cfg.arch == Arch::Qwen2 {
                let b = |s: &str, len| w.vector(&format!("blk.{i}.{s}.bias"), len);
                Some([b("attn_q", q_dim)?, b("attn_k", kv_dim)?, b("attn_v", kv_dim)?])
            } else {
                None
            };
            let sliding = cfg.is_sliding(i);
            layers.push(Layer {
                attn_norm: w.vector(&p("attn_norm"), e)?,
                ffn_norm: w.vector(&p("ffn_norm"), e)?,
                q_norm: gemma_norm("attn_q_norm", hd)?,
                k_norm: gemma_norm("attn_k_norm", hd)?,
                post_attn_norm: gemma_norm("post_attention_norm", e)?,
                post_ffn_norm: gemma_norm("post_ffw_norm", e)?,
                bias,
                wq: w.matrix(&p("attn_q"), q_dim, e)?,
                wk: w.matrix(&p("attn_k"), kv_dim, e)?,
                wv: w.matrix(&p("attn_v"), kv_dim, e)?,
                wo: w.matrix(&p("attn_output"), e, q_dim)?,
                gate: w.matrix(&p("ffn_gate"), cfg.n_ff, e)?,
                up: w.matrix(&p("ffn_up"), cfg.n_ff, e)?,
                down: w.matrix(&p("ffn_down"), e, cfg.n_ff)?,
                rope: usize::from(sliding),
                window: cfg.sliding.filter(|_| sliding).map(|s| s.window),
            });
        }
        cfg.vocab = vocab;
        let pool = Pool::new(threads);
        let scores = (0..pool.threads()).map(|_| vec![0f32; ctx]).collect();
        let cache_len = cfg.n_layer.checked_mul(ctx).and_then(|n| n.checked_mul(kv_dim)).ok_or("context too large")?;
        Ok(Decoder {
            embd,
            output,
            norm,
            layers,
            ctx,
            // calloc'd: untouched pages of a long context cost no memory.
            k_cache: vec![0f32; cache_len],
            v_cache: vec![0f32; cache_len],
            ropes,
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
        let c = &self.cfg;
        let (e, kv_dim, q_dim, hd) = (c.n_embd, c.kv_dim(), c.q_dim(), c.head_dim);
        let s = &mut self.s;
        s.x.resize(t * e, 0.0);
        for (i, &tok) in tokens.iter().enumerate() {
            let row = (tok as usize).min(self.embd.rows - 1);
            let x = &mut s.x[i * e..(i + 1) * e];
            self.embd.dequantize_row(row, x);
            if c.embed_scale != 1.0 {
                x.iter_mut().for_each(|v| *v *= c.embed_scale);
            }
        }
        for (li, layer) in self.layers.iter().enumerate() {
            rms_norm(&s.x, &layer.attn_norm, c.eps, &mut s.xn);
            s.acts.quantize(&s.xn, t, e);
            matmul_many(
                &self.pool,
                &mut [(&layer.wq, &mut s.q), (&layer.wk, &mut s.k), (&layer.wv, &mut s.v)],
                &s.acts,
            );
            if let Some([bq, bk, bv]) = &layer.bias {
                add_rows(&mut s.q, bq);
                add_rows(&mut s.k, bk);
                add_rows(&mut s.v, bv);
            }
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                rms_norm_in_place(&mut s.q, qn, c.eps);
                rms_norm_in_place(&mut s.k, kn, c.eps);
            }
            let rope = &self.ropes[layer.rope];
            for ti in 0..t {
                rope.apply(&mut s.q[ti * q_dim..(ti + 1) * q_dim], hd, pos + ti, c.rope_style);
                rope.apply(&mut s.k[ti * kv_dim..(ti + 1) * kv_dim], hd, pos + ti, c.rope_style);
            }
            let base = li * self.ctx * kv_dim;
            self.k_cache[base + pos * kv_dim..base + (pos + t) * kv_dim].copy_from_slice(&s.k);
            self.v_cache[base + pos * kv_dim..base + (pos + t) * kv_dim].copy_from_slice(&s.v);
            s.att.resize(t * q_dim, 0.0);
            Attention {
                c,
                k_cache: &self.k_cache[base..base + self.ctx * kv_dim],
                v_cache: &self.v_cache[base..base + self.ctx * kv_dim],
                window: layer.window,
                scale: 1.0 / (hd as f32).sqrt(),
            }
            .run(&self.pool, &s.q, pos, t, &mut s.att, &mut s.scores);
            s.acts.quantize(&s.att, t, q_dim);
            matmul(&self.pool, &layer.wo, &s.acts, &mut s.proj);
            add_residual(&mut s.x, &mut s.proj, layer.post_attn_norm.as_deref(), c.eps, &mut s.xn);
            rms_norm(&s.x, &layer.ffn_norm, c.eps, &mut s.xn);
            s.acts.quantize(&s.xn, t, e);
            matmul_many(&self.pool, &mut [(&layer.gate, &mut s.gate), (&layer.up, &mut s.up)], &s.acts);
            match c.act {
                Activation::Silu => (kernels().silu_mul)(&mut s.gate, &s.up),
                Activation::GeluTanh => (kernels().gelu_mul)(&mut s.gate, &s.up),
            }
            s.acts.quantize(&s.gate, t, c.n_ff);
            matmul(&self.pool, &layer.down, &s.acts, &mut s.proj);
            add_residual(&mut s.x, &mut s.proj, layer.post_ffn_norm.as_deref(), c.eps, &mut s.xn);
        }
        let first = if all { 0 } else { t - 1 };
        let rows = t - first;
        rms_norm(&s.x[first * e..], &self.norm, c.eps, &mut s.xn);
        s.acts.quantize(&s.xn, rows, e);
        let mut logits = Vec::new();
        matmul(&self.pool, self.output.as_ref().unwrap_or(&self.embd), &s.acts, &mut logits);
        logits
    }
}

/// The KV cache is allocated untouched (pages cost memory only once used),
/// so an oversized context would load fine and then be killed by the OS
/// mid-answer as the conversation grows: refuse it now, saying what it needs.
pub fn check_memory_for(ctx: usize, kv_bytes: usize) -> Result<(), Unsupported> {
    let Some(free) = available_memory_bytes() else { return Ok(()) };
    if kv_bytes <= free {
        return Ok(());
    }
    let fits = (ctx as u128 * free as u128 / kv_bytes.max(1) as u128) as usize / 256 * 256;
    let gb = |b: usize| b as f64 / 1e9;
    Err(format!(
        "a {ctx}-token context needs {:.1} GB for its key/value cache and this computer has {:.1} GB free; choose a context of at most {fits} tokens (--context, or Settings)",
        gb(kv_bytes),
        gb(free)
    ))
}

/// Memory the OS says it can still give (Linux's MemAvailable); None elsewhere.
fn available_memory_bytes() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// x += proj, with proj first put through RMSNorm × `post` where the
/// architecture has one (Gemma's "sandwich" norms). `tmp` is scratch.
fn add_residual(x: &mut [f32], proj: &mut Vec<f32>, post: Option<&[f32]>, eps: f32, tmp: &mut Vec<f32>) {
    let p = match post {
        Some(w) => {
            rms_norm(proj, w, eps, tmp);
            &*tmp
        }
        None => &*proj,
    };
    for (x, p) in x.iter_mut().zip(p) {
        *x += p;
    }
}

/// Add `b` to every `b.len()`-wide row of `x`.
fn add_rows(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        for (v, b) in row.iter_mut().zip(b) {
            *v += b;
        }
    }
}
