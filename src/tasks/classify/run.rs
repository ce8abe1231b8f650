//! A run over a file: its stored settings, and classifying its rows into the
//! database so an interrupted run resumes where it stopped.

use super::{Classifier, ClassifyConfig, ClassifyError, FAILED};
use crate::db::{Db, RunRow, RunStatus};
use crate::engine::Cancel;
use crate::progress::Progress;
use crate::tasks::input::{Row, Table};
use serde::{Deserialize, Serialize};

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
    /// Where `duet classify --out` writes the labels: kept with the run, so a
    /// resumed run writes the same file without being told again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<std::path::PathBuf>,
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
        let _ = db.set_run_status(run_id, RunStatus::Failed);
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
    // Held until this function returns (or the process ends, however it ends).
    let _lock = super::RunLock::acquire(db, run_id)?;
    // A resumed run is moving again: other windows must not offer to resume it too.
    db.set_run_status(run_id, RunStatus::Running)?;
    let text_col = table.column(&config.text_column)?;
    let label_col = match &config.label_column {
        Some(c) => Some(table.column(c)?),
        None => None,
    };
    let done = db.done_rows(run_id)?;
    let position = table.position();
    progress.begin("classifying", table.size_bytes);
    let mut batch: Vec<RunRow> = Vec::new();
    // Rows read and waiting for the classifier (more than one when it works in batches).
    let mut waiting: Vec<RunRow> = Vec::new();
    let mut last_flush = std::time::Instant::now();
    let mut classified_now = 0;
    let mut failed_now = 0;
    let mut finished = true;
    for row in table.by_ref() {
        if cancel.is_cancelled() {
            finished = false;
            break;
        }
        progress.set_position(position.load(std::sync::atomic::Ordering::Relaxed));
        match row {
            Row::Broken { index, reason, .. } => {
                if done.contains(&(index as i64)) {
                    continue;
                }
                progress.note(&format!("skipped: {reason}"));
                batch.push(RunRow {
                    row_index: index as i64,
                    fields: Vec::new(),
                    text: String::new(),
                    gold: None,
                    label: None,
                    confidence: None,
                    scores: Vec::new(),
                    note: format!("skipped: {reason}"),
                });
            }
            Row::Ok { index, fields, note } => {
                if done.contains(&(index as i64)) {
                    continue;
                }
                let text = fields.get(text_col).cloned().unwrap_or_default();
                let gold =
                    label_col.and_then(|c| fields.get(c)).map(|g| g.trim().to_string()).filter(|g| !g.is_empty());
                let empty = text.trim().is_empty();
                let note = match (note.is_empty(), empty) {
                    (_, false) => note,
                    (true, true) => "skipped: the review is empty".to_string(),
                    (false, true) => format!("{note}; skipped: the review is empty"),
                };
                let row = RunRow {
                    row_index: index as i64,
                    fields,
                    text,
                    gold,
                    label: None,
                    confidence: None,
                    scores: Vec::new(),
                    note,
                };
                if empty { &mut batch } else { &mut waiting }.push(row);
            }
        }
        if waiting.len() >= classifier.batch_size().max(1) {
            if !classify_waiting(classifier, &mut waiting, cancel, &mut classified_now, &mut failed_now) {
                finished = false;
                break;
            }
            batch.append(&mut waiting);
        }
        if batch.len() >= 64 || last_flush.elapsed().as_millis() > 500 {
            db.save_run_rows(run_id, &batch)?;
            batch.clear();
            last_flush = std::time::Instant::now();
        }
    }
    // The last, partial batch.
    if finished && !waiting.is_empty() {
        finished = classify_waiting(classifier, &mut waiting, cancel, &mut classified_now, &mut failed_now);
        batch.append(&mut waiting);
    }
    db.save_run_rows(run_id, &batch)?;
    progress.finish();
    // A run with rows the backend failed on is not done: Resume tries them again.
    let status = match (finished, failed_now) {
        (false, _) => RunStatus::Cancelled,
        (true, 0) => RunStatus::Done,
        (true, _) => RunStatus::Failed,
    };
    db.set_run_status(run_id, status)?;
    Ok(RunOutcome { run_id, finished, classified_now, seconds: start.elapsed().as_secs_f64() })
}

/// Classify the rows waiting, in one batch, filling in their labels (or
/// marking them failed). False when stopped: the rows are then dropped
/// unsaved, and a resume classifies them.
fn classify_waiting(
    classifier: &mut dyn Classifier,
    waiting: &mut Vec<RunRow>,
    cancel: &Cancel,
    classified: &mut usize,
    failed: &mut usize,
) -> bool {
    let join = |a: &str, b: &str| [a, b].into_iter().filter(|n| !n.is_empty()).collect::<Vec<_>>().join("; ");
    let texts: Vec<&str> = waiting.iter().map(|r| r.text.as_str()).collect();
    match classifier.classify_batch(&texts) {
        Ok(verdicts) => {
            for (row, v) in waiting.iter_mut().zip(verdicts) {
                row.note = join(&row.note, &v.note);
                (row.label, row.confidence, row.scores) = (Some(v.label), Some(v.confidence), v.scores);
                *classified += 1;
            }
        }
        Err(_) if cancel.is_cancelled() => {
            waiting.clear();
            return false;
        }
        Err(e) => {
            for row in waiting.iter_mut() {
                // First, so the row reads as failed (and a resume tries it again).
                row.note = join(&format!("{FAILED}{e}"), &row.note);
                *failed += 1;
            }
        }
    }
    true
}

// ---- what a run found ----
