//! The Reviews screen: paste or import reviews, classify them (privately, on
//! the local model, unless a cloud profile is picked), see the counts, a chart,
//! a sortable table, and — when the file has labels — the mistakes.

use super::cached::Cached;
use super::pending::{picked, Pending, Polled};
use super::progress::GuiProgress;
use super::services::{or_notice, LocalState, Services};
use super::teach::{FileSource, TeachPanel};
use super::widgets::{dropped_files, path_field, side_width};
use crate::db::{Db, RunInfo, RunRow, RunStatus};
use crate::engine::{BackendSpec, Cancel, DataLocation};
use crate::tasks::classify::{
    agreement, default_instruction, export_csv, parse_labels, plan_run, resume_run, running_elsewhere, start_run,
    summarize, Classifier, ClassifyConfig, ClassifyError, CloudClassifier, LazyLocalClassifier, RunConfig, RunOutcome,
    Summary, EXAMPLE_REVIEWS,
};
use crate::tasks::input::Table;
use eframe::egui;
use std::path::PathBuf;
use std::sync::Arc;

struct Running {
    run_id: i64,
    progress: Arc<GuiProgress>,
    cancel: Cancel,
    result: Pending<Result<RunOutcome, String>>,
    /// When the partial results were last read from the database.
    shown_at: std::time::Instant,
}

/// A finished run over a file with known labels: how often its classifier was right.
struct RunScore {
    id: i64,
    classifier: String,
    accuracy: f64,
    rows: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Row,
    Label,
    Confidence,
}

pub struct ReviewsScreen {
    /// Reviews typed or pasted, one per line.
    pub pasted: String,
    /// An imported file (takes precedence over pasted text).
    pub file: Option<PathBuf>,
    /// A path typed by hand (for systems without a file dialog).
    pub path: String,
    pub headers: Vec<String>,
    pub text_column: String,
    /// Empty: no label column.
    pub label_column: String,
    pub labels: String,
    pub instruction: String,
    instruction_for: String,
    pub calibration: f64,
    /// Few-shot examples, one per line: `review => label`.
    pub examples: String,
    pub backend: BackendSpec,
    running: Option<Running>,
    /// The run shown in the results.
    pub shown_run: Option<i64>,
    pub rows: Vec<RunRow>,
    pub summary: Option<Summary>,
    headers_of_shown: Vec<String>,
    pub error: Option<String>,
    /// How the last run went ("240 reviews in 10.2 s"): this screen's news,
    /// not shown on the others.
    pub status: Option<String>,
    filter: String,
    sort: SortBy,
    only_mistakes: bool,
    compare_with: Option<i64>,
    /// Agreement with `compare_with`, per (shown run, other run, rows loaded, database revision).
    agreement: Cached<(i64, i64, usize, crate::db::Revision), crate::tasks::classify::Agreement>,
    /// (run, classifier, accuracy, labeled rows) of every finished run over the
    /// shown run's file, per (shown run, database revision).
    accuracies: Cached<(i64, crate::db::Revision), Vec<RunScore>>,
    /// Every run, newest first, per database revision.
    runs: Cached<crate::db::Revision, Vec<RunInfo>>,
    picking: Option<Pending<Option<PathBuf>>>,
    /// The last run is shown when the screen first opens.
    opened: bool,
    pub teach: TeachPanel,
    /// A taught model to classify with instead of prompting the local model
    /// (the backend is then local).
    pub taught: Option<String>,
    /// The left side teaches a classifier instead of classifying.
    pub teaching: bool,
    /// Switch to teaching on the next frame (offered under a labeled run).
    open_teach: bool,
}

impl Default for ReviewsScreen {
    fn default() -> Self {
        let labels = "positive, negative".to_string();
        let instruction = default_instruction(&["positive".to_string(), "negative".to_string()]);
        ReviewsScreen {
            pasted: String::new(),
            file: None,
            path: String::new(),
            headers: Vec::new(),
            text_column: String::new(),
            label_column: String::new(),
            instruction_for: labels.clone(),
            labels,
            instruction,
            calibration: crate::tasks::classify::DEFAULT_CALIBRATION,
            examples: String::new(),
            backend: BackendSpec::Local,
            running: None,
            shown_run: None,
            rows: Vec::new(),
            summary: None,
            headers_of_shown: Vec::new(),
            error: None,
            status: None,
            filter: String::new(),
            sort: SortBy::Row,
            only_mistakes: false,
            compare_with: None,
            agreement: Cached::default(),
            accuracies: Cached::default(),
            runs: Cached::default(),
            picking: None,
            opened: false,
            teach: TeachPanel::default(),
            taught: None,
            teaching: false,
            open_teach: false,
        }
    }
}

