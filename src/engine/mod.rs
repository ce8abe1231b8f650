//! One interface for generating text, whichever backend runs it.
//!
//! A request carries messages and parameters; the reply is a stream of
//! [`Event`]s on a bounded channel: text as it arrives, then one `Done` (with
//! usage and timings) or one `Error`. A shared [`Cancel`] stops it within a token.

pub mod cloud;
pub mod local;
pub mod spec;
pub mod toolcall;

pub use crate::progress::Cancel;
pub use local::sampler::SamplingParams;
pub use local::template::{system_and_user, Message, Role};
use serde::{Deserialize, Serialize};
pub use spec::BackendSpec;
use std::sync::Arc;
pub use toolcall::{BrokenCall, ToolCall, ToolSpec};

/// What to generate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenRequest {
    pub messages: Vec<Message>,
    pub sampling: SamplingParams,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Generation stops before any of these strings; they are not shown.
    pub stop: Vec<String>,
    /// In a chat, drop the oldest turns (keeping the system prompt) when the
    /// conversation no longer fits; otherwise a too-long prompt is an error.
    pub truncate_history: bool,
    /// Tools the model may call; its calls come back in [`Completion::tool_calls`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// What the answer must be (local models: enforced token by token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<Constraint>,
}

/// A shape the answer must have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Constraint {
    /// Exactly one call to one of the request's tools, arguments fitting its schema.
    ToolCall,
    /// A JSON value fitting the schema (any JSON object when there is none).
    Json { schema: Option<serde_json::Value> },
}

impl GenRequest {
    pub fn new(messages: Vec<Message>) -> Self {
        GenRequest {
            messages,
            sampling: SamplingParams::default(),
            max_tokens: 512,
            stop: Vec::new(),
            truncate_history: false,
            tools: Vec::new(),
            constraint: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn, or a stop string was reached.
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    Cancelled,
    /// The model called one or more tools and waits for their results.
    ToolCalls,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens whose KV cache was reused from the previous request.
    pub cached_tokens: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub load_ms: f64,
    pub ttft_ms: f64,
    pub prompt_ms: f64,
    pub decode_ms: f64,
    pub prompt_tok_per_s: f64,
    pub decode_tok_per_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub timings: Timings,
    /// Turns dropped from the front of the conversation to fit the context.
    pub dropped_messages: usize,
    /// Something the person should know about the answer (characters the
    /// model cannot read were left out of the prompt…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// The likeliest first tokens of the answer with their log-probabilities,
    /// when asked for and the backend offers them (cloud `logprobs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_token_logprobs: Vec<(String, f64)>,
    /// Tools the model called (the text, if any, came before them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// What the model wrote as a call but could not be read: shown, never run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broken_calls: Vec<BrokenCall>,
}

impl Completion {
    /// Tokens per second after the first, as the backend measured them, or else as
    /// seen by the caller between the first token (`ttft_ms`) and the end (`total_ms`).
    pub fn decode_rate(&self, ttft_ms: f64, total_ms: f64) -> f64 {
        if self.timings.decode_tok_per_s > 0.0 {
            self.timings.decode_tok_per_s
        } else if total_ms > ttft_ms {
            self.usage.completion_tokens.saturating_sub(1) as f64 * 1e3 / (total_ms - ttft_ms)
        } else {
            0.0
        }
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    /// New text (never half a character).
    Delta(String),
    Done(Completion),
    Error(GenError),
}

/// Why a backend gave no answer. It keeps its type from the backend to the
/// screen, so callers can tell a rejected key from a prompt that is too long.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GenError {
    #[error(transparent)]
    Local(Arc<local::EngineError>),
    /// Already scrubbed of the key by the cloud backend.
    #[error(transparent)]
    Cloud(#[from] cloud::CloudError),
    #[error("the backend stopped without an answer")]
    NoAnswer,
}

impl From<local::EngineError> for GenError {
    fn from(e: local::EngineError) -> Self {
        GenError::Local(Arc::new(e))
    }
}

/// Where a request's data goes: shown next to every answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DataLocation {
    #[default]
    ThisComputer,
    SentTo(String),
}

impl DataLocation {
    pub fn is_local(&self) -> bool {
        matches!(self, DataLocation::ThisComputer)
    }

    /// Read back what [`Display`](std::fmt::Display) wrote (stored answers keep the text).
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix("sent to ") {
            Some(host) => DataLocation::SentTo(host.to_string()),
            None => DataLocation::ThisComputer,
        }
    }
}

// Stored as the sentence people see ("on this computer", "sent to HOST").
impl Serialize for DataLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DataLocation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(DataLocation::parse(&String::deserialize(d)?))
    }
}

impl std::fmt::Display for DataLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataLocation::ThisComputer => f.write_str("on this computer"),
            DataLocation::SentTo(host) => write!(f, "sent to {host}"),
        }
    }
}

/// Anything that answers a [`GenRequest`] with a stream of [`Event`]s. The UI
/// and the tasks talk to this, never to a particular backend.
pub trait Backend: Send + Sync {
    /// Short name for people ("SmolLM2-135M-Instruct.Q4_1.gguf", "gpt-4o-mini · api.openai.com").
    fn label(&self) -> String;
    fn data_location(&self) -> DataLocation;
    fn generate(&self, req: GenRequest, cancel: Cancel) -> std::sync::mpsc::Receiver<Event>;

    /// Generate and wait for the whole answer.
    fn complete(&self, req: GenRequest, cancel: Cancel) -> Result<Completion, GenError> {
        for event in self.generate(req, cancel) {
            match event {
                Event::Delta(_) => {}
                Event::Done(c) => return Ok(c),
                Event::Error(e) => return Err(e),
            }
        }
        Err(GenError::NoAnswer)
    }
}
