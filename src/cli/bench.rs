//! `duet bench`: speed and memory, llama-bench's way.

use super::*;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Threads for the math (default: one per physical core).
    #[arg(long, short = 't', default_value_t = 0)]
    pub threads: usize,
    /// Prompt-processing test size (0 skips it).
    #[arg(short = 'p', default_value_t = 512)]
    pub prompt: usize,
    /// Text-generation test size (0 skips it).
    #[arg(short = 'n', default_value_t = 128)]
    pub gen: usize,
    /// Repetitions of each test.
    #[arg(short = 'r', default_value_t = 5)]
    pub reps: usize,
    /// Skip timing the classification of 240 labeled reviews.
    #[arg(long)]
    pub no_classify: bool,
    #[arg(long)]
    pub json: bool,
    /// Measure Documents instead: index the files of DIR (in memory) and ask
    /// the questions of --questions by keywords, vectors and both.
    #[arg(long, value_name = "DIR", requires = "questions")]
    pub docs: Option<PathBuf>,
    /// JSONL: {"id", "question", "answer" (text the right passage contains), "split"}.
    #[arg(long, value_name = "FILE")]
    pub questions: Option<PathBuf>,
    /// Which questions: tune, holdout or all.
    #[arg(long, default_value = "holdout")]
    pub split: String,
    /// Also time vector search over this many synthetic passages.
    #[arg(long, default_value_t = 0)]
    pub docs_scale: usize,
    /// Measure arithmetic instead: exact answers to the questions of FILE
    /// (JSONL: question, answer, split) without tools and with them.
    #[arg(long, value_name = "FILE", conflicts_with = "docs")]
    pub arithmetic: Option<PathBuf>,
    /// Measure tool calls instead: the local model asked for a call to one of
    /// duet's tools under constrained decoding, for each prompt of FILE
    /// (JSONL: prompt, tool, split): valid calls, right tool, cost per token.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["docs", "arithmetic"])]
    pub tool_calls: Option<PathBuf>,
    /// Measure teaching instead: teach a classifier on this labeled CSV
    /// (text,label) and compare it with the prompted local model (and the
    /// cloud with --backend cloud:NAME) on --test.
    #[arg(long, value_name = "FILE", requires = "test", conflicts_with_all = ["docs", "arithmetic", "tool_calls"])]
    pub teach: Option<PathBuf>,
    /// The labeled CSV taught models are tested on (its odd rows are split "tune", even rows "holdout").
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// With --teach: skip fine-tuning the embedding model (minutes).
    #[arg(long)]
    pub no_fine_tune: bool,
    /// With --teach: pairs the body is fine-tuned on.
    #[arg(long, default_value_t = 2000)]
    pub pairs: usize,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Write the passages' texts (JSONL) as embedded, to time another embedder on the same input.
    #[arg(long, value_name = "FILE")]
    pub passages_out: Option<PathBuf>,
}

pub fn bench(store: &Store, catalog: &Catalog, a: BenchArgs) -> Result<()> {
    if let (Some(dir), Some(questions)) = (&a.docs, &a.questions) {
        return bench_docs(store, catalog, dir, questions, &a);
    }
    if let Some(file) = &a.tool_calls {
        return bench_tool_calls(store, catalog, file, &a);
    }
    if let Some(file) = &a.arithmetic {
        return bench_arithmetic(store, catalog, file, &a);
    }
    if let (Some(train), Some(test)) = (&a.teach, &a.test) {
        return bench_teach(store, catalog, train, test, &a);
    }
    if a.reps == 0 {
        bail!("-r must be at least 1");
    }
    let path = resolve_model(store, catalog, a.model.model.as_deref())?;
    let opts = crate::bench::BenchOptions {
        threads: a.threads,
        prompt_tokens: a.prompt,
        gen_tokens: a.gen,
        repetitions: a.reps,
        classify: !a.no_classify,
    };
    let show = std::io::stderr().is_terminal();
    let report = crate::bench::run(&path, &opts, &mut |what| {
        if show {
            eprint!("\r\x1b[2Kbench: {what}…");
        }
    })
    .map_err(anyhow::Error::msg)?;
    if show {
        eprint!("\r\x1b[2K");
    }
    print_report(a.json, &report, crate::bench::render)
}

