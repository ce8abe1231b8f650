//! What every screen shares: folders, settings, the database, the catalog and
//! the local model (loaded on a background thread). Screens ask for a backend
//! here; they never open files or sockets themselves.

use super::pending::{Pending, Polled};
use super::progress::GuiProgress;
use crate::catalog::Catalog;
use crate::config::{Paths, Settings};
use crate::db::Db;
use crate::engine::cloud::{CloudBackend, CloudOptions};
use crate::engine::local::{LoadOptions, LocalEngine};
use crate::engine::{Backend, BackendSpec, Cancel, DataLocation};
use crate::progress::Wake;
use crate::store::Store;
use crate::tasks::answer::Contender;
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
    local_job: Option<Pending<Result<LocalEngine, String>>>,
    pub last_tok_per_s: Option<f64>,
    /// A message for the person (errors from saving settings, exports…).
    pub notice: Option<String>,
    notices: (mpsc::Sender<String>, mpsc::Receiver<String>),
    /// Redraws the window; workers call it when they have news. Set at the
    /// first frame (the window does not exist when services open).
    pub wake: Wake,
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
            local_progress: Arc::new(GuiProgress::new(Wake::default())),
            local_cancel: Cancel::new(),
            local_job: None,
            last_tok_per_s: None,
            notice,
            notices: mpsc::channel(),
            wake: Wake::default(),
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
        self.local_progress = Arc::new(GuiProgress::new(self.wake.clone()));
        self.local_spec = spec.to_string();
        self.local = LocalState::Busy;
        let (store, catalog, spec) = (self.store(), self.catalog.clone(), spec.to_string());
        let (progress, cancel) = (self.local_progress.clone(), self.local_cancel.clone());
        self.local_job = Some(Pending::spawn("duet-load", &self.wake, move || {
            let path = store.chat_model(&catalog, Some(&spec), progress.as_ref(), &cancel).map_err(|e| e.to_string());
            path.and_then(|p| {
                use crate::progress::Progress;
                progress.begin("loading the model", 0);
                LocalEngine::start(&p, LoadOptions::default()).map_err(|e| e.to_string())
            })
        }));
    }

    /// Ask where to save `content`, then write it; the outcome becomes a notice.
    /// The dialog runs on its own thread so the window keeps drawing.
    pub fn save_dialog(&self, file_name: String, content: impl Into<Vec<u8>>) {
        let (tx, wake, content) = (self.notices.0.clone(), self.wake.clone(), content.into());
        let exports = self.paths.data_dir.join("exports");
        let _ = std::thread::Builder::new().name("duet-save".into()).spawn(move || {
            let asked = std::time::Instant::now();
            let chosen =
                if dialogs_available() { rfd::FileDialog::new().set_file_name(&file_name).save_file() } else { None };
            let (path, why) = match chosen {
                Some(path) => (path, ""),
                // Closed at once, or never shown: no dialog on this system. Nothing is lost:
                // the file goes to the data folder, and the notice says where.
                None if asked.elapsed() < NO_DIALOG_WITHIN => {
                    (exports.join(&file_name), "No file dialog is available on this system, so it was saved to ")
                }
                None => return,
            };
            let written =
                path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, content));
            let msg = match written {
                Ok(()) if why.is_empty() => format!("Saved {}", path.display()),
                Ok(()) => format!("{why}{}", path.display()),
                Err(e) => format!("Could not save {}: {e}", path.display()),
            };
            let _ = tx.send(msg);
            wake.wake();
        });
    }

    /// Ask for a file to open; the answer (None when the dialog was closed) arrives later.
    /// Where no dialog can be shown, the notice says how else to give the file.
    pub fn open_dialog(&self, what: &str, extensions: &[&str]) -> Pending<Option<PathBuf>> {
        let (what, extensions): (String, Vec<String>) =
            (what.into(), extensions.iter().map(|e| e.to_string()).collect());
        let tx = self.notices.0.clone();
        Pending::spawn("duet-open", &self.wake, move || {
            let asked = std::time::Instant::now();
            let chosen = if dialogs_available() {
                rfd::FileDialog::new().add_filter(&what, &extensions).pick_file()
            } else {
                None
            };
            if chosen.is_none() && asked.elapsed() < NO_DIALOG_WITHIN {
                let _ = tx.send(
                    "No file dialog is available on this system: type the file's path in the field beside the button, or drop the file on the window."
                        .to_string(),
                );
            }
            chosen
        })
    }

    /// Take in whatever background work finished since the last frame.
    pub fn poll(&mut self, ctx: &egui::Context) {
        if !self.wake.is_set() {
            // At most one redraw per 60 ms however fast tokens come: drawing a
            // frame (in software, on some machines) must not slow the model down.
            let ctx = ctx.clone();
            self.wake = Wake::new(move || ctx.request_repaint_after(std::time::Duration::from_millis(60)));
        }
        if let Ok(n) = self.notices.1.try_recv() {
            self.notice = Some(n);
        }
        if matches!(self.local, LocalState::Idle) {
            let spec = self.default_model_spec();
            self.load_local(&spec);
        }
        let polled = self.local_job.as_ref().map(Pending::poll);
        match polled {
            Some(Polled::Ready(Ok(engine))) => self.local = LocalState::Ready(engine),
            Some(Polled::Ready(Err(e))) => self.local = LocalState::Failed(e),
            Some(Polled::Lost) => self.local = LocalState::Failed("the model loader stopped unexpectedly".into()),
            Some(Polled::Waiting) | None => return,
        }
        self.local_job = None;
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

    /// The backend behind `spec`, or why it can't be used now.
    pub fn backend(&self, spec: &BackendSpec) -> Result<Box<dyn Backend>, Unavailable> {
        match spec {
            BackendSpec::Local => Ok(Box::new(self.local_engine()?.clone())),
            BackendSpec::Cloud { .. } => Ok(Box::new(self.cloud(spec)?)),
        }
    }

    /// The backend behind `spec` with its prices, ready to answer.
    pub fn contender(&self, spec: &BackendSpec) -> Result<Contender, Unavailable> {
        let prices = match spec {
            BackendSpec::Local => None,
            BackendSpec::Cloud { .. } => Some(self.catalog.prices_for(self.usable_profile(spec)?)),
        };
        Ok(Contender { spec: spec.clone(), backend: self.backend(spec)?, prices })
    }

    /// The loaded local model, or what the user should know while there is none.
    pub fn local_engine(&self) -> Result<&LocalEngine, Unavailable> {
        match &self.local {
            LocalState::Ready(e) => Ok(e),
            LocalState::Busy => Err(Unavailable::LocalLoading),
            LocalState::Failed(e) => Err(Unavailable::LocalFailed(e.clone())),
            LocalState::Idle => Err(Unavailable::LocalIdle),
        }
    }

    pub fn cloud(&self, spec: &BackendSpec) -> Result<CloudBackend, Unavailable> {
        Ok(crate::engine::cloud::backend_for(self.usable_profile(spec)?, CloudOptions::default()))
    }

    /// Where a backend sends data, without looking up a key (the keyring can
    /// be slow, and this is drawn every frame).
    pub fn data_location(&self, spec: &BackendSpec) -> Result<DataLocation, Unavailable> {
        match spec {
            BackendSpec::Local => Ok(DataLocation::ThisComputer),
            BackendSpec::Cloud { .. } => {
                Ok(DataLocation::SentTo(crate::engine::cloud::host_of(&self.usable_profile(spec)?.base_url)))
            }
        }
    }

    /// "Your messages stay on this computer." / "… are sent to HOST." / why not.
    pub fn privacy_line(&self, spec: &BackendSpec, what: &str) -> String {
        match self.data_location(spec) {
            Ok(DataLocation::ThisComputer) => format!("Your {what} stay on this computer."),
            Ok(DataLocation::SentTo(host)) => format!("Your {what} are sent to {host}."),
            Err(e) => e.to_string(),
        }
    }

    fn usable_profile(&self, spec: &BackendSpec) -> Result<&crate::config::CloudProfile, Unavailable> {
        if self.settings.app.offline {
            return Err(Unavailable::Offline);
        }
        let name = spec.profile().unwrap_or_default();
        let found = match spec.profile() {
            Some(name) => self.settings.profile(name),
            None => self.settings.cloud.first(),
        };
        found.ok_or_else(|| Unavailable::NoProfile(name.to_string()))
    }

    /// The local model plus each cloud profile, with names for people.
    pub fn backend_choices(&self) -> Vec<(BackendSpec, String)> {
        let mut out = vec![(BackendSpec::Local, "This computer (local model)".to_string())];
        for p in &self.settings.cloud {
            out.push((BackendSpec::cloud(&p.name), format!("Cloud: {} ({})", p.name, p.model)));
        }
        out
    }

    /// The name people see for `spec` in menus.
    pub fn backend_name(&self, spec: &BackendSpec) -> String {
        self.backend_choices().into_iter().find(|(k, _)| k == spec).map(|(_, v)| v).unwrap_or_else(|| spec.to_string())
    }
}

