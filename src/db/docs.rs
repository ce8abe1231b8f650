//! Documents added for retrieval and their chunks. A document's chunks are
//! replaced in one transaction, so an index is never half-written: a crash
//! while indexing leaves the old chunks (or none) and the file is done again.

use super::{now_s, Db, DbError};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// One added file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentRow {
    pub id: i64,
    pub path: String,
    /// Of the file's bytes when it was indexed: an unchanged file is not indexed again.
    pub sha256: String,
    pub bytes: i64,
    pub pages: i64,
    pub chunks: i64,
    /// "indexed", or "failed" with the reason in `note`.
    pub status: String,
    /// What the person should know (pages without text, a reason for failing).
    pub note: String,
    pub indexed_at: i64,
}

/// A chunk about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    /// 1-based; text files have one page (or one per form feed).
    pub page: i64,
    /// Character offsets of the chunk in its page's text.
    pub start_char: i64,
    pub end_char: i64,
    /// The heading the chunk sits under, if any.
    pub heading: String,
    pub text: String,
}

/// A chunk found by a search, with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkHit {
    pub chunk_id: i64,
    pub document_id: i64,
    pub path: String,
    pub page: i64,
    pub start_char: i64,
    pub end_char: i64,
    pub heading: String,
    pub text: String,
    /// Higher is better: BM25 (as FTS5 computes it, negated), a cosine, or a
    /// fused rank score, depending on the search that found it.
    pub score: f64,
}

const DOC_COLUMNS: &str = "SELECT d.id, d.path, d.sha256, d.bytes, d.pages,
        (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id), d.status, d.note, d.indexed_at
     FROM documents d";

fn document_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DocumentRow> {
    Ok(DocumentRow {
        id: r.get(0)?,
        path: r.get(1)?,
        sha256: r.get(2)?,
        bytes: r.get(3)?,
        pages: r.get(4)?,
        chunks: r.get(5)?,
        status: r.get(6)?,
        note: r.get(7)?,
        indexed_at: r.get(8)?,
    })
}

impl Db {
    pub fn documents(&self) -> Result<Vec<DocumentRow>, DbError> {
        let mut stmt = self.conn.prepare(&format!("{DOC_COLUMNS} ORDER BY d.path"))?;
        let rows = stmt.query_map([], document_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn document_by_path(&self, path: &str) -> Result<Option<DocumentRow>, DbError> {
        Ok(self.conn.query_row(&format!("{DOC_COLUMNS} WHERE d.path = ?1"), [path], document_row).optional()?)
    }

    /// Store `path`'s chunks in place of whatever it had, in one transaction.
    pub fn replace_document(
        &mut self,
        path: &str,
        sha256: &str,
        bytes: i64,
        pages: i64,
        note: &str,
        chunks: &[NewChunk],
    ) -> Result<i64, DbError> {
        let now = now_s();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO documents (path, sha256, bytes, pages, status, note, added_at, indexed_at)
             VALUES (?1, ?2, ?3, ?4, 'indexed', ?5, ?6, ?6)
             ON CONFLICT(path) DO UPDATE SET sha256 = ?2, bytes = ?3, pages = ?4, status = 'indexed', note = ?5, indexed_at = ?6",
            params![path, sha256, bytes, pages, note, now],
        )?;
        let id: i64 = tx.query_row("SELECT id FROM documents WHERE path = ?1", [path], |r| r.get(0))?;
        tx.execute("DELETE FROM chunks WHERE document_id = ?1", [id])?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO chunks (document_id, seq, page, start_char, end_char, heading, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (seq, c) in chunks.iter().enumerate() {
                insert.execute(params![id, seq as i64, c.page, c.start_char, c.end_char, c.heading, c.text])?;
            }
        }
        tx.commit()?;
        Ok(id)
    }

    /// Remember that `path` could not be read (its old chunks, if any, go).
    /// `sha256` is of the bytes that failed ("" when they could not be read):
    /// the same bytes are not parsed again.
    pub fn fail_document(&mut self, path: &str, sha256: &str, why: &str) -> Result<(), DbError> {
        let now = now_s();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO documents (path, sha256, bytes, pages, status, note, added_at, indexed_at)
             VALUES (?1, ?4, 0, 0, 'failed', ?2, ?3, ?3)
             ON CONFLICT(path) DO UPDATE SET sha256 = ?4, status = 'failed', note = ?2, indexed_at = ?3",
            params![path, why, now, sha256],
        )?;
        tx.execute("DELETE FROM chunks WHERE document_id = (SELECT id FROM documents WHERE path = ?1)", [path])?;
        tx.commit()?;
        Ok(())
    }

