//! `duet models`: list, fetch, verify, remove and describe model files.

use super::*;

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

pub fn state_word(s: FileState) -> &'static str {
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

pub fn models(store: &Store, catalog: &Catalog, cmd: ModelsCommand) -> Result<()> {
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
                    human_bytes(store.ram_needed(m)),
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
pub fn model_info(path: &Path) -> Result<String> {
    use crate::engine::local::{decoder::Decoder, model::SUPPORTED, template};
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
        match Decoder::check(&g) {
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
