//! Which process is classifying a run: a lock file beside the database,
//! locked (flock) while the run moves. The OS lets go of it when the process
//! ends however it ends, `kill -9` included, so a run cut short can be resumed
//! at once, and a run that another duet really is working on is never
//! classified twice.
//!
//! Where there is no lock file (a run from before locks, or a database in
//! memory) or no flock (Windows), the caller falls back to the run's last save
//! time.

use super::ClassifyError;
use crate::db::Db;
use std::fs::File;
use std::path::PathBuf;

/// Held while a run is being classified; dropping it lets go.
pub struct RunLock {
    _file: File,
}

/// Who holds a run's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The lock file exists and nobody holds it: the process that had it ended.
    Nobody,
    /// A process (this one or another) is classifying the run.
    Someone,
    /// No lock to ask: go by the run's last save time.
    Unknown,
}

fn lock_path(db: &Db, run_id: i64) -> Option<PathBuf> {
    let file = db.file()?;
    let name = format!("{}.run-{run_id}.lock", file.file_name()?.to_string_lossy());
    Some(file.with_file_name(name))
}

impl RunLock {
    /// Take run `run_id`'s lock. `Ok(None)` where there is no lock to take
    /// (see the module doc); refused when another process holds it.
    pub fn acquire(db: &Db, run_id: i64) -> Result<Option<RunLock>, ClassifyError> {
        let Some(path) = lock_path(db, run_id) else { return Ok(None) };
        let Ok(file) = File::options().create(true).truncate(false).write(true).open(&path) else { return Ok(None) };
        match try_lock(&file) {
            Some(true) => Ok(Some(RunLock { _file: file })),
            Some(false) => Err(ClassifyError::StillRunning { run_id, detail: String::new() }),
            None => Ok(None),
        }
    }
}

/// Who holds run `run_id`'s lock (asked by trying to take it, and letting go at once).
pub fn holder(db: &Db, run_id: i64) -> Holder {
    let Some(path) = lock_path(db, run_id) else { return Holder::Unknown };
    let Ok(file) = File::options().write(true).open(&path) else { return Holder::Unknown };
    match try_lock(&file) {
        Some(true) => Holder::Nobody,
        Some(false) => Holder::Someone,
        None => Holder::Unknown,
    }
}

/// Some(true): locked now (until `file` closes); Some(false): someone else has
/// it; None: this system cannot tell.
#[cfg(unix)]
fn try_lock(file: &File) -> Option<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock only reads the descriptor number, which `file` keeps open
    // for the length of the call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Some(true);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EWOULDBLOCK) => Some(false),
        _ => None,
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_seen_from_another_handle_and_let_go_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("duet.sqlite3")).unwrap();
        assert_eq!(holder(&db, 7), Holder::Unknown, "no lock file yet");
        let lock = RunLock::acquire(&db, 7).unwrap().expect("a file-backed database has locks");
        assert_eq!(holder(&db, 7), Holder::Someone);
        assert!(RunLock::acquire(&db, 7).is_err(), "one holder at a time");
        drop(lock);
        assert_eq!(holder(&db, 7), Holder::Nobody, "ended: resumable at once");
        assert!(RunLock::acquire(&Db::in_memory().unwrap(), 7).unwrap().is_none());
    }
}
