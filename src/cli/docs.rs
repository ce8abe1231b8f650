//! `duet docs`: add files and folders, list and remove them, and ask questions
//! answered from them with citations.

use super::*;
use crate::db::Db;
use crate::tasks::docs::{
    add_files, canonical_folder, count, embed_pending, files_under, load_embedder, refresh, retrieve, watch, Added,
    DocAnswer, KINDS,
};

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    /// Index files or whole folders (.txt, .md, .html, .pdf, .docx); unchanged files are skipped.
    Add {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Keep these folders in step: files added, changed or deleted there
        /// are indexed or dropped by `duet docs watch` and while the app is open.
        #[arg(long)]
        watch: bool,
    },
    /// Bring the watched folders up to date, then follow their changes until Ctrl-C.
    Watch,
    /// Stop watching folders (their documents stay; `duet docs rm` removes those).
    Unwatch {
        #[arg(required = true)]
        folders: Vec<PathBuf>,
    },
    /// Every added document: pages, passages, and what went wrong if anything did.
    List,
    /// Forget documents (by the number `duet docs list` shows, or by path).
    Rm {
        #[arg(required = true)]
        documents: Vec<String>,
    },
    /// Ask a question; the answer comes from the passages found in your documents.
    Ask(DocsAskArgs),
}

#[derive(Args, Debug)]
pub struct DocsAskArgs {
    pub question: String,
    /// How many passages to give the model.
    #[arg(long, short = 'k', default_value_t = 4)]
    pub top_k: usize,
    /// `local` (default: nothing leaves this computer), `cloud` or `cloud:NAME`.
    #[arg(long, default_value_t = BackendSpec::Local)]
    pub backend: BackendSpec,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    #[command(flatten)]
    pub model: ModelArg,
    /// Print one JSON object: answer, sources (file, page, score, text), citations.
    #[arg(long)]
    pub json: bool,
}

pub fn docs(store: &Store, catalog: &Catalog, c: DocsCommand) -> Result<()> {
    let mut db = Db::open_default(store.paths())?;
    match c {
        DocsCommand::Add { paths, watch } => {
            if watch {
                for p in &paths {
                    let folder = canonical_folder(p)?;
                    if db.watch_folder(&folder)? {
                        println!("watching  {folder}");
                    }
                }
            }
            add(store, catalog, &mut db, &paths)
        }
        DocsCommand::Watch => follow(store, catalog, &mut db),
        DocsCommand::Unwatch { folders } => {
            for f in &folders {
                let folder = canonical_folder(f).unwrap_or_else(|_| f.display().to_string());
                if !db.unwatch_folder(&folder)? {
                    bail!("{folder} is not watched; `duet docs list` shows the watched folders");
                }
                println!("no longer watching {folder}");
            }
            Ok(())
        }
        DocsCommand::List => list(&db),
        DocsCommand::Rm { documents } => rm(&mut db, &documents),
        DocsCommand::Ask(a) => ask(store, catalog, &db, a),
    }
}

fn add(store: &Store, catalog: &Catalog, db: &mut Db, paths: &[PathBuf]) -> Result<()> {
    let files = files_under(paths)?;
    if files.is_empty() {
        bail!("no {KINDS} files there; give files, or folders that hold some");
    }
    let bar = TerminalBar::new();
    let cancel = &interrupt().0;
    let outcomes = add_files(db, &files, &bar, cancel)?;
    let failed = print_outcomes(&outcomes);
    if !cancel.is_cancelled() {
        embed(store, catalog, db, &bar, cancel)?;
    }
    if cancel.is_cancelled() {
        bail!("stopped; run the same command to go on (finished files and passages are kept)");
    }
    match (failed, files.len()) {
        (0, _) => {}
        (1, 1) => bail!("the file could not be indexed (see above)"),
        (f, n) if f == n => bail!("none of the {n} files could be indexed (see above)"),
        (f, n) => bail!("{f} of {n} files could not be indexed (see above); the others were"),
    }
    Ok(())
}

/// Refresh the watched folders, then again after each change (a second
/// after the last of a burst), until Ctrl-C.
fn follow(store: &Store, catalog: &Catalog, db: &mut Db) -> Result<()> {
    let folders = db.watched_folders()?;
    if folders.is_empty() {
        bail!("no folder is watched; add one with: duet docs add --watch FOLDER");
    }
    let bar = TerminalBar::new();
    let cancel = &interrupt().0;
    let (tx, rx) = std::sync::mpsc::channel();
    let _watcher = watch(&folders, move || {
        let _ = tx.send(());
    })
    .map_err(|e| anyhow::anyhow!("could not watch the folders: {e}"))?;
    eprintln!("watching {} (Ctrl-C stops)", folders.join(", "));
    loop {
        let done = refresh(db, &bar, cancel)?;
        let (changed, removed) = (done.added.iter().filter(|a| !matches!(a, Added::Unchanged { .. })), &done.removed);
        print_outcomes(&changed.cloned().collect::<Vec<_>>());
        for r in removed {
            println!("removed   {r} (the file is gone)");
        }
        embed(store, catalog, db, &bar, cancel)?;
        // Wait for a change, then for the burst to settle; Ctrl-C ends the wait.
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            if rx.recv_timeout(std::time::Duration::from_millis(200)).is_ok() {
                while rx.recv_timeout(std::time::Duration::from_secs(1)).is_ok() {}
                break;
            }
        }
    }
}

