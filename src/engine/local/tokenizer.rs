//! The model's tokenizer, rebuilt from the GGUF's own metadata.
//!
//! Two vocabularies are supported: `gpt2` (byte-level BPE: SmolLM2, Llama 3,
//! Qwen2; run by `tokenizers`) and `llama` (SentencePiece BPE with byte
//! fallback: Gemma, Llama 2, Phi-3; run by `spm.rs`). Ids must equal the Hugging Face tokenizer's for the same model; the
//! golden tests in `tests/data` hold the reference ids.
//!
//! Special tokens are split out by this module itself, not by `tokenizers`,
//! so a prompt can say which special-token strings came from the chat
//! template (real markers) and which came from a user's message (plain text).

use super::gguf::Gguf;
use super::spm::Spm;
use candle_core::quantized::gguf_file::Value;
use std::collections::HashMap;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("the model file has no tokenizer ({0} is missing); it cannot be used for chat")]
    Missing(String),
    #[error("this model's tokenizer type '{0}' is not supported yet (supported: gpt2, llama)")]
    UnsupportedModel(String),
    #[error("the model's tokenizer could not be built: {0}")]
    Build(String),
    #[error("the text could not be turned into tokens: {0}")]
    Encode(String),
}

/// GGUF token types (llama.cpp `llama_token_type`).
const TYPE_NORMAL: i32 = 1;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_BYTE: i32 = 6;

/// Plain text to ids: Hugging Face's byte-level BPE, or duet's SentencePiece BPE.
enum Encoder {
    Bpe(Box<tokenizers::Tokenizer>),
    Spm(Box<Spm>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gpt2,
    Spm,
}

pub struct Tokenizer {
    /// Encodes plain text: added tokens are never split out here.
    encoder: Encoder,
    /// Control and user-defined tokens, longest first: (text, id).
    specials: Vec<(String, u32)>,
    /// All of `specials` in one automaton (leftmost, then longest match):
    /// Gemma's 6,414 of them cost one pass over the text, not one each.
    special_matcher: aho_corasick::AhoCorasick,
    /// The bytes each id stands for, for streaming decode.
    token_bytes: Vec<Vec<u8>>,
    /// Ids that end a turn (eos, `<|im_end|>`, `<end_of_turn>`, `<|eot_id|>` …).
    pub stop_ids: Vec<u32>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub add_bos: bool,
    tokens: Vec<String>,
    /// Byte-level vocabularies: which bytes have a token. SmolLM2 lacks 21
    /// (U+0004 and other control characters); text holding them is encoded
    /// without them, as the reference tokenizer does, and the person is told.
    byte_ok: [bool; 256],
}

impl Tokenizer {
    pub fn from_gguf(g: &Gguf) -> Result<Self, TokenizerError> {
        let model =
            g.string("tokenizer.ggml.model").ok_or_else(|| TokenizerError::Missing("tokenizer.ggml.model".into()))?;
        let kind = match model {
            "gpt2" => Kind::Gpt2,
            "llama" => Kind::Spm,
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let tokens: Vec<String> = g
            .array("tokenizer.ggml.tokens")
            .ok_or_else(|| TokenizerError::Missing("tokenizer.ggml.tokens".into()))?
            .iter()
            .map(|v| v.to_string().cloned().unwrap_or_default())
            .collect();
        let types: Vec<i32> = match g.array("tokenizer.ggml.token_type") {
            Some(a) => a.iter().map(value_i32).collect(),
            None => vec![TYPE_NORMAL; tokens.len()],
        };

        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .zip(&types)
            .enumerate()
            .filter(|(_, (t, ty))| (**ty == TYPE_CONTROL || **ty == TYPE_USER_DEFINED) && !t.is_empty())
            .map(|(id, (t, _))| (t.clone(), id as u32))
            .collect();
        let encoder = match kind {
            Kind::Gpt2 => {
                let merges: Vec<(String, String)> = g
                    .array("tokenizer.ggml.merges")
                    .ok_or_else(|| TokenizerError::Missing("tokenizer.ggml.merges".into()))?
                    .iter()
                    .filter_map(|v| v.to_string().ok())
                    .filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
                    .collect();
                let vocab: tokenizers::models::bpe::Vocab =
                    tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .build()
                    .map_err(|e| TokenizerError::Build(e.to_string()))?;
                let mut inner = tokenizers::Tokenizer::new(bpe);
                let pre = g.string("tokenizer.ggml.pre").unwrap_or("default");
                inner.with_pre_tokenizer(Some(gpt2_pre_tokenizer(pre)?));
                inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevelDecoder::default())));
                // Registered so `tokenizers` never merges across them; splitting is ours.
                let added: Vec<AddedToken> = specials.iter().map(|(t, _)| AddedToken::from(t.clone(), true)).collect();
                inner.add_special_tokens(&added);
                inner.set_encode_special_tokens(true);
                Encoder::Bpe(Box::new(inner))
            }
            Kind::Spm => {
                let scores: Vec<f32> = match g.array("tokenizer.ggml.scores") {
                    Some(a) => a.iter().map(|v| if let Value::F32(x) = v { *x } else { 0.0 }).collect(),
                    None => vec![0.0; tokens.len()],
                };
                let unk = g.u32("tokenizer.ggml.unknown_token_id");
                let add_space_prefix = g.bool("tokenizer.ggml.add_space_prefix").unwrap_or(false);
                Encoder::Spm(Box::new(
                    Spm::new(&tokens, &types, scores, unk, add_space_prefix).map_err(TokenizerError::Build)?,
                ))
            }
        };

        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let special_matcher = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(specials.iter().map(|(t, _)| t))
            .map_err(|e| TokenizerError::Build(e.to_string()))?;

