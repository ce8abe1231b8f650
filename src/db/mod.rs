//! The one SQLite database: conversations and messages (with full-text
//! search), classification runs and their rows, comparisons and verdicts,
//! and documents with their chunks (`docs.rs`).
//!
//! Every write that touches more than one row runs in a transaction, so a
//! crash or a full disk never leaves half a conversation or half a batch.
//! WAL mode lets the GUI read while a batch job writes. Secrets never come
//! here: callers store profile *names*, never keys.

mod docs;

pub use docs::{ChunkHit, DocumentRow, NewChunk, PendingChunk};

use crate::engine::{BackendSpec, Role};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the history database at {path} could not be opened: {source}. If the disk is full, free some space; if the file is damaged, move it away and duet starts a new one.")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("the history database could not be written: {0}. If the disk is full, free some space and try again; nothing was half-saved.")]
    Sql(#[from] rusqlite::Error),
    #[error("the history database was made by a newer duet (schema {found}, this one knows {known}). Update duet.")]
    TooNew { found: i64, known: i64 },
    #[error("there is no {what} with id {id}")]
    Missing { what: &'static str, id: i64 },
}

/// Each step moves the schema one version forward; never edit an old step.
const MIGRATIONS: &[&str] = &[
    // 1: chat history with full-text search
    "CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        backend TEXT NOT NULL DEFAULT 'local',
        settings_json TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
     );
     CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        backend_label TEXT NOT NULL DEFAULT '',
        location TEXT NOT NULL DEFAULT '',
        metrics_json TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        UNIQUE (conversation_id, seq)
     );
     CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id');
     CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
     END;
     CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
     END;
     CREATE TRIGGER messages_au AFTER UPDATE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
     END;",
    // 2: classification runs
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        backend TEXT NOT NULL,
        config_json TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
     );
     CREATE TABLE run_rows (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        row_index INTEGER NOT NULL,
        fields_json TEXT NOT NULL,
        text TEXT NOT NULL,
        gold TEXT,
        label TEXT,
        confidence REAL,
        scores_json TEXT NOT NULL DEFAULT '[]',
        note TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, row_index)
     );",
    // 3: comparisons and the user's verdicts
    "CREATE TABLE comparisons (
        id INTEGER PRIMARY KEY,
        prompt TEXT NOT NULL,
        system_prompt TEXT NOT NULL,
        results_json TEXT NOT NULL,
        created_at INTEGER NOT NULL
     );
     CREATE TABLE verdicts (
        comparison_id INTEGER PRIMARY KEY REFERENCES comparisons(id) ON DELETE CASCADE,
        a_index INTEGER NOT NULL,
        b_index INTEGER NOT NULL,
        verdict TEXT NOT NULL,
        created_at INTEGER NOT NULL
     );",
    // 4: documents for retrieval, their chunks, and keyword search over the chunks
    "CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        sha256 TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        pages INTEGER NOT NULL,
        status TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        added_at INTEGER NOT NULL,
        indexed_at INTEGER NOT NULL
     );
     CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        page INTEGER NOT NULL,
        start_char INTEGER NOT NULL,
        end_char INTEGER NOT NULL,
        heading TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL,
        UNIQUE (document_id, seq)
     );
     -- The index holds each chunk's heading with its text, so a passage is found by what its section is about.
     CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id', tokenize='porter unicode61');
     CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.heading || char(10) || new.text);
     END;
     CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.heading || char(10) || old.text);
     END;",
    // 5: one vector per chunk for search by meaning, tagged with the model that made it
    // (vectors of two models are never compared; switching models embeds again)
    "CREATE TABLE chunk_vectors (
        chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        vector BLOB NOT NULL
     );
     CREATE INDEX chunk_vectors_model ON chunk_vectors(model);",
    // 6: folders kept in step with the index (new and changed files added, removed ones dropped)
    "CREATE TABLE watched_folders (
        path TEXT PRIMARY KEY,
        added_at INTEGER NOT NULL
     );",
];

