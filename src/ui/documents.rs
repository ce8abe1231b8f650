//! The Documents screen: add files or folders (dialog, typed path, drag and
//! drop, or the sample handbook), see each one's state, ask a question, and
//! read the answer beside the passages it came from. Indexing and answering
//! run on their own threads; the screen only draws what they send back.

use super::cached::Cached;
use super::pending::{picked, Pending, Polled};
use super::progress::GuiProgress;
use super::services::{or_notice, Services};
use super::widgets::{dropped_files, path_field, side_width};
use crate::catalog::Catalog;
use crate::db::{Db, DocumentRow};
use crate::embed::Embedder;
use crate::engine::{BackendSpec, Cancel};
use crate::progress::{Progress, Silent};
use crate::store::{FileState, Store};
use crate::tasks::docs::{
    add_files, canonical_folder, count, embed_pending, files_under, load_embedder, refresh, watch, Added, DocAnswer,
    DocError, KINDS,
};
use eframe::egui;
use egui_commonmark::{CommonMarkCache, CommonMarkViewer};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The sample handbook, written out to the data folder when asked for.
const HANDBOOK: &str = include_str!("../../assets/examples/handbook.md");

struct Indexing {
    progress: Arc<GuiProgress>,
    cancel: Cancel,
    result: Pending<Result<Indexed, String>>,
}

/// What an indexing job does.
enum IndexJob {
    /// Index these files; the folders in `follow` are watched from now on.
    Add { files: Vec<PathBuf>, follow: Vec<PathBuf> },
    /// Bring the watched folders up to date (on opening the screen, or after a change in them).
    CatchUp,
}

/// What an indexing job did: each file's outcome, and a line about the
/// passages' vectors when something about them needs saying.
struct Indexed {
    added: Vec<Added>,
    /// Documents dropped because their file left a watched folder.
    removed: Vec<String>,
    vectors: Option<String>,
}

/// The embedding model, loaded once by whichever job needs it first and
/// shared by indexing and asking.
type EmbedderSlot = Arc<Mutex<Option<Arc<Embedder>>>>;

