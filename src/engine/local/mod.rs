//! The local engine: a GGUF model on this computer's CPU (or GPU).
//!
//! duet's own forward pass (`decoder/` on `kernels/`) runs llama, qwen2 and
//! gemma3 files on the CPU; candle runs the rest (phi3, other quant types),
//! and every model on a GPU (see [`model::Weights`]).
//!
//! [`LocalModel`] is the synchronous core: encode a conversation, reuse the KV
//! cache for a shared prefix, sample, stream text. [`LocalEngine`] puts one
//! `LocalModel` on its own named thread; requests arrive on a channel and
//! events go back on a bounded channel per request.

pub mod constrain;
pub mod decoder;
pub mod gguf;
pub mod kernels;
pub mod kv;
pub mod model;
pub mod sampler;
mod spm;
pub mod template;
pub mod tokenizer;

use super::toolcall::{self, ToolSpec};
use super::{Backend, Cancel, Completion, DataLocation, Event, FinishReason, GenError, GenRequest, Timings, Usage};
use gguf::{Gguf, ModelFacts};
use kv::KvCache;
use model::Weights;
use sampler::Sampler;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Instant;
use template::{ChatTemplate, Message};
use tokenizer::{TextStream, Tokenizer};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    File(#[from] gguf::GgufError),
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error(transparent)]
    Tokenizer(#[from] tokenizer::TokenizerError),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error("the prompt is empty; type something to ask")]
    EmptyPrompt,
    #[error("the prompt is {tokens} tokens, but this model reads at most {context} at once. Shorten it, or start a new conversation.")]
    TooLong { tokens: usize, context: usize },
    #[error("the model stopped working (its thread ended); restart duet")]
    WorkerGone,
    #[error("the answer's required shape could not be applied: {0}")]
    Constraint(String),
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Positions the KV cache holds; capped at the model's trained context.
    pub context_length: usize,
    /// Threads for the math; 0 = one per physical core.
    pub threads: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { context_length: 4096, threads: 0 }
    }
}

pub struct LocalModel {
    weights: Weights,
    device: candle_core::Device,
    pub tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    /// The tokenizer as llguidance sees it, built on the first constrained request.
    grammars: Option<Arc<constrain::Grammars>>,
    pub facts: ModelFacts,
    pub context_length: usize,
    /// Which tokens the weights' KV cache holds, and how far back it can go.
    kv: KvCache,
    pub load_ms: f64,
    /// The template has its own tool format (it reads `tools`); otherwise
    /// tools are offered in duet's convention (see [`crate::engine::toolcall`]).
    knows_tools: bool,
}

impl LocalModel {
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self, EngineError> {
        let start = Instant::now();
        let (g, mut reader) = Gguf::open(path)?;
        let arch = g.architecture()?.to_string();
        if !model::SUPPORTED.contains(&arch.as_str()) {
            return Err(model::ModelError::Unsupported(arch).into());
        }
        let facts = g.summary();
        let template_src = match g.string("tokenizer.chat_template") {
            Some(t) => t.to_string(),
            None => template::builtin_for(&arch).to_string(),
        };
        let device = model::pick_device();
        let context_length = opts.context_length.min(facts.context_length as usize).max(16);
        let threads = if opts.threads == 0 { model::physical_cores() } else { opts.threads };
        let (tokenizer, weights) = if Weights::runs_fast(&g, &device) {
            // Building the tokenizer (~55 ms for SmolLM2's 49k tokens and
            // merges) and repacking the weights (~100 ms) each keep one core
            // busy, so they run side by side.
            std::thread::scope(|s| {
                let tokenizer = s.spawn(|| Tokenizer::from_gguf(&g));
                let weights = Weights::load_fast(&g, reader.get_ref(), context_length, threads);
                let tokenizer = tokenizer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                (tokenizer, weights)
            })
        } else {
            let tokenizer = Tokenizer::from_gguf(&g);
            (tokenizer, Weights::load_candle(g, &mut reader, &device))
        };
        let (tokenizer, weights) = (tokenizer?, weights?);
        let token_text = |id: Option<u32>| id.map(|i| tokenizer.piece(i).to_string()).unwrap_or_default();
        let template = ChatTemplate::new(&template_src, &token_text(tokenizer.bos_id), &token_text(tokenizer.eos_id))?;
        Ok(LocalModel {
            kv: weights.kv_cache(),
            weights,
            device,
            tokenizer: Arc::new(tokenizer),
            grammars: None,
            template,
            facts,
            context_length,
            load_ms: start.elapsed().as_secs_f64() * 1e3,
            knows_tools: toolcall::template_knows_tools(&template_src),
        })
    }

