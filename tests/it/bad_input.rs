//! Each bad input gets one clear sentence and a non-zero exit, never a panic.

use crate::common::{default_model, duet, stderr};
use std::io::Write;
use std::path::Path;

fn expect_error(args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    let home = tempfile::tempdir().expect("tempdir");
    let out = duet(args, home.path(), env);
    let err = stderr(&out);
    assert!(!out.status.success(), "{args:?} should fail; stderr: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected {n:?} in: {err}");
    }
    err
}

/// A GGUF header with only `general.architecture` set (no tensors).
fn tiny_gguf(path: &Path, arch: &str) {
    let mut b: Vec<u8> = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes()); // version
    b.extend_from_slice(&0u64.to_le_bytes()); // tensors
    b.extend_from_slice(&1u64.to_le_bytes()); // metadata entries
    let key = "general.architecture";
    b.extend_from_slice(&(key.len() as u64).to_le_bytes());
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(&8u32.to_le_bytes()); // string
    b.extend_from_slice(&(arch.len() as u64).to_le_bytes());
    b.extend_from_slice(arch.as_bytes());
    std::fs::write(path, b).expect("write");
}

#[test]
fn a_missing_model_file_says_so() {
    expect_error(&["ask", "hi", "--model", "/nonexistent/model.gguf"], &[], &["does not exist"]);
}

#[test]
fn a_file_that_is_not_gguf_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("notes.gguf");
    std::fs::write(&p, "just some text, not a model").expect("write");
    expect_error(&["ask", "hi", "--model", p.to_str().expect("utf8")], &[], &["not a GGUF model file"]);
}

#[test]
fn a_truncated_gguf_says_download_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("cut.gguf");
    let bytes = std::fs::read(default_model()).expect("read model");
    std::fs::write(&p, &bytes[..bytes.len() / 3]).expect("write");
    expect_error(&["ask", "hi", "--model", p.to_str().expect("utf8")], &[], &["truncated", "Download it again"]);
}

#[test]
fn an_unsupported_architecture_names_the_supported_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("other.gguf");
    tiny_gguf(&p, "mamba2");
    expect_error(&["ask", "hi", "--model", p.to_str().expect("utf8")], &[], &["'mamba2' is not supported", "llama"]);
}

#[test]
fn an_empty_prompt_is_refused() {
    expect_error(&["ask", "   "], &[], &["prompt is empty"]);
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    default_model(); // fetched by this process first, not by the child
    let long = "tell me more ".repeat(40);
    expect_error(&["ask", &long, "--context", "64"], &[], &["reads at most 64"]);
}

#[test]
fn no_pip_and_no_network_says_which_file_to_put_where() {
    let models = tempfile::tempdir().expect("tempdir");
    let m = models.path().to_str().expect("utf8");
    let env = [("DUET_MODELS", m), ("DUET_PYTHON", "/nonexistent/python3"), ("HF_ENDPOINT", "http://127.0.0.1:9")];
    let err = expect_error(
        &["ask", "hi"],
        &env,
        &["SmolLM2-135M-Instruct.Q4_1.gguf", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", m],
    );
    assert!(err.contains("pip"), "{err}");
    let offline = expect_error(&["--offline", "ask", "hi"], &env[..1], &["offline mode is on", "b179c9523d0e"]);
    assert!(!offline.contains("Hugging Face hub:"), "offline must not try the network: {offline}");
    assert_eq!(std::fs::read_dir(models.path()).map(|d| d.count()).unwrap_or(0), 0, "nothing may be left behind");
}

#[test]
fn a_damaged_model_is_caught_by_its_hash_and_never_used() {
    let models = tempfile::tempdir().expect("tempdir");
    let dir = models.path().join("smollm2-135m");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let target = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut bytes = std::fs::read(default_model()).expect("read model");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF; // same size, one byte wrong
    std::fs::File::create(&target).and_then(|mut f| f.write_all(&bytes)).expect("write");
    let m = models.path().to_str().expect("utf8");
    expect_error(&["models", "verify", "smollm2-135m"], &[("DUET_MODELS", m)], &[]);
    let home = tempfile::tempdir().expect("tempdir");
    let out = duet(&["models", "verify", "smollm2-135m"], home.path(), &[("DUET_MODELS", m)]);
    assert!(crate::common::stdout(&out).contains("damaged"), "{}", crate::common::stdout(&out));
    // Offline, the damaged file is reported, not loaded.
    expect_error(&["--offline", "ask", "hi"], &[("DUET_MODELS", m)], &["damaged", "offline mode is on"]);
}

#[test]
fn classify_refuses_a_binary_file_and_a_file_whose_header_is_a_review() {
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = dir.path().join("ls.csv");
    let mut bytes = b"\x7fELF\x02\x01\x01\x00".to_vec();
    bytes.extend((0..20_000u32).map(|i| (i * 7 % 251) as u8));
    std::fs::write(&binary, bytes).expect("write");
    expect_error(&["classify", binary.to_str().expect("utf8")], &[], &["looks like a binary file", "CSV, TSV, TXT"]);
    let one_line = dir.path().join("wall.csv");
    std::fs::write(&one_line, "The soup was cold and the waiter was rude. ".repeat(500)).expect("write");
    expect_error(&["classify", one_line.to_str().expect("utf8")], &[], &["header row", "name the file .txt"]);
}
