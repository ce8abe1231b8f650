//! Classify short texts (customer reviews) into labels the user chose, count
//! them, and measure how often the model is wrong.
//!
//! Locally, a label is not parsed out of free text: each label is scored as a
//! continuation of the prompt (the sum of its tokens' log-probabilities) and
//! the scores become a confidence through a softmax. The instruction comes
//! first and the review last, so the engine's KV cache keeps the shared prefix
//! and each row costs only its own tokens. In the cloud the course's method is
//! used: ask for a single word at temperature 0 and map it to a label;
//! anything that maps to no label is "unclear", never dropped.
//!
//! This module knows nothing about files or windows: rows come in, verdicts go
//! out, a run is kept in the database.

use crate::db::{Db, RunRow};
use crate::engine::cloud::CloudBackend;
use crate::engine::local::LocalEngine;
use crate::engine::{Backend, Cancel, GenRequest, Message, SamplingParams};
use crate::progress::Progress;
use crate::tasks::input::{Row, Table};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a cloud answer that names no label counts as.
pub const UNCLEAR: &str = "unclear";

/// duet's hand-written evaluation set: 240 short restaurant reviews, half
/// positive, half negative (see assets/data/README.md).
pub const EVAL_CSV: &str = include_str!("../../assets/data/restaurant-reviews-eval.csv");

/// The course's five reviews ("Try the example").
pub const EXAMPLE_REVIEWS: [&str; 5] = [
    "The mochi is excellent!",
    "Best soup dumplings I have ever eaten.",
    "Not worth the 3 month wait for a reservation.",
    "The colorful tablecloths made me smile!",
    "The pasta was cold.",
];

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("classifying needs at least two labels, such as positive, negative (got: {0})")]
    TooFewLabels(String),
    #[error("the instruction must say where the review goes with {{review}}")]
    NoPlaceholder,
    #[error("example {0:?} should look like: review text => label (with a label from the list)")]
    BadExample(String),
    #[error(transparent)]
    Input(#[from] crate::tasks::input::InputError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("{0}")]
    Backend(String),
}

/// How to classify; stored with each run so a run can be resumed exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifyConfig {
    pub labels: Vec<String>,
    /// The prompt; `{review}` is replaced by the row's text (and should come last,
    /// so every row shares the prefix before it).
    pub instruction: String,
    /// Few-shot examples (review, label), shown to the model before each row.
    #[serde(default)]
    pub examples: Vec<(String, String)>,
    /// How much of the model's bias toward some labels to divide out (0 = none,
    /// 1 = full contextual calibration), the bias being measured on content-free
    /// inputs. Full calibration over-corrects the default model (85.0% → 71.7% on
    /// duet's 240 labeled reviews); a quarter of it helps (89.2%, and the same on
    /// each half of the set when the strength is picked on the other; see README).
    #[serde(default = "default_calibration")]
    pub calibration: f64,
    /// Longer reviews are cut to this many tokens, and flagged.
    #[serde(default = "default_max_review_tokens")]
    pub max_review_tokens: usize,
}

pub const DEFAULT_CALIBRATION: f64 = 0.25;

fn default_calibration() -> f64 {
    DEFAULT_CALIBRATION
}

fn default_max_review_tokens() -> usize {
    512
}

impl ClassifyConfig {
    pub fn new(labels: Vec<String>) -> Self {
        let instruction = default_instruction(&labels);
        ClassifyConfig {
            labels,
            instruction,
            examples: Vec::new(),
            calibration: DEFAULT_CALIBRATION,
            max_review_tokens: default_max_review_tokens(),
        }
    }

    /// Render the prompt for one review.
    pub fn prompt(&self, review: &str) -> String {
        self.instruction.replace("{review}", review)
    }

    fn messages(&self, review: &str) -> Vec<Message> {
        let mut messages = Vec::new();
        for (text, label) in &self.examples {
            messages.push(Message::new("user", &self.prompt(text)));
            messages.push(Message::new("assistant", label));
        }
        messages.push(Message::new("user", &self.prompt(review)));
        messages
    }