        let token_bytes = tokens
            .iter()
            .zip(&types)
            .map(|(t, ty)| match (kind, *ty) {
                (_, TYPE_CONTROL) => Vec::new(),
                (Kind::Gpt2, _) => gpt2_token_bytes(t),
                (Kind::Spm, TYPE_BYTE) => spm_byte(t).map(|b| vec![b]).unwrap_or_default(),
                (Kind::Spm, _) => t.replace('▁', " ").into_bytes(),
            })
            .collect();

        let bos_id = g.u32("tokenizer.ggml.bos_token_id");
        let eos_id = g.u32("tokenizer.ggml.eos_token_id");
        let add_bos = g.bool("tokenizer.ggml.add_bos_token").unwrap_or(kind == Kind::Spm);
        let mut stop_ids: Vec<u32> = eos_id.into_iter().collect();
        if let Some(eot) = g.u32("tokenizer.ggml.eot_token_id") {
            stop_ids.push(eot);
        }
        // `specials` holds exactly the control and user-defined tokens.
        for name in ["<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>"] {
            stop_ids.extend(specials.iter().filter(|(t, _)| t == name).map(|(_, id)| *id));
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        let mut byte_ok = [true; 256];
        if kind == Kind::Gpt2 {
            let have: std::collections::HashSet<&str> = tokens.iter().map(String::as_str).collect();
            for (c, b) in gpt2_char_to_byte() {
                byte_ok[b as usize] = have.contains(c.encode_utf8(&mut [0u8; 4]) as &str);
            }
        }

        Ok(Tokenizer {
            byte_ok,
            encoder,
            specials,
            special_matcher,
            token_bytes,
            stop_ids,
            bos_id,
            eos_id,
            add_bos,
            tokens,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The token's text as stored in the vocabulary (`Ġthe`, `▁the`, `<|im_end|>`).
    pub fn piece(&self, id: u32) -> &str {
        self.tokens.get(id as usize).map(String::as_str).unwrap_or("")
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.specials.iter().find(|(t, _)| t == text).map(|(_, id)| *id)
    }

    /// Encode text that may contain special-token strings, turning each into its
    /// control token (what `tokenizers` does by default; what `duet tokenize` shows).
    pub fn encode_with_specials(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.encode_parts(&[(text, true)])
    }

    /// Encode plain text: special-token strings stay text.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.encode_parts(&[(text, false)])
    }

    /// Encode a sequence of pieces; in a piece marked `true`, special-token strings
    /// become control tokens. Pieces are joined as one text, except that no
    /// merge ever crosses a special token (exactly Hugging Face's rule).
    pub fn encode_parts(&self, parts: &[(&str, bool)]) -> Result<Vec<u32>, TokenizerError> {
        // Build runs of plain text separated by special tokens.
        let mut ids = Vec::new();
        let mut plain = String::new();
        for (text, parse_special) in parts {
            if !parse_special {
                plain.push_str(text);
                continue;
            }
            let mut rest = *text;
            while !rest.is_empty() {
                match self.find_special(rest) {
                    Some((start, len, id)) => {
                        plain.push_str(&rest[..start]);
                        self.flush_plain(&mut plain, &mut ids)?;
                        ids.push(id);
                        rest = &rest[start + len..];
                    }
                    None => {
                        plain.push_str(rest);
                        rest = "";
                    }
                }
            }
        }
        self.flush_plain(&mut plain, &mut ids)?;
        Ok(ids)
    }

    fn flush_plain(&self, plain: &mut String, ids: &mut Vec<u32>) -> Result<(), TokenizerError> {
        if plain.is_empty() {
            return Ok(());
        }
        let inner = match &self.encoder {
            Encoder::Bpe(inner) => inner,
            Encoder::Spm(spm) => {
                spm.encode(plain, ids);
                plain.clear();
                return Ok(());
            }
        };
        // Characters without tokens are left out, and (as in the reference,
        // whose pre-tokenizer splits there) nothing merges across where they were.
        for piece in plain.split(|c| !self.represents(c)).filter(|p| !p.is_empty()) {
            let enc = inner.encode_fast(piece, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
            ids.extend_from_slice(enc.get_ids());
        }
        plain.clear();
        Ok(())
    }

    /// Whether the vocabulary has tokens for every byte of `c`.
    fn represents(&self, c: char) -> bool {
        c.encode_utf8(&mut [0u8; 4]).bytes().all(|b| self.byte_ok[b as usize])
    }

    /// The characters of `texts` this vocabulary has no tokens for (left out
    /// when the text is encoded), each once, in order of appearance.
    pub fn unrepresentable<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> Vec<char> {
        let mut out: Vec<char> = Vec::new();
        for c in texts.into_iter().flat_map(str::chars).filter(|&c| !self.represents(c)) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    /// Where the first special-token string in `text` is: (byte offset, length).
    pub fn special_span(&self, text: &str) -> Option<(usize, usize)> {
        self.find_special(text).map(|(start, len, _)| (start, len))
    }

    /// Leftmost, then longest, special-token match.
    fn find_special(&self, text: &str) -> Option<(usize, usize, u32)> {
        let m = self.special_matcher.find(text)?;
        Some((m.start(), m.len(), self.specials[m.pattern().as_usize()].1))
    }

    /// The text of a control token (they have no bytes of their own); `None` for text tokens.
    pub fn special_text(&self, id: u32) -> Option<&str> {
        (self.token_bytes(id).is_empty() && (id as usize) < self.tokens.len()).then(|| self.piece(id))
    }

    /// The raw bytes of a token (empty for control tokens).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Decode ids to text; control tokens are dropped, broken UTF-8 is replaced.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_bytes(id).iter().copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Streaming detokenizer: never emits half a UTF-8 character.
#[derive(Default)]
pub struct TextStream {
    pending: Vec<u8>,
}

impl TextStream {
    /// Add a token's bytes; return the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) => {
                // An invalid sequence that cannot become valid by more bytes is
                // replaced now; an incomplete one at the end waits.
                if e.error_len().is_some() {
                    let text = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    return text;
                }
                e.valid_up_to()
            }
        };
        let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        out
    }

    /// End of stream: whatever is left, with replacement characters if broken.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

fn value_i32(v: &Value) -> i32 {
    match v {
        Value::I32(x) => *x,
        Value::U32(x) => *x as i32,
        Value::I64(x) => *x as i32,
        Value::U8(x) => *x as i32,
        Value::I8(x) => *x as i32,
        _ => TYPE_NORMAL,
    }
}

/// The pre-tokenizer llama.cpp names by `tokenizer.ggml.pre`, in `tokenizers` terms.
fn gpt2_pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, TokenizerError> {
    let byte_level = |use_regex| PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, use_regex));
    let split = |pattern: &str| -> Result<PreTokenizerWrapper, TokenizerError> {
        let s = Split::new(SplitPattern::Regex(pattern.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| TokenizerError::Build(e.to_string()))?;
        Ok(PreTokenizerWrapper::Split(s))
    };
    Ok(match pre {
        // SmolLM / StarCoder: every digit alone, then GPT-2's byte-level regex, no prefix space.
        "smollm" | "starcoder" | "refact" => PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            byte_level(true),
        ])),
        "llama-bpe" | "llama3" | "llama-v3" | "dbrx" | "smaug-bpe" => {
            PreTokenizerWrapper::Sequence(Sequence::new(vec![split(LLAMA3_PATTERN)?, byte_level(false)]))
        }
        "qwen2" | "deepseek-r1-qwen" => {
            PreTokenizerWrapper::Sequence(Sequence::new(vec![split(QWEN2_PATTERN)?, byte_level(false)]))
        }
        _ => byte_level(true),
    })
}

