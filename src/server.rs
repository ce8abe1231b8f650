//! `duet serve`: the local model behind OpenAI's HTTP API, for the team's own
//! scripts and tools (`/v1/models`, `/v1/chat/completions`, `/health`).
//!
//! One model answers one request at a time; a small queue waits behind it and
//! anything beyond the queue is told "busy" (503) at once instead of hanging.
//! A client that goes away cancels its generation. Binding anywhere but
//! loopback requires a token; errors use OpenAI's JSON shape.

use crate::engine::local::LocalEngine;
use crate::engine::{
    Cancel, Constraint, Event, FinishReason, GenRequest, Message, Role, SamplingParams, ToolCall, ToolSpec,
};
use crate::secret::Secret;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("refusing to listen on {host} without a token: anyone on the network could use the model. Add --token SECRET (clients send `Authorization: Bearer SECRET`), or keep the default host 127.0.0.1.")]
    NeedsToken { host: String },
    #[error("'{0}' is not an IP address; use e.g. 127.0.0.1 or 0.0.0.0")]
    BadHost(String),
    #[error("could not listen on {addr}: {why}. Is another program using the port? Try --port with another number.")]
    Bind { addr: String, why: String },
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub token: Option<Secret>,
    /// The model id clients name (and `/v1/models` lists).
    pub model_id: String,
    /// Requests that may wait behind the running one.
    pub queue: usize,
    pub max_body_bytes: usize,
    /// Web pages (origins such as `http://localhost:3000`) allowed to call the
    /// server from a browser; any other page is refused.
    pub allow_origins: Vec<String>,
    /// Longest one answer may run; then it ends as if it reached max_tokens
    /// (finish_reason "length"), so one request cannot hold the model for minutes.
    pub max_request_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            token: None,
            model_id: "smollm2-135m".into(),
            queue: 4,
            max_body_bytes: 1 << 20,
            allow_origins: Vec::new(),
            max_request_seconds: 300,
        }
    }
}

#[derive(Default)]
struct Stats {
    active: AtomicUsize,
    completed: AtomicUsize,
    cancelled: AtomicUsize,
    rejected_busy: AtomicUsize,
}

struct AppState {
    engine: LocalEngine,
    /// Where the server listens (a loopback Host header must name it).
    addr: SocketAddr,
    cfg: ServerConfig,
    permits: Arc<Semaphore>,
    stats: Stats,
}

/// A running server; dropping it does not stop it, `shutdown` does.
pub struct ServerHandle {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl ServerHandle {
    /// Stop accepting, let requests in flight finish, and wait.
    pub fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = crate::runtime().block_on(d);
        }
    }

    /// Block until the server stops (Ctrl-C in `duet serve`).
    pub fn wait(mut self) {
        if let Some(d) = self.done.take() {
            let _ = crate::runtime().block_on(d);
        }
    }
}

/// Check the address rules, bind, and serve on the shared runtime.
pub fn start(engine: LocalEngine, cfg: ServerConfig) -> Result<ServerHandle, ServerError> {
    let ip: IpAddr = cfg.host.parse().map_err(|_| ServerError::BadHost(cfg.host.clone()))?;
    if !ip.is_loopback() && cfg.token.as_ref().is_none_or(|t| t.is_empty()) {
        return Err(ServerError::NeedsToken { host: cfg.host.clone() });
    }
    let addr = SocketAddr::new(ip, cfg.port);
    let listener = crate::runtime()
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| ServerError::Bind { addr: addr.to_string(), why: e.to_string() })?;
    let addr = listener.local_addr().map_err(|e| ServerError::Bind { addr: addr.to_string(), why: e.to_string() })?;
    let state = Arc::new(AppState {
        engine,
        addr,
        permits: Arc::new(Semaphore::new(cfg.queue + 1)),
        stats: Stats::default(),
        cfg: cfg.clone(),
    });
    let app = Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .with_state(state);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let done = crate::runtime().spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await;
    });
    Ok(ServerHandle { addr, stop: Some(stop_tx), done: Some(done) })
}

