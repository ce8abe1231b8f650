//! Rows of text from a file a person brought: CSV, TSV, plain text (one row
//! per line) or JSON Lines, read as a stream so a large file never sits in
//! memory at once.
//!
//! Real files are messy. A row with broken quoting is reported and skipped and
//! reading goes on at the next line; bytes that are not UTF-8 are read as
//! Windows-1252 (what spreadsheet exports usually are) and the row says so.
//! Nothing here decides what a row means: that is the caller's job.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("could not read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is empty: there are no rows to read. Put one review per line, or a CSV with a header row.")]
    Empty { path: PathBuf },
    #[error("there is no column '{wanted}' in {path}. Its columns are: {existing}. Pick one with --column.")]
    NoColumn { wanted: String, path: PathBuf, existing: String },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Tsv,
    Text,
    JsonLines,
}

impl Format {
    /// From the file name; anything unknown is read as CSV.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("tsv") | Some("tab") => Format::Tsv,
            Some("txt") | Some("text") | Some("md") => Format::Text,
            Some("jsonl") | Some("ndjson") => Format::JsonLines,
            _ => Format::Csv,
        }
    }
}

/// One row of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Ok {
        /// 0-based among data rows (the header is not a row).
        index: usize,
        /// All columns, in header order.
        fields: Vec<String>,
        /// Set when something about the row was repaired (e.g. not UTF-8).
        note: String,
    },
    /// A row that could not be read; the reader goes on after it.
    Broken { index: usize, line: u64, reason: String },
}

/// Column names and a stream of rows.
pub struct Table {
    pub path: PathBuf,
    pub format: Format,
    pub headers: Vec<String>,
    rows: Box<dyn Iterator<Item = Row> + Send>,
    /// Bytes consumed so far (for progress against the file size).
    position: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub size_bytes: u64,
}

impl Table {
    pub fn open(path: &Path) -> Result<Table, InputError> {
        Self::open_as(path, Format::from_path(path))
    }

    pub fn open_as(path: &Path, format: Format) -> Result<Table, InputError> {
        let io = |source| InputError::Io { path: path.into(), source };
        let mut file = File::open(path).map_err(io)?;
        let size_bytes = file.metadata().map_err(io)?.len();
        let mut head = Vec::with_capacity(8192);
        (&mut file).take(8192).read_to_end(&mut head).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        if looks_binary(&head) {
            return Err(InputError::Invalid {
                path: path.into(),
                what:
                    "this looks like a binary file, not text. Give a CSV, TSV, TXT (one review per line) or JSONL file."
                        .into(),
            });
        }
        let position = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (headers, rows): (Vec<String>, Box<dyn Iterator<Item = Row> + Send>) = match format {
            Format::Csv | Format::Tsv => {
                let delimiter = if format == Format::Tsv { b'\t' } else { b',' };
                let mut reader = DelimitedRows::new(path, delimiter, position.clone()).map_err(io)?;
                let headers = reader.headers().map_err(|what| InputError::Invalid { path: path.into(), what })?;
                (headers, Box::new(reader))
            }
            Format::Text => (vec!["text".to_string()], Box::new(LineRows::new(file, position.clone()))),
            Format::JsonLines => {
                let rows = JsonRows::new(path, position.clone()).map_err(io)?;
                (rows.headers.clone(), Box::new(rows))
            }
        };
        if headers.is_empty() || size_bytes == 0 {
            return Err(InputError::Empty { path: path.into() });
        }
        let widest = headers.iter().map(|h| h.chars().count()).max().unwrap_or(0);
        if widest > MAX_HEADER_CHARS {
            return Err(InputError::Invalid {
                path: path.into(),
                what: format!(
                    "the first line is read as the header row, and one of its columns is {widest} characters long. \
                     A CSV needs a header such as text,label; for one review per line, name the file .txt."
                ),
            });
        }
        Ok(Table { path: path.into(), format, headers, rows, position, size_bytes })
    }

