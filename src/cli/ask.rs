//! `duet ask`: one question, one answer (temperature 0 unless told otherwise).

use super::*;

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
    /// Let the model use tools: the calculator (runs at once), and actions that
    /// wait for your yes (save a note, copy to the clipboard, search your documents).
    #[arg(long)]
    pub tools: bool,
    /// With --tools: most rounds of model → tools before giving up.
    #[arg(long, default_value_t = crate::tasks::agent::DEFAULT_MAX_STEPS)]
    pub max_steps: usize,
    /// With --tools: the mcp.json listing MCP servers whose tools to offer too
    /// (default: mcp.json in duet's config folder, when it exists).
    #[arg(long, value_name = "FILE")]
    pub mcp: Option<PathBuf>,
    /// With --tools: do not work out arithmetic found in the question before the model answers.
    #[arg(long)]
    pub no_math_help: bool,
}

const ASK_DEFAULTS: (f32, f32) = (0.0, 1.0);

pub fn ask(store: &Store, catalog: &Catalog, a: AskArgs) -> Result<()> {
    if a.prompt.trim().is_empty() {
        bail!("the prompt is empty; write a question, e.g. duet ask \"What is the capital of France?\"");
    }
    let cancel = interrupt().0.clone();
    let backend: Box<dyn Backend> = if !a.backend.backend.is_local() {
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
    let mut req = GenRequest {
        messages: system_and_user(a.system.as_deref(), &a.prompt),
        sampling: a.gen.sampling(ASK_DEFAULTS),
        max_tokens: a.gen.max_tokens,
        stop: a.gen.stop.clone(),
        truncate_history: false,
        tools: Vec::new(),
        constraint: None,
    };
    if a.tools {
        if a.gen.max_tokens == GenArgs::DEFAULT_MAX_TOKENS {
            // Calls are short; the answer after them too. 512 only lets a confused model ramble.
            req.max_tokens = 256;
        }
        return ask_with_tools(store, backend.as_ref(), req, &a, &cancel);
    }
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
                if let Some(notice) = &c.notice {
                    eprintln!("{notice}");
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

/// `--tools`: the agent loop, each step on stderr as it happens, the answer on stdout.
fn ask_with_tools(store: &Store, backend: &dyn Backend, req: GenRequest, a: &AskArgs, cancel: &Cancel) -> Result<()> {
    use crate::tasks::agent::{Agent, AgentEvent, Step};
    let mcp_file = a.mcp.clone().unwrap_or_else(|| crate::tasks::tools::mcp::config_file(store.paths()));
    if a.mcp.as_ref().is_some_and(|f| !f.exists()) {
        bail!("{} does not exist; write an mcp.json there or drop --mcp", mcp_file.display());
    }
    // The servers stay up while the agent runs (dropping them stops their processes).
    let (toolbox, _servers) = toolbox_with_mcp(store.paths(), &mcp_file)?;
    let confirm = TerminalConfirm;
    let mut agent = Agent::new(backend, &toolbox, &confirm);
    agent.max_steps = a.max_steps.max(1);
    agent.math_help = !a.no_math_help;
    let mut out = std::io::stdout().lock();
    let mut streamed = String::new();
    let run = agent.run(&mut crate::tasks::tools::gate::Gate::new(), req, cancel, &mut |event| match event {
        AgentEvent::Delta(t) => {
            if !a.json {
                let _ = write!(out, "{t}");
                let _ = out.flush();
            }
            streamed.push_str(&t);
        }
        AgentEvent::Step(step) => {
            // A round that ended in calls streamed its text as a thought; start the next line clean.
            if !streamed.is_empty() && !a.json {
                let _ = writeln!(out);
            }
            streamed.clear();
            if !a.json {
                eprintln!("{step}");
            }
        }
    })?;
    if a.json {
        let v = serde_json::json!({
            "answer": run.answer.text,
            "model": backend.label(),
            "where": backend.data_location().to_string(),
            "finish_reason": run.answer.finish_reason,
            "steps": run.steps.iter().map(Step::to_string).collect::<Vec<_>>(),
            "usage": run.answer.usage,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else if !streamed.is_empty() {
        writeln!(out)?;
    }
    if let Some(notice) = &run.answer.notice {
        eprintln!("{notice}");
    }
    if cancel.is_cancelled() {
        bail!("stopped (Ctrl-C)");
    }
    Ok(())
}
