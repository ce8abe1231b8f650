//! The embedding model against sentence-transformers' own vectors for the
//! same weights (tests/data/minilm_reference.json, made by
//! scripts/reference/make_embedding_golden.py): short and long texts, accents,
//! emoji, an empty string, and a text past the 256-token limit, embedded in
//! one batch so padding is exercised too.

use crate::common::{embedder, read_json};

#[test]
fn vectors_match_sentence_transformers() {
    let golden = read_json("minilm_reference.json").expect("tests/data/minilm_reference.json");
    let sentences: Vec<&str> =
        golden["sentences"].as_array().expect("sentences").iter().map(|s| s.as_str().expect("text")).collect();
    let e = embedder();
    let got = e.embed(&sentences, &mut |_| {}).expect("embedded");
    let mut worst = 1.0_f32;
    for (i, want) in golden["embeddings"].as_array().expect("embeddings").iter().enumerate() {
        let want: Vec<f32> = want.as_array().expect("vector").iter().map(|x| x.as_f64().expect("f") as f32).collect();
        assert_eq!(got[i].len(), want.len());
        let cosine = duet::embed::dot(&got[i], &want);
        assert!(cosine >= 0.999, "sentence {i} ({:?}): cosine {cosine}", sentences[i]);
        worst = worst.min(cosine);
        let norm: f32 = got[i].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");
        let tokens = golden["token_counts"][i].as_u64().expect("count") as usize;
        assert_eq!(e.count_tokens(sentences[i]), tokens, "sentence {i} is cut where sentence-transformers cuts it");
    }
    eprintln!("lowest cosine against sentence-transformers: {worst:.7}");
    // One text alone gives the vector it gets in a batch.
    let alone = e.embed_one(sentences[3]).expect("embedded");
    assert!(duet::embed::dot(&alone, &got[3]) > 0.99999);
}
