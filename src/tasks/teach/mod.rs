//! Teach: a small classifier for the person's own labels, made from their own
//! labeled examples on their own computer (the course's "a smaller model for
//! the task", and SetFit's recipe).
//!
//! Every text becomes a sentence vector (`embed`), a logistic-regression head
//! learns the labels from the vectors (`head`, candle autograd), a part of the
//! rows is held out to decide when to stop and to say how good it is, and the
//! result is one file (`saved`). Optionally the embedding body itself is
//! fine-tuned first on same-label / other-label pairs (`body`, SetFit's
//! contrastive step), and the head is taught again on the new vectors.
//!
//! Nothing here touches windows or the terminal; progress and each epoch are
//! reported through callbacks, and `Cancel` stops it between steps.

mod body;
mod data;
mod head;
mod saved;

pub use body::BodyOptions;
pub use data::{read_examples, Examples, Rng, Split};
pub use head::{Epoch, Head, HeadOptions};
pub use saved::{check_name, folder, list, path_of, read, read_info, text_hash, write, Taught, TaughtInfo, FORMAT};

use crate::catalog::ModelEntry;
use crate::embed::Embedder;
use crate::progress::{Cancel, Progress};
use crate::tasks::classify::{Classifier, ClassifyError, Verdict};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows beyond this are sampled: teaching memory stays bounded.
pub const DEFAULT_MAX_ROWS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum TeachError {
    #[error("teaching needs at least two labels, and the label column has {}. Add rows with another label.", describe_labels(.0))]
    TooFewLabels(Vec<String>),
    #[error(
        "the label '{0}' has only one example; give at least two (eight or more teach much better), or remove that row"
    )]
    OneExample(String),
    #[error("'{0}' cannot be a name: use letters, digits, '-', '_' or '.' (up to 64), such as reviews-v2")]
    BadName(String),
    #[error("there is no taught model '{0}'. See them with: duet teach list")]
    NotFound(String),
    #[error("a taught model '{0}' is already here; import it under another name (duet teach import FILE --name NEW) or remove that one first")]
    Exists(String),
    #[error("{path} was taught on vectors of the embedding model {theirs}, and this duet embeds with {ours}: its head would read vectors it never saw. Teach it again here from the same data.")]
    OtherEmbedder { path: String, theirs: String, ours: String },
    #[error("{0} is not a taught model duet can read: {1}")]
    Unreadable(String, String),
    #[error("{0}: {1}")]
    Io(String, String),
    #[error("teaching was stopped; nothing was saved")]
    Cancelled,
    #[error("the training math failed: {0}")]
    Math(String),
    #[error("the catalog has no embedding model; teaching needs one (duet models list)")]
    NoEmbedder,
    #[error(transparent)]
    Input(#[from] crate::tasks::input::InputError),
    #[error(transparent)]
    Embed(#[from] crate::embed::EmbedError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<candle_core::Error> for TeachError {
    fn from(e: candle_core::Error) -> Self {
        TeachError::Math(e.to_string())
    }
}

fn describe_labels(labels: &[String]) -> String {
    match labels {
        [] => "none".into(),
        [one] => format!("only '{one}'"),
        _ => labels.join(", "),
    }
}

/// How to teach.
#[derive(Debug, Clone)]
pub struct TeachOptions {
    pub name: String,
    pub seed: u64,
    /// Share of each label's rows kept aside to stop on and to measure.
    pub held_out: f64,
    pub head: HeadOptions,
    /// Fine-tune the embedding body first (SetFit), then teach the head again.
    pub fine_tune_body: bool,
    pub body: BodyOptions,
}

impl TeachOptions {
    pub fn new(name: &str) -> TeachOptions {
        TeachOptions {
            name: name.to_string(),
            seed: 42,
            held_out: 0.2,
            head: HeadOptions::default(),
            fine_tune_body: false,
            body: BodyOptions::default(),
        }
    }
}

/// Where the rows came from (kept in the model's header).
#[derive(Debug, Clone, Default)]
pub struct SourceInfo {
    pub file_name: String,
    pub text_column: String,
    pub label_column: String,
}

/// What teaching reports while it works.
pub enum Stage<'a> {
    /// The head finished an epoch (`again` after the body was fine-tuned).
    Head { epoch: &'a Epoch, again: bool },
    /// The body fine-tune finished `done` of `total` pair batches, with this mean loss.
    Body { done: usize, total: usize, loss: f32 },
}

/// The embedding model a taught model builds on: the catalog entry, its
/// folder, and the loaded model.
pub struct Base<'a> {
    pub entry: &'a ModelEntry,
    pub dir: &'a Path,
    pub embedder: &'a Embedder,
}

