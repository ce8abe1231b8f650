//! Symbols that egui's bundled fonts lack, drawn by duet's own tiny font.
//!
//! egui_commonmark labels its code-block copy button with U+1F5D0 (two pages)
//! and U+2714 (a check mark, once copied); without a font that has them the
//! button is a blank box. `assets/fonts/duet-icons.ttf` (800 bytes, made by
//! `scripts/make-icon-font.py`) has just those two, as the last fallback.

use eframe::egui;
use egui::epaint::text::{FontInsert, FontPriority, InsertFontFamily};

pub const ICONS: &[u8] = include_bytes!("../../assets/fonts/duet-icons.ttf");

/// Add the icon font to `ctx` (takes effect from this frame when called first thing).
pub fn install(ctx: &egui::Context) {
    let families = [egui::FontFamily::Proportional, egui::FontFamily::Monospace]
        .into_iter()
        .map(|family| InsertFontFamily { family, priority: FontPriority::Lowest })
        .collect();
    ctx.add_font(FontInsert::new("duet-icons", egui::FontData::from_static(ICONS), families));
}
