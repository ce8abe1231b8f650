//! Qwen 2.5 files on duet's kernels. No real Qwen file can be fetched here,
//! so the test writes one: Qwen2.5-0.5B's real layer shapes (896 wide, 14
//! query heads and 2 KV heads of 64, 4,864-wide feed-forward, RoPE base 10⁶,
//! q/k/v biases, tied embeddings) with 2 layers, a 2,048-token vocabulary
//! and random weights, in the types a Q4_K_M file of that width holds (Q5_0
//! where rows are not whole 256-blocks, Q8_0, Q4_K and Q6_K down
//! projections). The second opinion is candle's *float32 Hugging Face* Qwen2
//! on the same weights dequantized: the two share no code but the file.

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::qwen2 as hf;
use duet::engine::local::gguf::Gguf;
use duet::engine::local::model::Weights;
use std::collections::HashMap;
use std::path::Path;

const HIDDEN: usize = 896;
const HEADS: usize = 14;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 64;
const FF: usize = 4864;
const LAYERS: usize = 2;
const VOCAB: usize = 2048;
const ROPE_BASE: f32 = 1_000_000.0;

/// Deterministic values in ±scale (a small LCG: no rand dependency).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64, scale: f32, offset: f32, dtype: GgmlDType) -> QTensor {
    let v: Vec<f32> = values(shape.iter().product(), seed, scale).into_iter().map(|x| x + offset).collect();
    let t = Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor");
    QTensor::quantize(&t, dtype).expect("quantizes")
}

/// (GGUF name, tensor, Hugging Face name) of every weight. `skip` leaves one
/// out and `wrong` gives one a wrong shape, for the bad-file checks.
fn weights(skip: Option<&str>, wrong: Option<&str>) -> Vec<(String, QTensor, String)> {
    let mut out = Vec::new();
    let mut seed = 1;
    let mut add = |name: String, shape: &[usize], scale: f32, offset: f32, dtype: GgmlDType, hf: String| {
        seed += 1;
        if skip == Some(name.as_str()) {
            return;
        }
        let mut shape = shape.to_vec();
        if wrong == Some(name.as_str()) {
            shape[0] *= 2;
        }
        out.push((name, tensor(&shape, seed, scale, offset, dtype), hf));
    };
    add("token_embd.weight".into(), &[VOCAB, HIDDEN], 0.3, 0.0, GgmlDType::Q8_0, "model.embed_tokens.weight".into());
    add("output_norm.weight".into(), &[HIDDEN], 0.2, 1.0, GgmlDType::F32, "model.norm.weight".into());
    let (q, kv) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    for l in 0..LAYERS {
        let g = |s: &str| format!("blk.{l}.{s}");
        let h = |s: &str| format!("model.layers.{l}.{s}");
        let down = if l == 0 { GgmlDType::Q6K } else { GgmlDType::Q4K };
        add(g("attn_norm.weight"), &[HIDDEN], 0.2, 1.0, GgmlDType::F32, h("input_layernorm.weight"));
        add(g("ffn_norm.weight"), &[HIDDEN], 0.2, 1.0, GgmlDType::F32, h("post_attention_layernorm.weight"));
        add(g("attn_q.weight"), &[q, HIDDEN], 0.06, 0.0, GgmlDType::Q5_0, h("self_attn.q_proj.weight"));
        add(g("attn_k.weight"), &[kv, HIDDEN], 0.06, 0.0, GgmlDType::Q5_0, h("self_attn.k_proj.weight"));
        add(g("attn_v.weight"), &[kv, HIDDEN], 0.06, 0.0, GgmlDType::Q8_0, h("self_attn.v_proj.weight"));
        add(g("attn_q.bias"), &[q], 0.5, 0.0, GgmlDType::F32, h("self_attn.q_proj.bias"));
        add(g("attn_k.bias"), &[kv], 0.5, 0.0, GgmlDType::F32, h("self_attn.k_proj.bias"));
        add(g("attn_v.bias"), &[kv], 0.5, 0.0, GgmlDType::F32, h("self_attn.v_proj.bias"));
        add(g("attn_output.weight"), &[HIDDEN, q], 0.06, 0.0, GgmlDType::Q5_0, h("self_attn.o_proj.weight"));
        add(g("ffn_gate.weight"), &[FF, HIDDEN], 0.06, 0.0, GgmlDType::Q5_0, h("mlp.gate_proj.weight"));
        add(g("ffn_up.weight"), &[FF, HIDDEN], 0.06, 0.0, GgmlDType::Q5_0, h("mlp.up_proj.weight"));
        add(g("ffn_down.weight"), &[HIDDEN, FF], 0.03, 0.0, down, h("mlp.down_proj.weight"));
    }
    out
}

