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

mod eval;
mod lock;
mod run;
mod scoring;
mod start;

pub use eval::{agreement, export_csv, summarize, Agreement, Evaluation, Summary, FAILED};
pub use lock::{holder, Holder, RunLock};
pub use run::{run_table, RunConfig, RunOutcome};
pub use scoring::{
    label_probabilities, map_answer, softmax, Classifier, CloudClassifier, LazyLocalClassifier, LocalClassifier,
    Verdict,
};
pub use start::{plan_run, resume_run, running_elsewhere, start_run, Resumed, RunPlan};

use crate::engine::Message;
use serde::{Deserialize, Serialize};

/// What a cloud answer that names no label counts as.
pub const UNCLEAR: &str = "unclear";

/// duet's hand-written evaluation set: 240 short restaurant reviews, half
/// positive, half negative (see assets/data/README.md).
pub const EVAL_CSV: &str = include_str!("../../../assets/data/restaurant-reviews-eval.csv");

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
    /// `detail` says how duet knows, when it is only a guess from the last save time.
    #[error("run {run_id} is still being classified by another duet{detail}. Stop it there, then resume.")]
    StillRunning { run_id: i64, detail: String },
    #[error("run {0}'s settings are unreadable ({1}); start a new run")]
    UnreadableRun(i64, String),
    /// The run was classified with another local model (the text says which, and what to do).
    #[error("{0}")]
    OtherModel(String),
    #[error(transparent)]
    Engine(#[from] crate::engine::local::EngineError),
    #[error(transparent)]
    Gen(#[from] crate::engine::GenError),
    /// A taught model could not classify (its embedding failed).
    #[error("the taught model failed: {0}")]
    Taught(String),
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
            messages.push(Message::user(&self.prompt(text)));
            messages.push(Message::assistant(label));
        }
        messages.push(Message::user(&self.prompt(review)));
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
}