    /// Index of a column by name (case-insensitive), or an error naming the columns there are.
    pub fn column(&self, wanted: &str) -> Result<usize, InputError> {
        self.headers.iter().position(|h| h.trim().eq_ignore_ascii_case(wanted.trim())).ok_or_else(|| {
            InputError::NoColumn { wanted: wanted.into(), path: self.path.clone(), existing: self.headers.join(", ") }
        })
    }

    /// The column that most likely holds the text: "text", "review", … or the widest guess.
    pub fn guess_text_column(&self) -> usize {
        const NAMES: &[&str] = &["text", "review", "reviews", "content", "comment", "body", "message", "sentence"];
        NAMES.iter().find_map(|n| self.column(n).ok()).unwrap_or(0)
    }

    /// A handle that reports how far reading has gone.
    pub fn position(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.position.clone()
    }
}

impl Iterator for Table {
    type Item = Row;
    fn next(&mut self) -> Option<Row> {
        self.rows.next()
    }
}

/// A column name longer than this means the first line is data, not a header.
const MAX_HEADER_CHARS: usize = 1000;

/// NUL bytes, or mostly control characters, in the first bytes of a file:
/// not text, whatever its name says.
pub fn looks_binary(head: &[u8]) -> bool {
    let head = &head[..head.len().min(8192)];
    if head.contains(&0) {
        return true;
    }
    let control = head.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c)).count();
    control * 10 > head.len()
}

/// Bytes as text: UTF-8 when valid, else Windows-1252 with a note.
pub fn decode(bytes: &[u8], note: &mut String) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            if note.is_empty() {
                note.push_str("not UTF-8: read as Windows-1252");
            }
            bytes.iter().map(|&b| cp1252(b)).collect()
        }
    }
}

fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

/// CSV/TSV with recovery: a record whose quoting is broken (an odd number of
/// quotes, or a different number of fields than the header) is reported, and
/// reading restarts at the line after the one where it began.
struct DelimitedRows {
    path: PathBuf,
    delimiter: u8,
    reader: csv::Reader<BufReader<File>>,
    /// Byte offset and line number where `reader` started.
    base_offset: u64,
    base_line: u64,
    width: usize,
    index: usize,
    position: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl DelimitedRows {
    fn new(
        path: &Path,
        delimiter: u8,
        position: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> std::io::Result<Self> {
        let reader = Self::reader_at(path, delimiter, 0)?;
        Ok(DelimitedRows {
            path: path.into(),
            delimiter,
            reader,
            base_offset: 0,
            base_line: 1,
            width: 0,
            index: 0,
            position,
        })
    }

    fn reader_at(path: &Path, delimiter: u8, offset: u64) -> std::io::Result<csv::Reader<BufReader<File>>> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(BufReader::new(file)))
    }

    fn headers(&mut self) -> Result<Vec<String>, String> {
        let mut record = csv::ByteRecord::new();
        match self.reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(Vec::new()),
            Err(e) => return Err(format!("the header row could not be read: {e}")),
        }
        let mut note = String::new();
        let mut headers: Vec<String> = record.iter().map(|f| decode(f, &mut note).trim().to_string()).collect();
        // A UTF-8 byte-order mark (Excel writes one) is not part of the first name.
        if let Some(first) = headers.first_mut() {
            *first = first.trim_start_matches('\u{feff}').to_string();
        }
        self.width = headers.len();
        Ok(headers)
    }

    /// Raw bytes of the file between two offsets (to inspect a suspicious record).
    fn raw(&self, start: u64, end: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Ok(mut f) = File::open(&self.path) {
            if f.seek(SeekFrom::Start(start)).is_ok() {
                let _ = f.take(end.saturating_sub(start)).read_to_end(&mut buf);
            }
        }
        buf
    }

    /// Restart reading at the line after the one starting at `offset`.
    fn skip_line_at(&mut self, offset: u64, line: u64) -> bool {
        let Ok(mut f) = File::open(&self.path) else { return false };
        if f.seek(SeekFrom::Start(offset)).is_err() {
            return false;
        }
        let mut first = Vec::new();
        if BufReader::new(f).read_until(b'\n', &mut first).is_err() || first.is_empty() {
            return false;
        }
        let next = offset + first.len() as u64;
        match Self::reader_at(&self.path, self.delimiter, next) {
            Ok(r) => {
                self.reader = r;
                self.base_offset = next;
                self.base_line = line + 1;
                true
            }
            Err(_) => false,
        }
    }
}

