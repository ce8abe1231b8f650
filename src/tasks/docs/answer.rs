//! The course's three steps: find the passages that match the question, put
//! them into the prompt numbered [1], [2], …, and let the model answer from
//! them alone. What comes back is checked: a citation of a passage that was
//! not given is flagged, and when nothing matched, duet says so instead of
//! letting the model guess. Because a small model reads poorly, the sentences
//! of the passages that best match the question are returned too.

use super::search::{search, Ranking, MIN_COSINE};
use super::DocError;
use crate::db::{ChunkHit, Db};
use crate::embed::Embedder;
use crate::engine::{Backend, Cancel, DataLocation, GenRequest, Message, SamplingParams};
use serde::Serialize;

/// What the model is told. Short: the default model is 135M parameters.
const INSTRUCTION: &str = "Answer the question using only the numbered passages from the user's documents. \
Cite the passages you used like [1]. If the passages do not answer the question, say that the documents do not say.";

/// Said when no passage matched: no model is asked.
pub const NOT_FOUND: &str = "Your documents don't mention this. (No passage matched the question.)";

/// One answer with everything needed to check it.
#[derive(Debug, Clone, Serialize)]
pub struct DocAnswer {
    pub answer: String,
    /// The passages given to the model, numbered from 1 in this order.
    pub sources: Vec<ChunkHit>,
    /// Passage numbers the answer cites that exist.
    pub cited: Vec<usize>,
    /// Numbers the answer cites that were never given (the model made them up).
    pub invalid_citations: Vec<usize>,
    /// The sentences of the passages that best match the question: (passage number, sentence).
    pub extract: Vec<(usize, String)>,
    /// "on this computer" or "sent to HOST" (the question and the passages).
    #[serde(rename = "where")]
    pub location: DataLocation,
}

/// The `k` passages that best match `question` (by words and, with an
/// embedder, by meaning).
pub fn retrieve(db: &Db, embedder: Option<&Embedder>, question: &str, k: usize) -> Result<Vec<ChunkHit>, DocError> {
    if db.documents()?.iter().all(|d| d.chunks == 0) {
        return Err(DocError::NoDocuments);
    }
    search(db, embedder, question, k, Ranking::Hybrid)
}

/// The messages the backend gets: the instruction, then the numbered passages and the question.
pub fn prompt(question: &str, sources: &[ChunkHit]) -> Vec<Message> {
    let mut passages = String::new();
    for (i, s) in sources.iter().enumerate() {
        let file = std::path::Path::new(&s.path).file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        passages.push_str(&format!("[{}] ({file}, page {}) {}\n\n", i + 1, s.page, s.text.trim()));
    }
    vec![Message::system(INSTRUCTION), Message::user(&format!("{passages}Question: {question}"))]
}

/// Ask `backend` about `question`, answering from the passages found.
pub fn ask(
    db: &Db,
    embedder: Option<&Embedder>,
    backend: &dyn Backend,
    question: &str,
    k: usize,
    max_tokens: usize,
    cancel: Cancel,
) -> Result<DocAnswer, DocError> {
    if question.trim().is_empty() {
        return Err(DocError::EmptyQuestion);
    }
    let sources = retrieve(db, embedder, question, k)?;
    let location = backend.data_location();
    if sources.is_empty() {
        let answer = NOT_FOUND.to_string();
        return Ok(DocAnswer { answer, sources, cited: vec![], invalid_citations: vec![], extract: vec![], location });
    }
    let mut req = GenRequest::new(prompt(question, &sources));
    req.sampling = SamplingParams { temperature: 0.0, repeat_penalty: 1.1, ..SamplingParams::default() };
    req.max_tokens = max_tokens;
    // The passages must fit: keep the newest turn, which holds them (a long
    // passage set is cut by the engine with a clear error instead).
    req.truncate_history = false;
    let completion = backend.complete(req, cancel)?;
    let answer = completion.text.trim().to_string();
    let (cited, invalid_citations) = citations(&answer, sources.len());
    let extract = match embedder {
        Some(e) => sentences_by_meaning(e, question, &sources, 3)?,
        None => best_sentences(question, &sources, 3),
    };
    Ok(DocAnswer { answer, sources, cited, invalid_citations, extract, location })
}