    /// The token ids the model sees for a conversation, ending with the
    /// assistant's turn opening.
    pub fn encode_chat(&self, messages: &[Message]) -> Result<Vec<u32>, EngineError> {
        self.encode_with_tools(messages, &[])
    }

    /// The ids for a conversation with tools offered: in the template's own
    /// format when it has one, else in duet's convention.
    fn encode_with_tools(&self, messages: &[Message], tools: &[ToolSpec]) -> Result<Vec<u32>, EngineError> {
        let plain;
        let (messages, tools) = match tools.is_empty() || self.knows_tools {
            true => (messages, tools),
            false => {
                plain = toolcall::for_plain_template(messages, tools);
                (plain.as_slice(), &[][..])
            }
        };
        let mut ids = self.template.encode(&self.tokenizer, messages, tools, true)?;
        if self.tokenizer.add_bos {
            if let Some(bos) = self.tokenizer.bos_id {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        Ok(ids)
    }

    /// The rendered prompt text (for tests and debugging).
    pub fn render_chat(&self, messages: &[Message]) -> Result<String, EngineError> {
        Ok(self.template.render(messages, true)?)
    }

    /// Fit a conversation into the context, dropping the oldest turns after the
    /// system prompt when allowed. Returns the ids and how many messages went.
    fn fit(&self, req: &GenRequest) -> Result<(Vec<u32>, usize), EngineError> {
        if req.messages.iter().all(|m| m.content.trim().is_empty()) {
            return Err(EngineError::EmptyPrompt);
        }
        let budget = self.context_length.saturating_sub(1);
        let mut messages = req.messages.clone();
        let mut dropped = 0;
        loop {
            let ids = self.encode_with_tools(&messages, &req.tools)?;
            if ids.len() <= budget {
                return Ok((ids, dropped));
            }
            let first_droppable = usize::from(messages.first().is_some_and(|m| m.role == "system"));
            // Keep at least the last message; drop one turn at a time.
            if !req.truncate_history || messages.len() <= first_droppable + 1 {
                return Err(EngineError::TooLong { tokens: ids.len(), context: self.context_length });
            }
            messages.remove(first_droppable);
            dropped += 1;
            // Templates that insist on user/assistant alternation need a user turn first.
            while messages.len() > first_droppable + 1 && messages[first_droppable].role == "assistant" {
                messages.remove(first_droppable);
                dropped += 1;
            }
        }
    }

    /// Run `ids` through the model and return the last position's logits,
    /// reusing whatever prefix is already in the KV cache.
    fn prefill(&mut self, ids: &[u32]) -> Result<(Vec<f32>, usize), EngineError> {
        let reuse = self.kv.reuse(ids);
        let logits = self.feed(&ids[reuse..])?;
        Ok((logits, reuse))
    }

    fn step(&mut self, id: u32) -> Result<Vec<f32>, EngineError> {
        self.feed(&[id])
    }

    /// Run `ids` at the end of the cache; the last one's logits.
    fn feed(&mut self, ids: &[u32]) -> Result<Vec<f32>, EngineError> {
        let logits = self.weights.forward(ids, self.kv.len(), &self.device)?;
        self.kv.fed(ids);
        Ok(logits)
    }

    /// Run `ids` at the end of the cache; the logits at each of them.
    fn feed_each(&mut self, ids: &[u32]) -> Result<Vec<Vec<f32>>, EngineError> {
        let rows = self.weights.forward_each(ids, self.kv.len(), &self.device)?;
        self.kv.fed(ids);
        Ok(rows)
    }

    /// Teacher-forced logits at every position of `ids`, from an empty cache
    /// (used to check the engine against a reference).
    pub fn logits_each(&mut self, ids: &[u32]) -> Result<Vec<Vec<f32>>, EngineError> {
        self.kv.reset();
        self.feed_each(ids)
    }

    /// Feed `ids` at positions `pos..` and return the last logits (benchmarks).
    /// The cache goes back to `pos` tokens first; the benchmarks only ever
    /// start at 0 or go on from where it ends, which every cache can do.
    pub fn forward_raw(&mut self, ids: &[u32], pos: usize) -> Result<Vec<f32>, EngineError> {
        let went_back = self.kv.rewind(pos);
        debug_assert!(
            went_back.is_ok() && self.kv.len() == pos,
            "forward_raw at {pos}: the cache holds {} tokens",
            self.kv.len()
        );
        self.feed(ids)
    }

    /// Threads doing the math (duet's kernels) or candle's default.
    pub fn threads(&self) -> usize {
        self.weights.threads()
    }

    /// Which implementation runs this model.
    pub fn backend_name(&self) -> String {
        self.weights.backend_name()
    }

    /// The grammar machinery for this model's tokenizer (built once).
    fn grammars(&mut self) -> Result<Arc<constrain::Grammars>, EngineError> {
        if self.grammars.is_none() {
            let g = constrain::Grammars::new(self.tokenizer.clone()).map_err(EngineError::Constraint)?;
            self.grammars = Some(Arc::new(g));
        }
        Ok(self.grammars.clone().expect("set just above"))
    }

    /// Forget the KV cache (the next request starts from scratch).
    pub fn reset(&mut self) {
        self.kv.reset();
    }

    /// Generate an answer. `on_delta` receives text as it is produced and
    /// returns `false` to stop (the reader went away).
    pub fn generate(
        &mut self,
        req: &GenRequest,
        cancel: &Cancel,
        on_delta: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, EngineError> {
        let t0 = Instant::now();
        let (ids, dropped_messages) = self.fit(req)?;
        let max_new = req.max_tokens.min(self.context_length - ids.len());
        let mut sampler = Sampler::new(req.sampling.clone());
        let mut guide = match &req.constraint {
            Some(c) => Some(self.grammars()?.guide(c, &req.tools).map_err(EngineError::Constraint)?),
            None => None,
        };
        let mut lazy_tried = false;
        let mut history = ids.clone();
        let mut stream = TextStream::default();
        let mut text = String::new();
        let mut emitted = 0usize;
        let mut finish = FinishReason::Length;
        let mut completion_tokens = 0usize;

        if cancel.is_cancelled() {
            return Ok(self.completion(
                String::new(),
                FinishReason::Cancelled,
                ids.len(),
                0,
                0,
                Timings::default(),
                dropped_messages,
            ));
        }
        let (mut logits, reused) = self.prefill(&ids)?;
        let prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut ttft_ms = 0.0;
        let decode_start = Instant::now();
        let mut stopped_by_reader = false;
        let mut cut_at_stop_string = false;
        // With tools offered, a call's text is held back from the stream: the
        // reader gets the call itself at the end, or a broken call to show.
        let mut holds = req.stop.clone();
        if !req.tools.is_empty() {
            holds.push(toolcall::CALL_OPEN.to_string());
        }
        let shown_until = |text: &str| match req.tools.is_empty() {
            true => text.len(),
            false => text.find(toolcall::CALL_OPEN).unwrap_or(text.len()),
        };
        for i in 0..max_new {
            if cancel.is_cancelled() {
                finish = FinishReason::Cancelled;
                break;
            }
            if let Some(g) = guide.as_mut() {
                g.mask(&mut logits).map_err(EngineError::Constraint)?;
            }
            let next = sampler.sample(&mut logits, &history);
            if i == 0 {
                ttft_ms = t0.elapsed().as_secs_f64() * 1e3;
            }
            if self.tokenizer.stop_ids.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            if let Some(g) = guide.as_mut() {
                g.consume(next).map_err(EngineError::Constraint)?;
            }
            let started_call = guide.is_none() && !lazy_tried && !req.tools.is_empty();
            completion_tokens += 1;
            history.push(next);
            text.push_str(&stream.push(self.tokenizer.token_bytes(next)));
            // The model began a call on its own: from here on it can only
            // write one that parses and fits a tool's schema (llama.cpp's
            // "lazy grammar"). Without the marker, nothing is constrained.
            if started_call {
                if let Some(at) = text.find(toolcall::CALL_OPEN) {
                    let already = &text[at + toolcall::CALL_OPEN.len()..];
                    guide = self.grammars()?.guide_after_open(&req.tools, already, &self.tokenizer);
                    lazy_tried = true;
                }
            }
            if let Some(cut) = first_stop(&text, &req.stop) {
                text.truncate(cut);
                finish = FinishReason::Stop;
                cut_at_stop_string = true;
                break;
            }
            let safe = safe_emit_len(&text, &holds).min(shown_until(&text));
            if safe > emitted {
                if !on_delta(&text[emitted..safe]) {
                    stopped_by_reader = true;
                    finish = FinishReason::Cancelled;
                    break;
                }
                emitted = safe;
            }
            // A complete constrained answer ends here (the grammar allows nothing more).
            if i + 1 == max_new || guide.as_ref().is_some_and(|g| g.is_done()) {
                if guide.as_ref().is_some_and(|g| g.is_done()) {
                    finish = FinishReason::Stop;
                }
                break;
            }
            logits = self.step(next)?;
        }
        // Bytes of a character still incomplete at the end; nothing after a stop string counts.
        if !cut_at_stop_string {
            text.push_str(&stream.finish());
            if let Some(cut) = first_stop(&text, &req.stop) {
                text.truncate(cut);
            }
        }
        let shown = shown_until(&text);
        if !stopped_by_reader && shown > emitted {
            on_delta(&text[emitted..shown]);
        }
        let decode_ms = decode_start.elapsed().as_secs_f64() * 1e3;
        let new_prompt = ids.len() - reused;
        let timings = Timings {
            load_ms: self.load_ms,
            ttft_ms,
            prompt_ms,
            decode_ms,
            prompt_tok_per_s: rate(new_prompt, prompt_ms),
            // The first token came from the prompt pass; the rest each took a step.
            decode_tok_per_s: rate(completion_tokens.saturating_sub(1), decode_ms),
        };
        let mut done = self.completion(text, finish, ids.len(), completion_tokens, reused, timings, dropped_messages);
        done.notice = self.unreadable_notice(&req.messages);
        if !req.tools.is_empty() {
            let earlier = req.messages.iter().map(|m| m.tool_calls.len()).sum();
            let parsed = toolcall::parse_reply(&done.text, earlier);
            done.text = parsed.text;
            done.broken_calls = parsed.broken;
            done.tool_calls = parsed.calls;
            if !done.tool_calls.is_empty() && done.finish_reason == FinishReason::Stop {
                done.finish_reason = FinishReason::ToolCalls;
            }
        }
        Ok(done)
    }

    /// Log-probability of each continuation (token ids) as the start of the
    /// assistant's answer to `messages`. The conversation's KV cache is kept,
    /// so the next call that shares its prefix (the same instruction with
    /// another review) computes only what differs.
    pub fn score_continuations(
        &mut self,
        messages: &[Message],
        continuations: &[Vec<u32>],
    ) -> Result<Scores, EngineError> {
        let ids = self.encode_chat(messages)?;
        let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
        if ids.len() + longest > self.context_length {
            return Err(EngineError::TooLong { tokens: ids.len() + longest, context: self.context_length });
        }
        let (last, reused) = self.prefill(&ids)?;
        let first = log_softmax(&last);
        let n = ids.len();
        let mut logprobs = Vec::with_capacity(continuations.len());
        for cont in continuations {
            let Some((&head, rest)) = cont.split_first() else {
                logprobs.push(f64::NEG_INFINITY);
                continue;
            };
            let mut sum = first[head as usize];
            if !rest.is_empty() {
                let inputs = &cont[..cont.len() - 1];
                // A cache that cannot drop the continuation afterwards scores
                // each one after a fresh prefill of the prompt, so all of them
                // see the same prompt keys.
                if !self.kv.can_rewind() {
                    self.kv.reset();
                    self.prefill(&ids)?;
                }
                let rows = self.feed_each(inputs)?;
                for (row, &next) in rows.iter().zip(rest) {
                    sum += log_softmax(row)[next as usize];
                }
                // Back to the prompt: the continuation's keys are past it, and
                // the next forward overwrites them. An append-only cache can't
                // drop them and starts over; the next prefill recomputes the prompt.
                let _ = self.kv.rewind(n);
            }
            logprobs.push(sum);
        }
        Ok(Scores { logprobs, prompt_tokens: n, cached_tokens: reused })
    }

    #[allow(clippy::too_many_arguments)]
    fn completion(
        &self,
        text: String,
        finish_reason: FinishReason,
        prompt_tokens: usize,
        completion_tokens: usize,
        cached_tokens: usize,
        timings: Timings,
        dropped_messages: usize,
    ) -> Completion {
        Completion {
            text,
            finish_reason,
            usage: Usage { prompt_tokens, completion_tokens, cached_tokens },
            timings,
            dropped_messages,
            notice: None,
            first_token_logprobs: Vec::new(),
            tool_calls: Vec::new(),
            broken_calls: Vec::new(),
        }
    }

    /// Characters of the conversation the vocabulary has no tokens for: they
    /// were left out of the prompt, and the person should know which.
    fn unreadable_notice(&self, messages: &[Message]) -> Option<String> {
        let bad = self.tokenizer.unrepresentable(messages.iter().map(|m| m.content.as_str()));
        if bad.is_empty() {
            return None;
        }
        let names: Vec<String> = bad.iter().map(|c| format!("U+{:04X}", *c as u32)).collect();
        Some(format!(
            "{} this model cannot read {} left out of the prompt ({}); the rest of the text was used.",
            if bad.len() == 1 { "A character".to_string() } else { format!("{} characters", bad.len()) },
            if bad.len() == 1 { "was" } else { "were" },
            names.join(", ")
        ))
    }
}

/// What [`LocalModel::score_continuations`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Sum of the continuation tokens' log-probabilities, one per continuation.
    pub logprobs: Vec<f64>,
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV cache was reused.
    pub cached_tokens: usize,
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_sum = logits.iter().map(|&l| (l as f64 - max).exp()).sum::<f64>().ln() + max;
    logits.iter().map(|&l| l as f64 - log_sum).collect()
}

fn rate(tokens: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        tokens as f64 * 1e3 / ms
    } else {
        0.0
    }
}

/// Byte offset of the earliest stop string in `text`.
fn first_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min()
}