/// Teach a classifier from `examples` (already checked rows of one file).
pub fn teach(
    base: &Base,
    examples: &Examples,
    source: &SourceInfo,
    options: &TeachOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
    on_stage: &mut dyn FnMut(Stage),
) -> Result<Taught, TeachError> {
    check_name(&options.name)?;
    examples.check()?;
    let started = std::time::Instant::now();
    let split = Split::new(examples, options.held_out, options.seed);
    let mut notes = examples.notes.clone();
    notes.extend(split.notes());
    let vectors = embed_all(base.embedder, &examples.texts, progress, cancel)?;
    let mut trained = teach_head(&vectors, examples, &split, options, progress, cancel, &mut |e| {
        on_stage(Stage::Head { epoch: e, again: false })
    })?;
    let (mut body, mut frozen) = (None, None);
    if options.fine_tune_body {
        let tensors = body::fine_tune(
            base,
            examples,
            &split,
            &options.body,
            options.seed,
            progress,
            cancel,
            &mut |done, total, loss| on_stage(Stage::Body { done, total, loss }),
        )?;
        let tuned = Embedder::load_with(base.entry, base.dir, body::by_name(&tensors))?;
        let vectors = embed_all(&tuned, &examples.texts, progress, cancel)?;
        frozen = Some(best(&trained).held_out_accuracy);
        trained = teach_head(&vectors, examples, &split, options, progress, cancel, &mut |e| {
            on_stage(Stage::Head { epoch: e, again: true })
        })?;
        body = Some(tensors);
    }
    let kept = best(&trained);
    let mut text_hashes: Vec<u64> = split.train.iter().map(|&i| text_hash(&examples.texts[i])).collect();
    text_hashes.sort_unstable();
    text_hashes.dedup();
    let info = TaughtInfo {
        format: FORMAT,
        name: options.name.clone(),
        labels: examples.labels.clone(),
        embedder: base.entry.id.clone(),
        dim: base.embedder.dim,
        body_fine_tuned: body.is_some(),
        source: source.file_name.clone(),
        text_column: source.text_column.clone(),
        label_column: source.label_column.clone(),
        data_sha256: examples.sha256(),
        taught_rows: split.train.len(),
        held_out_rows: split.held_out.len(),
        train_accuracy: kept.train_accuracy,
        held_out_accuracy: kept.held_out_accuracy,
        frozen_held_out_accuracy: frozen,
        curve: trained.curve.clone(),
        best_epoch: trained.best_epoch,
        seed: options.seed,
        seconds: started.elapsed().as_secs_f64(),
        created_at: crate::db::now_s(),
        notes,
        duet_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    Ok(Taught { info, head: trained.head, body, text_hashes })
}

/// The epoch whose weights were kept.
fn best(trained: &head::Trained) -> Epoch {
    trained.curve.get(trained.best_epoch.saturating_sub(1)).copied().unwrap_or(Epoch {
        epoch: 0,
        train_loss: 0.0,
        train_accuracy: 0.0,
        held_out_loss: 0.0,
        held_out_accuracy: 0.0,
    })
}

/// Train the head on the split's vectors.
fn teach_head(
    vectors: &[Vec<f32>],
    examples: &Examples,
    split: &Split,
    options: &TeachOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
    on_epoch: &mut dyn FnMut(&Epoch),
) -> Result<head::Trained, TeachError> {
    let pick = |idx: &[usize]| -> (Vec<Vec<f32>>, Vec<usize>) {
        (idx.iter().map(|&i| vectors[i].clone()).collect(), idx.iter().map(|&i| examples.targets[i]).collect())
    };
    let (tx, ty) = pick(&split.train);
    let (hx, hy) = pick(&split.held_out);
    progress.begin_items("teaching the head", options.head.max_epochs as u64, "epoch");
    let trained = head::train(
        &head::Set { vectors: &tx, targets: &ty },
        &head::Set { vectors: &hx, targets: &hy },
        examples.labels.len(),
        &options.head,
        options.seed,
        &mut |e| {
            progress.set_position(e.epoch as u64);
            on_epoch(e);
            !cancel.is_cancelled()
        },
    )?;
    progress.finish();
    if cancel.is_cancelled() {
        return Err(TeachError::Cancelled);
    }
    Ok(trained)
}

/// Every text's vector, in chunks so a stop is honoured within a second or two.
pub fn embed_all(
    embedder: &Embedder,
    texts: &[String],
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Vec<Vec<f32>>, TeachError> {
    progress.begin_items("embedding", texts.len() as u64, "text");
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(256) {
        if cancel.is_cancelled() {
            return Err(TeachError::Cancelled);
        }
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let base = out.len() as u64;
        out.extend(embedder.embed(&refs, &mut |n| progress.set_position(base + n as u64))?);
    }
    progress.finish();
    Ok(out)
}

/// How a run, `--model` and the Reviews screen name a taught model: `taught:NAME`.
pub fn model_spec(name: &str) -> String {
    format!("taught:{name}")
}

/// The NAME of a `taught:NAME` model spec, if that is what it is.
pub fn taught_name(model: Option<&str>) -> Option<&str> {
    model.and_then(|m| m.strip_prefix("taught:")).map(str::trim)
}

/// The labels of taught model `name` (its header only is read).
pub fn labels_of(data_dir: &Path, name: &str) -> Result<Vec<String>, TeachError> {
    read_info(&path_of(data_dir, name)?).map(|i| i.labels).map_err(|_| TeachError::NotFound(name.to_string()))
}

/// The catalog's embedding model and its folder, fetched first if it is missing.
pub fn embedding_base(
    store: &crate::store::Store,
    catalog: &crate::catalog::Catalog,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(ModelEntry, PathBuf), TeachError> {
    let entry = catalog.default_embedder().cloned().ok_or(TeachError::NoEmbedder)?;
    let dir = store.ensure(&entry, progress, cancel)?;
    Ok((entry, dir))
}

/// Taught model `name`, ready to classify (its embedding model fetched if need be).
pub fn load_classifier(
    store: &crate::store::Store,
    catalog: &crate::catalog::Catalog,
    name: &str,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<TaughtClassifier, TeachError> {
    let (entry, dir) = embedding_base(store, catalog, progress, cancel)?;
    TaughtClassifier::new(open(&store.paths().data_dir, name, &entry.id)?, &entry, &dir)
}

/// Which rows of a file to teach from.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSource {
    pub file: PathBuf,
    pub text_column: String,
    pub label_column: String,
}

/// Read `source`'s rows (up to `max_rows`, sampled past that), check them,
/// load the embedding model and teach: what `duet teach` and the Teach
/// screen both do before saving.
#[allow(clippy::too_many_arguments)]
pub fn teach_file(
    store: &crate::store::Store,
    catalog: &crate::catalog::Catalog,
    source: &FileSource,
    max_rows: usize,
    options: &TeachOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
    on_stage: &mut dyn FnMut(Stage),
) -> Result<Taught, TeachError> {
    let table = crate::tasks::input::Table::open(&source.file)?;
    let examples = read_examples(table, &source.text_column, &source.label_column, max_rows, options.seed, progress)?;
    examples.check()?;
    let (entry, dir) = embedding_base(store, catalog, progress, cancel)?;
    let embedder = Embedder::load(&entry, &dir)?;
    let info = SourceInfo {
        file_name: source.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        text_column: source.text_column.clone(),
        label_column: source.label_column.clone(),
    };
    let base = Base { entry: &entry, dir: &dir, embedder: &embedder };
    teach(&base, &examples, &info, options, progress, cancel, on_stage)
}

/// Load taught model `name` for use, refusing one taught on another embedder.
pub fn open(data_dir: &Path, name: &str, embedder_id: &str) -> Result<Taught, TeachError> {
    let path = path_of(data_dir, name)?;
    if !path.exists() {
        return Err(TeachError::NotFound(name.to_string()));
    }
    let taught = read(&path)?;
    same_embedder(&taught.info, &path, embedder_id)?;
    Ok(taught)
}

fn same_embedder(info: &TaughtInfo, path: &Path, ours: &str) -> Result<(), TeachError> {
    if info.embedder != ours {
        return Err(TeachError::OtherEmbedder {
            path: path.display().to_string(),
            theirs: info.embedder.clone(),
            ours: ours.to_string(),
        });
    }
    Ok(())
}

/// Delete taught model `name`.
pub fn remove(data_dir: &Path, name: &str) -> Result<PathBuf, TeachError> {
    let path = path_of(data_dir, name)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(TeachError::NotFound(name.to_string())),
        Err(e) => Err(TeachError::Io(path.display().to_string(), e.to_string())),
    }
}

/// Copy taught model `name` to `to` (one file: weights and header).
pub fn export(data_dir: &Path, name: &str, to: &Path) -> Result<(), TeachError> {
    let from = path_of(data_dir, name)?;
    if !from.exists() {
        return Err(TeachError::NotFound(name.to_string()));
    }
    std::fs::copy(&from, to).map(|_| ()).map_err(|e| TeachError::Io(to.display().to_string(), e.to_string()))
}

/// Check `file` (a whole read, not only its header) and store it as `name`
/// (or the name inside it). Refused when taught on another embedding model,
/// or when a model of that name is here already (it is never replaced).
pub fn import(data_dir: &Path, file: &Path, name: Option<&str>, embedder_id: &str) -> Result<TaughtInfo, TeachError> {
    let mut taught = read(file)?;
    same_embedder(&taught.info, file, embedder_id)?;
    if let Some(name) = name {
        taught.info.name = name.to_string();
    }
    let to = path_of(data_dir, &taught.info.name)?;
    if to.exists() {
        return Err(TeachError::Exists(taught.info.name));
    }
    write(&taught, &to)?;
    Ok(taught.info)
}

/// Reviews embedded at once when classifying: enough packs of them for every
/// core to stay busy to the end (256: 270 reviews/s here, 64: 240).
const BATCH: usize = 256;

/// The note on a row the model was taught: right answers there prove little.
pub const TAUGHT_NOTE: &str = "this text was among the rows taught, so its label proves little";

/// A taught model classifying reviews: embed, then the head's softmax.
pub struct TaughtClassifier {
    embedder: Arc<Embedder>,
    taught: Taught,
}

impl TaughtClassifier {
    /// `base` is the catalog's embedder; a fine-tuned body replaces its weights.
    pub fn new(taught: Taught, entry: &ModelEntry, dir: &Path) -> Result<Self, TeachError> {
        let embedder = match taught.body_tensors() {
            Some(body) => Embedder::load_with(entry, dir, body)?,
            None => Embedder::load(entry, dir)?,
        };
        Ok(TaughtClassifier { embedder: Arc::new(embedder), taught })
    }

    pub fn info(&self) -> &TaughtInfo {
        &self.taught.info
    }

    pub fn was_taught(&self, text: &str) -> bool {
        self.taught.was_taught(text)
    }

    fn verdict(&self, vector: &[f32]) -> Verdict {
        let scores = self.taught.head.probabilities(vector);
        let best = (0..scores.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
        Verdict { label: self.taught.info.labels[best].clone(), confidence: scores[best], scores, note: String::new() }
    }
}

impl Classifier for TaughtClassifier {
    fn backend_label(&self) -> String {
        format!("taught:{}", self.taught.info.name)
    }

    fn classify(&mut self, review: &str) -> Result<Verdict, ClassifyError> {
        self.classify_batch(&[review])?.pop().ok_or_else(|| ClassifyError::Taught("no vector came back".into()))
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    fn classify_batch(&mut self, reviews: &[&str]) -> Result<Vec<Verdict>, ClassifyError> {
        let vectors = self.embedder.embed(reviews, &mut |_| {}).map_err(|e| ClassifyError::Taught(e.to_string()))?;
        Ok(reviews
            .iter()
            .zip(&vectors)
            .map(|(text, v)| {
                let mut verdict = self.verdict(v);
                if self.was_taught(text) {
                    verdict.note = TAUGHT_NOTE.to_string();
                }
                verdict
            })
            .collect())
    }
}

/// A [`TaughtClassifier`] opened on first use: loading (and maybe fetching)
/// the embedding model belongs on the run's worker thread, not the window's.
pub struct LazyTaught {
    name: String,
    open: Option<Box<dyn FnOnce() -> Result<TaughtClassifier, TeachError> + Send>>,
    inner: Result<Option<TaughtClassifier>, String>,
}

impl LazyTaught {
    pub fn new(name: &str, open: impl FnOnce() -> Result<TaughtClassifier, TeachError> + Send + 'static) -> Self {
        LazyTaught { name: name.to_string(), open: Some(Box::new(open)), inner: Ok(None) }
    }

    fn get(&mut self) -> Result<&mut TaughtClassifier, ClassifyError> {
        if let Some(open) = self.open.take() {
            self.inner = open().map(Some).map_err(|e| e.to_string());
        }
        match &mut self.inner {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(ClassifyError::Taught("it was never opened".into())),
            Err(e) => Err(ClassifyError::Taught(e.clone())),
        }
    }
}

impl Classifier for LazyTaught {
    fn backend_label(&self) -> String {
        format!("taught:{}", self.name)
    }

    fn classify(&mut self, review: &str) -> Result<Verdict, ClassifyError> {
        self.get()?.classify(review)
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    fn classify_batch(&mut self, reviews: &[&str]) -> Result<Vec<Verdict>, ClassifyError> {
        self.get()?.classify_batch(reviews)
    }
}
