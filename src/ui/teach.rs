//! The Teach part of the Reviews screen: make a classifier from the labeled
//! file chosen there, watch it learn (a curve per epoch), and see how well it
//! did on rows it never learned from. Taught models then appear under "Run
//! on" beside the local model and the cloud.

use super::pending::{Pending, Polled};
use super::progress::GuiProgress;
use super::services::Services;
use crate::progress::Cancel;
pub use crate::tasks::teach::FileSource;
use crate::tasks::teach::{self, Epoch, Stage, TaughtInfo, TeachOptions};
use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// duet's example teaching data: 1,000 labeled product-review sentences (see assets/data/README.md).
pub const EXAMPLE_CSV: &str = include_str!("../../assets/data/product-reviews-uci.csv");

struct Job {
    name: String,
    progress: Arc<GuiProgress>,
    cancel: Cancel,
    /// The head's epochs so far (the second head's, once the body is fine-tuned).
    curve: Arc<Mutex<Vec<Epoch>>>,
    result: Pending<Result<TaughtInfo, String>>,
}

#[derive(Default)]
pub struct TeachPanel {
    pub name: String,
    pub fine_tune_body: bool,
    job: Option<Job>,
    /// How the last teaching went.
    pub result: Option<Result<TaughtInfo, String>>,
    /// The taught models on disk, read again after anything changes them.
    models: Option<Vec<TaughtInfo>>,
    /// A file being picked to import.
    importing: Option<Pending<Option<PathBuf>>>,
}

impl TeachPanel {
    /// The taught models, newest first.
    pub fn models(&mut self, data_dir: &Path) -> &[TaughtInfo] {
        self.models.get_or_insert_with(|| teach::list(data_dir).into_iter().flatten().collect())
    }

    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    /// Write the example data where the person's files go, and return its path.
    pub fn example_file(data_dir: &Path) -> Result<PathBuf, String> {
        let path = data_dir.join("examples").join("product-reviews.csv");
        std::fs::create_dir_all(path.parent().unwrap_or(data_dir)).map_err(|e| e.to_string())?;
        std::fs::write(&path, EXAMPLE_CSV).map_err(|e| format!("could not write the example data: {e}"))?;
        Ok(path)
    }

