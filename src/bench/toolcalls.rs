//! `duet bench --tool-calls FILE`: the local model asked for a tool call
//! under constrained decoding. How many calls are valid (parse, name an
//! offered tool, arguments fit its schema), how often the right tool is
//! picked, and what the constraint costs per generated token.
//!
//! The file is JSONL with `prompt`, `tool` (the right one) and `split`.

use crate::engine::local::LocalEngine;
use crate::engine::{Cancel, Constraint, GenRequest, Message, SamplingParams, ToolCall, ToolSpec};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
pub struct Prompt {
    pub prompt: String,
    pub tool: String,
    #[serde(default)]
    pub split: String,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub prompt: String,
    pub expected: String,
    pub call: Option<String>,
    pub valid: bool,
    pub right_tool: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub split: String,
    pub prompts: usize,
    pub valid: usize,
    pub right_tool: usize,
    /// Decode time per token with the constraint and without it (same prompts).
    pub constrained_ms_per_token: f64,
    pub free_ms_per_token: f64,
    pub rows: Vec<Row>,
}

impl super::InSplit for Prompt {
    fn split(&self) -> &str {
        &self.split
    }
}

/// A call is valid when it names an offered tool and has every required
/// argument, each of the declared type (the tools here take strings).
pub fn valid(call: &ToolCall, tools: &[ToolSpec]) -> bool {
    let Some(spec) = tools.iter().find(|t| t.name == call.name) else { return false };
    let required = spec.parameters["required"].as_array().cloned().unwrap_or_default();
    let known = spec.parameters["properties"].as_object().cloned().unwrap_or_default();
    let args = call.arguments.as_object().cloned().unwrap_or_default();
    required.iter().all(|k| k.as_str().is_some_and(|k| args.get(k).is_some_and(|v| v.is_string())))
        && args.keys().all(|k| known.contains_key(k))
}

pub fn run(
    engine: &LocalEngine,
    tools: &[ToolSpec],
    prompts: &[Prompt],
    split: &str,
    on: &mut dyn FnMut(usize),
) -> Result<Report, String> {
    let mut rows = Vec::with_capacity(prompts.len());
    let (mut c_ms, mut c_tokens, mut f_ms, mut f_tokens) = (0.0, 0usize, 0.0, 0usize);
    for (i, p) in prompts.iter().enumerate() {
        on(i);
        let mut req = GenRequest::new(vec![Message::user(&p.prompt)]);
        req.sampling = SamplingParams { temperature: 0.0, ..SamplingParams::default() };
        req.max_tokens = 256;
        req.tools = tools.to_vec();
        let mut constrained = req.clone();
        constrained.constraint = Some(Constraint::ToolCall);
        let c = engine.complete(constrained, Cancel::new()).map_err(|e| e.to_string())?;
        // The same number of tokens, free: what the mask costs per token.
        let mut free = req;
        free.max_tokens = c.usage.completion_tokens.max(2);
        let f = engine.complete(free, Cancel::new()).map_err(|e| e.to_string())?;
        c_ms += c.timings.decode_ms;
        c_tokens += c.usage.completion_tokens.saturating_sub(1);
        f_ms += f.timings.decode_ms;
        f_tokens += f.usage.completion_tokens.saturating_sub(1);
        let call = (c.tool_calls.len() == 1 && c.broken_calls.is_empty()).then(|| &c.tool_calls[0]);
        rows.push(Row {
            prompt: p.prompt.clone(),
            expected: p.tool.clone(),
            call: call.map(|c| format!("{} {}", c.name, c.arguments)).or_else(|| {
                c.broken_calls
                    .first()
                    .map(|b| format!("broken ({}): {}", b.why, b.text.chars().take(200).collect::<String>()))
            }),
            valid: call.is_some_and(|c| valid(c, tools)),
            right_tool: call.is_some_and(|c| c.name == p.tool),
        });
    }
    Ok(Report {
        model: engine.name.clone(),
        split: split.to_string(),
        prompts: rows.len(),
        valid: rows.iter().filter(|r| r.valid).count(),
        right_tool: rows.iter().filter(|r| r.right_tool).count(),
        constrained_ms_per_token: c_ms / c_tokens.max(1) as f64,
        free_ms_per_token: f_ms / f_tokens.max(1) as f64,
        rows,
    })
}

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    for row in &r.rows {
        s.push_str(&format!(
            "{} {}  {}\n    {}\n",
            if row.valid { "✓" } else { "✗" },
            if row.right_tool { "✓" } else { "✗" },
            row.prompt,
            row.call.as_deref().unwrap_or("(no call)")
        ));
    }
    let overhead = (r.constrained_ms_per_token / r.free_ms_per_token.max(1e-9) - 1.0) * 100.0;
    s.push_str(&format!(
        "\n{} · {} split · {} prompts\nvalid calls: {}/{}\nright tool:  {}/{}\ndecode: {:.2} ms/token constrained, {:.2} free ({overhead:+.1} %)\n",
        r.model, r.split, r.prompts, r.valid, r.prompts, r.right_tool, r.prompts, r.constrained_ms_per_token, r.free_ms_per_token
    ));
    s
}
