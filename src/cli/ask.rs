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
    let req = GenRequest {
        messages: system_and_user(a.system.as_deref(), &a.prompt),
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
