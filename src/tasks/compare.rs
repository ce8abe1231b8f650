//! One prompt, several backends at once: the answers stream side by side and
//! each column gets its own time to first token, speed, tokens, cost and where
//! the data went. Each backend runs on its own thread, so a slow local model
//! never holds up a cloud answer (or the other way round).
//!
//! The user's verdicts become preference pairs (`{"prompt","chosen","rejected"}`),
//! the format RLHF/DPO training reads.

use super::answer::AnswerStats;
pub use super::answer::Contender;
use crate::db::{Db, JudgedComparison};
use crate::engine::{BackendSpec, Cancel, Completion, Event, GenError, GenRequest};
use crate::progress::Wake;
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::time::Instant;

/// One column of a comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub spec: BackendSpec,
    /// Which model ("SmolLM2-135M-Instruct.Q4_1.gguf", "gpt-4o-mini · api.openai.com").
    pub label: String,
    pub text: String,
    pub error: Option<String>,
    pub done: bool,
    /// Speed, tokens, cost and where the data went (flattened: stored columns keep their shape).
    #[serde(flatten)]
    pub stats: AnswerStats,
}

impl Column {
    /// "free — stayed on this computer" / "$0.00012 — sent to api.openai.com".
    pub fn cost_text(&self) -> String {
        format!("{} — {}", self.stats.cost_short(), self.stats.location_text())
    }
}

/// What arrives while a comparison runs: (column, update).
pub enum Update {
    Delta(usize, String),
    Done(usize, Completion),
    Error(usize, GenError),
}

/// A comparison in progress: columns fill as updates arrive.
pub struct Comparison {
    pub prompt: String,
    pub system_prompt: String,
    pub columns: Vec<Column>,
    started: Instant,
    first_delta: Vec<Option<f64>>,
    prices: Vec<Option<(f64, f64)>>,
    rx: mpsc::Receiver<Update>,
    pub cancel: Cancel,
}

impl Comparison {
    /// Send `req` to every contender at once.
    pub fn start(contenders: Vec<Contender>, prompt: &str, system_prompt: &str, req: GenRequest) -> Comparison {
        Self::start_waking(contenders, prompt, system_prompt, req, Wake::default())
    }

    /// [`start`](Self::start), calling `wake` after every piece of every answer.
    pub fn start_waking(
        contenders: Vec<Contender>,
        prompt: &str,
        system_prompt: &str,
        req: GenRequest,
        wake: Wake,
    ) -> Comparison {
        let (tx, rx) = mpsc::channel();
        let cancel = Cancel::new();
        let mut columns = Vec::new();
        let mut prices = Vec::new();
        for (i, c) in contenders.into_iter().enumerate() {
            let stats = AnswerStats { location: c.backend.data_location(), ..AnswerStats::default() };
            columns.push(Column { spec: c.spec.clone(), label: c.backend.label(), stats, ..Column::default() });
            prices.push(c.prices);
            let (out, req, cancel, wake) = (tx.clone(), req.clone(), cancel.clone(), wake.clone());
            let spawned = std::thread::Builder::new().name(format!("duet-compare-{i}")).spawn(move || {
                for event in c.backend.generate(req, cancel) {
                    let update = match event {
                        Event::Delta(t) => Update::Delta(i, t),
                        Event::Done(done) => Update::Done(i, done),
                        Event::Error(e) => Update::Error(i, e),
                    };
                    if out.send(update).is_err() {
                        return;
                    }
                    wake.wake();
                }
            });
            if spawned.is_err() {
                let _ = tx.send(Update::Error(i, GenError::NoAnswer));
            }
        }
        let n = columns.len();
        Comparison {
            prompt: prompt.to_string(),
            system_prompt: system_prompt.to_string(),
            columns,
            started: Instant::now(),
            first_delta: vec![None; n],
            prices,
            rx,
            cancel,
        }
    }

    pub fn finished(&self) -> bool {
        self.columns.iter().all(|c| c.done)
    }

