//! The Models screen: what duet knows, what is on disk, what fits in this
//! machine's memory; download (with progress and cancel), verify, delete, pick
//! the default, or add a .gguf file from disk.

use super::pending::{picked, Pending, Polled};
use super::progress::GuiProgress;
use super::services::{total_memory_bytes, LocalState, Services};
use super::widgets::path_field;
use crate::catalog::{human_bytes, ModelKind};
use crate::engine::Cancel;
use crate::store::FileState;
use eframe::egui;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A download or a verification running for one model.
struct Job {
    what: &'static str,
    progress: Arc<GuiProgress>,
    cancel: Cancel,
    result: Pending<Result<(), String>>,
}

#[derive(Default)]
pub struct ModelsScreen {
    jobs: HashMap<String, Job>,
    /// Last outcome per model ("verified", or the error in words).
    pub outcomes: HashMap<String, String>,
    states: HashMap<String, FileState>,
    /// Memory each model needs, and the file state it was read for: a present
    /// file's header is read again only when its state changes (Gemma's holds
    /// 262k tokens: too slow to parse every refresh).
    ram: HashMap<String, (FileState, u64)>,
    states_at: Option<std::time::Instant>,
    confirm_delete: Option<String>,
    picking: Option<Pending<Option<PathBuf>>>,
    /// A path typed by hand (for systems without a file dialog).
    path: String,
    /// One line per added .gguf file, read from its header once (it holds the
    /// whole vocabulary: megabytes, too much to parse every frame).
    described: HashMap<String, String>,
}

impl ModelsScreen {
    /// Start fetching a catalog model in the background.
    pub fn download(&mut self, services: &Services, id: &str) {
        self.start(services, id, "downloading", true);
    }

    pub fn verify(&mut self, services: &Services, id: &str) {
        self.start(services, id, "verifying", false);
    }

    fn start(&mut self, services: &Services, id: &str, what: &'static str, fetch: bool) {
        let Ok(entry) = services.catalog.get(id).cloned() else { return };
        let progress = Arc::new(GuiProgress::new(services.wake.clone()));
        let cancel = Cancel::new();
        let (p, c, store) = (progress.clone(), cancel.clone(), services.store());
        let result = Pending::spawn(&format!("duet-{what}"), &services.wake, move || {
            let r =
                if fetch { store.ensure(&entry, p.as_ref(), &c).map(|_| ()) } else { store.verify(&entry, p.as_ref()) };
            r.map_err(|e| e.to_string())
        });
        self.jobs.insert(id.to_string(), Job { what, progress, cancel, result });
        self.outcomes.remove(id);
    }

    pub fn busy(&self) -> bool {
        !self.jobs.is_empty()
    }

    fn poll(&mut self, services: &mut Services) {
        let mut done = Vec::new();
        for (id, job) in &self.jobs {
            match job.result.poll() {
                Polled::Ready(Ok(())) => {
                    // The default model arrived after a failed first start: load it now.
                    if job.what == "downloading"
                        && *id == services.default_model_spec()
                        && matches!(services.local, LocalState::Failed(_))
                    {
                        services.load_local(id);
                    }
                    done.push((id.clone(), format!("{} finished", job.what)))
                }
                Polled::Ready(Err(e)) => done.push((id.clone(), e)),
                Polled::Waiting => {}
                Polled::Lost => done.push((id.clone(), "stopped unexpectedly".into())),
            }
        }
        for (id, outcome) in done {
            self.jobs.remove(&id);
            self.outcomes.insert(id, outcome);
            self.states_at = None;
        }
    }

