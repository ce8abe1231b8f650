//! How a model is offered tools and how its calls are read back, whichever
//! backend runs it.
//!
//! Cloud models use OpenAI's `tools` / `tool_calls` wire format. Local models
//! use their chat template's own tool format when it declares one (Qwen 2.5,
//! Hermes and Llama 3.x templates read a `tools` variable); otherwise duet
//! writes its convention into the system prompt: a call is one JSON object
//! `{"name": ..., "arguments": {...}}` between `<tool_call>` and `</tool_call>`,
//! the same markers Qwen and Hermes use, so one reader serves both.
//!
//! Reading never drops anything: text outside the markers is the reply's text,
//! a call that parses is a [`ToolCall`], and one that does not is a
//! [`BrokenCall`] kept with its raw text so it can be shown (never run).

use super::{Message, Role};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const CALL_OPEN: &str = "<tool_call>";
pub const CALL_CLOSE: &str = "</tool_call>";

/// A tool offered to the model: its name, what it does, and a JSON schema of its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

impl ToolSpec {
    /// OpenAI's shape: `{"type": "function", "function": {name, description, parameters}}`.
    pub fn wire(&self) -> Value {
        json!({ "type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters } })
    }

    /// Read OpenAI's shape (or a bare `{name, description, parameters}`).
    pub fn from_wire(v: &Value) -> Option<ToolSpec> {
        let f = if v.get("function").is_some() { &v["function"] } else { v };
        Some(ToolSpec {
            name: f["name"].as_str().filter(|n| !n.trim().is_empty())?.to_string(),
            description: f["description"].as_str().unwrap_or("").to_string(),
            parameters: if f["parameters"].is_object() {
                f["parameters"].clone()
            } else {
                json!({"type": "object", "properties": {}})
            },
        })
    }
}

/// A call the model made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// Unique within the conversation (`call_1`…, or the provider's id).
    pub id: String,
    pub name: String,
    /// A JSON object.
    pub arguments: Value,
}

impl ToolCall {
    /// OpenAI's wire shape: arguments travel as a JSON string.
    pub fn wire(&self) -> Value {
        json!({ "id": self.id, "type": "function",
                "function": { "name": self.name, "arguments": self.arguments.to_string() } })
    }

    /// Read OpenAI's wire shape (arguments as a string or an object).
    pub fn from_wire(v: &Value) -> Result<ToolCall, BrokenCall> {
        let f = &v["function"];
        let broken = |why: &str| BrokenCall { text: v.to_string(), why: why.to_string() };
        let name = f["name"].as_str().filter(|n| !n.is_empty()).ok_or_else(|| broken("the call has no tool name"))?;
        let arguments = match &f["arguments"] {
            Value::String(s) if s.trim().is_empty() => json!({}),
            Value::String(s) => {
                serde_json::from_str::<Value>(s).map_err(|e| broken(&format!("its arguments are not JSON ({e})")))?
            }
            Value::Null => json!({}),
            other => other.clone(),
        };
        if !arguments.is_object() {
            return Err(broken("its arguments are not a JSON object"));
        }
        Ok(ToolCall { id: v["id"].as_str().unwrap_or("call_0").to_string(), name: name.to_string(), arguments })
    }

    /// The call as the model writes it in duet's convention.
    pub fn as_text(&self) -> String {
        format!("{CALL_OPEN}\n{}\n{CALL_CLOSE}", json!({"name": self.name, "arguments": self.arguments}))
    }
}

/// Templates read `tool_call.function.name` and `tool_call.function.arguments`
/// (an object, as Hugging Face passes it), so that is how a call serializes.
impl Serialize for ToolCall {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        json!({ "id": self.id, "type": "function",
                "function": { "name": self.name, "arguments": self.arguments } })
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ToolCall {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        ToolCall::from_wire(&v).map_err(|b| serde::de::Error::custom(b.why))
    }
}

/// A call that could not be read: shown to the person, never run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenCall {
    /// What the model wrote.
    pub text: String,
    /// Why it is not a call, in words.
    pub why: String,
}

/// A reply split into its text and its calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedReply {
    pub text: String,
    pub calls: Vec<ToolCall>,
    pub broken: Vec<BrokenCall>,
}

