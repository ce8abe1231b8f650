//! A client for any OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI,
//! vLLM, TGI, Ollama, LM Studio, another `duet serve`).
//!
//! It streams with server-sent events, retries what is worth retrying (429
//! with its Retry-After, 5xx) a bounded number of times, and turns every
//! failure into a sentence that says what to do. The key is a [`Secret`]: it
//! goes into the Authorization header and nowhere else, and is scrubbed from
//! any text a server sends back.

use super::{
    Backend, BrokenCall, Cancel, Completion, DataLocation, Event, FinishReason, GenError, GenRequest, Timings,
    ToolCall, ToolSpec, Usage,
};
use crate::secret::Secret;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum CloudError {
    #[error("The cloud key was rejected ({status}). Set OPENAI_API_KEY (or the profile's key variable), or store a key with `duet cloud key {profile}`.")]
    Auth { status: u16, profile: String },
    #[error("{host} wants a key ({status}), and the profile '{profile}' has none. Set OPENAI_API_KEY (or the profile's key variable), enter one in Settings, or store one with `duet cloud key {profile}`.")]
    NoKey { host: String, status: u16, profile: String },
    #[error("nothing is answering at {host} (the connection was refused). Is the server running, and is the port in the profile's base URL right? The local model works meanwhile.")]
    Refused { host: String },
    #[error("{host} does not know the model '{model}' (404). Check the model name in the cloud profile.")]
    ModelNotFound { host: String, model: String },
    #[error("{host} is rate-limiting requests (429) and still was after {attempts} tries. Wait a minute, or lower the batch concurrency.")]
    RateLimited { host: String, attempts: u32 },
    #[error("{host} had a server error ({status}) {attempts} times in a row: {message}")]
    Server { host: String, status: u16, attempts: u32, message: String },
    #[error("{host} refused the request ({status}): {message}")]
    Rejected { host: String, status: u16, message: String },
    #[error("can't reach {host}: {why}. Are you offline? The local model works without a network.")]
    Unreachable { host: String, why: String },
    #[error(
        "{host} stopped sending for {secs} s in the middle of an answer; gave up. Try again, or use the local model."
    )]
    Stalled { host: String, secs: u64 },
    #[error("{host} sent a reply duet cannot read ({why}). Is the base URL an OpenAI-compatible /v1 endpoint?")]
    Malformed { host: String, why: String },
    #[error("{host} closed the stream before the answer was finished. Try again.")]
    Truncated { host: String },
}

impl CloudError {
    /// The request never left this computer (no connection was made).
    pub fn nothing_sent(&self) -> bool {
        matches!(self, CloudError::Refused { .. } | CloudError::Unreachable { .. })
    }
}

impl CloudError {
    /// The same error with `scrub` applied to every text a server sent back
    /// (a server may echo part of the key).
    pub fn scrubbed(self, scrub: impl Fn(&str) -> String) -> Self {
        match self {
            CloudError::Server { host, status, attempts, message } => {
                CloudError::Server { host, status, attempts, message: scrub(&message) }
            }
            CloudError::Rejected { host, status, message } => {
                CloudError::Rejected { host, status, message: scrub(&message) }
            }
            CloudError::Unreachable { host, why } => CloudError::Unreachable { host, why: scrub(&why) },
            CloudError::Malformed { host, why } => CloudError::Malformed { host, why: scrub(&why) },
            other => other,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CloudOptions {
    pub connect_timeout: Duration,
    /// Longest silence between two streamed events (or before a whole reply).
    pub idle_timeout: Duration,
    /// Extra tries after a 429 or 5xx.
    pub max_retries: u32,
    /// Longest wait between tries, whatever Retry-After says.
    pub max_backoff: Duration,
    pub stream: bool,
    /// Ask for the top-N alternatives of each answer token (non-streaming replies
    /// return those of the first token in [`Completion::first_token_logprobs`]).
    pub top_logprobs: Option<usize>,
}

impl Default for CloudOptions {
    fn default() -> Self {
        CloudOptions {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_retries: 3,
            max_backoff: Duration::from_secs(30),
            stream: true,
            top_logprobs: None,
        }
    }
}

/// One OpenAI-compatible endpoint and model.
#[derive(Clone)]
pub struct CloudBackend {
    pub profile: String,
    pub base_url: String,
    pub model: String,
    key: Option<Secret>,
    client: reqwest::Client,
    opts: CloudOptions,
}

impl CloudBackend {
    pub fn new(profile: &str, base_url: &str, model: &str, key: Option<Secret>, opts: CloudOptions) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        CloudBackend {
            profile: profile.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            key: key.filter(|k| !k.is_empty()),
            client,
            opts,
        }
    }

    /// The same endpoint with other options (e.g. whole replies with logprobs for classification).
    pub fn with_options(mut self, change: impl FnOnce(&mut CloudOptions)) -> Self {
        change(&mut self.opts);
        self
    }

    /// The host the data goes to, as shown to people.
    pub fn host(&self) -> String {
        host_of(&self.base_url)
    }

    fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(k) => k.scrub(text),
            None => text.to_string(),
        }
    }

