//! The Chat screen: a conversation with the local model or a cloud profile,
//! streamed, kept in the database, with the conversation list beside it.

use super::cached::Cached;
use super::pending::{Pending, Polled};
use super::services::{or_notice, Services};
use crate::db::{Db, DbError};
use crate::engine::{BackendSpec, Role};
use crate::tasks::answer::Contender;
use crate::tasks::chat::{ChatSession, ChatUpdate, ConvSettings};
use crate::tasks::tools::gate::Approval;
use crate::tasks::tools::mcp::Server;
use crate::tasks::tools::Toolbox;
use eframe::egui;
use egui_commonmark::{CommonMarkCache, CommonMarkViewer};

/// (conversation, title, search snippet) in the list on the left.
type ListEntry = (i64, String, String);

#[derive(Default)]
pub struct ChatScreen {
    /// The conversation shown: history, backend, settings, the answer on its way.
    pub session: ChatSession,
    pub input: String,
    /// Editing the user message at this position: sending replaces it and everything after.
    pub editing: Option<i64>,
    pub error: Option<String>,
    search: String,
    /// The list on the left, per (database revision, search).
    list: Cached<(crate::db::Revision, String), Vec<ListEntry>>,
    renaming: Option<(i64, String)>,
    confirm_delete: Option<(i64, String)>,
    md_cache: CommonMarkCache,
    /// The MCP servers of `mcp.json`, connecting on a worker thread.
    mcp: Option<Pending<McpConnected>>,
    /// Connected servers (their processes live as long as these do).
    mcp_servers: Vec<Server>,
    /// What the Tools switch says about MCP servers.
    mcp_status: Option<String>,
}

/// The servers that answered, and a sentence for each that did not.
type McpConnected = Result<(Vec<Server>, Vec<String>), String>;

impl ChatScreen {
    /// Show the most recent conversation, if any (at start-up).
    pub fn open_latest(&mut self, services: &mut Services) {
        self.session = ChatSession::new(BackendSpec::Local, ConvSettings::from_app(&services.settings.app));
        match services.db.conversations() {
            Ok(list) => {
                if let Some(c) = list.into_iter().next() {
                    self.open(services, c.id);
                }
            }
            Err(e) => services.notice = Some(e.to_string()),
        }
    }

    pub fn open(&mut self, services: &mut Services, id: i64) {
        match ChatSession::open(&services.db, id) {
            Ok(session) => {
                self.session.abandon();
                self.session = session;
                self.editing = None;
                self.error = None;
            }
            Err(e) => services.notice = Some(e.to_string()),
        }
    }

    pub fn new_conversation(&mut self, services: &mut Services) {
        self.session.abandon();
        self.session = ChatSession::new(self.session.backend.clone(), ConvSettings::from_app(&services.settings.app));
        self.editing = None;
        self.error = None;
    }

    pub fn is_streaming(&self) -> bool {
        self.session.is_answering()
    }

    /// Text of the answer being streamed now.
    pub fn streaming_text(&self) -> Option<&str> {
        self.session.answer_text()
    }

    pub fn stop(&mut self) {
        self.session.stop();
    }

    pub fn backend_name(&self, services: &Services) -> String {
        services.backend_name(&self.session.backend)
    }

    pub fn set_backend(&mut self, services: &mut Services, spec: BackendSpec) {
        if let Err(e) = self.session.set_backend(Some(&services.db), spec) {
            self.error = Some(e.to_string());
        }
    }

    /// The conversation's backend, ready to answer (and to wake the window as
    /// it does), or None with the reason shown.
    fn answerer(&mut self, services: &Services) -> Option<Contender> {
        match services.contender(&self.session.backend) {
            Ok(a) => {
                self.error = None;
                self.session.wake = services.wake.clone();
                Some(a)
            }
            Err(e) => {
                self.error = Some(e.to_string());
                None
            }
        }
    }

