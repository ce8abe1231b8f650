//! The second step of indexing: give every stored chunk a vector from the
//! embedding model. It is separate from reading and chunking so that it can
//! stop anywhere: what was embedded is committed batch by batch, and the next
//! run picks up the chunks that still have none. Vectors of another model are
//! dropped first, so a switch of models embeds everything again and vectors
//! of two models are never compared.

use super::DocError;
use crate::db::Db;
use crate::embed::{to_bytes, Embedder};
use crate::progress::{Cancel, Progress};

/// Chunks read, embedded and committed at a time: small enough that a kill
/// loses seconds of work, big enough to keep the batches of the model full.
const STEP: usize = 64;

/// Embed every chunk that has no vector from `embedder` yet. Returns how many were embedded.
pub fn embed_pending(
    db: &mut Db,
    embedder: &Embedder,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<u64, DocError> {
    let model = embedder.model_id.as_str();
    db.drop_vectors_except(model)?;
    let total = db.count_chunks_without_vectors(model)?;
    if total == 0 {
        return Ok(0);
    }
    progress.begin_items("embedding passages", total, "passage");
    let mut done = 0;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let pending = db.chunks_without_vectors(model, STEP)?;
        if pending.is_empty() {
            break;
        }
        let texts: Vec<&str> = pending.iter().map(|p| p.text.as_str()).collect();
        let before = done;
        let vectors = embedder.embed(&texts, &mut |n| progress.set_position(before + n as u64))?;
        let rows: Vec<(i64, Vec<u8>)> = pending.iter().zip(&vectors).map(|(p, v)| (p.chunk_id, to_bytes(v))).collect();
        db.store_vectors(model, &rows)?;
        done += pending.len() as u64;
    }
    progress.finish();
    Ok(done)
}
