//! What every screen shares: folders, settings, the database, the catalog and
//! the local model (loaded on a background thread). Screens ask for a backend
//! here; they never open files or sockets themselves.

use super::progress::GuiProgress;
use crate::catalog::{Catalog, ModelKind};
use crate::config::{Paths, Settings};
use crate::db::Db;
use crate::engine::cloud::{CloudBackend, CloudOptions};
use crate::engine::local::{LoadOptions, LocalEngine};
use crate::engine::{Backend, Cancel};
use crate::store::Store;
use eframe::egui;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};

/// Where the local model stands.
pub enum LocalState {
    /// Nothing asked for yet.
    Idle,
    /// Fetching or loading; `progress` says how far.
    Busy,
    Ready(LocalEngine),
    Failed(String),
}

pub struct Services {
    pub paths: Paths,
    pub catalog: Catalog,
    pub settings: Settings,
    pub db: Db,
    pub local: LocalState,
    /// Which model `local` is (a catalog id or a file path).
    pub local_spec: String,
    pub local_progress: Arc<GuiProgress>,
    pub local_cancel: Cancel,
    local_rx: Option<mpsc::Receiver<Result<LocalEngine, String>>>,
    pub last_tok_per_s: Option<f64>,
    /// A message for the person (errors from saving settings, exports…).
    pub notice: Option<String>,
    notices: (mpsc::Sender<String>, mpsc::Receiver<String>),
}

impl Services {
    /// Open the database and settings of `paths`; a broken settings file falls
    /// back to the defaults with a notice instead of refusing to start.
    pub fn open(paths: Paths) -> anyhow::Result<Self> {
        let catalog = Catalog::builtin()?;
        let (settings, notice) = match Settings::load(&paths) {
            Ok(s) => (s, None),
            Err(e) => (Settings::default(), Some(e.to_string())),
        };
        let db = Db::open_default(&paths)?;
        Ok(Services {
            paths,
            catalog,
            settings,
            db,
            local: LocalState::Idle,
            local_spec: String::new(),
            local_progress: Arc::new(GuiProgress::default()),
            local_cancel: Cancel::new(),
            local_rx: None,
            last_tok_per_s: None,
            notice,
            notices: mpsc::channel(),
        })
    }

    pub fn store(&self) -> Store {
        Store::new(self.paths.clone(), self.settings.app.offline)
    }

    pub fn save_settings(&mut self) {
        if let Err(e) = self.settings.save(&self.paths) {
            self.notice = Some(e.to_string());
        }
    }

    /// The model people get unless they picked another.
    pub fn default_model_spec(&self) -> String {
        if self.settings.app.default_model.is_empty() {
            self.catalog.default_model().id.clone()
        } else {
            self.settings.app.default_model.clone()
        }
    }

    /// Fetch (if needed) and load a model on a background thread.
    pub fn load_local(&mut self, spec: &str) {
        self.local_cancel.cancel();
        self.local_cancel = Cancel::new();
        self.local_progress = Arc::new(GuiProgress::default());
        self.local_spec = spec.to_string();
        self.local = LocalState::Busy;
        let (tx, rx) = mpsc::channel();
        self.local_rx = Some(rx);
        let (store, catalog, spec) = (self.store(), self.catalog.clone(), spec.to_string());
        let (progress, cancel) = (self.local_progress.clone(), self.local_cancel.clone());
        let spawned = std::thread::Builder::new().name("duet-load".into()).spawn(move || {
            let path = if spec.ends_with(".gguf") {
                Ok(PathBuf::from(&spec))
            } else {
                match catalog.get(&spec) {
                    Ok(entry) if entry.kind == ModelKind::Chat => {
                        store.ensure(entry, progress.as_ref(), &cancel).map_err(|e| e.to_string())
                    }
                    Ok(entry) => Err(format!("'{}' is an embedding model; pick a chat model.", entry.id)),
                    Err(e) => Err(e.to_string()),
                }
            };
            let result = path.and_then(|p| {
                use crate::progress::Progress;
                progress.begin("loading the model", 0);
                LocalEngine::start(&p, LoadOptions::default()).map_err(|e| e.to_string())
            });
            let _ = tx.send(result);
        });
        if spawned.is_err() {
            self.local = LocalState::Failed("could not start a thread to load the model".into());
        }
    }

    /// Ask where to save `content`, then write it; the outcome becomes a notice.
    /// The dialog runs on its own thread so the window keeps drawing.
    pub fn save_dialog(&self, file_name: String, content: String) {
        let tx = self.notices.0.clone();
        let _ = std::thread::Builder::new().name("duet-save".into()).spawn(move || {
            let Some(path) = rfd::FileDialog::new().set_file_name(&file_name).save_file() else { return };
            let msg = match std::fs::write(&path, content) {
                Ok(()) => format!("Saved {}", path.display()),
                Err(e) => format!("Could not save {}: {e}", path.display()),
            };
            let _ = tx.send(msg);
        });
    }

