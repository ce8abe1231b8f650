//! Writes a random-weight llama GGUF shaped like a llama.cpp "Q4_K_M" file, for
//! measuring K-quant speed where no real one can be downloaded.
//!
//! Usage: kquant-bench-file SOURCE.gguf OUT.gguf
//!
//! SOURCE (the default model) lends its tokenizer and chat template, so
//! `duet bench` runs on OUT unchanged. The shape is 1024 wide, 16 layers,
//! 16 heads over 4 KV heads, 2816 FFN: every row is whole 256-value
//! super-blocks. As in Q4_K_M, the (tied) embedding and half the layers'
//! attn_v and ffn_down are Q6_K, everything else Q4_K. The weights are noise:
//! the answers mean nothing, the speed is that of a real file of this shape.

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

const EMBD: usize = 1024;
const HEADS: usize = 16;
const KV_HEADS: usize = 4;
const FFN: usize = 2816;
const LAYERS: usize = 16;

/// xorshift64: reproducible noise without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn matrix(&mut self, rows: usize, cols: usize, dtype: GgmlDType) -> QTensor {
        let values: Vec<f32> = (0..rows * cols).map(|_| self.next() * 0.035).collect();
        let t = Tensor::from_vec(values, (rows, cols), &Device::Cpu).expect("tensor");
        QTensor::quantize(&t, dtype).expect("quantizes")
    }
}

fn ones(n: usize) -> QTensor {
    let t = Tensor::ones(n, DType::F32, &Device::Cpu).expect("tensor");
    QTensor::quantize(&t, GgmlDType::F32).expect("f32")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, src, dst] = args.as_slice() else {
        eprintln!("usage: kquant-bench-file SOURCE.gguf OUT.gguf");
        std::process::exit(2);
    };
    let mut reader = std::io::BufReader::new(std::fs::File::open(src).expect("opens SOURCE"));
    let content = gguf_file::Content::read(&mut reader).expect("SOURCE is a GGUF file");
    let vocab = content.tensor_infos["token_embd.weight"].shape.dims()[0];

    // Keep the tokenizer, template and RoPE base; replace the shape.
    let kept = |k: &str| {
        k != "general.name"
            && (!k.starts_with("llama.")
                || ["rope.freq_base", "rms_epsilon", "context_length", "vocab_size"].iter().any(|s| k.contains(s)))
    };
    let mut metadata: Vec<(String, gguf_file::Value)> =
        content.metadata.iter().filter(|(k, _)| kept(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let u32s = [
        ("llama.embedding_length", EMBD),
        ("llama.attention.head_count", HEADS),
        ("llama.attention.head_count_kv", KV_HEADS),
        ("llama.feed_forward_length", FFN),
        ("llama.block_count", LAYERS),
        ("llama.rope.dimension_count", EMBD / HEADS),
    ];
    metadata.extend(u32s.iter().map(|(k, v)| (k.to_string(), gguf_file::Value::U32(*v as u32))));
    metadata.push(("general.name".into(), gguf_file::Value::String("kquant-bench-1024".into())));

    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let (q4, q6) = (GgmlDType::Q4K, GgmlDType::Q6K);
    let kv_dim = KV_HEADS * EMBD / HEADS;
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), noise.matrix(vocab, EMBD, q6)),
        ("output_norm.weight".into(), ones(EMBD)),
    ];
    for l in 0..LAYERS {
        let more_bits = if l % 2 == 0 { q6 } else { q4 };
        let name = |s: &str| format!("blk.{l}.{s}.weight");
        tensors.push((name("attn_norm"), ones(EMBD)));
        tensors.push((name("ffn_norm"), ones(EMBD)));
        tensors.push((name("attn_q"), noise.matrix(EMBD, EMBD, q4)));
        tensors.push((name("attn_k"), noise.matrix(kv_dim, EMBD, q4)));
        tensors.push((name("attn_v"), noise.matrix(kv_dim, EMBD, more_bits)));
        tensors.push((name("attn_output"), noise.matrix(EMBD, EMBD, q4)));
        tensors.push((name("ffn_gate"), noise.matrix(FFN, EMBD, q4)));
        tensors.push((name("ffn_up"), noise.matrix(FFN, EMBD, q4)));
        tensors.push((name("ffn_down"), noise.matrix(EMBD, FFN, more_bits)));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
    let mut out = std::fs::File::create(dst).expect("creates OUT");
    gguf_file::write(&mut out, &metadata, &tensors).expect("writes OUT");
    println!("wrote {dst}");
}
