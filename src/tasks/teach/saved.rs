//! Taught models on disk: one safetensors file each, in `DATA/taught/`. The
//! head's weights (and, when the body was fine-tuned, the body's), the
//! fingerprints of the taught texts, and a JSON header saying what it is:
//! labels, embedding model, data hash, metrics, curve, date. The stored file
//! *is* the export format, so export is a copy and import a check and a copy.

use super::body::Weights;
use super::head::{Epoch, Head};
use super::TeachError;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bumped when a file written by a newer duet could not be read right by this one.
pub const FORMAT: u32 = 1;
const META_KEY: &str = "duet.taught";
const BODY_PREFIX: &str = "body.";

/// What a taught model is, kept in its file's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaughtInfo {
    pub format: u32,
    pub name: String,
    pub labels: Vec<String>,
    /// The catalog id of the embedding model the head reads (the body's base).
    pub embedder: String,
    pub dim: usize,
    pub body_fine_tuned: bool,
    /// The file it was taught from (its name only: paths can say too much when shared).
    pub source: String,
    pub text_column: String,
    pub label_column: String,
    /// Of the texts and labels taught, in order (see `Examples::sha256`).
    pub data_sha256: String,
    pub taught_rows: usize,
    pub held_out_rows: usize,
    pub train_accuracy: f32,
    pub held_out_accuracy: f32,
    /// Held-out accuracy of the frozen-body head, when the body was fine-tuned after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_held_out_accuracy: Option<f32>,
    pub curve: Vec<Epoch>,
    pub best_epoch: usize,
    pub seed: u64,
    pub seconds: f64,
    /// Unix seconds.
    pub created_at: i64,
    pub notes: Vec<String>,
    pub duet_version: String,
}

/// A taught model: its header, head, optional fine-tuned body, and the
/// fingerprints of every text it learned from (to warn when a "test" row was
/// really taught).
#[derive(Debug, Clone, PartialEq)]
pub struct Taught {
    pub info: TaughtInfo,
    pub head: Head,
    pub body: Option<Weights>,
    /// Sorted.
    pub text_hashes: Vec<u64>,
}

impl Taught {
    /// Whether `text` (compared without case or extra spaces) was among the texts taught.
    pub fn was_taught(&self, text: &str) -> bool {
        self.text_hashes.binary_search(&text_hash(text)).is_ok()
    }

    /// The fine-tuned body as the embedder reads it (name → values).
    pub fn body_tensors(&self) -> Option<HashMap<String, Vec<f32>>> {
        self.body.as_ref().map(super::body::by_name)
    }
}

/// A text's fingerprint: the first 8 bytes of the SHA-256 of its words, lowercased.
pub fn text_hash(text: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let key = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let d = Sha256::digest(key.as_bytes());
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Where taught models live.
pub fn folder(data_dir: &Path) -> PathBuf {
    data_dir.join("taught")
}

/// A name is a file name too: letters, digits, `-`, `_` and `.`, up to 64.
pub fn check_name(name: &str) -> Result<(), TeachError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(TeachError::BadName(name.to_string()))
    }
}

pub fn path_of(data_dir: &Path, name: &str) -> Result<PathBuf, TeachError> {
    check_name(name)?;
    Ok(folder(data_dir).join(format!("{name}.safetensors")))
}

/// Write `taught` to `path` whole or not at all (a temporary file, then a rename).
pub fn write(taught: &Taught, path: &Path) -> Result<(), TeachError> {
    let io = |e: std::io::Error| TeachError::Io(path.display().to_string(), e.to_string());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let labels = taught.head.labels();
    let mut blobs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("head.weight".into(), Dtype::F32, vec![labels, taught.head.dim], f32s(&taught.head.weight)),
        ("head.bias".into(), Dtype::F32, vec![labels], f32s(&taught.head.bias)),
        (
            "taught.text_hashes".into(),
            Dtype::U64,
            vec![taught.text_hashes.len()],
            taught.text_hashes.iter().flat_map(|h| h.to_le_bytes()).collect(),
        ),
    ];
    for (name, shape, values) in taught.body.iter().flatten() {
        blobs.push((format!("{BODY_PREFIX}{name}"), Dtype::F32, shape.clone(), f32s(values)));
    }
    let views: Vec<(String, TensorView)> = blobs
        .iter()
        .map(|(n, d, s, b)| TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<Result<_, _>>()
        .map_err(|e| TeachError::Io(path.display().to_string(), e.to_string()))?;
    let header =
        serde_json::to_string(&taught.info).map_err(|e| TeachError::Io(path.display().to_string(), e.to_string()))?;
    safetensors::serialize_to_file(views, Some(HashMap::from([(META_KEY.to_string(), header)])), path)
        .map_err(|e| TeachError::Io(path.display().to_string(), e.to_string()))
}

