//! Adding files and folders to the index: each file read, cut into passages
//! and stored in one transaction; a file whose bytes have not changed since
//! it was indexed costs one hash and nothing more; a file that cannot be read
//! is recorded with the reason and the rest go on.

use super::chunk::chunk_page;
use super::read::{read_text, EXTENSIONS, MAX_FILE_BYTES};
use super::DocError;
use crate::db::{Db, NewChunk};
use crate::progress::{Cancel, Progress};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What adding one file did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Added {
    Indexed {
        path: String,
        pages: usize,
        chunks: usize,
        note: String,
    },
    /// Indexed before with the same bytes: nothing to do.
    Unchanged {
        path: String,
    },
    Failed {
        path: String,
        why: String,
    },
}

/// The files under `paths` that duet reads (folders walked, in name order).
pub fn files_under(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DocError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| DocError::Open(p.display().to_string(), e.to_string()))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DocError> {
    let read = std::fs::read_dir(dir).map_err(|e| DocError::Open(dir.display().to_string(), e.to_string()))?;
    let mut entries: Vec<PathBuf> = read.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Index `files` (from [`files_under`]); stops between files when `cancel` is set.
pub fn add_files(
    db: &mut Db,
    files: &[PathBuf],
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Vec<Added>, DocError> {
    progress.begin_items("reading documents", files.len() as u64, "file");
    let mut out = Vec::new();
    for file in files {
        if cancel.is_cancelled() {
            break;
        }
        // The full path: the same file added from another folder is the same document.
        let path = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
        let shown = path.to_string_lossy().into_owned();
        let added = match index_one(db, &path) {
            Ok(a) => a,
            Err(DocError::Db(e)) => return Err(DocError::Db(e)),
            Err(e) => {
                db.fail_document(&shown, "", &e.to_string())?;
                Added::Failed { path: shown, why: e.to_string() }
            }
        };
        progress.advance(1);
        out.push(added);
    }
    progress.finish();
    Ok(out)
}

fn index_one(db: &mut Db, path: &Path) -> Result<Added, DocError> {
    let shown = path.to_string_lossy().into_owned();
    let meta = std::fs::metadata(path).map_err(|e| DocError::Open(shown.clone(), e.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(DocError::TooLarge { path: shown, bytes: meta.len() });
    }
    let bytes = std::fs::read(path).map_err(|e| DocError::Open(shown.clone(), e.to_string()))?;
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    let before = db.document_by_path(&shown)?.filter(|d| d.sha256 == sha256);
    match before {
        Some(d) if d.status == "indexed" => return Ok(Added::Unchanged { path: shown }),
        // The same bytes failed before: say why again without parsing them again
        // (a PDF that hangs the reader would leave a stuck thread each time).
        Some(d) => return Ok(Added::Failed { path: shown, why: d.note }),
        None => {}
    }
    let read = match read_text(path, &bytes) {
        Ok(r) => r,
        Err(e) => {
            db.fail_document(&shown, &sha256, &e.to_string())?;
            return Ok(Added::Failed { path: shown, why: e.to_string() });
        }
    };
    let chunks: Vec<NewChunk> =
        read.pages.iter().enumerate().flat_map(|(i, page)| chunk_page(i as i64 + 1, page)).collect();
    db.replace_document(&shown, &sha256, bytes.len() as i64, read.pages.len() as i64, &read.note, &chunks)?;
    Ok(Added::Indexed { path: shown, pages: read.pages.len(), chunks: chunks.len(), note: read.note })
}
