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

/// A GGUF header with `general.alignment` = `alignment` and one F32 tensor
/// of `dims` at `offset` (no tensor data follows).
fn crafted_gguf(path: &Path, alignment: u32, dims: &[u64], offset: u64) {
    let mut b: Vec<u8> = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes()); // tensors
    b.extend_from_slice(&2u64.to_le_bytes()); // metadata entries
    let string = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    string(&mut b, "general.architecture");
    b.extend_from_slice(&8u32.to_le_bytes());
    string(&mut b, "llama");
    string(&mut b, "general.alignment");
    b.extend_from_slice(&4u32.to_le_bytes()); // u32
    b.extend_from_slice(&alignment.to_le_bytes());
    string(&mut b, "token_embd.weight");
    b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(&0u32.to_le_bytes()); // F32
    b.extend_from_slice(&offset.to_le_bytes());
    b.extend_from_slice(&[0u8; 64]);
    std::fs::write(path, b).expect("write");
}

#[test]
fn crafted_gguf_headers_are_refused_in_words_never_with_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, alignment, dims, offset) in [
        ("align0.gguf", 0u32, vec![8u64, 8], 0u64),
        ("huge-dims.gguf", 32, vec![32, 1 << 62], 0),
        ("wrapping-offset.gguf", 32, vec![8, 8], u64::MAX - 16),
    ] {
        let p = dir.path().join(name);
        crafted_gguf(&p, alignment, &dims, offset);
        let err = expect_error(&["ask", "hi", "--model", p.to_str().expect("utf8")], &[], &["damaged"]);
        assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{name}: {err}");
    }
}

/// A few hundred copies of the real model's header, each with a few bytes
/// changed (a fixed seed, so a failure repeats): every one opens or is refused
/// with an error; none panics.
#[test]
fn mutated_headers_of_the_real_model_never_panic() {
    use duet::engine::local::gguf::Gguf;
    let real = std::fs::read(default_model()).expect("model");
    // The header (metadata and vocabulary) is in the first megabytes; the copy is cut there.
    let head = &real[..real.len().min(3 << 20)];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mutated.gguf");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut refused, mut opened) = (0, 0);
    for case in 0..300 {
        let mut bytes = head.to_vec();
        // Most cases hit the counts, lengths and types near the start; some go anywhere in the header.
        let span = if case % 3 == 0 { bytes.len() } else { 4096 };
        for _ in 0..1 + next() % 4 {
            let at = 4 + (next() as usize) % (span - 4);
            bytes[at] = next() as u8;
        }
        std::fs::write(&path, &bytes).expect("write");
        match std::panic::catch_unwind(|| Gguf::open(&path).map(|_| ())) {
            Ok(Ok(())) => opened += 1,
            Ok(Err(e)) => {
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
            Err(_) => panic!("case {case}: Gguf::open panicked"),
        }
    }
    assert_eq!(opened + refused, 300);
    assert!(refused > 0, "the cut copy is truncated, so most must be refused");
}

/// The real model with one matrix of the wrong shape (32 × 1048576, which
/// once reached a worker and panicked it mid-answer): refused at load, naming
/// the tensor and the shape the model needs.
#[test]
fn a_misshapen_tensor_is_named_at_load_not_panicked_on() {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    use candle_core::{Device, Tensor};
    let src = default_model();
    let mut reader = std::io::BufReader::new(std::fs::File::open(&src).expect("opens"));
    let content = gguf_file::Content::read(&mut reader).expect("reads");
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for name in content.tensor_infos.keys() {
        let t = if name == "blk.3.attn_k.weight" {
            let zeros = Tensor::zeros((32, 1 << 20), candle_core::DType::F32, &Device::Cpu).expect("zeros");
            QTensor::quantize(&zeros, GgmlDType::Q4_1).expect("quantizes")
        } else {
            content.tensor(&mut reader, name, &Device::Cpu).expect("tensor")
        };
        tensors.push((name.clone(), t));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("misshapen.gguf");
    let metadata: Vec<(&str, &gguf_file::Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
    gguf_file::write(&mut std::fs::File::create(&bad).expect("creates"), &metadata, &refs).expect("writes");
    let err = expect_error(
        &["ask", "hi", "--model", bad.to_str().expect("utf8")],
        &[],
        &["blk.3.attn_k.weight has shape [32, 1048576]; this model needs [192, 576]"],
    );
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
}
