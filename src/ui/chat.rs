//! The Chat screen: a conversation with the local model or a cloud profile,
//! streamed, kept in the database, with the conversation list beside it.

use super::cached::Cached;
use super::services::Services;
use crate::db::{Db, NewMessage};
use crate::engine::{Cancel, Event, FinishReason, GenRequest, Message, SamplingParams};
use eframe::egui;
use egui_commonmark::{CommonMarkCache, CommonMarkViewer};
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::time::Instant;

/// Per-conversation settings (kept in the conversation's row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConvSettings {
    pub system_prompt: String,
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: usize,
    pub seed: u64,
}

impl ConvSettings {
    fn from_app(s: &crate::config::AppSettings) -> Self {
        ConvSettings {
            system_prompt: s.system_prompt.clone(),
            temperature: s.temperature,
            top_p: s.top_p,
            max_tokens: s.max_tokens,
            seed: s.seed,
        }
    }
}

impl Default for ConvSettings {
    fn default() -> Self {
        Self::from_app(&crate::config::AppSettings::default())
    }
}

/// What is shown under an answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub ttft_ms: f64,
    pub tok_per_s: f64,
    pub total_ms: f64,
    pub cost_usd: Option<f64>,
    pub stopped: bool,
}

impl Metrics {
    pub fn line(&self) -> String {
        let cost = match self.cost_usd {
            Some(c) => format!("${c:.5}"),
            None => "free (on this computer)".to_string(),
        };
        let mut s = format!(
            "{} tokens · first token {:.0} ms · {:.1} tok/s · {:.1} s · {cost}",
            self.completion_tokens,
            self.ttft_ms,
            self.tok_per_s,
            self.total_ms / 1e3
        );
        if self.stopped {
            s.push_str(" · stopped");
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMsg {
    pub seq: i64,
    pub role: String,
    pub content: String,
    pub backend_label: String,
    pub location: String,
    pub metrics: Option<Metrics>,
}

struct Streaming {
    rx: mpsc::Receiver<Event>,
    cancel: Cancel,
    text: String,
    backend_label: String,
    location: String,
    spec: String,
    started: Instant,
    first_token_ms: Option<f64>,
}

/// (conversation, title, search snippet) in the list on the left.
type ListEntry = (i64, String, String);

#[derive(Default)]
pub struct ChatScreen {
    pub conversation: Option<i64>,
    pub title: String,
    pub messages: Vec<ChatMsg>,
    /// "local" or "cloud:NAME".
    pub backend: String,
    pub conv: ConvSettings,
    pub input: String,
    /// Editing the user message at this position: sending replaces it and everything after.
    pub editing: Option<i64>,
    streaming: Option<Streaming>,
    pub error: Option<String>,
    search: String,
    /// The list on the left, per (database revision, search).
    list: Cached<(crate::db::Revision, String), Vec<ListEntry>>,
    renaming: Option<(i64, String)>,
    confirm_delete: Option<(i64, String)>,
    md_cache: CommonMarkCache,
}

impl ChatScreen {
    /// Show the most recent conversation, if any (at start-up).
    pub fn open_latest(&mut self, services: &Services) {
        self.backend = "local".into();
        self.conv = ConvSettings::from_app(&services.settings.app);
        if let Some(c) = services.db.conversations().ok().and_then(|c| c.into_iter().next()) {
            self.open(services, c.id);
        }
    }

    pub fn open(&mut self, services: &Services, id: i64) {
        self.abandon();
        let Ok(c) = services.db.conversation(id) else { return };
        self.conversation = Some(id);
        self.title = c.title;
        self.backend = c.backend;
        self.conv = serde_json::from_str(&c.settings_json).unwrap_or_default();
        self.messages = services
            .db
            .messages(id)
            .unwrap_or_default()
            .into_iter()
            .map(|m| ChatMsg {
                seq: m.seq,
                role: m.role,
                content: m.content,
                backend_label: m.backend_label,
                location: m.location,
                metrics: serde_json::from_str(&m.metrics_json)
                    .ok()
                    .filter(|m: &Metrics| m.completion_tokens > 0 || m.total_ms > 0.0),
            })
            .collect();
        self.editing = None;
        self.error = None;
    }

    pub fn new_conversation(&mut self, services: &mut Services) {
        self.abandon();
        self.conversation = None;
        self.title = String::new();
        self.messages.clear();
        self.conv = ConvSettings::from_app(&services.settings.app);
        self.editing = None;
        self.error = None;
    }

    pub fn is_streaming(&self) -> bool {
        self.streaming.is_some()
    }

    /// Text of the answer being streamed now.
    pub fn streaming_text(&self) -> Option<&str> {
        self.streaming.as_ref().map(|s| s.text.as_str())
    }

    /// Stop and forget the answer in progress (leaving its conversation: it must not
    /// land in the next one).
    fn abandon(&mut self) {
        self.stop();
        self.streaming = None;
    }

    pub fn stop(&mut self) {
        if let Some(s) = &self.streaming {
            s.cancel.cancel();
        }
    }

    pub fn backend_name(&self, services: &Services) -> String {
        services
            .backend_choices()
            .into_iter()
            .find(|(k, _)| *k == self.backend)
            .map(|(_, v)| v)
            .unwrap_or_else(|| self.backend.clone())
    }

    pub fn set_backend(&mut self, services: &mut Services, spec: &str) {
        self.backend = spec.to_string();
        if let Some(id) = self.conversation {
            if let Err(e) = services.db.set_conversation_backend(id, spec) {
                self.error = Some(e.to_string());
            }
        }
    }

    /// Send what is in the input box (or the edited message).
    pub fn send(&mut self, services: &mut Services) {
        let text = self.input.trim().to_string();
        if text.is_empty() || self.streaming.is_some() {
            return;
        }
        // Check the backend first: if it can't answer now, nothing is saved and the text stays in the box.
        let Some(backend) = self.backend_or_error(services) else { return };
        let id = match self.ensure_conversation(services, &text) {
            Ok(id) => id,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        let question = [NewMessage::user(&text)];
        let saved = match self.editing {
            Some(seq) => services.db.replace_messages_from(id, seq, &question),
            None => services.db.append_messages(id, &question),
        };
        if let Err(e) = saved {
            self.error = Some(e.to_string());
            return;
        }
        if let Some(seq) = self.editing.take() {
            self.messages.retain(|m| m.seq < seq);
        }
        let seq = self.messages.last().map(|m| m.seq + 1).unwrap_or(0);
        self.messages.push(ChatMsg {
            seq,
            role: "user".into(),
            content: text,
            backend_label: String::new(),
            location: String::new(),
            metrics: None,
        });
        self.input.clear();
        self.start(backend);
    }

    /// Ask again for the last answer (dropping it), or answer a question that failed.
    pub fn regenerate(&mut self, services: &mut Services) {
        let Some(id) = self.conversation else { return };
        if self.streaming.is_some() {
            return;
        }
        let Some(backend) = self.backend_or_error(services) else { return };
        if let Some(last) = self.messages.last() {
            if last.role == "assistant" {
                let seq = last.seq;
                if let Err(e) = services.db.truncate_messages(id, seq) {
                    self.error = Some(e.to_string());
                    return;
                }
                self.messages.pop();
            }
        }
        if self.messages.last().is_some_and(|m| m.role == "user") {
            self.start(backend);
        }
    }

    /// The chosen backend, or None with the reason shown.
    fn backend_or_error(&mut self, services: &Services) -> Option<Box<dyn crate::engine::Backend>> {
        match services.backend(&self.backend) {
            Ok(b) => Some(b),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }

    fn ensure_conversation(&mut self, services: &mut Services, first_text: &str) -> Result<i64, String> {
        if let Some(id) = self.conversation {
            return Ok(id);
        }
        let title: String = first_text.lines().next().unwrap_or("").chars().take(48).collect();
        let settings = serde_json::to_string(&self.conv).unwrap_or_default();
        let id = services.db.create_conversation(&title, &self.backend, &settings).map_err(|e| e.to_string())?;
        self.conversation = Some(id);
        self.title = title;
        Ok(id)
    }

    fn start(&mut self, backend: Box<dyn crate::engine::Backend>) {
        self.error = None;
        let mut messages = Vec::new();
        if !self.conv.system_prompt.trim().is_empty() {
            messages.push(Message::new("system", &self.conv.system_prompt));
        }
        messages.extend(self.messages.iter().map(|m| Message::new(&m.role, &m.content)));
        let mut req = GenRequest::new(messages);
        req.sampling = SamplingParams {
            temperature: self.conv.temperature,
            top_p: self.conv.top_p,
            seed: self.conv.seed,
            repeat_penalty: if self.backend == "local" { 1.1 } else { 1.0 },
            ..SamplingParams::default()
        };
        req.max_tokens = self.conv.max_tokens.max(1);
        req.truncate_history = true;
        let cancel = Cancel::new();
        let rx = backend.generate(req, cancel.clone());
        self.streaming = Some(Streaming {
            rx,
            cancel,
            text: String::new(),
            backend_label: backend.label(),
            location: backend.data_location().to_string(),
            spec: self.backend.clone(),
            started: Instant::now(),
            first_token_ms: None,
        });
    }

    /// Take in streamed text; save the answer when it is done.
    pub fn poll(&mut self, services: &mut Services) {
        let Some(s) = &mut self.streaming else { return };
        let mut finished = None;
        loop {
            match s.rx.try_recv() {
                Ok(Event::Delta(t)) => {
                    if s.first_token_ms.is_none() {
                        s.first_token_ms = Some(s.started.elapsed().as_secs_f64() * 1e3);
                    }
                    s.text.push_str(&t);
                }
                Ok(Event::Done(c)) => {
                    finished = Some(Ok(c));
                    break;
                }
                Ok(Event::Error(e)) => {
                    finished = Some(Err(e));
                    break;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    finished = Some(Err("the backend stopped without an answer".into()));
                    break;
                }
            }
        }
        let Some(result) = finished else { return };
        let Some(s) = self.streaming.take() else { return };
        match result {
            Ok(c) => {
                let ttft = if c.timings.ttft_ms > 0.0 { c.timings.ttft_ms } else { s.first_token_ms.unwrap_or(0.0) };
                let total_ms = s.started.elapsed().as_secs_f64() * 1e3;
                let tok_per_s = c.decode_rate(ttft, total_ms);
                let metrics = Metrics {
                    prompt_tokens: c.usage.prompt_tokens,
                    completion_tokens: c.usage.completion_tokens,
                    ttft_ms: ttft,
                    tok_per_s,
                    total_ms,
                    cost_usd: services.cost_usd(&s.spec, c.usage.prompt_tokens, c.usage.completion_tokens),
                    stopped: c.finish_reason == FinishReason::Cancelled,
                };
                services.last_tok_per_s = Some(tok_per_s);
                let text = if c.text.is_empty() { s.text } else { c.text };
                if text.is_empty() && metrics.stopped {
                    return;
                }
                let msg = NewMessage {
                    role: "assistant".into(),
                    content: text.clone(),
                    backend_label: s.backend_label.clone(),
                    location: s.location.clone(),
                    metrics_json: serde_json::to_string(&metrics).unwrap_or_default(),
                };
                if let Some(id) = self.conversation {
                    if let Err(e) = services.db.append_messages(id, &[msg]) {
                        self.error = Some(e.to_string());
                    }
                }
                let seq = self.messages.last().map(|m| m.seq + 1).unwrap_or(0);
                self.messages.push(ChatMsg {
                    seq,
                    role: "assistant".into(),
                    content: text,
                    backend_label: s.backend_label,
                    location: s.location,
                    metrics: Some(metrics),
                });
            }
            Err(e) => self.error = Some(e),
        }
    }

    // ---- drawing ----

    pub fn conversation_list(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        if ui.button("+ New chat").on_hover_text("Ctrl+N").clicked() {
            self.new_conversation(services);
        }
        ui.add(egui::TextEdit::singleline(&mut self.search).hint_text("Search messages"));
        ui.separator();
        let db = &services.db;
        let search = self.search.trim();
        let entries = self.list.get((db.revision(), search.to_string()), || {
            if search.is_empty() {
                db.conversations().unwrap_or_default().into_iter().map(|c| (c.id, c.title, String::new())).collect()
            } else {
                db.search(search)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|h| (h.conversation_id, h.title, h.snippet))
                    .collect()
            }
        });
        let entries = entries.clone();
        if entries.is_empty() {
            ui.weak(if self.search.trim().is_empty() { "No conversations yet." } else { "Nothing found." });
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            for (id, title, snippet) in entries {
                let selected = self.conversation == Some(id);
                let label = if title.is_empty() { "(untitled)".to_string() } else { title.clone() };
                let r = ui.selectable_label(selected, label);
                if !snippet.is_empty() {
                    ui.small(snippet);
                }
                if r.clicked() {
                    self.open(services, id);
                }
                r.context_menu(|ui| {
                    if ui.button("Rename").clicked() {
                        self.renaming = Some((id, title.clone()));
                        ui.close();
                    }
                    if ui.button("Export as Markdown").clicked() {
                        export_dialog(services, &title, "md", export_markdown(&services.db, id));
                        ui.close();
                    }
                    if ui.button("Export as JSON").clicked() {
                        export_dialog(services, &title, "json", export_json(&services.db, id));
                        ui.close();
                    }
                    if ui.button("Delete…").clicked() {
                        self.confirm_delete = Some((id, title.clone()));
                        ui.close();
                    }
                });
            }
        });
        self.dialogs(ui, services);
    }

    fn dialogs(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        if let Some((id, mut name)) = self.renaming.take() {
            let mut keep = true;
            egui::Window::new("Rename conversation").collapsible(false).show(ui.ctx(), |ui| {
                let r = ui.text_edit_singleline(&mut name);
                r.request_focus();
                ui.horizontal(|ui| {
                    if ui.button("Save").clicked() || ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                        if let Err(e) = services.db.rename_conversation(id, name.trim()) {
                            services.notice = Some(e.to_string());
                        }
                        if self.conversation == Some(id) {
                            self.title = name.trim().to_string();
                        }
                        keep = false;
                    }
                    if ui.button("Cancel").clicked() {
                        keep = false;
                    }
                });
            });
            if keep {
                self.renaming = Some((id, name));
            }
        }
        if let Some((id, title)) = self.confirm_delete.clone() {
            egui::Window::new("Delete conversation?").collapsible(false).show(ui.ctx(), |ui| {
                ui.label(format!("\"{title}\" and all its messages will be deleted. This cannot be undone."));
                ui.horizontal(|ui| {
                    if ui.button("Delete").clicked() {
                        if let Err(e) = services.db.delete_conversation(id) {
                            services.notice = Some(e.to_string());
                        }
                        if self.conversation == Some(id) {
                            self.new_conversation(services);
                        }
                        self.confirm_delete = None;
                    }
                    if ui.button("Keep it").clicked() {
                        self.confirm_delete = None;
                    }
                });
            });
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        self.poll(services);
        if self.streaming.is_some() {
            ui.ctx().request_repaint_after(std::time::Duration::from_millis(30));
            if ui.input(|i| i.key_pressed(egui::Key::Escape)) {
                self.stop();
            }
        }
        egui::Panel::right("chat_settings").default_size(230.0).show(ui, |ui| self.settings_panel(ui, services));
        egui::Panel::top("chat_header").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label("Answer with:");
                let mut choice = self.backend.clone();
                egui::ComboBox::from_id_salt("backend").selected_text(self.backend_name(services)).show_ui(ui, |ui| {
                    for (k, v) in services.backend_choices() {
                        ui.selectable_value(&mut choice, k, v);
                    }
                });
                if choice != self.backend {
                    self.set_backend(services, &choice);
                }
                let privacy = if self.backend == "local" {
                    "Your messages stay on this computer.".to_string()
                } else {
                    match services.cloud_host(self.backend.trim_start_matches("cloud:")) {
                        Ok(host) => format!("Your messages are sent to {host}."),
                        Err(e) => e,
                    }
                };
                ui.weak(privacy);
            });
            // First run: the model downloads while the rest of the app works.
            if self.backend == "local" {
                match &services.local {
                    super::services::LocalState::Busy => services.local_progress.ui(ui, Some(&services.local_cancel)),
                    super::services::LocalState::Failed(e) => {
                        ui.colored_label(
                            ui.visuals().error_fg_color,
                            format!("The local model is not available: {e} Open Models to fetch it or pick another; cloud profiles work meanwhile."),
                        );
                    }
                    _ => {}
                }
            }
        });
        egui::Panel::bottom("chat_input").show(ui, |ui| self.input_ui(ui, services));
        egui::ScrollArea::vertical().stick_to_bottom(true).auto_shrink([false, false]).show(ui, |ui| {
            if self.messages.is_empty() && self.streaming.is_none() {
                ui.add_space(40.0);
                ui.vertical_centered(|ui| {
                    ui.heading("Ask anything.");
                    ui.weak("Enter sends · Shift+Enter adds a line · Esc stops · Ctrl+N new chat · Ctrl+1…6 screens · Ctrl+Q quits");
                });
            }
            let mut action = None;
            let last_assistant = self.messages.iter().rposition(|m| m.role == "assistant");
            let messages = std::mem::take(&mut self.messages);
            for (i, m) in messages.iter().enumerate() {
                if let Some(a) = self.message_ui(ui, m, Some(i) == last_assistant) {
                    action = Some(a);
                }
            }
            self.messages = messages;
            if let Some(s) = &self.streaming {
                ui.group(|ui| {
                    ui.strong(format!("Assistant · {}", s.location));
                    CommonMarkViewer::new().show(ui, &mut self.md_cache, &s.text.clone());
                });
            }
            if let Some(e) = &self.error {
                ui.colored_label(ui.visuals().error_fg_color, format!("Error: {e}"));
            }
            match action {
                Some(MsgAction::Copy(t)) => ui.ctx().copy_text(t),
                Some(MsgAction::Edit(seq, text)) => {
                    self.editing = Some(seq);
                    self.input = text;
                }
                Some(MsgAction::Regenerate) => self.regenerate(services),
                None => {}
            }
        });
    }

    fn message_ui(&mut self, ui: &mut egui::Ui, m: &ChatMsg, is_last_answer: bool) -> Option<MsgAction> {
        let mut action = None;
        ui.group(|ui| {
            ui.set_width(ui.available_width());
            if m.role == "user" {
                ui.strong("You");
                ui.label(&m.content);
                ui.horizontal(|ui| {
                    if ui.small_button("Copy").clicked() {
                        action = Some(MsgAction::Copy(m.content.clone()));
                    }
                    if self.streaming.is_none()
                        && ui.small_button("Edit").on_hover_text("Edit and resend from here").clicked()
                    {
                        action = Some(MsgAction::Edit(m.seq, m.content.clone()));
                    }
                });
            } else {
                ui.horizontal(|ui| {
                    ui.strong("Assistant");
                    // The badge: where this answer ran.
                    let badge = if m.location.is_empty() { "on this computer".to_string() } else { m.location.clone() };
                    ui.label(egui::RichText::new(badge).small().background_color(ui.visuals().faint_bg_color));
                    ui.weak(&m.backend_label);
                });
                CommonMarkViewer::new().show(ui, &mut self.md_cache, &m.content);
                if let Some(metrics) = &m.metrics {
                    ui.weak(metrics.line());
                }
                ui.horizontal(|ui| {
                    if ui.small_button("Copy").clicked() {
                        action = Some(MsgAction::Copy(m.content.clone()));
                    }
                    if is_last_answer && self.streaming.is_none() && ui.small_button("Regenerate").clicked() {
                        action = Some(MsgAction::Regenerate);
                    }
                });
            }
        });
        action
    }

    fn input_ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        if let Some(seq) = self.editing {
            ui.horizontal(|ui| {
                ui.weak(format!("Editing message {}: sending replaces it and everything after it.", seq + 1));
                if ui.small_button("Cancel edit").clicked() {
                    self.editing = None;
                    self.input.clear();
                }
            });
        }
        let id = egui::Id::unique("chat_input_box");
        // Enter sends; Shift+Enter is a new line. Take the key before the text box sees it.
        let focused = ui.memory(|m| m.has_focus(id));
        let enter = focused && ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Enter));
        ui.horizontal(|ui| {
            let label = ui.label("Message");
            let width = ui.available_width() - 90.0;
            let r = ui.add(
                egui::TextEdit::multiline(&mut self.input)
                    .id(id)
                    .desired_rows(2)
                    .desired_width(width)
                    .hint_text("Enter sends, Shift+Enter adds a line"),
            );
            r.labelled_by(label.id);
            if self.streaming.is_some() {
                if ui.button("Stop").on_hover_text("Esc").clicked() {
                    self.stop();
                }
            } else if ui.button("Send").clicked() || enter {
                self.send(services);
            }
        });
    }

    fn settings_panel(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        ui.heading("This conversation");
        let before = self.conv.clone();
        ui.label("System prompt");
        ui.add(
            egui::TextEdit::multiline(&mut self.conv.system_prompt).desired_rows(3).hint_text("e.g. Answer briefly."),
        );
        ui.add(egui::Slider::new(&mut self.conv.temperature, 0.0..=2.0).text("temperature"))
            .on_hover_text("0 = always the most likely word (repeatable); higher = more varied");
        ui.add(egui::Slider::new(&mut self.conv.top_p, 0.05..=1.0).text("top-p"));
        ui.add(egui::Slider::new(&mut self.conv.max_tokens, 16..=4096).logarithmic(true).text("max tokens"));
        ui.horizontal(|ui| {
            ui.label("seed");
            ui.add(egui::DragValue::new(&mut self.conv.seed));
        });
        if ui.small_button("Reset to defaults").clicked() {
            self.conv = ConvSettings::from_app(&services.settings.app);
        }
        if self.conv != before {
            if let Some(id) = self.conversation {
                let json = serde_json::to_string(&self.conv).unwrap_or_default();
                if let Err(e) = services.db.set_conversation_settings(id, &json) {
                    self.error = Some(e.to_string());
                }
            }
        }
    }
}