    pub fn check(&self) -> Result<(), ClassifyError> {
        if self.labels.len() < 2 {
            return Err(ClassifyError::TooFewLabels(self.labels.join(", ")));
        }
        if !self.instruction.contains("{review}") {
            return Err(ClassifyError::NoPlaceholder);
        }
        Ok(())
    }
}

/// Parse "positive, negative, Positive" into distinct labels (case-insensitive;
/// the first spelling wins) and say which repeats were dropped.
pub fn parse_labels(text: &str) -> Result<(Vec<String>, Vec<String>), ClassifyError> {
    let mut labels: Vec<String> = Vec::new();
    let mut repeats = Vec::new();
    for l in text.split([',', '\n']).map(str::trim).filter(|l| !l.is_empty()) {
        if labels.iter().any(|k| k.eq_ignore_ascii_case(l)) {
            repeats.push(l.to_string());
        } else {
            labels.push(l.to_string());
        }
    }
    if labels.len() < 2 {
        return Err(ClassifyError::TooFewLabels(if labels.is_empty() { "none".into() } else { labels.join(", ") }));
    }
    Ok((labels, repeats))
}

/// Few-shot examples written as `review => label`, one per line; each label
/// must be one of `labels` (case-insensitive; the list's spelling is used).
pub fn parse_examples(lines: &[String], labels: &[String]) -> Result<Vec<(String, String)>, ClassifyError> {
    let mut out = Vec::new();
    for line in lines.iter().flat_map(|l| l.lines()).map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || ClassifyError::BadExample(line.to_string());
        let (text, label) = line.rsplit_once("=>").ok_or_else(bad)?;
        let label = labels.iter().find(|l| l.eq_ignore_ascii_case(label.trim())).ok_or_else(bad)?;
        if text.trim().is_empty() {
            return Err(bad());
        }
        out.push((text.trim().to_string(), label.clone()));
    }
    Ok(out)
}

/// The course's wording for positive/negative; the same shape for any labels.
pub fn default_instruction(labels: &[String]) -> String {
    let quoted: Vec<String> = labels.iter().map(|l| format!("\"{l}\"")).collect();
    let (either, list) = match labels.len() {
        0 | 1 => (String::new(), quoted.join("")),
        2 => ("either ".to_string(), format!("{} or {}", quoted[0], quoted[1])),
        n => ("one of ".to_string(), format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1])),
    };
    let is_sentiment =
        labels.iter().all(|l| ["positive", "negative", "neutral", "mixed"].contains(&l.to_ascii_lowercase().as_str()));
    let plain: Vec<&str> = labels.iter().map(String::as_str).collect();
    let what = if is_sentiment {
        match plain.len() {
            2 => format!("as having either a {} or {} sentiment", plain[0], plain[1]),
            n => format!("as having a {} or {} sentiment", plain[..n - 1].join(", "), plain[n - 1]),
        }
    } else {
        format!("as {}", plain.join(", "))
    };
    format!("Classify the following review {what}. State your answer as a single word, {either}{list}:\n\n{{review}}")
}

/// One row's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub label: String,
    /// Probability of `label`, in [0, 1].
    pub confidence: f64,
    /// Probability of every label, in the config's order; sums to 1 (empty when
    /// the backend gave no probabilities).
    pub scores: Vec<f64>,
    /// What happened on the way (truncated, characters removed…).
    pub note: String,
}

/// Anything that can label one review.
pub trait Classifier {
    /// "SmolLM2-135M-Instruct.Q4_1.gguf" or "gpt-4o-mini · api.openai.com".
    fn backend_label(&self) -> String;
    fn classify(&mut self, review: &str) -> Result<Verdict, String>;
}

