//! duet's own actions: each changes or reads something outside the
//! conversation, so each waits for the person's yes (the gate asks; these
//! only say what they will do and do it).

use super::{string_arg, Tool};
use crate::engine::{Cancel, ToolSpec};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Longest note written (a model in a loop should not fill the disk).
const MAX_NOTE_BYTES: usize = 1 << 20;

/// "save_note": write a Markdown note into the notes folder.
pub struct SaveNote {
    pub dir: PathBuf,
}

impl SaveNote {
    /// The file a title becomes: letters, digits and dashes only, so a title
    /// like "../../.bashrc" cannot leave the notes folder.
    pub fn path_for(&self, title: &str) -> PathBuf {
        let mut name: String = title
            .chars()
            .map(|c| if c.is_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        name.truncate(60);
        if name.is_empty() {
            name = "note".into();
        }
        self.dir.join(format!("{name}.md"))
    }
}

impl Tool for SaveNote {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "save_note".into(),
            description: "Saves a note as a Markdown file on this computer.".into(),
            parameters: json!({"type": "object", "properties": {
                "title": {"type": "string"}, "text": {"type": "string"}}, "required": ["title", "text"]}),
        }
    }

    fn needs_yes(&self) -> bool {
        true
    }

    fn describe(&self, args: &Value) -> String {
        let title = args["title"].as_str().unwrap_or("note");
        let text = args["text"].as_str().unwrap_or("");
        let verb = if self.path_for(title).exists() { "Replace" } else { "Write" };
        format!(
            "{verb} the file {} with {} characters:\n{}",
            self.path_for(title).display(),
            text.chars().count(),
            text
        )
    }

    fn run(&self, args: &Value, _cancel: &Cancel) -> Result<String, String> {
        let title = string_arg(args, "title")?;
        let text = string_arg(args, "text")?;
        if text.len() > MAX_NOTE_BYTES {
            return Err(format!("the note is {} bytes; notes are at most 1 MB", text.len()));
        }
        let path = self.path_for(title);
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("could not make {}: {e}", self.dir.display()))?;
        // Write beside it and rename, so a full disk never leaves half a note.
        let tmp = path.with_extension("md.part");
        std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("could not write {}: {e}", path.display())
        })?;
        Ok(format!("Saved the note to {}", path.display()))
    }
}

/// "copy_to_clipboard": put text on the system clipboard.
pub struct CopyToClipboard;

impl Tool for CopyToClipboard {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "copy_to_clipboard".into(),
            description: "Copies text to the clipboard.".into(),
            parameters: json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
        }
    }

    fn needs_yes(&self) -> bool {
        true
    }

    fn describe(&self, args: &Value) -> String {
        format!("Copy this text to the clipboard (it replaces what is there):\n{}", args["text"].as_str().unwrap_or(""))
    }

    fn run(&self, args: &Value, _cancel: &Cancel) -> Result<String, String> {
        let text = string_arg(args, "text")?;
        let mut clipboard =
            arboard::Clipboard::new().map_err(|e| format!("there is no clipboard to copy to here ({e})"))?;
        clipboard.set_text(text).map_err(|e| format!("the clipboard refused the text ({e})"))?;
        Ok(format!("Copied {} characters to the clipboard.", text.chars().count()))
    }
}

/// "search_documents": the passages of the person's documents (Documents)
/// that best match a query, by keywords. Reading private files into the
/// conversation is the person's call too, so it also waits for a yes.
pub struct SearchDocuments {
    pub db_path: PathBuf,
}

impl Tool for SearchDocuments {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "search_documents".into(),
            description: "Searches the user's documents and returns the best matching passages.".into(),
            parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        }
    }

    fn needs_yes(&self) -> bool {
        true
    }

    fn describe(&self, args: &Value) -> String {
        format!(
            "Search your documents for \"{}\" and give the 3 best passages to the model",
            args["query"].as_str().unwrap_or("")
        )
    }

    fn run(&self, args: &Value, _cancel: &Cancel) -> Result<String, String> {
        use crate::tasks::docs::{search, Ranking};
        let query = string_arg(args, "query")?;
        let db = crate::db::Db::open(&self.db_path).map_err(|e| e.to_string())?;
        let hits = search(&db, None, query, 3, Ranking::Keywords).map_err(|e| e.to_string())?;
        if hits.is_empty() {
            return Ok(format!("No passage of your documents matches \"{query}\"."));
        }
        Ok(hits
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let file = std::path::Path::new(&h.path).file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
                format!("[{}] ({file}, page {}) {}", i + 1, h.page, h.text.trim())
            })
            .collect::<Vec<_>>()
            .join("\n\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_title_cannot_leave_the_notes_folder() {
        let dir = tempfile::tempdir().unwrap();
        let s = SaveNote { dir: dir.path().join("notes") };
        assert_eq!(s.path_for("../../.bashrc"), dir.path().join("notes/bashrc.md"));
        assert_eq!(s.path_for("Shopping list: Monday!"), dir.path().join("notes/shopping-list-monday.md"));
        assert_eq!(s.path_for("///"), dir.path().join("notes/note.md"));
        let out = s.run(&json!({"title": "Plan", "text": "- eggs"}), &Cancel::new()).unwrap();
        assert!(out.contains("plan.md"));
        assert_eq!(std::fs::read_to_string(dir.path().join("notes/plan.md")).unwrap(), "- eggs");
        assert!(s.describe(&json!({"title": "Plan", "text": "x"})).starts_with("Replace the file"));
        assert!(s.run(&json!({"title": "Plan"}), &Cancel::new()).unwrap_err().contains("\"text\""));
    }
}
