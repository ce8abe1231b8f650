//! Llama 3.x files (the catalog's Llama 3.2 3B) store their long-context RoPE
//! as one factor per frequency, `rope_freqs.weight`. duet's kernels apply it.
//!
//! No Llama 3.2 file can be fetched here, so the test adds the tensor to the
//! default model, with factors made by Meta's rule as llama.cpp's converter
//! does, and an original context of 256 instead of 8192 so that most
//! frequencies are scaled within the first few dozen positions. The second
//! opinion is candle's *float32, Hugging Face layout* Llama, which takes the
//! same rule as a config (`rope_scaling`), not from the file: the two share
//! no RoPE code. The same comparison without the factors must fail, or the
//! test could not tell whether they were applied.

use crate::common::{default_model, golden_prompt_ids};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::llama as hf;
use duet::engine::local::gguf::Gguf;
use duet::engine::local::model::Weights;
use std::collections::HashMap;
use std::path::Path;

const ROPE_BASE: f32 = 100_000.0;
const HEAD_DIM: usize = 64;
const SCALING: hf::Llama3RopeConfig = hf::Llama3RopeConfig {
    factor: 32.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 256,
    rope_type: hf::Llama3RopeType::Llama3,
};

/// Meta's rule as a factor per frequency (what `convert_hf_to_gguf.py` writes).
fn llama3_factors() -> Vec<f32> {
    let original = SCALING.original_max_position_embeddings as f32;
    (0..HEAD_DIM / 2)
        .map(|i| {
            let freq = ROPE_BASE.powf(-(2.0 * i as f32) / HEAD_DIM as f32);
            let wavelen = 2.0 * std::f32::consts::PI / freq;
            if wavelen < original / SCALING.high_freq_factor {
                1.0
            } else if wavelen > original / SCALING.low_freq_factor {
                SCALING.factor
            } else {
                let smooth = (original / wavelen - SCALING.low_freq_factor)
                    / (SCALING.high_freq_factor - SCALING.low_freq_factor);
                1.0 / ((1.0 - smooth) / SCALING.factor + smooth)
            }
        })
        .collect()
}

