//! Running a GGUF's weights: pick the implementation by `general.architecture`.
//!
//! Everything here is a next-token function: feed tokens at a position, get the
//! logits of the last one. The KV cache lives inside the weights; `pos == 0`
//! starts a fresh sequence. Which tokens it holds, and how far back it can go,
//! is kept beside it by [`super::kv::KvCache`].

use super::decoder::Decoder;
use super::gguf::Gguf;
use super::kv::KvCache;
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_gemma3, quantized_llama, quantized_phi3, quantized_qwen2};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("this model's architecture '{0}' is not supported. duet runs: llama (SmolLM2, Llama 3, Mistral-style), qwen2, gemma3 and phi3 GGUF files.")]
    Unsupported(String),
    #[error(
        "the model's weights could not be loaded: {0}. The file may be damaged or use a layout duet does not know."
    )]
    Load(String),
    #[error("not enough memory: {0}")]
    Memory(String),
    #[error("the model failed while computing: {0}")]
    Compute(String),
}

pub enum Weights {
    /// duet's own kernels (llama, qwen2, gemma3 with Q4_0/Q4_1/Q5_0/Q8_0/Q4_K/Q6_K matrices, on the CPU).
    Fast(Box<Decoder>),
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
}

pub const SUPPORTED: &[&str] = &["llama", "qwen2", "gemma3", "phi3"];

impl Weights {
    /// Whether duet's own kernels run this file here (else candle does).
    pub fn runs_fast(g: &Gguf, device: &Device) -> bool {
        // DUET_ENGINE=candle forces candle's implementation (comparisons, and an
        // escape hatch should duet's kernels misbehave on some CPU).
        let forced_candle = std::env::var("DUET_ENGINE").is_ok_and(|v| v == "candle");
        device.is_cpu() && !forced_candle && Decoder::check(g).is_ok()
    }

    /// duet's own kernels; only for a file `runs_fast` accepted.
    pub fn load_fast(g: &Gguf, file: &std::fs::File, ctx: usize, threads: usize) -> Result<Self, ModelError> {
        let cfg = super::decoder::arch::config(g).map_err(ModelError::Load)?;
        super::decoder::check_memory_for(ctx, cfg.kv_bytes(ctx)).map_err(ModelError::Memory)?;
        Decoder::load(g, file, ctx, threads).map(|m| Weights::Fast(Box::new(m))).map_err(ModelError::Load)
    }

    /// candle's implementation, whatever the file (also the tests' second opinion).
    pub fn load_candle(
        g: Gguf,
        reader: &mut std::io::BufReader<std::fs::File>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let arch = g.architecture().map_err(|e| ModelError::Load(e.to_string()))?.to_string();
        let content = g.content;
        let load = |e: candle_core::Error| ModelError::Load(e.to_string());
        Ok(match arch.as_str() {
            "llama" => Weights::Llama(quantized_llama::ModelWeights::from_gguf(content, reader, device).map_err(load)?),
            "qwen2" => Weights::Qwen2(quantized_qwen2::ModelWeights::from_gguf(content, reader, device).map_err(load)?),
            "gemma3" => {
                Weights::Gemma3(quantized_gemma3::ModelWeights::from_gguf(content, reader, device).map_err(load)?)
            }
            "phi3" => {
                Weights::Phi3(quantized_phi3::ModelWeights::from_gguf(false, content, reader, device).map_err(load)?)
            }
            other => return Err(ModelError::Unsupported(other.to_string())),
        })
    }

    /// Logits of the last of `tokens`, which sit at positions `pos..pos+len`.
    pub fn forward(&mut self, tokens: &[u32], pos: usize, device: &Device) -> Result<Vec<f32>, ModelError> {
        if let Weights::Fast(m) = self {
            return Ok(m.forward(tokens, pos, false));
        }
        let compute = |e: candle_core::Error| ModelError::Compute(e.to_string());
        let input = Tensor::new(tokens, device).and_then(|t| t.unsqueeze(0)).map_err(compute)?;
        let logits = match self {
            Weights::Fast(_) => unreachable!("handled above"),
            Weights::Llama(m) => m.forward(&input, pos),
            Weights::Qwen2(m) => m.forward(&input, pos),
            Weights::Gemma3(m) => m.forward(&input, pos),
            Weights::Phi3(m) => m.forward(&input, pos),
        }
        .map_err(compute)?;
        logits
            .squeeze(0)
            .and_then(|t| t.to_dtype(candle_core::DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(compute)
    }
}

impl Weights {
    /// Logits at every position of `tokens`, which sit at positions
    /// `pos..pos+len`: in one pass with duet's kernels; candle's models give
    /// only the last position's, so there it is one token at a time.
    pub fn forward_each(&mut self, tokens: &[u32], pos: usize, device: &Device) -> Result<Vec<Vec<f32>>, ModelError> {
        if let Weights::Fast(m) = self {
            let all = m.forward(tokens, pos, true);
            return Ok(all.chunks_exact(all.len() / tokens.len()).map(<[f32]>::to_vec).collect());
        }
        tokens.iter().enumerate().map(|(i, &id)| self.forward(&[id], pos + i, device)).collect()
    }

    /// An empty record of this implementation's KV cache: duet's kernels
    /// overwrite it from any position, candle's models only append to it.
    pub fn kv_cache(&self) -> KvCache {
        match self {
            Weights::Fast(_) => KvCache::rewindable(),
            Weights::Llama(_) | Weights::Qwen2(_) | Weights::Gemma3(_) | Weights::Phi3(_) => KvCache::append_only(),
        }
    }

    pub fn threads(&self) -> usize {
        match self {
            Weights::Fast(m) => m.threads(),
            _ => candle_core::utils::get_num_threads(),
        }
    }

    /// Which implementation runs the file (shown by `duet bench`).
    pub fn backend_name(&self) -> String {
        match self {
            Weights::Fast(m) => format!("duet kernels ({}, {} threads)", super::kernels::kernels().name, m.threads()),
            Weights::Llama(_) | Weights::Qwen2(_) | Weights::Gemma3(_) | Weights::Phi3(_) => "candle".to_string(),
        }
    }
}

/// Physical cores (hyper-threads share one core's arithmetic units, so using
/// them slows this kind of work down). Falls back to the logical count.
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    #[cfg(target_os = "linux")]
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        let mut cores = std::collections::HashSet::new();
        let mut phys = "";
        for line in info.lines() {
            if let Some(v) = line.strip_prefix("physical id") {
                phys = v.trim_start_matches([' ', '\t', ':']);
            } else if let Some(v) = line.strip_prefix("core id") {
                cores.insert((phys.to_string(), v.trim_start_matches([' ', '\t', ':']).to_string()));
            }
        }
        if !cores.is_empty() {
            return cores.len().min(logical);
        }
    }
    logical
}

/// The device to run on: the first GPU when built with `cuda`/`metal` and one
/// is present, else the CPU.
pub fn pick_device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = Device::new_metal(0) {
        return d;
    }
    Device::Cpu
}
