//! Starting a run and resuming one: the rules the Reviews screen and
//! `duet classify` both follow (which columns are read, which model a run is
//! tied to, when a run may be resumed), kept here so the two cannot drift.
//!
//! Nothing here classifies: a started or resumed run goes on with
//! [`run_table`](super::run_table), on whichever thread the front end picks.

use super::{ClassifyConfig, ClassifyError, RunConfig};
use crate::db::{Db, RunInfo, RunStatus};
use crate::engine::BackendSpec;
use crate::tasks::input::Table;
use std::path::{Path, PathBuf};

/// A run about to start: its rows are open and its settings settled, but
/// nothing is in the database yet, so a refusal after this leaves no empty run.
pub struct RunPlan {
    pub source: PathBuf,
    pub table: Table,
    pub config: RunConfig,
}

/// Open `source` and settle which columns are read: `text_column` when given
/// (it must exist), else the column that looks like the text; `label_column`,
/// when given, must exist. `model` is the local model's file name for a run on
/// this computer (a resumed run must use the same one).
pub fn plan_run(
    source: &Path,
    classify: ClassifyConfig,
    text_column: Option<&str>,
    label_column: Option<&str>,
    model: Option<String>,
) -> Result<RunPlan, ClassifyError> {
    classify.check()?;
    let table = Table::open(source)?;
    let text_column = match text_column {
        Some(c) => table.headers[table.column(c)?].clone(),
        None => table.headers[table.guess_text_column()].clone(),
    };
    let label_column = match label_column {
        Some(c) => Some(table.headers[table.column(c)?].clone()),
        None => None,
    };
    let config = RunConfig { classify, text_column, label_column, headers: table.headers.clone(), model, out: None };
    Ok(RunPlan { source: source.to_path_buf(), table, config })
}

/// Record the planned run as "running" and return its id.
pub fn start_run(db: &Db, plan: &RunPlan, backend: &BackendSpec) -> Result<i64, ClassifyError> {
    // The full path, so a resume from another folder finds the same file.
    let source = std::fs::canonicalize(&plan.source).unwrap_or_else(|_| plan.source.clone());
    Ok(db.create_run(&source.to_string_lossy(), backend, &config_json(&plan.config))?)
}

/// A stopped run, ready to go on from its first unsaved row.
pub struct Resumed {
    pub run_id: i64,
    pub backend: BackendSpec,
    pub table: Table,
    pub config: RunConfig,
    /// The run had already finished: going on adds nothing.
    pub was_done: bool,
}

/// Open run `run_id` to go on with it. Refused while another duet is still
/// classifying it ([`running_elsewhere`]).
pub fn resume_run(db: &Db, run_id: i64, now: i64) -> Result<Resumed, ClassifyError> {
    let info = db.run(run_id)?;
    let was_done = info.status == RunStatus::Done;
    let holder = super::holder(db, run_id);
    if !was_done && moving_elsewhere(holder, &info, now) {
        let detail = match holder {
            super::Holder::Someone => String::new(),
            _ => format!(
                " (it saved a row {} s ago; if that duet was closed, resuming works {} minutes after its last row)",
                now - info.updated_at,
                RunInfo::STALE_AFTER_S / 60
            ),
        };
        return Err(ClassifyError::StillRunning { run_id, detail });
    }
    let config: RunConfig =
        serde_json::from_str(&info.config_json).map_err(|e| ClassifyError::UnreadableRun(run_id, e.to_string()))?;
    let table = Table::open(Path::new(&info.source))?;
    Ok(Resumed { run_id, backend: info.backend, table, config, was_done })
}

/// Whether another duet is classifying the run now: it holds the run's lock,
/// or (where there is no lock to ask) it saved a row lately.
pub fn running_elsewhere(db: &Db, info: &RunInfo, now: i64) -> bool {
    moving_elsewhere(super::holder(db, info.id), info, now)
}

/// [`running_elsewhere`], with the lock already asked.
fn moving_elsewhere(holder: super::Holder, info: &RunInfo, now: i64) -> bool {
    match holder {
        super::Holder::Someone => true,
        super::Holder::Nobody => false,
        super::Holder::Unknown => info.status == RunStatus::Running && !info.is_resumable(now),
    }
}

impl Resumed {
    /// Tie a local run to the model `loaded` before it goes on (refused, with
    /// what to do, when it was classified with another); a cloud run has no model.
    pub fn claim_model(&mut self, db: &Db, loaded: &str) -> Result<(), ClassifyError> {
        if !self.backend.is_local() {
            return Ok(());
        }
        if self.config.claim_model(self.run_id, loaded).map_err(ClassifyError::OtherModel)? {
            db.set_run_config(self.run_id, &config_json(&self.config))?;
        }
        Ok(())
    }
}

fn config_json(config: &RunConfig) -> String {
    // RunConfig holds strings, numbers and lists only: it always serializes.
    serde_json::to_string(config).unwrap_or_default()
}