    /// Take in what arrived; returns true when something changed.
    pub fn poll(&mut self) -> bool {
        let mut changed = false;
        loop {
            match self.rx.try_recv() {
                Ok(u) => self.apply(u),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.give_up();
                    break;
                }
            }
            changed = true;
        }
        changed
    }

    /// Wait for every column (CLI and tests).
    pub fn wait(&mut self) {
        while !self.finished() {
            match self.rx.recv() {
                Ok(u) => self.apply(u),
                Err(_) => self.give_up(),
            }
        }
    }

    /// Every backend thread is gone: columns still waiting never get an answer.
    fn give_up(&mut self) {
        for c in self.columns.iter_mut().filter(|c| !c.done) {
            c.error = Some(GenError::NoAnswer.to_string());
            c.done = true;
        }
    }

    fn apply(&mut self, u: Update) {
        let now_ms = self.started.elapsed().as_secs_f64() * 1e3;
        match u {
            Update::Delta(i, t) => {
                if self.first_delta[i].is_none() {
                    self.first_delta[i] = Some(now_ms);
                }
                self.columns[i].text.push_str(&t);
            }
            Update::Done(i, done) => {
                let col = &mut self.columns[i];
                // Time to first token as this user saw it (network included).
                let ttft = self.first_delta[i].unwrap_or(now_ms);
                let location = std::mem::take(&mut col.stats.location);
                col.stats = AnswerStats::measure(&done, location, ttft, now_ms, self.prices[i]);
                col.done = true;
                col.text = done.text;
            }
            Update::Error(i, e) => {
                let col = &mut self.columns[i];
                // A request that never got out did not send the prompt anywhere.
                col.stats.nothing_sent = matches!(&e, GenError::Cloud(c) if c.nothing_sent());
                col.error = Some(e.to_string());
                col.done = true;
                col.stats.total_ms = now_ms;
            }
        }
    }

    /// Keep the finished comparison; returns its id for the verdict.
    pub fn save(&self, db: &Db) -> Result<i64, crate::db::DbError> {
        db.save_comparison(&self.prompt, &self.system_prompt, &serde_json::to_string(&self.columns).unwrap_or_default())
    }
}

/// The user's judgement of columns a and b.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    A,
    B,
    Tie,
    BothBad,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::A => "a",
            Verdict::B => "b",
            Verdict::Tie => "tie",
            Verdict::BothBad => "both_bad",
        }
    }
}

/// Wins per backend pair, from every verdict so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub a: String,
    pub b: String,
    pub a_wins: usize,
    pub b_wins: usize,
    pub ties: usize,
    pub both_bad: usize,
}

fn columns_of(j: &JudgedComparison) -> Vec<Column> {
    serde_json::from_str(&j.results_json).unwrap_or_default()
}

