//! Scoring one review: the local model scores every label as a continuation;
//! a cloud model is asked for one word, mapped to a label.

use super::{ClassifyConfig, ClassifyError, UNCLEAR};
use crate::engine::cloud::{CloudBackend, CloudError};
use crate::engine::local::LocalEngine;
use crate::engine::{Backend, Cancel, GenError, GenRequest, SamplingParams};

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
    fn classify(&mut self, review: &str) -> Result<Verdict, ClassifyError>;
    /// Rows worth handing over at once (a taught model embeds a batch on every core).
    fn batch_size(&self) -> usize {
        1
    }
    /// Several reviews at once, in order; by default one after another.
    fn classify_batch(&mut self, reviews: &[&str]) -> Result<Vec<Verdict>, ClassifyError> {
        reviews.iter().map(|r| self.classify(r)).collect()
    }
}

/// More bytes than any token of a text holds in practice: cutting a review to
/// this many bytes per kept token never cuts what tokenizing would keep.
const BYTES_PER_TOKEN_MAX: usize = 64;

/// The first `max` bytes of `text`, ending on a character boundary.
fn head_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
                let t = engine.tokenize(&form)?;
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
        let scores = self.engine.score(self.config.messages(review), all)?;
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

    fn classify(&mut self, review: &str) -> Result<Verdict, ClassifyError> {
        let mut notes = Vec::new();
        // Cut by bytes before tokenizing: a review of many megabytes would
        // otherwise become hundreds of megabytes of token ids, to keep 512.
        let head = head_bytes(review, self.config.max_review_tokens * BYTES_PER_TOKEN_MAX);
        let mut text = clean(head, &mut notes);
        let ids = self.engine.tokenize(&text)?;
        if ids.len() > self.config.max_review_tokens {
            text = self.engine.decode(&ids[..self.config.max_review_tokens])?;
            let max = self.config.max_review_tokens;
            notes.push(if head.len() < review.len() {
                format!("truncated to {max} tokens (the review is {} KB)", review.len().div_ceil(1024))
            } else {
                format!("truncated from {} to {max} tokens", ids.len())
            });
        }
        let mut lp = self.label_logprobs(&text)?;
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

/// A [`LocalClassifier`] built on first use: building one runs the model
/// (calibration asks it three questions), which belongs on the run's worker
/// thread, not on the thread that starts the run.
pub struct LazyLocalClassifier {
    engine: LocalEngine,
    config: ClassifyConfig,
    inner: Option<LocalClassifier>,
}

impl LazyLocalClassifier {
    pub fn new(engine: LocalEngine, config: ClassifyConfig) -> Result<Self, ClassifyError> {
        config.check()?;
        Ok(LazyLocalClassifier { engine, config, inner: None })
    }
}

impl Classifier for LazyLocalClassifier {
    fn backend_label(&self) -> String {
        self.engine.name.clone()
    }

    fn classify(&mut self, review: &str) -> Result<Verdict, ClassifyError> {
        let inner = match &mut self.inner {
            Some(inner) => inner,
            // A failed build is tried again on the next row, and each row says why it failed.
            None => self.inner.insert(LocalClassifier::new(self.engine.clone(), self.config.clone())?),
        };
        inner.classify(review)
    }
}

/// Labels asked of a cloud model, one word at temperature 0.
pub struct CloudClassifier {
    backend: CloudBackend,
    config: ClassifyConfig,
    cancel: Cancel,
    /// Tokens sent and received so far (what the reviews cost).
    pub usage: crate::engine::Usage,
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
        Ok(CloudClassifier { backend, config, cancel, usage: Default::default() })
    }
}

impl Classifier for CloudClassifier {
    fn backend_label(&self) -> String {
        self.backend.label()
    }

    fn classify(&mut self, review: &str) -> Result<Verdict, ClassifyError> {
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
            Err(GenError::Cloud(CloudError::Rejected { message, .. })) if message.contains("logprobs") => {
                self.backend = self.backend.clone().with_options(|o| o.top_logprobs = None);
                self.backend.complete(req, self.cancel.clone())?
            }
            other => other?,
        };
        self.usage.prompt_tokens += answer.usage.prompt_tokens;
        self.usage.completion_tokens += answer.usage.completion_tokens;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reviews_are_cut_by_bytes_on_a_character_boundary() {
        assert_eq!(head_bytes("short", 100), "short");
        assert_eq!(head_bytes("héllo", 2), "h", "é is two bytes and is not split");
        let huge = "é".repeat(10_000_000);
        assert_eq!(head_bytes(&huge, 512 * BYTES_PER_TOKEN_MAX).len(), 512 * BYTES_PER_TOKEN_MAX);
    }

    fn labels(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
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
}