/// Split a local model's reply into text and calls. Calls are numbered from
/// `first_id` (`call_<n>`), so ids stay unique across a conversation's turns.
pub fn parse_reply(reply: &str, first_id: usize) -> ParsedReply {
    let mut out = ParsedReply::default();
    let mut rest = reply;
    while let Some(start) = rest.find(CALL_OPEN) {
        out.text.push_str(&rest[..start]);
        let after = &rest[start + CALL_OPEN.len()..];
        let (inner, next) = match after.find(CALL_CLOSE) {
            Some(end) => (&after[..end], &after[end + CALL_CLOSE.len()..]),
            None => (after, ""),
        };
        match read_call(inner, first_id + out.calls.len()) {
            Ok(call) => out.calls.push(call),
            Err(why) => out.broken.push(BrokenCall { text: format!("{CALL_OPEN}{inner}"), why }),
        }
        rest = next;
    }
    out.text.push_str(rest);
    // Without markers, a reply that is nothing but a call object is a call too
    // (small models often drop the markers; llama.cpp's generic format has none).
    if out.calls.is_empty() && out.broken.is_empty() {
        if let Some(call) = bare_call(&out.text, first_id) {
            out.text.clear();
            out.calls.push(call);
        }
    }
    out.text = out.text.trim().to_string();
    out
}

/// One call's JSON, between the markers.
fn read_call(inner: &str, n: usize) -> Result<ToolCall, String> {
    let body = strip_fence(inner.trim());
    if body.is_empty() {
        return Err("the call is empty".into());
    }
    let v: Value = serde_json::from_str(body).map_err(|e| format!("the call is not valid JSON ({e})"))?;
    call_from_object(&v, n)
}

fn call_from_object(v: &Value, n: usize) -> Result<ToolCall, String> {
    let v = if v.get("tool_call").is_some_and(Value::is_object) { &v["tool_call"] } else { v };
    let v = if v.get("function").is_some_and(Value::is_object) { &v["function"] } else { v };
    let Some(obj) = v.as_object() else { return Err("the call is not a JSON object".into()) };
    let name = obj.get("name").and_then(Value::as_str).map(str::trim).unwrap_or("");
    if name.is_empty() {
        return Err("the call does not say which tool (no \"name\")".into());
    }
    let arguments = match obj.get("arguments").or_else(|| obj.get("parameters")) {
        None | Some(Value::Null) => json!({}),
        // Some models write the arguments as a JSON string, as the wire does.
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|_| "its arguments are not a JSON object".to_string())?
        }
        Some(a) => a.clone(),
    };
    if !arguments.is_object() {
        return Err("its arguments are not a JSON object".into());
    }
    Ok(ToolCall { id: format!("call_{n}"), name: name.to_string(), arguments })
}

fn bare_call(text: &str, n: usize) -> Option<ToolCall> {
    let body = strip_fence(text.trim());
    if !body.starts_with('{') {
        return None;
    }
    let v: Value = serde_json::from_str(body).ok()?;
    let has_name = v.get("name").is_some() || v.get("tool_call").is_some();
    if !has_name || (v.get("arguments").is_none() && v.get("parameters").is_none() && v.get("tool_call").is_none()) {
        return None;
    }
    call_from_object(&v, n).ok()
}

/// Models like to wrap JSON in a Markdown code fence.
fn strip_fence(s: &str) -> &str {
    let Some(inner) = s.strip_prefix("```") else { return s };
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

/// The system-prompt text that teaches duet's convention to a model whose
/// template has no tool format.
pub fn convention_prompt(tools: &[ToolSpec]) -> String {
    let mut s = String::from(
        "You can call tools. To call one, reply with only this, and nothing after it:\n\
         <tool_call>\n{\"name\": \"TOOL_NAME\", \"arguments\": {ARGUMENTS}}\n</tool_call>\n\
         A tool's result comes back in the next message; then answer the question with it. \
         If no tool is needed, answer directly.\nTools:\n",
    );
    for t in tools {
        s.push_str(&format!("- {}: {} Arguments: {}\n", t.name, t.description.trim(), t.parameters));
    }
    s
}

/// Messages for a template that cannot show tools: the convention joins the
/// system prompt, earlier calls are written out as text, and results become
/// user turns that say which tool answered (plain templates have no tool role).
pub fn for_plain_template(messages: &[Message], tools: &[ToolSpec]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len() + 1);
    let convention = convention_prompt(tools);
    match messages.first() {
        Some(m) if m.role == Role::System => out.push(Message::system(&format!("{}\n\n{convention}", m.content))),
        _ => out.push(Message::system(&convention)),
    }
    let mut names: Vec<(String, String)> = Vec::new();
    for m in messages.iter().skip(usize::from(messages.first().is_some_and(|m| m.role == Role::System))) {
        match m.role {
            Role::Assistant if !m.tool_calls.is_empty() => {
                let mut text = m.content.trim().to_string();
                for c in &m.tool_calls {
                    names.push((c.id.clone(), c.name.clone()));
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&c.as_text());
                }
                out.push(Message::assistant(&text));
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or("");
                let name = names.iter().find(|(i, _)| i == id).map(|(_, n)| n.as_str()).unwrap_or("the tool");
                let text = format!("Result of {name}:\n{}", m.content);
                // Two results in a row are one turn (templates want turns to alternate).
                match out.last_mut() {
                    Some(last) if last.role == Role::User && last.content.starts_with("Result of ") => {
                        last.content.push_str("\n\n");
                        last.content.push_str(&text);
                    }
                    _ => out.push(Message::user(&text)),
                }
            }
            _ => out.push(Message::new(m.role, &m.content)),
        }
    }
    out
}

