//! The desktop app (eframe/egui): a screen switcher on top, conversations on
//! the left, the active screen in the middle, a status bar below.
//!
//! The app struct only routes: each screen is its own struct with a `ui`
//! method. Nothing slow runs on the UI thread: model loads, downloads,
//! generation and batch jobs run on their own threads and are polled at the
//! start of each frame; a worker wakes the window when it has news
//! ([`services::Services::wake`]), so an idle window draws nothing.

pub mod cached;
pub mod chat;
pub mod compare;
pub mod documents;
pub mod fonts;
pub mod models;
pub mod pending;
pub mod progress;
pub mod reviews;
pub mod services;
pub mod settings;
pub mod teach;
pub mod widgets;

use eframe::egui;
use services::Services;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Chat,
    Compare,
    Reviews,
    Documents,
    Models,
    Settings,
}

impl Screen {
    const ALL: [Screen; 6] =
        [Screen::Chat, Screen::Compare, Screen::Reviews, Screen::Documents, Screen::Models, Screen::Settings];

    fn title(self) -> &'static str {
        match self {
            Screen::Chat => "Chat",
            Screen::Compare => "Compare",
            Screen::Reviews => "Reviews",
            Screen::Documents => "Documents",
            Screen::Models => "Models",
            Screen::Settings => "Settings",
        }
    }

    /// For `DUET_SCREEN` (screenshots) and tests.
    pub fn from_name(name: &str) -> Option<Screen> {
        Screen::ALL.into_iter().find(|s| s.title().eq_ignore_ascii_case(name))
    }
}

/// The whole app's runtime state.
pub struct DuetApp {
    pub services: Services,
    pub screen: Screen,
    pub chat: chat::ChatScreen,
    pub compare: compare::CompareScreen,
    pub reviews: reviews::ReviewsScreen,
    pub documents: documents::DocumentsScreen,
    pub models: models::ModelsScreen,
    pub settings: settings::SettingsScreen,
    applied_theme: String,
    fonts_installed: bool,
}

impl DuetApp {
    pub fn new(mut services: Services) -> Self {
        let mut chat = chat::ChatScreen::default();
        chat.open_latest(&mut services);
        let settings = settings::SettingsScreen::new(&services);
        DuetApp {
            services,
            screen: Screen::Chat,
            chat,
            compare: compare::CompareScreen::default(),
            reviews: reviews::ReviewsScreen::default(),
            documents: documents::DocumentsScreen::default(),
            models: models::ModelsScreen::default(),
            settings,
            applied_theme: String::new(),
            fonts_installed: false,
        }
    }

    /// Switch the chat's backend (`local` or `cloud:NAME`), as its menu does.
    pub fn set_chat_backend(&mut self, spec: &str) {
        match spec.parse() {
            Ok(spec) => self.chat.set_backend(&mut self.services, spec),
            Err(e) => self.chat.error = Some(format!("{e}")),
        }
    }

    /// One frame of the whole app (eframe calls it; so do the tests).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        if !self.fonts_installed {
            self.fonts_installed = true;
            fonts::install(&ctx);
        }
        self.services.poll(&ctx);
        if self.applied_theme != self.services.settings.app.theme {
            self.applied_theme = self.services.settings.app.theme.clone();
            ctx.set_theme(match self.applied_theme.as_str() {
                "light" => egui::ThemePreference::Light,
                "dark" => egui::ThemePreference::Dark,
                _ => egui::ThemePreference::System,
            });
        }
        self.shortcuts(&ctx);

        egui::Panel::top("screens").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("duet");
                ui.separator();
                for s in Screen::ALL {
                    if ui.selectable_label(self.screen == s, s.title()).clicked() {
                        self.screen = s;
                    }
                }
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        // A notice (a save, a failed read) shows on every screen until dismissed.
        if let Some(notice) = self.services.notice.clone() {
            egui::Panel::bottom("notice").show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.colored_label(ui.visuals().warn_fg_color, notice);
                    if ui.small_button("Dismiss").clicked() {
                        self.services.notice = None;
                    }
                });
            });
        }
        if matches!(self.screen, Screen::Chat) {
            egui::Panel::left("conversations").default_size(220.0).show(ui, |ui| {
                self.chat.conversation_list(ui, &mut self.services);
            });
        }
        egui::CentralPanel::default().show(ui, |ui| match self.screen {
            Screen::Chat => self.chat.ui(ui, &mut self.services),
            Screen::Compare => self.compare.ui(ui, &mut self.services),
            Screen::Reviews => self.reviews.ui(ui, &mut self.services),
            Screen::Documents => self.documents.ui(ui, &mut self.services),
            Screen::Models => self.models.ui(ui, &mut self.services),
            Screen::Settings => self.settings.ui(ui, &mut self.services),
        });
        if std::mem::take(&mut self.compare.wants_settings) {
            self.screen = Screen::Settings;
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let quit = KeyboardShortcut::new(Modifiers::COMMAND, Key::Q);
        if ctx.input_mut(|i| i.consume_shortcut(&quit)) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        let new_chat = KeyboardShortcut::new(Modifiers::COMMAND, Key::N);
        if ctx.input_mut(|i| i.consume_shortcut(&new_chat)) {
            self.screen = Screen::Chat;
            self.chat.new_conversation(&mut self.services);
        }
        for (n, key) in [Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5, Key::Num6].into_iter().enumerate() {
            if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, key))) {
                self.screen = Screen::ALL[n];
            }
        }
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let s = &self.services;
            ui.label(s.local_status());
            ui.separator();
            ui.label(format!("chat backend: {}", self.chat.backend_name(s)));
            if s.settings.app.offline {
                ui.separator();
                ui.label("offline mode: nothing leaves this computer");
            }
            if let Some(rss) = services::resident_bytes() {
                ui.separator();
                ui.label(format!("memory {}", crate::catalog::human_bytes(rss)));
            }
            if let Some(tps) = s.last_tok_per_s {
                ui.separator();
                ui.label(format!("last {tps:.0} tok/s"));
            }
        });
    }
}

impl eframe::App for DuetApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        DuetApp::ui(self, ui);
    }

    /// eframe keeps the window's size and place; duet adds the screen that was open.
    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, "screen", &self.screen.title().to_string());
    }
}

/// Open the window. Returns when it closes.
pub fn run(services: Services) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("duet")
            .with_inner_size([1100.0, 720.0])
            .with_min_inner_size([640.0, 420.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    let screen = std::env::var("DUET_SCREEN").ok().and_then(|s| Screen::from_name(&s));
    // Window size and place live beside settings.toml, so DUET_HOME moves them too.
    let options =
        eframe::NativeOptions { persistence_path: Some(services.paths.config_dir.join("window.ron")), ..options };
    eframe::run_native(
        "duet",
        options,
        Box::new(move |cc| {
            let mut app = DuetApp::new(services);
            let remembered = cc
                .storage
                .and_then(|s| eframe::get_value::<String>(s, "screen"))
                .and_then(|name| Screen::from_name(&name));
            if let Some(s) = screen.or(remembered) {
                app.screen = s;
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "could not open the window ({e}). On a machine without a display, use the terminal: `duet chat`, `duet ask`, `duet classify`."
        )
    })
}
