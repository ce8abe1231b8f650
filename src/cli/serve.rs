//! `duet serve`: the local model behind OpenAI's HTTP API.

use super::*;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer TOKEN` (needed for any host but loopback).
    #[arg(long, env = "DUET_SERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub model: ModelArg,
    /// Requests that may wait while one is answered; more get 503 at once.
    #[arg(long, default_value_t = 4)]
    pub queue: usize,
    #[arg(long, default_value_t = 4096)]
    pub context: usize,
    /// A web page allowed to call the server from a browser, e.g. http://localhost:3000 (repeatable);
    /// requests from any other page are refused.
    #[arg(long = "allow-origin")]
    pub allow_origins: Vec<String>,
    /// Longest one answer may take, in seconds; then it ends with finish_reason "length".
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
}

pub fn serve(store: &Store, catalog: &Catalog, a: ServeArgs) -> Result<()> {
    let path = resolve_model(store, catalog, a.model.model.as_deref())?;
    let model_id = match a.model.model.as_deref() {
        Some(m) if catalog.get(m).is_ok() => m.to_string(),
        Some(_) => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        None => catalog.default_model().id.clone(),
    };
    let engine = start_engine(&path, a.context, 0)?;
    let cfg = crate::server::ServerConfig {
        host: a.host.clone(),
        port: a.port,
        token: a.token.as_deref().map(crate::secret::Secret::new),
        model_id: model_id.clone(),
        queue: a.queue,
        allow_origins: a.allow_origins.clone(),
        max_request_seconds: a.max_seconds,
        ..Default::default()
    };
    let auth = cfg.token.is_some();
    let handle = crate::server::start(engine, cfg)?;
    eprintln!(
        "duet serve: {model_id} on http://{}/v1 ({}). Ctrl-C stops.",
        handle.addr,
        if auth { "token required" } else { "no token; loopback only" }
    );
    crate::runtime().block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    eprintln!("stopping: finishing answers in flight…");
    handle.shutdown();
    Ok(())
}