pub fn tallies(db: &Db) -> Result<Vec<Tally>, crate::db::DbError> {
    let mut out: Vec<Tally> = Vec::new();
    for j in db.judged_comparisons()? {
        let cols = columns_of(&j);
        let (Some(a), Some(b)) = (cols.get(j.a_index as usize), cols.get(j.b_index as usize)) else { continue };
        // One tally per unordered pair, named in a stable order.
        let (first, second, swapped) = if a.label <= b.label { (a, b, false) } else { (b, a, true) };
        let t = match out.iter_mut().position(|t| t.a == first.label && t.b == second.label) {
            Some(i) => &mut out[i],
            None => {
                out.push(Tally { a: first.label.clone(), b: second.label.clone(), ..Tally::default() });
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        match (j.verdict.as_str(), swapped) {
            ("a", false) | ("b", true) => t.a_wins += 1,
            ("a", true) | ("b", false) => t.b_wins += 1,
            ("tie", _) => t.ties += 1,
            _ => t.both_bad += 1,
        }
    }
    Ok(out)
}

/// Every verdict with a winner as a preference pair, one JSON object per line.
pub fn preference_pairs_jsonl(db: &Db) -> Result<String, crate::db::DbError> {
    let mut out = String::new();
    for j in db.judged_comparisons()? {
        let cols = columns_of(&j);
        let (Some(a), Some(b)) = (cols.get(j.a_index as usize), cols.get(j.b_index as usize)) else { continue };
        if a.error.is_some() || b.error.is_some() {
            continue;
        }
        let (chosen, rejected) = match j.verdict.as_str() {
            "a" => (a, b),
            "b" => (b, a),
            _ => continue,
        };
        let mut line = serde_json::json!({"prompt": j.prompt, "chosen": chosen.text, "rejected": rejected.text});
        if !j.system_prompt.is_empty() {
            line["system"] = serde_json::Value::String(j.system_prompt.clone());
        }
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Ok(out)
}

/// Averages per backend over saved comparisons, for the cost calculator.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Measured {
    pub label: String,
    pub location: crate::engine::DataLocation,
    pub runs: usize,
    pub prompt_tokens: f64,
    pub completion_tokens: f64,
    pub seconds: f64,
    /// Dollars per request (0 for local).
    pub cost_usd: f64,
}

pub fn measured(db: &Db) -> Result<Vec<Measured>, crate::db::DbError> {
    let mut out: Vec<Measured> = Vec::new();
    for json in db.comparison_results()? {
        let cols: Vec<Column> = serde_json::from_str(&json).unwrap_or_default();
        for c in cols.iter().filter(|c| c.error.is_none() && c.done) {
            let m = match out.iter_mut().position(|m| m.label == c.label) {
                Some(i) => &mut out[i],
                None => {
                    out.push(Measured {
                        label: c.label.clone(),
                        location: c.stats.location.clone(),
                        ..Measured::default()
                    });
                    let last = out.len() - 1;
                    &mut out[last]
                }
            };
            let n = m.runs as f64;
            let avg = |old: f64, new: f64| (old * n + new) / (n + 1.0);
            m.prompt_tokens = avg(m.prompt_tokens, c.stats.prompt_tokens as f64);
            m.completion_tokens = avg(m.completion_tokens, c.stats.completion_tokens as f64);
            m.seconds = avg(m.seconds, c.stats.total_ms / 1e3);
            m.cost_usd = avg(m.cost_usd, c.stats.cost_usd.unwrap_or(0.0));
            m.runs += 1;
        }
    }
    Ok(out)
}

/// Cost and time of `requests` requests per day with `backend`'s measured averages.
pub fn project(m: &Measured, requests_per_day: f64) -> (f64, f64, f64) {
    let per_day = m.cost_usd * requests_per_day;
    let hours_per_day = m.seconds * requests_per_day / 3600.0;
    (per_day, per_day * 30.0, hours_per_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_become_pairs_and_tallies() {
        let db = Db::in_memory().unwrap();
        let cols = vec![
            Column { label: "local".into(), text: "Paris.".into(), done: true, ..Column::default() },
            Column { label: "cloud".into(), text: "Lyon.".into(), done: true, ..Column::default() },
        ];
        let json = serde_json::to_string(&cols).unwrap();
        let c1 = db.save_comparison("Capital of France?", "", &json).unwrap();
        let c2 = db.save_comparison("Again?", "Be brief.", &json).unwrap();
        let c3 = db.save_comparison("Tie?", "", &json).unwrap();
        db.save_verdict(c1, 0, 1, Verdict::A.as_str()).unwrap();
        db.save_verdict(c2, 0, 1, Verdict::B.as_str()).unwrap();
        db.save_verdict(c3, 0, 1, Verdict::Tie.as_str()).unwrap();
        let jsonl = preference_pairs_jsonl(&db).unwrap();
        let lines: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "a tie is not a preference");
        assert_eq!(lines[0]["chosen"], "Paris.");
        assert_eq!(lines[0]["rejected"], "Lyon.");
        assert_eq!(lines[1]["chosen"], "Lyon.");
        assert_eq!(lines[1]["system"], "Be brief.");
        let t = tallies(&db).unwrap();
        assert_eq!(t, vec![Tally { a: "cloud".into(), b: "local".into(), a_wins: 1, b_wins: 1, ties: 1, both_bad: 0 }]);
    }
}
