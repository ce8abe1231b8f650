//! The model's chat template (`tokenizer.chat_template`), rendered with
//! minijinja the way Hugging Face renders it with jinja2: `trim_blocks`,
//! `lstrip_blocks`, `raise_exception`, a Python-style `tojson`, and Python's
//! string methods.
//!
//! Message text is data. Jinja never sees it as template code (it is only ever
//! a variable's value), and special-token strings inside it are swapped for
//! private-use sentinels before rendering, so the tokenizer keeps them as text
//! while the template's own markers become control tokens.

use super::tokenizer::{Tokenizer, TokenizerError};
use crate::engine::toolcall::ToolSpec;
use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("the model's chat template could not be read: {0}")]
    Syntax(String),
    #[error("the model's chat template refused these messages: {0}")]
    Render(String),
    #[error(transparent)]
    Tokenize(#[from] TokenizerError),
}

/// Who wrote a message. Templates see the lowercase name (`message['role']`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    /// A tool's result, handed back to the model.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message role '{0}': use system, user, assistant or tool")]
pub struct UnknownRole(pub String);

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "system" => Role::System,
            // OpenAI's newer name for the system prompt.
            "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            other => return Err(UnknownRole(other.to_string())),
        })
    }
}

/// So `m.role == "assistant"` reads as it always did.
impl PartialEq<&str> for Role {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// The calls an assistant message made (templates read `message.tool_calls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<crate::engine::toolcall::ToolCall>,
    /// Which call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: &str) -> Self {
        Message { role, content: content.to_string(), tool_calls: Vec::new(), tool_call_id: None }
    }

    /// A tool's result, answering the call `call_id`.
    pub fn tool_result(call_id: &str, content: &str) -> Self {
        Message { tool_call_id: Some(call_id.to_string()), ..Message::new(Role::Tool, content) }
    }

    pub fn system(content: &str) -> Self {
        Self::new(Role::System, content)
    }

    pub fn user(content: &str) -> Self {
        Self::new(Role::User, content)
    }

    pub fn assistant(content: &str) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// The usual request: an optional system prompt, then the user's text.
pub fn system_and_user(system: Option<&str>, user: &str) -> Vec<Message> {
    let mut messages: Vec<Message> =
        system.map(str::trim).filter(|s| !s.is_empty()).map(Message::system).into_iter().collect();
    messages.push(Message::user(user));
    messages
}

/// A template ready to render.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

/// Used when a GGUF has no template: ChatML, which most small instruct models know.
pub const FALLBACK_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Google's published Gemma 3 template, for Gemma GGUFs that do not carry one.
pub const GEMMA3_TEMPLATE: &str = include_str!("../../../assets/templates/gemma3.jinja");

/// The template to use when a GGUF has none: the family's published one, else ChatML.
pub fn builtin_for(architecture: &str) -> &'static str {
    match architecture {
        "gemma3" | "gemma2" | "gemma" => GEMMA3_TEMPLATE,
        _ => FALLBACK_TEMPLATE,
    }
}