/// A dialog that comes back empty sooner than this was never shown (no
/// portal, no display server): nobody closes a real one that fast.
const NO_DIALOG_WITHIN: std::time::Duration = std::time::Duration::from_millis(400);

/// Whether file dialogs can be shown: on Linux they go through the desktop
/// portal over the session bus, and without a bus there is none.
fn dialogs_available() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        || std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).join("bus").exists())
}

/// A database read for a screen: its value, or, when the read fails, the empty
/// value and a notice that says why (a broken database shows as a message, not
/// as lists that are silently empty).
pub fn or_notice<T: Default>(notice: &mut Option<String>, read: Result<T, crate::db::DbError>) -> T {
    read.unwrap_or_else(|e| {
        *notice = Some(format!("Could not read duet's database: {e}"));
        T::default()
    })
}

/// Why a backend can't answer right now, in words for the person.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unavailable {
    #[error("The local model is still loading; try again in a moment. (Progress is in the status bar.)")]
    LocalLoading,
    #[error("The local model could not be loaded: {0}. Open Models to fetch or pick another.")]
    LocalFailed(String),
    #[error("The local model is not loaded yet.")]
    LocalIdle,
    #[error("Offline mode is on, so nothing is sent to the cloud. Turn it off in Settings, or use the local model.")]
    Offline,
    #[error("There is no cloud profile '{0}'. Add one in Settings.")]
    NoProfile(String),
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
