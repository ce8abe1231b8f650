//! The cloud client against a real HTTP server on 127.0.0.1 that plays an
//! OpenAI-compatible provider misbehaving in each of the ways providers do.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use duet::engine::cloud::{CloudBackend, CloudOptions};
use duet::engine::{Backend, Cancel, Event, FinishReason, GenRequest, Message};
use duet::secret::Secret;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "sk-test-0123456789-secret";

#[derive(Default)]
struct Provider {
    calls: Mutex<HashMap<String, usize>>,
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

fn sse(events: &[&str]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

fn chunk(text: &str) -> String {
    serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}).to_string()
}

fn stream_body(parts: Vec<(u64, String)>) -> Body {
    let s = futures_util::stream::unfold(parts.into_iter(), |mut it| async move {
        let (delay_ms, text) = it.next()?;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(text)), it))
    });
    Body::from_stream(s)
}

async fn completions(
    State(p): State<Arc<Provider>>,
    Path(case): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let n = {
        let mut calls = p.calls.lock().unwrap_or_else(|e| e.into_inner());
        let c = calls.entry(case.clone()).or_insert(0);
        *c += 1;
        *c
    };
    let streaming = body.contains("\"stream\":true");
    let ok_stream = || {
        let usage = serde_json::json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}).to_string();
        let fin = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).to_string();
        (
            StatusCode::OK,
            [("content-type", "text/event-stream")],
            sse(&[&chunk("Hello"), &chunk(" world"), &fin, &usage, "[DONE]"]),
        )
            .into_response()
    };
    let authed = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"));
    match case.as_str() {
        "ok" if !streaming => axum::Json(serde_json::json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello world"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
        }))
        .into_response(),
        "logprobs" if body.contains("\"top_logprobs\":5") => axum::Json(serde_json::json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Positive"}, "finish_reason": "stop",
                "logprobs": {"content": [{"token": "Positive", "logprob": -0.1,
                    "top_logprobs": [
                        {"token": "Positive", "logprob": (0.72f64).ln()},
                        {"token": "Negative", "logprob": (0.18f64).ln()},
                        {"token": "The", "logprob": (0.05f64).ln()}
                    ]}]}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41}
        }))
        .into_response(),
        "ok" if authed => ok_stream(),
        "ok" => (StatusCode::BAD_REQUEST, "the test client must send the key").into_response(),
        "auth" => (StatusCode::UNAUTHORIZED, format!(r#"{{"error":{{"message":"Incorrect API key provided: {KEY}"}}}}"#)).into_response(),
        "model404" => (StatusCode::NOT_FOUND, r#"{"error":{"message":"The model does not exist"}}"#).into_response(),
        "ratelimit" if n == 1 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response(),
        "flaky" if n == 1 => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        "ratelimit" | "flaky" => ok_stream(),
        "always500" => (StatusCode::BAD_GATEWAY, r#"{"error":{"message":"upstream down"}}"#).into_response(),
        "cut" => (StatusCode::OK, [("content-type", "text/event-stream")], sse(&[&chunk("Hel")])).into_response(),
        "garbage" => (StatusCode::OK, [("content-type", "text/event-stream")], "data: {this is not json\n\n").into_response(),
        "stall" => {
            let parts = vec![(0, format!("data: {}\n\n", chunk("Hi"))), (10_000, "data: [DONE]\n\n".to_string())];
            (StatusCode::OK, [("content-type", "text/event-stream")], stream_body(parts)).into_response()
        }
        "batch" => {
            use std::sync::atomic::Ordering::SeqCst;
            let now = p.in_flight.fetch_add(1, SeqCst) + 1;
            p.max_in_flight.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_millis(150)).await;
            p.in_flight.fetch_sub(1, SeqCst);
            ok_stream()
        }
        "long" => {
            let mut body: String = (0..5000).map(|_| format!("data: {}\n\n", chunk("x"))).collect();
            body.push_str("data: [DONE]\n\n");
            (StatusCode::OK, [("content-type", "text/event-stream")], body).into_response()
        }
        "slow" => {
            let parts = (0..50).map(|i| (100, format!("data: {}\n\n", chunk(&format!("w{i} "))))).collect();
            (StatusCode::OK, [("content-type", "text/event-stream")], stream_body(parts)).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

struct Fake {
    base: String,
    provider: Arc<Provider>,
}

fn fake_provider() -> Fake {
    let provider = Arc::new(Provider::default());
    let app = Router::new().route("/{case}/v1/chat/completions", post(completions)).with_state(provider.clone());
    let listener = duet::runtime().block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    duet::runtime().spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Fake { base: format!("http://{addr}"), provider }
}

fn client(fake: &Fake, case: &str, opts: CloudOptions) -> CloudBackend {
    CloudBackend::new("test", &format!("{}/{case}/v1", fake.base), "gpt-test", Some(Secret::new(KEY)), opts)
}

fn quick() -> CloudOptions {
    CloudOptions {
        idle_timeout: Duration::from_secs(2),
        max_retries: 2,
        max_backoff: Duration::from_secs(2),
        ..CloudOptions::default()
    }
}

fn hello() -> GenRequest {
    GenRequest::new(vec![Message::user("Say hello")])
}

#[test]
fn streams_an_answer_with_usage_and_says_where_it_went() {
    let fake = fake_provider();
    let c = client(&fake, "ok", quick());
    let mut deltas = Vec::new();
    let mut done = None;
    for e in c.generate(hello(), Cancel::new()) {
        match e {
            Event::Delta(t) => deltas.push(t),
            Event::Done(d) => done = Some(d),
            Event::Error(e) => panic!("{e}"),
        }
    }
    let done = done.expect("done");
    assert_eq!(deltas, ["Hello", " world"]);
    assert_eq!(done.text, "Hello world");
    assert_eq!((done.usage.prompt_tokens, done.usage.completion_tokens), (9, 2));
    assert!(c.data_location().to_string().starts_with("sent to 127.0.0.1:"));
    let whole = client(&fake, "ok", CloudOptions { stream: false, ..quick() })
        .complete(hello(), Cancel::new())
        .expect("non-streaming");
    assert_eq!(whole.text, "Hello world");
}

#[test]
fn a_rejected_key_says_what_to_do_and_never_shows_the_key() {
    let fake = fake_provider();
    let err = client(&fake, "auth", quick()).complete(hello(), Cancel::new()).unwrap_err().to_string();
    assert!(err.contains("rejected (401)") && err.contains("OPENAI_API_KEY"), "{err}");
    assert!(!err.contains(KEY), "the key leaked into the error: {err}");
    let err = client(&fake, "model404", quick()).complete(hello(), Cancel::new()).unwrap_err().to_string();
    assert!(err.contains("does not know the model 'gpt-test'"), "{err}");
}

#[test]
fn a_profile_without_a_key_says_the_key_is_missing() {
    let fake = fake_provider();
    let keyless = CloudBackend::new("lab", &format!("{}/auth/v1", fake.base), "gpt-test", None, quick());
    let err = keyless.complete(hello(), Cancel::new()).unwrap_err().to_string();
    assert!(err.contains("the profile 'lab' has none") && err.contains("duet cloud key lab"), "{err}");
}

#[test]
fn rate_limits_and_server_errors_are_retried_a_bounded_number_of_times() {
    let fake = fake_provider();
    let ok = client(&fake, "ratelimit", quick()).complete(hello(), Cancel::new()).expect("second try succeeds");
    assert_eq!(ok.text, "Hello world");
    let ok = client(&fake, "flaky", quick()).complete(hello(), Cancel::new()).expect("second try succeeds");
    assert_eq!(ok.text, "Hello world");
    let err = client(&fake, "always500", quick()).complete(hello(), Cancel::new()).unwrap_err().to_string();
    assert!(err.contains("server error (502) 3 times") && err.contains("upstream down"), "{err}");
    let calls = fake.provider.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!((calls["ratelimit"], calls["flaky"], calls["always500"]), (2, 2, 3));
}

#[test]
fn broken_streams_give_clear_errors() {
    let fake = fake_provider();
    let err = client(&fake, "cut", quick()).complete(hello(), Cancel::new()).unwrap_err().to_string();
    assert!(err.contains("closed the stream before the answer was finished"), "{err}");
    let err = client(&fake, "garbage", quick()).complete(hello(), Cancel::new()).unwrap_err().to_string();
    assert!(err.contains("cannot read"), "{err}");
    let err = client(&fake, "stall", CloudOptions { idle_timeout: Duration::from_millis(500), ..quick() })
        .complete(hello(), Cancel::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("stopped sending"), "{err}");
    let nobody = CloudBackend::new("test", "http://127.0.0.1:1/v1", "m", None, quick());
    let err = nobody.complete(hello(), Cancel::new()).unwrap_err().to_string();
    // A refused port is a server that is not running, not a missing network (#20.14).
    assert!(err.contains("nothing is answering at 127.0.0.1:1") && err.contains("local model"), "{err}");
    assert!(!err.contains("offline"), "{err}");
}

#[test]
fn cancel_closes_the_stream() {
    let fake = fake_provider();
    let cancel = Cancel::new();
    let mut deltas = 0;
    for e in client(&fake, "slow", quick()).generate(hello(), cancel.clone()) {
        match e {
            Event::Delta(_) => {
                deltas += 1;
                if deltas == 2 {
                    cancel.cancel();
                }
            }
            Event::Done(d) => {
                assert_eq!(d.finish_reason, FinishReason::Cancelled);
                assert!(deltas <= 3, "{deltas} deltas arrived after cancel");
                return;
            }
            Event::Error(e) => panic!("{e}"),
        }
    }
    panic!("no Done after cancel");
}

#[test]
fn batches_fan_out_with_bounded_concurrency() {
    let fake = fake_provider();
    let reqs = vec![hello(); 12];
    let results = client(&fake, "batch", quick()).complete_many(reqs, 3, &Cancel::new());
    assert_eq!(results.len(), 12);
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|c| c.text == "Hello world")));
    let max = fake.provider.max_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&max), "at most 3 requests may be in flight, and more than one should be: {max}");
    // A long answer in a batch (more chunks than any channel would hold) still completes.
    let long = client(&fake, "long", quick()).complete_many(vec![hello()], 1, &Cancel::new());
    assert_eq!(long[0].as_ref().map(|c| c.text.len()).map_err(|e| e.to_string()), Ok(5000));
}

