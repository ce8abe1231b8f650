//! Progress the GUI can draw: the store and the tasks report into it from
//! their threads; a screen reads it each frame.

use crate::progress::{Progress, Wake};
use eframe::egui;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub label: String,
    pub total: u64,
    pub position: u64,
    pub started: Instant,
    pub finished: bool,
    pub last_note: String,
    /// What is counted ("passage"), or bytes when `None`.
    pub unit: Option<&'static str>,
}

pub struct GuiProgress {
    state: Mutex<Snapshot>,
    /// Redraws the window when the bar moves.
    wake: Wake,
    /// When the window was last woken for a move of the bar: a download
    /// reports every few kilobytes, and twenty redraws a second are plenty.
    woken_at: Mutex<Instant>,
}

impl GuiProgress {
    pub fn new(wake: Wake) -> Self {
        GuiProgress {
            state: Mutex::new(Snapshot {
                label: String::new(),
                total: 0,
                position: 0,
                started: Instant::now(),
                finished: false,
                last_note: String::new(),
                unit: None,
            }),
            wake,
            woken_at: Mutex::new(Instant::now()),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.state.lock().map(|s| s.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Change the snapshot, then wake the window: always for a new phase, an
    /// end or a note, at most every 50 ms for a move of the bar.
    fn with(&self, moved_only: bool, f: impl FnOnce(&mut Snapshot)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        let mut woken_at = self.woken_at.lock().unwrap_or_else(|e| e.into_inner());
        if !moved_only || woken_at.elapsed() >= Duration::from_millis(50) {
            *woken_at = Instant::now();
            self.wake.wake();
        }
    }

    /// A bar with bytes, rate and what is happening.
    pub fn ui(&self, ui: &mut egui::Ui, cancel: Option<&crate::progress::Cancel>) {
        let s = self.snapshot();
        if s.total > 0 {
            ui.label(&s.label);
        }
        ui.horizontal(|ui| {
            let fraction = if s.total > 0 { s.position as f32 / s.total as f32 } else { 0.0 };
            let secs = s.started.elapsed().as_secs_f64().max(0.001);
            let rate = s.position as f64 / secs;
            let text = if let (true, Some(unit)) = (s.total > 0, s.unit) {
                let left = if rate > 0.0 { (s.total.saturating_sub(s.position)) as f64 / rate } else { 0.0 };
                format!("{} / {} {unit}s · {rate:.1}/s · {} left", s.position, s.total, human_secs(left))
            } else if s.total > 0 {
                format!(
                    "{} / {} · {}/s",
                    crate::catalog::human_bytes(s.position),
                    crate::catalog::human_bytes(s.total),
                    crate::catalog::human_bytes(rate as u64)
                )
            } else {
                format!("{}…", s.label)
            };
            // Room for the Cancel button beside it, so a narrow panel is not pushed wider.
            let width = (ui.available_width() - 80.0).clamp(120.0, 360.0);
            ui.add(egui::ProgressBar::new(fraction).text(text).desired_width(width).animate(s.total == 0));
            if let Some(c) = cancel {
                if ui.button("Cancel").clicked() {
                    c.cancel();
                }
            }
        });
        if !s.last_note.is_empty() {
            ui.small(&s.last_note);
        }
    }
}

impl Progress for GuiProgress {
    fn begin(&self, label: &str, total: u64) {
        self.with(false, |s| {
            s.label = label.to_string();
            s.total = total;
            s.position = 0;
            s.started = Instant::now();
            s.finished = false;
            s.unit = None;
        });
    }
    fn begin_items(&self, label: &str, total: u64, unit: &'static str) {
        self.begin(label, total);
        self.with(false, |s| s.unit = Some(unit));
    }
    fn advance(&self, units: u64) {
        self.with(true, |s| s.position += units);
    }
    fn set_position(&self, units: u64) {
        self.with(true, |s| s.position = units);
    }
    fn finish(&self) {
        self.with(false, |s| s.finished = true);
    }
    fn note(&self, line: &str) {
        self.with(false, |s| s.last_note = line.to_string());
    }
}

/// "45 s", "3 min", "1 h 5 min": a time left as a person reads it.
fn human_secs(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