    fn state(&mut self, services: &Services, id: &str) -> FileState {
        let stale = self.states_at.is_none_or(|t| t.elapsed().as_secs() >= 2);
        if stale {
            let store = services.store();
            self.states = services.catalog.models.iter().map(|m| (m.id.clone(), store.model_state(m))).collect();
            for m in &services.catalog.models {
                let state = self.states.get(&m.id).copied().unwrap_or(FileState::Missing);
                if self.ram.get(&m.id).is_none_or(|(s, _)| *s != state) {
                    self.ram.insert(m.id.clone(), (state, store.ram_needed(m)));
                }
            }
            self.states_at = Some(std::time::Instant::now());
        }
        self.states.get(id).copied().unwrap_or(FileState::Missing)
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        self.poll(services);
        if let Some(path) = picked(&mut self.picking) {
            add_local_file(services, &path);
        }
        ui.heading("Models");
        ui.label(services.local_status());
        match &services.local {
            LocalState::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("The model could not be loaded: {e}"));
            }
            LocalState::Busy => services.local_progress.ui(ui, Some(&services.local_cancel)),
            _ => {}
        }
        if services.settings.app.offline {
            ui.weak("Offline mode is on: models already here work; downloads are off.");
        }
        let ram = total_memory_bytes();
        if let Some(r) = ram {
            ui.weak(format!("This computer has {} of memory.", human_bytes(r)));
        }
        ui.separator();
        let default = services.default_model_spec();
        egui::ScrollArea::both().auto_shrink([false, false]).show(ui, |ui| {
            egui::Grid::new("catalog").striped(true).num_columns(7).spacing([12.0, 6.0]).show(ui, |ui| {
                for h in ["Model", "Size", "File", "License", "Here", "Fits in memory", ""] {
                    ui.strong(h);
                }
                ui.end_row();
                let models = services.catalog.models.clone();
                for m in &models {
                    let state = self.state(services, &m.id);
                    let mut name = m.name.clone();
                    if m.id == default {
                        name.push_str(" (default)");
                    }
                    ui.label(name).on_hover_text(format!("{} · {}", m.id, m.family));
                    ui.label(&m.parameters).on_hover_text("parameters");
                    ui.label(format!("{} · {}", m.quantization, human_bytes(m.size_bytes())));
                    ui.label(&m.license);
                    ui.label(match state {
                        FileState::Verified => "verified",
                        FileState::Unverified => "present",
                        FileState::Corrupt => "damaged",
                        FileState::Missing => "—",
                    });
                    let need = self.ram.get(&m.id).map_or_else(|| m.ram_estimate_bytes(), |(_, b)| *b);
                    ui.label(match ram {
                        Some(r) if need <= r / 2 => format!("yes (~{})", human_bytes(need)),
                        Some(r) if need <= r => format!("tight (~{})", human_bytes(need)),
                        Some(_) => format!("no (~{})", human_bytes(need)),
                        None => format!("~{}", human_bytes(need)),
                    });
                    ui.horizontal(|ui| self.actions(ui, services, &m.id, m.kind, state));
                    ui.end_row();
                    if let Some(job) = self.jobs.get(&m.id) {
                        ui.label("");
                        job.progress.ui(ui, Some(&job.cancel));
                        ui.end_row();
                    } else if let Some(o) = self.outcomes.get(&m.id) {
                        // Under the model's name, wrapped: a long error on one
                        // line would push every column after it off the screen.
                        ui.scope(|ui| {
                            ui.set_max_width(ui.available_width().min(360.0));
                            ui.add(egui::Label::new(egui::RichText::new(o).weak()).wrap());
                        });
                        ui.end_row();
                    }
                }
            });
            ui.separator();
            ui.heading("Your own files");
            if ui.button("Add a .gguf file…").clicked() {
                self.picking = Some(services.open_dialog("GGUF model", &["gguf"]));
            }
            if let Some(path) = path_field(ui, &mut self.path, "or type the path of a .gguf file", "Add") {
                add_local_file(services, &path);
            }
            for f in services.settings.app.local_files.clone() {
                ui.horizontal(|ui| {
                    ui.label(&f);
                    let about =
                        self.described.entry(f.clone()).or_insert_with(|| describe_file(std::path::Path::new(&f)));
                    ui.weak(about.as_str());
                    if ui.small_button("Use now").clicked() {
                        services.load_local(&f);
                    }
                    if ui.small_button("Set as default").clicked() {
                        services.settings.app.default_model = f.clone();
                        services.save_settings();
                    }
                    if ui.small_button("Forget").on_hover_text("Removes it from this list; the file stays").clicked() {
                        services.settings.app.local_files.retain(|x| *x != f);
                        services.save_settings();
                    }
                });
            }
        });
        if let Some(id) = self.confirm_delete.clone() {
            egui::Window::new("Delete model files?").collapsible(false).show(ui.ctx(), |ui| {
                ui.label(format!("The files of '{id}' will be deleted from disk. You can download them again later."));
                ui.horizontal(|ui| {
                    if ui.button("Delete").clicked() {
                        if let Ok(entry) = services.catalog.get(&id) {
                            let outcome = match services.store().remove(entry) {
                                Ok(freed) => format!("deleted; {} freed", human_bytes(freed)),
                                Err(e) => e.to_string(),
                            };
                            self.outcomes.insert(id.clone(), outcome);
                        }
                        self.states_at = None;
                        self.confirm_delete = None;
                    }
                    if ui.button("Keep").clicked() {
                        self.confirm_delete = None;
                    }
                });
            });
        }
    }

    fn actions(&mut self, ui: &mut egui::Ui, services: &mut Services, id: &str, kind: ModelKind, state: FileState) {
        if self.jobs.contains_key(id) {
            return;
        }
        let present = matches!(state, FileState::Verified | FileState::Unverified);
        if !present && ui.add_enabled(!services.settings.app.offline, egui::Button::new("Download").small()).clicked() {
            self.download(services, id);
        }
        if present {
            if kind == ModelKind::Chat && ui.small_button("Use now").clicked() {
                services.load_local(id);
            }
            if ui.small_button("Verify").clicked() {
                self.verify(services, id);
            }
            if kind == ModelKind::Chat && ui.small_button("Set as default").clicked() {
                services.settings.app.default_model = id.to_string();
                services.save_settings();
            }
        }
        if state != FileState::Missing && ui.small_button("Delete…").clicked() {
            self.confirm_delete = Some(id.to_string());
        }
    }
}

/// What a .gguf file is, in one line (or why it can't be read).
pub fn describe_file(path: &std::path::Path) -> String {
    match crate::engine::local::gguf::Gguf::open(path) {
        Ok((g, _)) => {
            let f = g.summary();
            format!(
                "{} · {} layers · context {} · {} · needs ~{}",
                f.architecture,
                f.n_layers,
                f.context_length,
                human_bytes(f.file_size_bytes),
                human_bytes(f.ram_bytes(4096))
            )
        }
        Err(e) => format!("cannot be used: {e}"),
    }
}

fn add_local_file(services: &mut Services, path: &std::path::Path) {
    let s = path.display().to_string();
    if let Err(e) = crate::engine::local::gguf::Gguf::open(path) {
        services.notice = Some(format!("{s} cannot be used: {e}"));
        return;
    }
    if !services.settings.app.local_files.contains(&s) {
        services.settings.app.local_files.push(s);
        services.save_settings();
    }
}
