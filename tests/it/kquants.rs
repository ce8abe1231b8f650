//! Q4_K and Q6_K ("Q4_K_M" files) through duet's kernels, end to end.
//!
//! No Q4_K_M file can be fetched here, so the test makes one from the default
//! model with candle's quantizer: every `ffn_down` (1536 columns, whole
//! 256-value super-blocks) becomes Q4_K or Q6_K, layer by layer, the other
//! matrices Q8_0. The second opinion is candle running a float32 copy of that
//! same file (every tensor dequantized), so the only difference left is duet's
//! 16-bit activations, as in the f32 reference test. (candle on the quantized
//! file itself is no judge: it rounds activations to 8 bits and its logits
//! differ from the exact ones by over 1.0 here, on Q8_0 alone.)

use crate::common::{default_model, golden_prompt_ids};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;
use duet::engine::local::gguf::Gguf;
use duet::engine::local::model::Weights;
use std::path::Path;

/// Copy `src` with each matrix re-stored as `dtype_of(name)` gives.
fn rewrite(src: &Path, dst: &Path, dtype_of: &dyn Fn(&str) -> GgmlDType) {
    let mut reader = std::io::BufReader::new(std::fs::File::open(src).expect("opens"));
    let content = gguf_file::Content::read(&mut reader).expect("reads");
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let q = content.tensor(&mut reader, name, &Device::Cpu).expect("tensor");
        let q = if q.shape().dims().len() != 2 {
            q
        } else {
            QTensor::quantize(&q.dequantize(&Device::Cpu).expect("dequantizes"), dtype_of(name)).expect("quantizes")
        };
        tensors.push((name.clone(), q));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
    let mut out = std::fs::File::create(dst).expect("creates");
    gguf_file::write(&mut out, &metadata, &tensor_refs).expect("writes");
}

/// Largest allowed logit difference (the f32 reference test allows 0.03).
const LOGIT_TOLERANCE: f32 = 0.05;
/// A top-2 gap below this is a near-tie that rounding may flip.
const NEAR_TIE: f32 = 0.05;

#[test]
fn k_quant_files_run_on_duets_kernels_and_match_float32() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k_file = dir.path().join("smollm2-k.gguf");
    rewrite(&default_model(), &k_file, &|name| {
        let layer: usize = name.split('.').nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
        match (name.contains("ffn_down"), layer % 2) {
            (true, 0) => GgmlDType::Q4K,
            (true, _) => GgmlDType::Q6K,
            (false, _) => GgmlDType::Q8_0,
        }
    });
    let f32_file = dir.path().join("smollm2-f32.gguf");
    rewrite(&k_file, &f32_file, &|_| GgmlDType::F32);

    let (g, reader) = Gguf::open(&k_file).expect("opens");
    let kinds: Vec<GgmlDType> = g.content.tensor_infos.values().map(|t| t.ggml_dtype).collect();
    assert!(kinds.contains(&GgmlDType::Q4K) && kinds.contains(&GgmlDType::Q6K));
    assert!(Weights::runs_fast(&g, &Device::Cpu), "Q4_K/Q6_K files go to duet's kernels");
    let mut fast = Weights::load_fast(&g, reader.get_ref(), 256, 2).expect("duet loads it");
    let (g, mut reader) = Gguf::open(&f32_file).expect("opens");
    let mut exact = Weights::load_candle(g, &mut reader, &Device::Cpu).expect("candle loads the f32 copy");

    // A real chat prompt (the first golden case's token ids), then greedy steps.
    let mut ids = golden_prompt_ids();
    let mut pos = 0;
    for step in 0..8 {
        let a = fast.forward(&ids, pos, &Device::Cpu).expect("duet forward");
        let b = exact.forward(&ids, pos, &Device::Cpu).expect("f32 forward");
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst < LOGIT_TOLERANCE, "step {step}: logits differ from float32 by up to {worst}");
        let top = |l: &[f32]| (0..l.len()).fold(0, |m, i| if l[i] > l[m] { i } else { m });
        let mut sorted = b.clone();
        sorted.sort_by(|x, y| y.total_cmp(x));
        if sorted[0] - sorted[1] > NEAR_TIE {
            assert_eq!(top(&a), top(&b), "step {step}: the greedy choice differs from float32's");
        }
        pos += ids.len();
        ids = vec![top(&b) as u32];
    }
}
