//! The gate between a model's proposal and an action: nothing that needs a
//! yes runs without one. The person sees exactly what will happen (the tool,
//! where it comes from, and its arguments in words) and answers Deny, Allow
//! once, or Always allow (this tool, for this chat). Closing the question
//! without answering is a no. The gate does not read the tool's description:
//! a description that says "no need to ask" changes nothing.

use super::Tool;
use crate::engine::ToolCall;
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    Deny,
    AllowOnce,
    /// This tool, for the rest of this chat.
    AlwaysForChat,
}

/// What the person is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub call: ToolCall,
    /// "duet" or the MCP server's name.
    pub source: String,
    /// What will happen, in words, with the arguments.
    pub what: String,
}

/// Something that can ask the person (a dialog, the terminal). Blocking: the
/// agent runs on a worker thread and waits for the answer.
pub trait Confirm: Send + Sync {
    fn ask(&self, proposal: &Proposal) -> Approval;
}

/// Says no to everything (no one is there to ask: `duet serve`, scripts).
pub struct NoOneToAsk;

impl Confirm for NoOneToAsk {
    fn ask(&self, _proposal: &Proposal) -> Approval {
        Approval::Deny
    }
}

/// One chat's gate: remembers "always allow" per tool for this chat only.
#[derive(Debug, Default, Clone)]
pub struct Gate {
    always: HashSet<String>,
}

/// The gate's verdict on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Runs without asking (it only computes).
    NoYesNeeded,
    /// Allowed before, for this chat.
    AllowedForChat,
    Allowed,
    Denied,
}

impl Verdict {
    pub fn may_run(self) -> bool {
        !matches!(self, Verdict::Denied)
    }
}

impl Gate {
    pub fn new() -> Self {
        Gate::default()
    }

    /// Decide whether `call` to `tool` may run, asking when it must.
    pub fn check(&mut self, tool: &dyn Tool, call: &ToolCall, confirm: &dyn Confirm) -> Verdict {
        if !tool.needs_yes() {
            return Verdict::NoYesNeeded;
        }
        if self.always.contains(&call.name) {
            return Verdict::AllowedForChat;
        }
        let proposal = Proposal { call: call.clone(), source: tool.source(), what: tool.describe(&call.arguments) };
        match confirm.ask(&proposal) {
            Approval::Deny => Verdict::Denied,
            Approval::AllowOnce => Verdict::Allowed,
            Approval::AlwaysForChat => {
                self.always.insert(call.name.clone());
                Verdict::Allowed
            }
        }
    }

    /// Forget every "always allow" (a new chat).
    pub fn reset(&mut self) {
        self.always.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::tools::actions::SaveNote;
    use crate::tasks::tools::Calculator;
    use serde_json::json;
    use std::sync::Mutex;

    /// Answers from a list and remembers what it was asked.
    struct Answers(Mutex<Vec<Approval>>, Mutex<Vec<Proposal>>);

    impl Confirm for Answers {
        fn ask(&self, p: &Proposal) -> Approval {
            self.1.lock().unwrap().push(p.clone());
            self.0.lock().unwrap().remove(0)
        }
    }

    #[test]
    fn actions_ask_every_time_unless_always_allowed_and_the_calculator_never_asks() {
        let dir = tempfile::tempdir().unwrap();
        let note = SaveNote { dir: dir.path().to_path_buf() };
        let call =
            ToolCall { id: "c".into(), name: "save_note".into(), arguments: json!({"title": "t", "text": "hello"}) };
        let person =
            Answers(Mutex::new(vec![Approval::Deny, Approval::AllowOnce, Approval::AlwaysForChat]), Mutex::default());
        let mut gate = Gate::new();
        assert_eq!(gate.check(&note, &call, &person), Verdict::Denied);
        assert_eq!(gate.check(&note, &call, &person), Verdict::Allowed);
        assert_eq!(gate.check(&note, &call, &person), Verdict::Allowed);
        assert_eq!(gate.check(&note, &call, &person), Verdict::AllowedForChat, "not asked a fourth time");
        let asked = person.1.lock().unwrap();
        assert_eq!(asked.len(), 3);
        assert!(asked[0].what.contains("hello") && asked[0].what.contains("t.md"), "{}", asked[0].what);
        let calc = ToolCall { id: "d".into(), name: "calculator".into(), arguments: json!({"expression": "1+1"}) };
        assert_eq!(gate.check(&Calculator, &calc, &NoOneToAsk), Verdict::NoYesNeeded);
        gate.reset();
        assert_eq!(gate.check(&note, &call, &NoOneToAsk), Verdict::Denied, "a new chat asks again");
    }
}
