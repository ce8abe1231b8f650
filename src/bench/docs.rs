//! `duet bench --docs DIR`: how well and how fast Documents finds passages.
//!
//! The files of DIR are indexed into a database in memory (so the person's
//! own index is never touched), every passage is embedded, and each question
//! of a question file is asked three ways (keywords, vectors, hybrid). A
//! question counts as found at rank r when the r-th passage contains its
//! known answer text (whitespace-insensitive). Questions carry a split
//! ("tune" or "holdout"): tune on one, report the other.
//!
//! Separately, brute-force vector search is timed over N synthetic vectors
//! (`--docs-scale`), since a real 100k-passage corpus is not at hand.

use crate::db::{Db, NewChunk};
use crate::embed::{to_bytes, Embedder};
use crate::progress::{Cancel, Progress};
use crate::tasks::docs::{add_files, embed_pending, files_under, nearest, search, Added, Ranking};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// One line of the question file.
#[derive(Debug, Deserialize)]
pub struct Question {
    pub id: String,
    pub question: String,
    /// Text the right passage contains, copied from the document.
    pub answer: String,
    #[serde(default)]
    pub split: String,
}

#[derive(Debug, Serialize)]
pub struct RankingScore {
    pub ranking: Ranking,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    /// Mean reciprocal rank over the top 10 (0 when not in them).
    pub mrr_at_10: f64,
    pub mean_ms: f64,
    /// Ids of the questions whose passage was not in the top 5.
    pub missed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct DocsBenchReport {
    pub files: usize,
    /// Characters / 3000: a printed page's worth.
    pub pages: f64,
    pub passages: u64,
    pub read_and_chunk_s: f64,
    pub embed_s: f64,
    pub passages_per_s: f64,
    pub tokens_per_s: f64,
    pub pages_per_min: f64,
    pub embedder: String,
    pub threads: usize,
    pub split: String,
    pub questions: usize,
    pub scores: Vec<RankingScore>,
    /// (vectors, mean ms of one brute-force search over them).
    pub scale: Option<(usize, f64)>,
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

impl super::InSplit for Question {
    fn split(&self) -> &str {
        &self.split
    }
}

pub fn run(
    corpus: &Path,
    questions: &[Question],
    split: &str,
    embedder: &Embedder,
    scale: usize,
    passages_out: Option<&Path>,
    progress: &dyn Progress,
) -> Result<DocsBenchReport, String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let mut db = Db::in_memory().map_err(|e| fail(&e))?;
    let files = files_under(&[corpus.to_path_buf()]).map_err(|e| fail(&e))?;
    let cancel = Cancel::new();
    let t = Instant::now();
    let added = add_files(&mut db, &files, progress, &cancel).map_err(|e| fail(&e))?;
    let read_and_chunk_s = t.elapsed().as_secs_f64();
    for a in &added {
        if let Added::Failed { why, .. } = a {
            progress.note(&format!("skipped: {why}"));
        }
    }
    let texts = db.chunks_without_vectors(&embedder.model_id, usize::MAX).map_err(|e| fail(&e))?;
    if let Some(out) = passages_out {
        // The exact texts embedded, for timing another embedder on the same input.
        let lines: Vec<String> = texts.iter().map(|p| serde_json::Value::from(p.text.as_str()).to_string()).collect();
        std::fs::write(out, lines.join("\n") + "\n").map_err(|e| format!("could not write {}: {e}", out.display()))?;
    }
    let chars: usize = db.documents().map_err(|e| fail(&e))?.iter().map(|d| d.bytes as usize).sum();
    let tokens: usize = texts.iter().map(|p| embedder.count_tokens(&p.text)).sum();
    let t = Instant::now();
    let passages = embed_pending(&mut db, embedder, progress, &cancel).map_err(|e| fail(&e))?;
    let embed_s = t.elapsed().as_secs_f64();
    let pages = chars as f64 / 3000.0;

    let mut scores = Vec::new();
    for ranking in [Ranking::Keywords, Ranking::Vectors, Ranking::Hybrid] {
        let (mut at1, mut at5, mut rr, mut ms) = (0usize, 0usize, 0.0, 0.0);
        let mut missed = Vec::new();
        for q in questions {
            let t = Instant::now();
            let hits = search(&db, Some(embedder), &q.question, 10, ranking).map_err(|e| fail(&e))?;
            ms += t.elapsed().as_secs_f64() * 1000.0;
            let answer = squash(&q.answer);
            let rank = hits.iter().position(|h| squash(&format!("{}\n{}", h.heading, h.text)).contains(&answer));
            if let Some(r) = rank {
                at1 += usize::from(r == 0);
                at5 += usize::from(r < 5);
                rr += 1.0 / (r as f64 + 1.0);
            }
            if rank.is_none_or(|r| r >= 5) {
                missed.push(q.id.clone());
            }
        }
        let n = questions.len().max(1) as f64;
        scores.push(RankingScore {
            ranking,
            recall_at_1: at1 as f64 / n,
            recall_at_5: at5 as f64 / n,
            mrr_at_10: rr / n,
            mean_ms: ms / n,
            missed,
        });
    }
    let scale = if scale > 0 { Some((scale, search_at_scale(embedder, scale).map_err(|e| fail(&e))?)) } else { None };
    Ok(DocsBenchReport {
        files: files.len(),
        pages,
        passages,
        read_and_chunk_s,
        embed_s,
        passages_per_s: passages as f64 / embed_s.max(1e-9),
        tokens_per_s: tokens as f64 / embed_s.max(1e-9),
        pages_per_min: pages / (read_and_chunk_s + embed_s).max(1e-9) * 60.0,
        embedder: embedder.model_id.clone(),
        threads: candle_core::utils::get_num_threads(),
        split: split.to_string(),
        questions: questions.len(),
        scores,
        scale,
    })
}

/// Mean milliseconds of one brute-force search over `n` random unit vectors
/// (stored in a database in memory the way real ones are).
fn search_at_scale(embedder: &Embedder, n: usize) -> Result<f64, crate::tasks::docs::DocError> {
    let mut db = Db::in_memory()?;
    let chunk = NewChunk { page: 1, start_char: 0, end_char: 1, heading: String::new(), text: "x".into() };
    let step = 10_000;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        // xorshift: cheap, reproducible numbers for synthetic vectors.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for start in (0..n).step_by(step) {
        let count = step.min(n - start);
        db.replace_document(&format!("/synthetic/{start}"), "", 0, 1, "", &vec![chunk.clone(); count])?;
        let pending = db.chunks_without_vectors(&embedder.model_id, count)?;
        let rows: Vec<(i64, Vec<u8>)> = pending
            .iter()
            .map(|p| {
                let v: Vec<f32> = (0..embedder.dim).map(|_| next()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                (p.chunk_id, to_bytes(&v.iter().map(|x| x / norm).collect::<Vec<_>>()))
            })
            .collect();
        db.store_vectors(&embedder.model_id, &rows)?;
    }
    let asked = embedder.embed_one("Is there parking for employees?")?;
    let reps = 5;
    let t = Instant::now();
    for _ in 0..reps {
        nearest(&db, &embedder.model_id, &asked, 50)?;
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0 / reps as f64)
}

pub fn render(r: &DocsBenchReport) -> String {
    let mut out = format!(
        "{} files, {:.0} pages, {} passages; read and cut in {:.1} s; embedded ({}, {} threads) in {:.1} s: \
         {:.1} passages/s, {:.0} tokens/s, {:.0} pages/min overall\n\n",
        r.files,
        r.pages,
        r.passages,
        r.read_and_chunk_s,
        r.embedder,
        r.threads,
        r.embed_s,
        r.passages_per_s,
        r.tokens_per_s,
        r.pages_per_min
    );
    out.push_str(&format!("{} questions (split: {})\n", r.questions, r.split));
    out.push_str("| ranking | recall@1 | recall@5 | MRR@10 | ms/question |\n|---|---:|---:|---:|---:|\n");
    for s in &r.scores {
        out.push_str(&format!(
            "| {:?} | {:.3} | {:.3} | {:.3} | {:.1} |\n",
            s.ranking, s.recall_at_1, s.recall_at_5, s.mrr_at_10, s.mean_ms
        ));
    }
    for s in &r.scores {
        if !s.missed.is_empty() {
            out.push_str(&format!("{:?} missed: {}\n", s.ranking, s.missed.join(" ")));
        }
    }
    if let Some((n, ms)) = r.scale {
        out.push_str(&format!("\nvector search over {n} passages (brute force): {ms:.1} ms\n"));
    }
    out
}
