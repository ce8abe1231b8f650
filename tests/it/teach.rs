//! Teach: a classifier made from labeled rows with the real embedding model,
//! used by `duet classify`, kept, exported and imported, and every bad input
//! from the issue.

use crate::common::{duet, embedder, models_dir, stderr, stdout};
use duet::catalog::Catalog;
use duet::config::Paths;
use duet::progress::{Cancel, Silent};
use duet::store::Store;
use duet::tasks::classify::Classifier;
use duet::tasks::teach::{self, Base, Examples, SourceInfo, TaughtClassifier, TeachOptions};
use std::path::{Path, PathBuf};

fn asset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/data").join(name)
}

/// The first `n` rows of a `text,label` CSV as examples.
fn examples(name: &str, n: usize) -> Examples {
    let mut reader = csv::Reader::from_path(asset(name)).expect("csv");
    let rows: Vec<(String, String)> =
        reader.records().take(n).map(|r| r.expect("row")).map(|r| (r[0].to_string(), r[1].to_string())).collect();
    Examples::from_pairs(rows.iter().map(|(t, l)| (t.as_str(), l.as_str())))
}

/// Write the first `n` data rows of an asset to `to`.
fn head_of(name: &str, n: usize, to: &Path) -> PathBuf {
    let text = std::fs::read_to_string(asset(name)).expect("asset");
    std::fs::write(to, text.lines().take(n + 1).collect::<Vec<_>>().join("\n") + "\n").expect("write");
    to.to_path_buf()
}

fn embedder_dir() -> (duet::catalog::ModelEntry, PathBuf) {
    let catalog = Catalog::builtin().expect("catalog");
    let entry = catalog.default_embedder().expect("embedder").clone();
    embedder(); // fetched and verified once
    let dir = Store::new(Paths::resolve(None, Some(models_dir())), false)
        .ensure(&entry, &Silent, &Cancel::new())
        .expect("embedder is here");
    (entry, dir)
}

fn teach_lib(examples: &Examples, options: &TeachOptions) -> teach::Taught {
    let (entry, dir) = embedder_dir();
    let base = Base { entry: &entry, dir: &dir, embedder: embedder() };
    let source = SourceInfo { file_name: "x.csv".into(), text_column: "text".into(), label_column: "label".into() };
    teach::teach(&base, examples, &source, options, &Silent, &Cancel::new(), &mut |_| {}).expect("teaches")
}

fn accuracy(c: &mut TaughtClassifier, examples: &Examples) -> f64 {
    let texts: Vec<&str> = examples.texts.iter().map(String::as_str).collect();
    let verdicts = c.classify_batch(&texts).expect("classifies");
    let right = verdicts.iter().zip(&examples.targets).filter(|(v, &t)| v.label == examples.labels[t]).count();
    right as f64 / texts.len() as f64
}

#[test]
fn taught_on_product_sentences_it_labels_restaurant_reviews_it_never_saw() {
    let taught = teach_lib(&examples("product-reviews-uci.csv", 1000), &TeachOptions::new("products"));
    assert_eq!(taught.info.labels, ["negative", "positive"], "labels in the order the file has them");
    assert_eq!(taught.info.taught_rows + taught.info.held_out_rows, 1000);
    assert!(taught.info.held_out_accuracy >= 0.8, "held out: {}", taught.info.held_out_accuracy);
    let (entry, dir) = embedder_dir();
    let mut c = TaughtClassifier::new(taught.clone(), &entry, &dir).expect("loads");
    let restaurants = examples("restaurant-reviews-uci.csv", 300);
    let acc = accuracy(&mut c, &restaurants);
    assert!(acc >= 0.8, "another domain, never taught: {acc}");
    // The same data and seed give the same model; the round trip through the file changes nothing.
    let again = teach_lib(&examples("product-reviews-uci.csv", 1000), &TeachOptions::new("products"));
    assert_eq!(again.head, taught.head);
    let file = tempfile::tempdir().expect("tmp").path().join("products.safetensors");
    teach::write(&taught, &file).expect("writes");
    let back = teach::read(&file).expect("reads");
    assert_eq!(back, taught);
    let mut c2 = TaughtClassifier::new(back, &entry, &dir).expect("loads");
    let texts: Vec<&str> = restaurants.texts.iter().map(String::as_str).collect();
    assert_eq!(c2.classify_batch(&texts).expect("classifies"), c.classify_batch(&texts).expect("classifies"));
    // One at a time and in a batch agree.
    let one = c.classify(texts[0]).expect("classifies");
    assert_eq!(one.label, c.classify_batch(&texts[..5]).expect("classifies")[0].label);
}

