//! Cutting a page into passages a small model can read: whole paragraphs,
//! about [`TARGET_CHARS`] characters each (≈ 200–400 tokens), a new passage at
//! each heading, and the last short paragraph of one passage repeated at the
//! start of the next so an answer that spans the cut is found from either side.
//! Every passage keeps its page and character offsets, so a citation can
//! point at exactly the text that was read.

use crate::db::NewChunk;

/// The size a passage grows to before a new one starts.
pub const TARGET_CHARS: usize = 1200;
/// A paragraph at most this long is repeated at the start of the next passage.
const OVERLAP_CHARS: usize = 300;

/// A paragraph: its text and its character range in the page.
#[derive(Debug, Clone)]
struct Block {
    start: usize,
    end: usize,
    text: String,
    heading: bool,
}

/// Paragraphs (split at blank lines) with character offsets; paragraphs
/// longer than the target are cut at sentence ends.
fn blocks(page: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let chars: Vec<char> = page.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        // Skip blank space between paragraphs.
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let start = i;
        // A paragraph ends at a blank line (a newline, optional spaces, a newline).
        while i < chars.len() {
            if chars[i] == '\n' {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '\n' && chars[j].is_whitespace() {
                    j += 1;
                }
                if j >= chars.len() || chars[j] == '\n' {
                    break;
                }
            }
            i += 1;
        }
        let end = trim_end(&chars, start, i);
        if end > start {
            let text: String = chars[start..end].iter().collect();
            let heading = text.starts_with('#') && !text.contains('\n');
            split_long(&mut out, &chars, start, end, heading, text);
        }
    }
    out
}

fn trim_end(chars: &[char], start: usize, mut end: usize) -> usize {
    while end > start && chars[end - 1].is_whitespace() {
        end -= 1;
    }
    end
}

/// Push the paragraph, cut at sentence ends into pieces of at most the target.
fn split_long(out: &mut Vec<Block>, chars: &[char], start: usize, end: usize, heading: bool, text: String) {
    if end - start <= TARGET_CHARS {
        out.push(Block { start, end, text, heading });
        return;
    }
    let mut piece_start = start;
    let mut last_cut = None;
    for i in start..end {
        // Whitespace skipped after a cut lies before the new piece.
        if i < piece_start {
            continue;
        }
        let sentence_end = matches!(chars[i], '.' | '!' | '?') && chars.get(i + 1).is_some_and(|c| c.is_whitespace());
        if sentence_end {
            last_cut = Some(i + 1);
        }
        if i + 1 - piece_start >= TARGET_CHARS {
            // No sentence end in reach: cut at the limit rather than grow without bound.
            let cut = last_cut.filter(|&c| c > piece_start).unwrap_or(i + 1);
            push_piece(out, chars, piece_start, cut);
            piece_start = cut;
            while piece_start < end && chars[piece_start].is_whitespace() {
                piece_start += 1;
            }
            last_cut = None;
        }
    }
    if piece_start < end {
        push_piece(out, chars, piece_start, end);
    }
}

fn push_piece(out: &mut Vec<Block>, chars: &[char], start: usize, end: usize) {
    let end = trim_end(chars, start, end);
    if end > start {
        out.push(Block { start, end, text: chars[start..end].iter().collect(), heading: false });
    }
}

/// The passages of page `page_no` (1-based).
pub fn chunk_page(page_no: i64, page: &str) -> Vec<NewChunk> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut current: Vec<Block> = Vec::new();
    let flush = |current: &mut Vec<Block>, heading: &str, out: &mut Vec<NewChunk>| {
        if let (Some(first), Some(last)) = (current.first(), current.last()) {
            let text = current.iter().map(|b| b.text.as_str()).collect::<Vec<_>>().join("\n\n");
            out.push(NewChunk {
                page: page_no,
                start_char: first.start as i64,
                end_char: last.end as i64,
                heading: heading.to_string(),
                text,
            });
        }
        current.clear();
    };
    for block in blocks(page) {
        if block.heading {
            flush(&mut current, &heading, &mut out);
            heading = block.text.trim_start_matches('#').trim().to_string();
            continue;
        }
        let size: usize = current.iter().map(|b| b.text.chars().count() + 2).sum();
        if !current.is_empty() && size + block.text.chars().count() > TARGET_CHARS {
            let carry = current.last().filter(|b| b.text.chars().count() <= OVERLAP_CHARS).cloned();
            flush(&mut current, &heading, &mut out);
            current.extend(carry);
        }
        current.push(block);
    }
    flush(&mut current, &heading, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_start_passages_and_offsets_point_at_the_text() {
        let page = "# Pay\n\nPay day is the last day.\n\n## Parking\n\nStaff park free behind the bakery.\nNo customer bays.\n\nBikes go in the shed.";
        let chunks = chunk_page(3, page);
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert_eq!((chunks[0].heading.as_str(), chunks[0].text.as_str()), ("Pay", "Pay day is the last day."));
        assert_eq!(chunks[1].heading, "Parking");
        assert_eq!(chunks[1].page, 3);
        let chars: Vec<char> = page.chars().collect();
        let span: String = chars[chunks[1].start_char as usize..chunks[1].end_char as usize].iter().collect();
        assert!(span.starts_with("Staff park free") && span.ends_with("in the shed."), "{span:?}");
    }

    #[test]
    fn long_text_is_cut_near_the_target_at_sentence_ends_with_overlap() {
        let para = "This sentence is about bread and it is fairly long indeed. ".repeat(8);
        let page = [para.trim(); 12].join("\n\n");
        let chunks = chunk_page(1, &page);
        assert!(chunks.len() >= 4, "{}", chunks.len());
        for c in &chunks {
            assert!(c.text.chars().count() <= TARGET_CHARS + OVERLAP_CHARS + 2, "{}", c.text.len());
            assert!(c.text.ends_with('.'), "cut at a sentence end: {:?}", &c.text[c.text.len() - 20..]);
        }
        // One giant paragraph with no sentence ends is still cut.
        let wall = "x".repeat(5000);
        assert_eq!(chunk_page(1, &wall).len(), 5);
    }

    #[test]
    fn a_cut_followed_by_several_spaces_goes_on_cleanly() {
        // Found on the Jargon File: the spaces after a forced cut lie past the
        // loop's position, which once made the piece length negative.
        let text = format!("{}  and the rest of the paragraph.", "x".repeat(TARGET_CHARS));
        let chunks = chunk_page(1, &text);
        assert!(chunks.iter().any(|c| c.text.contains("rest of the paragraph")), "{chunks:?}");
        for c in &chunks {
            let piece: String =
                text.chars().skip(c.start_char as usize).take((c.end_char - c.start_char) as usize).collect();
            assert_eq!(piece, c.text, "offsets point at the text");
        }
    }
}