fn bench_docs(store: &Store, catalog: &Catalog, dir: &Path, questions: &Path, a: &BenchArgs) -> Result<()> {
    let questions =
        crate::bench::read_split::<crate::bench::docs::Question>(questions, &a.split).map_err(anyhow::Error::msg)?;
    let bar = TerminalBar::new();
    let Some(embedder) = crate::tasks::docs::load_embedder(store, catalog, true, &bar, &Cancel::new())? else {
        bail!("the catalog has no embedding model");
    };
    let report =
        crate::bench::docs::run(dir, &questions, &a.split, &embedder, a.docs_scale, a.passages_out.as_deref(), &bar)
            .map_err(anyhow::Error::msg)?;
    print_report(a.json, &report, crate::bench::docs::render)
}

fn bench_arithmetic(store: &Store, catalog: &Catalog, file: &Path, a: &BenchArgs) -> Result<()> {
    let questions =
        crate::bench::read_split::<crate::bench::arithmetic::Question>(file, &a.split).map_err(anyhow::Error::msg)?;
    let backend: Box<dyn Backend> = if a.backend.backend.is_local() {
        let path = resolve_model(store, catalog, a.model.model.as_deref())?;
        Box::new(start_engine(&path, 4096, a.threads)?)
    } else {
        Box::new(cloud_backend(store.paths(), &a.backend)?)
    };
    let report = crate::bench::arithmetic::run(
        backend.as_ref(),
        &questions,
        &a.split,
        &mut counting("question", questions.len()),
    );
    done_counting();
    print_report(a.json, &report, crate::bench::arithmetic::render)
}

fn bench_tool_calls(store: &Store, catalog: &Catalog, file: &Path, a: &BenchArgs) -> Result<()> {
    let prompts =
        crate::bench::read_split::<crate::bench::toolcalls::Prompt>(file, &a.split).map_err(anyhow::Error::msg)?;
    let path = resolve_model(store, catalog, a.model.model.as_deref())?;
    let engine = start_engine(&path, 4096, a.threads)?;
    let tools = crate::tasks::tools::Toolbox::builtin(store.paths()).specs();
    let report =
        crate::bench::toolcalls::run(&engine, &tools, &prompts, &a.split, &mut counting("prompt", prompts.len()));
    done_counting();
    print_report(a.json, &report.map_err(anyhow::Error::msg)?, crate::bench::toolcalls::render)
}