fn error(status: StatusCode, kind: &str, code: &str, message: impl Into<String>) -> Response {
    error_about(status, kind, code, None, message)
}

/// [`error`] naming the request parameter at fault (OpenAI's `param`).
fn error_about(
    status: StatusCode,
    kind: &str,
    code: &str,
    param: Option<&str>,
    message: impl Into<String>,
) -> Response {
    let body = Json(json!({ "error": { "message": message.into(), "type": kind, "param": param, "code": code } }));
    let mut resp = (status, body).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
    }
    resp
}

/// `Some(refusal)` for a request a web page made rather than a program: a
/// page on any site can send a "simple" cross-site POST (text/plain, no
/// preflight) to 127.0.0.1, and a DNS-rebinding page can even read the reply
/// under its own host name. So on loopback the Host must be a loopback name,
/// a browser's Origin must be one the person allowed, and a typed body must be JSON.
fn web_page_error(state: &AppState, headers: &HeaderMap, addr: SocketAddr, has_body: bool) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    if addr.ip().is_loopback() {
        let host = header("host").unwrap_or_default();
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_string(),
            _ => host.clone(),
        };
        if !["127.0.0.1", "localhost", "[::1]"].contains(&name.as_str()) {
            let why = format!("the Host header '{host}' is not this computer; call the server as http://{addr}");
            return Some(error(StatusCode::FORBIDDEN, "invalid_request_error", "bad_host", why));
        }
    }
    if let Some(origin) = header("origin") {
        if !state.cfg.allow_origins.iter().any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(&origin)) {
            let why = format!(
                "requests from web pages ({origin}) are refused; start duet serve with --allow-origin {origin} to allow that page"
            );
            return Some(error(StatusCode::FORBIDDEN, "invalid_request_error", "origin_not_allowed", why));
        }
    }
    // A browser always names a type for a body it sends (text/plain by default);
    // a program that names none is let through.
    let not_json =
        header("content-type").is_some_and(|t| t.split(';').next().is_none_or(|t| t.trim() != "application/json"));
    if has_body && not_json {
        let why = "send the body as JSON, with the header Content-Type: application/json";
        return Some(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request_error", "not_json", why));
    }
    None
}

/// `Some(401 response)` when a token is required and not given.
fn auth_error(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let token = state.cfg.token.as_ref()?;
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare every byte, so the time taken says nothing about the token.
    let (a, b) = (given.as_bytes(), token.expose().as_bytes());
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same {
        None
    } else {
        Some(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "missing or wrong token: send `Authorization: Bearer <token>` with the token duet serve was started with",
        ))
    }
}

async fn health(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "model": s.cfg.model_id,
        "active": s.stats.active.load(Ordering::SeqCst),
        "completed_total": s.stats.completed.load(Ordering::SeqCst),
        "cancelled_total": s.stats.cancelled.load(Ordering::SeqCst),
        "rejected_busy_total": s.stats.rejected_busy.load(Ordering::SeqCst),
    }))
}

async fn models(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(r) = web_page_error(&s, &headers, s.addr, false).or_else(|| auth_error(&s, &headers)) {
        return r;
    }
    Json(json!({
        "object": "list",
        "data": [{ "id": s.cfg.model_id, "object": "model", "created": 0, "owned_by": "duet" }]
    }))
    .into_response()
}

#[derive(Deserialize)]
struct ChatRequest {
    model: Option<String>,
    messages: Vec<WireMessage>,
    #[serde(default)]
    stream: bool,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    seed: Option<u64>,
    stop: Option<Value>,
    stream_options: Option<Value>,
    /// How many answers; only one is made here.
    n: Option<u64>,
    /// OpenAI's tool list (`[{type: "function", function: {name, description, parameters}}]`).
    #[serde(default)]
    tools: Vec<Value>,
    /// "auto" (the default), "none", or `{type: "function", function: {name}}` to offer only that one.
    tool_choice: Option<Value>,
    /// `{"type": "json_object"}` or `{"type": "json_schema", "json_schema": {"schema": ...}}`.
    response_format: Option<Value>,
}

