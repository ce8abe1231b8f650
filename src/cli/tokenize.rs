//! `duet tokenize`: the token ids (and pieces) a model sees for a text.

use super::*;

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

pub fn tokenize(store: &Store, catalog: &Catalog, a: TokenizeArgs) -> Result<()> {
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
