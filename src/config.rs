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
        let p = Paths::resolve(Some("/h".into()), Some("/shared/models".into()));
        assert_eq!(p.models_dir, PathBuf::from("/shared/models"));
        assert_eq!(p.data_dir, PathBuf::from("/h/data"));
    }
}