impl ChatRequest {
    /// The first parameter outside what OpenAI accepts (or this server makes),
    /// as (parameter, why): answered with a 400, as OpenAI does, not clamped silently.
    fn out_of_range(&self) -> Option<(&'static str, String)> {
        if let Some(t) = self.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            return Some(("temperature", format!("temperature must be between 0 and 2 (got {t})")));
        }
        if let Some(p) = self.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Some(("top_p", format!("top_p must be above 0 and at most 1 (got {p})")));
        }
        if let Some(n) = self.n.filter(|n| *n != 1) {
            return Some(("n", format!("this server makes one answer per request; n must be 1 (got {n})")));
        }
        if self.max_completion_tokens.or(self.max_tokens) == Some(0) {
            return Some(("max_tokens", "max_tokens must be at least 1".to_string()));
        }
        None
    }
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Value,
    #[serde(default)]
    tool_calls: Vec<Value>,
    tool_call_id: Option<String>,
}

/// OpenAI content is a string or a list of parts; text parts are joined.
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Array(parts) => Some(parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("")),
        _ => None,
    }
}

async fn chat(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    if let Some(r) = web_page_error(&s, &headers, s.addr, true).or_else(|| auth_error(&s, &headers)) {
        return r;
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                format!("the request body is larger than {} bytes", s.cfg.max_body_bytes),
            )
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", "bad_body", e.body_text()),
    };
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
                format!("the body is not a valid chat request: {e}"),
            )
        }
    };
    if let Some(m) = &req.model {
        if m != &s.cfg.model_id && !m.is_empty() {
            return error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("the model '{m}' does not exist here; this server runs '{}'", s.cfg.model_id),
            );
        }
    }
    if let Some((param, why)) = req.out_of_range() {
        return error_about(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_value", Some(param), why);
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let Some(text) = content_text(&m.content) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_content",
                "message content must be a string or a list of text parts",
            );
        };
        let Ok(role) = m.role.parse::<Role>() else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_role",
                format!("unknown message role '{}'; use system, user, assistant or tool", m.role),
            );
        };
        let mut tool_calls = Vec::with_capacity(m.tool_calls.len());
        for c in &m.tool_calls {
            match ToolCall::from_wire(c) {
                Ok(call) => tool_calls.push(call),
                Err(b) => {
                    return error_about(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "invalid_tool_call",
                        Some("messages"),
                        format!("an assistant message holds a tool call that cannot be read: {}", b.why),
                    )
                }
            }
        }
        messages.push(Message { role, content: text, tool_calls, tool_call_id: m.tool_call_id.clone() });
    }
    let tools = match offered_tools(&req) {
        Ok(t) => t,
        Err(why) => {
            return error_about(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_tools", Some("tools"), why)
        }
    };
    let constraint = match required_shape(&req, &tools) {
        Ok(c) => c,
        Err((param, why)) => {
            return error_about(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_value", Some(param), why)
        }
    };
    if messages.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "empty_messages",
            "`messages` must contain at least one message",
        );
    }
    let stop = match &req.stop {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    let sampling = SamplingParams {
        temperature: req.temperature.unwrap_or(1.0),
        top_p: req.top_p.unwrap_or(1.0),
        top_k: 0,
        min_p: 0.0,
        seed: req.seed.unwrap_or(42),
        ..SamplingParams::default()
    };
    let gen = GenRequest {
        messages,
        sampling,
        max_tokens: req.max_completion_tokens.or(req.max_tokens).unwrap_or(512).min(s.engine.context_length),
        stop,
        truncate_history: false,
        tools,
        constraint,
    };
    let Ok(permit) = s.permits.clone().try_acquire_owned() else {
        s.stats.rejected_busy.fetch_add(1, Ordering::SeqCst);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "busy",
            "the model is busy and the queue is full; try again shortly",
        );
    };

    // Bridge the engine's blocking channel to an async one. When the client
    // goes away the async receiver is dropped, the next send fails, and the
    // generation is cancelled within a token.
    let (tx, rx) = mpsc::channel::<Event>(64);
    let cancel = Cancel::new();
    let engine = s.engine.clone();
    let state = s.clone();
    let c2 = cancel.clone();
    let limit = std::time::Duration::from_secs(s.cfg.max_request_seconds.max(1));
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        state.stats.active.fetch_add(1, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let mut gone = false;
        let mut timed_out = false;
        for mut event in engine.generate(gen, c2.clone()) {
            if !timed_out && started.elapsed() > limit {
                timed_out = true;
                c2.cancel();
            }
            if timed_out {
                // Cut by the time limit, not by the client: it still gets its answer, marked "length".
                if let Event::Done(c) = &mut event {
                    c.finish_reason = FinishReason::Length;
                }
            }
            let cancelled = matches!(&event, Event::Done(c) if c.finish_reason == FinishReason::Cancelled);
            if gone {
                continue;
            }
            if tx.blocking_send(event).is_err() {
                c2.cancel();
                gone = true;
            } else if cancelled {
                gone = true;
            }
        }
        state.stats.active.fetch_sub(1, Ordering::SeqCst);
        if (c2.is_cancelled() && !timed_out) || gone {
            state.stats.cancelled.fetch_add(1, Ordering::SeqCst);
        } else {
            state.stats.completed.fetch_add(1, Ordering::SeqCst);
        }
    });

    let id =
        format!("chatcmpl-duet-{}", SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let model = s.cfg.model_id.clone();
    if req.stream {
        let include_usage = req.stream_options.as_ref().and_then(|o| o["include_usage"].as_bool()).unwrap_or(false);
        stream_response(rx, id, created, model, include_usage, cancel).into_response()
    } else {
        whole_response(rx, id, created, model).await
    }
}