    fn body(&self, req: &GenRequest, stream: bool) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": req.messages.iter().map(wire_message).collect::<Vec<_>>(),
            "stream": stream,
            "max_tokens": req.max_tokens,
            "temperature": req.sampling.temperature,
            "top_p": req.sampling.top_p,
            "seed": req.sampling.seed,
        });
        if !req.stop.is_empty() {
            body["stop"] = json!(req.stop);
        }
        if !req.tools.is_empty() {
            body["tools"] = req.tools.iter().map(ToolSpec::wire).collect();
        }
        if stream {
            body["stream_options"] = json!({ "include_usage": true });
        }
        if let Some(n) = self.opts.top_logprobs {
            body["logprobs"] = json!(true);
            body["top_logprobs"] = json!(n);
        }
        body
    }

    /// Generate on the shared runtime; events arrive on the returned channel.
    pub fn generate(&self, req: GenRequest, cancel: Cancel) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::sync_channel(1024);
        let me = self.clone();
        crate::runtime().spawn(async move {
            let result = me.run(&req, &cancel, Some(&tx)).await;
            let _ = tx.send(match result {
                Ok(c) => Event::Done(c),
                Err(e) => Event::Error(e.scrubbed(|t| me.scrub(t)).into()),
            });
        });
        rx
    }

    async fn run(
        &self,
        req: &GenRequest,
        cancel: &Cancel,
        tx: Option<&mpsc::SyncSender<Event>>,
    ) -> Result<Completion, CloudError> {
        let t0 = Instant::now();
        let host = self.host();
        let url = format!("{}/chat/completions", self.base_url);
        let mut attempt = 0u32;
        let response = loop {
            attempt += 1;
            let mut rb = self.client.post(&url).json(&self.body(req, self.opts.stream));
            if let Some(k) = &self.key {
                rb = rb.bearer_auth(k.expose());
            }
            let sent = tokio::select! {
                r = tokio::time::timeout(self.opts.idle_timeout, rb.send()) => r,
                _ = cancelled(cancel) => return Ok(cancelled_completion(t0)),
            };
            let resp = match sent {
                Err(_) => return Err(CloudError::Stalled { host, secs: self.opts.idle_timeout.as_secs() }),
                Ok(Err(e)) => {
                    let why = short_reqwest_error(&e);
                    // A refused connection is a server that is not running, not a missing network.
                    if why == REFUSED {
                        return Err(CloudError::Refused { host });
                    }
                    return Err(CloudError::Unreachable { host, why: self.scrub(&why) });
                }
                Ok(Ok(r)) => r,
            };
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                break resp;
            }
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(Duration::from_secs_f64);
            let message = self.scrub(&error_message(resp).await);
            let retryable = status == 429 || status >= 500;
            if retryable && attempt <= self.opts.max_retries {
                let backoff =
                    retry_after.unwrap_or(Duration::from_millis(250 * 2u64.pow(attempt))).min(self.opts.max_backoff);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => continue,
                    _ = cancelled(cancel) => return Ok(cancelled_completion(t0)),
                }
            }
            return Err(match status {
                401 | 403 if self.key.is_none() => CloudError::NoKey { host, status, profile: self.profile.clone() },
                401 | 403 => CloudError::Auth { status, profile: self.profile.clone() },
                404 => CloudError::ModelNotFound { host, model: self.model.clone() },
                429 => CloudError::RateLimited { host, attempts: attempt },
                s if s >= 500 => CloudError::Server { host, status, attempts: attempt, message },
                _ => CloudError::Rejected { host, status, message },
            });
        };
        if self.opts.stream {
            self.read_stream(response, cancel, tx, t0).await
        } else {
            self.read_whole(response, cancel, tx, t0).await
        }
    }

    async fn read_whole(
        &self,
        resp: reqwest::Response,
        cancel: &Cancel,
        tx: Option<&mpsc::SyncSender<Event>>,
        t0: Instant,
    ) -> Result<Completion, CloudError> {
        let host = self.host();
        let body = tokio::select! {
            b = tokio::time::timeout(self.opts.idle_timeout, resp.bytes()) => b,
            _ = cancelled(cancel) => return Ok(cancelled_completion(t0)),
        };
        let bytes = match body {
            Err(_) => return Err(CloudError::Stalled { host, secs: self.opts.idle_timeout.as_secs() }),
            Ok(Err(_)) => return Err(CloudError::Truncated { host }),
            Ok(Ok(b)) => b,
        };
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| CloudError::Malformed { host: host.clone(), why: e.to_string() })?;
        let choice = &v["choices"][0];
        let (tool_calls, broken_calls) = read_calls(choice["message"]["tool_calls"].as_array().map(Vec::as_slice));
        // A reply that only calls tools has `content: null`.
        let text = match choice["message"]["content"].as_str() {
            Some(t) => t.to_string(),
            None if !tool_calls.is_empty() || !broken_calls.is_empty() => String::new(),
            None => {
                return Err(CloudError::Malformed { host: host.clone(), why: "no choices[0].message.content".into() })
            }
        };
        let elapsed = t0.elapsed().as_secs_f64() * 1e3;
        if let Some(tx) = tx {
            let _ = tx.send(Event::Delta(text.clone()));
        }
        let usage = parse_usage(&v["usage"]);
        // OpenAI's shape: choices[0].logprobs.content[0].top_logprobs[] = {token, logprob}.
        let first_token_logprobs = choice["logprobs"]["content"][0]["top_logprobs"]
            .as_array()
            .map(|alts| {
                alts.iter().filter_map(|a| Some((a["token"].as_str()?.to_string(), a["logprob"].as_f64()?))).collect()
            })
            .unwrap_or_default();
        Ok(Completion {
            finish_reason: parse_finish(choice["finish_reason"].as_str()),
            timings: Timings {
                ttft_ms: elapsed,
                decode_ms: elapsed,
                decode_tok_per_s: rate(usage.completion_tokens, elapsed),
                ..Default::default()
            },
            usage,
            text,
            dropped_messages: 0,
            notice: None,
            first_token_logprobs,
            tool_calls,
            broken_calls,
        })
    }

    async fn read_stream(
        &self,
        resp: reqwest::Response,
        cancel: &Cancel,
        tx: Option<&mpsc::SyncSender<Event>>,
        t0: Instant,
    ) -> Result<Completion, CloudError> {
        let host = self.host();
        let mut events = resp.bytes_stream().eventsource();
        let mut text = String::new();
        let mut usage = Usage::default();
        let mut finish: Option<FinishReason> = None;
        let mut first: Option<Instant> = None;
        let mut chunks = 0usize;
        // Streamed calls arrive in pieces, by index: id and name first, then the arguments' text.
        let mut calls: Vec<Value> = Vec::new();
        loop {
            let next = tokio::select! {
                n = tokio::time::timeout(self.opts.idle_timeout, events.next()) => n,
                _ = cancelled(cancel) => {
                    // Dropping the stream closes the connection: the server stops too.
                    let mut c = cancelled_completion(t0);
                    c.text = text;
                    return Ok(c);
                }
            };
            let event = match next {
                Err(_) => return Err(CloudError::Stalled { host, secs: self.opts.idle_timeout.as_secs() }),
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(match finish {
                        Some(_) => break,
                        None if e.to_string().contains("Transport") || e.to_string().contains("decoding") => {
                            CloudError::Truncated { host }
                        }
                        None => CloudError::Malformed { host, why: e.to_string() },
                    })
                }
                Ok(Some(Ok(ev))) => ev,
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                let elapsed = t0.elapsed().as_secs_f64() * 1e3;
                let ttft = first.map(|f| (f - t0).as_secs_f64() * 1e3).unwrap_or(elapsed);
                let decode_ms = elapsed - ttft;
                let completion_tokens = if usage.completion_tokens > 0 { usage.completion_tokens } else { chunks };
                let (tool_calls, broken_calls) = read_calls(Some(&calls));
                return Ok(Completion {
                    text,
                    finish_reason: finish.unwrap_or(FinishReason::Stop),
                    timings: Timings {
                        ttft_ms: ttft,
                        decode_ms,
                        decode_tok_per_s: rate(completion_tokens.saturating_sub(1), decode_ms),
                        ..Default::default()
                    },
                    usage,
                    dropped_messages: 0,
                    notice: None,
                    first_token_logprobs: Vec::new(),
                    tool_calls,
                    broken_calls,
                });
            }
            let v: Value = serde_json::from_str(data).map_err(|e| CloudError::Malformed {
                host: host.clone(),
                why: format!("bad JSON in the stream: {e}"),
            })?;
            if let Some(err) = v.get("error") {
                return Err(CloudError::Rejected { host, status: 200, message: self.scrub(&err.to_string()) });
            }
            if v.get("usage").is_some_and(|u| !u.is_null()) {
                usage = parse_usage(&v["usage"]);
            }
            let choice = &v["choices"][0];
            for piece in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
                first.get_or_insert_with(Instant::now);
                merge_call_piece(&mut calls, piece);
            }
            if choice["delta"]["tool_calls"].is_array() {
                // A chunk that carries only calls.
            } else if let Some(delta) = choice["delta"]["content"].as_str() {
                if !delta.is_empty() {
                    first.get_or_insert_with(Instant::now);
                    chunks += 1;
                    text.push_str(delta);
                    // A reader that went away means "stop" (batches pass no reader).
                    if let Some(tx) = tx {
                        if !send(tx, Event::Delta(delta.to_string())).await {
                            let mut c = cancelled_completion(t0);
                            c.text = text;
                            return Ok(c);
                        }
                    }
                }
            } else if choice.is_null() && v.get("usage").is_none() {
                return Err(CloudError::Malformed { host, why: "a stream chunk without choices".into() });
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(parse_finish(Some(f)));
            }
        }
        // The stream ended without [DONE].
        Err(CloudError::Truncated { host })
    }
}