    /// Start teaching from `source` on a worker thread.
    pub fn start(&mut self, services: &Services, source: FileSource) {
        if self.job.is_some() {
            return;
        }
        let name = self.name.trim().to_string();
        if let Err(e) = teach::check_name(&name) {
            self.result = Some(Err(e.to_string()));
            return;
        }
        let mut options = TeachOptions::new(&name);
        options.fine_tune_body = self.fine_tune_body;
        let progress = Arc::new(GuiProgress::new(services.wake.clone()));
        let (cancel, curve) = (Cancel::new(), Arc::new(Mutex::new(Vec::new())));
        let (p, c, k) = (progress.clone(), cancel.clone(), curve.clone());
        let (store, catalog, data_dir) = (services.store(), services.catalog.clone(), services.paths.data_dir.clone());
        let result = Pending::spawn("duet-teach", &services.wake, move || {
            let max_rows = teach::DEFAULT_MAX_ROWS;
            let taught =
                teach::teach_file(&store, &catalog, &source, max_rows, &options, p.as_ref(), &c, &mut |stage| {
                    if let Stage::Head { epoch, again } = stage {
                        let mut curve = k.lock().unwrap_or_else(|e| e.into_inner());
                        if again && epoch.epoch == 1 {
                            curve.clear();
                        }
                        curve.push(*epoch);
                    }
                })
                .map_err(|e| e.to_string())?;
            teach::write(&taught, &teach::path_of(&data_dir, &options.name).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            Ok(taught.info)
        });
        self.result = None;
        self.job = Some(Job { name, progress, cancel, curve, result });
    }

    /// Check on the worker; the name of a model just taught, once.
    pub fn poll(&mut self) -> Option<String> {
        let job = self.job.as_mut()?;
        let done = match job.result.poll() {
            Polled::Waiting => return None,
            Polled::Ready(r) => r,
            Polled::Lost => Err("teaching stopped unexpectedly".to_string()),
        };
        let name = job.name.clone();
        self.job = None;
        self.models = None;
        let ok = done.is_ok();
        self.result = Some(done);
        ok.then_some(name)
    }

    /// The Teach section. `source` is the labeled file chosen on the screen, if any.
    pub fn ui(&mut self, ui: &mut egui::Ui, services: &Services, source: Option<FileSource>) {
        ui.label(
            "Make a small classifier from your own labeled rows. It learns on this computer in seconds \
             and labels hundreds of reviews a second.",
        );
        match &source {
            Some(s) => {
                ui.weak(format!(
                    "From {} (text: {}, labels: {})",
                    s.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    s.text_column,
                    s.label_column
                ));
            }
            None => {
                ui.weak("Import a file above and pick its known-labels column, or use the example data.");
            }
        }
        ui.horizontal(|ui| {
            ui.label("Name");
            ui.add(egui::TextEdit::singleline(&mut self.name).desired_width(160.0).hint_text("reviews-v1"));
        });
        ui.checkbox(
            &mut self.fine_tune_body,
            "Also fine-tune the embedding model (SetFit: better, minutes not seconds)",
        );
        if let Some(job) = &self.job {
            job.progress.ui(ui, Some(&job.cancel));
        } else {
            let can = source.is_some() && !self.name.trim().is_empty();
            let name = self.name.trim().to_string();
            let replaces = self.models(&services.paths.data_dir).iter().any(|m| m.name == name);
            let button = ui.add_enabled(can, egui::Button::new("Teach"));
            if replaces {
                ui.weak(format!("A taught model named {name} is here: teaching replaces it."));
            }
            if let (true, Some(s)) = (button.clicked(), source) {
                self.start(services, s);
            }
        }
        if let Some(Err(e)) = &self.result {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
    }

    /// The learning curve and how the last teaching went (the wide side of the screen).
    pub fn results_ui(&mut self, ui: &mut egui::Ui) {
        let curve: Vec<Epoch> = match (&self.job, &self.result) {
            (Some(job), _) => job.curve.lock().map(|c| c.clone()).unwrap_or_default(),
            (None, Some(Ok(info))) => info.curve.clone(),
            _ => Vec::new(),
        };
        let kept = match (&self.job, &self.result) {
            (None, Some(Ok(info))) => Some(info.best_epoch),
            _ => None,
        };
        if !curve.is_empty() {
            learning_curve(ui, &curve, kept);
        }
        match &self.result {
            Some(Ok(info)) => {
                ui.strong(format!(
                    "Held-out accuracy {:.1}% on {} rows it never learned from",
                    100.0 * info.held_out_accuracy,
                    info.held_out_rows
                ));
                if let Some(frozen) = info.frozen_held_out_accuracy {
                    ui.label(format!("({:.1}% before the embedding model was fine-tuned)", 100.0 * frozen));
                }
                ui.weak(format!(
                    "Training accuracy {:.1}% on {} rows · kept epoch {} of {} · {:.1} s · saved as {}",
                    100.0 * info.train_accuracy,
                    info.taught_rows,
                    info.best_epoch,
                    info.curve.len(),
                    info.seconds,
                    info.name
                ));
                for note in &info.notes {
                    ui.weak(note);
                }
                ui.label(format!("It is chosen under \"Run on\" in Classify reviews as Taught: {}.", info.name));
            }
            Some(Err(_)) => {}
            None if self.job.is_none() => {
                ui.weak("The learning curve and the held-out accuracy appear here.");
            }
            None => {}
        }
    }

    /// Taught models with Export and Remove buttons each, and Import.
    pub fn list_ui(&mut self, ui: &mut egui::Ui, services: &Services) {
        let data_dir = services.paths.data_dir.as_path();
        if let Some(path) = super::pending::picked(&mut self.importing) {
            self.import(services, &path);
        }
        if ui.button("Import a taught model…").on_hover_text("A file made by Export (or duet teach export)").clicked()
        {
            self.importing = Some(services.open_dialog("Taught model", &["safetensors"]));
        }
        let models = self.models(data_dir).to_vec();
        if models.is_empty() {
            ui.weak("None yet.");
        }
        for m in models {
            ui.horizontal(|ui| {
                ui.label(format!(
                    "{} · {:.0}% held out · {} · {}",
                    m.name,
                    100.0 * m.held_out_accuracy,
                    m.labels.join(", "),
                    crate::engine::local::template::iso_day(m.created_at)
                ));
                if ui.small_button("Export…").on_hover_text("One file: weights and what it is").clicked() {
                    match teach::path_of(data_dir, &m.name).and_then(|p| {
                        std::fs::read(&p).map_err(|e| teach::TeachError::Io(p.display().to_string(), e.to_string()))
                    }) {
                        Ok(bytes) => services.save_dialog(format!("{}.safetensors", m.name), bytes),
                        Err(e) => self.result = Some(Err(e.to_string())),
                    }
                }
                if ui.small_button("Remove").clicked() {
                    if let Err(e) = teach::remove(data_dir, &m.name) {
                        self.result = Some(Err(e.to_string()));
                    }
                    self.models = None;
                }
            });
        }
    }
}

impl TeachPanel {
    /// Store a taught model from a file, refusing one taught on another embedding model.
    fn import(&mut self, services: &Services, path: &Path) {
        let ours = services.catalog.default_embedder().map(|e| e.id.clone()).unwrap_or_default();
        self.result = Some(teach::import(&services.paths.data_dir, path, None, &ours).map_err(|e| e.to_string()));
        self.models = None;
    }
}

/// Training and held-out accuracy per epoch, and the epoch whose weights were kept.
fn learning_curve(ui: &mut egui::Ui, curve: &[Epoch], kept: Option<usize>) {
    let line = |f: fn(&Epoch) -> f32| curve.iter().map(|e| [e.epoch as f64, 100.0 * f(e) as f64]).collect::<Vec<_>>();
    egui_plot::Plot::new("learning_curve")
        .height(220.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .include_y(50.0)
        .include_y(100.0)
        .x_axis_label("epoch")
        .y_axis_label("accuracy %")
        .legend(egui_plot::Legend::default().position(egui_plot::Corner::RightBottom))
        .show(ui, |plot| {
            plot.line(egui_plot::Line::new("rows taught", line(|e| e.train_accuracy)));
            plot.line(egui_plot::Line::new("rows held out", line(|e| e.held_out_accuracy)));
            if let Some(epoch) = kept {
                plot.vline(egui_plot::VLine::new("kept", epoch as f64));
            }
        });
}