impl Iterator for DelimitedRows {
    type Item = Row;
    fn next(&mut self) -> Option<Row> {
        loop {
            let start = self.reader.position().clone();
            let mut start_offset = self.base_offset + start.byte();
            let mut start_line = self.base_line + start.line() - 1;
            let mut record = csv::ByteRecord::new();
            let result = self.reader.read_byte_record(&mut record);
            let end_offset = self.base_offset + self.reader.position().byte();
            self.position.store(end_offset, std::sync::atomic::Ordering::Relaxed);
            let problem = match result {
                Ok(false) => return None,
                Err(e) => Some(format!("could not be read ({e})")),
                Ok(true) => {
                    // Blank lines are not rows.
                    if record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    // A record over several lines took a newline inside quotes: fine only when
                    // its quotes pair up. (A stray quote inside one line, `a 12" pizza`, is text.)
                    // Most records sit on one line; only the others are read again, raw.
                    let mut broken_quote = false;
                    if self.reader.position().line() > start.line() + 1 {
                        // The reader skips blank lines before a record: start where its text does.
                        let raw = self.raw(start_offset, end_offset);
                        let lead = raw.iter().take_while(|&&b| b == b'\n' || b == b'\r').count();
                        start_offset += lead as u64;
                        start_line += raw[..lead].iter().filter(|&&b| b == b'\n').count() as u64;
                        let body = &raw[lead..];
                        let text_end = body.iter().rposition(|&b| b != b'\n' && b != b'\r').map_or(0, |i| i + 1);
                        broken_quote =
                            body[..text_end].contains(&b'\n') && body.iter().filter(|&&b| b == b'"').count() % 2 == 1;
                    }
                    if broken_quote {
                        Some("has a quote that is never closed".to_string())
                    } else if record.len() != self.width {
                        Some(format!("has {} fields where the header has {}", record.len(), self.width))
                    } else {
                        None
                    }
                }
            };
            let index = self.index;
            self.index += 1;
            if let Some(reason) = problem {
                // Go on from the next physical line, so one bad quote can't swallow the rest of the file.
                if !self.skip_line_at(start_offset, start_line) {
                    self.reader = match Self::reader_at(&self.path, self.delimiter, u64::MAX / 2) {
                        Ok(r) => r,
                        Err(_) => return None,
                    };
                }
                return Some(Row::Broken { index, line: start_line, reason: format!("line {start_line} {reason}") });
            }
            let mut note = String::new();
            let fields = record.iter().map(|f| decode(f, &mut note)).collect();
            return Some(Row::Ok { index, fields, note });
        }
    }
}

