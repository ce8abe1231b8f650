//! SentencePiece-style BPE (GGUF `tokenizer.ggml.model = "llama"`: Gemma,
//! Llama 2, Phi-3) straight from the vocabulary and its scores.
//!
//! Why not `tokenizers`' BPE: it needs a merge list, which for these files is
//! made up from every split of every token (about a million pairs of strings
//! for Gemma's 262,144 tokens): 1.3 s and 230 MB at every load. The merge
//! order those pairs encode is just "the pair whose joined piece scores
//! highest", which this computes as it goes, the way sentencepiece and
//! llama.cpp do. The ranks are the same as Hugging Face's converted merges
//! (score, then the joined piece's id, then the halves' ids; leftmost first),
//! so the ids equal the golden ones.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

/// GGUF token types (llama.cpp `llama_token_type`).
const TYPE_NORMAL: i32 = 1;
const TYPE_USER_DEFINED: i32 = 4;

pub struct Spm {
    vocab: HashMap<String, u32>,
    scores: Vec<f32>,
    normal: Vec<bool>,
    /// `<0xAB>` tokens, by byte.
    byte_ids: [Option<u32>; 256],
    unk: Option<u32>,
    /// User-defined tokens (runs of spaces, newlines, HTML tags in Gemma) are
    /// whole tokens wherever they appear, found before any merging.
    user_defined: Option<(aho_corasick::AhoCorasick, Vec<u32>)>,
    add_space_prefix: bool,
}

/// A merge candidate: the joined piece's rank parts, then position.
#[derive(PartialEq)]
struct Pair {
    score: f32,
    id: u32,
    left_id: u32,
    right_id: u32,
    /// Index of the left symbol.
    at: usize,
    /// Lengths of both symbols when the pair was made (stale if they changed).
    left_len: usize,
    right_len: usize,
}

impl Eq for Pair {}

impl Ord for Pair {
    /// The best pair is the greatest: highest score, then lowest ids, then leftmost.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then(Reverse(self.id).cmp(&Reverse(o.id)))
            .then(Reverse(self.left_id).cmp(&Reverse(o.left_id)))
            .then(Reverse(self.right_id).cmp(&Reverse(o.right_id)))
            .then(Reverse(self.at).cmp(&Reverse(o.at)))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Spm {
    pub fn new(
        tokens: &[String],
        types: &[i32],
        scores: Vec<f32>,
        unk: Option<u32>,
        add_space_prefix: bool,
    ) -> Result<Self, String> {
        let vocab: HashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let mut byte_ids = [None; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = vocab.get(&format!("<0x{b:02X}>")).copied();
        }
        let (ud_text, ud_ids): (Vec<&str>, Vec<u32>) = tokens
            .iter()
            .enumerate()
            .filter(|(i, t)| types.get(*i) == Some(&TYPE_USER_DEFINED) && !t.is_empty())
            .map(|(i, t)| (t.as_str(), i as u32))
            .unzip();
        let user_defined = if ud_ids.is_empty() {
            None
        } else {
            let m = aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(&ud_text)
                .map_err(|e| e.to_string())?;
            Some((m, ud_ids))
        };
        let normal = (0..tokens.len()).map(|i| types.get(i).copied().unwrap_or(TYPE_NORMAL) == TYPE_NORMAL).collect();
        Ok(Spm { vocab, scores, normal, byte_ids, unk, user_defined, add_space_prefix })
    }

    /// Ids of plain text (no control tokens are recognised here). Bytes with
    /// neither a piece nor a byte token become the unknown token, runs of them one.
    pub fn encode(&self, text: &str, out: &mut Vec<u32>) {
        let mut rest = text;
        if let Some((m, ids)) = &self.user_defined {
            for found in m.find_iter(text) {
                let before = &text[text.len() - rest.len()..found.start()];
                self.encode_segment(before, out);
                out.push(ids[found.pattern().as_usize()]);
                rest = &text[found.end()..];
            }
        }
        self.encode_segment(rest, out);
    }

    fn encode_segment(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let mut s = String::with_capacity(text.len() + 3);
        if self.add_space_prefix {
            s.push('▁');
        }
        s.extend(text.chars().map(|c| if c == ' ' { '▁' } else { c }));
        // Symbols as byte ranges of `s`, linked both ways; a merged-away symbol has len 0.
        let start: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
        let mut len: Vec<usize> = start.windows(2).map(|w| w[1] - w[0]).collect();
        len.push(s.len() - start.last().copied().unwrap_or(0));
        let n = start.len();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
        let mut heap = BinaryHeap::new();
        let pair = |a: usize, b: usize, start: &[usize], len: &[usize]| -> Option<Pair> {
            let left = &s[start[a]..start[a] + len[a]];
            let right = &s[start[b]..start[b] + len[b]];
            let (&left_id, &right_id) = (self.vocab.get(left)?, self.vocab.get(right)?);
            let id = *self.vocab.get(&s[start[a]..start[b] + len[b]])?;
            if !self.normal[id as usize] {
                return None;
            }
            let score = self.scores.get(id as usize).copied().unwrap_or(0.0);
            Some(Pair { score, id, left_id, right_id, at: a, left_len: len[a], right_len: len[b] })
        };
        for a in 0..n.saturating_sub(1) {
            heap.extend(pair(a, a + 1, &start, &len));
        }
        while let Some(p) = heap.pop() {
            let a = p.at;
            let b = next[a];
            if len[a] != p.left_len || b >= n || len[b] != p.right_len {
                continue; // one of its symbols has merged since
            }
            len[a] += len[b];
            len[b] = 0;
            next[a] = next[b];
            if next[a] < n {
                prev[next[a]] = Some(a);
            }
            if let Some(pa) = prev[a] {
                heap.extend(pair(pa, a, &start, &len));
            }
            if next[a] < n {
                heap.extend(pair(a, next[a], &start, &len));
            }
        }
        let mut i = 0;
        let mut last_unk = false;
        while i < n {
            let piece = &s[start[i]..start[i] + len[i]];
            if let Some(&id) = self.vocab.get(piece) {
                out.push(id);
                last_unk = false;
            } else {
                for b in piece.bytes() {
                    match self.byte_ids[b as usize] {
                        Some(id) => {
                            out.push(id);
                            last_unk = false;
                        }
                        None => {
                            if let (Some(unk), false) = (self.unk, last_unk) {
                                out.push(unk);
                            }
                            last_unk = true;
                        }
                    }
                }
            }
            i = next[i];
        }
    }
}
