//! The Settings screen: cloud profiles (keys go to the OS keyring and are only
//! ever shown as dots), offline mode, theme, default sampling, data folders.

use super::services::Services;
use crate::config::CloudProfile;
use crate::secret::Secret;
use eframe::egui;

#[derive(Default)]
pub struct SettingsScreen {
    /// A key being typed per profile; never persisted as typed.
    key_input: std::collections::HashMap<String, String>,
    /// Whether each profile has a key, looked up once (the keyring can be slow;
    /// this screen is drawn every frame) and again after "Save key".
    has_key: std::collections::HashMap<String, bool>,
    new_profile: String,
    pub message: Option<String>,
}

impl SettingsScreen {
    pub fn new(_services: &Services) -> Self {
        SettingsScreen::default()
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            ui.heading("Settings");
            if let Some(m) = &self.message {
                ui.label(m);
            }
            let before = services.settings.clone();

            ui.separator();
            ui.strong("Privacy");
            ui.checkbox(&mut services.settings.app.offline, "Offline mode: never use the network (no downloads, no cloud)");
            ui.weak("duet never phones home. Data leaves this computer only when you pick a cloud backend, and every answer says where it ran.");

            ui.separator();
            ui.strong("Look");
            ui.horizontal(|ui| {
                for (v, label) in [("system", "Follow the system"), ("light", "Light"), ("dark", "Dark")] {
                    ui.radio_value(&mut services.settings.app.theme, v.to_string(), label);
                }
            });

            ui.separator();
            ui.strong("Defaults for new conversations");
            let app = &mut services.settings.app;
            ui.add(egui::TextEdit::multiline(&mut app.system_prompt).desired_rows(2).hint_text("System prompt (optional)"));
            ui.add(egui::Slider::new(&mut app.temperature, 0.0..=2.0).text("temperature"));
            ui.add(egui::Slider::new(&mut app.top_p, 0.05..=1.0).text("top-p"));
            ui.add(egui::Slider::new(&mut app.max_tokens, 16..=4096).logarithmic(true).text("max tokens"));
            ui.horizontal(|ui| {
                ui.label("seed");
                ui.add(egui::DragValue::new(&mut app.seed));
            });

            ui.separator();
            ui.strong("Cloud profiles");
            ui.weak("Any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, LM Studio, or another duet serve.");
            let mut remove = None;
            for (i, p) in services.settings.cloud.iter_mut().enumerate() {
                ui.push_id(i, |ui| {
                    ui.group(|ui| {
                        ui.horizontal(|ui| {
                            ui.strong(&p.name);
                            if ui.small_button("Remove").clicked() {
                                remove = Some(i);
                            }
                        });
                        egui::Grid::new("profile").num_columns(2).show(ui, |ui| {
                            ui.label("Base URL");
                            ui.text_edit_singleline(&mut p.base_url);
                            ui.end_row();
                            ui.label("Model");
                            ui.text_edit_singleline(&mut p.model);
                            ui.end_row();
                            ui.label("$ per million input tokens");
                            ui.add(egui::DragValue::new(&mut p.usd_per_m_input).speed(0.01).range(0.0..=1000.0));
                            ui.end_row();
                            ui.label("$ per million output tokens");
                            ui.add(egui::DragValue::new(&mut p.usd_per_m_output).speed(0.01).range(0.0..=1000.0));
                            ui.end_row();
                            ui.label("API key");
                            ui.horizontal(|ui| {
                                let has_key = *self
                                    .has_key
                                    .entry(p.name.clone())
                                    .or_insert_with(|| crate::engine::cloud::resolve_key(p).is_some());
                                let typed = self.key_input.entry(p.name.clone()).or_default();
                                ui.add(
                                    egui::TextEdit::singleline(typed)
                                        .password(true)
                                        .hint_text(if has_key { "••••••••" } else { "not set" })
                                        .desired_width(200.0),
                                );
                                if ui.button("Save key").clicked() && !typed.trim().is_empty() {
                                    let key = Secret::new(typed.trim());
                                    self.message = Some(match crate::engine::cloud::keyring_set(&p.name, &key) {
                                        Ok(()) => format!("The key for '{}' is in the OS keyring.", p.name),
                                        Err(e) => format!("Could not save the key: {e}."),
                                    });
                                    typed.clear();
                                    self.has_key.remove(&p.name);
                                }
                            });
                            ui.end_row();
                        });
                    });
                });
            }
            if let Some(i) = remove {
                services.settings.cloud.remove(i);
            }
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut self.new_profile).hint_text("new profile name").desired_width(160.0));
                let name = self.new_profile.trim().to_string();
                let ok = !name.is_empty() && services.settings.profile(&name).is_none();
                if ui.add_enabled(ok, egui::Button::new("Add profile")).clicked() {
                    services.settings.cloud.push(CloudProfile {
                        name,
                        base_url: "http://127.0.0.1:8080/v1".into(),
                        model: "default".into(),
                        key_env: None,
                        key: None,
                        usd_per_m_input: 0.0,
                        usd_per_m_output: 0.0,
                    });
                    self.new_profile.clear();
                }
            });

            ui.separator();
            ui.strong("Where your data lives");
            ui.monospace(crate::config::describe(&services.paths));
            ui.horizontal(|ui| {
                ui.label("Data folder");
                ui.add(
                    egui::TextEdit::singleline(&mut services.settings.app.data_dir)
                        .hint_text("default")
                        .desired_width(320.0),
                );
            });
            ui.weak("A new data folder (history and models) takes effect the next time duet starts; move the files there yourself to keep them. DUET_HOME, when set, wins.");

            if services.settings != before {
                services.save_settings();
            }
        });
    }
}
