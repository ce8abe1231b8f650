//! A result on its way from a worker thread: the screen asks each frame
//! whether it came, and the worker wakes the window when it does, so nothing
//! redraws on a timer while waiting.

use crate::progress::Wake;
use std::sync::mpsc;

pub struct Pending<T>(mpsc::Receiver<T>);

/// What [`Pending::poll`] found.
pub enum Polled<T> {
    Ready(T),
    Waiting,
    /// The worker ended without a result (it panicked, or could not start).
    Lost,
}

impl<T: Send + 'static> Pending<T> {
    /// Run `job` on a thread called `name`; its result wakes the window.
    pub fn spawn(name: &str, wake: &Wake, job: impl FnOnce() -> T + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        let wake = wake.clone();
        // A thread that cannot start drops `tx`: the result polls as Lost.
        let _ = std::thread::Builder::new().name(name.into()).spawn(move || {
            let _ = tx.send(job());
            wake.wake();
        });
        Pending(rx)
    }

    /// Whatever a worker sends on `rx`, with `wake` called after it
    /// (for workers that may send nothing, such as a file dialog closed unanswered).
    pub fn from_channel(rx: mpsc::Receiver<T>, wake: &Wake) -> Self {
        Pending(wake.forward(rx))
    }

    pub fn poll(&self) -> Polled<T> {
        match self.0.try_recv() {
            Ok(v) => Polled::Ready(v),
            Err(mpsc::TryRecvError::Empty) => Polled::Waiting,
            Err(mpsc::TryRecvError::Disconnected) => Polled::Lost,
        }
    }
}

/// A file dialog's answer, once it has come: the picked file, or None while
/// it is open, when it was closed without one, or when there is no dialog.
/// The slot empties as soon as the dialog has answered.
pub fn picked(slot: &mut Option<Pending<Option<std::path::PathBuf>>>) -> Option<std::path::PathBuf> {
    match slot.as_ref()?.poll() {
        Polled::Waiting => None,
        Polled::Ready(path) => {
            *slot = None;
            path
        }
        Polled::Lost => {
            *slot = None;
            None
        }
    }
}