/// Control characters (except tab and newline) have no tokens in some models
/// and mean nothing in a review.
fn clean(review: &str, note: &mut Vec<String>) -> String {
    let cleaned: String = review.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\t').collect();
    let removed = review.chars().count() - cleaned.chars().count();
    if removed > 0 {
        note.push(format!("{removed} control characters removed"));
    }
    cleaned.trim().to_string()
}

/// Labels scored by the local model.
pub struct LocalClassifier {
    engine: LocalEngine,
    config: ClassifyConfig,
    /// For each label, the token ids of each surface form scored ("positive", "Positive").
    forms: Vec<Vec<Vec<u32>>>,
    /// Log-probabilities on a content-free input, subtracted when calibrating.
    bias: Option<Vec<f64>>,
}

impl LocalClassifier {
    pub fn new(engine: LocalEngine, config: ClassifyConfig) -> Result<Self, ClassifyError> {
        config.check()?;
        let mut forms = Vec::new();
        for label in &config.labels {
            let mut ids = Vec::new();
            for form in surface_forms(label) {
                let t = engine.tokenize(&form).map_err(ClassifyError::Backend)?;
                if !t.is_empty() && !ids.contains(&t) {
                    ids.push(t);
                }
            }
            forms.push(ids);
        }
        let mut me = LocalClassifier { engine, config, forms, bias: None };
        if me.config.calibration > 0.0 {
            // Contextual calibration (Zhao et al., 2021): what the model says to
            // a review with no content is its prior; divide it out.
            let mut sum = vec![0.0; me.forms.len()];
            let free = ["N/A", "", "[REVIEW]"];
            for text in free {
                let lp = me.label_logprobs(text)?;
                let p = softmax(&lp);
                for (s, v) in sum.iter_mut().zip(p) {
                    *s += v / free.len() as f64;
                }
            }
            let strength = me.config.calibration.min(1.0);
            me.bias = Some(sum.iter().map(|p| strength * p.max(1e-12).ln()).collect());
        }
        Ok(me)
    }

    /// Log-probability of each label (log-sum over its surface forms).
    fn label_logprobs(&self, review: &str) -> Result<Vec<f64>, ClassifyError> {
        let all: Vec<Vec<u32>> = self.forms.iter().flatten().cloned().collect();
        let scores = self.engine.score(self.config.messages(review), all).map_err(ClassifyError::Backend)?;
        let mut it = scores.logprobs.into_iter();
        Ok(self.forms.iter().map(|f| log_sum_exp(&it.by_ref().take(f.len()).collect::<Vec<_>>())).collect())
    }
}

/// The label as typed and with its first letter capitalized: small models
/// often start an answer with a capital.
fn surface_forms(label: &str) -> Vec<String> {
    let mut chars = label.chars();
    let cap: String = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
    let mut forms = vec![label.to_string()];
    if cap != label {
        forms.push(cap);
    }
    forms
}

impl Classifier for LocalClassifier {
    fn backend_label(&self) -> String {
        self.engine.name.clone()
    }

    fn classify(&mut self, review: &str) -> Result<Verdict, String> {
        let mut notes = Vec::new();
        let mut text = clean(review, &mut notes);
        let ids = self.engine.tokenize(&text)?;
        if ids.len() > self.config.max_review_tokens {
            text = self.engine.decode(&ids[..self.config.max_review_tokens])?;
            notes.push(format!("truncated from {} to {} tokens", ids.len(), self.config.max_review_tokens));
        }
        let mut lp = self.label_logprobs(&text).map_err(|e| e.to_string())?;
        if let Some(bias) = &self.bias {
            for (l, b) in lp.iter_mut().zip(bias) {
                *l -= b;
            }
        }
        let scores = softmax(&lp);
        let best = argmax(&scores);
        Ok(Verdict {
            label: self.config.labels[best].clone(),
            confidence: scores[best],
            scores,
            note: notes.join("; "),
        })
    }
}

