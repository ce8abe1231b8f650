//! How slow work reports progress, learns it should stop, and wakes whoever
//! is waiting for it.
//!
//! The store and the engine take a `&dyn Progress`, so the terminal shows an
//! indicatif bar and the GUI its own widget, from the same code.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub trait Progress: Send + Sync {
    /// A new phase starts: `total` units (bytes), or 0 when unknown.
    fn begin(&self, label: &str, total: u64);
    /// A new phase counted in things (files, passages) rather than bytes;
    /// `unit` is the singular noun.
    fn begin_items(&self, label: &str, total: u64, unit: &'static str) {
        let _ = unit;
        self.begin(label, total);
    }
    fn advance(&self, units: u64);
    /// Overwrite the position (a resumed download starts part-way).
    fn set_position(&self, units: u64);
    fn finish(&self);
    /// A line for the person watching (not an error).
    fn note(&self, line: &str);
}

/// Progress that goes nowhere (tests, `--quiet`).
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn set_position(&self, _: u64) {}
    fn finish(&self) {}
    fn note(&self, _: &str) {}
}

/// A shared "please stop" flag: set from Ctrl-C, a Stop button, or a dropped client.
#[derive(Clone, Default, Debug)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// "Something arrived": a worker calls it after it sends, so a window redraws
/// when there is news instead of on a timer. The default wakes nobody (the
/// terminal blocks on its channels and needs no telling).
#[derive(Clone, Default)]
pub struct Wake(Option<Arc<dyn Fn() + Send + Sync>>);

impl Wake {
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Wake(Some(Arc::new(wake)))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    pub fn wake(&self) {
        if let Some(w) = &self.0 {
            w();
        }
    }

    /// `rx`'s messages, each followed by a wake. The forwarding thread ends
    /// when `rx` closes, or when the returned receiver is dropped and the next
    /// message finds nobody to take it. Without a waker, `rx` itself.
    pub fn forward<T: Send + 'static>(&self, rx: std::sync::mpsc::Receiver<T>) -> std::sync::mpsc::Receiver<T> {
        if self.0.is_none() {
            return rx;
        }
        let (tx, out) = std::sync::mpsc::channel();
        let wake = self.clone();
        let spawned = std::thread::Builder::new().name("duet-wake".into()).spawn(move || {
            for message in rx {
                if tx.send(message).is_err() {
                    break;
                }
                wake.wake();
            }
            // The sender is gone: a last wake so the window sees it closed.
            wake.wake();
        });
        match spawned {
            Ok(_) => out,
            // No thread to spare: a closed channel, which the reader reports as
            // an answer that never came (rare, and better than a window that never redraws).
            Err(_) => std::sync::mpsc::channel().1,
        }
    }
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Wake(set)" } else { "Wake(none)" })
    }
}

/// A terminal progress bar on stderr with bytes, rate and time left.
pub struct TerminalBar {
    bar: indicatif::ProgressBar,
}

impl TerminalBar {
    pub fn new() -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        TerminalBar { bar }
    }
}

impl Default for TerminalBar {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for TerminalBar {
    fn begin(&self, label: &str, total: u64) {
        let style = if total > 0 {
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        } else {
            indicatif::ProgressStyle::with_template("{msg} {bytes} {bytes_per_sec}")
        };
        if let Ok(style) = style {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.reset();
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.set_message(label.to_string());
    }
    fn begin_items(&self, label: &str, total: u64, unit: &'static str) {
        let template = format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit}s, {{per_sec}}, {{eta}} left");
        if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.reset();
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.set_message(label.to_string());
    }
    fn advance(&self, units: u64) {
        self.bar.inc(units);
    }
    fn set_position(&self, units: u64) {
        self.bar.set_position(units);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
    fn note(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }
}