/// Read a whole taught model.
pub fn read(path: &Path) -> Result<Taught, TeachError> {
    let bad = |why: String| TeachError::Unreadable(path.display().to_string(), why);
    let bytes = std::fs::read(path).map_err(|e| TeachError::Io(path.display().to_string(), e.to_string()))?;
    let info = info_of(&bytes).map_err(bad)?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let f32s = |name: &str| -> Result<(Vec<usize>, Vec<f32>), TeachError> {
        let t = tensors.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        if t.dtype() != Dtype::F32 {
            return Err(bad(format!("{name} is not f32")));
        }
        let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok((t.shape().to_vec(), v))
    };
    let (wshape, weight) = f32s("head.weight")?;
    let (_, bias) = f32s("head.bias")?;
    if wshape != [info.labels.len(), info.dim] || bias.len() != info.labels.len() {
        return Err(bad(format!(
            "the head is {wshape:?}, and the header says {} labels × {}",
            info.labels.len(),
            info.dim
        )));
    }
    let hashes = tensors.tensor("taught.text_hashes").map_err(|e| bad(e.to_string()))?;
    let mut text_hashes: Vec<u64> = hashes
        .data()
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect();
    text_hashes.sort_unstable();
    let body = if info.body_fine_tuned {
        let mut names: Vec<String> =
            tensors.names().into_iter().filter(|n| n.starts_with(BODY_PREFIX)).map(str::to_string).collect();
        names.sort();
        if names.is_empty() {
            return Err(bad("the header says the body was fine-tuned, and the file has no body".into()));
        }
        let mut body = Vec::new();
        for n in names {
            let (shape, values) = f32s(&n)?;
            body.push((n[BODY_PREFIX.len()..].to_string(), shape, values));
        }
        Some(body)
    } else {
        None
    };
    Ok(Taught { info, head: Head { weight, bias, dim: wshape[1] }, body, text_hashes })
}

/// The header of a taught-model file, reading only the header.
pub fn read_info(path: &Path) -> Result<TaughtInfo, TeachError> {
    let bad = |why: String| TeachError::Unreadable(path.display().to_string(), why);
    let mut file = std::fs::File::open(path).map_err(|e| TeachError::Io(path.display().to_string(), e.to_string()))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|_| bad("it is too short to be a safetensors file".into()))?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 {
        return Err(bad("its header is too large; it is not a taught model".into()));
    }
    let mut head = len.to_vec();
    file.take(n).read_to_end(&mut head).map_err(|e| bad(e.to_string()))?;
    info_of(&head).map_err(bad)
}

/// The header out of the first bytes of a file (at least the whole header).
fn info_of(bytes: &[u8]) -> Result<TaughtInfo, String> {
    let n = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize);
    let header = n
        .and_then(|n| bytes.get(8..8usize.checked_add(n)?))
        .ok_or("it is not a safetensors file (or it was cut short)")?;
    let json: serde_json::Value =
        serde_json::from_slice(header).map_err(|_| "it is not a safetensors file (its header is not JSON)")?;
    let meta = json
        .get("__metadata__")
        .and_then(|m| m.get(META_KEY))
        .and_then(|m| m.as_str())
        .ok_or("it is a safetensors file, but not one duet taught (no duet.taught header)")?;
    let info: TaughtInfo =
        serde_json::from_str(meta).map_err(|e| format!("its duet.taught header is unreadable: {e}"))?;
    if info.format > FORMAT {
        return Err(format!("it was written by a newer duet (format {}); update duet to use it", info.format));
    }
    Ok(info)
}

/// Every taught model in `data_dir`, newest first; unreadable files are listed with why.
pub fn list(data_dir: &Path) -> Vec<Result<TaughtInfo, TeachError>> {
    let Ok(entries) = std::fs::read_dir(folder(data_dir)) else { return Vec::new() };
    let mut out: Vec<Result<TaughtInfo, TeachError>> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .map(|p| read_info(&p))
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.as_ref().map_or(i64::MAX, |i| i.created_at)));
    out
}
