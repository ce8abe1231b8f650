//! `duet chat`: a streaming conversation in the terminal, driven by the same
//! [`ChatSession`](crate::tasks::chat::ChatSession) as the app's Chat screen.

use super::*;
use crate::tasks::answer::Contender;
use crate::tasks::chat::{ChatSession, ChatUpdate, ConvSettings};

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[arg(long, short = 's')]
    pub system: Option<String>,
    #[command(flatten)]
    pub model: ModelArg,
    #[command(flatten)]
    pub gen: GenArgs,
    /// Let the model use tools: the calculator, and actions that wait for your yes
    /// (save a note, copy to the clipboard, search your documents, mcp.json's servers).
    #[arg(long)]
    pub tools: bool,
}

/// Temperature and repeat penalty: low temperature, as the app uses (small models wander above it).
const CHAT_DEFAULTS: (f32, f32) = (0.2, 1.1);

pub fn chat(store: &Store, catalog: &Catalog, a: ChatArgs) -> Result<()> {
    let gen = a.gen;
    let path = resolve_model(store, catalog, a.model.model.as_deref())?;
    let engine = start_engine(&path, gen.context, gen.threads)?;
    let (cancel, busy) = interrupt();
    let sampling = gen.sampling(CHAT_DEFAULTS);
    let conv = ConvSettings {
        system_prompt: a.system.clone().unwrap_or_default(),
        temperature: sampling.temperature,
        top_p: sampling.top_p,
        max_tokens: gen.max_tokens,
        seed: sampling.seed,
        tools: a.tools,
    };
    let mut session = ChatSession::new(BackendSpec::Local, conv);
    // MCP servers stay up for the whole chat (dropping them stops their processes).
    let _servers = if a.tools {
        let (toolbox, servers) =
            toolbox_with_mcp(store.paths(), &crate::tasks::tools::mcp::config_file(store.paths()))?;
        session.toolbox = Some(std::sync::Arc::new(toolbox));
        servers
    } else {
        Vec::new()
    };
    session.repeat_penalty = Some(sampling.repeat_penalty);
    session.sampling = sampling;
    session.stop = gen.stop.clone();
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
            session.clear();
            eprintln!("(conversation cleared)");
            continue;
        }
        if let Some(s) = line.strip_prefix("/system") {
            session.conv.system_prompt = s.trim().to_string();
            session.clear();
            let set = !session.conv.system_prompt.is_empty();
            eprintln!("(system prompt {}; conversation cleared)", if set { "set" } else { "removed" });
            continue;
        }
        if line == "/quit" || line == "/exit" {
            return Ok(());
        }
        cancel.reset();
        busy.store(true, Ordering::SeqCst);
        session.cancel_next_with(cancel.clone());
        let answerer = Contender { spec: BackendSpec::Local, backend: Box::new(engine.clone()), prices: None };
        session.send(None, answerer, line, None)?;
        let mut out = std::io::stdout().lock();
        let mut written: std::io::Result<()> = Ok(());
        let mut on_delta = |t: &str| {
            if written.is_ok() {
                written = write!(out, "{t}").and_then(|()| out.flush());
            }
        };
        let update = if a.tools {
            session.wait_with_tools(None, &mut on_delta, &mut |step| eprintln!("{step}"), &TerminalConfirm)
        } else {
            session.wait(None, &mut on_delta)
        };
        written?;
        match update {
            Some(ChatUpdate::Answered { dropped_messages, notice }) => {
                writeln!(out)?;
                if dropped_messages > 0 {
                    eprintln!("(the oldest {dropped_messages} messages no longer fit the context and were left out)");
                }
                if let Some(notice) = notice {
                    eprintln!("{notice}");
                }
                if let Some(stats) = session.messages.last().and_then(|m| m.metrics.as_ref()) {
                    if stats.stopped {
                        eprintln!("(stopped)");
                    }
                    eprintln!(
                        "[{} tokens · {:.0} ms to first token · {:.1} tok/s]",
                        stats.completion_tokens, stats.ttft_ms, stats.tok_per_s
                    );
                }
            }
            Some(ChatUpdate::StoppedEmpty) => eprintln!("(stopped)"),
            Some(ChatUpdate::Failed(e)) => eprintln!("error: {e}"),
            Some(ChatUpdate::Delta(_)) | None => {}
        }
        // A question that got no answer is not kept: the next one starts clean.
        session.forget_unanswered();
    }
}
