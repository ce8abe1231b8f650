//! The command line: parse, then hand each command to the library.
//!
//! Errors reach the person as one sentence on stderr and a non-zero exit code,
//! never a panic or a backtrace.

use crate::catalog::{human_bytes, Catalog, ModelEntry, ModelKind};
use crate::config::Paths;
use crate::config::Settings;
use crate::engine::cloud::{CloudBackend, CloudOptions};
use crate::engine::local::gguf::Gguf;
use crate::engine::local::tokenizer::Tokenizer;
use crate::engine::local::{LoadOptions, LocalEngine};
use crate::engine::{Backend, Cancel, Event, GenRequest, Message, SamplingParams};
use crate::progress::{Progress, TerminalBar};
use crate::store::{FileState, Store};
use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

mod classify;
mod compare;

#[derive(Parser, Debug)]
#[command(name = "duet", version, about = "A small open model on your own computer, with a cloud model beside it.")]
pub struct Cli {
    /// Never touch the network; say what is missing instead.
    #[arg(long, global = true)]
    pub offline: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Ask one question and print the answer (temperature 0 unless told otherwise).
    Ask(AskArgs),
    /// Talk with the model in the terminal. /reset clears, /system sets the system prompt.
    Chat(ChatArgs),
    /// Label every review in a file (or --example) and count them; with a label column, measure mistakes.
    Classify(classify::ClassifyArgs),
    /// One prompt to several backends side by side: answers, speed, tokens, cost, where the data went.
    Compare(compare::CompareArgs),
    /// Open the desktop app (what `duet` with no arguments does).
    Gui,
    /// Show the token ids (and pieces) a model sees for a text.
    Tokenize(TokenizeArgs),
    /// Serve the local model over OpenAI's HTTP API (127.0.0.1 by default).
    Serve(ServeArgs),
    /// Cloud profiles: list, add, store a key.
    #[command(subcommand)]
    Cloud(CloudCommand),
    /// Measure speed and memory (llama-bench's method).
    Bench(BenchArgs),
    /// List, fetch, verify and remove models.
    #[command(subcommand)]
    Models(ModelsCommand),
}

#[derive(Args, Debug, Clone)]
pub struct ModelArg {
    /// A catalog id (see `duet models list`) or the path of a .gguf file.
    #[arg(long, short = 'm')]
    pub model: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// 0 = always the most likely token (deterministic). Default: 0 for `ask`, 0.7 for `chat`.
    #[arg(long, short = 't')]
    pub temperature: Option<f32>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Default: 1.0 (off) for `ask`, 1.1 for `chat`.
    #[arg(long)]
    pub repeat_penalty: Option<f32>,
    /// Stop before this text (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Positions the model can see at once (capped at the model's own limit).
    #[arg(long, default_value_t = 4096)]
    pub context: usize,
    /// Threads for the math (default: one per physical core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl GenArgs {
    /// `(temperature, repeat_penalty)` defaults differ: `ask` is deterministic, `chat` lively.
    fn sampling(&self, defaults: (f32, f32)) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature.unwrap_or(defaults.0),
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty.unwrap_or(defaults.1),
            repeat_last_n: 64,
            seed: self.seed,
        }
    }
}

const ASK_DEFAULTS: (f32, f32) = (0.0, 1.0);
const CHAT_DEFAULTS: (f32, f32) = (0.7, 1.1);

