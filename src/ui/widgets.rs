//! Small pieces several screens share.

use eframe::egui;
use std::path::PathBuf;

/// A field for typing a file's path, with a button: where no file dialog can
/// be shown, this is how a file gets in. Returns the path when the button is
/// pressed, or Enter in the field.
pub fn path_field(ui: &mut egui::Ui, text: &mut String, hint: &str, button: &str) -> Option<PathBuf> {
    ui.horizontal(|ui| {
        let label = ui.label("Path");
        let field = ui
            .add(
                egui::TextEdit::singleline(text).hint_text(hint).desired_width((ui.available_width() - 60.0).max(80.0)),
            )
            .labelled_by(label.id);
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let pressed = ui.button(button).clicked();
        ((pressed || enter) && !text.trim().is_empty()).then(|| PathBuf::from(text.trim()))
    })
    .inner
}

/// A side panel's width: `fraction` of the room there is, within `min..=max`,
/// so the middle of the screen keeps room at 800×600 and no panel is drawn
/// over it.
pub fn side_width(ui: &egui::Ui, fraction: f32, min: f32, max: f32) -> f32 {
    (ui.available_width() * fraction).clamp(min, max)
}

/// Files dropped on the window this frame.
pub fn dropped_files(ui: &egui::Ui) -> Vec<PathBuf> {
    ui.input(|i| {
        i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect()
    })
}
