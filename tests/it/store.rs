//! The store's hub path against a real HTTP server on 127.0.0.1 that answers
//! the way the Hugging Face hub does (resolve URLs, ranges, LFS ETags).

use duet::catalog::Catalog;
use duet::config::Paths;
use duet::progress::{Cancel, Silent};
use duet::store::{FileState, Store, StoreError};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct FakeHub {
    endpoint: String,
    requests: Arc<AtomicUsize>,
}

/// Serves `body` for any `/…/resolve/main/<file>` with the hub's headers;
/// `etag` is what the hub claims the content hash is.
fn fake_hub(body: Vec<u8>, etag: String) -> FakeHub {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut start = 0usize;
            let mut end = body.len().saturating_sub(1);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(r) = l.strip_prefix("range: bytes=") {
                    let (a, b) = r.split_once('-').unwrap_or((r, ""));
                    start = a.parse().unwrap_or(0);
                    if let Ok(b) = b.parse() {
                        end = b;
                    }
                }
                line.clear();
            }
            let chunk = &body[start.min(body.len())..(end + 1).min(body.len())];
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {start}-{end}/{}\r\nx-repo-commit: {}\r\nx-linked-etag: \"{etag}\"\r\nconnection: close\r\n\r\n",
                chunk.len(),
                body.len(),
                "a".repeat(40)
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(chunk);
        }
    });
    FakeHub { endpoint, requests }
}

fn catalog(sha256: &str, size: usize) -> Catalog {
    Catalog::parse(&format!(
        r#"
[[model]]
id = "tiny"
name = "Tiny"
kind = "chat"
family = "test"
architecture = "llama"
parameters = "1"
quantization = "F32"
context_length = 16
license = "MIT"
chat_template = "gguf"
hf_repo = "someone/tiny-GGUF"
default = true
[[model.files]]
name = "tiny.gguf"
hf_file = "tiny.gguf"
size_bytes = {size}
sha256 = "{sha256}"
"#
    ))
    .expect("test catalog parses")
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn payload() -> Vec<u8> {
    (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn store_at(dir: &std::path::Path, endpoint: &str) -> Store {
    Store::new(Paths::resolve(Some(dir.to_path_buf()), Some(dir.join("models"))), false).with_hf_endpoint(endpoint)
}

#[test]
fn hub_download_is_verified_kept_and_not_fetched_again() {
    let body = payload();
    let hub = fake_hub(body.clone(), sha(&body));
    let home = tempfile::tempdir().expect("tempdir");
    let store = store_at(home.path(), &hub.endpoint);
    let cat = catalog(&sha(&body), body.len());
    let entry = cat.default_model();
    let path = store.ensure(entry, &Silent, &Cancel::new()).expect("fetches from the local hub");
    assert_eq!(std::fs::read(&path).expect("read"), body);
    assert_eq!(store.state(entry, entry.main_file()), FileState::Verified);
    let before = hub.requests.load(Ordering::SeqCst);
    store.ensure(entry, &Silent, &Cancel::new()).expect("second time");
    assert_eq!(hub.requests.load(Ordering::SeqCst), before, "a verified file must not be fetched again");
}

#[test]
fn hub_bytes_with_the_wrong_hash_never_land() {
    let body = payload();
    let mut bad = body.clone();
    bad[1234] ^= 1;
    let hub = fake_hub(bad.clone(), sha(&bad));
    let home = tempfile::tempdir().expect("tempdir");
    let store = store_at(home.path(), &hub.endpoint);
    let cat = catalog(&sha(&body), body.len());
    let entry = cat.default_model();
    let err = store.ensure(entry, &Silent, &Cancel::new()).unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("duet models pull tiny"), "the fix names the model id: {err}");
    let dir = store.model_dir(entry);
    let left: Vec<_> =
        std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "nothing may be left that looks like a model: {left:?}");
}

#[test]
fn hub_only_entries_trust_the_hubs_lfs_hash() {
    let body = payload();
    let hub = fake_hub(body.clone(), sha(&body));
    let home = tempfile::tempdir().expect("tempdir");
    let store = store_at(home.path(), &hub.endpoint);
    let cat = catalog("", body.len());
    let entry = cat.default_model();
    store.ensure(entry, &Silent, &Cancel::new()).expect("fetches");
    store.verify(entry, &Silent).expect("verifies against the recorded hub hash");
}

/// When no source answers, the error says what was tried and why, gives the
/// file's real hash or says none is recorded, and only blames offline mode
/// when offline mode is what stopped it.
#[test]
fn a_failed_fetch_says_what_was_tried_and_gives_the_real_hash() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let home = tempfile::tempdir().expect("tempdir");
    for sha256 in ["", &"ab".repeat(32)] {
        let cat = catalog(sha256, 1000);
        let entry = cat.default_model();
        let err = store_at(home.path(), &closed).ensure(entry, &Silent, &Cancel::new()).unwrap_err().to_string();
        assert!(err.contains("Tried:") && err.contains("Hugging Face hub"), "{err}");
        assert!(!err.contains("offline") && !err.contains("network on"), "the network is on: {err}");
        if sha256.is_empty() {
            assert!(err.contains("the catalog records no sha256"), "{err}");
        } else {
            assert!(err.contains(&format!("sha256 {sha256}")), "{err}");
        }
        let offline = Store::new(Paths::resolve(Some(home.path().to_path_buf()), Some(home.path().join("m"))), true);
        let err = offline.ensure(entry, &Silent, &Cancel::new()).unwrap_err().to_string();
        assert!(err.contains("turn offline mode off"), "{err}");
    }
}