/// See [`Db::revision`].
pub type Revision = (u64, i64);

pub struct Db {
    conn: Connection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: i64,
    pub title: String,
    pub backend: BackendSpec,
    pub settings_json: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: i64,
    pub seq: i64,
    pub role: Role,
    pub content: String,
    /// Which model answered ("SmolLM2-135M-Instruct.Q4_1.gguf").
    pub backend_label: String,
    /// Where the data went ("on this computer", "sent to api.openai.com").
    pub location: String,
    pub metrics_json: String,
}

/// A message to append (the database assigns id and order).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub role: Role,
    pub content: String,
    pub backend_label: String,
    pub location: String,
    pub metrics_json: String,
}

impl NewMessage {
    pub fn user(content: &str) -> Self {
        NewMessage {
            role: Role::User,
            content: content.into(),
            backend_label: String::new(),
            location: String::new(),
            metrics_json: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub conversation_id: i64,
    pub title: String,
    pub snippet: String,
}

/// One classified row of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub row_index: i64,
    /// The original row's columns, in order (for exports).
    pub fields: Vec<String>,
    pub text: String,
    pub gold: Option<String>,
    /// None when the row was skipped (see `note`).
    pub label: Option<String>,
    pub confidence: Option<f64>,
    /// Probability per label, in the run's label order.
    pub scores: Vec<f64>,
    /// Why a row was skipped, truncated or changed; empty when nothing happened.
    pub note: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub id: i64,
    pub source: String,
    pub backend: BackendSpec,
    pub config_json: String,
    pub status: RunStatus,
    pub rows: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl RunInfo {
    /// How long a "running" run may go without saving a row before it counts
    /// as cut short (its app closed or crashed). Rows are saved at least every
    /// half second while a run moves; five minutes leaves room for a slow
    /// cloud reply without offering to resume a run another window is still on.
    pub const STALE_AFTER_S: i64 = 300;

    /// Whether "Resume" makes sense: stopped, failed, or cut short, but not
    /// finished and not still moving in another process.
    pub fn is_resumable(&self, now: i64) -> bool {
        match self.status {
            RunStatus::Done => false,
            RunStatus::Running => now - self.updated_at > Self::STALE_AFTER_S,
            RunStatus::Cancelled | RunStatus::Failed => true,
        }
    }
}

/// Where a classification run stands; stored as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Done,
    Cancelled,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [RunStatus::Running, RunStatus::Done, RunStatus::Cancelled, RunStatus::Failed]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown run status '{s}'"))
    }
}

// The typed names are stored as the text they print, so older databases read unchanged.
fn sql_text<T: std::str::FromStr>(v: ValueRef<'_>) -> FromSqlResult<T>
where
    T::Err: std::fmt::Display,
{
    let s = v.as_str()?;
    s.parse().map_err(|e: T::Err| FromSqlError::Other(e.to_string().into()))
}

impl ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for RunStatus {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        sql_text(v)
    }
}

impl ToSql for Role {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Role {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        sql_text(v)
    }
}

impl ToSql for BackendSpec {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for BackendSpec {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        sql_text(v)
    }
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Db {
    /// Open (or create) the database file and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(|source| DbError::Open { path: path.into(), source })?;
        Self::init(conn).map_err(|e| match e {
            DbError::Sql(source) => DbError::Open { path: path.into(), source },
            other => other,
        })
    }

    /// The database file, or None for one in memory.
    pub fn file(&self) -> Option<PathBuf> {
        self.conn.path().filter(|p| !p.is_empty()).map(PathBuf::from)
    }

    /// The database in `paths.data_dir`.
    pub fn open_default(paths: &crate::config::Paths) -> Result<Self, DbError> {
        Self::open(&paths.data_dir.join("duet.sqlite3"))
    }

