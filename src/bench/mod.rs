//! `duet bench`: speed and memory, measured the way llama-bench measures them.
//!
//! Prompt processing (`ppN`: one batch of N tokens from an empty cache) and
//! text generation (`tgN`: N tokens one at a time) are separate tests, each
//! repeated, reported as mean ± standard deviation in tokens per second. Also:
//! load time, time to first token of a short chat prompt, and peak memory. The
//! report names the CPU, its SIMD features and the thread count, so numbers
//! from two machines are never confused. Timed tests do not belong in
//! `cargo test`; this is where speed is measured.

pub mod arithmetic;
pub mod docs;
pub mod teach;
pub mod toolcalls;

/// A row of a JSONL benchmark file that says which split it belongs to.
pub trait InSplit: serde::de::DeserializeOwned {
    fn split(&self) -> &str;
}

/// Read a JSONL benchmark file, keeping the rows of `split` ("all" keeps every one):
/// tune on one split, report the other.
pub fn read_split<T: InSplit>(path: &Path, split: &str) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("could not read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: T = serde_json::from_str(line).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
        if split == "all" || row.split() == split {
            out.push(row);
        }
    }
    if out.is_empty() {
        return Err(format!("{} has no rows in the split '{split}' (use tune, holdout or all)", path.display()));
    }
    Ok(out)
}

use crate::engine::local::{kernels, LoadOptions, LocalModel};
use crate::engine::{Cancel, GenRequest, Message};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub threads: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub repetitions: usize,
    /// Also time classification of duet's 240 labeled reviews.
    pub classify: bool,
}

#[derive(Debug, Serialize)]
pub struct TestResult {
    pub name: String,
    pub tokens: usize,
    pub tokens_per_s_mean: f64,
    pub tokens_per_s_std: f64,
    pub samples: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub model_size_bytes: u64,
    pub architecture: String,
    pub backend: String,
    pub cpu: String,
    pub cpu_features: Vec<&'static str>,
    pub threads: usize,
    pub load_ms: f64,
    pub ttft_ms: f64,
    pub ttft_prompt_tokens: usize,
    pub peak_rss_bytes: u64,
    /// The f32 KV cache of the context the bench loads with (the RSS
    /// budget is file + KV cache + 150 MB).
    pub kv_cache_bytes: u64,
    pub tests: Vec<TestResult>,
    /// Short reviews labeled per second (duet's 240-review set, shared prefix reused).
    pub reviews_per_s: Option<f64>,
    /// Accuracy on that set, with the default bias correction.
    pub review_accuracy: Option<f64>,
}

/// Classify duet's evaluation set with a fresh engine: (reviews/s, accuracy).
fn classify_speed(path: &Path, threads: usize) -> Result<(f64, f64), crate::tasks::classify::ClassifyError> {
    use crate::tasks::classify::{Classifier, ClassifyConfig, LocalClassifier, EVAL_CSV};
    let engine = crate::engine::local::LocalEngine::start(path, LoadOptions { context_length: 1024, threads })?;
    let labels = vec!["positive".to_string(), "negative".to_string()];
    let mut c = LocalClassifier::new(engine, ClassifyConfig::new(labels))?;
    let rows: Vec<(String, String)> = csv::Reader::from_reader(EVAL_CSV.as_bytes())
        .records()
        .filter_map(Result::ok)
        .map(|r| (r[0].to_string(), r[1].to_string()))
        .collect();
    // Warm the shared prefix once, as a real run's first row does.
    c.classify(&rows[0].0)?;
    let t = Instant::now();
    let mut correct = 0;
    for (text, gold) in &rows {
        if c.classify(text)?.label == *gold {
            correct += 1;
        }
    }
    Ok((rows.len() as f64 / t.elapsed().as_secs_f64(), correct as f64 / rows.len() as f64))
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Token ids spread over the vocabulary (deterministic; llama-bench uses random ids too).
fn bench_ids(n: usize, vocab: usize) -> Vec<u32> {
    let mut s = 0x2545_F491u32;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            // Skip the first ids (control tokens in most vocabularies) when there is room.
            let skip = if vocab > 1000 { 100 } else { 0 };
            skip + s % (vocab as u32 - skip)
        })
        .collect()
}