/// How much of `text` can be shown without risking showing the start of a stop string.
fn safe_emit_len(text: &str, stops: &[String]) -> usize {
    let mut hold = 0;
    for s in stops.iter().filter(|s| !s.is_empty()) {
        for k in (1..s.len()).rev() {
            if s.is_char_boundary(k) && text.ends_with(&s[..k]) {
                hold = hold.max(k);
                break;
            }
        }
    }
    let mut end = text.len() - hold;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

enum Job {
    Generate { req: GenRequest, cancel: Cancel, reply: mpsc::SyncSender<Event> },
    Score { messages: Vec<Message>, continuations: Vec<Vec<u32>>, reply: mpsc::SyncSender<Result<Scores, EngineError>> },
    Tokenize { text: String, reply: mpsc::SyncSender<Result<Vec<u32>, EngineError>> },
    Decode { ids: Vec<u32>, reply: mpsc::SyncSender<String> },
}

/// A model on its own thread. Cheap to clone; all clones talk to one worker.
#[derive(Clone)]
pub struct LocalEngine {
    jobs: mpsc::Sender<Job>,
    /// The file's name, for labels.
    pub name: String,
    pub facts: ModelFacts,
    pub load_ms: f64,
    pub context_length: usize,
}

impl LocalEngine {
    /// Load the model on a new thread; returns once it is ready (or failed).
    pub fn start(path: &Path, opts: LoadOptions) -> Result<Self, EngineError> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("duet-model".into())
            .spawn(move || {
                let mut model = match LocalModel::load(&path, &opts) {
                    Ok(m) => {
                        let _ = ready_tx.send(Ok((m.facts.clone(), m.load_ms, m.context_length)));
                        m
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = jobs_rx.recv() {
                    match job {
                        Job::Generate { req, cancel, reply } => {
                            let mut send = |t: &str| reply.send(Event::Delta(t.to_string())).is_ok();
                            let event = match model.generate(&req, &cancel, &mut send) {
                                Ok(c) => Event::Done(c),
                                Err(e) => Event::Error(e.into()),
                            };
                            let _ = reply.send(event);
                        }
                        Job::Score { messages, continuations, reply } => {
                            let _ = reply.send(model.score_continuations(&messages, &continuations));
                        }
                        Job::Tokenize { text, reply } => {
                            let _ = reply.send(model.tokenizer.encode_text(&text).map_err(EngineError::from));
                        }
                        Job::Decode { ids, reply } => {
                            let _ = reply.send(model.tokenizer.decode(&ids));
                        }
                    }
                }
            })
            .map_err(|_| EngineError::WorkerGone)?;
        let (facts, load_ms, context_length) = ready_rx.recv().map_err(|_| EngineError::WorkerGone)??;
        Ok(LocalEngine { jobs: jobs_tx, name, facts, load_ms, context_length })
    }

    /// Queue a request; events arrive on the returned channel.
    pub fn generate(&self, req: GenRequest, cancel: Cancel) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::sync_channel(256);
        if self.jobs.send(Job::Generate { req, cancel, reply: tx.clone() }).is_err() {
            let _ = tx.send(Event::Error(EngineError::WorkerGone.into()));
        }
        rx
    }

    /// Generate and wait for the whole answer.
    pub fn complete(&self, req: GenRequest, cancel: Cancel) -> Result<Completion, GenError> {
        Backend::complete(self, req, cancel)
    }

    /// Log-probabilities of continuations of the assistant's answer (see
    /// [`LocalModel::score_continuations`]); waits for the worker.
    pub fn score(&self, messages: Vec<Message>, continuations: Vec<Vec<u32>>) -> Result<Scores, EngineError> {
        self.ask(|reply| Job::Score { messages, continuations, reply })?
    }

    /// Token ids of plain text (no special tokens).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.ask(|reply| Job::Tokenize { text: text.to_string(), reply })?
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        self.ask(|reply| Job::Decode { ids: ids.to_vec(), reply })
    }

    fn ask<T>(&self, job: impl FnOnce(mpsc::SyncSender<T>) -> Job) -> Result<T, EngineError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs.send(job(tx)).map_err(|_| EngineError::WorkerGone)?;
        rx.recv().map_err(|_| EngineError::WorkerGone)
    }
}

impl Backend for LocalEngine {
    fn label(&self) -> String {
        self.name.clone()
    }

    fn data_location(&self) -> DataLocation {
        DataLocation::ThisComputer
    }

    fn generate(&self, req: GenRequest, cancel: Cancel) -> mpsc::Receiver<Event> {
        LocalEngine::generate(self, req, cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_are_held_back_then_cut() {
        let stops = vec!["</s>".to_string()];
        assert_eq!(safe_emit_len("hello </", &stops), 6);
        assert_eq!(first_stop("hello </s> more", &stops), Some(6));
        assert_eq!(safe_emit_len("héllo", &[]), "héllo".len());
    }
}