/// Labels asked of a cloud model, one word at temperature 0.
pub struct CloudClassifier {
    backend: CloudBackend,
    config: ClassifyConfig,
    cancel: Cancel,
}

impl CloudClassifier {
    pub fn new(backend: CloudBackend, config: ClassifyConfig, cancel: Cancel) -> Result<Self, ClassifyError> {
        config.check()?;
        // One word needs no stream; ask for the alternatives too, for a real confidence
        // where the endpoint offers them (endpoints that don't, ignore the fields).
        let backend = backend.with_options(|o| {
            o.stream = false;
            o.top_logprobs = Some(5);
        });
        Ok(CloudClassifier { backend, config, cancel })
    }
}

impl Classifier for CloudClassifier {
    fn backend_label(&self) -> String {
        self.backend.label()
    }

    fn classify(&mut self, review: &str) -> Result<Verdict, String> {
        let mut notes = Vec::new();
        let mut text = clean(review, &mut notes);
        // About four characters a token: keep cloud prompts as bounded as local ones.
        let max_chars = self.config.max_review_tokens * 4;
        if text.chars().count() > max_chars {
            text = text.chars().take(max_chars).collect();
            notes.push(format!("truncated to {max_chars} characters"));
        }
        let mut req = GenRequest::new(self.config.messages(&text));
        req.sampling = SamplingParams { temperature: 0.0, ..SamplingParams::default() };
        req.max_tokens = 8;
        let answer = match self.backend.complete(req.clone(), self.cancel.clone()) {
            // Some models refuse `logprobs` (a 400 that names it): ask plainly from then on.
            Err(e) if e.contains("logprobs") => {
                self.backend = self.backend.clone().with_options(|o| o.top_logprobs = None);
                self.backend.complete(req, self.cancel.clone())?
            }
            other => other?,
        };
        // With log-probabilities (OpenAI's `logprobs`), every label gets a probability.
        if let Some(scores) = label_probabilities(&answer.first_token_logprobs, &self.config.labels) {
            let best = argmax(&scores);
            return Ok(Verdict {
                label: self.config.labels[best].clone(),
                confidence: scores[best],
                scores,
                note: notes.join("; "),
            });
        }
        let label = map_answer(&answer.text, &self.config.labels);
        let (label, confidence, scores) = match label {
            Some(i) => {
                let mut scores = vec![0.0; self.config.labels.len()];
                scores[i] = 1.0;
                (self.config.labels[i].clone(), 1.0, scores)
            }
            None => {
                notes.push(format!("answer was {:?}", answer.text.trim()));
                (UNCLEAR.to_string(), 0.0, Vec::new())
            }
        };
        Ok(Verdict { label, confidence, scores, note: notes.join("; ") })
    }
}

/// Probabilities of the labels from the first answer token's alternatives: a
/// token counts for a label when the label starts with it ("Pos" → positive);
/// a token that starts several labels ("n" → negative, neutral) counts for none.
/// None when no alternative points at any label.
pub fn label_probabilities(alternatives: &[(String, f64)], labels: &[String]) -> Option<Vec<f64>> {
    let lower: Vec<String> = labels.iter().map(|l| l.to_lowercase()).collect();
    let mut mass = vec![0.0; labels.len()];
    for (token, logprob) in alternatives {
        let t = token.trim().to_lowercase();
        if t.is_empty() {
            continue;
        }
        let hits: Vec<usize> = (0..labels.len()).filter(|&i| lower[i].starts_with(&t)).collect();
        if let [i] = hits[..] {
            mass[i] += logprob.exp();
        }
    }
    let total: f64 = mass.iter().sum();
    (total > 0.0).then(|| mass.iter().map(|m| m / total).collect())
}

