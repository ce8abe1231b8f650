//! Reading a GGUF file's header: metadata and tensor list, without the weights.
//!
//! Everything that decides *how* to run a file (architecture, tokenizer,
//! template, context length) comes from here, so a single `.gguf` is a whole model.

use crate::guard::quietly;
use candle_core::quantized::gguf_file::{Content, Value};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path} does not exist. Check the path, or run `duet models list` to see the models duet can fetch.")]
    Missing { path: String },
    #[error("{path} is not a GGUF model file (it does not start with the GGUF magic bytes). duet runs .gguf files; convert the model or pick one from `duet models list`.")]
    NotGguf { path: String },
    #[error("{path} could not be read as GGUF: {why}. The file is probably truncated or damaged; download it again.")]
    Corrupt { path: String, why: String },
    #[error("{path} is truncated: its tensors need {needed} bytes but the file has {actual}. Download it again (`duet models pull <id>` re-fetches and verifies catalog models).")]
    Truncated { path: String, needed: u64, actual: u64 },
    #[error("the model file lacks '{key}' in its metadata, so duet cannot tell how to run it")]
    MissingKey { key: String },
}

/// A parsed GGUF header plus convenience accessors.
pub struct Gguf {
    pub content: Content,
    pub file_size_bytes: u64,
}

impl Gguf {
    /// Read and sanity-check the header of `path`: magic, parse, and that every
    /// tensor lies inside the file (a truncated download fails here, in words,
    /// rather than deep inside candle).
    pub fn open(path: &Path) -> Result<(Self, BufReader<File>), GgufError> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|_| GgufError::Missing { path: shown.clone() })?;
        let file_size_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut reader = BufReader::new(file);
        let mut magic = [0u8; 4];
        if reader.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            return Err(GgufError::NotGguf { path: shown });
        }
        reader.seek(SeekFrom::Start(0)).map_err(|e| GgufError::Corrupt { path: shown.clone(), why: e.to_string() })?;
        let corrupt = |why: String| GgufError::Corrupt { path: shown.clone(), why };
        // candle's reader checks lengths against the file, but a few crafted
        // values still make it panic (an alignment of 0 divides by zero): such
        // a header is damaged, and is reported as such, in words.
        let content = match quietly(|| Content::read(&mut reader)) {
            Ok(Ok(c)) => c,
            // candle appends a backtrace to its message when RUST_BACKTRACE is set: the first line is the reason.
            Ok(Err(e)) => return Err(corrupt(e.to_string().lines().next().unwrap_or_default().to_string())),
            Err(_) => return Err(corrupt("its header holds impossible values".into())),
        };
        let mut needed = content.tensor_data_offset;
        for (name, t) in &content.tensor_infos {
            let end = tensor_end(&content, t).ok_or_else(|| {
                corrupt(format!("tensor '{name}' has impossible dimensions or lies outside any file"))
            })?;
            needed = needed.max(end);
        }
        if !content.tensor_infos.is_empty() && needed > file_size_bytes {
            return Err(GgufError::Truncated { path: shown, needed, actual: file_size_bytes });
        }
        Ok((Gguf { content, file_size_bytes }, reader))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.to_string().ok()).map(|s| s.as_str())
    }

    pub fn u32(&self, key: &str) -> Option<u32> {
        self.get(key).and_then(value_u32)
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(|v| v.to_bool().ok())
    }

    pub fn f32(&self, key: &str) -> Option<f32> {
        match self.get(key)? {
            Value::F32(v) => Some(*v),
            Value::F64(v) => Some(*v as f32),
            _ => None,
        }
    }

    pub fn array(&self, key: &str) -> Option<&Vec<Value>> {
        self.get(key).and_then(|v| v.to_vec().ok())
    }

    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.string("general.architecture").ok_or_else(|| GgufError::MissingKey { key: "general.architecture".into() })
    }

    /// `<arch>.<suffix>`, e.g. `llama.context_length`.
    pub fn arch_u32(&self, suffix: &str) -> Option<u32> {
        let arch = self.architecture().ok()?;
        self.u32(&format!("{arch}.{suffix}"))
    }

    /// Facts shown to people (`duet models`, `duet bench`, the Models screen).
    pub fn summary(&self) -> ModelFacts {
        let arch = self.architecture().unwrap_or("unknown").to_string();
        let n_layers = self.arch_u32("block_count").unwrap_or(0);
        let n_embd = self.arch_u32("embedding_length").unwrap_or(0);
        let n_head = self.arch_u32("attention.head_count").unwrap_or(0);
        let n_kv_head = self.arch_u32("attention.head_count_kv").unwrap_or(n_head);
        let head_dim = self.arch_u32("attention.key_length").unwrap_or(n_embd.checked_div(n_head).unwrap_or(0));
        ModelFacts {
            name: self.string("general.name").unwrap_or("").to_string(),
            architecture: arch,
            context_length: self.arch_u32("context_length").unwrap_or(2048),
            n_layers,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            file_size_bytes: self.file_size_bytes,
            tensor_count: self.content.tensor_infos.len(),
        }
    }
}

/// Where a tensor's bytes end in the file, with every step checked: None when
/// its dimensions overflow, do not fill whole blocks, or its offset runs past
/// any possible file (a crafted offset near 2^64 must not wrap around).
fn tensor_end(content: &Content, t: &candle_core::quantized::gguf_file::TensorInfo) -> Option<u64> {
    let elems = t.shape.dims().iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64))?;
    let block = t.ggml_dtype.block_size() as u64;
    if block == 0 || elems % block != 0 {
        return None;
    }
    let bytes = (elems / block).checked_mul(t.ggml_dtype.type_size() as u64)?;
    content.tensor_data_offset.checked_add(t.offset)?.checked_add(bytes)
}

fn value_u32(v: &Value) -> Option<u32> {
    match v {
        Value::U8(x) => Some(*x as u32),
        Value::U16(x) => Some(*x as u32),
        Value::U32(x) => Some(*x),
        Value::U64(x) => u32::try_from(*x).ok(),
        Value::I8(x) => u32::try_from(*x).ok(),
        Value::I16(x) => u32::try_from(*x).ok(),
        Value::I32(x) => u32::try_from(*x).ok(),
        Value::I64(x) => u32::try_from(*x).ok(),
        _ => None,
    }
}

/// What a model is, in numbers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelFacts {
    pub name: String,
    pub architecture: String,
    pub context_length: u32,
    pub n_layers: u32,
    pub n_embd: u32,
    pub n_head: u32,
    pub n_kv_head: u32,
    pub head_dim: u32,
    pub file_size_bytes: u64,
    pub tensor_count: usize,
}

impl ModelFacts {
    /// Bytes of an f32 KV cache holding `ctx` positions.
    pub fn kv_cache_bytes(&self, ctx: u32) -> u64 {
        2 * self.n_layers as u64 * ctx as u64 * self.n_kv_head as u64 * self.head_dim as u64 * 4
    }

    /// Memory to run it with a `ctx`-position cache: weights, cache, and ~100 MB of runtime.
    pub fn ram_bytes(&self, ctx: u32) -> u64 {
        self.file_size_bytes + self.kv_cache_bytes(ctx) + 100 * 1024 * 1024
    }
}