/// The default model with `rope_freqs.weight` added.
fn with_factors(src: &Path, dst: &Path, factors: &[f32]) {
    let mut reader = std::io::BufReader::new(std::fs::File::open(src).expect("opens"));
    let content = gguf_file::Content::read(&mut reader).expect("reads");
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for name in content.tensor_infos.keys() {
        tensors.push((name.clone(), content.tensor(&mut reader, name, &Device::Cpu).expect("tensor")));
    }
    let f = Tensor::new(factors, &Device::Cpu).expect("tensor");
    tensors.push(("rope_freqs.weight".into(), QTensor::quantize(&f, GgmlDType::F32).expect("f32 tensor")));
    let metadata: Vec<(&str, &gguf_file::Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
    gguf_file::write(&mut std::fs::File::create(dst).expect("creates"), &metadata, &refs).expect("writes");
}

/// GGUF stores q/k rows with each head's two halves interleaved (for
/// llama.cpp's RoPE on adjacent pairs); Hugging Face keeps the halves apart.
fn unpermute(w: Tensor, heads: usize) -> Tensor {
    let (rows, cols) = w.dims2().expect("matrix");
    w.reshape((heads, rows / heads / 2, 2, cols))
        .and_then(|t| t.transpose(1, 2))
        .and_then(|t| t.reshape((rows, cols)))
        .expect("reshapes")
}

/// candle's float32 Llama on the default model's dequantized weights.
fn reference(src: &Path, rope_scaling: Option<hf::Llama3RopeConfig>) -> (hf::Llama, hf::Config) {
    let (g, mut reader) = Gguf::open(src).expect("opens");
    let arch = |k: &str| g.arch_u32(k).expect("metadata") as usize;
    let (heads, kv_heads) = (arch("attention.head_count"), arch("attention.head_count_kv"));
    let mut map = HashMap::new();
    for name in g.content.tensor_infos.keys() {
        let t = g.content.tensor(&mut reader, name, &Device::Cpu).expect("tensor");
        let t = t.dequantize(&Device::Cpu).expect("dequantizes");
        let hf_name = match name.split('.').collect::<Vec<_>>().as_slice() {
            ["token_embd", "weight"] => "model.embed_tokens.weight".to_string(),
            ["output_norm", "weight"] => "model.norm.weight".to_string(),
            ["output", "weight"] => "lm_head.weight".to_string(),
            ["blk", layer, part, "weight"] => {
                let (module, t2) = match *part {
                    "attn_q" => ("self_attn.q_proj", Some(heads)),
                    "attn_k" => ("self_attn.k_proj", Some(kv_heads)),
                    "attn_v" => ("self_attn.v_proj", None),
                    "attn_output" => ("self_attn.o_proj", None),
                    "ffn_gate" => ("mlp.gate_proj", None),
                    "ffn_up" => ("mlp.up_proj", None),
                    "ffn_down" => ("mlp.down_proj", None),
                    "attn_norm" => ("input_layernorm", None),
                    "ffn_norm" => ("post_attention_layernorm", None),
                    other => panic!("unexpected tensor {other}"),
                };
                let t = match t2 {
                    Some(h) => unpermute(t, h),
                    None => t,
                };
                map.insert(format!("model.layers.{layer}.{module}.weight"), t);
                continue;
            }
            _ => panic!("unexpected tensor {name}"),
        };
        map.insert(hf_name, t);
    }
    let config = hf::Config {
        hidden_size: arch("embedding_length"),
        intermediate_size: arch("feed_forward_length"),
        vocab_size: map["model.embed_tokens.weight"].dims()[0],
        num_hidden_layers: arch("block_count"),
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        use_flash_attn: false,
        rms_norm_eps: g.f32("llama.attention.layer_norm_rms_epsilon").expect("eps") as f64,
        rope_theta: g.f32("llama.rope.freq_base").expect("rope base"),
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling,
        max_position_embeddings: 256,
        tie_word_embeddings: !map.contains_key("lm_head.weight"),
    };
    assert_eq!((config.rope_theta, config.hidden_size / heads), (ROPE_BASE, HEAD_DIM), "the default model");
    let vb = candle_nn::VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    (hf::Llama::load(vb, &config).expect("builds"), config)
}

/// The largest logit difference between duet on `file` and the reference,
/// over a chat prompt and 6 greedy steps (the reference's choices).
fn worst_difference(file: &Path, model: &hf::Llama, config: &hf::Config) -> f32 {
    let (g, reader) = Gguf::open(file).expect("opens");
    assert!(Weights::runs_fast(&g, &Device::Cpu), "a llama file with rope_freqs runs on duet's kernels");
    let mut duet = Weights::load_fast(&g, reader.get_ref(), 256, 2).expect("duet loads it");
    let mut cache = hf::Cache::new(true, DType::F32, config, &Device::Cpu).expect("cache");
    let mut ids = golden_prompt_ids();
    let (mut pos, mut worst) = (0, 0f32);
    for _ in 0..6 {
        let a = duet.forward(&ids, pos, &Device::Cpu).expect("duet forward");
        let input = Tensor::new(ids.as_slice(), &Device::Cpu).and_then(|t| t.unsqueeze(0)).expect("ids");
        let b: Vec<f32> = model
            .forward(&input, pos, &mut cache)
            .and_then(|t| t.squeeze(0))
            .and_then(|t| t.to_vec1())
            .expect("reference forward");
        worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(worst, f32::max);
        pos += ids.len();
        ids = vec![(0..b.len()).fold(0, |m, i| if b[i] > b[m] { i } else { m }) as u32];
    }
    worst
}

#[test]
fn llama3_rope_factors_are_applied_as_in_the_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scaled = dir.path().join("smollm2-rope-freqs.gguf");
    let factors = llama3_factors();
    assert!(
        factors.iter().filter(|&&f| f == SCALING.factor).count() > 4 && factors.contains(&1.0),
        "the factors cover both ends: {factors:?}"
    );
    with_factors(&default_model(), &scaled, &factors);

    let (model, config) = reference(&default_model(), Some(SCALING));
    let worst = worst_difference(&scaled, &model, &config);
    assert!(worst < 0.05, "with the factors, logits differ from the reference by up to {worst}");
    // Without them (the file as candle's quantized llama would read it), far apart.
    let ignored = worst_difference(&default_model(), &model, &config);
    eprintln!("largest logit difference: {worst} with the factors, {ignored} without");
    assert!(ignored > 1.0, "ignoring the factors should change the logits, but only by {ignored}");
}