#[test]
fn the_held_out_score_is_the_share_of_held_out_rows_the_head_gets_right() {
    let ex = examples("product-reviews-uci.csv", 200);
    let taught = teach_lib(&ex, &TeachOptions::new("small"));
    let split = teach::Split::new(&ex, 0.2, 42);
    let held: Vec<usize> = split.held_out.clone();
    assert_eq!(held.len(), taught.info.held_out_rows);
    let vectors =
        embedder().embed(&held.iter().map(|&i| ex.texts[i].as_str()).collect::<Vec<_>>(), &mut |_| {}).unwrap();
    let right = held
        .iter()
        .zip(&vectors)
        .filter(|(&i, v)| {
            let p = taught.head.probabilities(v);
            let best = (0..p.len()).fold(0, |b, k| if p[k] > p[b] { k } else { b });
            best == ex.targets[i]
        })
        .count();
    assert!((taught.info.held_out_accuracy as f64 - right as f64 / held.len() as f64).abs() < 1e-6);
    assert!(!taught.was_taught(&ex.texts[held[0]]), "held-out rows are not among the texts taught");
    assert!(taught.was_taught(&ex.texts[split.train[0]].to_uppercase()), "taught rows are known, whatever their case");
}

#[test]
fn fine_tuning_the_body_changes_its_weights_and_the_model_still_classifies() {
    let ex = examples("product-reviews-uci.csv", 120);
    let mut options = TeachOptions::new("tuned");
    options.fine_tune_body = true;
    options.body.pairs = 48;
    options.body.learning_rate = 5e-5;
    let taught = teach_lib(&ex, &options);
    assert!(taught.info.body_fine_tuned && taught.info.frozen_held_out_accuracy.is_some());
    let body = taught.body.as_ref().expect("a body");
    let (entry, dir) = embedder_dir();
    let base = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let name = "encoder.layer.0.attention.self.query.weight";
    let tuned = &body.iter().find(|(n, ..)| n == name).expect("the layer is in the body").2;
    let before: Vec<f32> = base[name].flatten_all().unwrap().to_vec1().unwrap();
    assert!(tuned.iter().zip(&before).any(|(a, b)| a != b), "the body learned");
    let words = &body.iter().find(|(n, ..)| n == "embeddings.word_embeddings.weight").expect("words").2;
    let words_before: Vec<f32> = base["embeddings.word_embeddings.weight"].flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(words, &words_before, "the word table is kept as it came");
    let file = tempfile::tempdir().expect("tmp").path().join("t.safetensors");
    teach::write(&taught, &file).expect("writes");
    let mut c = TaughtClassifier::new(teach::read(&file).expect("reads"), &entry, &dir).expect("loads the tuned body");
    assert!(accuracy(&mut c, &examples("restaurant-reviews-uci.csv", 100)) >= 0.7);
}