    /// Ask for a file to open; the answer arrives on the returned channel.
    pub fn open_dialog(&self, what: &str, extensions: &[&str]) -> mpsc::Receiver<PathBuf> {
        let (tx, rx) = mpsc::channel();
        let (what, extensions): (String, Vec<String>) =
            (what.into(), extensions.iter().map(|e| e.to_string()).collect());
        let _ = std::thread::Builder::new().name("duet-open".into()).spawn(move || {
            if let Some(p) = rfd::FileDialog::new().add_filter(&what, &extensions).pick_file() {
                let _ = tx.send(p);
            }
        });
        rx
    }

    /// Take in whatever background work finished since the last frame.
    pub fn poll(&mut self, _ctx: &egui::Context) {
        if let Ok(n) = self.notices.1.try_recv() {
            self.notice = Some(n);
        }
        if matches!(self.local, LocalState::Idle) {
            let spec = self.default_model_spec();
            self.load_local(&spec);
        }
        if let Some(rx) = &self.local_rx {
            match rx.try_recv() {
                Ok(Ok(engine)) => {
                    self.local = LocalState::Ready(engine);
                    self.local_rx = None;
                }
                Ok(Err(e)) => {
                    self.local = LocalState::Failed(e);
                    self.local_rx = None;
                }
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.local = LocalState::Failed("the model loader stopped unexpectedly".into());
                    self.local_rx = None;
                }
            }
        }
    }

    /// Something in the background that the screen should keep redrawing for.
    pub fn busy(&self) -> bool {
        matches!(self.local, LocalState::Busy)
    }

    /// One line for the status bar.
    pub fn local_status(&self) -> String {
        match &self.local {
            LocalState::Idle => "local model: not loaded".into(),
            LocalState::Busy => {
                let s = self.local_progress.snapshot();
                if s.total > 0 {
                    format!("local model: {} {:.0}%", s.label, 100.0 * s.position as f64 / s.total as f64)
                } else {
                    format!("local model: {}…", if s.label.is_empty() { "starting" } else { &s.label })
                }
            }
            LocalState::Ready(e) => format!("local model: {} (on this computer)", e.name),
            LocalState::Failed(_) => "local model: failed to load (see Models)".into(),
        }
    }

    /// The backend behind "local" or "cloud:NAME", or why it can't be used now.
    pub fn backend(&self, spec: &str) -> Result<Box<dyn Backend>, String> {
        if spec == "local" {
            return Ok(Box::new(self.local_engine()?.clone()));
        }
        Ok(Box::new(self.cloud(spec.strip_prefix("cloud:").unwrap_or(""))?))
    }

    /// The loaded local model, or what the user should know while there is none.
    pub fn local_engine(&self) -> Result<&LocalEngine, String> {
        match &self.local {
            LocalState::Ready(e) => Ok(e),
            LocalState::Busy => {
                Err("The local model is still loading; try again in a moment. (Progress is in the status bar.)".into())
            }
            LocalState::Failed(e) => {
                Err(format!("The local model could not be loaded: {e}. Open Models to fetch or pick another."))
            }
            LocalState::Idle => Err("The local model is not loaded yet.".into()),
        }
    }

    pub fn cloud(&self, name: &str) -> Result<CloudBackend, String> {
        Ok(crate::engine::cloud::backend_for(self.usable_profile(name)?, CloudOptions::default()))
    }

    /// Where a cloud profile would send data, without looking up its key (the
    /// keyring can be slow, and this is drawn every frame).
    pub fn cloud_host(&self, name: &str) -> Result<String, String> {
        Ok(crate::engine::cloud::host_of(&self.usable_profile(name)?.base_url))
    }

    fn usable_profile(&self, name: &str) -> Result<&crate::config::CloudProfile, String> {
        if self.settings.app.offline {
            return Err(
                "Offline mode is on, so nothing is sent to the cloud. Turn it off in Settings, or use the local model."
                    .into(),
            );
        }
        self.settings.profile(name).ok_or_else(|| format!("There is no cloud profile '{name}'. Add one in Settings."))
    }

    /// "local" plus "cloud:NAME" for each profile, with names for people.
    pub fn backend_choices(&self) -> Vec<(String, String)> {
        let mut out = vec![("local".to_string(), "This computer (local model)".to_string())];
        for p in &self.settings.cloud {
            out.push((format!("cloud:{}", p.name), format!("Cloud: {} ({})", p.name, p.model)));
        }
        out
    }

    /// Dollars for a cloud answer, from the profile's prices; None for local.
    pub fn cost_usd(&self, spec: &str, prompt_tokens: usize, completion_tokens: usize) -> Option<f64> {
        let name = spec.strip_prefix("cloud:")?;
        let p = self.settings.profile(name)?;
        Some(crate::catalog::cost_usd(self.catalog.prices_for(p), prompt_tokens, completion_tokens))
    }
}

/// This process's resident memory (Linux), for the status bar.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The machine's memory (Linux), to say whether a model fits.
pub fn total_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
