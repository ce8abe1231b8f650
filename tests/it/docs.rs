//! Documents on the real model and a real database: the sample handbook is
//! indexed, the parking question finds the parking passage first, and bad
//! files and empty indexes get a sentence that says what to do.

use crate::common::{default_model, duet, stderr, stdout};
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