fn shared_embedder(
    slot: &EmbedderSlot,
    store: &Store,
    catalog: &Catalog,
    fetch: bool,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Option<Arc<Embedder>>, DocError> {
    // A poisoned lock only means a job panicked while loading: load again.
    let mut held = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = held.as_ref() {
        return Ok(Some(e.clone()));
    }
    let loaded = load_embedder(store, catalog, fetch, progress, cancel)?.map(Arc::new);
    held.clone_from(&loaded);
    Ok(loaded)
}

/// Give the passages without vectors theirs; says why not when it could not.
fn embed_all(
    db: &mut Db,
    slot: &EmbedderSlot,
    store: &Store,
    catalog: &Catalog,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Option<String> {
    let done = shared_embedder(slot, store, catalog, true, progress, cancel).and_then(|e| match e {
        Some(e) => embed_pending(db, &e, progress, cancel).map(|_| ()),
        None => Ok(()),
    });
    done.err().map(|e| format!("Search by meaning is off ({e}); keyword search works."))
}

#[derive(Default)]
pub struct DocumentsScreen {
    /// A path typed by hand (for systems without a file dialog).
    pub path: String,
    pub question: String,
    pub backend: BackendSpec,
    /// How many passages the model reads.
    pub top_k: usize,
    indexing: Option<Indexing>,
    asking: Option<Pending<Result<DocAnswer, String>>>,
    pub answer: Option<DocAnswer>,
    /// The passage opened from a citation (0-based), shown with its best sentence highlighted.
    pub opened: Option<usize>,
    /// Set when `opened` changed: the next frame opens that passage (and
    /// closes the others) once, then the person may fold them as they like.
    open_now: bool,
    /// What the last add did, one line per file.
    pub outcomes: Vec<String>,
    pub error: Option<String>,
    picking: Option<Pending<Option<PathBuf>>>,
    docs: Cached<crate::db::Revision, Vec<DocumentRow>>,
    md_cache: CommonMarkCache,
    embedder: EmbedderSlot,
    /// Whether passages left without vectors (the app was closed while
    /// indexing) have been looked for since the screen opened.
    resume_checked: bool,
    /// Folders added are not watched (the box is ticked by default).
    pub no_follow: bool,
    watched: Cached<crate::db::Revision, Vec<String>>,
    follower: Option<Follower>,
}

/// The watcher of the watched folders while the app is open.
struct Follower {
    folders: Vec<String>,
    _watcher: notify::RecommendedWatcher,
    changes: std::sync::mpsc::Receiver<()>,
    /// The last change not yet indexed: indexing starts a second after a burst ends.
    pending_since: Option<Instant>,
}

impl DocumentsScreen {
    /// Index `paths` (files or folders) on a worker thread.
    pub fn add(&mut self, services: &Services, paths: Vec<PathBuf>) {
        if self.indexing.is_some() {
            return;
        }
        self.error = None;
        let follow: Vec<PathBuf> =
            if self.no_follow { Vec::new() } else { paths.iter().filter(|p| p.is_dir()).cloned().collect() };
        let files = match files_under(&paths) {
            // An empty folder may be watched: files dropped in later go in.
            Ok(f) if f.is_empty() && follow.is_empty() => {
                self.error = Some(format!("No {KINDS} files there."));
                return;
            }
            Ok(f) => f,
            Err(e) => {
                self.error = Some(e.to_string());
                return;
            }
        };
        self.index(services, IndexJob::Add { files, follow });
    }

    /// Run `job` on a worker thread, then embed every passage still
    /// without a vector.
    fn index(&mut self, services: &Services, job: IndexJob) {
        let progress = Arc::new(GuiProgress::new(services.wake.clone()));
        let cancel = Cancel::new();
        let (p, c, data) = (progress.clone(), cancel.clone(), services.paths.clone());
        let (store, catalog, slot) = (services.store(), services.catalog.clone(), self.embedder.clone());
        let result = Pending::spawn("duet-index", &services.wake, move || {
            let mut db = Db::open_default(&data).map_err(|e| e.to_string())?;
            let (added, removed) = match job {
                IndexJob::Add { files, follow } => {
                    for folder in &follow {
                        let folder = canonical_folder(folder).map_err(|e| e.to_string())?;
                        db.watch_folder(&folder).map_err(|e| e.to_string())?;
                    }
                    (add_files(&mut db, &files, p.as_ref(), &c).map_err(|e| e.to_string())?, Vec::new())
                }
                IndexJob::CatchUp => {
                    let done = refresh(&mut db, p.as_ref(), &c).map_err(|e| e.to_string())?;
                    let changed = done.added.into_iter().filter(|a| !matches!(a, Added::Unchanged { .. }));
                    (changed.collect(), done.removed)
                }
            };
            let vectors =
                if c.is_cancelled() { None } else { embed_all(&mut db, &slot, &store, &catalog, p.as_ref(), &c) };
            Ok(Indexed { added, removed, vectors })
        });
        self.indexing = Some(Indexing { progress, cancel, result });
    }

    /// Once per screen: catch up with the watched folders and finish
    /// embedding what a closed app left unembedded.
    fn resume(&mut self, services: &Services) {
        if self.resume_checked || self.indexing.is_some() {
            return;
        }
        self.resume_checked = true;
        // Passages left without vectors, with the model here to embed them (a
        // missing model is fetched when the person adds files, not on opening a screen).
        let unembedded = services.catalog.default_embedder().is_some_and(|e| {
            services.db.count_chunks_without_vectors(&e.id).unwrap_or(0) > 0
                && services.store().model_state(e) != FileState::Missing
        });
        let watching = services.db.watched_folders().is_ok_and(|f| !f.is_empty());
        if unembedded || watching {
            self.index(services, IndexJob::CatchUp);
        }
    }

    /// Keep a watcher on the watched folders; a second after changes stop
    /// coming, bring the index up to date.
    fn follow_changes(&mut self, ui: &egui::Ui, services: &mut Services) {
        let (db, notice) = (&services.db, &mut services.notice);
        let folders = self.watched.get(db.revision(), || or_notice(notice, db.watched_folders())).clone();
        if self.follower.as_ref().map(|f| &f.folders) != Some(&folders) {
            self.follower = None;
            if !folders.is_empty() {
                let (tx, changes) = std::sync::mpsc::channel();
                let wake = services.wake.clone();
                match watch(&folders, move || {
                    let _ = tx.send(());
                    wake.wake();
                }) {
                    Ok(w) => self.follower = Some(Follower { folders, _watcher: w, changes, pending_since: None }),
                    Err(e) => {
                        self.error = Some(format!("Could not watch the folders ({e}); add them again to update."))
                    }
                }
            }
        }
        let Some(f) = self.follower.as_mut() else { return };
        while f.changes.try_recv().is_ok() {
            f.pending_since = Some(Instant::now());
        }
        let Some(since) = f.pending_since else { return };
        let settle = Duration::from_secs(1);
        if since.elapsed() < settle || self.indexing.is_some() {
            ui.ctx().request_repaint_after(settle);
            return;
        }
        f.pending_since = None;
        self.index(services, IndexJob::CatchUp);
    }

    /// Write the sample handbook to the data folder and add it.
    pub fn add_sample(&mut self, services: &Services) {
        let path = services.paths.data_dir.join("examples").join("handbook.md");
        let written = std::fs::create_dir_all(path.parent().unwrap_or(&services.paths.data_dir))
            .and_then(|()| std::fs::write(&path, HANDBOOK));
        match written {
            Ok(()) => {
                self.add(services, vec![path]);
                if self.question.is_empty() {
                    self.question = "Is there parking for employees?".into();
                }
            }
            Err(e) => self.error = Some(format!("could not write the sample to {}: {e}", path.display())),
        }
    }

    /// Ask the question on a worker thread.
    pub fn ask(&mut self, services: &Services) {
        if self.asking.is_some() {
            return;
        }
        if self.question.trim().is_empty() {
            self.error = Some("Type a question about your documents.".into());
            return;
        }
        self.error = None;
        let backend = match services.backend(&self.backend) {
            Ok(b) => b,
            Err(e) => {
                self.error = Some(e.to_string());
                return;
            }
        };
        let (question, k, data) = (self.question.clone(), self.top_k.max(1), services.paths.clone());
        let (store, catalog, slot) = (services.store(), services.catalog.clone(), self.embedder.clone());
        self.asking = Some(Pending::spawn("duet-docs-ask", &services.wake, move || {
            let db = Db::open_default(&data).map_err(|e| e.to_string())?;
            let cancel = Cancel::new();
            // Not fetched on a question: without the model the search is by keywords.
            let embedder =
                shared_embedder(&slot, &store, &catalog, false, &Silent, &cancel).map_err(|e| e.to_string())?;
            crate::tasks::docs::ask(&db, embedder.as_deref(), backend.as_ref(), &question, k, 256, cancel)
                .map_err(|e| e.to_string())
        }));
    }

    pub fn is_busy(&self) -> bool {
        self.indexing.is_some() || self.asking.is_some()
    }

    fn poll(&mut self) {
        if let Some(ix) = &self.indexing {
            match ix.result.poll() {
                Polled::Waiting => {}
                Polled::Ready(Ok(done)) => {
                    let removed =
                        done.removed.iter().map(|p| format!("{} is gone; its passages were removed", file_name(p)));
                    self.outcomes = done.added.iter().map(outcome_line).chain(removed).chain(done.vectors).collect();
                    self.indexing = None;
                }
                Polled::Ready(Err(e)) => {
                    self.error = Some(e);
                    self.indexing = None;
                }
                Polled::Lost => {
                    self.error = Some("indexing stopped unexpectedly".into());
                    self.indexing = None;
                }
            }
        }
        if let Some(a) = &self.asking {
            match a.poll() {
                Polled::Waiting => {}
                Polled::Ready(r) => {
                    match r {
                        Ok(answer) => {
                            // The first passage cited (or found) is open to begin with.
                            self.opened = Some(answer.cited.first().map_or(0, |n| n - 1));
                            self.open_now = true;
                            self.answer = Some(answer);
                        }
                        Err(e) => self.error = Some(e),
                    }
                    self.asking = None;
                }
                Polled::Lost => {
                    self.error = Some("answering stopped unexpectedly".into());
                    self.asking = None;
                }
            }
        }
        if let Some(path) = picked(&mut self.picking) {
            self.path = path.display().to_string();
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        if self.top_k == 0 {
            self.top_k = 4;
        }
        self.poll();
        self.resume(services);
        self.follow_changes(ui, services);
        let dropped: Vec<PathBuf> = dropped_files(ui);
        if !dropped.is_empty() {
            self.add(services, dropped);
        }
        let list_width = side_width(ui, 0.4, 220.0, 380.0);
        egui::Panel::left("documents_list").default_size(list_width).max_size(list_width).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.files_ui(ui, services));
        });
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| self.ask_ui(ui, services));
    }

    fn files_ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        ui.heading("Documents");
        ui.label(format!("Add {KINDS} files (or a folder of them). They are indexed on this computer."));
        ui.horizontal(|ui| {
            if ui.button("Choose a file…").clicked() && self.picking.is_none() {
                self.picking = Some(services.open_dialog("Documents", crate::tasks::docs::EXTENSIONS));
            }
            if ui.button("Add the sample handbook").clicked() {
                self.add_sample(services);
            }
        });
        if let Some(path) = path_field(ui, &mut self.path, "or type a file or folder path", "Add") {
            self.add(services, vec![path]);
        }
        let mut follow = !self.no_follow;
        ui.checkbox(&mut follow, "Follow folders I add (new, changed and deleted files)");
        self.no_follow = !follow;
        let mut unwatch = None;
        for folder in self.follower.as_ref().map(|f| f.folders.clone()).unwrap_or_default() {
            ui.horizontal(|ui| {
                ui.label(format!("Following {}", file_name(&folder))).on_hover_text(&folder);
                if ui.small_button("Stop following").clicked() {
                    unwatch = Some(folder.clone());
                }
            });
        }
        if let Some(folder) = unwatch {
            if let Err(e) = services.db.unwatch_folder(&folder) {
                self.error = Some(e.to_string());
            }
        }
        if let Some(ix) = &self.indexing {
            ix.progress.ui(ui, Some(&ix.cancel));
        }
        for line in &self.outcomes {
            ui.small(line);
        }
        ui.separator();
        let (db, notice) = (&services.db, &mut services.notice);
        let docs = self.docs.get(db.revision(), || or_notice(notice, db.documents())).clone();
        if docs.is_empty() {
            ui.weak("No documents yet.");
        }
        let mut remove = None;
        for d in &docs {
            ui.horizontal(|ui| {
                let name = std::path::Path::new(&d.path).file_name().map(|n| n.to_string_lossy().into_owned());
                ui.label(name.unwrap_or_else(|| d.path.clone())).on_hover_text(&d.path);
                if d.status == "indexed" {
                    ui.weak(format!("{} · {}", count(d.pages as u64, "page"), count(d.chunks as u64, "passage")));
                } else {
                    ui.colored_label(ui.visuals().error_fg_color, "could not be read").on_hover_text(&d.note);
                }
                if ui.small_button("Remove").clicked() {
                    remove = Some(d.id);
                }
            });
            if !d.note.is_empty() {
                ui.small(&d.note);
            }
        }
        if let Some(id) = remove {
            if let Err(e) = services.db.remove_document(id) {
                self.error = Some(e.to_string());
            }
        }
    }

    fn ask_ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        ui.heading("Ask your documents");
        ui.horizontal(|ui| {
            ui.label("Answer with");
            egui::ComboBox::from_id_salt("documents_backend")
                .selected_text(services.backend_name(&self.backend))
                .show_ui(ui, |ui| {
                    for (k, v) in services.backend_choices() {
                        ui.selectable_value(&mut self.backend, k, v);
                    }
                });
            ui.add(egui::DragValue::new(&mut self.top_k).range(1..=12).prefix("passages: "));
        });
        ui.weak(services.privacy_line(&self.backend, "question and the passages found"));
        let field = ui.add(
            egui::TextEdit::singleline(&mut self.question)
                .hint_text("Is there parking for employees?")
                .desired_width(f32::INFINITY),
        );
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        ui.horizontal(|ui| {
            if self.asking.is_some() {
                ui.spinner();
                ui.label("Reading the passages…");
            } else if ui.button("Ask").clicked() || enter {
                self.ask(services);
            }
        });
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        let Some(a) = self.answer.clone() else { return };
        ui.separator();
        ui.strong("Answer");
        CommonMarkViewer::new().show(ui, &mut self.md_cache, &a.answer);
        if !a.invalid_citations.is_empty() {
            let list: Vec<String> = a.invalid_citations.iter().map(|n| format!("[{n}]")).collect();
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Careful: the answer cites {}, but no such passage was given to the model.", list.join(", ")),
            );
        }
        if !a.sources.is_empty() {
            ui.horizontal_wrapped(|ui| {
                ui.label("Sources:");
                for (i, s) in a.sources.iter().enumerate() {
                    let cited = if a.cited.contains(&(i + 1)) { " (cited)" } else { "" };
                    if ui.link(format!("[{}] {}, page {}{cited}", i + 1, file_name(&s.path), s.page)).clicked() {
                        self.opened = Some(i);
                        self.open_now = true;
                    }
                }
            });
        }
        if !a.extract.is_empty() {
            ui.add_space(6.0);
            ui.strong("From your documents");
            for (n, sentence) in &a.extract {
                if ui.link(format!("[{n}] {sentence}")).on_hover_text("Show this passage").clicked() {
                    self.opened = Some(n - 1);
                    self.open_now = true;
                }
            }
        }
        if !a.sources.is_empty() {
            ui.add_space(6.0);
            ui.strong(format!("Passages ({})", a.location));
            let (opened, open_now) = (self.opened, std::mem::take(&mut self.open_now));
            for (i, s) in a.sources.iter().enumerate() {
                let cited = if a.cited.contains(&(i + 1)) { " · cited" } else { "" };
                let title = format!("[{}] {} · page {} · {}{cited}", i + 1, file_name(&s.path), s.page, s.heading);
                // The sentence that best answers the question, highlighted in its passage.
                let best = a.extract.iter().find(|(n, _)| *n == i + 1).map(|(_, t)| t.as_str());
                let header = egui::CollapsingHeader::new(title).id_salt(("passage", i));
                let header = if open_now { header.open(Some(opened == Some(i))) } else { header };
                let shown = header.show(ui, |ui| {
                    ui.label(highlighted(ui, &s.text, best));
                    ui.weak(format!("{} · page {} · characters {}–{}", s.path, s.page, s.start_char, s.end_char));
                });
                if open_now && opened == Some(i) {
                    shown.header_response.scroll_to_me(Some(egui::Align::TOP));
                }
            }
        }
    }
}

fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A passage as it reads (lines wrapped in the file joined, paragraphs kept
/// apart) with `sentence` on a highlighted background where it occurs.
fn highlighted(ui: &egui::Ui, text: &str, sentence: Option<&str>) -> egui::text::LayoutJob {
    let paragraphs: Vec<String> = text.split("\n\n").map(|p| p.replace('\n', " ")).collect();
    let text = paragraphs.join("\n\n");
    let plain = egui::TextFormat {
        font_id: egui::TextStyle::Body.resolve(ui.style()),
        color: ui.visuals().text_color(),
        ..Default::default()
    };
    let marked = egui::TextFormat {
        background: ui.visuals().selection.bg_fill,
        color: ui.visuals().strong_text_color(),
        ..plain.clone()
    };
    let mut job = egui::text::LayoutJob::default();
    match sentence.and_then(|s| text.find(s).map(|at| (at, at + s.len()))) {
        Some((start, end)) => {
            job.append(&text[..start], 0.0, plain.clone());
            job.append(&text[start..end], 0.0, marked);
            job.append(&text[end..], 0.0, plain);
        }
        None => job.append(&text, 0.0, plain),
    }
    job
}

fn outcome_line(a: &Added) -> String {
    let name =
        |p: &str| std::path::Path::new(p).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match a {
        Added::Indexed { path, pages, chunks, .. } => {
            format!("indexed {}: {}, {}", name(path), count(*pages as u64, "page"), count(*chunks as u64, "passage"))
        }
        Added::Unchanged { path } => format!("{} is unchanged", name(path)),
        // The reason names the file.
        Added::Failed { why, .. } => why.clone(),
    }
}