const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GPT-2's reversible byte ↔ printable-character table, reversed.
fn gpt2_char_to_byte() -> HashMap<char, u8> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut cs: Vec<u32> = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.iter().zip(&cs).filter_map(|(&b, &c)| char::from_u32(c).map(|c| (c, b as u8))).collect()
}

fn gpt2_token_bytes(token: &str) -> Vec<u8> {
    thread_local! {
        static TABLE: HashMap<char, u8> = gpt2_char_to_byte();
    }
    TABLE.with(|t| {
        let mapped: Option<Vec<u8>> = token.chars().map(|c| t.get(&c).copied()).collect();
        // A user-defined token stored as plain text (not byte-mapped) decodes as itself.
        mapped.unwrap_or_else(|| token.as_bytes().to_vec())
    })
}

/// `<0x0A>` → 0x0A.
fn spm_byte(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

/// SentencePiece BPE stores scores, not merges. Rebuild the merge list the way
/// Hugging Face's converter does: every split of a piece into two known pieces,
/// ordered by the piece's score (higher first), ties by the halves' ids.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_holds_back_partial_utf8() {
        let mut s = TextStream::default();
        let emoji = "🙂".as_bytes();
        assert_eq!(s.push(&emoji[..2]), "");
        assert_eq!(s.push(&emoji[2..]), "🙂");
        assert_eq!(s.push(b"ok"), "ok");
        assert_eq!(s.push(&[0xE2]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }

    #[test]
    fn gpt2_table_round_trips_every_byte() {
        let t = gpt2_char_to_byte();
        assert_eq!(t.len(), 256);
        assert_eq!(gpt2_token_bytes("Ġthe"), b" the");
        assert_eq!(gpt2_token_bytes("Ċ"), b"\n");
    }
}
