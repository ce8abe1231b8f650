//! The Compare screen: one prompt to the local model and cloud profiles side by
//! side, with speed, cost and privacy per column, the user's verdict, a cost
//! calculator fed by the user's own runs, and a short guide to choosing.

use super::cached::Cached;
use super::services::{or_notice, Services};
use super::widgets::side_width;
use crate::db::RunStatus;
use crate::engine::{system_and_user, BackendSpec, GenRequest, SamplingParams};
use crate::tasks::compare::{measured, preference_pairs_jsonl, project, tallies, Comparison, Verdict};
use eframe::egui;
use egui_commonmark::{CommonMarkCache, CommonMarkViewer};

#[derive(Clone)]
struct History {
    tallies: Vec<crate::tasks::compare::Tally>,
    measured: Vec<crate::tasks::compare::Measured>,
    classify_run: Option<crate::db::RunInfo>,
}

pub struct CompareScreen {
    pub prompt: String,
    pub system_prompt: String,
    pub temperature: f32,
    /// Backend specs ticked for the next comparison.
    pub selected: Vec<BackendSpec>,
    pub running: Option<Comparison>,
    /// Id of the saved comparison shown (for the verdict).
    pub saved_id: Option<i64>,
    pub verdict: Option<Verdict>,
    pub error: Option<String>,
    /// The person asked to go to Settings (to add a cloud profile); the app switches screens.
    pub wants_settings: bool,
    requests_per_day: f64,
    /// Verdict tallies and per-backend averages over saved comparisons (None: read again).
    /// Tallies and measured averages, and the newest finished classify run, per database revision.
    history: Cached<crate::db::Revision, History>,
    md_cache: CommonMarkCache,
}

impl Default for CompareScreen {
    fn default() -> Self {
        CompareScreen {
            prompt: String::new(),
            system_prompt: String::new(),
            temperature: 0.0,
            selected: vec![BackendSpec::Local],
            running: None,
            saved_id: None,
            verdict: None,
            error: None,
            wants_settings: false,
            requests_per_day: 10_000.0,
            history: Cached::default(),
            md_cache: CommonMarkCache::default(),
        }
    }
}

impl CompareScreen {
    /// Start the comparison on every ticked backend.
    pub fn run(&mut self, services: &mut Services) {
        self.error = None;
        if self.prompt.trim().is_empty() {
            self.error = Some("Write a prompt to compare.".into());
            return;
        }
        if self.selected.is_empty() {
            self.error = Some("Tick at least one backend.".into());
            return;
        }
        let contenders = match self.selected.iter().map(|spec| services.contender(spec)).collect() {
            Ok(c) => c,
            Err(e) => {
                self.error = Some(e.to_string());
                return;
            }
        };
        let mut req = GenRequest::new(system_and_user(Some(&self.system_prompt), &self.prompt));
        req.sampling = SamplingParams { temperature: self.temperature, ..SamplingParams::default() };
        let wake = services.wake.clone();
        self.running = Some(Comparison::start_waking(contenders, &self.prompt, &self.system_prompt, req, wake));
        self.saved_id = None;
        self.verdict = None;
    }