/// One line per file; returns how many failed.
fn print_outcomes(outcomes: &[Added]) -> usize {
    let mut failed = 0;
    for o in outcomes {
        match o {
            Added::Indexed { path, pages, chunks, note } => {
                let note = if note.is_empty() { String::new() } else { format!(" ({note})") };
                println!(
                    "indexed   {path}: {}, {}{note}",
                    count(*pages as u64, "page"),
                    count(*chunks as u64, "passage")
                );
            }
            Added::Unchanged { path } => println!("unchanged {path}"),
            // The reason names the file.
            Added::Failed { why, .. } => {
                failed += 1;
                eprintln!("failed    {why}");
            }
        }
    }
    failed
}

/// Give every passage without one a vector, so questions find passages by
/// meaning too. Without the embedding model (offline, not fetched) keyword
/// search still works, and the next `add` catches up.
fn embed(store: &Store, catalog: &Catalog, db: &mut Db, bar: &TerminalBar, cancel: &Cancel) -> Result<()> {
    match load_embedder(store, catalog, true, bar, cancel) {
        Ok(Some(embedder)) => {
            let n = embed_pending(db, &embedder, bar, cancel)?;
            if n > 0 {
                println!("embedded  {} (search by meaning)", count(n, "passage"));
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("(search by meaning is off: {e}; keyword search works)"),
    }
    Ok(())
}

fn list(db: &Db) -> Result<()> {
    let docs = db.documents()?;
    if docs.is_empty() {
        println!("No documents yet. Add some: duet docs add FILE_OR_FOLDER");
    }
    for f in db.watched_folders()? {
        println!("watching  {f}");
    }
    for d in docs {
        let note = if d.note.is_empty() { String::new() } else { format!(" · {}", d.note) };
        let (pages, chunks) = (count(d.pages as u64, "page"), count(d.chunks as u64, "passage"));
        println!("{:>4}  {}  {} · {pages} · {chunks}{note}", d.id, d.path, d.status);
    }
    Ok(())
}

fn rm(db: &mut Db, which: &[String]) -> Result<()> {
    let docs = db.documents()?;
    for w in which {
        let full = std::fs::canonicalize(w).map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| w.clone());
        let found = docs.iter().find(|d| d.id.to_string() == *w || d.path == *w || d.path == full);
        match found {
            Some(d) => {
                db.remove_document(d.id)?;
                println!("removed {}", d.path);
            }
            None => bail!("no document '{w}'; `duet docs list` shows their numbers and paths"),
        }
    }
    Ok(())
}

fn ask(store: &Store, catalog: &Catalog, db: &Db, a: DocsAskArgs) -> Result<()> {
    // Refuse before loading a model when there is nothing to ask or to search.
    if a.question.trim().is_empty() {
        return Err(crate::tasks::docs::DocError::EmptyQuestion.into());
    }
    let embedder = load_embedder(store, catalog, false, &TerminalBar::new(), &Cancel::new())?;
    retrieve(db, embedder.as_ref(), &a.question, 1)?;
    let backend: Box<dyn Backend> = match &a.backend {
        BackendSpec::Local => {
            let path = resolve_model(store, catalog, a.model.model.as_deref())?;
            Box::new(start_engine(&path, 4096, 0)?)
        }
        spec @ BackendSpec::Cloud { .. } => {
            let profile = profile_for_backend(store, spec)?;
            let cloud = crate::engine::cloud::backend_for(&profile, CloudOptions::default());
            eprintln!("(the question and the passages found are sent to {})", cloud.host());
            Box::new(cloud)
        }
    };
    let cancel = interrupt().0.clone();
    let answer =
        crate::tasks::docs::ask(db, embedder.as_ref(), backend.as_ref(), &a.question, a.top_k, a.max_tokens, cancel)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_answer(&answer);
    }
    Ok(())
}

fn print_answer(a: &DocAnswer) {
    println!("{}", a.answer);
    if !a.invalid_citations.is_empty() {
        let list: Vec<String> = a.invalid_citations.iter().map(|n| format!("[{n}]")).collect();
        println!("(careful: {} cited, but no such passage was given to the model)", list.join(", "));
    }
    if !a.extract.is_empty() {
        println!("\nFrom your documents:");
        for (n, sentence) in &a.extract {
            println!("  [{n}] {sentence}");
        }
    }
    if !a.sources.is_empty() {
        println!("\nPassages ({}):", a.location);
        for (i, s) in a.sources.iter().enumerate() {
            let cited = if a.cited.contains(&(i + 1)) { " (cited)" } else { "" };
            let heading = if s.heading.is_empty() { String::new() } else { format!(" · {}", s.heading) };
            println!("  [{}] {}, page {}{heading}{cited}", i + 1, s.path, s.page);
        }
    }
}
