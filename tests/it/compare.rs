//! Compare on the real local model and "cloud" profiles pointed at `duet serve`
//! on 127.0.0.1: both columns filled with sane metrics, cost from the catalog's
//! prices, a failing backend confined to its own column, verdicts exported.

use crate::common::{default_model, engine};
use duet::catalog::Catalog;
use duet::config::CloudProfile;
use duet::db::Db;
use duet::engine::cloud::{backend_for, CloudOptions};
use duet::engine::local::{LoadOptions, LocalEngine};
use duet::engine::BackendSpec;
use duet::engine::{GenRequest, Message, SamplingParams};
use duet::secret::Secret;
use duet::server::{start, ServerConfig};
use duet::tasks::compare::{preference_pairs_jsonl, tallies, Comparison, Contender, Verdict};

fn profile(name: &str, addr: std::net::SocketAddr, key: &str) -> CloudProfile {
    CloudProfile {
        name: name.into(),
        base_url: format!("http://{addr}/v1"),
        // Named like a real cloud model, so its price comes from models.toml.
        model: "gpt-4o-mini".into(),
        key_env: Some("DUET_TEST_UNSET_KEY_VAR".into()),
        key: Some(key.into()),
        usd_per_m_input: 0.0,
        usd_per_m_output: 0.0,
    }
}

#[test]
fn local_and_cloud_side_by_side_with_one_backend_failing() {
    let server_engine = LocalEngine::start(&default_model(), LoadOptions::default()).expect("loads");
    let server = start(
        server_engine,
        ServerConfig {
            port: 0,
            token: Some(Secret::new("sk-right")),
            // It stands in for a hosted model, under that model's name.
            model_id: "gpt-4o-mini".into(),
            ..Default::default()
        },
    )
    .expect("serves");
    let catalog = Catalog::builtin().expect("catalog");
    let good = profile("lab", server.addr, "sk-right");
    let bad = profile("broken", server.addr, "sk-wrong");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let down = profile("down", closed, "sk-right");
    let contenders = vec![
        Contender { spec: BackendSpec::Local, backend: Box::new(engine().clone()), prices: None },
        Contender {
            spec: BackendSpec::cloud("lab"),
            backend: Box::new(backend_for(&good, CloudOptions::default())),
            prices: Some(catalog.prices_for(&good)),
        },
        Contender {
            spec: BackendSpec::cloud("broken"),
            backend: Box::new(backend_for(&bad, CloudOptions::default())),
            prices: Some(catalog.prices_for(&bad)),
        },
        Contender {
            spec: BackendSpec::cloud("down"),
            backend: Box::new(backend_for(&down, CloudOptions::default())),
            prices: Some(catalog.prices_for(&down)),
        },
    ];
    let mut req = GenRequest::new(vec![Message::user("What is the capital of France?")]);
    req.sampling = SamplingParams { temperature: 0.0, ..SamplingParams::default() };
    req.max_tokens = 40;
    let mut cmp = Comparison::start(contenders, "What is the capital of France?", "", req);
    cmp.wait();
    let [local, cloud, broken, down] = &cmp.columns[..] else { panic!("four columns") };
    for c in [local, cloud] {
        assert!(c.error.is_none(), "{:?}", c.error);
        assert!(c.text.contains("Paris"), "{}", c.text);
        assert!(c.stats.prompt_tokens > 0 && c.stats.completion_tokens > 0);
        assert!(c.stats.ttft_ms > 0.0 && c.stats.total_ms >= c.stats.ttft_ms && c.stats.tok_per_s > 0.0, "{c:?}");
    }
    assert_eq!(local.stats.location_text(), "stayed on this computer");
    assert_eq!(local.stats.cost_usd, None, "local is free and says so");
    assert!(cloud.stats.location.to_string().starts_with("sent to 127.0.0.1"));
    let expected = (cloud.stats.prompt_tokens as f64 * 0.15 + cloud.stats.completion_tokens as f64 * 0.60) / 1e6;
    assert!((cloud.stats.cost_usd.expect("a cost") - expected).abs() < 1e-12, "catalog price for gpt-4o-mini");
    let err = broken.error.as_deref().expect("the wrong key fails");
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("sk-wrong"), "the key never appears in errors");
    // The prompt reached the server that refused the key; nothing reached the closed port.
    assert!(broken.stats.location_text().starts_with("sent to 127.0.0.1"), "{}", broken.stats.location_text());
    let err = down.error.as_deref().expect("a closed port fails");
    assert!(err.contains("nothing is answering"), "{err}");
    assert_eq!(down.stats.location_text(), "nothing was sent (no connection was made)");

    let db = Db::in_memory().expect("db");
    let id = cmp.save(&db).expect("saved");
    db.save_verdict(id, 0, 1, Verdict::B.as_str()).expect("verdict");
    let jsonl = preference_pairs_jsonl(&db).expect("export");
    let line: serde_json::Value = serde_json::from_str(jsonl.trim()).expect("one JSON object per line");
    assert_eq!(line["prompt"], "What is the capital of France?");
    assert_eq!(line["chosen"], cloud.text.as_str());
    assert_eq!(line["rejected"], local.text.as_str());
    assert_eq!(tallies(&db).expect("tally").len(), 1);
    server.shutdown();
}