/// Which label a free-text answer names: the label that appears first as a
/// whole word ("Positive sentiment" → positive); none when no label or a tie.
pub fn map_answer(answer: &str, labels: &[String]) -> Option<usize> {
    let lower = answer.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric() && c != '-' && c != '_').collect();
    let mut best: Option<(usize, usize)> = None;
    for (li, label) in labels.iter().enumerate() {
        let label = label.to_lowercase();
        let label_words: Vec<&str> = label.split_whitespace().collect();
        let at = words.windows(label_words.len().max(1)).position(|w| w == label_words.as_slice());
        if let Some(at) = at {
            match best {
                Some((b, _)) if b < at => {}
                Some((b, _)) if b == at => return None,
                _ => best = Some((at, li)),
            }
        }
    }
    best.map(|(_, li)| li)
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

pub fn softmax(v: &[f64]) -> Vec<f64> {
    let lse = log_sum_exp(v);
    v.iter().map(|x| (x - lse).exp()).collect()
}

fn argmax(v: &[f64]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

// ---- a run over a file ----

/// Which columns to read, stored with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub classify: ClassifyConfig,
    pub text_column: String,
    pub label_column: Option<String>,
    pub headers: Vec<String>,
    /// The local model's file name, for runs classified on this computer: a
    /// resumed run must use the same model, or its rows would mix two models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl RunConfig {
    /// Why this run cannot be resumed with the local model `loaded`, if it can't.
    pub fn model_mismatch(&self, run_id: i64, loaded: &str) -> Option<String> {
        let wanted = self.model.as_deref()?;
        (wanted != loaded).then(|| {
            format!(
                "Run #{run_id} was classified with {wanted}, and {loaded} is loaded now. \
                 Load {wanted} to resume it (mixing two models' answers in one run would make its counts meaningless), \
                 or start a new run."
            )
        })
    }

    /// Tie this run to the local model `loaded` before it goes on: refused,
    /// with what to do, if it was classified with another; a run that named
    /// none (started before runs recorded their model) takes `loaded` from now
    /// on, so a later resume is checked too. True when the settings changed
    /// and must be saved.
    pub fn claim_model(&mut self, run_id: i64, loaded: &str) -> Result<bool, String> {
        if let Some(why) = self.model_mismatch(run_id, loaded) {
            return Err(why);
        }
        let claimed = self.model.is_none();
        if claimed {
            self.model = Some(loaded.to_string());
        }
        Ok(claimed)
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub run_id: i64,
    pub finished: bool,
    /// Rows classified by this call (a resumed run counts only the new ones).
    pub classified_now: usize,
    pub seconds: f64,
}

/// Read rows from `table`, classify each, and keep them in `db` as run
/// `run_id`, skipping rows already there (so an interrupted run resumes).
/// Rows are saved in small transactions: a crash loses at most the last few.
#[allow(clippy::too_many_arguments)]
pub fn run_table(
    db: &mut Db,
    run_id: i64,
    table: Table,
    config: &RunConfig,
    classifier: &mut dyn Classifier,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RunOutcome, ClassifyError> {
    let result = classify_rows(db, run_id, table, config, classifier, progress, cancel);
    if result.is_err() {
        // Not left "running": the saved rows stay, and the run can be resumed.
        let _ = db.set_run_status(run_id, "failed");
    }
    result
}

fn classify_rows(
    db: &mut Db,
    run_id: i64,
    mut table: Table,
    config: &RunConfig,
    classifier: &mut dyn Classifier,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RunOutcome, ClassifyError> {
    let start = std::time::Instant::now();
    // A resumed run is moving again: other windows must not offer to resume it too.
    db.set_run_status(run_id, "running")?;
    let text_col = table.column(&config.text_column)?;
    let label_col = match &config.label_column {
        Some(c) => Some(table.column(c)?),
        None => None,
    };
    let done = db.done_rows(run_id)?;
    let position = table.position();
    progress.begin("classifying", table.size_bytes);
    let mut batch: Vec<RunRow> = Vec::new();
    let mut last_flush = std::time::Instant::now();
    let mut classified_now = 0;
    let mut finished = true;
    for row in table.by_ref() {
        if cancel.is_cancelled() {
            finished = false;
            break;
        }
        progress.set_position(position.load(std::sync::atomic::Ordering::Relaxed));
        let out = match row {
            Row::Broken { index, reason, .. } => {
                if done.contains(&(index as i64)) {
                    continue;
                }
                progress.note(&format!("skipped: {reason}"));
                RunRow {
                    row_index: index as i64,
                    fields: Vec::new(),
                    text: String::new(),
                    gold: None,
                    label: None,
                    confidence: None,
                    scores: Vec::new(),
                    note: format!("skipped: {reason}"),
                }
            }
            Row::Ok { index, fields, note } => {
                if done.contains(&(index as i64)) {
                    continue;
                }
                let text = fields.get(text_col).cloned().unwrap_or_default();
                let gold =
                    label_col.and_then(|c| fields.get(c)).map(|g| g.trim().to_string()).filter(|g| !g.is_empty());
                let mut notes: Vec<String> = vec![note].into_iter().filter(|n| !n.is_empty()).collect();
                let (label, confidence, scores) = if text.trim().is_empty() {
                    notes.push("skipped: the review is empty".into());
                    (None, None, Vec::new())
                } else {
                    match classifier.classify(&text) {
                        Ok(v) => {
                            if !v.note.is_empty() {
                                notes.push(v.note);
                            }
                            classified_now += 1;
                            (Some(v.label), Some(v.confidence), v.scores)
                        }
                        Err(e) if cancel.is_cancelled() => {
                            let _ = e;
                            finished = false;
                            break;
                        }
                        Err(e) => {
                            notes.push(format!("failed: {e}"));
                            (None, None, Vec::new())
                        }
                    }
                };
                RunRow {
                    row_index: index as i64,
                    fields,
                    text,
                    gold,
                    label,
                    confidence,
                    scores,
                    note: notes.join("; "),
                }
            }
        };
        batch.push(out);
        if batch.len() >= 64 || last_flush.elapsed().as_millis() > 500 {
            db.save_run_rows(run_id, &batch)?;
            batch.clear();
            last_flush = std::time::Instant::now();
        }
    }
    db.save_run_rows(run_id, &batch)?;
    progress.finish();
    db.set_run_status(run_id, if finished { "done" } else { "cancelled" })?;
    Ok(RunOutcome { run_id, finished, classified_now, seconds: start.elapsed().as_secs_f64() })
}

// ---- what a run found ----

/// Counts and, where rows carry labels, how well the model did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub labels: Vec<String>,
    /// Rows per label given, in label order, then "unclear" when any.
    pub counts: Vec<(String, usize)>,
    pub skipped: usize,
    pub flagged: usize,
    pub evaluation: Option<Evaluation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Rows with both a known label and a prediction.
    pub rows: usize,
    pub accuracy: f64,
    /// Per label: (label, precision, recall, support).
    pub per_label: Vec<(String, f64, f64, usize)>,
    /// `confusion[true][predicted]`, in `labels` order plus a last column for anything else.
    pub confusion: Vec<Vec<usize>>,
    /// Row indices the model got wrong.
    pub mistakes: Vec<i64>,
    /// Known labels that are not in the label set (those rows are left out).
    pub unknown_gold: usize,
}

pub fn summarize(labels: &[String], rows: &[RunRow]) -> Summary {
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    let mut unclear = 0;
    let mut skipped = 0;
    let mut flagged = 0;
    for r in rows {
        match &r.label {
            None => skipped += 1,
            Some(l) => match labels.iter().position(|k| k == l) {
                Some(i) => *counts.entry(i).or_default() += 1,
                None => unclear += 1,
            },
        }
        if r.label.is_some() && !r.note.is_empty() {
            flagged += 1;
        }
    }
    let mut out: Vec<(String, usize)> =
        labels.iter().enumerate().map(|(i, l)| (l.clone(), counts.get(&i).copied().unwrap_or(0))).collect();
    if unclear > 0 {
        out.push((UNCLEAR.to_string(), unclear));
    }
    Summary { labels: labels.to_vec(), counts: out, skipped, flagged, evaluation: evaluate(labels, rows) }
}

fn evaluate(labels: &[String], rows: &[RunRow]) -> Option<Evaluation> {
    let n = labels.len();
    let mut confusion = vec![vec![0usize; n + 1]; n];
    let mut mistakes = Vec::new();
    let mut unknown_gold = 0;
    let mut total = 0;
    for r in rows {
        let (Some(gold), Some(pred)) = (&r.gold, &r.label) else { continue };
        let Some(g) = labels.iter().position(|l| l.eq_ignore_ascii_case(gold)) else {
            unknown_gold += 1;
            continue;
        };
        let p = labels.iter().position(|l| l == pred).unwrap_or(n);
        confusion[g][p] += 1;
        total += 1;
        if g != p {
            mistakes.push(r.row_index);
        }
    }
    if total == 0 {
        return None;
    }
    let correct: usize = (0..n).map(|i| confusion[i][i]).sum();
    let per_label = (0..n)
        .map(|i| {
            let predicted: usize = (0..n).map(|g| confusion[g][i]).sum();
            let support: usize = confusion[i].iter().sum();
            let precision = if predicted > 0 { confusion[i][i] as f64 / predicted as f64 } else { 0.0 };
            let recall = if support > 0 { confusion[i][i] as f64 / support as f64 } else { 0.0 };
            (labels[i].clone(), precision, recall, support)
        })
        .collect();
    Some(Evaluation {
        rows: total,
        accuracy: correct as f64 / total as f64,
        per_label,
        confusion,
        mistakes,
        unknown_gold,
    })
}

impl Summary {
    /// "There are 3 positive and 2 negative reviews." (the course's sentence).
    pub fn sentence(&self) -> String {
        let parts: Vec<String> = self.counts.iter().map(|(l, c)| format!("{c} {l}")).collect();
        let list = match parts.len() {
            0 => "no".to_string(),
            1 => parts[0].clone(),
            n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
        };
        let total: usize = self.counts.iter().map(|(_, c)| c).sum();
        let verb = if total == 1 { "is" } else { "are" };
        let noun = if total == 1 { "review" } else { "reviews" };
        format!("There {verb} {list} {noun}.")
    }
}

/// Where two runs over the same rows agree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub rows: usize,
    pub agree: usize,
    /// (row index, text, label in run A, label in run B).
    pub differ: Vec<(i64, String, String, String)>,
}

pub fn agreement(a: &[RunRow], b: &[RunRow]) -> Agreement {
    let b_by_index: BTreeMap<i64, &RunRow> = b.iter().map(|r| (r.row_index, r)).collect();
    let mut out = Agreement { rows: 0, agree: 0, differ: Vec::new() };
    for ra in a {
        let Some(rb) = b_by_index.get(&ra.row_index) else { continue };
        let (Some(la), Some(lb)) = (&ra.label, &rb.label) else { continue };
        out.rows += 1;
        if la == lb {
            out.agree += 1;
        } else {
            out.differ.push((ra.row_index, ra.text.clone(), la.clone(), lb.clone()));
        }
    }
    out
}

/// Write a run as CSV: the original columns, then label, confidence and note.
pub fn export_csv(headers: &[String], rows: &[RunRow], out: &mut dyn std::io::Write) -> Result<(), String> {
    let mut w = csv::Writer::from_writer(out);
    let mut head: Vec<&str> = headers.iter().map(String::as_str).collect();
    head.extend(["label", "confidence", "note"]);
    w.write_record(&head).map_err(|e| e.to_string())?;
    for r in rows {
        let mut rec: Vec<String> =
            if r.fields.is_empty() { vec![String::new(); headers.len()] } else { r.fields.clone() };
        rec.resize(headers.len(), String::new());
        rec.push(r.label.clone().unwrap_or_default());
        rec.push(r.confidence.map(|c| format!("{c:.4}")).unwrap_or_default());
        rec.push(r.note.clone());
        w.write_record(&rec).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_are_deduplicated_and_one_label_is_refused() {
        let (l, rep) = parse_labels("positive, negative, Positive").unwrap();
        assert_eq!(l, labels(&["positive", "negative"]));
        assert_eq!(rep, labels(&["Positive"]));
        assert!(matches!(parse_labels("positive"), Err(ClassifyError::TooFewLabels(_))));
    }

    #[test]
    fn the_default_instruction_is_the_course_wording() {
        let i = default_instruction(&labels(&["positive", "negative"]));
        assert_eq!(
            i,
            "Classify the following review as having either a positive or negative sentiment. State your answer as a single word, either \"positive\" or \"negative\":\n\n{review}"
        );
        assert!(default_instruction(&labels(&["food", "service", "price"]))
            .contains("one of \"food\", \"service\" or \"price\""));
    }

    #[test]
    fn examples_need_an_arrow_and_a_known_label() {
        let l = labels(&["positive", "negative"]);
        let ex = parse_examples(&["Great pho! => Positive\n\nCold fries => negative".to_string()], &l).unwrap();
        assert_eq!(ex, vec![("Great pho!".into(), "positive".into()), ("Cold fries".into(), "negative".into())]);
        assert!(parse_examples(&["no arrow".to_string()], &l).is_err());
        assert!(parse_examples(&["ok => meh".to_string()], &l).is_err());
    }

    #[test]
    fn logprobs_spread_over_labels_by_prefix() {
        let l = labels(&["positive", "negative", "neutral"]);
        let alts =
            vec![("Positive".to_string(), (0.6f64).ln()), ("neg".into(), (0.2f64).ln()), ("n".into(), (0.1f64).ln())];
        let p = label_probabilities(&alts, &l).unwrap();
        assert!((p[0] - 0.75).abs() < 1e-9 && (p[1] - 0.25).abs() < 1e-9 && p[2] == 0.0, "{p:?}");
        assert_eq!(label_probabilities(&[("The".into(), -0.1)], &l), None);
    }

    #[test]
    fn answers_map_to_labels_or_to_nothing() {
        let l = labels(&["positive", "negative"]);
        assert_eq!(map_answer("Positive sentiment", &l), Some(0));
        assert_eq!(map_answer("negative.", &l), Some(1));
        assert_eq!(map_answer("I cannot tell", &l), None);
        assert_eq!(map_answer("not positive", &labels(&["not positive", "positive"])), Some(0));
    }

    fn row(i: i64, gold: &str, label: &str) -> RunRow {
        RunRow {
            row_index: i,
            fields: vec![],
            text: format!("r{i}"),
            gold: Some(gold.into()),
            label: Some(label.into()),
            confidence: Some(0.9),
            scores: vec![],
            note: String::new(),
        }
    }

    #[test]
    fn evaluation_has_the_known_confusion_matrix() {
        let l = labels(&["positive", "negative"]);
        let rows = vec![
            row(0, "positive", "positive"),
            row(1, "positive", "negative"),
            row(2, "negative", "negative"),
            row(3, "Negative", "negative"),
            row(4, "negative", "unclear"),
        ];
        let s = summarize(&l, &rows);
        let e = s.evaluation.clone().unwrap();
        assert_eq!(e.confusion, vec![vec![1, 1, 0], vec![0, 2, 1]]);
        assert_eq!(e.mistakes, vec![1, 4]);
        assert!((e.accuracy - 0.6).abs() < 1e-9);
        assert_eq!(e.per_label[0], ("positive".to_string(), 1.0, 0.5, 2));
        assert!((e.per_label[1].1 - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.sentence(), "There are 1 positive, 3 negative and 1 unclear reviews.");
    }
}
