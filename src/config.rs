//! Where duet keeps its files, resolved once from the environment.
//!
//! `DUET_HOME` moves everything (tests point it at a temporary folder);
//! `DUET_MODELS` moves only the model cache, so many homes can share one
//! download. Nothing here creates folders: callers create what they write.

use std::path::{Path, PathBuf};

/// The folders duet reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Model files (`*.gguf`, embedding folders).
    pub models_dir: PathBuf,
    /// The database and other user data.
    pub data_dir: PathBuf,
    /// `settings.toml` lives here.
    pub config_dir: PathBuf,
}

impl Paths {
    /// Resolve from the process environment (`DUET_HOME`, `DUET_MODELS`), falling
    /// back to the platform's usual places (`~/.local/share/duet` on Linux).
    pub fn from_env() -> Self {
        let home = std::env::var_os("DUET_HOME").filter(|v| !v.is_empty());
        let models = std::env::var_os("DUET_MODELS").filter(|v| !v.is_empty());
        Self::resolve(home.map(PathBuf::from), models.map(PathBuf::from))
    }

    /// Resolve from explicit overrides; `None` means "use the default".
    pub fn resolve(home: Option<PathBuf>, models: Option<PathBuf>) -> Self {
        let (data_dir, config_dir) = match home {
            Some(home) => (home.join("data"), home.clone()),
            None => match directories::ProjectDirs::from("", "", "duet") {
                Some(dirs) => (dirs.data_dir().to_path_buf(), dirs.config_dir().to_path_buf()),
                // No home directory at all (a bare container): stay next to the binary's cwd.
                None => (PathBuf::from(".duet/data"), PathBuf::from(".duet")),
            },
        };
        let models_dir = models.unwrap_or_else(|| data_dir.join("models"));
        Paths { models_dir, data_dir, config_dir }
    }

    /// The folders for this run: the environment's, then a data folder chosen in
    /// Settings (unless `DUET_HOME` says otherwise; `DUET_MODELS` still wins for models).
    pub fn for_this_run() -> Self {
        let mut paths = Self::from_env();
        if std::env::var_os("DUET_HOME").is_some_and(|v| !v.is_empty()) {
            return paths;
        }
        if let Ok(settings) = Settings::load(&paths) {
            let chosen = settings.app.data_dir.trim();
            if !chosen.is_empty() {
                paths.move_data_to(Path::new(chosen));
            }
        }
        paths
    }

    /// Keep data (and, unless moved on their own, models) in `dir`.
    pub fn move_data_to(&mut self, dir: &Path) {
        if self.models_dir == self.data_dir.join("models") {
            self.models_dir = dir.join("models");
        }
        self.data_dir = dir.to_path_buf();
    }

    /// The path a catalog file name resolves to inside the model cache.
    pub fn model_file(&self, file_name: &str) -> PathBuf {
        self.models_dir.join(file_name)
    }

    pub fn settings_file(&self) -> PathBuf {
        self.config_dir.join("settings.toml")
    }
}

/// Shown to the user so they know where things went.
pub fn describe(paths: &Paths) -> String {
    fn show(p: &Path) -> String {
        p.display().to_string()
    }
    format!(
        "models: {}\ndata:   {}\nconfig: {}",
        show(&paths.models_dir),
        show(&paths.data_dir),
        show(&paths.config_dir)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_moves_everything_and_models_override_wins() {
        let p = Paths::resolve(Some("/h".into()), None);
        assert_eq!(p.models_dir, PathBuf::from("/h/data/models"));
        assert_eq!(p.settings_file(), PathBuf::from("/h/settings.toml"));
        let mut p = Paths::resolve(Some("/h".into()), Some("/shared/models".into()));
        assert_eq!(p.models_dir, PathBuf::from("/shared/models"));
        assert_eq!(p.data_dir, PathBuf::from("/h/data"));
        p.move_data_to(Path::new("/big/disk"));
        assert_eq!(p.data_dir, PathBuf::from("/big/disk"));
        assert_eq!(p.models_dir, PathBuf::from("/shared/models"), "DUET_MODELS still wins");
        let mut p = Paths::resolve(Some("/h".into()), None);
        p.move_data_to(Path::new("/big/disk"));
        assert_eq!(p.models_dir, PathBuf::from("/big/disk/models"));
    }
}

/// Settings people change, saved as `settings.toml` (plain serde; no runtime handles).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Settings {
    /// Cloud endpoints that speak OpenAI's `/v1/chat/completions`.
    #[serde(default = "default_profiles")]
    pub cloud: Vec<CloudProfile>,
    /// Requests in flight at once when a batch job uses a cloud backend.
    #[serde(default = "default_concurrency")]
    pub cloud_concurrency: usize,
    /// What the desktop app remembers.
    #[serde(default)]
    pub app: AppSettings,
}

