//! `duet docs`: add files and folders, list and remove them, and ask questions
//! answered from them with citations.

use super::*;
use crate::db::Db;
use crate::tasks::docs::{
    add_files, count, embed_pending, files_under, load_embedder, retrieve, Added, DocAnswer, KINDS,
};

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    /// Index files or whole folders (.txt, .md, .html, .pdf, .docx); unchanged files are skipped.
    Add {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
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
        DocsCommand::Add { paths } => add(store, catalog, &mut db, &paths),
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
    let mut failed = 0;
    for o in &outcomes {
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
