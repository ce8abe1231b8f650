//! `duet chat`: a streaming conversation in the terminal, driven by the same
//! [`ChatSession`](crate::tasks::chat::ChatSession) as the app's Chat screen.

use super::*;

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[arg(long, short = 's')]
    pub system: Option<String>,
    #[command(flatten)]
    pub model: ModelArg,
    #[command(flatten)]
    pub gen: GenArgs,
}

const CHAT_DEFAULTS: (f32, f32) = (0.7, 1.1);

pub fn chat(store: &Store, catalog: &Catalog, a: ChatArgs) -> Result<()> {
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
        history.push(Message::user(line));
        let mut messages: Vec<Message> = system.iter().map(|s| Message::system(s)).collect();
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
                    history.push(Message::assistant(&c.text));
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
