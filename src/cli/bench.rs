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
