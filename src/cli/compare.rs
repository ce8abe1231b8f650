//! `duet compare "prompt" --backend local --backend cloud:NAME`: both answers
//! and a table of time to first token, speed, tokens, cost and where the data went.

use super::{interrupt, resolve_model, start_engine};
use crate::catalog::Catalog;
use crate::db::Db;
use crate::engine::cloud::CloudOptions;
use crate::engine::{system_and_user, BackendSpec, GenRequest, SamplingParams};
use crate::store::Store;
use crate::tasks::compare::{Comparison, Contender};
use anyhow::{bail, Result};
use clap::Args;
use std::io::Write;

#[derive(Args, Debug)]
pub struct CompareArgs {
    pub prompt: String,
    /// `local`, `cloud` (the first profile) or `cloud:NAME`; repeat for each column.
    #[arg(long, default_values_t = vec![BackendSpec::Local, BackendSpec::Cloud { profile: None }])]
    pub backend: Vec<BackendSpec>,
    #[arg(long, short = 's')]
    pub system: Option<String>,
    #[arg(long, short = 't', default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    #[command(flatten)]
    pub model: super::ModelArg,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn compare(store: &Store, catalog: &Catalog, a: CompareArgs) -> Result<()> {
    if a.prompt.trim().is_empty() {
        bail!("the prompt is empty; write one, e.g. duet compare \"Explain RAG in one sentence\"");
    }
    let mut contenders = Vec::new();
    for spec in &a.backend {
        if spec.is_local() {
            let path = resolve_model(store, catalog, a.model.model.as_deref())?;
            let engine = start_engine(&path, 4096, 0)?;
            contenders.push(Contender { spec: spec.clone(), backend: Box::new(engine), prices: None });
            continue;
        }
        let profile = super::profile_for_backend(store, spec)?;
        let backend = crate::engine::cloud::backend_for(&profile, CloudOptions::default());
        let spec = BackendSpec::cloud(&profile.name);
        contenders.push(Contender { spec, backend: Box::new(backend), prices: Some(catalog.prices_for(&profile)) });
    }
    let system = a.system.clone().unwrap_or_default();
    let mut req = GenRequest::new(system_and_user(a.system.as_deref(), &a.prompt));
    req.sampling = SamplingParams { temperature: a.temperature, ..SamplingParams::default() };
    req.max_tokens = a.max_tokens;
    let mut cmp = Comparison::start(contenders, &a.prompt, &system, req);
    // Ctrl-C stops every column.
    let (cancel, watch) = (interrupt().0.clone(), cmp.cancel.clone());
    std::thread::spawn(move || loop {
        if cancel.is_cancelled() {
            watch.cancel();
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    });
    cmp.wait();
    let id = Db::open_default(store.paths()).and_then(|db| cmp.save(&db)).ok();
    let mut out = std::io::stdout().lock();
    if a.json {
        let v = serde_json::json!({"comparison": id, "prompt": a.prompt, "columns": cmp.columns});
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    for (i, c) in cmp.columns.iter().enumerate() {
        writeln!(out, "── {} {} ({})", (b'A' + i as u8) as char, c.label, c.stats.location_text())?;
        match &c.error {
            Some(e) => writeln!(out, "error: {e}")?,
            None => writeln!(out, "{}", c.text.trim())?,
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "{:<3} {:>9} {:>8} {:>8} {:>7} {:>7} {:>13}  where",
        "", "1st tok", "total", "tok/s", "prompt", "answer", "cost"
    )?;
    for (i, c) in cmp.columns.iter().enumerate() {
        let cost = c.stats.cost_short();
        writeln!(
            out,
            "{:<3} {:>7.0}ms {:>7.1}s {:>8.1} {:>7} {:>7} {:>13}  {}",
            (b'A' + i as u8) as char,
            c.stats.ttft_ms,
            c.stats.total_ms / 1e3,
            c.stats.tok_per_s,
            c.stats.prompt_tokens,
            c.stats.completion_tokens,
            cost,
            if c.error.is_some() { "failed".to_string() } else { c.stats.location_text() }
        )?;
    }
    if cmp.columns.iter().all(|c| c.error.is_some()) {
        bail!("every backend failed");
    }
    Ok(())
}
