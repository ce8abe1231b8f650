//! `duet bench --arithmetic FILE`: how often a backend gets arithmetic
//! exactly right, without tools and with them (the calculator, math help).
//!
//! A question is right when its expected number appears in the answer (commas
//! in numbers are ignored; "17,520" is 17520). The file is JSONL with
//! `question`, `answer` and `split` (tune or holdout): tune on one split,
//! report the other.

use crate::engine::{Backend, Cancel, GenRequest, Message, SamplingParams};
use crate::tasks::agent::{Agent, Step};
use crate::tasks::tools::gate::{Gate, NoOneToAsk};
use crate::tasks::tools::math::states;
use crate::tasks::tools::Toolbox;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
pub struct Question {
    pub question: String,
    pub answer: String,
    #[serde(default)]
    pub split: String,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub question: String,
    pub expected: String,
    pub without_tools: String,
    pub with_tools: String,
    pub right_without: bool,
    pub right_with: bool,
    /// Math help found the arithmetic (and what it worked out).
    pub found: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub backend: String,
    pub split: String,
    pub questions: usize,
    pub right_without_tools: usize,
    pub right_with_tools: usize,
    /// Questions where math help found the arithmetic.
    pub found_by_math_help: usize,
    pub rows: Vec<Row>,
}

impl super::InSplit for Question {
    fn split(&self) -> &str {
        &self.split
    }
}

pub fn run(backend: &dyn Backend, questions: &[Question], split: &str, on: &mut dyn FnMut(usize)) -> Report {
    let toolbox = Toolbox::with_calculator();
    let agent = Agent::new(backend, &toolbox, &NoOneToAsk);
    let mut rows = Vec::with_capacity(questions.len());
    for (i, q) in questions.iter().enumerate() {
        on(i);
        let mut req = GenRequest::new(vec![Message::user(&q.question)]);
        req.sampling = SamplingParams { temperature: 0.0, ..SamplingParams::default() };
        req.max_tokens = 160;
        let without =
            backend.complete(req.clone(), Cancel::new()).map(|c| c.text).unwrap_or_else(|e| format!("(error: {e})"));
        let run = agent.run(&mut Gate::new(), req, &Cancel::new(), &mut |_| {});
        let (with, found) = match run {
            Ok(r) => {
                let found = r.steps.iter().find_map(|s| match s {
                    Step::Result { outcome, .. } => Some(outcome.text.clone()),
                    _ => None,
                });
                (r.answer.text, found)
            }
            Err(e) => (format!("(error: {e})"), None),
        };
        rows.push(Row {
            right_without: states(&without, &q.answer),
            right_with: states(&with, &q.answer),
            question: q.question.clone(),
            expected: q.answer.clone(),
            without_tools: without,
            with_tools: with,
            found,
        });
    }
    Report {
        backend: backend.label(),
        split: split.to_string(),
        questions: rows.len(),
        right_without_tools: rows.iter().filter(|r| r.right_without).count(),
        right_with_tools: rows.iter().filter(|r| r.right_with).count(),
        found_by_math_help: rows.iter().filter(|r| r.found.is_some()).count(),
        rows,
    }
}

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    for row in &r.rows {
        let mark = |ok: bool| if ok { "✓" } else { "✗" };
        s.push_str(&format!(
            "{} {}  {}\n    expected {}; with tools: {}\n",
            mark(row.right_without),
            mark(row.right_with),
            row.question,
            row.expected,
            row.with_tools.replace('\n', " ").chars().take(120).collect::<String>()
        ));
    }
    s.push_str(&format!(
        "\n{} · {} split · {} questions\nexact without tools: {}/{}\nexact with tools:    {}/{} (math help found the arithmetic in {})\n",
        r.backend, r.split, r.questions, r.right_without_tools, r.questions, r.right_with_tools, r.questions, r.found_by_math_help
    ));
    s
}