    /// Forget a document and its chunks. False when there was none.
    pub fn remove_document(&mut self, id: i64) -> Result<bool, DbError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM chunks WHERE document_id = ?1", [id])?;
        let removed = tx.execute("DELETE FROM documents WHERE id = ?1", [id])? > 0;
        tx.commit()?;
        Ok(removed)
    }

    /// The chunks that best match `question` by keywords (BM25), best first.
    pub fn search_chunks(&self, question: &str, limit: usize) -> Result<Vec<ChunkHit>, DbError> {
        let query = any_word_query(question);
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(&format!(
            "{HIT_COLUMNS}, bm25(chunks_fts)
             FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.document_id
             WHERE chunks_fts MATCH ?1 ORDER BY bm25(chunks_fts) LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![query, limit as i64], |r| chunk_hit(r, -r.get::<_, f64>(8)?))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A chunk waiting for its vector: its id and the text to embed (heading and text,
/// as the keyword index holds it).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingChunk {
    pub chunk_id: i64,
    pub text: String,
}

const HIT_COLUMNS: &str = "SELECT c.id, c.document_id, d.path, c.page, c.start_char, c.end_char, c.heading, c.text";

fn chunk_hit(r: &rusqlite::Row<'_>, score: f64) -> rusqlite::Result<ChunkHit> {
    Ok(ChunkHit {
        chunk_id: r.get(0)?,
        document_id: r.get(1)?,
        path: r.get(2)?,
        page: r.get(3)?,
        start_char: r.get(4)?,
        end_char: r.get(5)?,
        heading: r.get(6)?,
        text: r.get(7)?,
        score,
    })
}

impl Db {
    /// Up to `limit` chunks that have no vector from `model` yet, in document order.
    pub fn chunks_without_vectors(&self, model: &str, limit: usize) -> Result<Vec<PendingChunk>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT c.id, c.heading, c.text FROM chunks c
             WHERE NOT EXISTS (SELECT 1 FROM chunk_vectors v WHERE v.chunk_id = c.id AND v.model = ?1)
             ORDER BY c.id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![model, limit as i64], |r| {
            let (heading, text): (String, String) = (r.get(1)?, r.get(2)?);
            let text = if heading.is_empty() { text } else { format!("{heading}\n{text}") };
            Ok(PendingChunk { chunk_id: r.get(0)?, text })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many chunks still need a vector from `model`.
    pub fn count_chunks_without_vectors(&self, model: &str) -> Result<u64, DbError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM chunks c
             WHERE NOT EXISTS (SELECT 1 FROM chunk_vectors v WHERE v.chunk_id = c.id AND v.model = ?1)",
            [model],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Store vectors made by `model`, in one transaction. A chunk removed
    /// meanwhile (its file changed or was removed) is skipped.
    pub fn store_vectors(&mut self, model: &str, vectors: &[(i64, Vec<u8>)]) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT OR REPLACE INTO chunk_vectors (chunk_id, model, vector)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?1)",
            )?;
            for (id, blob) in vectors {
                insert.execute(params![id, model, blob])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forget vectors made by any model but `model` (after a switch of models).
    pub fn drop_vectors_except(&mut self, model: &str) -> Result<u64, DbError> {
        Ok(self.conn.execute("DELETE FROM chunk_vectors WHERE model != ?1", [model])? as u64)
    }

    /// Call `visit(chunk_id, vector_bytes)` for every vector of `model`.
    pub fn each_vector(&self, model: &str, visit: &mut dyn FnMut(i64, &[u8])) -> Result<(), DbError> {
        let mut stmt = self.conn.prepare_cached("SELECT chunk_id, vector FROM chunk_vectors WHERE model = ?1")?;
        let mut rows = stmt.query([model])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let blob = r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            visit(id, blob);
        }
        Ok(())
    }

    /// The chunks with these ids, each given its score, in the order given.
    pub fn chunks_by_id(&self, scored: &[(i64, f64)]) -> Result<Vec<ChunkHit>, DbError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{HIT_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ?1"
        ))?;
        let mut out = Vec::with_capacity(scored.len());
        for &(id, score) in scored {
            if let Some(hit) = stmt.query_row([id], |r| chunk_hit(r, score)).optional()? {
                out.push(hit);
            }
        }
        Ok(out)
    }
}

