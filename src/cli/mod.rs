//! The command line: parse, then hand each command to the library.
//!
//! Errors reach the person as one sentence on stderr and a non-zero exit code,
//! never a panic or a backtrace.

use crate::catalog::{human_bytes, Catalog, ModelEntry};
use crate::config::Paths;
use crate::config::Settings;
use crate::engine::cloud::{CloudBackend, CloudOptions};
use crate::engine::local::gguf::Gguf;
use crate::engine::local::tokenizer::Tokenizer;
use crate::engine::local::{LoadOptions, LocalEngine};
use crate::engine::{system_and_user, Backend, BackendSpec, Cancel, Event, GenRequest, SamplingParams};
use crate::progress::{Progress, TerminalBar};
use crate::store::{FileState, Store};
use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

mod ask;
mod bench;
mod chat;
mod classify;
mod cloud;
mod compare;
mod docs;
mod models;
mod serve;
mod teach;
mod tokenize;
mod tools;

pub use ask::AskArgs;
pub use bench::BenchArgs;
pub use chat::ChatArgs;
pub use cloud::CloudCommand;
pub use docs::DocsCommand;
pub use models::ModelsCommand;
pub use serve::ServeArgs;
pub use tokenize::TokenizeArgs;
use tools::{toolbox_with_mcp, TerminalConfirm};

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
    /// Make a classifier from your own labeled rows (and list, remove, export, import taught ones).
    Teach(teach::TeachArgs),
    /// One prompt to several backends side by side: answers, speed, tokens, cost, where the data went.
    Compare(compare::CompareArgs),
    /// Your documents: add files and folders, then ask questions answered from them, with citations.
    #[command(subcommand)]
    Docs(DocsCommand),
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
    /// A catalog id (see `duet models list`) or the path of a .gguf file; for
    /// classify, also taught:NAME (see `duet teach list`).
    #[arg(long, short = 'm')]
    pub model: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// 0 = always the most likely token (deterministic). Default: 0 for `ask`, 0.2 for `chat`.
    #[arg(long, short = 't')]
    pub temperature: Option<f32>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = GenArgs::DEFAULT_MAX_TOKENS)]
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
    const DEFAULT_MAX_TOKENS: usize = 512;

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

#[derive(Args, Debug, Clone)]
pub struct BackendArgs {
    /// `local` (this computer), `cloud` (an OpenAI-compatible endpoint) or `cloud:NAME` (that profile).
    #[arg(long, default_value_t = BackendSpec::Local)]
    pub backend: BackendSpec,
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
        Some(Command::Ask(a)) => ask::ask(&store, &catalog, a),
        Some(Command::Chat(a)) => chat::chat(&store, &catalog, a),
        Some(Command::Tokenize(a)) => tokenize::tokenize(&store, &catalog, a),
        Some(Command::Classify(a)) => classify::classify(&store, &catalog, a),
        Some(Command::Teach(a)) => teach::teach_command(&store, &catalog, a),
        Some(Command::Compare(a)) => compare::compare(&store, &catalog, a),
        Some(Command::Docs(c)) => docs::docs(&store, &catalog, c),
        None | Some(Command::Gui) => gui(store.paths(), cli.offline),
        Some(Command::Models(m)) => models::models(&store, &catalog, m),
        Some(Command::Bench(a)) => bench::bench(&store, &catalog, a),
        Some(Command::Serve(a)) => serve::serve(&store, &catalog, a),
        Some(Command::Cloud(c)) => cloud::cloud(store.paths(), c),
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
    let (bar, cancel) = (TerminalBar::new(), interrupt().0.clone());
    Ok(store.chat_model(catalog, model, &bar, &cancel)?)
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
fn profile_for_backend(store: &Store, spec: &BackendSpec) -> Result<crate::config::CloudProfile> {
    if store.offline() {
        bail!("offline mode is on; '{spec}' needs the network. Drop --offline or use --backend local.");
    }
    find_profile(&Settings::load(store.paths())?, spec.profile())
}

fn cloud_backend(paths: &Paths, a: &BackendArgs) -> Result<CloudBackend> {
    let mut profile = find_profile(&Settings::load(paths)?, a.profile.as_deref().or(a.backend.profile()))?;
    if let Some(u) = &a.base_url {
        profile.base_url = u.clone();
    }
    if let Some(m) = &a.cloud_model {
        profile.model = m.clone();
    }
    let opts = CloudOptions { stream: !a.no_stream, ..CloudOptions::default() };
    Ok(crate::engine::cloud::backend_for(&profile, opts))
}
