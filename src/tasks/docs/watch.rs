//! Watched folders: the index follows them. `refresh` brings it in step
//! (files new or changed since they were indexed go in; a file that is gone
//! takes its passages with it), and `watch` tells the caller when something
//! in a folder changed, so it can refresh while the app is open. A folder
//! that is itself gone (an unplugged drive) removes nothing: its documents
//! wait for it to come back.

use super::index::{add_files, files_under, Added};
use super::read::EXTENSIONS;
use super::DocError;
use crate::db::Db;
use crate::progress::{Cancel, Progress};
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};

/// What a refresh did.
#[derive(Debug, Default)]
pub struct Refreshed {
    pub added: Vec<Added>,
    /// Documents removed because their file is gone.
    pub removed: Vec<String>,
}

/// The folder as stored: its full path, so one folder is watched once.
pub fn canonical_folder(path: &Path) -> Result<String, DocError> {
    let full = std::fs::canonicalize(path).map_err(|e| DocError::Open(path.display().to_string(), e.to_string()))?;
    if !full.is_dir() {
        return Err(DocError::NotAFolder(path.display().to_string()));
    }
    Ok(full.to_string_lossy().into_owned())
}

/// Bring the index in step with every watched folder that is present.
pub fn refresh(db: &mut Db, progress: &dyn Progress, cancel: &Cancel) -> Result<Refreshed, DocError> {
    let present: Vec<PathBuf> = db.watched_folders()?.into_iter().map(PathBuf::from).filter(|p| p.is_dir()).collect();
    if present.is_empty() {
        return Ok(Refreshed::default());
    }
    let mut removed = Vec::new();
    for d in db.documents()? {
        let path = Path::new(&d.path);
        if present.iter().any(|f| path.starts_with(f)) && !path.exists() {
            db.remove_document(d.id)?;
            removed.push(d.path);
        }
    }
    let files = files_under(&present)?;
    let added = add_files(db, &files, progress, cancel)?;
    Ok(Refreshed { added, removed })
}

/// Call `changed()` whenever a file duet reads is created, changed or
/// removed under `folders`. Watching stops when the returned watcher drops.
pub fn watch(
    folders: &[String],
    changed: impl Fn() + Send + 'static,
) -> Result<notify::RecommendedWatcher, notify::Error> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let relevant = matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_))
            && event.paths.iter().any(|p| is_document(p) || matches!(event.kind, EventKind::Remove(_)));
        if relevant {
            changed();
        }
    })?;
    for f in folders {
        watcher.watch(Path::new(f), RecursiveMode::Recursive)?;
    }
    Ok(watcher)
}

fn is_document(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    !hidden && EXTENSIONS.contains(&ext.as_str())
}