fn bench_teach(store: &Store, catalog: &Catalog, train: &Path, test: &Path, a: &BenchArgs) -> Result<()> {
    use crate::bench::teach::{measure, render, split_rows, Report, Row};
    use crate::tasks::classify::{ClassifyConfig, CloudClassifier, LocalClassifier};
    use crate::tasks::teach::{self, Base, SourceInfo, TaughtClassifier, TeachOptions};
    let read = |path: &Path| -> Result<crate::tasks::teach::Examples> {
        let table = crate::tasks::input::Table::open(path)?;
        let text = table.headers[table.guess_text_column()].clone();
        Ok(teach::read_examples(table, &text, "label", usize::MAX, 0, &crate::progress::Silent)?)
    };
    let examples = read(train)?;
    examples.check()?;
    let tests = split_rows(&read(test)?, &a.split).map_err(anyhow::Error::msg)?;
    let bar = TerminalBar::new();
    let (entry, dir) = teach::embedding_base(store, catalog, &bar, &interrupt().0)?;
    let embedder = crate::embed::Embedder::load(&entry, &dir)?;
    let base = Base { entry: &entry, dir: &dir, embedder: &embedder };
    let source = SourceInfo { file_name: file_label(train), text_column: "text".into(), label_column: "label".into() };
    let here = "this computer".to_string();
    let n = tests.texts.len();
    // One measured row: (accuracy, failed, seconds) and the dollars the whole test cost.
    let row = |classifier: String, place: String, (accuracy, failed, secs): (f64, usize, f64), usd: f64, teach_s| Row {
        classifier,
        place,
        accuracy,
        rows: n,
        failed,
        reviews_per_s: n as f64 / secs.max(1e-9),
        usd_per_1000: usd * 1000.0 / n.max(1) as f64,
        teach_s,
    };
    let mut rows = Vec::new();
    for fine_tune in std::iter::once(false).chain((!a.no_fine_tune).then_some(true)) {
        let mut options = TeachOptions::new("bench");
        options.fine_tune_body = fine_tune;
        options.body.pairs = a.pairs.max(2);
        let taught = teach::teach(&base, &examples, &source, &options, &bar, &interrupt().0, &mut |_| {})?;
        let (seconds, held) = (taught.info.seconds, taught.info.held_out_accuracy);
        let mut c = TaughtClassifier::new(taught, &entry, &dir)?;
        let body = if fine_tune { "body fine-tuned" } else { "frozen body" };
        let name = format!("taught, {body} (held out {:.1}%)", 100.0 * held);
        let measured = measure(&mut c, &tests, &mut counting("review", n));
        rows.push(row(name, here.clone(), measured, 0.0, Some(seconds)));
    }
    if !a.no_classify {
        let path = resolve_model(store, catalog, a.model.model.as_deref())?;
        let engine = start_engine(&path, 4096, a.threads)?;
        let name = format!("prompted {}", engine.name);
        let mut c = LocalClassifier::new(engine, ClassifyConfig::new(tests.labels.clone()))?;
        let measured = measure(&mut c, &tests, &mut counting("review", n));
        rows.push(row(name, here.clone(), measured, 0.0, None));
    }
    if !a.backend.backend.is_local() {
        let cloud = cloud_backend(store.paths(), &a.backend)?;
        let (input, output) = store_prices(store, catalog, &a.backend)?;
        let (name, place) = (format!("prompted {}", cloud.label()), cloud.host());
        let mut c = CloudClassifier::new(cloud, ClassifyConfig::new(tests.labels.clone()), interrupt().0.clone())?;
        let measured = measure(&mut c, &tests, &mut counting("review", n));
        let usd = (c.usage.prompt_tokens as f64 * input + c.usage.completion_tokens as f64 * output) / 1e6;
        rows.push(row(name, place, measured, usd, None));
    }
    done_counting();
    let report = Report {
        train: file_label(train),
        test: file_label(test),
        split: a.split.clone(),
        taught_rows: examples.texts.len(),
        rows,
    };
    print_report(a.json, &report, render)
}

fn file_label(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Dollars per million (input, output) tokens of the cloud profile asked for.
fn store_prices(store: &Store, catalog: &Catalog, a: &BackendArgs) -> Result<(f64, f64)> {
    let settings = Settings::load(store.paths())?;
    let profile = find_profile(&settings, a.profile.as_deref().or(a.backend.profile()))?;
    Ok(catalog.prices_for(&profile))
}

/// "bench: question 3 of 25…" on a terminal, nothing when piped.
fn counting(noun: &'static str, n: usize) -> impl FnMut(usize) {
    let show = std::io::stderr().is_terminal();
    move |i| {
        if show {
            eprint!("\r\x1b[2Kbench: {noun} {} of {n}…", i + 1);
        }
    }
}

fn done_counting() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

/// JSON for machines, the report's own table for people.
fn print_report<R: serde::Serialize>(json: bool, report: &R, render: fn(&R) -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", render(report));
    }
    Ok(())
}
