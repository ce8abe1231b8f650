//! `duet bench --teach TRAIN --test TEST`: the course's "a smaller model for
//! the task" argument, measured. A model taught on TRAIN (frozen embedding
//! model, then fine-tuned) against the prompted local model and, if asked, a
//! cloud model, all on the same rows of TEST: accuracy, reviews per second,
//! dollars per 1,000 reviews.
//!
//! TEST is split by row: "tune" is the odd rows (1st, 3rd, …), "holdout" the
//! even ones. Choose settings on one, report the other; nothing of TEST is taught.

use crate::tasks::classify::Classifier;
use crate::tasks::teach::Examples;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub classifier: String,
    /// "this computer" or the host the reviews went to.
    pub place: String,
    pub accuracy: f64,
    pub rows: usize,
    pub failed: usize,
    pub reviews_per_s: f64,
    pub usd_per_1000: f64,
    /// Seconds spent teaching it, for taught models.
    pub teach_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub train: String,
    pub test: String,
    pub split: String,
    pub taught_rows: usize,
    pub rows: Vec<Row>,
}

/// Keep the rows of `split` ("tune": odd rows, "holdout": even rows, "all").
pub fn split_rows(all: &Examples, split: &str) -> Result<Examples, String> {
    let keep = |i: usize| match split {
        "tune" => i.is_multiple_of(2),
        "holdout" => i % 2 == 1,
        _ => true,
    };
    if !matches!(split, "tune" | "holdout" | "all") {
        return Err(format!("unknown split '{split}' (use tune, holdout or all)"));
    }
    let pairs: Vec<(&str, &str)> = (0..all.texts.len())
        .filter(|&i| keep(i))
        .map(|i| (all.texts[i].as_str(), all.labels[all.targets[i]].as_str()))
        .collect();
    Ok(Examples::from_pairs(pairs))
}

/// Classify every row of `test` in batches; (accuracy, rows failed, seconds).
pub fn measure(classifier: &mut dyn Classifier, test: &Examples, tick: &mut dyn FnMut(usize)) -> (f64, usize, f64) {
    let start = std::time::Instant::now();
    let (mut right, mut failed) = (0, 0);
    let batch = classifier.batch_size().max(1);
    for (b, chunk) in test.texts.chunks(batch).enumerate() {
        let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
        match classifier.classify_batch(&texts) {
            Ok(verdicts) => {
                for (k, v) in verdicts.iter().enumerate() {
                    let gold = &test.labels[test.targets[b * batch + k]];
                    right += usize::from(v.label.eq_ignore_ascii_case(gold));
                }
            }
            Err(_) => failed += chunk.len(),
        }
        tick(b * batch + chunk.len());
    }
    (right as f64 / test.texts.len().max(1) as f64, failed, start.elapsed().as_secs_f64())
}

pub fn render(r: &Report) -> String {
    let mut s = format!(
        "Taught on {} ({} rows); tested on {} ({} rows of split '{}', none of them taught)\n\n",
        r.train,
        r.taught_rows,
        r.test,
        r.rows.first().map_or(0, |row| row.rows),
        r.split
    );
    s += &format!(
        "{:<40} {:<16} {:>9} {:>11} {:>10} {:>9}\n",
        "classifier", "where", "accuracy", "reviews/s", "$/1000", "teach s"
    );
    for row in &r.rows {
        s += &format!(
            "{:<40} {:<16} {:>8.1}% {:>11.1} {:>10.4} {:>9}\n",
            row.classifier,
            row.place,
            100.0 * row.accuracy,
            row.reviews_per_s,
            row.usd_per_1000,
            row.teach_s.map(|t| format!("{t:.1}")).unwrap_or_else(|| "-".into())
        );
        if row.failed > 0 {
            s += &format!("    ({} rows failed and count as wrong)\n", row.failed);
        }
    }
    s
}
