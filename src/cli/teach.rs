//! `duet teach`: make a classifier from a labeled file, and keep, list,
//! remove, export and import taught models.

use super::interrupt;
use crate::catalog::Catalog;
use crate::config::Paths;
use crate::progress::{Progress, Silent, TerminalBar};
use crate::store::Store;
use crate::tasks::input::Table;
use crate::tasks::teach::{self, FileSource, Stage, TaughtInfo, TeachError, TeachOptions};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TeachArgs {
    #[command(subcommand)]
    pub action: Option<TeachAction>,
    /// A CSV, TSV or JSONL file with a text column and a label column (any labels).
    pub file: Option<PathBuf>,
    /// The column holding the text (default: "text", "review", … or the first).
    #[arg(long)]
    pub text_column: Option<String>,
    /// The column holding each row's label.
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// What to call the taught model (default: the file's name).
    #[arg(long)]
    pub name: Option<String>,
    /// The most passes over the rows; it stops sooner when the held-out rows stop improving.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Also fine-tune the embedding model on pairs of rows (SetFit): slower, often better.
    #[arg(long)]
    pub fine_tune_body: bool,
    /// Pairs the body is fine-tuned on (with --fine-tune-body).
    #[arg(long, default_value_t = 2000)]
    pub pairs: usize,
    /// The same seed and data give the same model.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of each label's rows kept aside to measure on (and to stop on).
    #[arg(long, default_value_t = 0.2)]
    pub held_out: f64,
    /// Files with more labeled rows are sampled down to this many.
    #[arg(long, default_value_t = teach::DEFAULT_MAX_ROWS)]
    pub max_rows: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum TeachAction {
    /// The taught models: name, labels, accuracy, date.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a taught model.
    Rm { name: String },
    /// Write a taught model to one file (weights and what it is) to share or keep.
    Export { name: String, file: PathBuf },
    /// Add a taught model from a file made by `duet teach export`.
    Import {
        file: PathBuf,
        /// Store it under another name.
        #[arg(long)]
        name: Option<String>,
    },
}

pub fn teach_command(store: &Store, catalog: &Catalog, a: TeachArgs) -> Result<()> {
    let paths = store.paths().clone();
    match a.action {
        Some(TeachAction::List { json }) => list(&paths, json),
        Some(TeachAction::Rm { ref name }) => {
            let path = teach::remove(&paths.data_dir, name)?;
            println!("removed {name} ({})", path.display());
            Ok(())
        }
        Some(TeachAction::Export { ref name, ref file }) => {
            teach::export(&paths.data_dir, name, file)?;
            println!("wrote {} (taught model {name}; import it with: duet teach import FILE)", file.display());
            Ok(())
        }
        Some(TeachAction::Import { ref file, ref name }) => {
            let entry = catalog.default_embedder().ok_or(TeachError::NoEmbedder)?;
            let info = teach::import(&paths.data_dir, file, name.as_deref(), &entry.id)?;
            println!(
                "imported {} ({}; held-out accuracy {:.1}%)",
                info.name,
                info.labels.join(", "),
                100.0 * info.held_out_accuracy
            );
            Ok(())
        }
        None => teach_file(store, catalog, &a),
    }
}

fn teach_file(store: &Store, catalog: &Catalog, a: &TeachArgs) -> Result<()> {
    let Some(file) = &a.file else {
        bail!("give a labeled file to teach from: duet teach reviews.csv --label-column label (or: duet teach list)")
    };
    let name = match &a.name {
        Some(n) => n.clone(),
        None => file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "taught".into()),
    };
    teach::check_name(&name)?;
    let table = Table::open(file)?;
    let text_column = match &a.text_column {
        Some(c) => table.headers[table.column(c)?].clone(),
        None => table.headers[table.guess_text_column()].clone(),
    };
    let label_column = table.headers[table.column(&a.label_column)?].clone();
    let bar = TerminalBar::new();
    let silent = Silent;
    let progress: &dyn Progress = if a.json { &silent } else { &bar };
    let mut options = TeachOptions::new(&name);
    options.seed = a.seed;
    options.held_out = a.held_out.clamp(0.05, 0.5);
    options.head.max_epochs = a.epochs.max(1);
    options.fine_tune_body = a.fine_tune_body;
    options.body.pairs = a.pairs.max(2);
    let source = FileSource { file: file.clone(), text_column, label_column };
    let mut last_body_note = std::time::Instant::now();
    let taught = teach::teach_file(
        store,
        catalog,
        &source,
        a.max_rows.max(2),
        &options,
        progress,
        &interrupt().0,
        &mut |stage| {
            if let Stage::Body { done, total, loss } = stage {
                if last_body_note.elapsed().as_secs() >= 30 || done == total {
                    progress.note(&format!("body: step {done} of {total}, pair loss {loss:.4}"));
                    last_body_note = std::time::Instant::now();
                }
            }
        },
    )?;
    let path = teach::path_of(&store.paths().data_dir, &name)?;
    let replaced = path.exists();
    teach::write(&taught, &path)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"path": path, "model": taught.info}))?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for note in &taught.info.notes {
        writeln!(out, "note: {note}")?;
    }
    describe(&mut out, &taught.info)?;
    writeln!(out, "{} {}", if replaced { "replaced" } else { "saved" }, path.display())?;
    writeln!(out, "Use it: duet classify FILE --model {}", teach::model_spec(&name))?;
    Ok(())
}

/// What a taught model is and how well it did, in a few lines.
fn describe(out: &mut dyn Write, info: &TaughtInfo) -> Result<()> {
    writeln!(
        out,
        "Taught {} from {}: {} rows taught, {} held out; labels: {}",
        info.name,
        info.source,
        info.taught_rows,
        info.held_out_rows,
        info.labels.join(", ")
    )?;
    if let Some(frozen) = info.frozen_held_out_accuracy {
        writeln!(out, "Held-out accuracy with the embedding model as it came: {:.1}%", 100.0 * frozen)?;
    }
    writeln!(
        out,
        "Held-out accuracy {:.1}% (training {:.1}%), kept epoch {} of {}{}, {:.1} s",
        100.0 * info.held_out_accuracy,
        100.0 * info.train_accuracy,
        info.best_epoch,
        info.curve.len(),
        if info.body_fine_tuned { ", body fine-tuned" } else { "" },
        info.seconds
    )?;
    Ok(())
}

fn list(paths: &Paths, json: bool) -> Result<()> {
    let all = teach::list(&paths.data_dir);
    let mut out = std::io::stdout().lock();
    if json {
        let items: Vec<serde_json::Value> = all
            .iter()
            .map(|r| match r {
                Ok(info) => serde_json::to_value(info).unwrap_or_default(),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
        return Ok(());
    }
    if all.is_empty() {
        writeln!(out, "No taught models yet. Teach one: duet teach reviews.csv --label-column label --name NAME")?;
        return Ok(());
    }
    writeln!(out, "{:<20} {:>9} {:<10} {:<24} labels", "name", "held-out", "body", "taught")?;
    for r in &all {
        match r {
            Ok(i) => writeln!(
                out,
                "{:<20} {:>8.1}% {:<10} {:<24} {}",
                i.name,
                100.0 * i.held_out_accuracy,
                if i.body_fine_tuned { "fine-tuned" } else { "as is" },
                format!("{} ({} rows)", crate::engine::local::template::iso_day(i.created_at), i.taught_rows),
                i.labels.join(", ")
            )?,
            Err(e) => writeln!(out, "(unreadable) {e}")?,
        }
    }
    Ok(())
}