    /// A database in memory (nothing persists; for a read-only session).
    pub fn in_memory() -> Result<Self, DbError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, DbError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let known = MIGRATIONS.len() as i64;
        loop {
            // The version is read inside a write transaction: two duets opening a
            // new database at once take turns, and the second sees the first's steps.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version > known {
                return Err(DbError::TooNew { found: version, known });
            }
            let Some(step) = MIGRATIONS.get(version as usize) else { break };
            tx.execute_batch(step)?;
            tx.pragma_update(None, "user_version", version + 1)?;
            tx.commit()?;
        }
        Ok(Db { conn })
    }

    /// Moves whenever anything is written, by this connection or another one
    /// (a classify run writes through its own). Screens keep query results
    /// until it moves instead of querying on every frame.
    pub fn revision(&self) -> Revision {
        let others = self.conn.pragma_query_value(None, "data_version", |r| r.get(0)).unwrap_or(-1);
        (self.conn.total_changes(), others)
    }

    // ---- conversations ----

    pub fn create_conversation(&self, title: &str, backend: &BackendSpec, settings_json: &str) -> Result<i64, DbError> {
        let now = now_s();
        self.conn.execute(
            "INSERT INTO conversations (title, backend, settings_json, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![title, backend, settings_json, now],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Newest first.
    pub fn conversations(&self) -> Result<Vec<Conversation>, DbError> {
        let mut stmt = self.conn.prepare(&format!("{CONVERSATION_COLUMNS} ORDER BY updated_at DESC, id DESC"))?;
        let rows = stmt.query_map([], conversation_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn conversation(&self, id: i64) -> Result<Conversation, DbError> {
        self.conn
            .query_row(&format!("{CONVERSATION_COLUMNS} WHERE id = ?1"), [id], conversation_row)
            .optional()?
            .ok_or(DbError::Missing { what: "conversation", id })
    }

    pub fn rename_conversation(&self, id: i64, title: &str) -> Result<(), DbError> {
        self.update_conversation(id, "title", title)
    }

    pub fn set_conversation_backend(&self, id: i64, backend: &BackendSpec) -> Result<(), DbError> {
        self.update_conversation(id, "backend", &backend.to_string())
    }

    pub fn set_conversation_settings(&self, id: i64, settings_json: &str) -> Result<(), DbError> {
        self.update_conversation(id, "settings_json", settings_json)
    }

    fn update_conversation(&self, id: i64, column: &str, value: &str) -> Result<(), DbError> {
        // `column` is one of three constants above, never user input.
        let sql = format!("UPDATE conversations SET {column} = ?1, updated_at = ?2 WHERE id = ?3");
        let n = self.conn.execute(&sql, params![value, now_s(), id])?;
        if n == 0 {
            return Err(DbError::Missing { what: "conversation", id });
        }
        Ok(())
    }

    pub fn delete_conversation(&self, id: i64) -> Result<(), DbError> {
        self.conn.execute("DELETE FROM conversations WHERE id = ?1", [id])?;
        Ok(())
    }

    pub fn messages(&self, conversation_id: i64) -> Result<Vec<StoredMessage>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, seq, role, content, backend_label, location, metrics_json
             FROM messages WHERE conversation_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([conversation_id], |r| {
            Ok(StoredMessage {
                id: r.get(0)?,
                seq: r.get(1)?,
                role: r.get(2)?,
                content: r.get(3)?,
                backend_label: r.get(4)?,
                location: r.get(5)?,
                metrics_json: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Append messages in one transaction (a question and its answer land together).
    pub fn append_messages(&mut self, conversation_id: i64, messages: &[NewMessage]) -> Result<(), DbError> {
        self.write_messages(conversation_id, None, messages)
    }

    /// Replace every message from position `seq` on with `messages`, in one
    /// transaction (edit-and-resend: a failed write keeps the old turns).
    pub fn replace_messages_from(
        &mut self,
        conversation_id: i64,
        seq: i64,
        messages: &[NewMessage],
    ) -> Result<(), DbError> {
        self.write_messages(conversation_id, Some(seq), messages)
    }

    fn write_messages(
        &mut self,
        conversation_id: i64,
        from_seq: Option<i64>,
        messages: &[NewMessage],
    ) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        let exists: Option<i64> =
            tx.query_row("SELECT id FROM conversations WHERE id = ?1", [conversation_id], |r| r.get(0)).optional()?;
        if exists.is_none() {
            return Err(DbError::Missing { what: "conversation", id: conversation_id });
        }
        if let Some(seq) = from_seq {
            tx.execute("DELETE FROM messages WHERE conversation_id = ?1 AND seq >= ?2", params![conversation_id, seq])?;
        }
        let next: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM messages WHERE conversation_id = ?1",
            [conversation_id],
            |r| r.get(0),
        )?;
        let now = now_s();
        for (i, m) in messages.iter().enumerate() {
            let metrics = if m.metrics_json.is_empty() { "{}" } else { m.metrics_json.as_str() };
            tx.execute(
                "INSERT INTO messages (conversation_id, seq, role, content, backend_label, location, metrics_json, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![conversation_id, next + i as i64, m.role, m.content, m.backend_label, m.location, metrics, now],
            )?;
        }
        tx.execute("UPDATE conversations SET updated_at = ?1 WHERE id = ?2", params![now, conversation_id])?;
        tx.commit()?;
        Ok(())
    }

    /// Drop every message from position `seq` on (edit-and-resend, regenerate).
    pub fn truncate_messages(&self, conversation_id: i64, seq: i64) -> Result<(), DbError> {
        self.conn
            .execute("DELETE FROM messages WHERE conversation_id = ?1 AND seq >= ?2", params![conversation_id, seq])?;
        Ok(())
    }

    /// Conversations whose messages contain the words of `query`, best first.
    pub fn search(&self, query: &str) -> Result<Vec<SearchHit>, DbError> {
        let fts = fts_query(query);
        if fts.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(
            "SELECT m.conversation_id, c.title, snippet(messages_fts, 0, '[', ']', '…', 8)
             FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
             JOIN conversations c ON c.id = m.conversation_id
             WHERE messages_fts MATCH ?1 ORDER BY rank LIMIT 50",
        )?;
        let rows = stmt
            .query_map([fts], |r| Ok(SearchHit { conversation_id: r.get(0)?, title: r.get(1)?, snippet: r.get(2)? }))?;
        let mut hits: Vec<SearchHit> = Vec::new();
        for hit in rows {
            let hit = hit?;
            if !hits.iter().any(|h| h.conversation_id == hit.conversation_id) {
                hits.push(hit);
            }
        }
        Ok(hits)
    }

    // ---- classification runs ----

    pub fn create_run(&self, source: &str, backend: &BackendSpec, config_json: &str) -> Result<i64, DbError> {
        let now = now_s();
        self.conn.execute(
            "INSERT INTO runs (source, backend, config_json, status, created_at, updated_at) VALUES (?1, ?2, ?3, 'running', ?4, ?4)",
            params![source, backend, config_json, now],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn set_run_status(&self, run_id: i64, status: RunStatus) -> Result<(), DbError> {
        self.conn
            .execute("UPDATE runs SET status = ?1, updated_at = ?2 WHERE id = ?3", params![status, now_s(), run_id])?;
        Ok(())
    }

    /// Replace a run's settings (a resumed run that named no model records the one it continues with).
    pub fn set_run_config(&self, run_id: i64, config_json: &str) -> Result<(), DbError> {
        self.conn.execute("UPDATE runs SET config_json = ?1 WHERE id = ?2", params![config_json, run_id])?;
        Ok(())
    }

    pub fn run(&self, run_id: i64) -> Result<RunInfo, DbError> {
        self.conn
            .query_row(&format!("{RUN_COLUMNS} WHERE id = ?1"), [run_id], run_info_row)
            .optional()?
            .ok_or(DbError::Missing { what: "run", id: run_id })
    }

    /// Newest first.
    pub fn runs(&self) -> Result<Vec<RunInfo>, DbError> {
        let mut stmt = self.conn.prepare(&format!("{RUN_COLUMNS} ORDER BY id DESC"))?;
        let rows = stmt.query_map([], run_info_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Save a batch of classified rows in one transaction.
    pub fn save_run_rows(&mut self, run_id: i64, rows: &[RunRow]) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        for row in rows {
            tx.execute(
                "INSERT OR REPLACE INTO run_rows (run_id, row_index, fields_json, text, gold, label, confidence, scores_json, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    run_id,
                    row.row_index,
                    serde_json::to_string(&row.fields).unwrap_or_default(),
                    row.text,
                    row.gold,
                    row.label,
                    row.confidence,
                    serde_json::to_string(&row.scores).unwrap_or_default(),
                    row.note
                ],
            )?;
        }
        tx.execute("UPDATE runs SET updated_at = ?1 WHERE id = ?2", params![now_s(), run_id])?;
        tx.commit()?;
        Ok(())
    }

    /// Row indices already settled (to resume an interrupted run); rows whose
    /// classification failed (a network outage, say) are tried again.
    pub fn done_rows(&self, run_id: i64) -> Result<std::collections::HashSet<i64>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT row_index FROM run_rows WHERE run_id = ?1 AND NOT (label IS NULL AND note LIKE 'failed:%')",
        )?;
        let rows = stmt.query_map([run_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every row of a run, in file order.
    pub fn run_rows(&self, run_id: i64) -> Result<Vec<RunRow>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT row_index, fields_json, text, gold, label, confidence, scores_json, note
             FROM run_rows WHERE run_id = ?1 ORDER BY row_index",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            let fields: String = r.get(1)?;
            let scores: String = r.get(6)?;
            Ok(RunRow {
                row_index: r.get(0)?,
                fields: serde_json::from_str(&fields).unwrap_or_default(),
                text: r.get(2)?,
                gold: r.get(3)?,
                label: r.get(4)?,
                confidence: r.get(5)?,
                scores: serde_json::from_str(&scores).unwrap_or_default(),
                note: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_run(&self, run_id: i64) -> Result<(), DbError> {
        self.conn.execute("DELETE FROM runs WHERE id = ?1", [run_id])?;
        Ok(())
    }

    // ---- comparisons ----

    pub fn save_comparison(&self, prompt: &str, system_prompt: &str, results_json: &str) -> Result<i64, DbError> {
        self.conn.execute(
            "INSERT INTO comparisons (prompt, system_prompt, results_json, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![prompt, system_prompt, results_json, now_s()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Record (or replace) the user's verdict on columns `a` and `b` of a comparison.
    pub fn save_verdict(&self, comparison_id: i64, a: i64, b: i64, verdict: &str) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO verdicts (comparison_id, a_index, b_index, verdict, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![comparison_id, a, b, verdict, now_s()],
        )?;
        Ok(())
    }

    /// (prompt, system_prompt, results_json, verdict, a, b) for every judged comparison, oldest first.
    pub fn judged_comparisons(&self) -> Result<Vec<JudgedComparison>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT c.id, c.prompt, c.system_prompt, c.results_json, v.verdict, v.a_index, v.b_index
             FROM comparisons c JOIN verdicts v ON v.comparison_id = c.id ORDER BY c.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(JudgedComparison {
                id: r.get(0)?,
                prompt: r.get(1)?,
                system_prompt: r.get(2)?,
                results_json: r.get(3)?,
                verdict: r.get(4)?,
                a_index: r.get(5)?,
                b_index: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every saved comparison's results, oldest first (for cost estimates).
    pub fn comparison_results(&self) -> Result<Vec<String>, DbError> {
        let mut stmt = self.conn.prepare("SELECT results_json FROM comparisons ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

const CONVERSATION_COLUMNS: &str = "SELECT id, title, backend, settings_json, updated_at FROM conversations";

fn conversation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: r.get(0)?,
        title: r.get(1)?,
        backend: r.get(2)?,
        settings_json: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

const RUN_COLUMNS: &str = "SELECT id, source, backend, config_json, status,
    (SELECT COUNT(*) FROM run_rows WHERE run_id = runs.id), created_at, updated_at FROM runs";

fn run_info_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunInfo> {
    Ok(RunInfo {
        id: r.get(0)?,
        source: r.get(1)?,
        backend: r.get(2)?,
        config_json: r.get(3)?,
        status: r.get(4)?,
        rows: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct JudgedComparison {
    pub id: i64,
    pub prompt: String,
    pub system_prompt: String,
    pub results_json: String,
    pub verdict: String,
    pub a_index: i64,
    pub b_index: i64,
}

/// Turn what a person types into an FTS5 query: each word quoted (so `-`,
/// `:` or `"` in the text are words, not query syntax), all words required,
/// the last one as a prefix so results appear while typing.
fn fts_query(input: &str) -> String {
    let words: Vec<String> = input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"", w.replace('"', "")))
        .collect();
    match words.split_last() {
        Some((last, rest)) => {
            let mut q: Vec<String> = rest.to_vec();
            q.push(format!("{last}*"));
            q.join(" ")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_are_quoted_and_the_last_is_a_prefix() {
        assert_eq!(fts_query("park-ing: \"emp"), "\"park\" \"ing\" \"emp\"*");
        assert_eq!(fts_query("  !! "), "");
    }

    #[test]
    fn revision_moves_on_writes_from_any_connection_and_not_on_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("duet.sqlite3");
        let ui = Db::open(&path).unwrap();
        let worker = Db::open(&path).unwrap();
        let start = ui.revision();
        ui.conversations().unwrap();
        ui.runs().unwrap();
        assert_eq!(ui.revision(), start, "reads leave it");
        let run = worker.create_run("reviews.csv", &BackendSpec::Local, "{}").unwrap();
        let after_worker = ui.revision();
        assert_ne!(after_worker, start, "another connection's write moves it");
        ui.set_run_status(run, RunStatus::Done).unwrap();
        assert_ne!(ui.revision(), after_worker, "its own write moves it");
    }

    #[test]
    fn resume_is_offered_for_stopped_and_cut_short_runs_only() {
        let db = Db::in_memory().unwrap();
        let run = db.create_run("reviews.csv", &BackendSpec::Local, "{}").unwrap();
        let info = db.run(run).unwrap();
        let now = info.updated_at;
        assert!(!info.is_resumable(now), "still moving (in another window, say)");
        assert!(info.is_resumable(now + RunInfo::STALE_AFTER_S + 1), "cut short: the app closed mid-run");
        for (status, offered) in [(RunStatus::Cancelled, true), (RunStatus::Failed, true), (RunStatus::Done, false)] {
            db.set_run_status(run, status).unwrap();
            assert_eq!(db.run(run).unwrap().is_resumable(now), offered, "{status}");
        }
    }

    #[test]
    fn history_round_trips_and_searches() {
        let mut db = Db::in_memory().unwrap();
        let c = db.create_conversation("Trip", &BackendSpec::Local, "{}").unwrap();
        db.append_messages(c, &[NewMessage::user("Is there parking for employees?"), NewMessage::user("thanks")])
            .unwrap();
        let msgs = db.messages(c).unwrap();
        assert_eq!(msgs.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![0, 1]);
        let hits = db.search("employ").unwrap();
        assert_eq!(hits.len(), 1);
        assert!(hits[0].snippet.contains("[employees]"), "{}", hits[0].snippet);
        db.replace_messages_from(c, 0, &[NewMessage::user("Where do employees park?")]).unwrap();
        let msgs = db.messages(c).unwrap();
        assert_eq!((msgs.len(), msgs[0].seq, msgs[0].content.as_str()), (1, 0, "Where do employees park?"));
        db.append_messages(c, &[NewMessage::user("thanks")]).unwrap();
        db.truncate_messages(c, 1).unwrap();
        assert_eq!(db.messages(c).unwrap().len(), 1);
        db.delete_conversation(c).unwrap();
        assert!(db.search("parking").unwrap().is_empty());
        assert!(matches!(db.append_messages(c, &[NewMessage::user("x")]), Err(DbError::Missing { .. })));
    }
}
