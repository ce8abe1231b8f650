//! A file's text, page by page: plain text and Markdown as they are, HTML
//! without its tags, PDF and Word through their own readers (`pdf`, `docx`).
//! Anything else is refused with a sentence, never guessed at.

use super::DocError;
use crate::tasks::input::{decode, looks_binary};
use std::path::Path;

/// Files larger than this are refused: duet reads a file whole to index it.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The extensions duet reads.
pub const EXTENSIONS: &[&str] = &["txt", "text", "md", "markdown", "html", "htm", "pdf", "docx"];

/// The same, as a person reads it in a message.
pub const KINDS: &str = ".txt, .md, .html, .pdf or .docx";

/// A file's pages (one, unless the text has form feeds) and what to tell the
/// person about how it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadText {
    pub pages: Vec<String>,
    pub note: String,
}

/// Read `path`'s text. `bytes` is the file as it was hashed.
pub fn read_text(path: &Path, bytes: &[u8]) -> Result<ReadText, DocError> {
    let shown = path.display().to_string();
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    if !EXTENSIONS.contains(&ext.as_str()) {
        return Err(DocError::Unsupported { path: shown, ext });
    }
    match ext.as_str() {
        "pdf" => return super::pdf::read_pdf(&shown, bytes),
        "docx" => return super::docx::read_docx(&shown, bytes),
        _ => {}
    }
    if looks_binary(bytes) {
        return Err(DocError::Binary(shown));
    }
    let mut note = String::new();
    let mut text = decode(bytes, &mut note);
    if ext == "html" || ext == "htm" {
        text = html_text(&text);
    }
    let pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
    if pages.iter().all(|p| p.trim().is_empty()) {
        return Err(DocError::Empty(shown));
    }
    let blank = pages.iter().filter(|p| p.trim().is_empty()).count();
    if blank > 0 {
        let sep = if note.is_empty() { "" } else { "; " };
        note = format!("{note}{sep}{blank} of {} pages have no text", pages.len());
    }
    Ok(ReadText { pages, note })
}

/// The visible text of an HTML page: scripts and styles dropped, block tags
/// turned into line breaks, the common entities decoded.
fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let lower = after.get(..8).unwrap_or(after).to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            after.to_ascii_lowercase().find("</script>").map(|i| i + "</script>".len())
        } else if lower.starts_with("<style") {
            after.to_ascii_lowercase().find("</style>").map(|i| i + "</style>".len())
        } else {
            after.find('>').map(|i| i + 1)
        };
        let Some(end) = skip_to else { break };
        let tag = &after[..end].to_ascii_lowercase();
        let block = ["<p", "</p", "<br", "<div", "</div", "<h", "</h", "<li", "<tr", "</tr", "<section", "<article"];
        out.push_str(if block.iter().any(|b| tag.starts_with(b)) { "\n\n" } else { " " });
        rest = &after[end..];
    }
    if !rest.starts_with('<') {
        out.push_str(rest);
    }
    for (entity, ch) in
        [("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&amp;", "&")]
    {
        out = out.replace(entity, ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_markdown_and_html_are_read_and_binary_is_refused() {
        let r = read_text(Path::new("a.md"), b"# Title\n\nBody.\x0cPage two.").unwrap();
        assert_eq!(r.pages, vec!["# Title\n\nBody.", "Page two."]);
        let r = read_text(Path::new("a.html"), b"<h1>Parking</h1><p>Staff park&nbsp;free.</p><script>x()</script>")
            .unwrap();
        assert!(r.pages[0].contains("Parking") && r.pages[0].contains("Staff park free."), "{:?}", r.pages);
        assert!(!r.pages[0].contains("x()"));
        assert!(matches!(read_text(Path::new("a.txt"), b"\x7fELF\x02\x01\x00\x00"), Err(DocError::Binary(_))));
        assert!(matches!(read_text(Path::new("a.txt"), b"  \n\n "), Err(DocError::Empty(_))));
        assert!(matches!(read_text(Path::new("a.doc"), b"\xd0\xcf"), Err(DocError::Unsupported { .. })));
        let latin = read_text(Path::new("a.txt"), b"caf\xe9 au lait").unwrap();
        assert_eq!(latin.pages, vec!["café au lait"]);
        assert!(latin.note.contains("Windows-1252"));
    }
}