async fn whole_response(mut rx: mpsc::Receiver<Event>, id: String, created: u64, model: String) -> Response {
    while let Some(event) = rx.recv().await {
        match event {
            // The final event carries the whole text.
            Event::Delta(_) => {}
            Event::Done(c) => {
                let mut message = json!({ "role": "assistant", "content": shown_text(&c) });
                if !c.tool_calls.is_empty() {
                    message["tool_calls"] = c.tool_calls.iter().map(ToolCall::wire).collect();
                    if message["content"] == "" {
                        message["content"] = Value::Null;
                    }
                }
                return Json(json!({
                    "id": id, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{ "index": 0, "message": message,
                                  "finish_reason": finish_str(c.finish_reason) }],
                    "usage": usage_json(&c.usage),
                }))
                .into_response();
            }
            Event::Error(e) => {
                return error(StatusCode::BAD_REQUEST, "invalid_request_error", "generation_failed", e.to_string())
            }
        }
    }
    error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "engine_stopped", "the model stopped without an answer")
}

fn stream_response(
    rx: mpsc::Receiver<Event>,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    cancel: Cancel,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    /// Cancels the generation if the response stream is dropped early.
    struct CancelOnDrop(Cancel, bool);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            if !self.1 {
                self.0.cancel();
            }
        }
    }
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
    };
    let state = (rx, CancelOnDrop(cancel, false), 0u8, Vec::<SseEvent>::new());
    let stream = futures_util::stream::unfold(state, move |(mut rx, mut guard, mut phase, mut pending)| {
        let chunk = chunk.clone();
        async move {
            loop {
                if let Some(ev) = pending.pop() {
                    return Some((Ok(ev), (rx, guard, phase, pending)));
                }
                if phase == 2 {
                    return None;
                }
                if phase == 0 {
                    phase = 1;
                    let first = chunk(json!({ "role": "assistant", "content": "" }), None);
                    return Some((Ok(SseEvent::default().data(first.to_string())), (rx, guard, phase, pending)));
                }
                match rx.recv().await {
                    Some(Event::Delta(t)) => {
                        let c = chunk(json!({ "content": t }), None);
                        return Some((Ok(SseEvent::default().data(c.to_string())), (rx, guard, phase, pending)));
                    }
                    Some(Event::Done(c)) => {
                        guard.1 = true;
                        phase = 2;
                        // Sent in reverse order (popped from the end).
                        pending.push(SseEvent::default().data("[DONE]"));
                        if include_usage {
                            let mut u = chunk(json!({}), None);
                            u["choices"] = json!([]);
                            u["usage"] = usage_json(&c.usage);
                            pending.push(SseEvent::default().data(u.to_string()));
                        }
                        pending.push(
                            SseEvent::default().data(chunk(json!({}), Some(finish_str(c.finish_reason))).to_string()),
                        );
                        // The calls, whole, in one chunk (clients join pieces by index; one piece is fine).
                        if !c.tool_calls.is_empty() {
                            let pieces: Vec<Value> = c
                                .tool_calls
                                .iter()
                                .enumerate()
                                .map(|(i, call)| {
                                    let mut w = call.wire();
                                    w["index"] = json!(i);
                                    w
                                })
                                .collect();
                            pending.push(
                                SseEvent::default().data(chunk(json!({ "tool_calls": pieces }), None).to_string()),
                            );
                        }
                        for b in c.broken_calls.iter().rev() {
                            pending.push(
                                SseEvent::default().data(chunk(json!({ "content": broken_text(b) }), None).to_string()),
                            );
                        }
                    }
                    Some(Event::Error(e)) => {
                        guard.1 = true;
                        phase = 2;
                        let err = json!({ "error": { "message": e.to_string(), "type": "server_error", "code": "generation_failed" } });
                        pending.push(SseEvent::default().data(err.to_string()));
                    }
                    None => return None,
                }
            }
        }
    });
    Sse::new(stream)
}