/// The passage numbers cited as `[n]` (or `[1, 2]`): those that exist, and those that don't.
pub fn citations(answer: &str, passages: usize) -> (Vec<usize>, Vec<usize>) {
    let (mut valid, mut invalid) = (Vec::new(), Vec::new());
    for inside in answer.split('[').skip(1).filter_map(|s| s.split_once(']').map(|(i, _)| i)) {
        for n in inside.split(',').filter_map(|n| n.trim().parse::<usize>().ok()) {
            let list = if (1..=passages).contains(&n) { &mut valid } else { &mut invalid };
            if !list.contains(&n) {
                list.push(n);
            }
        }
    }
    (valid, invalid)
}

/// Lowercase words of four letters or more (shorter ones carry little meaning).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 4).map(str::to_lowercase).collect()
}

/// Two words match when one starts with the other's first five letters
/// (park / parking, employee / employees): stemming enough for ranking sentences.
fn same_word(a: &str, b: &str) -> bool {
    let stem = |w: &str| w.chars().take(5).collect::<String>();
    let (sa, sb) = (stem(a), stem(b));
    a.starts_with(&sb) || b.starts_with(&sa)
}

/// The sentences of `sources` closest in meaning to the question (their
/// vectors against its vector), best first, as (passage number, sentence).
/// A question in other words than the document's still gets its sentence.
pub fn sentences_by_meaning(
    embedder: &Embedder,
    question: &str,
    sources: &[ChunkHit],
    max: usize,
) -> Result<Vec<(usize, String)>, DocError> {
    let found: Vec<(usize, String)> =
        sources.iter().enumerate().flat_map(|(i, s)| sentences(&s.text).map(move |t| (i + 1, t))).collect();
    let asked = embedder.embed_one(question)?;
    let texts: Vec<&str> = found.iter().map(|(_, t)| t.as_str()).collect();
    let vectors = embedder.embed(&texts, &mut |_| {})?;
    let mut scored: Vec<(f32, usize, String)> =
        found.into_iter().zip(&vectors).map(|((n, t), v)| (crate::embed::dot(&asked, v), n, t)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // A sentence not close to the question is no answer to it.
    Ok(scored.into_iter().filter(|s| s.0 >= MIN_COSINE).take(max).map(|(_, n, t)| (n, t)).collect())
}

/// A passage's sentences, lines joined, the very short ones (headings, list marks) left out.
fn sentences(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split_inclusive(['.', '!', '?']).map(str::trim).filter(|t| t.len() > 10).map(|t| t.replace('\n', " "))
}

/// The sentences of `sources` that share the most words with the question,
/// best first, as (passage number, sentence).
pub fn best_sentences(question: &str, sources: &[ChunkHit], max: usize) -> Vec<(usize, String)> {
    let asked = words(question);
    let mut scored: Vec<(usize, usize, String)> = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        for sentence in sentences(&s.text) {
            let hits = asked.iter().filter(|q| words(&sentence).iter().any(|w| same_word(q, w))).count();
            if hits > 0 {
                scored.push((hits, i + 1, sentence));
            }
        }
    }
    // Most shared words first; among equals, the better-ranked passage first.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(max).map(|(_, n, s)| (n, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(text: &str) -> ChunkHit {
        ChunkHit {
            chunk_id: 1,
            document_id: 1,
            path: "/h/handbook.md".into(),
            page: 1,
            start_char: 0,
            end_char: 0,
            heading: String::new(),
            text: text.into(),
            score: 1.0,
        }
    }

    #[test]
    fn citations_are_checked_against_the_passages_given() {
        assert_eq!(citations("Yes [1]. Also [2, 5] and [x].", 3), (vec![1, 2], vec![5]));
        assert_eq!(citations("No citations.", 3), (vec![], vec![]));
    }

    #[test]
    fn the_sentence_that_answers_comes_first() {
        let sources = [
            hit("Pay day is the last working day. Payslips come by email."),
            hit("Employees may park for free in the staff car park. Bicycles go in the shed."),
        ];
        let best = best_sentences("Is there parking for employees?", &sources, 2);
        assert_eq!(best[0], (2, "Employees may park for free in the staff car park.".to_string()));
    }

    #[test]
    fn the_prompt_numbers_the_passages_and_names_their_files() {
        let m = prompt("Parking?", &[hit("A."), hit("B.")]);
        assert!(
            m[1].content.starts_with("[1] (handbook.md, page 1) A.\n\n[2] (handbook.md, page 1) B."),
            "{}",
            m[1].content
        );
        assert!(m[1].content.ends_with("Question: Parking?"));
    }
}