impl ReviewsScreen {
    pub fn try_example(&mut self) {
        self.file = None;
        self.headers.clear();
        self.pasted = EXAMPLE_REVIEWS.join("\n");
    }

    /// Use a file: read its header to offer the columns.
    pub fn import(&mut self, path: PathBuf) {
        match Table::open(&path) {
            Ok(t) => {
                self.text_column = t.headers[t.guess_text_column()].clone();
                self.label_column = ["label", "sentiment", "class"]
                    .iter()
                    .find_map(|n| t.column(n).ok().map(|i| t.headers[i].clone()))
                    .unwrap_or_default();
                self.headers = t.headers.clone();
                self.file = Some(path);
                self.error = None;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Start classifying in the background.
    pub fn start(&mut self, services: &mut Services) {
        if self.running.is_some() {
            return;
        }
        self.error = None;
        match self.prepare(services) {
            Ok(r) => {
                self.status = None;
                self.running = Some(r);
            }
            Err(e) => self.error = Some(e),
        }
    }

    fn prepare(&mut self, services: &mut Services) -> Result<Running, String> {
        let taught = self.taught.clone().filter(|_| self.backend.is_local());
        let (labels, _) = match &taught {
            // A taught model knows its labels.
            Some(name) => (taught_labels(services, name)?, Vec::new()),
            None => parse_labels(&self.labels).map_err(|e| e.to_string())?,
        };
        let mut classify = ClassifyConfig::new(labels);
        classify.instruction = self.instruction.clone();
        classify.calibration = self.calibration;
        classify.examples =
            crate::tasks::classify::parse_examples(std::slice::from_ref(&self.examples), &classify.labels)
                .map_err(|e| e.to_string())?;
        classify.check().map_err(|e| e.to_string())?;
        let source = match &self.file {
            Some(f) => f.clone(),
            None => {
                if self.pasted.trim().is_empty() {
                    return Err(
                        "Paste some reviews (one per line), import a file, or press \"Try the example\".".into()
                    );
                }
                let dir = services.paths.data_dir.join("pasted");
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                let path = pasted_file_name(&dir, &self.pasted);
                std::fs::write(&path, &self.pasted).map_err(|e| format!("could not keep the pasted text: {e}"))?;
                path
            }
        };
        // Pasted text has no columns to choose: its one column is the text.
        let from_file = |c: &String| Some(c.clone()).filter(|c| !c.is_empty() && self.file.is_some());
        let model = match (&services.local, &self.backend, &taught) {
            (_, BackendSpec::Local, Some(name)) => Some(crate::tasks::teach::model_spec(name)),
            (LocalState::Ready(engine), BackendSpec::Local, None) => Some(engine.name.clone()),
            _ => None,
        };
        let plan = plan_run(
            &source,
            classify,
            from_file(&self.text_column).as_deref(),
            from_file(&self.label_column).as_deref(),
            model,
        )
        .map_err(|e| e.to_string())?;
        // Everything that can refuse (a model still loading, a cloud key
        // missing) is asked before the run exists, so a refusal leaves no
        // empty run behind in "Earlier runs".
        let cancel = Cancel::new();
        let classifier = classifier(services, &self.backend, &plan.config, &cancel)?;
        let run_id = start_run(&services.db, &plan, &self.backend).map_err(|e| e.to_string())?;
        let launched = self.launch(services, run_id, plan.table, plan.config, classifier, cancel);
        if launched.is_err() {
            let _ = services.db.set_run_status(run_id, RunStatus::Failed);
        }
        launched
    }

    /// Continue a run that was stopped.
    pub fn resume(&mut self, services: &mut Services, run_id: i64) {
        // An earlier message (say, from a refused Classify) is not about this run.
        self.error = None;
        let result = (|| {
            let mut resumed = resume_run(&services.db, run_id, crate::db::now_s()).map_err(|e| e.to_string())?;
            let taught = crate::tasks::teach::taught_name(resumed.config.model.as_deref()).map(str::to_string);
            if resumed.backend.is_local() && taught.is_none() {
                let loaded = services.local_engine().map_err(|e| e.to_string())?.name.clone();
                resumed.claim_model(&services.db, &loaded).map_err(|e| e.to_string())?;
            }
            self.backend = resumed.backend.clone();
            self.taught = taught;
            let cancel = Cancel::new();
            let classifier = classifier(services, &resumed.backend, &resumed.config, &cancel)?;
            self.launch(services, run_id, resumed.table, resumed.config, classifier, cancel)
        })();
        match result {
            Ok(r) => {
                self.status = None;
                self.running = Some(r);
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Classify `table` into run `run_id` on a worker thread.
    fn launch(
        &mut self,
        services: &mut Services,
        run_id: i64,
        table: Table,
        config: RunConfig,
        mut classifier: Box<dyn Classifier + Send>,
        cancel: Cancel,
    ) -> Result<Running, String> {
        let progress = Arc::new(GuiProgress::new(services.wake.clone()));
        let (p, c, paths) = (progress.clone(), cancel.clone(), services.paths.clone());
        let result = Pending::spawn("duet-classify", &services.wake, move || {
            let mut db = Db::open_default(&paths).map_err(|e| e.to_string())?;
            crate::tasks::classify::run_table(&mut db, run_id, table, &config, classifier.as_mut(), p.as_ref(), &c)
                .map_err(|e| e.to_string())
        });
        self.shown_run = Some(run_id);
        Ok(Running { run_id, progress, cancel, result, shown_at: std::time::Instant::now() })
    }

    pub fn cancel(&self) {
        if let Some(r) = &self.running {
            r.cancel.cancel();
        }
    }

    /// Load a run's rows and summary for display.
    pub fn show_run(&mut self, db: &Db, run_id: i64) {
        let read = db.run(run_id).map_err(|e| e.to_string()).and_then(|info| {
            let config = serde_json::from_str::<RunConfig>(&info.config_json).map_err(|e| e.to_string())?;
            Ok((config, db.run_rows(run_id).map_err(|e| e.to_string())?))
        });
        let (config, rows) = match read {
            Ok(read) => read,
            Err(e) => {
                self.error = Some(format!("Could not read run #{run_id}: {e}"));
                return;
            }
        };
        self.rows = rows;
        self.summary = Some(summarize(&config.classify.labels, &self.rows));
        self.headers_of_shown = config.headers;
        if self.shown_run != Some(run_id) {
            self.compare_with = None;
        }
        self.shown_run = Some(run_id);
    }

    fn poll(&mut self, services: &mut Services) {
        let Some(r) = &mut self.running else { return };
        // Refresh the partial results about once a second, so counts grow while it runs.
        let refresh = r.shown_at.elapsed().as_secs() >= 1;
        if refresh {
            r.shown_at = std::time::Instant::now();
        }
        match r.result.poll() {
            Polled::Ready(result) => {
                let run_id = r.run_id;
                self.running = None;
                match result {
                    Ok(outcome) if !outcome.finished => {
                        self.error = Some(format!(
                            "Stopped. {} rows are saved; Resume continues where it left off.",
                            services.db.run(run_id).map(|i| i.rows).unwrap_or(0)
                        ));
                    }
                    Ok(outcome) => {
                        if outcome.seconds > 0.0 && outcome.classified_now > 0 {
                            self.status = Some(format!(
                                "{} reviews in {:.1} s ({:.1}/s)",
                                outcome.classified_now,
                                outcome.seconds,
                                outcome.classified_now as f64 / outcome.seconds
                            ));
                        }
                    }
                    Err(e) => self.error = Some(e),
                }
                self.show_run(&services.db, run_id);
            }
            Polled::Waiting => {
                if refresh {
                    let id = r.run_id;
                    self.show_run(&services.db, id);
                }
            }
            Polled::Lost => {
                self.running = None;
                self.error = Some("the classification stopped unexpectedly".into());
            }
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        if !self.opened {
            self.opened = true;
            if let Some(last) = services.db.runs().ok().and_then(|r| r.into_iter().next()) {
                self.show_run(&services.db, last.id);
            }
        }
        self.poll(services);
        if let Some(name) = self.teach.poll() {
            // Just taught: chosen for the next run straight away.
            self.taught = Some(name);
            self.backend = BackendSpec::Local;
        }
        if let Some(path) = picked(&mut self.picking) {
            self.import(path);
        }
        // Files dropped on the window.
        let dropped: Vec<PathBuf> = dropped_files(ui);
        if let Some(p) = dropped.into_iter().next() {
            self.import(p);
        }
        let width = side_width(ui, 0.4, 260.0, 360.0);
        egui::Panel::left("reviews_input").default_size(width).max_size(width).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.input_ui(ui, services));
        });
        // Both ways: on a small window the table scrolls sideways instead of being cut off.
        egui::ScrollArea::both().auto_shrink([false, false]).show(ui, |ui| {
            if self.teaching {
                self.teach.results_ui(ui);
            } else {
                self.results_ui(ui, services);
            }
        });
    }

    fn input_ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        ui.heading("Reviews");
        if std::mem::take(&mut self.open_teach) {
            self.teaching = true;
        }
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.teaching, false, "Classify reviews");
            ui.selectable_value(&mut self.teaching, true, "Teach a classifier");
        });
        ui.horizontal(|ui| {
            if self.teaching {
                if ui.button("Use the example data").on_hover_text("1,000 labeled product-review sentences").clicked() {
                    match TeachPanel::example_file(&services.paths.data_dir) {
                        Ok(path) => {
                            self.import(path);
                            self.teach.name = "product-reviews".into();
                        }
                        Err(e) => self.error = Some(e),
                    }
                }
            } else if ui.button("Try the example").clicked() {
                self.try_example();
            }
            if ui.button("Import a file…").on_hover_text("CSV, TSV, TXT or JSONL — or drop it on the window").clicked()
            {
                self.picking = Some(services.open_dialog("Reviews", &["csv", "tsv", "txt", "jsonl"]));
            }
        });
        if let Some(path) = path_field(ui, &mut self.path, "or type a file's path", "Open") {
            self.import(path);
        }
        if let Some(f) = self.file.clone() {
            ui.horizontal(|ui| {
                // The name only (the whole path on hover): a long path would widen the panel.
                let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                ui.label(format!("File: {name}")).on_hover_text(f.display().to_string());
                if ui.small_button("x").on_hover_text("Use pasted text instead").clicked() {
                    self.file = None;
                }
            });
            let headers = self.headers.clone();
            egui::ComboBox::from_label("Text column").selected_text(&self.text_column).show_ui(ui, |ui| {
                for h in &headers {
                    ui.selectable_value(&mut self.text_column, h.clone(), h);
                }
            });
            egui::ComboBox::from_label(if self.teaching { "Labels to learn" } else { "Known labels (optional)" })
                .selected_text(if self.label_column.is_empty() { "none" } else { &self.label_column })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.label_column, String::new(), "none");
                    for h in &headers {
                        ui.selectable_value(&mut self.label_column, h.clone(), h);
                    }
                });
        } else if self.teaching {
            ui.weak("Teaching needs a file with a column of known labels (CSV, TSV or JSONL).");
        } else {
            ui.label("Paste reviews, one per line:");
            ui.add(egui::TextEdit::multiline(&mut self.pasted).desired_rows(8).desired_width(f32::INFINITY));
        }
        ui.separator();
        if self.teaching {
            let source = self.teach_source();
            self.teach.ui(ui, services, source);
            if let Some(e) = &self.error {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            ui.separator();
            ui.collapsing("Taught models", |ui| self.teach.list_ui(ui, services));
            return;
        }
        let taught_labels = self
            .taught
            .as_ref()
            .filter(|_| self.backend.is_local())
            .map(|name| taught_labels(services, name).map(|l| l.join(", ")).unwrap_or_else(|e| e));
        if let Some(labels) = taught_labels {
            ui.label(format!("Labels: {labels} (the taught model's own; it needs no instruction)"));
        } else {
            self.prompt_ui(ui);
        }
        ui.horizontal(|ui| {
            ui.label("Run on");
            let taught_models = self.teach.models(&services.paths.data_dir).to_vec();
            let choices = services.backend_choices();
            let selected = match (&self.taught, self.backend.is_local()) {
                (Some(name), true) => format!("Taught: {name}"),
                _ => choices.iter().find(|(k, _)| *k == self.backend).map(|(_, v)| v.clone()).unwrap_or_default(),
            };
            egui::ComboBox::from_id_salt("reviews_backend").selected_text(selected).show_ui(ui, |ui| {
                for (k, v) in choices {
                    let on = self.backend == k && (self.taught.is_none() || !k.is_local());
                    if ui.selectable_label(on, v).clicked() {
                        self.backend = k;
                        self.taught = None;
                    }
                }
                for m in taught_models {
                    let on = self.backend.is_local() && self.taught.as_deref() == Some(m.name.as_str());
                    let text = format!("Taught: {} ({:.0}% held out)", m.name, 100.0 * m.held_out_accuracy);
                    if ui.selectable_label(on, text).clicked() {
                        self.backend = BackendSpec::Local;
                        self.taught = Some(m.name.clone());
                    }
                }
            });
        });
        match services.data_location(&self.backend) {
            Ok(DataLocation::ThisComputer) => {
                ui.weak("The reviews stay on this computer.");
            }
            Ok(DataLocation::SentTo(host)) => {
                ui.colored_label(ui.visuals().warn_fg_color, format!("The reviews will be sent to {host}."));
            }
            Err(_) => {}
        }
        if let Some(r) = &self.running {
            r.progress.ui(ui, Some(&r.cancel));
        } else if ui.button("Classify").clicked() {
            self.start(services);
        }
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        if let Some(s) = &self.status {
            ui.weak(s);
        }
        ui.separator();
        ui.collapsing("Earlier runs", |ui| {
            let db = &services.db;
            let runs: Vec<RunInfo> = self
                .runs
                .get(db.revision(), || or_notice(&mut services.notice, db.runs()))
                .iter()
                .take(20)
                .cloned()
                .collect();
            for run in runs {
                ui.horizontal(|ui| {
                    let name = std::path::Path::new(&run.source)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if ui
                        .selectable_label(
                            self.shown_run == Some(run.id),
                            format!("#{} {name} · {} · {} rows · {}", run.id, run.backend, run.rows, run.status),
                        )
                        .clicked()
                    {
                        self.show_run(&services.db, run.id);
                    }
                    // Stopped, failed, or cut short when the app closed: all resumable
                    // (but not a run another window is still working on).
                    if run.status != RunStatus::Done
                        && !running_elsewhere(&services.db, &run, crate::db::now_s())
                        && self.running.is_none()
                        && ui.small_button("Resume").clicked()
                    {
                        self.resume(services, run.id);
                    }
                });
            }
        });
    }

    /// The chosen file, when it has a known-labels column to learn from.
    fn teach_source(&self) -> Option<FileSource> {
        let file = self.file.clone()?;
        (!self.label_column.is_empty()).then(|| FileSource {
            file,
            text_column: self.text_column.clone(),
            label_column: self.label_column.clone(),
        })
    }

    /// Offered under a run with known labels: teach from its file and columns.
    fn offer_teaching(&mut self, ui: &mut egui::Ui, services: &Services) {
        let Some(run) = self.shown_run else { return };
        let Ok(info) = services.db.run(run) else { return };
        let Ok(config) = serde_json::from_str::<RunConfig>(&info.config_json) else { return };
        let (Some(label_column), false) = (config.label_column, self.teach.is_running()) else { return };
        let source = PathBuf::from(&info.source);
        if !source.exists() || crate::tasks::teach::taught_name(config.model.as_deref()).is_some() {
            return;
        }
        if ui.button("Teach a classifier from these labeled rows").clicked() {
            self.import(source.clone());
            self.text_column = config.text_column;
            self.label_column = label_column;
            if self.teach.name.trim().is_empty() {
                self.teach.name = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            }
            self.open_teach = true;
        }
    }

    /// Labels, instruction, worked examples and bias correction: how the
    /// language model is asked.
    fn prompt_ui(&mut self, ui: &mut egui::Ui) {
        ui.label("Labels (comma-separated)");
        ui.text_edit_singleline(&mut self.labels);
        if self.labels != self.instruction_for {
            // Keep the instruction in step with the labels unless the person edited it.
            if let Ok((l, _)) = parse_labels(&self.labels) {
                if let Ok((old, _)) = parse_labels(&self.instruction_for) {
                    if self.instruction == default_instruction(&old) {
                        self.instruction = default_instruction(&l);
                    }
                }
            }
            self.instruction_for = self.labels.clone();
        }
        ui.label("Instruction ({review} marks where each review goes)");
        ui.add(egui::TextEdit::multiline(&mut self.instruction).desired_rows(4).desired_width(f32::INFINITY));
        ui.label("Worked examples (optional), one per line: review => label");
        ui.add(
            egui::TextEdit::multiline(&mut self.examples)
                .desired_rows(2)
                .desired_width(f32::INFINITY)
                .hint_text("The ramen was rich and hot. => positive"),
        );
        ui.add(egui::Slider::new(&mut self.calibration, 0.0..=1.0).text("bias correction")).on_hover_text(
            "How much of the model's lean toward some labels (measured on empty reviews) to divide out. 0.25 measured best for the default model.",
        );
    }

    fn results_ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        let Some(summary) = self.summary.clone() else {
            ui.weak("Results appear here: counts, a chart, every row with its label and confidence.");
            return;
        };
        ui.heading(summary.sentence());
        if let Some(failed) = summary.failure_sentence(self.rows.len()) {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!("{failed}. Fix that, then press Resume: those rows are tried again."),
            );
        }
        if summary.skipped > 0 || summary.flagged > 0 {
            ui.weak(format!("{} rows skipped, {} flagged (see the note column).", summary.skipped, summary.flagged));
        }
        let bars: Vec<egui_plot::Bar> = summary
            .counts
            .iter()
            .enumerate()
            .map(|(i, (l, c))| egui_plot::Bar::new(i as f64, *c as f64).name(l).width(0.6).fill(label_color(l, i)))
            .collect();
        let names: Vec<String> = summary.counts.iter().map(|(l, _)| l.clone()).collect();
        egui_plot::Plot::new("counts")
            .height(160.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .show_grid(false)
            .x_axis_formatter(move |m, _| names.get(m.value.round() as usize).cloned().unwrap_or_default())
            .show(ui, |plot| plot.bar_chart(egui_plot::BarChart::new("reviews", bars)));
        if let Some(e) = &summary.evaluation {
            ui.strong(format!("Accuracy {:.1}% on {} labeled rows", 100.0 * e.accuracy, e.rows));
            egui::Grid::new("per_label").striped(true).show(ui, |ui| {
                for h in ["label", "precision", "recall", "rows"] {
                    ui.strong(h);
                }
                ui.end_row();
                for (l, p, r, n) in &e.per_label {
                    ui.label(l);
                    ui.label(format!("{:.1}%", 100.0 * p));
                    ui.label(format!("{:.1}%", 100.0 * r));
                    ui.label(n.to_string());
                    ui.end_row();
                }
            });
            ui.label("Confusion (rows: the known label; columns: what the model said)");
            egui::Grid::new("confusion").striped(true).show(ui, |ui| {
                ui.label("");
                for l in &summary.labels {
                    ui.strong(l);
                }
                ui.strong("other");
                ui.end_row();
                for (l, row) in summary.labels.iter().zip(&e.confusion) {
                    ui.strong(l);
                    for c in row {
                        ui.label(c.to_string());
                    }
                    ui.end_row();
                }
            });
            ui.checkbox(
                &mut self.only_mistakes,
                format!("Show only the {}", crate::tasks::count(e.mistakes.len() as u64, "mistake")),
            );
            self.offer_teaching(ui, services);
        }
        self.agreement_ui(ui, services);
        self.accuracy_table(ui, services);
        ui.horizontal(|ui| {
            ui.add(egui::TextEdit::singleline(&mut self.filter).hint_text("Filter rows").desired_width(200.0));
            ui.label("Sort by");
            ui.radio_value(&mut self.sort, SortBy::Row, "row");
            ui.radio_value(&mut self.sort, SortBy::Label, "label");
            ui.radio_value(&mut self.sort, SortBy::Confidence, "confidence");
            if ui.button("Export CSV…").clicked() {
                let mut buf = Vec::new();
                match export_csv(&self.headers_of_shown, &self.rows, &mut buf) {
                    Ok(()) => services.save_dialog("reviews-labeled.csv".into(), buf),
                    Err(e) => self.error = Some(format!("could not write the CSV: {e}")),
                }
            }
        });
        let mistakes: Vec<i64> = summary.evaluation.as_ref().map(|e| e.mistakes.clone()).unwrap_or_default();
        let filter = self.filter.to_lowercase();
        let mut rows: Vec<&RunRow> = self
            .rows
            .iter()
            .filter(|r| {
                filter.is_empty()
                    || r.text.to_lowercase().contains(&filter)
                    || r.label.as_deref().unwrap_or("").contains(&filter)
            })
            .filter(|r| !self.only_mistakes || mistakes.contains(&r.row_index))
            .collect();
        match self.sort {
            SortBy::Row => {}
            SortBy::Label => rows.sort_by(|a, b| a.label.cmp(&b.label)),
            SortBy::Confidence => {
                rows.sort_by(|a, b| a.confidence.unwrap_or(0.0).total_cmp(&b.confidence.unwrap_or(0.0)))
            }
        }
        egui::Grid::new("rows").striped(true).num_columns(5).show(ui, |ui| {
            for h in ["#", "review", "label", "confidence", "known / note"] {
                ui.strong(h);
            }
            ui.end_row();
            for r in rows.iter().take(500) {
                ui.label((r.row_index + 1).to_string());
                ui.label(if r.text.chars().count() > 90 {
                    r.text.chars().take(89).collect::<String>() + "…"
                } else {
                    r.text.clone()
                });
                ui.label(r.label.as_deref().unwrap_or("—"));
                ui.label(r.confidence.map(|c| format!("{:.0}%", 100.0 * c)).unwrap_or_default());
                let mut extra = r.gold.clone().unwrap_or_default();
                if !r.note.is_empty() {
                    if !extra.is_empty() {
                        extra.push_str(" · ");
                    }
                    extra.push_str(&r.note);
                }
                ui.label(extra);
                ui.end_row();
            }
        });
        if rows.len() > 500 {
            ui.weak(format!("Showing 500 of {} rows; export the CSV for all.", rows.len()));
        }
    }

    /// Every finished run over the shown run's file with known labels: which
    /// classifier, how often it was right. The course's "a smaller model for
    /// the task" question, answered on the person's own rows.
    fn accuracy_table(&mut self, ui: &mut egui::Ui, services: &Services) {
        let Some(shown) = self.shown_run else { return };
        let db = &services.db;
        let scored = self.accuracies.get((shown, db.revision()), || {
            let Ok(runs) = db.runs() else { return Vec::new() };
            let Some(source) = runs.iter().find(|r| r.id == shown).map(|r| r.source.clone()) else { return Vec::new() };
            runs.iter()
                .filter(|r| r.source == source && r.status == RunStatus::Done)
                .filter_map(|r| {
                    let config: RunConfig = serde_json::from_str(&r.config_json).ok()?;
                    let rows = db.run_rows(r.id).ok()?;
                    let e = summarize(&config.classify.labels, &rows).evaluation?;
                    let who = match (&r.backend, config.model) {
                        (BackendSpec::Local, Some(m)) => m,
                        (b, _) => b.to_string(),
                    };
                    Some(RunScore { id: r.id, classifier: who, accuracy: e.accuracy, rows: e.rows })
                })
                .collect::<Vec<_>>()
        });
        if scored.len() < 2 {
            return;
        }
        ui.separator();
        ui.strong("Every finished run over this file");
        egui::Grid::new("accuracy_by_run").striped(true).show(ui, |ui| {
            for h in ["run", "classifier", "accuracy", "labeled rows"] {
                ui.strong(h);
            }
            ui.end_row();
            for r in scored.iter() {
                ui.label(format!("#{}", r.id));
                ui.label(&r.classifier);
                ui.label(format!("{:.1}%", 100.0 * r.accuracy));
                ui.label(r.rows.to_string());
                ui.end_row();
            }
        });
        let names: Vec<String> = scored.iter().map(|r| format!("#{} {}", r.id, r.classifier)).collect();
        let bars: Vec<egui_plot::Bar> = scored
            .iter()
            .zip(&names)
            .enumerate()
            .map(|(i, (r, name))| egui_plot::Bar::new(i as f64, 100.0 * r.accuracy).name(name).width(0.6))
            .collect();
        egui_plot::Plot::new("accuracy_by_run_chart")
            .x_axis_formatter(move |m, _| {
                let i = m.value.round();
                if (m.value - i).abs() < 1e-6 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .height(120.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .include_y(0.0)
            .include_y(100.0)
            .y_axis_label("accuracy %")
            .show(ui, |plot| plot.bar_chart(egui_plot::BarChart::new("accuracy", bars)));
        ui.separator();
    }

    /// Agreement with another run over the same rows (e.g. the cloud backend).
    fn agreement_ui(&mut self, ui: &mut egui::Ui, services: &Services) {
        let Some(shown) = self.shown_run else { return };
        let (db, error) = (&services.db, &mut self.error);
        let runs = self.runs.get(db.revision(), || {
            db.runs().unwrap_or_else(|e| {
                *error = Some(format!("Could not read duet's database: {e}"));
                Vec::new()
            })
        });
        let Some(info) = runs.iter().find(|r| r.id == shown) else { return };
        let others: Vec<RunInfo> = runs.iter().filter(|r| r.source == info.source && r.id != shown).cloned().collect();
        if others.is_empty() {
            return;
        }
        ui.horizontal(|ui| {
            ui.label("Compare with run");
            egui::ComboBox::from_id_salt("agree_with")
                .selected_text(self.compare_with.map(|i| format!("#{i}")).unwrap_or_else(|| "none".into()))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.compare_with, None, "none");
                    for o in &others {
                        ui.selectable_value(&mut self.compare_with, Some(o.id), format!("#{} {}", o.id, o.backend));
                    }
                });
        });
        if let Some(other) = self.compare_with {
            // Reading the other run is a whole run's rows: only when something changed, not per frame.
            let key = (shown, other, self.rows.len(), db.revision());
            let mine = &self.rows;
            let g = self.agreement.get(key, || {
                let other_rows = db.run_rows(other).unwrap_or_else(|e| {
                    *error = Some(format!("Could not read run #{other}: {e}"));
                    Vec::new()
                });
                agreement(mine, &other_rows)
            });
            if g.rows > 0 {
                ui.label(format!(
                    "They agree on {} of {} rows ({:.0}%).",
                    g.agree,
                    g.rows,
                    100.0 * g.agree as f64 / g.rows as f64
                ));
                for (i, text, a, b) in g.differ.iter().take(50) {
                    ui.weak(format!("row {}: {a} here, {b} there — {text}", i + 1));
                }
            }
        }
    }
}

