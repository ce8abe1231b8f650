//! `duet classify`: label every row of a file, print the counts (and, when the
//! file has labels, how often the model was wrong), keep the run in the database.

use super::{interrupt, resolve_model, start_engine};
use crate::catalog::Catalog;
use crate::config::Paths;
use crate::db::Db;
use crate::engine::cloud::CloudOptions;
use crate::engine::BackendSpec;
use crate::progress::TerminalBar;
use crate::store::Store;
use crate::tasks::classify::{
    agreement, export_csv, parse_labels, plan_run, resume_run, start_run, summarize, Classifier, ClassifyConfig,
    ClassifyError, CloudClassifier, LocalClassifier, RunConfig, Summary, EXAMPLE_REVIEWS,
};
use crate::tasks::input::Table;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// CSV, TSV, TXT (one review per line) or JSONL file.
    pub file: Option<PathBuf>,
    /// Classify the course's five example reviews instead of a file.
    #[arg(long, conflicts_with = "file")]
    pub example: bool,
    /// The column holding the review text (default: "text", "review", … or the first).
    #[arg(long)]
    pub column: Option<String>,
    /// A column with the right answers: prints accuracy, confusion and mistakes.
    #[arg(long)]
    pub label_column: Option<String>,
    /// The labels to choose from, comma-separated.
    #[arg(long, default_value = "positive,negative")]
    pub labels: String,
    /// `local`, `cloud` (the first profile) or `cloud:NAME`. Give two to compare them.
    #[arg(long, default_values_t = vec![BackendSpec::Local])]
    pub backend: Vec<BackendSpec>,
    /// The prompt; {review} marks where each review goes (default: the course's wording).
    #[arg(long)]
    pub instruction: Option<String>,
    /// A worked example shown to the model before each review: "text => label" (repeatable).
    #[arg(long = "shot")]
    pub shots: Vec<String>,
    /// How much of the model's bias toward some labels to correct, 0 (none) to 1
    /// (full contextual calibration); measure on labeled rows before changing it.
    #[arg(long, default_value_t = crate::tasks::classify::DEFAULT_CALIBRATION)]
    pub calibration: f64,
    /// Longer reviews are cut to this many tokens (and flagged).
    #[arg(long, default_value_t = 512)]
    pub max_review_tokens: usize,
    /// Write the rows with their labels here (CSV).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Continue an interrupted run (its id is printed when it stops).
    #[arg(long, conflicts_with_all = ["file", "example"])]
    pub resume: Option<i64>,
    #[command(flatten)]
    pub model: super::ModelArg,
    /// Threads for the math (default: one per physical core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn classify(store: &Store, catalog: &Catalog, a: ClassifyArgs) -> Result<()> {
    let paths = store.paths().clone();
    let mut db = Db::open_default(&paths)?;
    let mut runs = Vec::new();
    if let Some(run_id) = a.resume {
        let mut resumed = match resume_run(&db, run_id, crate::db::now_s()) {
            Err(ClassifyError::OtherModel(why)) => bail!("{why} (--model picks the model)"),
            other => other?,
        };
        if resumed.was_done {
            eprintln!("run {run_id} was already finished");
        }
        if resumed.backend.is_local() {
            // A run classified by a taught model goes on with it unless told otherwise.
            let wanted = a.model.model.clone().or_else(|| {
                resumed.config.model.clone().filter(|m| crate::tasks::teach::taught_name(Some(m)).is_some())
            });
            let loaded = local_model_name(store, catalog, wanted.as_deref())?;
            match resumed.claim_model(&db, &loaded) {
                Err(ClassifyError::OtherModel(why)) => bail!("{why} (--model picks the model)"),
                other => other?,
            }
        }
        let model = resumed.config.model.clone();
        let mut classifier =
            make_classifier(store, catalog, &resumed.backend, &resumed.config.classify, model.as_deref(), &a)?;
        run_one(&mut db, run_id, resumed.table, &resumed.config, classifier.as_mut(), a.json)?;
        runs.push((run_id, resumed.backend));
    } else {
        let source = match (&a.file, a.example) {
            (Some(f), _) => f.clone(),
            (None, true) => write_example(&paths)?,
            (None, false) => {
                bail!("give a file to classify (CSV, TSV, TXT or JSONL), or --example for the course's five reviews")
            }
        };
        let (labels, repeats) = parse_labels(&a.labels)?;
        if !repeats.is_empty() {
            eprintln!("note: {} listed twice; each label counts once", repeats.join(", "));
        }
        // A taught model knows its labels; --labels cannot change them.
        let labels = match crate::tasks::teach::taught_name(a.model.model.as_deref()) {
            Some(name) => crate::tasks::teach::labels_of(&paths.data_dir, name)?,
            None => labels,
        };
        let mut classify = ClassifyConfig::new(labels);
        if let Some(i) = &a.instruction {
            classify.instruction = if i.contains("{review}") { i.clone() } else { format!("{i}\n\n{{review}}") };
        }
        classify.calibration = a.calibration.clamp(0.0, 1.0);
        classify.examples = crate::tasks::classify::parse_examples(&a.shots, &classify.labels)?;
        classify.max_review_tokens = a.max_review_tokens.max(1);
        for (i, backend) in a.backend.iter().enumerate() {
            let mut plan = plan_run(&source, classify.clone(), a.column.as_deref(), a.label_column.as_deref(), None)?;
            plan.config.out = out_path(a.out.as_deref(), i, backend).map(|p| std::path::absolute(&p).unwrap_or(p));
            if backend.is_local() {
                plan.config.model = Some(local_model_name(store, catalog, a.model.model.as_deref())?);
            }
            let model = plan.config.model.clone();
            let mut classifier = make_classifier(store, catalog, backend, &plan.config.classify, model.as_deref(), &a)?;
            let run_id = start_run(&db, &plan, backend)?;
            run_one(&mut db, run_id, plan.table, &plan.config, classifier.as_mut(), a.json)?;
            runs.push((run_id, backend.clone()));
        }
    }
    report(&db, &runs, &a)
}

