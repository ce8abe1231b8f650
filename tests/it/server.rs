//! `duet serve` on 127.0.0.1 with the real default model, used through duet's
//! own cloud client and through raw HTTP.

use crate::common::default_model;
use duet::engine::cloud::{CloudBackend, CloudOptions};
use duet::engine::local::{LoadOptions, LocalEngine};
use duet::engine::{Backend, Cancel, GenRequest, Message, SamplingParams};
use duet::secret::Secret;
use duet::server::{start, ServerConfig, ServerError, ServerHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// One engine for the server tests (its own, so long generations here never
/// hold up the other tests' engine).
fn engine() -> LocalEngine {
    static E: OnceLock<LocalEngine> = OnceLock::new();
    E.get_or_init(|| LocalEngine::start(&default_model(), LoadOptions::default()).expect("loads")).clone()
}

fn serve(token: Option<&str>, queue: usize) -> ServerHandle {
    let cfg =
        ServerConfig { port: 0, token: token.map(Secret::new), queue, max_body_bytes: 64 * 1024, ..Default::default() };
    start(engine(), cfg).expect("server starts")
}

fn post(h: &ServerHandle, token: Option<&str>, body: String) -> (u16, serde_json::Value) {
    duet::runtime().block_on(async {
        let mut rb = reqwest::Client::new()
            .post(format!("http://{}/v1/chat/completions", h.addr))
            .body(body)
            .header("content-type", "application/json");
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    })
}

fn health(h: &ServerHandle) -> serde_json::Value {
    duet::runtime().block_on(async {
        reqwest::get(format!("http://{}/health", h.addr)).await.expect("health").json().await.expect("json")
    })
}

#[test]
fn the_cloud_client_through_duet_serve_gives_the_local_answer() {
    let h = serve(None, 4);
    let req = GenRequest { max_tokens: 24, ..GenRequest::new(vec![Message::user("What is the capital of France?")]) };
    let local = engine().complete(req.clone(), Cancel::new()).expect("local answer");
    for stream in [true, false] {
        let c = CloudBackend::new(
            "duet",
            &format!("http://{}/v1", h.addr),
            "smollm2-135m",
            None,
            CloudOptions { stream, ..Default::default() },
        );
        let remote = c.complete(req.clone(), Cancel::new()).expect("served answer");
        assert_eq!(remote.text, local.text, "stream={stream}");
        assert_eq!(remote.usage.completion_tokens, local.usage.completion_tokens);
        assert!(remote.usage.prompt_tokens > 0);
    }
    let models: serde_json::Value = duet::runtime()
        .block_on(async { reqwest::get(format!("http://{}/v1/models", h.addr)).await.expect("models").json().await })
        .expect("json");
    assert_eq!(models["data"][0]["id"], "smollm2-135m");
    h.shutdown();
}

#[test]
fn a_token_is_required_when_set() {
    let h = serve(Some("s3cret-token"), 4);
    let body = r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"Hi"}],"max_tokens":2}"#.to_string();
    let (status, err) = post(&h, None, body.clone());
    assert_eq!(status, 401);
    assert_eq!(err["error"]["code"], "invalid_api_key");
    assert_eq!(post(&h, Some("wrong"), body.clone()).0, 401);
    let (status, ok) = post(&h, Some("s3cret-token"), body);
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["object"], "chat.completion");
    assert!(start(engine(), ServerConfig { host: "0.0.0.0".into(), port: 0, ..Default::default() })
        .is_err_and(|e| matches!(e, ServerError::NeedsToken { .. })));
    h.shutdown();
}

#[test]
fn bad_requests_get_openai_shaped_errors() {
    let h = serve(None, 4);
    let (s, e) = post(&h, None, "{not json".into());
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_json")));
    let (s, e) = post(&h, None, r#"{"model":"gpt-9","messages":[{"role":"user","content":"Hi"}]}"#.into());
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("model_not_found")));
    let (s, e) = post(&h, None, r#"{"messages":[]}"#.into());
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("empty_messages")));
    let huge = format!(r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(100 * 1024));
    let (s, e) = post(&h, None, huge);
    assert_eq!((s, e["error"]["code"].as_str()), (413, Some("request_too_large")));
    h.shutdown();
}