#[derive(Args, Debug, Clone)]
pub struct BackendArgs {
    /// `local` (this computer) or `cloud` (an OpenAI-compatible endpoint).
    #[arg(long, default_value = "local", value_parser = ["local", "cloud"])]
    pub backend: String,
    /// Which cloud profile (see `duet cloud list`); default: the first.
    #[arg(long)]
    pub profile: Option<String>,
    /// Use this base URL instead of the profile's (e.g. http://127.0.0.1:8080/v1).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Use this cloud model name instead of the profile's.
    #[arg(long)]
    pub cloud_model: Option<String>,
    /// Ask the cloud for the whole answer at once instead of streaming it.
    #[arg(long)]
    pub no_stream: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer TOKEN` (needed for any host but loopback).
    #[arg(long, env = "DUET_SERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub model: ModelArg,
    /// Requests that may wait while one is answered; more get 503 at once.
    #[arg(long, default_value_t = 4)]
    pub queue: usize,
    #[arg(long, default_value_t = 4096)]
    pub context: usize,
}

#[derive(Subcommand, Debug)]
pub enum CloudCommand {
    /// The cloud profiles and where each one's key comes from.
    List,
    /// Add (or replace) a profile.
    Add {
        name: String,
        #[arg(long)]
        base_url: String,
        #[arg(long)]
        model: String,
        /// Environment variable that holds the key.
        #[arg(long)]
        key_env: Option<String>,
    },
    /// Store a profile's key in the OS keyring (read from standard input).
    Key { name: String },
}

#[derive(Args, Debug)]
pub struct AskArgs {
    /// The question.
    pub prompt: String,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[arg(long, short = 's')]
    pub system: Option<String>,
    #[command(flatten)]
    pub model: ModelArg,
    #[command(flatten)]
    pub gen: GenArgs,
    /// Print one JSON object: answer, usage, timings.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[arg(long, short = 's')]
    pub system: Option<String>,
    #[command(flatten)]
    pub model: ModelArg,
    #[command(flatten)]
    pub gen: GenArgs,
}

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    pub text: String,
    #[command(flatten)]
    pub model: ModelArg,
    /// Treat special-token strings like `<|im_end|>` as plain text.
    #[arg(long)]
    pub no_special: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Threads for the math (default: one per physical core).
    #[arg(long, short = 't', default_value_t = 0)]
    pub threads: usize,
    /// Prompt-processing test size (0 skips it).
    #[arg(short = 'p', default_value_t = 512)]
    pub prompt: usize,
    /// Text-generation test size (0 skips it).
    #[arg(short = 'n', default_value_t = 128)]
    pub gen: usize,
    /// Repetitions of each test.
    #[arg(short = 'r', default_value_t = 5)]
    pub reps: usize,
    /// Skip timing the classification of 240 labeled reviews.
    #[arg(long)]
    pub no_classify: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Every known model: size, memory needed, and whether it is here.
    List,
    /// Fetch a model (and verify it).
    Pull { id: Option<String> },
    /// Re-hash the files of one model, or of every model present.
    Verify { id: Option<String> },
    /// Delete a model's files.
    Rm { id: String },
    /// Print where a model's file is (or would be).
    Path { id: Option<String> },
    /// What a model file is: architecture, sizes, quantization, tokenizer,
    /// template, and which engine would run it (or why none can).
    Info {
        /// A catalog id or the path of a .gguf file (default: the default model).
        model: Option<String>,
    },
}

/// Cancel flag for whatever is running now; Ctrl-C sets it. When nothing is
/// running (a chat waiting for input), Ctrl-C quits.
fn interrupt() -> &'static (Cancel, Arc<AtomicBool>) {
    static FLAG: OnceLock<(Cancel, Arc<AtomicBool>)> = OnceLock::new();
    FLAG.get_or_init(|| {
        let cancel = Cancel::new();
        let busy = Arc::new(AtomicBool::new(true));
        let (c, b) = (cancel.clone(), busy.clone());
        let _ = ctrlc::set_handler(move || {
            // A second Ctrl-C while the first is still being honoured (a hub
            // download cannot be interrupted mid-file) quits at once; partial
            // files never look complete, so nothing is lost.
            if b.load(Ordering::SeqCst) && !c.is_cancelled() {
                c.cancel();
            } else {
                eprintln!();
                std::process::exit(130);
            }
        });
        (cancel, busy)
    })
}

pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match dispatch(cli) {
        Ok(()) => 0,
        // `duet models list | head`: the reader left; that is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            0
        }
        Err(e) => {
            let cancelled = interrupt().0.is_cancelled();
            eprintln!("error: {}", chain(&e));
            if cancelled {
                130
            } else {
                1
            }
        }
    }
}

fn chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn dispatch(cli: Cli) -> Result<()> {
    let paths = Paths::for_this_run();
    let store = Store::new(paths, cli.offline);
    let catalog = Catalog::builtin()?;
    match cli.command {
        Some(Command::Ask(a)) => ask(&store, &catalog, a),
        Some(Command::Chat(a)) => chat(&store, &catalog, a),
        Some(Command::Tokenize(a)) => tokenize(&store, &catalog, a),
        Some(Command::Classify(a)) => classify::classify(&store, &catalog, a),
        Some(Command::Compare(a)) => compare::compare(&store, &catalog, a),
        None | Some(Command::Gui) => gui(store.paths(), cli.offline),
        Some(Command::Models(m)) => models(&store, &catalog, m),
        Some(Command::Bench(a)) => bench(&store, &catalog, a),
        Some(Command::Serve(a)) => serve(&store, &catalog, a),
        Some(Command::Cloud(c)) => cloud(store.paths(), c),
    }
}

/// The desktop app; `--offline` turns offline mode on for this session.
fn gui(paths: &Paths, offline: bool) -> Result<()> {
    let mut services = crate::ui::services::Services::open(paths.clone())?;
    if offline {
        services.settings.app.offline = true;
    }
    crate::ui::run(services)
}

/// A `--model` value: a catalog id, or a path to a .gguf file.
pub fn resolve_model(store: &Store, catalog: &Catalog, model: Option<&str>) -> Result<PathBuf> {
    let entry = match model {
        None => catalog.default_model(),
        Some(m) if m.ends_with(".gguf") || m.contains(std::path::MAIN_SEPARATOR) => {
            let p = PathBuf::from(m);
            if !p.is_file() {
                bail!(
                    "{} does not exist. Give the path of a .gguf file, or a model id from `duet models list`.",
                    p.display()
                );
            }
            return Ok(p);
        }
        Some(id) => catalog.get(id)?,
    };
    if entry.kind != ModelKind::Chat {
        bail!("'{}' is an embedding model; it cannot chat. Pick a chat model from `duet models list`.", entry.id);
    }
    let (bar, cancel) = (TerminalBar::new(), interrupt().0.clone());
    Ok(store.ensure(entry, &bar, &cancel)?)
}

fn start_engine(path: &Path, context: usize, threads: usize) -> Result<LocalEngine> {
    let quiet = !std::io::stderr().is_terminal();
    if !quiet {
        eprint!("loading {}…", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    }
    let engine = LocalEngine::start(path, LoadOptions { context_length: context, threads });
    if !quiet {
        eprint!("\r\x1b[2K");
    }
    Ok(engine?)
}

fn ask(store: &Store, catalog: &Catalog, a: AskArgs) -> Result<()> {
    if a.prompt.trim().is_empty() {
        bail!("the prompt is empty; write a question, e.g. duet ask \"What is the capital of France?\"");
    }
    let cancel = interrupt().0.clone();
    let backend: Box<dyn Backend> = if a.backend.backend == "cloud" {
        if store.offline() {
            bail!("offline mode is on; the cloud backend needs the network. Drop --offline or use --backend local.");
        }
        let cloud = cloud_backend(store.paths(), &a.backend)?;
        if std::io::stderr().is_terminal() {
            eprintln!("(sent to {})", cloud.host());
        }
        Box::new(cloud)
    } else {
        let path = resolve_model(store, catalog, a.model.model.as_deref())?;
        Box::new(start_engine(&path, a.gen.context, a.gen.threads)?)
    };
    let mut messages = Vec::new();
    if let Some(s) = &a.system {
        messages.push(Message::new("system", s));
    }
    messages.push(Message::new("user", &a.prompt));
    let req = GenRequest {
        messages,
        sampling: a.gen.sampling(ASK_DEFAULTS),
        max_tokens: a.gen.max_tokens,
        stop: a.gen.stop.clone(),
        truncate_history: false,
    };
    let rx = backend.generate(req, cancel);
    let mut out = std::io::stdout().lock();
    for event in rx {
        match event {
            Event::Delta(t) => {
                if !a.json {
                    write!(out, "{t}")?;
                    out.flush()?;
                }
            }
            Event::Done(c) => {
                if a.json {
                    let v = serde_json::json!({
                        "answer": c.text,
                        "model": backend.label(),
                        "where": backend.data_location().to_string(),
                        "finish_reason": c.finish_reason,
                        "usage": c.usage,
                        "timings": c.timings,
                    });
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else {
                    writeln!(out)?;
                }
                if c.finish_reason == crate::engine::FinishReason::Cancelled {
                    bail!("stopped (Ctrl-C)");
                }
                return Ok(());
            }
            Event::Error(e) => bail!(e),
        }
    }
    bail!("the model stopped without an answer")
}

fn chat(store: &Store, catalog: &Catalog, a: ChatArgs) -> Result<()> {
    let gen = a.gen;
    let path = resolve_model(store, catalog, a.model.model.as_deref())?;
    let engine = start_engine(&path, gen.context, gen.threads)?;
    let (cancel, busy) = interrupt();
    let mut system = a.system.clone();
    let mut history: Vec<Message> = Vec::new();
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    eprintln!(
        "duet chat · {} · runs on this computer, nothing leaves it.\nType a message. /reset clears, /system TEXT sets the system prompt, Ctrl-C stops an answer, Ctrl-D quits.",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    );
    loop {
        busy.store(false, Ordering::SeqCst);
        if interactive {
            eprint!("\n> ");
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        if line == "/reset" {
            history.clear();
            eprintln!("(conversation cleared)");
            continue;
        }
        if let Some(s) = line.strip_prefix("/system") {
            system = Some(s.trim().to_string()).filter(|s| !s.is_empty());
            history.clear();
            eprintln!("(system prompt {}; conversation cleared)", if system.is_some() { "set" } else { "removed" });
            continue;
        }
        if line == "/quit" || line == "/exit" {
            return Ok(());
        }
        history.push(Message::new("user", line));
        let mut messages: Vec<Message> = system.iter().map(|s| Message::new("system", s)).collect();
        messages.extend(history.iter().cloned());
        let req = GenRequest {
            messages,
            sampling: gen.sampling(CHAT_DEFAULTS),
            max_tokens: gen.max_tokens,
            stop: gen.stop.clone(),
            truncate_history: true,
        };
        cancel.reset();
        busy.store(true, Ordering::SeqCst);
        let mut out = std::io::stdout().lock();
        let mut answered = false;
        for event in engine.generate(req, cancel.clone()) {
            match event {
                Event::Delta(t) => {
                    write!(out, "{t}")?;
                    out.flush()?;
                }
                Event::Done(c) => {
                    writeln!(out)?;
                    if c.dropped_messages > 0 {
                        eprintln!(
                            "(the oldest {} messages no longer fit the context and were left out)",
                            c.dropped_messages
                        );
                    }
                    if c.finish_reason == crate::engine::FinishReason::Cancelled {
                        eprintln!("(stopped)");
                    }
                    eprintln!(
                        "[{} tokens · {:.0} ms to first token · {:.1} tok/s]",
                        c.usage.completion_tokens, c.timings.ttft_ms, c.timings.decode_tok_per_s
                    );
                    history.push(Message::new("assistant", &c.text));
                    answered = true;
                }
                Event::Error(e) => {
                    eprintln!("error: {e}");
                    history.pop();
                }
            }
        }
        if !answered && history.last().is_some_and(|m| m.role == "user") {
            history.pop();
        }
    }
}

fn tokenize(store: &Store, catalog: &Catalog, a: TokenizeArgs) -> Result<()> {
    let path = resolve_model(store, catalog, a.model.model.as_deref())?;
    let (g, _) = Gguf::open(&path)?;
    let tok = Tokenizer::from_gguf(&g)?;
    let ids = if a.no_special { tok.encode_text(&a.text)? } else { tok.encode_with_specials(&a.text)? };
    let mut out = std::io::stdout().lock();
    if a.json {
        let pieces: Vec<_> = ids.iter().map(|&i| serde_json::json!({"id": i, "piece": tok.piece(i)})).collect();
        writeln!(out, "{}", serde_json::json!({"count": ids.len(), "ids": ids, "tokens": pieces}))?;
    } else {
        for &id in &ids {
            writeln!(out, "{id:>6} -> '{}'", String::from_utf8_lossy(tok.token_bytes(id)).replace('\n', "\\n"))?;
        }
        writeln!(out, "{} tokens", ids.len())?;
    }
    Ok(())
}

fn bench(store: &Store, catalog: &Catalog, a: BenchArgs) -> Result<()> {
    if a.reps == 0 {
        bail!("-r must be at least 1");
    }
    let path = resolve_model(store, catalog, a.model.model.as_deref())?;
    let opts = crate::bench::BenchOptions {
        threads: a.threads,
        prompt_tokens: a.prompt,
        gen_tokens: a.gen,
        repetitions: a.reps,
        classify: !a.no_classify,
    };
    let show = std::io::stderr().is_terminal();
    let report = crate::bench::run(&path, &opts, &mut |what| {
        if show {
            eprint!("\r\x1b[2Kbench: {what}…");
        }
    })
    .map_err(anyhow::Error::msg)?;
    if show {
        eprint!("\r\x1b[2K");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::bench::render(&report));
    }
    Ok(())
}

/// The cloud backend a command asked for: a profile, with flags on top.
/// The cloud profile called `name`, or the first one when no name is given.
fn find_profile(settings: &Settings, name: Option<&str>) -> Result<crate::config::CloudProfile> {
    match name {
        Some(name) => settings.profile(name).cloned().ok_or_else(|| {
            let known: Vec<_> = settings.cloud.iter().map(|p| p.name.as_str()).collect();
            anyhow::anyhow!(
                "there is no cloud profile '{name}' (known: {}). Add one with `duet cloud add`.",
                known.join(", ")
            )
        }),
        None => settings.cloud.first().cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "no cloud profile is set up; add one with `duet cloud add NAME --base-url URL --model MODEL`"
            )
        }),
    }
}

/// The profile behind a `--backend` value other than `local`: `cloud` (the
/// first profile) or `cloud:NAME`, as `classify` and `compare` take them.
fn profile_for_backend(store: &Store, spec: &str) -> Result<crate::config::CloudProfile> {
    let unknown = || anyhow::anyhow!("unknown backend '{spec}': use local, cloud or cloud:NAME");
    let name = match spec.strip_prefix("cloud").ok_or_else(unknown)? {
        "" => None,
        rest => Some(rest.strip_prefix(':').ok_or_else(unknown)?),
    };
    if store.offline() {
        bail!("offline mode is on; '{spec}' needs the network. Drop --offline or use --backend local.");
    }
    find_profile(&Settings::load(store.paths())?, name)
}

fn cloud_backend(paths: &Paths, a: &BackendArgs) -> Result<CloudBackend> {
    let mut profile = find_profile(&Settings::load(paths)?, a.profile.as_deref())?;
    if let Some(u) = &a.base_url {
        profile.base_url = u.clone();
    }
    if let Some(m) = &a.cloud_model {
        profile.model = m.clone();
    }
    let opts = CloudOptions { stream: !a.no_stream, ..CloudOptions::default() };
    Ok(crate::engine::cloud::backend_for(&profile, opts))
}

fn serve(store: &Store, catalog: &Catalog, a: ServeArgs) -> Result<()> {
    let path = resolve_model(store, catalog, a.model.model.as_deref())?;
    let model_id = match a.model.model.as_deref() {
        Some(m) if catalog.get(m).is_ok() => m.to_string(),
        Some(_) => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        None => catalog.default_model().id.clone(),
    };
    let engine = start_engine(&path, a.context, 0)?;
    let cfg = crate::server::ServerConfig {
        host: a.host.clone(),
        port: a.port,
        token: a.token.as_deref().map(crate::secret::Secret::new),
        model_id: model_id.clone(),
        queue: a.queue,
        ..Default::default()
    };
    let auth = cfg.token.is_some();
    let handle = crate::server::start(engine, cfg)?;
    eprintln!(
        "duet serve: {model_id} on http://{}/v1 ({}). Ctrl-C stops.",
        handle.addr,
        if auth { "token required" } else { "no token; loopback only" }
    );
    crate::runtime().block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    eprintln!("stopping: finishing answers in flight…");
    handle.shutdown();
    Ok(())
}

fn cloud(paths: &Paths, cmd: CloudCommand) -> Result<()> {
    let mut settings = Settings::load(paths)?;
    match cmd {
        CloudCommand::List => {
            for p in &settings.cloud {
                let var = p.key_env.as_deref().unwrap_or("OPENAI_API_KEY");
                let key = if std::env::var(var).is_ok_and(|v| !v.trim().is_empty()) {
                    format!("key from ${var}")
                } else if crate::engine::cloud::resolve_key(p).is_some() {
                    "key from the keyring or settings".to_string()
                } else {
                    format!("no key (set ${var} or run `duet cloud key {}`)", p.name)
                };
                println!("{:<12} {:<40} {:<20} {key}", p.name, p.base_url, p.model);
            }
        }
        CloudCommand::Add { name, base_url, model, key_env } => {
            if reqwest::Url::parse(&base_url).is_err() {
                bail!("'{base_url}' is not a URL; it should look like https://api.openai.com/v1");
            }
            settings.cloud.retain(|p| p.name != name);
            settings.cloud.push(crate::config::CloudProfile {
                name: name.clone(),
                base_url,
                model,
                key_env,
                key: None,
                usd_per_m_input: 0.0,
                usd_per_m_output: 0.0,
            });
            settings.save(paths)?;
            println!("saved cloud profile '{name}' in {}", paths.settings_file().display());
        }
        CloudCommand::Key { name } => {
            if settings.profile(&name).is_none() {
                bail!("there is no cloud profile '{name}'; see `duet cloud list`");
            }
            eprintln!("Paste the key for '{name}' and press Enter (it is not shown or saved anywhere else):");
            let mut key = String::new();
            std::io::stdin().read_line(&mut key)?;
            let key = crate::secret::Secret::new(key.trim());
            if key.is_empty() {
                bail!("no key given; nothing stored");
            }
            crate::engine::cloud::keyring_set(&name, &key).map_err(anyhow::Error::msg)?;
            println!("stored the key for '{name}' in the OS keyring");
        }
    }
    Ok(())
}

fn state_word(s: FileState) -> &'static str {
    match s {
        FileState::Missing => "-",
        FileState::Verified => "verified",
        FileState::Unverified => "present",
        FileState::Corrupt => "DAMAGED",
    }
}

fn pick<'a>(catalog: &'a Catalog, id: Option<&str>) -> Result<&'a ModelEntry> {
    Ok(match id {
        Some(id) => catalog.get(id)?,
        None => catalog.default_model(),
    })
}

fn models(store: &Store, catalog: &Catalog, cmd: ModelsCommand) -> Result<()> {
    let bar = TerminalBar::new();
    let cancel = interrupt().0.clone();
    match cmd {
        ModelsCommand::List => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<16} {:<38} {:>6} {:<7} {:>9} {:>9}  STATE",
                "ID", "NAME", "PARAMS", "QUANT", "SIZE", "RAM"
            )?;
            for m in &catalog.models {
                let state = store.model_state(m);
                let mark = if m.default { "*" } else { "" };
                writeln!(
                    out,
                    "{:<16} {:<38} {:>6} {:<7} {:>9} {:>9}  {}",
                    format!("{}{mark}", m.id),
                    m.name,
                    m.parameters,
                    m.quantization,
                    human_bytes(m.size_bytes()),
                    human_bytes(ram_needed(store, m)),
                    state_word(state)
                )?;
            }
            writeln!(out, "\n* default model. Files live in {}", store.paths().models_dir.display())?;
        }
        ModelsCommand::Pull { id } => {
            let m = pick(catalog, id.as_deref())?;
            let path = store.ensure(m, &bar, &cancel)?;
            println!("{} is ready: {}", m.id, path.display());
        }
        ModelsCommand::Verify { id } => {
            let targets: Vec<&ModelEntry> = match id {
                Some(id) => vec![catalog.get(&id)?],
                None => catalog.models.iter().filter(|m| store.model_state(m) != FileState::Missing).collect(),
            };
            if targets.is_empty() {
                println!("no models are downloaded yet; `duet models pull` fetches the default one");
            }
            let mut bad = 0;
            for m in targets {
                match store.verify(m, &bar) {
                    Ok(()) => println!("{}: ok", m.id),
                    Err(e) => {
                        bad += 1;
                        println!("{}: {e}", m.id);
                    }
                }
            }
            if bad > 0 {
                bail!("{bad} model(s) failed verification");
            }
        }
        ModelsCommand::Rm { id } => {
            let m = catalog.get(&id)?;
            let freed = store.remove(m)?;
            if freed == 0 {
                println!("{} was not downloaded; nothing to remove", m.id);
            } else {
                println!("removed {} ({} freed)", m.id, human_bytes(freed));
            }
        }
        ModelsCommand::Path { id } => {
            let m = pick(catalog, id.as_deref())?;
            let p = if m.files.len() == 1 { store.file_path(m, m.main_file()) } else { store.model_dir(m) };
            println!("{}", p.display());
        }
        ModelsCommand::Info { model } => {
            let path = resolve_model(store, catalog, model.as_deref())?;
            print!("{}", model_info(&path)?);
        }
    }
    bar.finish();
    Ok(())
}

/// `duet models info`: the header of a GGUF in words.
fn model_info(path: &Path) -> Result<String> {
    use crate::engine::local::{llama::FastLlama, model::SUPPORTED, template};
    let (g, _) = Gguf::open(path)?;
    let f = g.summary();
    let mut types: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for t in g.content.tensor_infos.values() {
        *types.entry(format!("{:?}", t.ggml_dtype)).or_default() += 1;
    }
    let types: Vec<String> = types.iter().map(|(k, v)| format!("{v}× {k}")).collect();
    let engine = if !SUPPORTED.contains(&f.architecture.as_str()) {
        format!("none: architecture '{}' is not supported (duet runs {})", f.architecture, SUPPORTED.join(", "))
    } else {
        match FastLlama::check(&g) {
            Ok(()) => format!("duet kernels ({})", crate::engine::local::kernels::kernels().name),
            Err(why) => format!("candle ({why})"),
        }
    };
    let tokenizer = match Tokenizer::from_gguf(&g) {
        Ok(t) => format!("{} ({} tokens)", g.string("tokenizer.ggml.model").unwrap_or("?"), t.vocab_size()),
        Err(e) => format!("unusable: {e}"),
    };
    let tmpl = match g.string("tokenizer.chat_template") {
        Some(_) => "from the file".to_string(),
        None if template::builtin_for(&f.architecture) == template::FALLBACK_TEMPLATE => {
            "none in the file; ChatML".to_string()
        }
        None => format!("none in the file; duet's built-in {} template", f.architecture),
    };
    let ctx = f.context_length.min(LoadOptions::default().context_length as u32);
    Ok(format!(
        "file:         {}\nname:         {}\narchitecture: {} · {} layers · {} dims · {} heads ({} for keys/values) · head size {}\ncontext:      {} tokens trained; duet uses {} by default\nsize:         {} · tensors: {}\ntokenizer:    {tokenizer}\ntemplate:     {tmpl}\nengine:       {engine}\nmemory:       about {} (weights + a {}-token KV cache + runtime)\n",
        path.display(),
        if f.name.is_empty() { "-" } else { &f.name },
        f.architecture,
        f.n_layers,
        f.n_embd,
        f.n_head,
        f.n_kv_head,
        f.head_dim,
        f.context_length,
        ctx,
        human_bytes(f.file_size_bytes),
        types.join(", "),
        human_bytes(f.ram_bytes(ctx)),
        ctx
    ))
}

/// Memory to run a model: exact from the file when present, estimated otherwise.
fn ram_needed(store: &Store, m: &ModelEntry) -> u64 {
    if m.kind == ModelKind::Chat && store.model_state(m) != FileState::Missing {
        if let Ok((g, _)) = Gguf::open(&store.file_path(m, m.main_file())) {
            let facts = g.summary();
            let ctx = facts.context_length.min(LoadOptions::default().context_length as u32);
            return facts.ram_bytes(ctx);
        }
    }
    m.ram_estimate_bytes()
}