enum MsgAction {
    Copy(String),
    Edit(i64, String),
    Regenerate,
}

/// A conversation as Markdown (messages only: no keys, no settings).
pub fn export_markdown(db: &Db, id: i64) -> Result<String, String> {
    let c = db.conversation(id).map_err(|e| e.to_string())?;
    let mut out = format!("# {}\n\n", if c.title.is_empty() { "Conversation" } else { &c.title });
    for m in db.messages(id).map_err(|e| e.to_string())? {
        let who = if m.role == "user" {
            "You".to_string()
        } else {
            format!("Assistant ({}, {})", m.backend_label, m.location)
        };
        out.push_str(&format!("**{who}:**\n\n{}\n\n", m.content));
    }
    Ok(out)
}

/// A conversation as JSON (title and messages with role, text, where it ran).
pub fn export_json(db: &Db, id: i64) -> Result<String, String> {
    let c = db.conversation(id).map_err(|e| e.to_string())?;
    let messages: Vec<_> = db
        .messages(id)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|m| {
            serde_json::json!({
                "role": m.role, "content": m.content, "model": m.backend_label, "where": m.location,
                "metrics": serde_json::from_str::<serde_json::Value>(&m.metrics_json).unwrap_or_default(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({"title": c.title, "messages": messages}))
        .map_err(|e| e.to_string())
}

/// Ask where to save (on a helper thread: the dialog must not freeze the window).
fn export_dialog(services: &mut Services, title: &str, ext: &'static str, content: Result<String, String>) {
    let content = match content {
        Ok(c) => c,
        Err(e) => {
            services.notice = Some(e);
            return;
        }
    };
    let name: String = title.chars().filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-').collect();
    let name = format!("{}.{ext}", if name.trim().is_empty() { "conversation" } else { name.trim() });
    services.save_dialog(name, content);
}