#[test]
fn cloud_classification_uses_logprobs_when_offered_and_words_when_not() {
    use duet::tasks::classify::{Classifier, ClassifyConfig, CloudClassifier, UNCLEAR};
    let fake = fake_provider();
    let labels = vec!["positive".to_string(), "negative".to_string()];
    let mut with =
        CloudClassifier::new(client(&fake, "logprobs", quick()), ClassifyConfig::new(labels.clone()), Cancel::new())
            .expect("classifier");
    let v = with.classify("The mochi is excellent!").expect("answer");
    assert_eq!(v.label, "positive");
    assert!((v.confidence - 0.8).abs() < 1e-9, "0.72 / (0.72 + 0.18): {}", v.confidence);
    assert!((v.scores.iter().sum::<f64>() - 1.0).abs() < 1e-9);

    let mut plain = CloudClassifier::new(client(&fake, "ok", quick()), ClassifyConfig::new(labels), Cancel::new())
        .expect("classifier");
    let v = plain.classify("The mochi is excellent!").expect("answer");
    assert_eq!(v.label, UNCLEAR, "\"Hello world\" names no label");
    assert!(v.note.contains("Hello world"), "{}", v.note);
}

/// A batch in which every row is refused (a wrong key) is not a success: the
/// command fails, says how many rows failed and why (without the key), and the
/// run is left resumable; a resume with the right key classifies those rows.
#[test]
fn a_cloud_run_whose_rows_all_fail_says_so_and_can_be_resumed() {
    use crate::common::{duet, stderr, stdout};
    let fake = fake_provider();
    let home = tempfile::tempdir().expect("tempdir");
    let settings = format!(
        "[[cloud]]\nname = \"lab\"\nbase_url = \"{}/auth/v1\"\nmodel = \"gpt-test\"\nkey_env = \"LAB_KEY\"\n",
        fake.base
    );
    std::fs::write(home.path().join("settings.toml"), settings).expect("settings");
    let o = duet(&["classify", "--example", "--backend", "cloud:lab"], home.path(), &[("LAB_KEY", KEY)]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(!o.status.success(), "every row failed, yet it exited 0: {out}{err}");
    assert!(err.contains("5 of 5 rows could not be classified") && err.contains("rejected (401)"), "{err}");
    assert!(err.contains("duet classify --resume 1"), "says how to go on: {err}");
    assert!(!out.contains(KEY) && !err.contains(KEY), "the key leaked");

    // The same run, pointed at a provider that accepts the key, goes on from the failed rows.
    let fixed = std::fs::read_to_string(home.path().join("settings.toml")).expect("settings").replace("/auth/", "/ok/");
    std::fs::write(home.path().join("settings.toml"), fixed).expect("settings");
    let o = duet(&["classify", "--resume", "1", "--json"], home.path(), &[("LAB_KEY", KEY)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["runs"][0]["summary"]["failed"], 0, "{v}");
    assert_eq!(
        v["runs"][0]["summary"]["counts"][2],
        serde_json::json!(["unclear", 5]),
        "\"Hello world\" names no label: {v}"
    );
}
