//! Documents on the real model and a real database: the sample handbook is
//! indexed, the parking question finds the parking passage first, and bad
//! files and empty indexes get a sentence that says what to do.

use crate::common::{default_model, duet, embedder, spawn_duet, stderr, stdout};
use duet::progress::{Cancel, Silent};
use duet::tasks::docs::{search, Ranking};
use std::path::Path;

fn handbook() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/examples/handbook.md").display().to_string()
}

#[test]
fn the_handbook_answers_the_parking_question_from_its_parking_passage() {
    default_model();
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();

    let o = duet(&["docs", "ask", "Is there parking for employees?"], h, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no documents are added yet") && stderr(&o).contains("duet docs add"),
        "{}",
        stderr(&o)
    );

    let o = duet(&["docs", "add", &handbook()], h, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("indexed") && stdout(&o).contains("passages"), "{}", stdout(&o));
    let o = duet(&["docs", "add", &handbook()], h, &[]);
    assert!(stdout(&o).contains("unchanged"), "an unchanged file is not indexed again: {}", stdout(&o));

    let o = duet(&["docs", "ask", "Is there parking for employees?", "--json", "--max-tokens", "40"], h, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let first = &v["sources"][0];
    assert!(first["text"].as_str().is_some_and(|t| t.contains("park for free")), "{first}");
    assert_eq!(first["heading"], "Parking and getting to work");
    assert!(first["path"].as_str().is_some_and(|p| p.ends_with("handbook.md")) && first["page"] == 1, "{first}");
    assert!(first["score"].as_f64().is_some_and(|s| s > 0.0));
    assert!(
        v["extract"][0][1].as_str().is_some_and(|s| s.starts_with("Employees may park for free")),
        "{}",
        v["extract"]
    );
    assert!(!v["answer"].as_str().unwrap_or("").trim().is_empty(), "the model answered: {v}");
    assert_eq!(v["where"], "on this computer");
    let given = v["sources"].as_array().map(Vec::len).unwrap_or(0);
    for n in v["cited"].as_array().into_iter().flatten() {
        assert!(n.as_u64().is_some_and(|n| n >= 1 && n as usize <= given), "cited {n} of {given}");
    }

    // A question the handbook has no words for: duet says so instead of guessing.
    let o = duet(&["docs", "ask", "xylophone quantum zebra?", "--json"], h, &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert!(v["answer"].as_str().is_some_and(|a| a.contains("don't mention")), "{v}");

    let o = duet(&["docs", "rm", &handbook()], h, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = duet(&["docs", "list"], h, &[]);
    assert!(stdout(&o).contains("No documents yet"), "{}", stdout(&o));
}

#[test]
fn bad_files_are_refused_with_a_reason_and_the_good_ones_still_go_in() {
    let home = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("tempdir");
    let dir = files.path();
    std::fs::write(dir.join("a-notes.md"), "# Notes\n\nThe bakery opens at seven.").expect("write");
    std::fs::write(dir.join("b-binary.txt"), b"\x7fELF\x02\x01\x01\x00\x00\x00\x00").expect("write");
    std::fs::write(dir.join("c-empty.txt"), "  \n").expect("write");
    std::fs::write(dir.join("d-latin1.txt"), b"Le caf\xe9 ouvre \xe0 sept heures.").expect("write");
    std::fs::write(dir.join("ignored.png"), b"\x89PNG").expect("write");
    let o = duet(&["docs", "add", &dir.display().to_string()], home.path(), &[]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(!o.status.success(), "two files failed: {out}{err}");
    assert!(err.contains("b-binary.txt looks like a binary file"), "{err}");
    assert!(err.contains("c-empty.txt has no text"), "{err}");
    assert!(err.contains("2 of 4 files could not be indexed"), "folders hold only the files duet reads: {err}");
    assert!(out.contains("a-notes.md: 1 page, 1 passage"), "{out}");
    assert!(out.contains("d-latin1.txt") && out.contains("Windows-1252"), "{out}");
    let o = duet(&["docs", "list"], home.path(), &[]);
    assert!(stdout(&o).contains("failed · ") && stdout(&o).contains("indexed"), "{}", stdout(&o));
    let o = duet(&["docs", "add", "/nonexistent/file.md"], home.path(), &[]);
    assert!(!o.status.success() && stderr(&o).contains("could not read /nonexistent/file.md"), "{}", stderr(&o));
}

fn handbook_db(dir: &Path) -> duet::db::Db {
    let mut db = duet::db::Db::open(&dir.join("docs.sqlite3")).expect("db opens");
    let files = duet::tasks::docs::files_under(&[handbook().into()]).expect("handbook is there");
    duet::tasks::docs::add_files(&mut db, &files, &Silent, &Cancel::new()).expect("indexed");
    db
}

#[test]
fn a_question_in_other_words_finds_the_passage_by_meaning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut db = handbook_db(dir.path());
    let e = embedder();
    duet::tasks::docs::embed_pending(&mut db, e, &Silent, &Cancel::new()).expect("embedded");
    // No word of the question is in the parking passage but "staff".
    let q = "Can staff leave their cars at the office?";
    let hits = search(&db, Some(e), q, 3, Ranking::Vectors).expect("search");
    assert_eq!(hits[0].heading, "Parking and getting to work", "{hits:#?}");
    let hits = search(&db, Some(e), q, 3, Ranking::Hybrid).expect("search");
    assert_eq!(hits[0].heading, "Parking and getting to work", "{hits:#?}");
    // The sentence shown as the answer is the parking one, not one that shares the word "leave".
    let best = duet::tasks::docs::sentences_by_meaning(e, q, &hits, 2).expect("sentences");
    assert!(best[0].1.starts_with("Employees may park for free"), "{best:?}");
    let hits = search(&db, Some(e), "How many days of holiday do I get?", 3, Ranking::Hybrid).expect("search");
    assert_eq!(hits[0].heading, "Holidays and leave", "{hits:#?}");
    // Nothing about it, in words or meaning: nothing comes back to answer from.
    assert!(search(&db, Some(e), "What is the capital of France?", 3, Ranking::Hybrid).expect("search").is_empty());
}

#[test]
fn switching_the_embedding_model_embeds_again_and_never_mixes_vectors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut db = handbook_db(dir.path());
    let e = embedder();
    // Vectors from another model (of another size, even) as a switch leaves them.
    let pending = db.chunks_without_vectors("old-model", 1000).expect("chunks");
    let old: Vec<(i64, Vec<u8>)> = pending.iter().map(|p| (p.chunk_id, duet::embed::to_bytes(&[1.0; 8]))).collect();
    db.store_vectors("old-model", &old).expect("stored");
    assert_eq!(db.count_chunks_without_vectors(&e.model_id).expect("count"), pending.len() as u64);
    let n = duet::tasks::docs::embed_pending(&mut db, e, &Silent, &Cancel::new()).expect("embedded");
    assert_eq!(n, pending.len() as u64, "every passage embedded again");
    assert_eq!(db.count_chunks_without_vectors("old-model").expect("count"), pending.len() as u64, "old ones gone");
    assert_eq!(db.count_chunks_without_vectors(&e.model_id).expect("count"), 0);
    let hits = search(&db, Some(e), "Is there parking for employees?", 1, Ranking::Vectors).expect("search");
    assert_eq!(hits[0].heading, "Parking and getting to work");
}

#[test]
fn a_killed_add_goes_on_where_it_stopped() {
    let home = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("tempdir");
    // About 120 passages: embedding them takes long enough to be interrupted.
    let para = "The night shift checks the ovens, logs the temperatures and cleans the proving room before leaving. ";
    let text: Vec<String> = (0..120).map(|i| format!("## Section {i}\n\n{}", para.repeat(9))).collect();
    let big = files.path().join("procedures.md");
    std::fs::write(&big, text.join("\n\n")).expect("write");
    let big = big.display().to_string();
    let db_path = home.path().join("data").join("duet.sqlite3");
    let mut child = spawn_duet(&["docs", "add", &big], home.path());
    let embedded = |db: &duet::db::Db| db.count_chunks_without_vectors("minilm-l6-v2").ok();
    let mut left_at_kill = None;
    for _ in 0..1200 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let Ok(db) = duet::db::Db::open(&db_path) else { continue };
        let total = db.documents().ok().and_then(|d| d.first().map(|d| d.chunks as u64)).unwrap_or(0);
        if let Some(left) = embedded(&db).filter(|&l| total > 0 && l < total) {
            child.kill().expect("killed");
            left_at_kill = Some(left);
            break;
        }
    }
    let _ = child.wait();
    let left_at_kill = left_at_kill.expect("the add was caught while embedding");
    let o = duet(&["docs", "add", &big], home.path(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("unchanged"), "the file is not read again: {out}");
    let again: u64 =
        out.lines().find_map(|l| l.strip_prefix("embedded  ")?.split(' ').next()?.parse().ok()).unwrap_or(0);
    assert!(again > 0 && again <= left_at_kill, "only what was left is embedded: {again} vs {left_at_kill} ({out})");
    let db = duet::db::Db::open(&db_path).expect("db");
    assert_eq!(embedded(&db), Some(0));
}

/// A small PDF whose pages hold these content streams (Helvetica as /F1).
fn pdf(pages: &[&str]) -> Vec<u8> {
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            (0..pages.len()).map(|i| format!("{} 0 R", 4 + 2 * i)).collect::<Vec<_>>().join(" "),
            pages.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    for (i, content) in pages.iter().enumerate() {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()));
    }
    let mut out = "%PDF-1.4\n".to_string();
    let mut offsets = Vec::new();
    for (n, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.push_str(&format!("{} 0 obj\n{o}\nendobj\n", n + 1));
    }
    let xref = out.len();
    out.push_str(&format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1));
    for o in offsets {
        out.push_str(&format!("{o:010} 00000 n \n"));
    }
    out.push_str(&format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1));
    out.into_bytes()
}