/// The desktop app's remembered choices.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(default)]
pub struct AppSettings {
    /// "system", "light" or "dark".
    pub theme: String,
    /// No network at all: no downloads, no cloud.
    pub offline: bool,
    /// A catalog id or the path of a .gguf file; empty = the catalog's default.
    pub default_model: String,
    /// .gguf files the user added from disk.
    pub local_files: Vec<String>,
    /// Where the database and models go; empty = the platform's usual folder.
    /// Takes effect at the next start.
    pub data_dir: String,
    pub system_prompt: String,
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: usize,
    pub seed: u64,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            theme: "system".into(),
            offline: false,
            default_model: String::new(),
            local_files: Vec::new(),
            data_dir: String::new(),
            system_prompt: String::new(),
            // Low: models under 1B parameters (the default is 135M) wander at 0.7
            // ("Allez à l'emperere! The capital of France is Paris…"); 0.2 keeps
            // them on the question and still varies a regenerated answer.
            temperature: 0.2,
            top_p: 0.95,
            max_tokens: 512,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CloudProfile {
    pub name: String,
    /// e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    pub model: String,
    /// Environment variable holding the key (default `OPENAI_API_KEY`).
    #[serde(default)]
    pub key_env: Option<String>,
    /// A key written into this file. Prefer the OS keyring (`duet cloud key NAME`)
    /// or an environment variable; this exists for machines that have neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Prices in US dollars per million tokens, for cost estimates.
    #[serde(default)]
    pub usd_per_m_input: f64,
    #[serde(default)]
    pub usd_per_m_output: f64,
}

fn default_profiles() -> Vec<CloudProfile> {
    vec![CloudProfile {
        name: "openai".into(),
        base_url: "https://api.openai.com/v1".into(),
        model: "gpt-4o-mini".into(),
        key_env: Some("OPENAI_API_KEY".into()),
        key: None,
        usd_per_m_input: 0.15,
        usd_per_m_output: 0.60,
    }]
}

fn default_concurrency() -> usize {
    4
}

impl Default for Settings {
    fn default() -> Self {
        Settings { cloud: default_profiles(), cloud_concurrency: default_concurrency(), app: AppSettings::default() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{path} is not valid settings: {why}. Fix it or delete it to start from the defaults.")]
    Invalid { path: String, why: String },
    #[error("could not save {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

impl Settings {
    /// Load, or the defaults when there is no file yet.
    pub fn load(paths: &Paths) -> Result<Self, SettingsError> {
        let path = paths.settings_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| SettingsError::Invalid { path: path.display().to_string(), why: e.to_string() }),
            Err(_) => Ok(Settings::default()),
        }
    }

    /// Save atomically (write a temporary file, then rename): a crash never leaves half a file.
    pub fn save(&self, paths: &Paths) -> Result<(), SettingsError> {
        let path = paths.settings_file();
        let err = |source| SettingsError::Write { path: path.display().to_string(), source };
        std::fs::create_dir_all(&paths.config_dir).map_err(err)?;
        let text = toml::to_string_pretty(self).map_err(|e| err(std::io::Error::other(e.to_string())))?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }

    pub fn profile(&self, name: &str) -> Option<&CloudProfile> {
        self.cloud.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_default_to_openai() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::resolve(Some(dir.path().to_path_buf()), None);
        let mut s = Settings::load(&paths).expect("defaults");
        assert_eq!(s.cloud[0].name, "openai");
        s.cloud.push(CloudProfile {
            name: "lab".into(),
            base_url: "http://127.0.0.1:9/v1".into(),
            model: "m".into(),
            key_env: None,
            key: None,
            usd_per_m_input: 0.0,
            usd_per_m_output: 0.0,
        });
        s.save(&paths).expect("saves");
        assert_eq!(Settings::load(&paths).expect("loads"), s);
    }
}