fn write_file(path: &Path, tensors: &[(String, QTensor, String)]) {
    use gguf_file::Value;
    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("qwen2".into())),
        ("qwen2.block_count", Value::U32(LAYERS as u32)),
        ("qwen2.context_length", Value::U32(32768)),
        ("qwen2.embedding_length", Value::U32(HIDDEN as u32)),
        ("qwen2.feed_forward_length", Value::U32(FF as u32)),
        ("qwen2.attention.head_count", Value::U32(HEADS as u32)),
        ("qwen2.attention.head_count_kv", Value::U32(KV_HEADS as u32)),
        ("qwen2.rope.freq_base", Value::F32(ROPE_BASE)),
        ("qwen2.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
    ];
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q, _)| (n.as_str(), q)).collect();
    gguf_file::write(&mut std::fs::File::create(path).expect("creates"), &metadata, &refs).expect("writes");
}

fn reference(tensors: &[(String, QTensor, String)]) -> hf::ModelForCausalLM {
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(_, q, hf_name)| (hf_name.clone(), q.dequantize(&Device::Cpu).expect("dequantizes")))
        .collect();
    let config = hf::Config {
        vocab_size: VOCAB,
        hidden_size: HIDDEN,
        intermediate_size: FF,
        num_hidden_layers: LAYERS,
        num_attention_heads: HEADS,
        num_key_value_heads: KV_HEADS,
        max_position_embeddings: 256,
        sliding_window: 256,
        max_window_layers: LAYERS,
        tie_word_embeddings: true,
        rope_theta: ROPE_BASE as f64,
        rms_norm_eps: 1e-6,
        use_sliding_window: false,
        hidden_act: candle_nn::Activation::Silu,
    };
    let vb = candle_nn::VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    hf::ModelForCausalLM::new(&config, vb).expect("builds")
}

#[test]
fn a_qwen2_file_runs_on_duet_kernels_as_the_f32_reference_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qwen2-shapes.gguf");
    let tensors = weights(None, None);
    write_file(&path, &tensors);
    let (g, reader) = Gguf::open(&path).expect("opens");
    assert!(Weights::runs_fast(&g, &Device::Cpu), "a qwen2 Q4_K_M-style file runs on duet's kernels");
    let mut duet = Weights::load_fast(&g, reader.get_ref(), 256, 2).expect("duet loads it");
    let mut model = reference(&tensors);
    // A 20-token prompt in one batch, then 6 greedy steps one token at a time.
    let mut ids: Vec<u32> = (0..20).map(|i| (i * 97 + 13) % VOCAB as u32).collect();
    let (mut pos, mut worst, mut largest) = (0, 0f32, 0f32);
    let mut agree = 0;
    for _ in 0..6 {
        let a = duet.forward(&ids, pos, &Device::Cpu).expect("duet forward");
        let input = Tensor::new(ids.as_slice(), &Device::Cpu).and_then(|t| t.unsqueeze(0)).expect("ids");
        let b: Vec<f32> = model
            .forward(&input, pos)
            .and_then(|t| t.squeeze(0))
            .and_then(|t| t.squeeze(0))
            .and_then(|t| t.to_vec1())
            .expect("reference forward");
        worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(worst, f32::max);
        largest = b.iter().fold(largest, |m, x| m.max(x.abs()));
        let (ours, theirs) = (duet::engine::local::sampler::argmax(&a), duet::engine::local::sampler::argmax(&b));
        agree += usize::from(ours == theirs);
        pos += ids.len();
        ids = vec![theirs];
    }
    eprintln!("qwen2 shapes: largest logit {largest:.2}, largest difference {worst:.4}, argmax agrees {agree}/6");
    assert!(largest > 1.0, "the random model should have distinct logits, not {largest}");
    assert!(worst < 0.02 * largest, "logits differ from the reference by up to {worst} (largest logit {largest})");
    assert_eq!(agree, 6, "greedy choices differ from the reference");
}

/// A file whose architecture is known but whose tensors are missing or of the
/// wrong shape is refused at load, naming the tensor (not a panic mid-answer).
#[test]
fn a_missing_or_misshapen_tensor_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (skip, wrong, expect) in [
        (Some("blk.1.attn_v.bias"), None, "blk.1.attn_v.bias is missing"),
        (None, Some("blk.0.attn_k.weight"), "blk.0.attn_k.weight has shape [256, 896]; this model needs [128, 896]"),
    ] {
        let path = dir.path().join("bad.gguf");
        write_file(&path, &weights(skip, wrong));
        let (g, reader) = Gguf::open(&path).expect("opens");
        let err = match Weights::load_fast(&g, reader.get_ref(), 64, 1) {
            Ok(_) => panic!("a file with {expect:?} loaded"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(expect), "{err}");
    }
}

/// A context whose key/value cache cannot fit is refused at load with what it
/// needs, instead of loading and being killed by the OS as the chat grows.
#[test]
fn a_context_larger_than_memory_is_refused_saying_what_it_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qwen2-shapes.gguf");
    write_file(&path, &weights(None, None));
    let (g, reader) = Gguf::open(&path).expect("opens");
    // 2 layers × 200M positions × 128 keys and values × 4 bytes × 2 ≈ 410 GB.
    let err = match Weights::load_fast(&g, reader.get_ref(), 200_000_000, 1) {
        Ok(_) => panic!("a 410 GB cache was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("200000000-token context needs 409.6 GB"), "{err}");
    assert!(err.contains("choose a context of at most"), "{err}");
}
