//! The text of a PDF, page by page. The parser is third-party code facing
//! files from anywhere, so it runs fenced (`crate::guard`): a page that
//! panics it or takes too long is reported as "couldn't read page N" and the
//! other pages still go in; a file it cannot open at all is refused with the
//! reason. A PDF with no text layer (scanned pages) says so.

use super::read::ReadText;
use super::DocError;
use crate::guard::{fenced, Fenced};
use pdf_extract::{Document, PlainTextOutput};
use std::sync::Arc;
use std::time::Duration;

/// Opening the file (parsing its cross-reference table and objects).
const OPEN_LIMIT: Duration = Duration::from_secs(30);
/// One page's text. A real page takes milliseconds.
const PAGE_LIMIT: Duration = Duration::from_secs(10);
/// After this many pages that hang, the rest of the file is given up on:
/// each hang leaves a thread running until the parser returns.
const MAX_HANGS: usize = 2;

pub fn read_pdf(shown: &str, bytes: &[u8]) -> Result<ReadText, DocError> {
    let unreadable = |why: &str| DocError::Unreadable { path: shown.to_string(), why: why.to_string() };
    let owned = bytes.to_vec();
    let doc = match fenced(OPEN_LIMIT, move || open(&owned)) {
        Fenced::Done(Ok(doc)) => Arc::new(doc),
        Fenced::Done(Err(why)) => return Err(unreadable(&why)),
        Fenced::Panicked => return Err(unreadable("the PDF reader could not make sense of it (damaged file?)")),
        Fenced::TimedOut => return Err(unreadable("the PDF reader gave up after 30 s (damaged file?)")),
    };
    let count = doc.get_pages().len() as u32;
    let mut pages = Vec::with_capacity(count as usize);
    let mut failed: Vec<(u32, String)> = Vec::new();
    let mut hangs = 0;
    for n in 1..=count {
        if hangs >= MAX_HANGS {
            failed.push((n, "skipped after earlier pages hung the reader".into()));
            pages.push(String::new());
            continue;
        }
        let d = doc.clone();
        let text = match fenced(PAGE_LIMIT, move || page_text(&d, n)) {
            Fenced::Done(Ok(text)) => text,
            Fenced::Done(Err(why)) => {
                failed.push((n, why));
                String::new()
            }
            Fenced::Panicked => {
                failed.push((n, "the PDF reader crashed on it".into()));
                String::new()
            }
            Fenced::TimedOut => {
                hangs += 1;
                failed.push((n, "the PDF reader took more than 10 s".into()));
                String::new()
            }
        };
        pages.push(text);
    }
    let file = std::path::Path::new(shown).file_name().map_or(shown.into(), |n| n.to_string_lossy());
    let mut note: Vec<String> =
        failed.iter().map(|(n, why)| format!("couldn't read page {n} of {file} ({why})")).collect();
    if pages.iter().all(|p| p.trim().is_empty()) {
        return Err(if failed.is_empty() {
            DocError::NoTextLayer(shown.to_string())
        } else {
            unreadable(&note.join("; "))
        });
    }
    let blank = pages.iter().filter(|p| p.trim().is_empty()).count() - failed.len();
    if blank > 0 {
        note.push(format!("{blank} of {count} pages have no text (images only?)"));
    }
    Ok(ReadText { pages, note: note.join("; ") })
}

fn open(bytes: &[u8]) -> Result<Document, String> {
    let mut doc = Document::load_mem(bytes).map_err(|e| format!("it is not a PDF duet can open ({e})"))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err("it is password-protected; save a copy without the password and add that".into());
    }
    Ok(doc)
}

fn page_text(doc: &Document, page: u32) -> Result<String, String> {
    let mut text = String::new();
    let mut out = PlainTextOutput::new(&mut text);
    pdf_extract::output_doc_page(doc, &mut out, page).map_err(|e| e.to_string())?;
    Ok(text)
}