/// A raw request, headers as given (a web page's, or a rebinding attacker's).
fn post_as(h: &ServerHandle, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    duet::runtime().block_on(async {
        let mut rb = reqwest::Client::new()
            .post(format!("http://{}/v1/chat/completions", h.addr))
            .body(r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}"#);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    })
}

#[test]
fn web_pages_cannot_drive_the_loopback_server() {
    let h = serve(None, 4);
    let json = ("content-type", "application/json");
    let (s, e) = post_as(&h, &[("content-type", "text/plain")]);
    assert_eq!((s, e["error"]["code"].as_str()), (415, Some("not_json")), "a no-preflight cross-site POST: {e}");
    let (s, e) = post_as(&h, &[json, ("origin", "http://evil.example")]);
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("origin_not_allowed")), "{e}");
    assert!(e["error"]["message"].as_str().is_some_and(|m| m.contains("--allow-origin http://evil.example")), "{e}");
    let (s, e) = post_as(&h, &[json, ("host", "attacker.example")]);
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("bad_host")), "DNS rebinding: {e}");
    let (s, e) = post_as(&h, &[json, ("host", &format!("localhost:{}", h.addr.port()))]);
    assert_eq!(s, 200, "a program on this computer still gets its answer: {e}");
    h.shutdown();

    let cfg = ServerConfig {
        port: 0,
        allow_origins: vec!["http://localhost:3000".into()],
        max_body_bytes: 64 * 1024,
        ..Default::default()
    };
    let h = start(engine(), cfg).expect("server starts");
    let (s, e) = post_as(&h, &[json, ("origin", "http://localhost:3000")]);
    assert_eq!(s, 200, "an allowed page is answered: {e}");
    h.shutdown();
}

#[test]
fn a_long_answer_is_cut_at_the_time_limit_and_says_length() {
    let cfg = ServerConfig { port: 0, max_request_seconds: 1, max_body_bytes: 64 * 1024, ..Default::default() };
    let h = start(engine(), cfg).expect("server starts");
    let long = serde_json::json!({
        "messages": [{"role": "user", "content": "Write a very long story about a ship."}],
        "max_tokens": 3000, "temperature": 0.8
    });
    let (s, v) = post(&h, None, long.to_string());
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length", "{v}");
    let tokens = v["usage"]["completion_tokens"].as_u64().unwrap_or(0);
    assert!(tokens > 0 && tokens < 3000, "cut short with what it had: {tokens}");
    // The worker lets go just after it sends the answer.
    let free = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        health(&h)["active"] == 0
    });
    assert!(free, "the model is free again");
    h.shutdown();
}

#[test]
fn out_of_range_parameters_are_refused_with_the_parameter_named() {
    let h = serve(None, 4);
    let hi = r#""messages":[{"role":"user","content":"Hi"}]"#;
    for (extra, param) in [
        (r#""temperature":-5"#, "temperature"),
        (r#""temperature":2.5"#, "temperature"),
        (r#""top_p":7"#, "top_p"),
        (r#""top_p":0"#, "top_p"),
        (r#""n":5"#, "n"),
        (r#""max_tokens":0"#, "max_tokens"),
    ] {
        let (s, e) = post(&h, None, format!("{{{hi},{extra}}}"));
        assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_value")), "{extra}: {e}");
        assert_eq!(e["error"]["param"].as_str(), Some(param), "{extra}: {e}");
    }
    let (s, e) = post(&h, None, r#"{"messages":[{"role":"wizard","content":"Hi"}]}"#.into());
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_role")), "{e}");
    // In range still answers.
    let (s, e) = post(&h, None, format!(r#"{{{hi},"temperature":0,"top_p":1,"n":1,"max_tokens":4}}"#));
    assert_eq!(s, 200, "{e}");
    h.shutdown();
}

#[test]
fn a_full_queue_answers_busy_at_once_and_a_disconnect_cancels() {
    let h = serve(None, 0);
    let long = serde_json::json!({
        "messages": [{"role": "user", "content": "Write a very long story about a ship."}],
        "max_tokens": 3000, "stream": true, "temperature": 0
    })
    .to_string();
    let addr = h.addr;
    // Hold one streaming request open: the engine is busy, the queue (0) is full.
    let first = duet::runtime().block_on(async {
        let mut r = reqwest::Client::new()
            .post(format!("http://{addr}/v1/chat/completions"))
            .body(long.clone())
            .send()
            .await
            .expect("first");
        assert_eq!(r.status().as_u16(), 200);
        let _ = r.chunk().await; // the stream has started
        r
    });
    let short = r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}"#.to_string();
    let (status, e) = post(&h, None, short.clone());
    assert_eq!(status, 503, "{e}");
    assert_eq!(e["error"]["code"], "busy");
    // Hang up: the generation must stop long before its 3000 tokens.
    drop(first);
    let mut cancelled = false;
    for _ in 0..100 {
        if health(&h)["cancelled_total"].as_u64() == Some(1) && health(&h)["active"].as_u64() == Some(0) {
            cancelled = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cancelled, "the generation went on after the client left: {}", health(&h));
    assert_eq!(post(&h, None, short).0, 200, "the engine is free again");
    h.shutdown();
}

#[test]
fn seeded_sampling_over_http_is_reproducible() {
    let h = serve(None, 4);
    let body = serde_json::json!({"messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":16,"temperature":0.9,"seed":7}).to_string();
    let a = post(&h, None, body.clone()).1["choices"][0]["message"]["content"].clone();
    let b = post(&h, None, body).1["choices"][0]["message"]["content"].clone();
    assert_eq!(a, b);
    let _ = SamplingParams::default();
    h.shutdown();
}