impl CloudBackend {
    /// Answer many requests with at most `concurrency` in flight (a review
    /// batch fanned out to a vLLM cluster, say). Results keep the input order.
    pub fn complete_many(
        &self,
        reqs: Vec<GenRequest>,
        concurrency: usize,
        cancel: &Cancel,
    ) -> Vec<Result<Completion, GenError>> {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let handles: Vec<_> = reqs
            .into_iter()
            .map(|req| {
                let (me, gate, cancel) = (self.clone(), gate.clone(), cancel.clone());
                crate::runtime().spawn(async move {
                    // The semaphore is never closed, so a slot always comes.
                    let _slot = gate.acquire_owned().await.map_err(|_| GenError::NoAnswer)?;
                    // No one reads deltas in a batch: pass no channel rather than one that fills up.
                    me.run(&req, &cancel, None).await.map_err(|e| GenError::from(e.scrubbed(|t| me.scrub(t))))
                })
            })
            .collect();
        crate::runtime().block_on(async {
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                // A task that panicked gave no answer.
                out.push(h.await.unwrap_or(Err(GenError::NoAnswer)));
            }
            out
        })
    }
}

impl Backend for CloudBackend {
    fn label(&self) -> String {
        format!("{} · {}", self.model, self.host())
    }

    fn data_location(&self) -> DataLocation {
        DataLocation::SentTo(self.host())
    }

