//! The text of a Word (.docx) file: a zip holding `word/document.xml`, whose
//! paragraphs (`<w:p>`) hold runs of text (`<w:t>`). Headings (paragraph
//! styles named Heading1…, Title) become Markdown headings, so passages are
//! cut at them as in a Markdown file; a page break becomes a new page.

use super::read::ReadText;
use super::DocError;
use std::io::Read;

/// `word/document.xml` larger than this is refused (a zip bomb, not a document).
const MAX_XML_BYTES: u64 = 256 * 1024 * 1024;

pub fn read_docx(shown: &str, bytes: &[u8]) -> Result<ReadText, DocError> {
    let unreadable = |why: String| DocError::Unreadable { path: shown.to_string(), why };
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| unreadable(format!("it is not a Word file duet can open ({e})")))?;
    let entry = zip
        .by_name("word/document.xml")
        .map_err(|_| unreadable("it has no document body (word/document.xml); is it a .docx from Word?".into()))?;
    let mut xml = String::new();
    entry
        .take(MAX_XML_BYTES)
        .read_to_string(&mut xml)
        .map_err(|e| unreadable(format!("its document body could not be read ({e})")))?;
    let text = document_text(&xml);
    let pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
    if pages.iter().all(|p| p.trim().is_empty()) {
        return Err(DocError::Empty(shown.to_string()));
    }
    Ok(ReadText { pages, note: String::new() })
}

/// Paragraphs separated by blank lines; headings marked with `#`.
fn document_text(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len() / 4);
    let mut paragraph = String::new();
    let mut heading = 0usize;
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else { break };
        let tag = &rest[open + 1..open + close];
        let after = &rest[open + close + 1..];
        let name = tag.trim_end_matches('/').split_whitespace().next().unwrap_or("");
        match name {
            "w:t" if !tag.ends_with('/') => {
                let end = after.find("</w:t>").unwrap_or(after.len());
                paragraph.push_str(&unescape(&after[..end]));
                rest = &after[end..];
                continue;
            }
            "w:tab" => paragraph.push('\t'),
            "w:br" | "w:cr" => paragraph.push(if tag.contains("type=\"page\"") { '\u{c}' } else { '\n' }),
            "w:pStyle" => heading = heading_level(tag),
            "/w:p" => {
                // A page break (form feed) at either end is kept: it starts a new page.
                let text = paragraph.trim_matches(|c: char| c.is_whitespace() && c != '\u{c}');
                if !text.is_empty() {
                    if heading > 0 {
                        out.push_str(&"#".repeat(heading));
                        out.push(' ');
                    }
                    out.push_str(text);
                    out.push_str("\n\n");
                }
                paragraph.clear();
                heading = 0;
            }
            _ => {}
        }
        rest = after;
    }
    out
}

/// 1 for Title and Heading1, 2 for Heading2, … from `w:pStyle w:val="…"`.
fn heading_level(tag: &str) -> usize {
    let val = tag.split("w:val=\"").nth(1).and_then(|v| v.split('"').next()).unwrap_or("");
    let lower = val.to_ascii_lowercase();
    if lower == "title" {
        return 1;
    }
    lower.strip_prefix("heading").and_then(|n| n.parse::<usize>().ok()).map_or(0, |n| n.clamp(1, 6))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_headings_and_page_breaks_come_through() {
        let xml = r#"<w:document><w:body>
            <w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Parking</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">Staff park </w:t></w:r><w:r><w:t>free &amp; safe.</w:t></w:r></w:p>
            <w:p><w:r><w:br w:type="page"/><w:t>Page two.</w:t></w:r></w:p>
            <w:p><w:r><w:t/></w:r></w:p>
        </w:body></w:document>"#;
        assert_eq!(document_text(xml), "# Parking\n\nStaff park free & safe.\n\n\u{c}Page two.\n\n");
    }

    #[test]
    fn a_zip_without_a_body_says_what_it_is_missing() {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            z.start_file("hello.txt", zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut z, b"hi").unwrap();
            z.finish().unwrap();
        }
        let err = read_docx("a.docx", buf.get_ref()).unwrap_err().to_string();
        assert!(err.contains("word/document.xml"), "{err}");
        let err = read_docx("b.docx", b"not a zip").unwrap_err().to_string();
        assert!(err.contains("b.docx") && err.contains("not a Word file"), "{err}");
    }
}