fn finish_str(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "stop",
        FinishReason::ToolCalls => "tool_calls",
    }
}

/// The tools a request offers, after `tool_choice`.
fn offered_tools(req: &ChatRequest) -> Result<Vec<ToolSpec>, String> {
    let mut tools = Vec::with_capacity(req.tools.len());
    for (i, t) in req.tools.iter().enumerate() {
        tools.push(ToolSpec::from_wire(t).ok_or_else(|| format!("tools[{i}] has no function name"))?);
    }
    match &req.tool_choice {
        None => Ok(tools),
        Some(Value::String(c)) if c == "auto" || c == "required" => Ok(tools),
        Some(Value::String(c)) if c == "none" => Ok(Vec::new()),
        Some(v) => match v["function"]["name"].as_str() {
            Some(name) => {
                tools.retain(|t| t.name == name);
                if tools.is_empty() {
                    return Err(format!("tool_choice names '{name}', which is not in tools"));
                }
                Ok(tools)
            }
            None => Err("tool_choice must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}".into()),
        },
    }
}

/// What the answer must be: a tool call when `tool_choice` requires one, JSON
/// when `response_format` asks for it; the model can then write nothing else.
fn required_shape(req: &ChatRequest, tools: &[ToolSpec]) -> Result<Option<Constraint>, (&'static str, String)> {
    let call_required = match &req.tool_choice {
        Some(Value::String(c)) => c == "required",
        Some(Value::Object(_)) => true,
        _ => false,
    };
    if call_required && !tools.is_empty() {
        return Ok(Some(Constraint::ToolCall));
    }
    let Some(format) = &req.response_format else { return Ok(None) };
    match format["type"].as_str() {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Constraint::Json { schema: None })),
        Some("json_schema") => match &format["json_schema"]["schema"] {
            Value::Object(_) => Ok(Some(Constraint::Json { schema: Some(format["json_schema"]["schema"].clone()) })),
            _ => Err(("response_format", "response_format.json_schema.schema must be a JSON schema object".into())),
        },
        Some(other) => Err((
            "response_format",
            format!("response_format type '{other}' is not known; use text, json_object or json_schema"),
        )),
    }
}

/// The reply's text, with any call that could not be read written out after
/// it: a client cannot run it, but the person must be able to see it.
fn shown_text(c: &crate::engine::Completion) -> String {
    let mut text = c.text.clone();
    for b in &c.broken_calls {
        text.push_str(&broken_text(b));
    }
    text
}

fn broken_text(b: &crate::engine::BrokenCall) -> String {
    format!("\n[a tool call that could not be read ({}): {}]", b.why, b.text)
}

fn usage_json(u: &crate::engine::Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": { "cached_tokens": u.cached_tokens },
    })
}