impl Db {
    /// Keep `path` (a folder, canonical) in step with the index. False when it already was.
    pub fn watch_folder(&mut self, path: &str) -> Result<bool, DbError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO watched_folders (path, added_at) VALUES (?1, ?2)",
            params![path, now_s()],
        )?;
        Ok(n > 0)
    }

    /// Stop watching `path`; its documents stay. False when it was not watched.
    pub fn unwatch_folder(&mut self, path: &str) -> Result<bool, DbError> {
        Ok(self.conn.execute("DELETE FROM watched_folders WHERE path = ?1", [path])? > 0)
    }

    pub fn watched_folders(&self) -> Result<Vec<String>, DbError> {
        let mut stmt = self.conn.prepare("SELECT path FROM watched_folders ORDER BY path")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A question as an FTS5 query: any of its content words (BM25 ranks the
/// chunks that have more, and rarer, of them first). Words too common to
/// tell passages apart are left out; every word is quoted, so no text is
/// ever read as query syntax.
fn any_word_query(question: &str) -> String {
    const COMMON: &[&str] = &[
        "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "could", "did", "do", "does", "for", "from",
        "has", "have", "how", "i", "if", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "should", "so",
        "that", "the", "their", "there", "this", "to", "was", "we", "what", "when", "where", "which", "who", "why",
        "will", "with", "would", "you", "your",
    ];
    let words: Vec<String> = question
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty() && !COMMON.contains(&w.as_str()))
        .map(|w| format!("\"{w}\""))
        .collect();
    words.join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str) -> NewChunk {
        NewChunk {
            page: 1,
            start_char: 0,
            end_char: text.chars().count() as i64,
            heading: String::new(),
            text: text.into(),
        }
    }

    #[test]
    fn chunks_are_replaced_whole_and_found_by_their_words() {
        let mut db = Db::in_memory().unwrap();
        db.replace_document(
            "/a.txt",
            "h1",
            10,
            1,
            "",
            &[chunk("Staff may park behind the bakery."), chunk("Pay day is monthly.")],
        )
        .unwrap();
        let hits = db.search_chunks("Is there parking for employees?", 5).unwrap();
        assert_eq!(hits.len(), 1, "porter stemming matches park/parking: {hits:?}");
        assert!(hits[0].text.contains("park"));
        let id = db.replace_document("/a.txt", "h2", 10, 1, "", &[chunk("Holidays: 28 days.")]).unwrap();
        assert!(db.search_chunks("parking", 5).unwrap().is_empty(), "old chunks are gone");
        assert_eq!(db.documents().unwrap()[0].chunks, 1);
        assert!(db.remove_document(id).unwrap());
        assert!(db.search_chunks("holidays", 5).unwrap().is_empty());
        assert!(db.documents().unwrap().is_empty());
    }

    #[test]
    fn questions_never_become_query_syntax() {
        assert_eq!(any_word_query("What is \"NEAR\" AND parking*?"), "\"near\" OR \"parking\"");
        assert_eq!(any_word_query("is the"), "");
        let db = Db::in_memory().unwrap();
        assert!(db.search_chunks("\" OR ( ) * NEAR", 5).unwrap().is_empty());
    }
}