    pub fn set_verdict(&mut self, services: &mut Services, v: Verdict) {
        let Some(id) = self.saved_id else { return };
        match services.db.save_verdict(id, 0, 1, v.as_str()) {
            Ok(()) => {
                self.verdict = Some(v);
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    fn poll(&mut self, services: &mut Services) {
        let Some(c) = &mut self.running else { return };
        c.poll();
        if c.finished() && self.saved_id.is_none() {
            match c.save(&services.db) {
                Ok(id) => {
                    self.saved_id = Some(id);
                }
                Err(e) => self.error = Some(e.to_string()),
            }
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        self.poll(services);
        let width = side_width(ui, 0.3, 200.0, 300.0);
        egui::Panel::right("compare_guide").default_size(width).max_size(width).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.side_ui(ui, services));
        });
        ui.heading("Compare");
        let label = ui.label("Prompt");
        ui.add(
            egui::TextEdit::multiline(&mut self.prompt)
                .desired_rows(3)
                .desired_width(f32::INFINITY)
                .hint_text("One prompt, several models"),
        )
        .labelled_by(label.id);
        ui.horizontal_wrapped(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.system_prompt)
                    .hint_text("System prompt (optional)")
                    .desired_width(260.0),
            );
            ui.add(egui::Slider::new(&mut self.temperature, 0.0..=2.0).text("temperature"));
        });
        if services.settings.cloud.is_empty() {
            ui.horizontal(|ui| {
                ui.label("No cloud profile yet: compare the local model with a cloud one by adding a profile.");
                if ui.button("Open Settings").clicked() {
                    self.wants_settings = true;
                }
            });
        }
        ui.horizontal_wrapped(|ui| {
            for (spec, name) in services.backend_choices() {
                let mut on = self.selected.contains(&spec);
                if ui.checkbox(&mut on, name).changed() {
                    if on {
                        self.selected.push(spec.clone());
                    } else {
                        self.selected.retain(|s| *s != spec);
                    }
                }
            }
        });
        let busy = self.running.as_ref().is_some_and(|c| !c.finished());
        ui.horizontal(|ui| {
            if busy {
                if ui.button("Stop").clicked() {
                    if let Some(c) = &self.running {
                        c.cancel.cancel();
                    }
                }
            } else if ui.button("Run comparison").clicked() {
                self.run(services);
            }
        });
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        let Some(columns) = self.running.as_ref().map(|c| c.columns.clone()) else { return };
        let n = columns.len().max(1);
        ui.columns(n, |cols| {
            for (ui, col) in cols.iter_mut().zip(&columns) {
                ui.group(|ui| {
                    ui.strong(&col.label);
                    ui.weak(col.stats.location_text());
                    ui.separator();
                    if let Some(e) = &col.error {
                        ui.colored_label(ui.visuals().error_fg_color, format!("Error: {e}"));
                    } else {
                        let text = col.text.clone();
                        CommonMarkViewer::new().show(ui, &mut self.md_cache, &text);
                    }
                    if col.done && col.error.is_none() {
                        ui.separator();
                        ui.weak(format!(
                            "first token {:.0} ms · total {:.1} s · {:.1} tok/s",
                            col.stats.ttft_ms,
                            col.stats.total_ms / 1e3,
                            col.stats.tok_per_s
                        ));
                        ui.weak(format!(
                            "{} prompt + {} answer tokens",
                            col.stats.prompt_tokens, col.stats.completion_tokens
                        ));
                        ui.weak(col.cost_text());
                    }
                });
            }
        });
        let judgeable = columns.len() >= 2 && columns[..2].iter().all(|c| c.error.is_none() && !c.text.is_empty());
        if self.saved_id.is_some() && judgeable {
            ui.horizontal(|ui| {
                ui.label("Which answer is better?");
                let (a, b) = (columns[0].label.clone(), columns[1].label.clone());
                for (v, text) in [
                    (Verdict::A, format!("A ({a})")),
                    (Verdict::B, format!("B ({b})")),
                    (Verdict::Tie, "Tie".into()),
                    (Verdict::BothBad, "Both bad".into()),
                ] {
                    if ui.selectable_label(self.verdict == Some(v), text).clicked() {
                        self.set_verdict(services, v);
                    }
                }
            });
            if self.verdict.is_some() {
                ui.weak(
                    "Saved. Your verdicts become preference pairs (export on the right) — the data RLHF learns from.",
                );
            }
        }
    }

    fn side_ui(&mut self, ui: &mut egui::Ui, services: &mut Services) {
        ui.heading("Your verdicts");
        // Tallies and averages read every saved comparison: only after a write.
        let (db, notice) = (&services.db, &mut services.notice);
        let History { tallies: t, measured: m, classify_run } = self
            .history
            .get(db.revision(), || History {
                tallies: or_notice(notice, tallies(db)),
                measured: or_notice(notice, measured(db)),
                classify_run: or_notice(notice, db.runs())
                    .into_iter()
                    .find(|r| r.status == RunStatus::Done && r.rows >= 20),
            })
            .clone();
        if t.is_empty() {
            ui.weak("No verdicts yet.");
        }
        for t in &t {
            ui.label(format!(
                "{} vs {}: {}–{} ({} ties, {} both bad)",
                t.a, t.b, t.a_wins, t.b_wins, t.ties, t.both_bad
            ));
        }
        if ui.button("Export preference pairs (JSONL)…").clicked() {
            match preference_pairs_jsonl(&services.db) {
                Ok(s) => services.save_dialog("preferences.jsonl".into(), s),
                Err(e) => self.error = Some(e.to_string()),
            }
        }
        ui.separator();
        ui.heading("What would it cost?");
        ui.horizontal(|ui| {
            ui.add(egui::DragValue::new(&mut self.requests_per_day).range(1.0..=1e9).speed(100.0));
            ui.label("requests per day");
        });
        if m.is_empty() {
            ui.weak("Run a comparison: the estimate uses your own measured answers.");
        }
        for m in &m {
            let (day, month, hours) = project(m, self.requests_per_day);
            ui.label(format!(
                "{}: ${day:.2}/day, ${month:.2}/month; {hours:.1} h of answering per day ({:.0}+{:.0} tokens, {:.1} s per request, {} measured)",
                m.label, m.prompt_tokens, m.completion_tokens, m.seconds, crate::tasks::count(m.runs as u64, "run")
            ));
        }
        // Classification runs measured here, scaled to 10,000 reviews.
        if let Some(run) = classify_run {
            let secs = (run.updated_at - run.created_at).max(1) as f64;
            let minutes = 10_000.0 * secs / run.rows as f64 / 60.0;
            let place = if run.backend.is_local() { "here, $0".to_string() } else { run.backend.to_string() };
            ui.label(format!(
                "Classifying 10,000 reviews: about {minutes:.0} minutes ({place}; measured on run #{} of {} rows).",
                run.id, run.rows
            ));
        }
        ui.separator();
        ui.heading("Choosing a model");
        ui.label("Rough size classes:");
        ui.label("• ~1B parameters: pattern matching and basic knowledge — e.g. the sentiment of a restaurant review. The local model here is this class.");
        ui.label("• ~10B: more world knowledge and instructions — e.g. a food-order chatbot.");
        ui.label("• 100B+: rich knowledge and reasoning — e.g. a brainstorming partner.");
        ui.label("Closed (cloud) models: easy to start, most powerful, cheap per request — but a vendor holds your data and can change or retire the model.");
        ui.label("Open (local) models: full control, run on your own device, data never leaves it — but smaller and slower on a laptop.");
        if let (Some(local), Some(cloud)) =
            (m.iter().find(|m| m.location.is_local()), m.iter().find(|m| !m.location.is_local()))
        {
            ui.label(format!(
                "Your numbers: locally {:.1} s per answer, free, private; {} {:.1} s and ${:.5} per answer, {}.",
                local.seconds, cloud.label, cloud.seconds, cloud.cost_usd, cloud.location
            ));
        }
    }
}
