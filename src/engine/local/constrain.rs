//! Constrained decoding: at each step, tokens that cannot continue a valid
//! output are masked out before sampling, so a local model asked for a tool
//! call (or JSON) can only write one that parses and fits the schema.
//!
//! `llguidance` does the grammar work (it is what llama.cpp and vLLM use);
//! this module builds its view of duet's tokenizer once per model, turns a
//! [`Constraint`] into a grammar, and applies the mask to the logits.

use super::tokenizer::Tokenizer;
use crate::engine::{Constraint, ToolSpec};
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Value};
use std::sync::Arc;
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

/// llguidance's view of a tokenizer: each id's bytes (control tokens marked
/// as special), and a way to tokenize grammar literals.
struct Env {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.tokenizer.encode_text(&String::from_utf8_lossy(s)).unwrap_or_default()
    }
}

/// Built once per model (the token trie and the lexer slices take ~0.1–0.3 s).
pub struct Grammars {
    factory: ParserFactory,
}

impl Grammars {
    pub fn new(tokenizer: Arc<Tokenizer>) -> Result<Self, String> {
        let n = tokenizer.vocab_size();
        let eos = tokenizer.eos_id.or_else(|| tokenizer.stop_ids.first().copied()).unwrap_or(0);
        let info = TokRxInfo { tok_end_of_turn: tokenizer.stop_ids.first().copied(), ..TokRxInfo::new(n as u32, eos) };
        let words: Vec<Vec<u8>> = (0..n as u32)
            .map(|id| match tokenizer.special_text(id) {
                // Control tokens are never text: llguidance knows them by this marker.
                Some(text) if !text.is_empty() => [&[TokTrie::SPECIAL_TOKEN_MARKER][..], text.as_bytes()].concat(),
                Some(_) => format!("\u{ff}<[{id}]>").into_bytes(),
                None => tokenizer.token_bytes(id).to_vec(),
            })
            .collect();
        let trie = TokTrie::from(&info, &words);
        let env: TokEnv = Arc::new(Env { trie, tokenizer });
        let factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
        Ok(Grammars { factory })
    }

    /// A guide for one generation.
    pub fn guide(&self, constraint: &Constraint, tools: &[ToolSpec]) -> Result<Guide, String> {
        self.start(grammar_for(constraint, tools)?)
    }

    fn start(&self, grammar: TopLevelGrammar) -> Result<Guide, String> {
        let parser = self.factory.create_parser(grammar).map_err(|e| e.to_string())?;
        let matcher = Matcher::new(Ok(parser));
        match matcher.get_error() {
            Some(e) => Err(e),
            None => Ok(Guide { matcher }),
        }
    }
}

impl Grammars {
    /// A guide for the rest of a call the model has started on its own (it
    /// wrote `<tool_call>`), having already written `already` after the marker.
    /// `None` when what it wrote cannot start a valid call.
    pub fn guide_after_open(&self, tools: &[ToolSpec], already: &str, tokenizer: &Tokenizer) -> Option<Guide> {
        let lark = format!(
            "start: /[ \\t\\n]*/ call /[ \\t\\n]*/ \"{}\"\ncall: %json {}\n",
            crate::engine::toolcall::CALL_CLOSE,
            calls_schema(tools)
        );
        let mut guide = self.start(TopLevelGrammar::from_lark(lark)).ok()?;
        let ids = tokenizer.encode_text(already).ok()?;
        guide.matcher.consume_tokens(&ids).ok()?;
        Some(guide)
    }
}

/// One object per tool: its name, then arguments that fit its schema.
fn calls_schema(tools: &[ToolSpec]) -> Value {
    let choices: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({"type": "object",
                   "properties": {"name": {"const": t.name}, "arguments": closed(&t.parameters)},
                   "required": ["name", "arguments"], "additionalProperties": false})
        })
        .collect();
    json!({"anyOf": choices})
}

/// The grammar a constraint stands for.
fn grammar_for(constraint: &Constraint, tools: &[ToolSpec]) -> Result<TopLevelGrammar, String> {
    match constraint {
        Constraint::Json { schema: None } => Ok(TopLevelGrammar::from_json_schema(json!({"type": "object"}))),
        Constraint::Json { schema: Some(s) } => Ok(TopLevelGrammar::from_json_schema(s.clone())),
        Constraint::ToolCall => {
            if tools.is_empty() {
                return Err("a tool call was required but no tools were offered".into());
            }
            let schema = calls_schema(tools);
            let lark = format!(
                "start: \"{}\\n\" call \"\\n{}\"\ncall: %json {}\n",
                crate::engine::toolcall::CALL_OPEN,
                crate::engine::toolcall::CALL_CLOSE,
                schema
            );
            Ok(TopLevelGrammar::from_lark(lark))
        }
    }
}

/// Longest text argument when the tool's schema sets no `maxLength`: small
/// models otherwise repeat themselves inside a string until the token limit
/// cuts the call in half (3 of 30 calls in `duet bench --tool-calls`).
const DEFAULT_MAX_STRING_CHARS: u64 = 500;

/// A tool's argument schema with no properties beyond those it names (as
/// OpenAI's strict mode does: a model left free to add keys adds junk), and
/// text arguments of bounded length.
fn closed(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Some(o) = s.as_object_mut() {
        if o.contains_key("properties") && !o.contains_key("additionalProperties") {
            o.insert("additionalProperties".into(), Value::Bool(false));
        }
        for prop in o.get_mut("properties").and_then(Value::as_object_mut).into_iter().flat_map(|p| p.values_mut()) {
            if let Some(p) = prop.as_object_mut() {
                if p.get("type").and_then(Value::as_str) == Some("string") && !p.contains_key("maxLength") {
                    p.insert("maxLength".into(), DEFAULT_MAX_STRING_CHARS.into());
                }
            }
        }
    }
    s
}

/// One generation's constraint state.
pub struct Guide {
    matcher: Matcher,
}

impl Guide {
    /// Mask the logits of every token the grammar does not allow next (the
    /// end-of-turn token only once the output is complete).
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<(), String> {
        let allowed = self.matcher.compute_mask_or_eos().map_err(|e| e.to_string())?;
        for (id, l) in logits.iter_mut().enumerate() {
            if !allowed.is_allowed(id as TokenId) {
                *l = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    pub fn consume(&mut self, id: u32) -> Result<(), String> {
        self.matcher.consume_token(id).map_err(|e| e.to_string())
    }

    /// The output is complete and nothing more may follow.
    pub fn is_done(&self) -> bool {
        self.matcher.is_stopped()
    }
}
