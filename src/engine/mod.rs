//! One interface for generating text, whichever backend runs it.
//!
//! A request carries messages and parameters; the reply is a stream of
//! [`Event`]s on a bounded channel: text as it arrives, then one `Done` (with
//! usage and timings) or one `Error`. A shared [`Cancel`] stops it within a token.

pub mod local;

pub use crate::progress::Cancel;
pub use local::sampler::SamplingParams;
pub use local::template::Message;
use serde::{Deserialize, Serialize};

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
}

impl GenRequest {
    pub fn new(messages: Vec<Message>) -> Self {
        GenRequest {
            messages,
            sampling: SamplingParams::default(),
            max_tokens: 512,
            stop: Vec::new(),
            truncate_history: false,
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
}

#[derive(Debug, Clone)]
pub enum Event {
    /// New text (never half a character).
    Delta(String),
    Done(Completion),
    Error(String),
}