/// The classifier for `backend`, or why there is none yet.
fn classifier(
    services: &Services,
    backend: &BackendSpec,
    config: &RunConfig,
    cancel: &Cancel,
) -> Result<Box<dyn Classifier + Send>, String> {
    if let (true, Some(name)) = (backend.is_local(), crate::tasks::teach::taught_name(config.model.as_deref())) {
        return Ok(Box::new(taught_classifier(services, name)));
    }
    let config = config.classify.clone();
    let built: Result<Box<dyn Classifier + Send>, ClassifyError> = match backend {
        BackendSpec::Local => {
            let engine = services.local_engine().map_err(|e| e.to_string())?;
            LazyLocalClassifier::new(engine.clone(), config).map(|c| Box::new(c) as _)
        }
        BackendSpec::Cloud { .. } => {
            let cloud = services.cloud(backend).map_err(|e| e.to_string())?;
            CloudClassifier::new(cloud, config, cancel.clone()).map(|c| Box::new(c) as _)
        }
    };
    built.map_err(|e| e.to_string())
}

/// The labels of taught model `name`, or why it cannot be used.
fn taught_labels(services: &Services, name: &str) -> Result<Vec<String>, String> {
    crate::tasks::teach::labels_of(&services.paths.data_dir, name).map_err(|e| e.to_string())
}

