//! What a run found: counts, and where rows carry the right answer, accuracy,
//! per-label precision and recall, the confusion matrix and the mistakes.

use super::UNCLEAR;
use crate::db::RunRow;
use serde::Serialize;
use std::collections::BTreeMap;

/// Counts and, where rows carry labels, how well the model did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub labels: Vec<String>,
    /// Rows per label given, in label order, then "unclear" when any.
    pub counts: Vec<(String, usize)>,
    pub skipped: usize,
    /// Of the skipped rows, those the backend failed on (a rejected key, a
    /// lost connection); resuming the run tries them again.
    pub failed: usize,
    /// Why the first of them failed.
    pub failure: Option<String>,
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
    let (mut failed, mut failure) = (0, None);
    for r in rows {
        match &r.label {
            None => {
                skipped += 1;
                if let Some(why) = r.note.strip_prefix(FAILED) {
                    failed += 1;
                    failure.get_or_insert_with(|| why.to_string());
                }
            }
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
    Summary {
        labels: labels.to_vec(),
        counts: out,
        skipped,
        failed,
        failure,
        flagged,
        evaluation: evaluate(labels, rows),
    }
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

/// How a row the backend failed on is noted (`run_rows` keeps the reason after it).
pub const FAILED: &str = "failed: ";

impl Summary {
    /// "2 of 5 rows could not be classified: REASON", when any could not.
    pub fn failure_sentence(&self, rows: usize) -> Option<String> {
        let why = self.failure.as_deref()?;
        Some(format!("{} of {rows} rows could not be classified: {why}", self.failed))
    }

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
pub fn export_csv(headers: &[String], rows: &[RunRow], out: &mut dyn std::io::Write) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    let mut head: Vec<&str> = headers.iter().map(String::as_str).collect();
    head.extend(["label", "confidence", "note"]);
    w.write_record(&head)?;
    for r in rows {
        let mut rec: Vec<String> =
            if r.fields.is_empty() { vec![String::new(); headers.len()] } else { r.fields.clone() };
        rec.resize(headers.len(), String::new());
        rec.push(r.label.clone().unwrap_or_default());
        rec.push(r.confidence.map(|c| format!("{c:.4}")).unwrap_or_default());
        rec.push(r.note.clone());
        w.write_record(&rec)?;
    }
    Ok(w.flush()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
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