    fn generate(&self, req: GenRequest, cancel: Cancel) -> mpsc::Receiver<Event> {
        CloudBackend::generate(self, req, cancel)
    }
}

/// Hand an event to a (blocking, bounded) std channel without blocking the runtime.
async fn send(tx: &mpsc::SyncSender<Event>, mut event: Event) -> bool {
    loop {
        match tx.try_send(event) {
            Ok(()) => return true,
            Err(mpsc::TrySendError::Disconnected(_)) => return false,
            Err(mpsc::TrySendError::Full(e)) => {
                event = e;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
}

/// Resolves once `cancel` is set.
pub async fn cancelled(cancel: &Cancel) {
    while !cancel.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cancelled_completion(t0: Instant) -> Completion {
    Completion {
        text: String::new(),
        finish_reason: FinishReason::Cancelled,
        usage: Usage::default(),
        timings: Timings { decode_ms: t0.elapsed().as_secs_f64() * 1e3, ..Default::default() },
        dropped_messages: 0,
        notice: None,
        first_token_logprobs: Vec::new(),
        tool_calls: Vec::new(),
        broken_calls: Vec::new(),
    }
}

/// A message in OpenAI's shape (a call's arguments travel as a string).
fn wire_message(m: &crate::engine::Message) -> Value {
    let mut v = json!({ "role": m.role.as_str(), "content": m.content });
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m.tool_calls.iter().map(ToolCall::wire).collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    v
}

/// A reply's calls: those that read, and those that do not (kept to be shown).
fn read_calls(calls: Option<&[Value]>) -> (Vec<ToolCall>, Vec<BrokenCall>) {
    let mut ok = Vec::new();
    let mut broken = Vec::new();
    for c in calls.unwrap_or_default() {
        match ToolCall::from_wire(c) {
            Ok(call) => ok.push(call),
            Err(b) => broken.push(b),
        }
    }
    (ok, broken)
}

/// Add one streamed piece of a call (`{index, id?, function: {name?, arguments?}}`).
fn merge_call_piece(calls: &mut Vec<Value>, piece: &Value) {
    let index = piece["index"].as_u64().unwrap_or(calls.len().saturating_sub(1) as u64) as usize;
    while calls.len() <= index.min(1024) {
        calls.push(json!({"id": "", "type": "function", "function": {"name": "", "arguments": ""}}));
    }
    let Some(call) = calls.get_mut(index) else { return };
    if let Some(id) = piece["id"].as_str() {
        call["id"] = json!(id);
    }
    for key in ["name", "arguments"] {
        if let Some(part) = piece["function"][key].as_str() {
            let joined = format!("{}{part}", call["function"][key].as_str().unwrap_or(""));
            call["function"][key] = json!(joined);
        }
    }
}

fn parse_finish(f: Option<&str>) -> FinishReason {
    match f {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

fn parse_usage(u: &Value) -> Usage {
    let n = |k: &str| u[k].as_u64().unwrap_or(0) as usize;
    Usage {
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
        cached_tokens: u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0) as usize,
    }
}

fn rate(tokens: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        tokens as f64 * 1e3 / ms
    } else {
        0.0
    }
}

/// The `error.message` of an OpenAI-shaped error body, or the start of the body.
async fn error_message(resp: reqwest::Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(200).collect())
}

const REFUSED: &str = "the connection was refused";

fn short_reqwest_error(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s = inner.to_string();
        src = inner.source();
    }
    if e.is_timeout() || e.is_connect() && s.contains("timed out") {
        "the connection timed out".into()
    } else if s.contains("dns") || s.contains("resolve") || s.contains("failed to lookup") {
        "the name could not be resolved".into()
    } else if s.contains("refused") {
        REFUSED.into()
    } else {
        s
    }
}

/// Where a profile's key comes from, in order: its environment variable
/// (`OPENAI_API_KEY` unless the profile names another), the OS keyring, the
/// settings file. `None` is fine for endpoints that need no key.
pub fn resolve_key(profile: &crate::config::CloudProfile) -> Option<Secret> {
    let var = profile.key_env.as_deref().unwrap_or("OPENAI_API_KEY");
    if let Ok(v) = std::env::var(var) {
        if !v.trim().is_empty() {
            return Some(Secret::new(v.trim()));
        }
    }
    if let Some(k) = keyring_get(&profile.name) {
        return Some(k);
    }
    profile.key.as_ref().filter(|k| !k.trim().is_empty()).map(|k| Secret::new(k.trim()))
}

fn keyring_get(profile: &str) -> Option<Secret> {
    let entry = keyring::Entry::new("duet", profile).ok()?;
    entry.get_password().ok().map(Secret::new)
}

/// Store a key in the OS keyring; the error says what to do where there is none.
pub fn keyring_set(profile: &str, key: &Secret) -> Result<(), String> {
    let fallback = "no OS keyring is available here. Put the key in an environment variable instead (OPENAI_API_KEY, or the profile's key_env)";
    let entry = keyring::Entry::new("duet", profile).map_err(|_| fallback.to_string())?;
    entry.set_password(key.expose()).map_err(|_| fallback.to_string())
}

/// "api.openai.com" or "127.0.0.1:8080" from a base URL (the URL itself if it won't parse).
pub fn host_of(base_url: &str) -> String {
    reqwest::Url::parse(base_url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| base_url.to_string())
}

pub fn backend_for(profile: &crate::config::CloudProfile, opts: CloudOptions) -> CloudBackend {
    CloudBackend::new(&profile.name, &profile.base_url, &profile.model, resolve_key(profile), opts)
}