    /// Send what is in the input box (or the edited message).
    pub fn send(&mut self, services: &mut Services) {
        let text = self.input.trim().to_string();
        if text.is_empty() || self.session.is_answering() {
            return;
        }
        // Check the backend first: if it can't answer now, nothing is saved and the text stays in the box.
        let Some(answerer) = self.answerer(services) else { return };
        self.offer_tools(services);
        match self.session.send(Some(&mut services.db), answerer, &text, self.editing) {
            Ok(()) => {
                self.editing = None;
                self.input.clear();
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// duet's own tools, for when the conversation has tools on; the MCP
    /// servers of `mcp.json` start connecting in the background and join when they answer.
    fn offer_tools(&mut self, services: &Services) {
        if self.session.toolbox.is_none() {
            self.session.toolbox = Some(std::sync::Arc::new(Toolbox::builtin(&services.paths)));
        }
        let file = crate::tasks::tools::mcp::config_file(&services.paths);
        if self.mcp.is_none() && self.mcp_status.is_none() && file.exists() {
            self.mcp_status = Some(format!("Connecting to the MCP servers of {}…", file.display()));
            self.mcp = Some(Pending::spawn("duet-mcp", &services.wake, move || {
                let (servers, failed) =
                    crate::tasks::tools::mcp::connect_all(&file, crate::tasks::tools::mcp::START_TIMEOUT)
                        .map_err(|e| e.to_string())?;
                Ok((servers, failed.iter().map(|e| e.to_string()).collect()))
            }));
        }
    }

    /// What the Tools switch says about the MCP servers (connecting, which answered, which failed).
    pub fn mcp_status(&self) -> Option<&str> {
        self.mcp_status.as_deref()
    }

    /// MCP servers that finished connecting join the toolbox.
    fn poll_mcp(&mut self, services: &Services) {
        let Some(p) = &self.mcp else { return };
        let connected = match p.poll() {
            Polled::Waiting => return,
            Polled::Ready(r) => r,
            Polled::Lost => Err("connecting to the MCP servers failed".to_string()),
        };
        self.mcp = None;
        match connected {
            Ok((servers, failed)) => {
                let mut toolbox = Toolbox::builtin(&services.paths);
                crate::tasks::tools::mcp::add_tools(&mut toolbox, &servers);
                let tools: usize = servers.iter().map(Server::tool_count).sum();
                let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
                let mut status = format!(
                    "MCP: {} ({} tools, each waits for your yes)",
                    if names.is_empty() { "no server answered".to_string() } else { names.join(", ") },
                    tools
                );
                for f in failed {
                    status.push_str(&format!("\n{f}"));
                }
                self.mcp_status = Some(status);
                self.session.toolbox = Some(std::sync::Arc::new(toolbox));
                self.mcp_servers = servers;
            }
            Err(e) => self.mcp_status = Some(format!("MCP: {e}")),
        }
    }

    /// The action the model proposed, waiting for a yes: what will happen, and
    /// Deny / Allow once / Always allow for this chat. Closing it is a no.
    fn action_dialog(&mut self, ui: &mut egui::Ui) {
        let Some(p) = self.session.pending_action().cloned() else { return };
        let mut answer = None;
        let modal = egui::Modal::new(egui::Id::unique("tool_action")).show(ui.ctx(), |ui| {
            ui.set_max_width(520.0);
            ui.heading("Allow this action?");
            ui.label(format!(
                "The model wants to use {} (from {}). Nothing happens unless you allow it.",
                p.call.name, p.source
            ));
            ui.add_space(6.0);
            egui::ScrollArea::vertical().max_height(240.0).show(ui, |ui| {
                ui.add(egui::Label::new(egui::RichText::new(&p.what).monospace()).wrap());
            });
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                if ui.button("Deny").clicked() {
                    answer = Some(Approval::Deny);
                }
                if ui.button("Allow once").clicked() {
                    answer = Some(Approval::AllowOnce);
                }
                if ui
                    .button("Always allow for this chat")
                    .on_hover_text(format!("{} runs without asking again in this conversation", p.call.name))
                    .clicked()
                {
                    answer = Some(Approval::AlwaysForChat);
                }
            });
        });
        if modal.should_close() && answer.is_none() {
            answer = Some(Approval::Deny);
        }
        if let Some(a) = answer {
            self.session.answer_action(a);
        }
    }

    /// Ask again for the last answer (dropping it), or answer a question that failed.
    pub fn regenerate(&mut self, services: &mut Services) {
        if self.session.conversation.is_none() || self.session.is_answering() {
            return;
        }
        let Some(answerer) = self.answerer(services) else { return };
        self.offer_tools(services);
        self.error = None;
        if let Err(e) = self.session.regenerate(Some(&mut services.db), answerer) {
            self.error = Some(e.to_string());
        }
    }

    /// Take in streamed text; the session saves the answer when it is done.
    pub fn poll(&mut self, services: &mut Services) {
        for update in self.session.poll(Some(&mut services.db)) {
            match update {
                ChatUpdate::Answered { notice, .. } => {
                    if let Some(n) = notice {
                        services.notice = Some(n);
                    }
                    services.last_tok_per_s =
                        self.session.messages.last().and_then(|m| m.metrics.as_ref()).map(|m| m.tok_per_s);
                }
                ChatUpdate::Failed(e) => self.error = Some(e.to_string()),
                ChatUpdate::Delta(_) | ChatUpdate::StoppedEmpty => {}
            }
        }
    }

    // ---- drawing ----

    pub fn conversation_list(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        if ui.button("+ New chat").on_hover_text("Ctrl+N").clicked() {
            self.new_conversation(services);
        }
        ui.add(egui::TextEdit::singleline(&mut self.search).hint_text("Search messages"));
        ui.separator();
        let (db, notice) = (&services.db, &mut services.notice);
        let search = self.search.trim();
        let entries = self.list.get((db.revision(), search.to_string()), || {
            if search.is_empty() {
                or_notice(notice, db.conversations()).into_iter().map(|c| (c.id, c.title, String::new())).collect()
            } else {
                or_notice(notice, db.search(search))
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
                let selected = self.session.conversation == Some(id);
                let label = if title.is_empty() { "(untitled)".to_string() } else { title.clone() };
                let r = ui.selectable_label(selected, label).on_hover_text("Right-click to rename, export or delete");
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
                        if self.session.conversation == Some(id) {
                            self.session.title = name.trim().to_string();
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
                        if self.session.conversation == Some(id) {
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
        self.poll_mcp(services);
        if self.session.is_answering() && ui.input(|i| i.key_pressed(egui::Key::Escape)) {
            self.stop();
        }
        // The sliders need their 230 points; the header and messages wrap in what is left.
        egui::Panel::right("chat_settings").default_size(230.0).show(ui, |ui| self.settings_panel(ui, services));
        egui::Panel::top("chat_header").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.label("Answer with:");
                let mut choice = self.session.backend.clone();
                egui::ComboBox::from_id_salt("backend").selected_text(self.backend_name(services)).show_ui(ui, |ui| {
                    for (k, v) in services.backend_choices() {
                        ui.selectable_value(&mut choice, k, v);
                    }
                });
                if choice != self.session.backend {
                    self.set_backend(services, choice);
                }
                ui.weak(services.privacy_line(&self.session.backend, "messages"));
            });
            // First run: the model downloads while the rest of the app works.
            if self.session.backend.is_local() {
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
        self.action_dialog(ui);
        egui::ScrollArea::vertical().stick_to_bottom(true).auto_shrink([false, false]).show(ui, |ui| {
            if self.session.messages.is_empty() && !self.session.is_answering() {
                ui.add_space(40.0);
                ui.vertical_centered(|ui| {
                    ui.heading("Ask anything.");
                    ui.weak("Enter sends · Shift+Enter adds a line · Esc stops · Ctrl+N new chat · Ctrl+1…6 screens · Ctrl+Q quits");
                });
            }
            let mut action = None;
            let last_assistant = self.session.messages.iter().rposition(|m| m.role == Role::Assistant);
            let messages = std::mem::take(&mut self.session.messages);
            for (i, m) in messages.iter().enumerate() {
                if let Some(a) = self.message_ui(ui, m, Some(i) == last_assistant) {
                    action = Some(a);
                }
            }
            self.session.messages = messages;
            if let (Some(text), Some(location)) = (self.session.answer_text(), self.session.answer_location()) {
                let (text, title) = (text.to_string(), format!("Assistant · {location}"));
                let steps: Vec<String> = self.session.live_steps().iter().map(|s| s.to_string()).collect();
                ui.group(|ui| {
                    ui.strong(title);
                    steps_ui(ui, &steps);
                    CommonMarkViewer::new().show(ui, &mut self.md_cache, &text);
                });
            }
            if let Some(e) = &self.error {
                // A question that got no answer stays in the conversation, with
                // the reason and a way to ask again once the cause is fixed.
                let unanswered = !self.session.is_answering()
                    && self.session.messages.last().is_some_and(|m| m.role == Role::User);
                ui.horizontal_wrapped(|ui| {
                    ui.colored_label(ui.visuals().error_fg_color, format!("Error: {e}"));
                    if unanswered && ui.button("Retry").on_hover_text("Ask this question again").clicked() {
                        action = Some(MsgAction::Regenerate);
                    }
                });
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

    fn message_ui(
        &mut self,
        ui: &mut egui::Ui,
        m: &crate::tasks::chat::ChatMsg,
        is_last_answer: bool,
    ) -> Option<MsgAction> {
        let mut action = None;
        ui.group(|ui| {
            ui.set_width(ui.available_width());
            if m.role == Role::User {
                ui.strong("You");
                ui.label(&m.content);
                ui.horizontal(|ui| {
                    if ui.small_button("Copy").clicked() {
                        action = Some(MsgAction::Copy(m.content.clone()));
                    }
                    if !self.session.is_answering()
                        && ui.small_button("Edit").on_hover_text("Edit and resend from here").clicked()
                    {
                        action = Some(MsgAction::Edit(m.seq, m.content.clone()));
                    }
                });
            } else {
                ui.horizontal(|ui| {
                    ui.strong("Assistant");
                    location_badge(ui, &m.location);
                    ui.weak(&m.backend_label);
                });
                if let Some(metrics) = &m.metrics {
                    steps_ui(ui, &metrics.steps);
                }
                CommonMarkViewer::new().show(ui, &mut self.md_cache, &m.content);
                if let Some(metrics) = &m.metrics {
                    ui.weak(metrics.line());
                }
                ui.horizontal(|ui| {
                    if ui.small_button("Copy").clicked() {
                        action = Some(MsgAction::Copy(m.content.clone()));
                    }
                    if is_last_answer && !self.session.is_answering() && ui.small_button("Regenerate").clicked() {
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
            if self.session.is_answering() {
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
        let before = self.session.conv.clone();
        ui.label("System prompt");
        ui.add(
            egui::TextEdit::multiline(&mut self.session.conv.system_prompt)
                .desired_rows(3)
                .hint_text("e.g. Answer briefly."),
        );
        ui.add(egui::Slider::new(&mut self.session.conv.temperature, 0.0..=2.0).text("temperature")).on_hover_text(
            "0 = always the most likely word (repeatable); higher = more varied. \
                 Keep it at 0.3 or below for models under 1B parameters, like the default one: they wander above it.",
        );
        ui.add(egui::Slider::new(&mut self.session.conv.top_p, 0.05..=1.0).text("top-p"));
        ui.add(egui::Slider::new(&mut self.session.conv.max_tokens, 16..=4096).logarithmic(true).text("max tokens"));
        ui.horizontal(|ui| {
            ui.label("seed");
            ui.add(egui::DragValue::new(&mut self.session.conv.seed));
        });
        ui.checkbox(&mut self.session.conv.tools, "Tools").on_hover_text(
            "The model may use the calculator (exact math, runs at once) and propose actions: save a note, \
             copy to the clipboard, search your documents. Every action waits for your yes.",
        );
        if self.session.conv.tools {
            ui.weak("Arithmetic in your question is worked out by the calculator first.");
            self.offer_tools(services);
            if let Some(status) = &self.mcp_status {
                ui.weak(status);
            }
        }
        if ui.small_button("Reset to defaults").clicked() {
            self.session.conv = ConvSettings::from_app(&services.settings.app);
        }
        if self.session.conv != before {
            if let Err(e) = self.session.save_settings(&services.db) {
                self.error = Some(e.to_string());
            }
        }
    }
}

/// The tool steps of an answer: calculator, actions, results, one line each.
fn steps_ui(ui: &mut egui::Ui, steps: &[String]) {
    if steps.is_empty() {
        return;
    }
    egui::Frame::new().fill(ui.visuals().faint_bg_color).inner_margin(6.0).corner_radius(4.0).show(ui, |ui| {
        for s in steps {
            ui.add(egui::Label::new(egui::RichText::new(s).monospace().small()).wrap());
        }
    });
}

enum MsgAction {
    Copy(String),
    Edit(i64, String),
    Regenerate,
}

/// A conversation as Markdown (messages only: no keys, no settings).
pub fn export_markdown(db: &Db, id: i64) -> Result<String, DbError> {
    let c = db.conversation(id)?;
    let mut out = format!("# {}\n\n", if c.title.is_empty() { "Conversation" } else { &c.title });
    for m in db.messages(id)? {
        let who = if m.role == Role::User {
            "You".to_string()
        } else {
            format!("Assistant ({}, {})", m.backend_label, m.location)
        };
        out.push_str(&format!("**{who}:**\n\n{}\n\n", m.content));
    }
    Ok(out)
}

/// A conversation as JSON (title and messages with role, text, where it ran).
pub fn export_json(db: &Db, id: i64) -> Result<String, DbError> {
    let c = db.conversation(id)?;
    let messages: Vec<_> = db
        .messages(id)?
        .into_iter()
        .map(|m| {
            serde_json::json!({
                "role": m.role, "content": m.content, "model": m.backend_label, "where": m.location,
                "metrics": serde_json::from_str::<serde_json::Value>(&m.metrics_json).unwrap_or_default(),
            })
        })
        .collect();
    // A JSON value always serializes.
    Ok(serde_json::to_string_pretty(&serde_json::json!({"title": c.title, "messages": messages})).unwrap_or_default())
}

/// Ask where to save (on a helper thread: the dialog must not freeze the window).
fn export_dialog(services: &mut Services, title: &str, ext: &'static str, content: Result<String, DbError>) {
    let content = match content {
        Ok(c) => c,
        Err(e) => {
            services.notice = Some(e.to_string());
            return;
        }
    };
    let name: String = title.chars().filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-').collect();
    let name = format!("{}.{ext}", if name.trim().is_empty() { "conversation" } else { name.trim() });
    services.save_dialog(name, content);
}

/// Where an answer ran, as a pill at the body text's size: green when it
/// stayed on this computer, amber when the conversation was sent away.
fn location_badge(ui: &mut egui::Ui, location: &crate::engine::DataLocation) {
    let local = *location == crate::engine::DataLocation::ThisComputer;
    let fill = if local { egui::Color32::from_rgb(30, 90, 50) } else { egui::Color32::from_rgb(120, 80, 20) };
    egui::Frame::new().fill(fill).corner_radius(9.0).inner_margin(egui::Margin::symmetric(8, 2)).show(ui, |ui| {
        ui.label(egui::RichText::new(location.to_string()).color(egui::Color32::WHITE));
    });
}
