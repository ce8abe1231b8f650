//! duet against an exact float32 computation of the same model
//! (`scripts/reference/reference_forward.py`: the GGUF's weights dequantized by
//! the `gguf` package, the llama forward pass in numpy), teacher-forced.
//!
//! duet quantizes activations to 16 bits inside its matrix products (llama.cpp
//! uses 8), so its logits track the reference closely; the greedy choice must
//! agree wherever the reference is not a near-tie.

use crate::common::{gemma_model, load_model, read_json};
use duet::engine::local::{LoadOptions, LocalModel};

/// A top-2 gap below this (in logits) is a near-tie that rounding may flip.
/// (Measured: with 16-bit activations every position agreed, the smallest gap being 0.013.)
const NEAR_TIE: f32 = 0.02;
/// Largest allowed difference of any of the reference's top-16 logits (measured max: 0.009).
const LOGIT_TOLERANCE: f32 = 0.03;

#[test]
fn logits_and_greedy_choices_match_the_f32_reference() {
    let reference = read_json("reference_smollm2.json").expect("tests/data/reference_smollm2.json is missing");
    let checked = check_teacher_forced(&mut load_model(), &reference);
    assert!(checked >= 200, "the reference should cover a few hundred tokens");
}

/// Gemma 3 (sliding-window layers, q/k norms, sandwich norms, GELU, a 262k
/// vocabulary read quantized) on duet's kernels against its own numpy
/// reference (`scripts/reference/reference_forward_gemma3.py`).
#[test]
fn gemma3_logits_match_the_f32_reference() {
    let reference = read_json("reference_gemma3.json").expect("tests/data/reference_gemma3.json is missing");
    let mut model = gemma_model_loaded();
    assert!(model.backend_name().starts_with("duet kernels"), "gemma3 runs on {}", model.backend_name());
    let checked = check_teacher_forced(&mut model, &reference);
    assert!(checked >= 100, "the reference should cover a hundred tokens or more");
}

/// Teacher-forced logits of every reference sequence; returns how many positions were checked.
fn check_teacher_forced(model: &mut LocalModel, reference: &serde_json::Value) -> usize {
    let mut positions = 0;
    let mut decided = 0;
    let mut agree_decided = 0;
    let mut agree_all = 0;
    let mut worst = 0.0f32;
    let mut sum_abs = 0.0f64;
    let mut n_abs = 0usize;
    for seq in reference["sequences"].as_array().expect("sequences") {
        let logits = model.logits_each(&ids(&seq["ids"])).expect("forward");
        for (pos, want) in seq["positions"].as_array().expect("positions").iter().enumerate() {
            let got = &logits[pos];
            let ref_top = want["argmax"].as_u64().expect("argmax") as u32;
            let margin = want["margin"].as_f64().expect("margin") as f32;
            let ours = duet::engine::local::sampler::argmax(got);
            positions += 1;
            agree_all += usize::from(ours == ref_top);
            if margin >= NEAR_TIE {
                decided += 1;
                agree_decided += usize::from(ours == ref_top);
            }
            for pair in want["top"].as_array().expect("top") {
                let id = pair[0].as_u64().expect("id") as usize;
                let v = pair[1].as_f64().expect("logit") as f32;
                let d = (got[id] - v).abs();
                worst = worst.max(d);
                sum_abs += d as f64;
                n_abs += 1;
            }
        }
    }
    eprintln!(
        "reference: {positions} positions, argmax agrees at {agree_all} ({:.1}%), at {agree_decided}/{decided} non-near-tie positions; top-16 logit |diff| mean {:.4}, max {worst:.4}",
        100.0 * agree_all as f64 / positions as f64,
        sum_abs / n_abs as f64
    );
    assert_eq!(agree_decided, decided, "greedy choice differs from the f32 reference where it is not a near-tie");
    assert!(worst <= LOGIT_TOLERANCE, "a logit is {worst} away from the f32 reference (tolerance {LOGIT_TOLERANCE})");
    positions
}

/// Past the 512-key sliding window: the prompt (more than 512 tokens, in one
/// batch) then one token at a time, as a long chat would go.
#[test]
fn gemma3_past_its_sliding_window_matches_the_f32_reference() {
    let reference = read_json("reference_gemma3.json").expect("tests/data/reference_gemma3.json is missing");
    let long = &reference["long"];
    let ids = ids(&long["ids"]);
    let from = long["positions_from"].as_u64().expect("positions_from") as usize;
    assert!(from > 512, "the reference must reach past the window");
    let mut model =
        LocalModel::load(&gemma_model(), &LoadOptions { context_length: 1024, threads: 0 }).expect("gemma3 loads");
    let mut worst = 0.0f32;
    for (k, want) in long["positions"].as_array().expect("positions").iter().enumerate() {
        let pos = from + k;
        let got = if k == 0 { model.forward_raw(&ids[..=pos], 0) } else { model.forward_raw(&ids[pos..=pos], pos) }
            .expect("forward");
        let margin = want["margin"].as_f64().expect("margin") as f32;
        if margin >= NEAR_TIE {
            let ours = duet::engine::local::sampler::argmax(&got);
            assert_eq!(ours, want["argmax"].as_u64().expect("argmax") as u32, "greedy choice at position {pos}");
        }
        for pair in want["top"].as_array().expect("top") {
            let id = pair[0].as_u64().expect("id") as usize;
            worst = worst.max((got[id] - pair[1].as_f64().expect("logit") as f32).abs());
        }
    }
    eprintln!("past the window: top-16 logit |diff| max {worst:.4}");
    assert!(worst <= LOGIT_TOLERANCE, "a logit is {worst} away from the f32 reference (tolerance {LOGIT_TOLERANCE})");
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().expect("ids").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

fn gemma_model_loaded() -> LocalModel {
    LocalModel::load(&gemma_model(), &LoadOptions { context_length: 512, threads: 0 }).expect("gemma3 loads")
}

/// Free-running greedy generation equals the f32 reference's continuation,
/// token for token: the prompt ids (template + tokenizer) and every step.
#[test]
fn greedy_answers_equal_the_f32_reference() {
    let reference = read_json("greedy_smollm2.json").expect("tests/data/greedy_smollm2.json is missing");
    check_greedy(&mut load_model(), reference["cases"].as_array().expect("cases"));
}

#[test]
fn gemma3_greedy_answers_equal_the_f32_reference() {
    let reference = read_json("reference_gemma3.json").expect("tests/data/reference_gemma3.json is missing");
    check_greedy(&mut gemma_model_loaded(), reference["greedy"].as_array().expect("greedy"));
}

fn check_greedy(model: &mut LocalModel, cases: &[serde_json::Value]) {
    use duet::engine::{Cancel, GenRequest, Message};
    for case in cases {
        let user = case["user"].as_str().expect("user");
        let messages = vec![Message::user(user)];
        assert_eq!(model.encode_chat(&messages).expect("encodes"), ids(&case["prompt_ids"]), "prompt ids for {user:?}");
        let want = ids(&case["generated_ids"]);
        // The end-of-turn token, where the reference stopped on it, is not text.
        let stops = model.tokenizer.stop_ids.clone();
        let content: Vec<u32> = want.iter().copied().filter(|i| !stops.contains(i)).collect();
        let want_text = model.tokenizer.decode(&content);
        let req = GenRequest { max_tokens: content.len(), ..GenRequest::new(messages) };
        model.reset();
        let got = model.generate(&req, &Cancel::new(), &mut |_| true).expect("generates");
        assert_eq!(got.text, want_text, "greedy answer for {user:?}");
    }
}