pub fn run(path: &Path, opts: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<BenchReport, String> {
    let context = (opts.prompt_tokens + opts.gen_tokens + 64).max(512);
    let start = Instant::now();
    let mut model = LocalModel::load(path, &LoadOptions { context_length: context, threads: opts.threads })
        .map_err(|e| e.to_string())?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    if model.context_length < opts.prompt_tokens + opts.gen_tokens {
        return Err(format!("this model reads at most {} tokens; lower -p or -n", model.context_length));
    }
    let vocab = model.tokenizer.vocab_size();
    let mut tests = Vec::new();

    // One untimed warm-up pass, as llama-bench does.
    model.reset();
    model.forward_raw(&bench_ids(16, vocab), 0).map_err(|e| e.to_string())?;

    // ppN: the whole batch in one pass; tgN: one token per pass.
    for (kind, tokens) in [("pp", opts.prompt_tokens), ("tg", opts.gen_tokens)] {
        if tokens == 0 {
            continue;
        }
        let ids = bench_ids(tokens, vocab);
        let name = format!("{kind}{tokens}");
        let mut samples = Vec::new();
        for r in 0..opts.repetitions {
            progress(&format!("{name} run {}/{}", r + 1, opts.repetitions));
            model.reset();
            let t = Instant::now();
            if kind == "pp" {
                model.forward_raw(&ids, 0).map_err(|e| e.to_string())?;
            } else {
                for (pos, &id) in ids.iter().enumerate() {
                    model.forward_raw(&[id], pos).map_err(|e| e.to_string())?;
                }
            }
            samples.push(tokens as f64 / t.elapsed().as_secs_f64());
        }
        let (tokens_per_s_mean, tokens_per_s_std) = mean_std(&samples);
        tests.push(TestResult { name, tokens, tokens_per_s_mean, tokens_per_s_std, samples });
    }

    // Time to first token of a short chat prompt, from request to sampled token.
    progress("time to first token");
    // 40 tokens with SmolLM2's chat template, as in the target.
    let question = "What is the capital of France? Be brief.";
    let req = GenRequest { max_tokens: 1, ..GenRequest::new(vec![Message::user(question)]) };
    let mut ttfts = Vec::new();
    let mut ttft_prompt_tokens = 0;
    for _ in 0..opts.repetitions.max(1) {
        model.reset();
        let c = model.generate(&req, &Cancel::new(), &mut |_| true).map_err(|e| e.to_string())?;
        ttfts.push(c.timings.ttft_ms);
        ttft_prompt_tokens = c.usage.prompt_tokens;
    }
    let (ttft_ms, _) = mean_std(&ttfts);
    let threads = model.threads();
    let (backend, facts) = (model.backend_name(), model.facts.clone());
    let peak = peak_rss_bytes();
    drop(model);

    let (reviews_per_s, review_accuracy) = if opts.classify && facts.architecture == "llama" {
        progress("classifying 240 reviews");
        let (r, a) = classify_speed(path, opts.threads).map_err(|e| e.to_string())?;
        (Some(r), Some(a))
    } else {
        (None, None)
    };

    Ok(BenchReport {
        model: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        model_size_bytes: facts.file_size_bytes,
        architecture: facts.architecture.clone(),
        backend,
        cpu: cpu_name(),
        cpu_features: kernels::cpu_features(),
        threads,
        load_ms,
        ttft_ms,
        ttft_prompt_tokens,
        // Generation only: the classification pass below loads a second copy.
        peak_rss_bytes: peak,
        kv_cache_bytes: facts.kv_cache_bytes(context as u32),
        tests,
        reviews_per_s,
        review_accuracy,
    })
}

pub fn cpu_name() -> String {
    #[cfg(target_os = "linux")]
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        if let Some(name) = info.lines().find_map(|l| l.strip_prefix("model name")) {
            return name.trim_start_matches([' ', '\t', ':']).trim().to_string();
        }
    }
    std::env::consts::ARCH.to_string()
}

/// The most resident memory this process has used (Linux: VmHWM).
pub fn peak_rss_bytes() -> u64 {
    #[cfg(target_os = "linux")]
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
            return kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0) * 1024;
        }
    }
    0
}

/// The human-readable report, shaped like llama-bench's table.
pub fn render(r: &BenchReport) -> String {
    let mut s = String::new();
    s.push_str(&format!("cpu: {} ({}), threads: {}\n", r.cpu, r.cpu_features.join(" "), r.threads));
    s.push_str(&format!(
        "model: {} ({}, {:.1} MB), backend: {}\n\n",
        r.model,
        r.architecture,
        r.model_size_bytes as f64 / 1e6,
        r.backend
    ));
    s.push_str("| test   |              t/s |\n|--------|-----------------:|\n");
    for t in &r.tests {
        s.push_str(&format!("| {:<6} | {:>8.2} ± {:>5.2} |\n", t.name, t.tokens_per_s_mean, t.tokens_per_s_std));
    }
    s.push_str(&format!(
        "\nload: {:.0} ms · time to first token ({} prompt tokens): {:.1} ms · peak RSS: {:.1} MB \
         (model file + KV cache: {:.1} MB)\n",
        r.load_ms,
        r.ttft_prompt_tokens,
        r.ttft_ms,
        r.peak_rss_bytes as f64 / 1e6,
        (r.model_size_bytes + r.kv_cache_bytes) as f64 / 1e6
    ));
    if let (Some(rps), Some(acc)) = (r.reviews_per_s, r.review_accuracy) {
        s.push_str(&format!(
            "classification: {rps:.1} reviews/s ({:.1}% correct on 240 labeled reviews)\n",
            100.0 * acc
        ));
    }
    s
}