/// The labels file of the `i`-th run of one command: with several backends,
/// each run gets its own file (results.csv, results.cloud-NAME.csv, …).
fn out_path(out: Option<&std::path::Path>, i: usize, backend: &BackendSpec) -> Option<PathBuf> {
    let out = out?;
    Some(if i == 0 {
        out.to_path_buf()
    } else {
        out.with_extension(format!("{}.csv", backend.to_string().replace(':', "-")))
    })
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn write_example(paths: &Paths) -> Result<PathBuf> {
    let path = paths.data_dir.join("example-reviews.txt");
    std::fs::create_dir_all(&paths.data_dir)?;
    std::fs::write(&path, EXAMPLE_REVIEWS.join("\n") + "\n")?;
    Ok(path)
}

/// What a local run is tied to: `taught:NAME`, or the model file's name.
fn local_model_name(store: &Store, catalog: &Catalog, model: Option<&str>) -> Result<String> {
    match crate::tasks::teach::taught_name(model) {
        Some(name) => Ok(crate::tasks::teach::model_spec(name)),
        None => Ok(file_name(&resolve_model(store, catalog, model)?)),
    }
}

/// `model` is what a local run is tied to (see [`local_model_name`]).
fn make_classifier(
    store: &Store,
    catalog: &Catalog,
    backend: &BackendSpec,
    config: &ClassifyConfig,
    model: Option<&str>,
    a: &ClassifyArgs,
) -> Result<Box<dyn Classifier>> {
    if let (true, Some(name)) = (backend.is_local(), crate::tasks::teach::taught_name(model)) {
        let taught = crate::tasks::teach::load_classifier(store, catalog, name, &TerminalBar::new(), &interrupt().0)?;
        return Ok(Box::new(taught));
    }
    if backend.is_local() {
        let path = resolve_model(store, catalog, a.model.model.as_deref())?;
        let engine = start_engine(&path, 4096, a.threads)?;
        return Ok(Box::new(LocalClassifier::new(engine, config.clone())?));
    }
    let profile = super::profile_for_backend(store, backend)?;
    let cloud = crate::engine::cloud::backend_for(&profile, CloudOptions::default());
    if std::io::stderr().is_terminal() {
        eprintln!("(reviews are sent to {})", cloud.host());
    }
    Ok(Box::new(CloudClassifier::new(cloud, config.clone(), interrupt().0.clone())?))
}

fn run_one(
    db: &mut Db,
    run_id: i64,
    table: Table,
    config: &RunConfig,
    classifier: &mut dyn Classifier,
    quiet: bool,
) -> Result<()> {
    let bar = TerminalBar::new();
    let silent = crate::progress::Silent;
    let progress: &dyn crate::progress::Progress = if quiet { &silent } else { &bar };
    let outcome = crate::tasks::classify::run_table(db, run_id, table, config, classifier, progress, &interrupt().0)?;
    if !outcome.finished {
        bail!("stopped; {} rows are saved. Continue with: duet classify --resume {run_id}", db.run(run_id)?.rows);
    }
    if !quiet && outcome.seconds > 0.0 {
        eprintln!(
            "run {run_id}: {} rows in {:.1} s ({:.1} rows/s) with {}",
            outcome.classified_now,
            outcome.seconds,
            outcome.classified_now as f64 / outcome.seconds,
            classifier.backend_label()
        );
    }
    Ok(())
}

fn report(db: &Db, runs: &[(i64, BackendSpec)], a: &ClassifyArgs) -> Result<()> {
    let mut summaries = Vec::new();
    for (run_id, backend) in runs {
        let info = db.run(*run_id)?;
        let config: RunConfig = serde_json::from_str(&info.config_json)?;
        let rows = db.run_rows(*run_id)?;
        let summary = summarize(&config.classify.labels, &rows);
        // This command's --out, or else the one the run was started with.
        if let Some(path) = out_path(a.out.as_deref(), summaries.len(), backend).or_else(|| config.out.clone()) {
            let mut f = std::fs::File::create(&path).with_context(|| format!("could not write {}", path.display()))?;
            export_csv(&config.headers, &rows, &mut f)?;
            eprintln!("wrote {}", path.display());
        }
        summaries.push((*run_id, backend.clone(), summary, rows));
    }
    let agree = match summaries.as_slice() {
        [a, b, ..] => Some(agreement(&a.3, &b.3)),
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let runs: Vec<_> = summaries
            .iter()
            .map(|(id, backend, s, rows)| {
                let skipped: Vec<_> = rows.iter().filter(|r| r.label.is_none()).map(|r| (r.row_index, &r.note)).collect();
                serde_json::json!({"run": id, "backend": backend, "summary": s, "sentence": s.sentence(), "skipped_rows": skipped})
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&serde_json::json!({"runs": runs, "agreement": agree}))?)?;
        return failures(&summaries);
    }
    for (id, backend, s, rows) in &summaries {
        if summaries.len() > 1 {
            writeln!(out, "── run {id}: {backend}")?;
        }
        writeln!(out, "{}", s.sentence())?;
        print_notes(&mut out, s, rows)?;
        print_evaluation(&mut out, s, rows)?;
    }
    if let Some(g) = agree {
        if g.rows > 0 {
            writeln!(
                out,
                "The two backends agree on {} of {} rows ({:.0}%).",
                g.agree,
                g.rows,
                100.0 * g.agree as f64 / g.rows as f64
            )?;
            for (i, text, la, lb) in g.differ.iter().take(10) {
                writeln!(out, "  row {}: {la} vs {lb}: {}", i + 1, ellipsis(text, 70))?;
            }
        }
    }
    failures(&summaries)
}

/// A run with rows the backend failed on is not a success: say how many and
/// why, and how to go on once the cause is fixed (a resume retries them).
fn failures(summaries: &[(i64, BackendSpec, Summary, Vec<crate::db::RunRow>)]) -> Result<()> {
    let failed: Vec<String> = summaries
        .iter()
        .filter_map(|(id, backend, s, rows)| {
            let what = s.failure_sentence(rows.len())?;
            Some(format!("run {id} ({backend}): {what}. Fix that, then continue with: duet classify --resume {id}"))
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("{}", failed.join("\n"))
    }
}

fn print_notes(out: &mut dyn Write, s: &Summary, rows: &[crate::db::RunRow]) -> Result<()> {
    if s.skipped > 0 {
        writeln!(out, "Skipped {} rows:", s.skipped)?;
        for r in rows.iter().filter(|r| r.label.is_none()).take(10) {
            writeln!(out, "  row {}: {}", r.row_index + 1, r.note)?;
        }
    }
    if s.flagged > 0 {
        writeln!(out, "Flagged {} rows:", s.flagged)?;
        for r in rows.iter().filter(|r| r.label.is_some() && !r.note.is_empty()).take(10) {
            writeln!(out, "  row {}: {}", r.row_index + 1, r.note)?;
        }
    }
    Ok(())
}

fn print_evaluation(out: &mut dyn Write, s: &Summary, rows: &[crate::db::RunRow]) -> Result<()> {
    let Some(e) = &s.evaluation else { return Ok(()) };
    writeln!(out, "Accuracy: {:.1}% on {} labeled rows", 100.0 * e.accuracy, e.rows)?;
    if e.unknown_gold > 0 {
        writeln!(out, "({} rows have a known label outside the label set and were left out)", e.unknown_gold)?;
    }
    writeln!(out, "{:<14} {:>9} {:>7} {:>7}", "label", "precision", "recall", "rows")?;
    for (l, p, r, n) in &e.per_label {
        writeln!(out, "{:<14} {:>8.1}% {:>6.1}% {:>7}", ellipsis(l, 14), 100.0 * p, 100.0 * r, n)?;
    }
    write!(out, "confusion (rows: true label, columns: predicted)\n{:<14}", "")?;
    for l in &s.labels {
        write!(out, " {:>10}", ellipsis(l, 10))?;
    }
    writeln!(out, " {:>10}", "other")?;
    for (l, row) in s.labels.iter().zip(&e.confusion) {
        write!(out, "{:<14}", ellipsis(l, 14))?;
        for c in row {
            write!(out, " {c:>10}")?;
        }
        writeln!(out)?;
    }
    if !e.mistakes.is_empty() {
        writeln!(out, "Mistakes ({}):", e.mistakes.len())?;
        for r in rows.iter().filter(|r| e.mistakes.contains(&r.row_index)).take(20) {
            writeln!(
                out,
                "  row {}: said {} ({:.0}%), expected {}: {}",
                r.row_index + 1,
                r.label.as_deref().unwrap_or("-"),
                100.0 * r.confidence.unwrap_or(0.0),
                r.gold.as_deref().unwrap_or("-"),
                ellipsis(&r.text, 60)
            )?;
        }
    }
    Ok(())
}

fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}
