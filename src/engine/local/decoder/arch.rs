//! What each architecture duet's kernels run asks of the forward pass, read
//! from the GGUF's metadata: the same decoder block with a few switches.
//!
//! - `llama` (SmolLM2, Llama 3, Mistral-style): RoPE on adjacent pairs,
//!   SwiGLU, Llama 3's per-frequency RoPE factors.
//! - `qwen2`: llama plus biases on q, k and v, and RoPE on the two halves of
//!   each head (llama.cpp's "neox" order).
//! - `gemma3`: embeddings scaled by √n_embd, RMSNorm of each query and key
//!   head, norms after attention and after the feed-forward too, GELU (tanh)
//!   gate, and five sliding-window layers (RoPE base 10 000, 512 keys) for
//!   every global one (the file's base, linear scaling if it says so).
//!
//! Anything else (other RoPE scaling, mixtures of experts, other tensor
//! types) is refused here with the reason, and candle runs the file.

use super::file::ggml_code;
use super::Unsupported;
use crate::engine::local::gguf::Gguf;
use crate::engine::local::kernels::QMatrix;
use candle_core::quantized::GgmlDType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Gemma3,
}

/// Which elements of a head rotate together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// (2i, 2i+1): llama.cpp's "normal" order (its converter permutes llama's q/k rows for it).
    Pairs,
    /// (i, i + d/2): llama.cpp's "neox" order, as the Hugging Face weights are.
    Halves,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SwiGLU: silu(gate)·up.
    Silu,
    /// GeGLU with the tanh approximation: gelu(gate)·up.
    GeluTanh,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub eps: f32,
    pub vocab: usize,
    pub rope_style: RopeStyle,
    /// RoPE base of the global layers.
    pub rope_base: f32,
    /// Positions are divided by this in the global layers (linear scaling).
    pub rope_linear: f32,
    /// Sliding-window layers: their key window and RoPE base, and how often a
    /// global layer comes (every `pattern`-th).
    pub sliding: Option<Sliding>,
    /// Embeddings are multiplied by this (Gemma: √n_embd).
    pub embed_scale: f32,
    pub act: Activation,
}

#[derive(Debug, Clone, Copy)]
pub struct Sliding {
    pub window: usize,
    pub rope_base: f32,
    pub pattern: usize,
}

impl Config {
    /// Whether layer `i` attends to a sliding window (else to everything).
    pub fn is_sliding(&self, i: usize) -> bool {
        self.sliding.is_some_and(|s| !(i + 1).is_multiple_of(s.pattern))
    }

    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }

    /// Bytes of the f32 key and value cache for `ctx` positions.
    pub fn kv_bytes(&self, ctx: usize) -> usize {
        self.n_layer.saturating_mul(ctx).saturating_mul(self.kv_dim()).saturating_mul(2 * 4)
    }
}

/// The architecture, if duet's kernels run this file: without reading any weights.
pub fn check(g: &Gguf) -> Result<Arch, Unsupported> {
    let arch = match g.architecture().ok() {
        Some("llama") => Arch::Llama,
        Some("qwen2") => Arch::Qwen2,
        Some("gemma3") => Arch::Gemma3,
        Some(other) => return Err(format!("the '{other}' architecture")),
        None => return Err("no architecture".into()),
    };
    if g.arch_u32("expert_count").unwrap_or(0) > 1 {
        return Err("mixture of experts".into());
    }
    // Llama 3.1+ files carry their long-context RoPE as per-frequency factors
    // (`rope_freqs.weight`), which load applies; Gemma 3's larger files scale
    // their global layers linearly. Other schemes (YaRN, …) stay with candle.
    let scaling = g.string(&format!("{}.rope.scaling.type", g.architecture().unwrap_or("")));
    let allowed = match arch {
        Arch::Gemma3 => matches!(scaling, None | Some("none") | Some("linear")),
        _ => matches!(scaling, None | Some("none")),
    };
    if !allowed {
        return Err(format!("RoPE scaling '{}'", scaling.unwrap_or("")));
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
    Ok(arch)
}

/// The hyperparameters of a file `check` accepted.
pub fn config(g: &Gguf) -> Result<Config, Unsupported> {
    let arch = check(g)?;
    let prefix = g.architecture().map_err(|e| e.to_string())?.to_string();
    let need = |k: &str| g.arch_u32(k).map(|v| v as usize).ok_or_else(|| format!("{prefix}.{k} is missing"));
    let n_embd = need("embedding_length")?;
    let n_head = need("attention.head_count")?;
    let n_kv_head = g.arch_u32("attention.head_count_kv").map_or(n_head, |v| v as usize);
    if n_head == 0 || n_kv_head == 0 || n_embd == 0 {
        return Err("a head count or the embedding length is zero".into());
    }
    let head_dim = g.arch_u32("attention.key_length").map_or(n_embd / n_head, |v| v as usize);
    if g.arch_u32("attention.value_length").is_some_and(|v| v as usize != head_dim) {
        return Err("values and keys of different sizes".into());
    }
    if g.arch_u32("rope.dimension_count").is_some_and(|d| d as usize != head_dim) {
        return Err("partial RoPE".into());
    }
    if n_head % n_kv_head != 0 || !head_dim.is_multiple_of(2) || head_dim == 0 {
        return Err("unusual head layout".into());
    }
    let f = |k: &str| g.f32(&format!("{prefix}.{k}"));
    let default_eps = if arch == Arch::Gemma3 { 1e-6 } else { 1e-5 };
    let default_base = match arch {
        Arch::Gemma3 => 1_000_000.0,
        Arch::Qwen2 => 1_000_000.0,
        Arch::Llama => 10_000.0,
    };
    let sliding = match arch {
        Arch::Gemma3 => Some(Sliding {
            window: g.arch_u32("attention.sliding_window").map_or(512, |v| v as usize).max(1),
            // llama.cpp and Hugging Face fix the local base at 10 000 for Gemma 3.
            rope_base: f("rope.local_freq_base").unwrap_or(10_000.0),
            pattern: g.arch_u32("attention.sliding_window_pattern").map_or(6, |v| v as usize).max(1),
        }),
        _ => None,
    };
    let rope_linear = match g.string(&format!("{prefix}.rope.scaling.type")) {
        Some("linear") => f("rope.scaling.factor").filter(|v| v.is_finite() && *v > 0.0).unwrap_or(1.0),
        _ => 1.0,
    };
    Ok(Config {
        arch,
        n_layer: need("block_count")?,
        n_embd,
        n_head,
        n_kv_head,
        head_dim,
        n_ff: need("feed_forward_length")?,
        eps: f("attention.layer_norm_rms_epsilon").unwrap_or(default_eps),
        vocab: 0,
        rope_style: if arch == Arch::Llama { RopeStyle::Pairs } else { RopeStyle::Halves },
        rope_base: f("rope.freq_base").unwrap_or(default_base),
        rope_linear,
        sliding,
        embed_scale: if arch == Arch::Gemma3 { (n_embd as f32).sqrt() } else { 1.0 },
        act: if arch == Arch::Gemma3 { Activation::GeluTanh } else { Activation::Silu },
    })
}