/// Taught model `name`, opened (and its embedding model fetched if need be) on the run's thread.
fn taught_classifier(services: &Services, name: &str) -> crate::tasks::teach::LazyTaught {
    let (store, catalog, owned) = (services.store(), services.catalog.clone(), name.to_string());
    crate::tasks::teach::LazyTaught::new(name, move || {
        crate::tasks::teach::load_classifier(&store, &catalog, &owned, &crate::progress::Silent, &Cancel::new())
    })
}

/// A colour per label: green and red where the label says so, grey for
/// "unclear", a distinct hue for anything else.
fn label_color(label: &str, index: usize) -> egui::Color32 {
    const OTHERS: [egui::Color32; 5] = [
        egui::Color32::from_rgb(86, 140, 220),
        egui::Color32::from_rgb(220, 160, 60),
        egui::Color32::from_rgb(160, 110, 210),
        egui::Color32::from_rgb(60, 180, 180),
        egui::Color32::from_rgb(200, 120, 150),
    ];
    match label.to_ascii_lowercase().as_str() {
        "positive" | "good" | "yes" => egui::Color32::from_rgb(70, 170, 90),
        "negative" | "bad" | "no" => egui::Color32::from_rgb(210, 80, 70),
        crate::tasks::classify::UNCLEAR => egui::Color32::GRAY,
        _ => OTHERS[index % OTHERS.len()],
    }
}

/// A file for pasted reviews, named after the first words of the first one
/// ("pasted-the-mochi-is-excellent.txt"), so earlier runs can be told apart.
fn pasted_file_name(dir: &std::path::Path, pasted: &str) -> PathBuf {
    let first = pasted.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let words: Vec<String> =
        first.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(5).map(str::to_lowercase).collect();
    let stem = if words.is_empty() { "pasted".to_string() } else { format!("pasted-{}", words.join("-")) };
    (1..)
        .map(|n| dir.join(if n == 1 { format!("{stem}.txt") } else { format!("{stem}-{n}.txt") }))
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(format!("{stem}.txt")))
}
