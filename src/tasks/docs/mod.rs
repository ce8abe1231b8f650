//! Documents: ask questions of your own files, answered from the passages
//! found in them, with citations that are checked (retrieval-augmented
//! generation, the course's three steps). Everything stays on this computer
//! unless the person picks a cloud backend to answer.
//!
//! `read` turns a file into text, `chunk` cuts it into passages, `index`
//! keeps them in the database (keyword search with BM25), `vectors` gives
//! each passage a vector (search by meaning), `search` fuses the two
//! rankings, `answer` asks a backend with the passages found. No window or
//! terminal here.

mod answer;
mod chunk;
mod docx;
mod index;
mod pdf;
mod read;
mod search;
mod vectors;
mod watch;

pub use super::count;
pub use answer::{ask, best_sentences, citations, prompt, retrieve, sentences_by_meaning, DocAnswer, NOT_FOUND};
pub use chunk::{chunk_page, TARGET_CHARS};
pub use index::{add_files, files_under, Added};
pub use read::{read_text, ReadText, EXTENSIONS, KINDS, MAX_FILE_BYTES};
pub use search::{fuse, nearest, search, Ranking, MIN_COSINE};
pub use vectors::embed_pending;
pub use watch::{canonical_folder, refresh, watch, Refreshed};

use crate::catalog::Catalog;
use crate::embed::Embedder;
use crate::progress::{Cancel, Progress};
use crate::store::{FileState, Store};

/// Load the catalog's embedding model, fetching it first when `fetch` is set
/// and it is missing. `Ok(None)` when it is not here and may not be fetched:
/// search then runs on keywords alone.
pub fn load_embedder(
    store: &Store,
    catalog: &Catalog,
    fetch: bool,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Option<Embedder>, DocError> {
    let Some(entry) = catalog.default_embedder() else { return Ok(None) };
    if !fetch && store.model_state(entry) == FileState::Missing {
        return Ok(None);
    }
    let dir = store.ensure(entry, progress, cancel)?;
    Ok(Some(Embedder::load(entry, &dir)?))
}

#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("no documents are added yet. Add some first: duet docs add FILE_OR_FOLDER (txt, md, html, pdf or docx)")]
    NoDocuments,
    #[error("the question is empty; ask something about your documents")]
    EmptyQuestion,
    #[error("could not read {0}: {1}")]
    Open(String, String),
    #[error("{path} is not a .txt, .md, .html, .pdf or .docx file; duet reads those")]
    Unsupported { path: String, ext: String },
    #[error("could not read {path}: {why}")]
    Unreadable { path: String, why: String },
    #[error("{0} has no text layer (scanned pages are images); duet reads text, so run it through OCR first")]
    NoTextLayer(String),
    #[error("{0} looks like a binary file, not text; nothing was indexed")]
    Binary(String),
    #[error("{0} is not a folder; only folders can be watched")]
    NotAFolder(String),
    #[error("{0} has no text to index")]
    Empty(String),
    #[error("{path} is {bytes} bytes; duet indexes files up to 64 MB (split it into smaller files)")]
    TooLarge { path: String, bytes: u64 },
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Gen(#[from] crate::engine::GenError),
    #[error(transparent)]
    Embed(#[from] crate::embed::EmbedError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