impl ChatTemplate {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source.to_string()).map_err(|e| TemplateError::Syntax(describe(&e)))?;
        Ok(ChatTemplate { env, bos_token: bos_token.to_string(), eos_token: eos_token.to_string() })
    }

    /// Render to text, exactly as Hugging Face would.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, TemplateError> {
        self.render_with_tools(messages, &[], add_generation_prompt)
    }

    /// Render with tools offered (for templates with their own tool format);
    /// `tools` is undefined to the template when there are none, as in Hugging Face.
    pub fn render_with_tools(
        &self,
        messages: &[Message],
        tools: &[ToolSpec],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let tmpl = self.env.get_template("chat").map_err(|e| TemplateError::Syntax(describe(&e)))?;
        let tools: Option<Vec<serde_json::Value>> =
            (!tools.is_empty()).then(|| tools.iter().map(ToolSpec::wire).collect());
        tmpl.render(minijinja::context! {
            messages => messages,
            tools => tools,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(|e| TemplateError::Render(describe(&e)))
    }

    /// Render and tokenize, keeping special-token strings in message text as text.
    pub fn encode(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Message],
        tools: &[ToolSpec],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, TemplateError> {
        let mut originals: Vec<String> = Vec::new();
        let guarded: Vec<Message> = messages
            .iter()
            .map(|m| Message { content: guard_specials(tokenizer, &m.content, &mut originals), ..m.clone() })
            .collect();
        let rendered = self.render_with_tools(&guarded, tools, add_generation_prompt)?;
        // Split the rendering at sentinels: template text parses specials, guarded text does not.
        let mut parts: Vec<(String, bool)> = Vec::new();
        let mut rest = rendered.as_str();
        while let Some(start) = rest.find(SENTINEL_OPEN) {
            parts.push((rest[..start].to_string(), true));
            let after = &rest[start + SENTINEL_OPEN.len_utf8()..];
            let end = after.find(SENTINEL_CLOSE).unwrap_or(after.len());
            let index: usize = after[..end].parse().unwrap_or(usize::MAX);
            parts.push((originals.get(index).cloned().unwrap_or_default(), false));
            rest = after.get(end + SENTINEL_CLOSE.len_utf8()..).unwrap_or("");
        }
        parts.push((rest.to_string(), true));
        let borrowed: Vec<(&str, bool)> = parts.iter().map(|(s, b)| (s.as_str(), *b)).collect();
        Ok(tokenizer.encode_parts(&borrowed)?)
    }
}

const SENTINEL_OPEN: char = '\u{F0000}';
const SENTINEL_CLOSE: char = '\u{F0001}';

/// Replace each special-token string in `text` by `SENTINEL_OPEN <n> SENTINEL_CLOSE`.
fn guard_specials(tokenizer: &Tokenizer, text: &str, originals: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        match tokenizer.special_span(rest) {
            Some((start, len)) => {
                out.push_str(&rest[..start]);
                out.push(SENTINEL_OPEN);
                out.push_str(&originals.len().to_string());
                out.push(SENTINEL_CLOSE);
                originals.push(rest[start..start + len].to_string());
                rest = &rest[start + len..];
            }
            None => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

fn describe(e: &JinjaError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn raise_exception(msg: String) -> Result<Value, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
}

/// Templates (Llama 3.x) print today's date; only the formats they use are supported.
fn strftime_now(format: String) -> Result<Value, JinjaError> {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let month = MONTHS[(m - 1) as usize];
    let out = format
        .replace("%d", &format!("{d:02}"))
        .replace("%m", &format!("{m:02}"))
        .replace("%Y", &y.to_string())
        .replace("%B", month)
        .replace("%b", &month[..3]);
    Ok(Value::from(out))
}

/// "2026-12-03" for a time in Unix seconds (UTC).
pub fn iso_day(unix_s: i64) -> String {
    let (y, m, d) = civil_from_days(unix_s.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Python's `json.dumps(x, ensure_ascii=False)`: `", "` and `": "` separators,
/// no HTML escaping (minijinja's own `tojson` escapes `<` and `>`).
fn tojson(value: Value, kwargs: minijinja::value::Kwargs) -> Result<Value, JinjaError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _ = kwargs.get::<Option<bool>>("ensure_ascii")?;
    let _ = kwargs.get::<Option<bool>>("sort_keys")?;
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    let result = match indent {
        Some(n) => {
            let pad = vec![b' '; n];
            let fmt = serde_json::ser::PrettyFormatter::with_indent(&pad);
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            value.serialize(&mut ser)
        }
        None => {
            let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
            value.serialize(&mut ser)
        }
    };
    result.map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(Value::from_safe_string(String::from_utf8_lossy(&out).into_owned()))
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
    }

    #[test]
    fn raise_exception_surfaces_the_templates_message() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}", "", "").expect("parses");
        let e = t.render(&[], false).unwrap_err().to_string();
        assert!(e.contains("roles must alternate"), "{e}");
    }

    #[test]
    fn tojson_is_pythons() {
        let t = ChatTemplate::new("{{ messages | tojson }}", "", "").expect("parses");
        let out = t.render(&[Message::user("<b> é")], false).expect("renders");
        assert_eq!(out, r#"[{"role": "user", "content": "<b> é"}]"#);
    }

    #[test]
    fn message_text_is_never_template_code() {
        let t = ChatTemplate::new(FALLBACK_TEMPLATE, "", "").expect("parses");
        let out = t.render(&[Message::user("{{ 7*7 }} {% if true %}x{% endif %}")], false).expect("renders");
        assert!(out.contains("{{ 7*7 }} {% if true %}x{% endif %}"), "{out}");
    }
}