/// Does a chat template read the `tools` variable (so it has its own tool format)?
pub fn template_knows_tools(template_source: &str) -> bool {
    template_source.contains("tools") && template_source.contains("tool_call")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_calls_are_split_and_nothing_is_dropped() {
        let r = parse_reply(
            "Let me work it out.\n<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"2+2\"}}\n</tool_call>\n<tool_call>{\"name\": \"calculator\", \"arguments\": {\"expression\": \"3*3\"</tool_call>",
            4,
        );
        assert_eq!(r.text, "Let me work it out.");
        assert_eq!(r.calls.len(), 1);
        assert_eq!((r.calls[0].id.as_str(), r.calls[0].name.as_str()), ("call_4", "calculator"));
        assert_eq!(r.calls[0].arguments, json!({"expression": "2+2"}));
        assert_eq!(r.broken.len(), 1, "the unclosed object is kept as a broken call");
        assert!(r.broken[0].why.contains("not valid JSON"), "{}", r.broken[0].why);
        assert!(r.broken[0].text.contains("3*3"));
    }

    #[test]
    fn an_unclosed_call_at_the_end_and_fenced_or_bare_calls_parse() {
        let r = parse_reply(
            "<tool_call>```json\n{\"name\": \"save_note\", \"arguments\": \"{\\\"text\\\": \\\"hi\\\"}\"}\n```",
            0,
        );
        assert_eq!(r.calls[0].arguments, json!({"text": "hi"}), "{r:?}");
        let bare = parse_reply("{\"name\": \"calculator\", \"arguments\": {\"expression\": \"1+1\"}}", 0);
        assert_eq!(bare.calls.len(), 1);
        assert!(bare.text.is_empty());
        // A JSON answer that is not a call stays text.
        let data = parse_reply("{\"name\": \"Ada\", \"age\": 36}", 0);
        assert!(data.calls.is_empty() && data.text.contains("Ada"));
    }

    #[test]
    fn calls_without_a_name_or_with_odd_arguments_are_broken_not_run() {
        for (reply, why) in [
            ("<tool_call>{\"arguments\": {}}</tool_call>", "no \"name\""),
            ("<tool_call>{\"name\": \"x\", \"arguments\": [1, 2]}</tool_call>", "not a JSON object"),
            ("<tool_call></tool_call>", "empty"),
            ("<tool_call>[1]</tool_call>", "not a JSON object"),
        ] {
            let r = parse_reply(reply, 0);
            assert!(r.calls.is_empty(), "{reply}");
            assert!(r.broken[0].why.contains(why), "{reply}: {}", r.broken[0].why);
        }
    }

    #[test]
    fn the_wire_shape_round_trips_and_bad_wire_arguments_are_broken() {
        let call = ToolCall { id: "call_9".into(), name: "calculator".into(), arguments: json!({"expression": "7*6"}) };
        let wire = call.wire();
        assert!(wire["function"]["arguments"].is_string(), "OpenAI sends arguments as a string");
        assert_eq!(ToolCall::from_wire(&wire).unwrap(), call);
        let bad = json!({"id": "x", "function": {"name": "calculator", "arguments": "{not json"}});
        assert!(ToolCall::from_wire(&bad).unwrap_err().why.contains("not JSON"));
        let spec = ToolSpec { name: "t".into(), description: "d".into(), parameters: json!({"type": "object"}) };
        assert_eq!(ToolSpec::from_wire(&spec.wire()), Some(spec));
    }

    #[test]
    fn plain_templates_get_the_convention_and_results_as_user_turns() {
        let call =
            ToolCall { id: "call_0".into(), name: "calculator".into(), arguments: json!({"expression": "2^10"}) };
        let spec = ToolSpec { name: "calculator".into(), description: "Exact math.".into(), parameters: json!({}) };
        let mut asked = Message::assistant("");
        asked.tool_calls = vec![call.clone()];
        let mut result = Message::new(Role::Tool, "1024");
        result.tool_call_id = Some("call_0".into());
        let msgs = for_plain_template(&[Message::system("Be brief."), Message::user("2^10?"), asked, result], &[spec]);
        assert_eq!(
            msgs.iter().map(|m| m.role).collect::<Vec<_>>(),
            [Role::System, Role::User, Role::Assistant, Role::User]
        );
        assert!(msgs[0].content.starts_with("Be brief.") && msgs[0].content.contains("- calculator: Exact math."));
        assert_eq!(parse_reply(&msgs[2].content, 0).calls, vec![call], "the earlier call is written in the convention");
        assert_eq!(msgs[3].content, "Result of calculator:\n1024");
    }
}