fn shown(text: &str) -> String {
    format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET")
}

/// A Word file with a heading and a paragraph.
fn docx(heading: &str, body: &str) -> Vec<u8> {
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>{heading}</w:t></w:r></w:p><w:p><w:r><w:t>{body}</w:t></w:r></w:p></w:body></w:document>"#
    );
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    z.start_file("word/document.xml", zip::write::SimpleFileOptions::default()).expect("zip entry");
    std::io::Write::write_all(&mut z, xml.as_bytes()).expect("zip write");
    z.finish().expect("zip finish");
    buf.into_inner()
}

#[test]
fn pdf_and_word_files_are_read_and_bad_pdfs_say_which_page() {
    let home = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("tempdir");
    let dir = files.path();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("write");
    write("a-policy.pdf", &pdf(&[&shown("Visitors sign in at the front desk."), &shown("Night staff lock the gate.")]));
    // Page 2 uses a font the page never defines: the PDF reader panics on it.
    write("b-damaged.pdf", &pdf(&[&shown("The loading bay opens at six."), "BT /F9 12 Tf 72 720 Td (x) Tj ET"]));
    write("c-scanned.pdf", &pdf(&["q 100 0 0 100 0 0 cm Q", "q Q"]));
    write("d-broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> garbage");
    write("e-rota.docx", &docx("Weekend rota", "Bakers on the weekend rota get Monday off."));
    let o = duet(&["docs", "add", &dir.display().to_string()], home.path(), &[]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(out.contains("a-policy.pdf: 2 pages, "), "{out}{err}");
    assert!(
        out.contains("b-damaged.pdf: 2 pages") && out.contains("couldn't read page 2 of b-damaged.pdf"),
        "the good page goes in, the bad one is named: {out}{err}"
    );
    assert!(err.contains("c-scanned.pdf has no text layer"), "{err}");
    assert!(err.contains("could not read") && err.contains("d-broken.pdf: it is not a PDF"), "{err}");
    assert!(out.contains("e-rota.docx: 1 page, 1 passage"), "{out}{err}");
    assert!(!err.contains("panicked"), "no panic text reaches the person: {err}");
    // Adding the same folder again: the failed files fail again with their
    // reason (not "unchanged"), the good ones are unchanged.
    let o = duet(&["docs", "add", &dir.display().to_string()], home.path(), &[]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(out.contains("unchanged") && out.contains("a-policy.pdf"), "{out}");
    assert!(err.contains("d-broken.pdf: it is not a PDF") && err.contains("c-scanned.pdf has no text layer"), "{err}");
    let o = duet(&["docs", "ask", "When do visitors sign in?", "--json", "--max-tokens", "1"], home.path(), &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let first = &v["sources"][0];
    assert!(first["text"].as_str().is_some_and(|t| t.contains("front desk")), "{v}");
    assert!(first["path"].as_str().is_some_and(|p| p.ends_with("a-policy.pdf")) && first["page"] == 1, "{first}");
    let o = duet(&["docs", "ask", "Who gets Monday off?", "--json", "--max-tokens", "1"], home.path(), &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["sources"][0]["heading"], "Weekend rota", "{v}");
}

#[test]
fn a_watched_folder_is_followed_new_changed_and_deleted_files() {
    let home = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("tempdir");
    let dir = files.path();
    std::fs::write(dir.join("hours.md"), "# Hours\n\nThe bakery opens at seven.").expect("write");
    let o = duet(&["docs", "add", "--watch", &dir.display().to_string()], home.path(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("watching") && stdout(&o).contains("hours.md: 1 page"), "{}", stdout(&o));

    let mut follower = spawn_duet(&["docs", "watch"], home.path());
    let db_path = home.path().join("data").join("duet.sqlite3");
    let wait_until = |what: &str, done: &dyn Fn(&duet::db::Db) -> bool| {
        for _ in 0..600 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if duet::db::Db::open(&db_path).is_ok_and(|db| done(&db)) {
                return;
            }
        }
        panic!("the watched folder never showed {what}");
    };
    let found = |db: &duet::db::Db, q: &str, file: &str| {
        db.search_chunks(q, 5).is_ok_and(|hits| hits.iter().any(|h| h.path.ends_with(file)))
    };
    // The follower indexes what changes from the moment it starts (it
    // watches before its first refresh, so nothing between is lost).
    std::fs::write(dir.join("hours.md"), "# Hours\n\nThe bakery opens at eight.").expect("write");
    std::fs::write(dir.join("parking.txt"), "Staff park behind the mill.").expect("write");
    wait_until("the changed file", &|db| found(db, "eight", "hours.md") && !found(db, "seven", "hours.md"));
    wait_until("the new file", &|db| found(db, "park", "parking.txt"));
    std::fs::remove_file(dir.join("parking.txt")).expect("remove");
    wait_until("the deleted file gone", &|db| {
        db.documents().is_ok_and(|d| d.len() == 1) && !found(db, "park", "parking.txt")
    });
    let _ = follower.kill();
    let _ = follower.wait();

    let o = duet(&["docs", "list"], home.path(), &[]);
    assert!(stdout(&o).contains("watching"), "{}", stdout(&o));
    let o = duet(&["docs", "unwatch", &dir.display().to_string()], home.path(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = duet(&["docs", "watch"], home.path(), &[]);
    assert!(!o.status.success() && stderr(&o).contains("duet docs add --watch FOLDER"), "{}", stderr(&o));
}

#[test]
fn a_file_deleted_while_the_folder_is_indexed_is_reported_and_the_rest_go_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("tempdir");
    std::fs::write(files.path().join("a.md"), "# A\n\nThe ovens are cleaned on Sundays.").expect("write");
    std::fs::write(files.path().join("b.md"), "# B\n\nThe van leaves at five.").expect("write");
    let listed = duet::tasks::docs::files_under(&[files.path().to_path_buf()]).expect("listed");
    // Gone between the folder being listed and the file being read.
    std::fs::remove_file(files.path().join("a.md")).expect("remove");
    let mut db = duet::db::Db::open(&dir.path().join("docs.sqlite3")).expect("db opens");
    let added = duet::tasks::docs::add_files(&mut db, &listed, &Silent, &Cancel::new()).expect("no database error");
    assert!(
        matches!(&added[0], duet::tasks::docs::Added::Failed { why, .. } if why.contains("could not read") && why.contains("a.md")),
        "{added:?}"
    );
    assert!(matches!(&added[1], duet::tasks::docs::Added::Indexed { chunks: 1, .. }), "{added:?}");
    assert_eq!(db.search_chunks("van", 5).expect("search").len(), 1);
}