#[test]
fn duet_teach_then_classify_list_export_import_and_remove() {
    let home = tempfile::tempdir().expect("tmp");
    let train = head_of("product-reviews-uci.csv", 400, &home.path().join("products.csv"));
    let out = duet(&["teach", train.to_str().unwrap(), "--name", "phones"], home.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("Held-out accuracy") && said.contains("taught:phones"), "{said}");
    let list = stdout(&duet(&["teach", "list"], home.path(), &[]));
    assert!(list.contains("phones") && list.contains("negative, positive"), "{list}");

    let test = head_of("restaurant-reviews-uci.csv", 100, &home.path().join("restaurants.csv"));
    let first_csv = home.path().join("a.csv");
    let args = |model: &str, out: &Path| {
        vec![
            "classify".to_string(),
            test.display().to_string(),
            "--model".into(),
            format!("taught:{model}"),
            "--label-column".into(),
            "label".into(),
            "--out".into(),
            out.display().to_string(),
        ]
    };
    let run = |a: Vec<String>| duet(&a.iter().map(String::as_str).collect::<Vec<_>>(), home.path(), &[]);
    let classified = run(args("phones", &first_csv));
    assert!(classified.status.success(), "{}", stderr(&classified));
    let text = stdout(&classified);
    let accuracy: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Accuracy: ")?.split('%').next()?.parse().ok())
        .unwrap_or_else(|| panic!("an accuracy line: {text}"));
    assert!(accuracy >= 75.0, "{text}");

    let exported = home.path().join("phones.duet.safetensors");
    let e = duet(&["teach", "export", "phones", exported.to_str().unwrap()], home.path(), &[]);
    assert!(e.status.success(), "{}", stderr(&e));
    let other_home = tempfile::tempdir().expect("tmp");
    let i = duet(&["teach", "import", exported.to_str().unwrap(), "--name", "phones2"], other_home.path(), &[]);
    assert!(i.status.success(), "{}", stderr(&i));
    let twice = duet(&["teach", "import", exported.to_str().unwrap(), "--name", "phones2"], other_home.path(), &[]);
    assert!(stderr(&twice).contains("already here"), "an import never replaces a model: {}", stderr(&twice));
    // The imported model labels every row exactly as the original.
    let second_csv = home.path().join("b.csv");
    let a2 = args("phones2", &second_csv);
    let again = duet(&a2.iter().map(String::as_str).collect::<Vec<_>>(), other_home.path(), &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&first_csv).unwrap(), std::fs::read_to_string(&second_csv).unwrap());

    let rm = duet(&["teach", "rm", "phones"], home.path(), &[]);
    assert!(rm.status.success());
    let gone = run(args("phones", &first_csv));
    assert!(!gone.status.success());
    assert!(stderr(&gone).contains("no taught model 'phones'"), "{}", stderr(&gone));
}

#[test]
fn rows_that_were_taught_are_flagged_when_classified() {
    let home = tempfile::tempdir().expect("tmp");
    let train = head_of("product-reviews-uci.csv", 60, &home.path().join("few.csv"));
    assert!(duet(&["teach", train.to_str().unwrap()], home.path(), &[]).status.success());
    let out = duet(
        &["classify", train.to_str().unwrap(), "--model", "taught:few", "--label-column", "label"],
        home.path(),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("among the rows taught"), "{}", stdout(&out));
}

