//! Tools a model may call: the calculator (it only computes, so it runs
//! at once), actions that change something outside the conversation (they
//! wait for the person's yes, see [`gate`]), and tools from MCP servers.
//!
//! A [`Toolbox`] is what one conversation offers: it lists the tools for the
//! model, says in words what a call will do, and runs it, cutting results
//! too long to hand back. It never decides whether an action may run; the
//! agent loop asks the gate first.

pub mod actions;
pub mod calc;
pub mod gate;
pub mod math;
pub mod mcp;

use crate::engine::{Cancel, ToolCall, ToolSpec};
use serde_json::{json, Value};

/// Most characters of a result handed back to the model (and shown).
pub const MAX_RESULT_CHARS: usize = 16_000;

/// One tool, from duet or from an MCP server.
pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    /// True for anything that acts on the world (writes, copies, sends): it
    /// runs only after the person says yes.
    fn needs_yes(&self) -> bool;
    /// Exactly what the call will do, in words, with its arguments.
    fn describe(&self, args: &Value) -> String;
    /// Run the call; the text goes back to the model. An `Err` is shown and
    /// also goes back (the model may try again).
    fn run(&self, args: &Value, cancel: &Cancel) -> Result<String, String>;
    /// Where the tool comes from ("duet", or an MCP server's name).
    fn source(&self) -> String {
        "duet".into()
    }
}

/// The calculator as a tool.
pub struct Calculator;

impl Tool for Calculator {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "calculator".into(),
            description: "Works out arithmetic exactly: + - * / ^, parentheses, percentages (15% of 80), big numbers, units (5 km to miles).".into(),
            parameters: json!({"type": "object",
                "properties": {"expression": {"type": "string", "description": "for example 1234 * 5678"}},
                "required": ["expression"]}),
        }
    }

    fn needs_yes(&self) -> bool {
        false
    }

    fn describe(&self, args: &Value) -> String {
        format!("work out {}", args["expression"].as_str().unwrap_or("?"))
    }

    fn run(&self, args: &Value, _cancel: &Cancel) -> Result<String, String> {
        let expression = string_arg(args, "expression")?;
        calc::evaluate(expression).map(|c| c.to_string()).map_err(|e| e.to_string())
    }
}

/// A string argument, or a message saying it is missing.
pub fn string_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, String> {
    args.get(name).and_then(Value::as_str).ok_or_else(|| format!("the call needs a text argument \"{name}\""))
}

/// What one conversation offers.
#[derive(Default)]
pub struct Toolbox {
    tools: Vec<Box<dyn Tool>>,
}

/// What came of running a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    /// What goes back to the model (and is shown).
    pub text: String,
}

impl Toolbox {
    pub fn new() -> Self {
        Toolbox::default()
    }

    /// The calculator alone (what `--tools` gives when nothing else is asked for).
    pub fn with_calculator() -> Self {
        let mut b = Toolbox::new();
        b.add(Box::new(Calculator));
        b
    }

    /// The calculator and duet's own actions: notes go to DATA/notes, the
    /// documents searched are those of Documents.
    pub fn builtin(paths: &crate::config::Paths) -> Self {
        let mut b = Toolbox::with_calculator();
        b.add(Box::new(actions::SaveNote { dir: paths.data_dir.join("notes") }));
        b.add(Box::new(actions::CopyToClipboard));
        b.add(Box::new(actions::SearchDocuments { db_path: paths.data_dir.join("duet.sqlite3") }));
        b
    }

    /// Add a tool (the first of two with one name is the one called).
    pub fn add(&mut self, tool: Box<dyn Tool>) {
        self.tools.push(tool);
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    pub fn names(&self) -> Vec<String> {
        self.tools.iter().map(|t| t.spec().name).collect()
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&dyn Tool> {
        self.tools.iter().find(|t| t.spec().name == name).map(|t| t.as_ref())
    }

    /// Run a call (the gate has already said yes where one is needed). Unknown
    /// tools and failures come back as text for the model, never as a panic.
    pub fn run(&self, call: &ToolCall, cancel: &Cancel) -> Outcome {
        let Some(tool) = self.get(&call.name) else {
            return Outcome {
                ok: false,
                text: format!("There is no tool named \"{}\". Tools: {}.", call.name, self.names().join(", ")),
            };
        };
        match tool.run(&call.arguments, cancel) {
            Ok(text) => Outcome { ok: true, text: cut(text) },
            Err(why) => Outcome { ok: false, text: cut(format!("Error: {why}")) },
        }
    }
}

/// Keep a result to [`MAX_RESULT_CHARS`], saying how much was left out.
pub fn cut(text: String) -> String {
    if text.len() <= MAX_RESULT_CHARS {
        return text;
    }
    let mut end = MAX_RESULT_CHARS;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[cut: the result was {}; only the first {} are shown]",
        &text[..end],
        crate::catalog::human_bytes(text.len() as u64),
        crate::catalog::human_bytes(end as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Value) -> ToolCall {
        ToolCall { id: "call_0".into(), name: name.into(), arguments: args }
    }

    #[test]
    fn the_calculator_runs_and_unknown_tools_are_answered_in_words() {
        let b = Toolbox::with_calculator();
        let ok = b.run(&call("calculator", json!({"expression": "1234 * 5678"})), &Cancel::new());
        assert_eq!(ok, Outcome { ok: true, text: "1234 * 5678 = 7006652".into() });
        let zero = b.run(&call("calculator", json!({"expression": "1/0"})), &Cancel::new());
        assert!(!zero.ok && zero.text.contains("division by zero"), "{zero:?}");
        let missing = b.run(&call("calculator", json!({"expr": "1"})), &Cancel::new());
        assert!(missing.text.contains("\"expression\""), "{missing:?}");
        let unknown = b.run(&call("rm_rf", json!({})), &Cancel::new());
        assert!(!unknown.ok && unknown.text.contains("no tool named \"rm_rf\"") && unknown.text.contains("calculator"));
    }

    #[test]
    fn a_ten_megabyte_result_is_cut_and_says_so() {
        let big = "é".repeat(5_000_000);
        let out = cut(big);
        assert!(out.len() < MAX_RESULT_CHARS + 200);
        assert!(out.contains("[cut: the result was 10.0 MB"), "{}", &out[out.len() - 100..]);
    }
}