/// One row per non-empty line.
struct LineRows {
    reader: BufReader<File>,
    index: usize,
    offset: u64,
    position: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl LineRows {
    fn new(file: File, position: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        LineRows { reader: BufReader::new(file), index: 0, offset: 0, position }
    }
}

impl Iterator for LineRows {
    type Item = Row;
    fn next(&mut self) -> Option<Row> {
        loop {
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    self.offset += n as u64;
                    self.position.store(self.offset, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let mut note = String::new();
            let text = decode(&line, &mut note);
            let text = text.trim_end_matches(['\n', '\r']).trim_start_matches('\u{feff}');
            if text.trim().is_empty() {
                continue;
            }
            let index = self.index;
            self.index += 1;
            return Some(Row::Ok { index, fields: vec![text.to_string()], note });
        }
    }
}

/// JSON objects, one per line; the columns are the first object's keys.
struct JsonRows {
    lines: LineRows,
    headers: Vec<String>,
    line_no: u64,
}

impl JsonRows {
    fn new(path: &Path, position: std::sync::Arc<std::sync::atomic::AtomicU64>) -> std::io::Result<Self> {
        // Peek the first object for the column names, then read from the start.
        let mut headers = Vec::new();
        for line in BufReader::new(File::open(path)?).lines() {
            let line = line.unwrap_or_default();
            if line.trim().is_empty() {
                continue;
            }
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&line) {
                headers = map.keys().cloned().collect();
            }
            break;
        }
        Ok(JsonRows { lines: LineRows::new(File::open(path)?, position), headers, line_no: 0 })
    }
}

impl Iterator for JsonRows {
    type Item = Row;
    fn next(&mut self) -> Option<Row> {
        let Row::Ok { index, fields, note } = self.lines.next()? else { return None };
        self.line_no += 1;
        let value = match serde_json::from_str::<serde_json::Value>(&fields[0]) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => return Some(Row::Broken { index, line: self.line_no, reason: "is not a JSON object".into() }),
            Err(e) => {
                return Some(Row::Broken { index, line: self.line_no, reason: format!("is not valid JSON ({e})") })
            }
        };
        let fields = self
            .headers
            .iter()
            .map(|h| match value.get(h) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            })
            .collect();
        Some(Row::Ok { index, fields, note })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(name: &str, content: &[u8]) -> (Vec<String>, Vec<Row>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let t = Table::open(&path).unwrap();
        let headers = t.headers.clone();
        (headers, t.collect())
    }

    #[test]
    fn a_broken_quote_skips_one_row_and_reading_goes_on() {
        let (h, r) = rows("r.csv", b"text,label\n\"good food,positive\nbad,negative\n\"fine, really\",positive\n");
        assert_eq!(h, vec!["text", "label"]);
        assert!(matches!(&r[0], Row::Broken { line: 2, .. }), "{r:?}");
        assert_eq!(r[1], Row::Ok { index: 1, fields: vec!["bad".into(), "negative".into()], note: String::new() });
        assert!(matches!(&r[2], Row::Ok { fields, .. } if fields[0] == "fine, really"));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn a_quote_inside_one_line_is_text_and_quoted_newlines_are_kept() {
        let (_, r) = rows("r.csv", b"text,label\nThe 12\" pizza was great,positive\n\"two\nlines\",negative\n");
        assert!(matches!(&r[0], Row::Ok { fields, .. } if fields[0] == "The 12\" pizza was great"), "{r:?}");
        assert!(matches!(&r[1], Row::Ok { fields, .. } if fields[0] == "two\nlines"), "{r:?}");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn blank_lines_before_a_row_do_not_make_it_broken() {
        let (_, r) = rows("r.csv", b"text,label\n\n\nThe 12\" pizza,positive\nx,y,z\n");
        assert!(matches!(&r[0], Row::Ok { fields, .. } if fields[0] == "The 12\" pizza"), "{r:?}");
        assert!(matches!(&r[1], Row::Broken { line: 5, .. }), "{r:?}");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn latin1_bytes_are_read_and_flagged() {
        let (_, r) = rows("r.tsv", b"text\tlabel\ncaf\xe9 was great\tpositive\n");
        let Row::Ok { fields, note, .. } = &r[0] else { panic!("{r:?}") };
        assert_eq!(fields[0], "café was great");
        assert!(note.contains("UTF-8"));
    }

    #[test]
    fn text_and_jsonl_files() {
        let (h, r) = rows("r.txt", b"one\n\n two \r\n");
        assert_eq!(h, vec!["text"]);
        assert_eq!(r.len(), 2);
        let (h, r) = rows("r.jsonl", b"{\"review\":\"ok\",\"stars\":5}\nnot json\n{\"review\":\"meh\"}\n");
        assert_eq!(h, vec!["review", "stars"]);
        assert!(matches!(&r[0], Row::Ok { fields, .. } if fields == &vec!["ok".to_string(), "5".to_string()]));
        assert!(matches!(&r[1], Row::Broken { .. }));
        assert!(matches!(&r[2], Row::Ok { fields, .. } if fields[1].is_empty()));
    }
}