#[test]
fn bad_teaching_data_is_refused_or_reported_with_what_to_do() {
    let home = tempfile::tempdir().expect("tmp");
    let write = |name: &str, text: &str| {
        let p = home.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let teach_file = |file: &str, extra: &[&str]| {
        let mut args = vec!["teach", file];
        args.extend_from_slice(extra);
        duet(&args, home.path(), &[])
    };
    let one_label = write("one.csv", "text,label\ngreat,positive\nlovely,positive\n");
    let out = teach_file(&one_label, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at least two labels") && stderr(&out).contains("only 'positive'"),
        "{}",
        stderr(&out)
    );

    let lonely = write("lonely.csv", "text,label\ngreat,positive\nlovely,positive\nawful,negative\n");
    let out = teach_file(&lonely, &[]);
    assert!(stderr(&out).contains("'negative' has only one example"), "{}", stderr(&out));

    let no_column = teach_file(&lonely, &["--label-column", "stars"]);
    assert!(stderr(&no_column).contains("no column 'stars'") && stderr(&no_column).contains("text, label"));

    // A broken row and a repeated text: reported, and the rest is taught.
    let mut messy = String::from("text,label\n");
    for i in 0..12 {
        messy += &format!("really good thing number {i},positive\nreally bad thing number {i},negative\n");
    }
    messy += "really good thing number 3,positive\n\"broken quote,positive\n";
    let messy = write("messy.csv", &messy);
    let out = teach_file(&messy, &["--name", "messy"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("appear more than once"), "{said}");

    // Many rows are sampled down, and it says so.
    let many = teach_file(&messy, &["--name", "few", "--max-rows", "10"]);
    assert!(stdout(&many).contains("taught from a random 10"), "{}", stdout(&many));

    let bad_name = teach_file(&messy, &["--name", "../up"]);
    assert!(stderr(&bad_name).contains("cannot be a name"), "{}", stderr(&bad_name));

    // Imports: not a taught model; taught on another embedding model.
    let junk = write("junk.safetensors", "definitely not weights");
    let out = duet(&["teach", "import", &junk], home.path(), &[]);
    assert!(stderr(&out).contains("is not a taught model duet can read"), "{}", stderr(&out));
    let paths = Paths::resolve(Some(home.path().to_path_buf()), Some(models_dir()));
    let mut taught = teach::read(&teach::path_of(&paths.data_dir, "messy").unwrap()).expect("reads");
    taught.info.embedder = "bge-small-en".into();
    let foreign = home.path().join("foreign.safetensors");
    teach::write(&taught, &foreign).unwrap();
    let out = duet(&["teach", "import", foreign.to_str().unwrap(), "--name", "foreign"], home.path(), &[]);
    assert!(!out.status.success());
    let why = stderr(&out);
    assert!(why.contains("bge-small-en") && why.contains("minilm-l6-v2"), "{why}");
    assert!(!teach::path_of(&paths.data_dir, "foreign").unwrap().exists(), "nothing is stored");
}

#[test]
fn a_stopped_teaching_saves_nothing_and_says_so() {
    let (entry, dir) = embedder_dir();
    let base = Base { entry: &entry, dir: &dir, embedder: embedder() };
    let source = SourceInfo::default();
    let cancel = Cancel::new();
    let ex = examples("product-reviews-uci.csv", 200);
    // Stopped while the head learns (its second epoch).
    let stopped = teach::teach(&base, &ex, &source, &TeachOptions::new("stopped"), &Silent, &cancel, &mut |stage| {
        if let teach::Stage::Head { epoch, .. } = stage {
            if epoch.epoch == 2 {
                cancel.cancel();
            }
        }
    });
    match stopped {
        Err(e) => assert_eq!(e.to_string(), "teaching was stopped; nothing was saved"),
        Ok(_) => panic!("a stopped teaching returns no model"),
    }
}

#[test]
fn any_label_set_is_taught_not_only_positive_and_negative() {
    let food = [
        "The soup was cold",
        "Dumplings were delicious",
        "The pasta tasted bland",
        "Best pizza crust ever",
        "The curry was far too salty",
        "Fresh bread and great cheese",
        "The steak was overcooked",
        "Lovely crispy fries",
        "The salad was wilted",
        "Amazing chocolate cake",
        "The noodles were soggy",
        "Perfectly grilled fish",
    ];
    let service = [
        "The waiter ignored us",
        "Staff were friendly and quick",
        "We waited an hour to be seated",
        "Our server was very attentive",
        "Nobody refilled our water",
        "The host greeted us warmly",
        "The waitress was rude",
        "They remembered our names",
        "Service was painfully slow",
        "The manager fixed our order at once",
        "Nobody took our order for ages",
        "Very polite and helpful staff",
    ];
    let price = [
        "Far too expensive for the portions",
        "Great value for money",
        "The bill was shockingly high",
        "Cheap and cheerful",
        "Overpriced drinks",
        "Prices are very fair",
        "Twenty dollars for a sandwich is absurd",
        "Affordable lunch menu",
        "They charged us for tap water",
        "Reasonable prices for the area",
        "The wine markup is outrageous",
        "Cheaper than anywhere nearby",
    ];
    let mut pairs = Vec::new();
    for (texts, label) in [(&food, "food"), (&service, "service"), (&price, "price")] {
        pairs.extend(texts.iter().map(|t| (*t, label)));
    }
    let ex = Examples::from_pairs(pairs);
    let mut options = TeachOptions::new("topics");
    options.held_out = 0.25;
    let taught = teach_lib(&ex, &options);
    assert_eq!(taught.info.labels, ["food", "service", "price"]);
    assert!(taught.info.held_out_accuracy >= 0.75, "{:?}", taught.info);
    let (entry, dir) = embedder_dir();
    let mut c = TaughtClassifier::new(taught, &entry, &dir).expect("loads");
    let said = c
        .classify_batch(&["The lamb was tender and juicy", "Our waiter was wonderful", "Way too pricey"])
        .expect("classifies");
    let labels: Vec<&str> = said.iter().map(|v| v.label.as_str()).collect();
    assert_eq!(labels, ["food", "service", "price"]);
    assert!(said.iter().all(|v| v.scores.len() == 3 && (v.scores.iter().sum::<f64>() - 1.0).abs() < 1e-9));
}
