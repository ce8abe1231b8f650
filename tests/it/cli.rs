//! The command line as a person uses it: chat over standard input, the model list.

use crate::common::{default_model, duet, stderr, stdout};

#[test]
fn chat_answers_resets_and_takes_a_system_prompt() {
    default_model();
    let home = tempfile::tempdir().expect("tempdir");
    let out = crate::common::duet_typing(
        &["chat", "--temperature", "0", "--max-tokens", "24"],
        home.path(),
        b"What is the capital of France?\n/reset\n/system You are a pirate.\nHello!\n",
    );
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{e}");
    assert!(o.contains("Paris"), "{o}");
    assert!(e.contains("nothing leaves it"), "the chat must say the data stays here: {e}");
    assert!(e.contains("(conversation cleared)") && e.contains("(system prompt set"), "{e}");
    assert_eq!(e.matches("tokens ·").count(), 2, "one stats line per answer: {e}");
}

#[test]
fn models_list_shows_the_default_as_verified_and_path_points_at_it() {
    let model = default_model();
    let home = tempfile::tempdir().expect("tempdir");
    let out = duet(&["models", "list"], home.path(), &[]);
    let o = stdout(&out);
    let line = o.lines().find(|l| l.starts_with("smollm2-135m*")).expect("default model listed first with a star");
    assert!(line.contains("98.4 MB") && line.contains("verified"), "{line}");
    assert!(o.contains("qwen2.5-0.5b") && o.contains("phi3.5-mini"));
    let out = duet(&["models", "path"], home.path(), &[]);
    assert_eq!(stdout(&out).trim(), model.display().to_string());
    let out = duet(&["models", "rm", "gpt-9"], home.path(), &[]);
    assert!(!out.status.success() && stderr(&out).contains("no model called 'gpt-9'"), "{}", stderr(&out));
}

#[test]
fn bench_names_the_machine_and_reports_both_tests() {
    default_model();
    let home = tempfile::tempdir().expect("tempdir");
    let out = duet(&["bench", "-p", "16", "-n", "4", "-r", "2", "--json"], home.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("bench --json prints JSON");
    assert!(r["threads"].as_u64().is_some_and(|t| t >= 1));
    assert!(!r["cpu"].as_str().unwrap_or("").is_empty());
    let names: Vec<&str> = r["tests"].as_array().expect("tests").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["pp16", "tg4"]);
    assert!(r["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .all(|t| t["samples"].as_array().is_some_and(|s| s.len() == 2)));
    assert!(r["peak_rss_bytes"].as_u64().is_some_and(|b| b > 50_000_000), "peak RSS covers at least the weights");
    assert!(r["reviews_per_s"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    // The default model's accuracy on duet's labeled reviews (89.2% when measured): a
    // change to the engine, the prompt or the calibration that makes it worse shows here.
    assert!(r["review_accuracy"].as_f64().is_some_and(|a| a >= 0.85), "{}", r["review_accuracy"]);
}

#[test]
fn models_info_says_what_a_file_is_and_which_engine_runs_it() {
    default_model();
    let home = tempfile::tempdir().expect("tempdir");
    let out = duet(&["models", "info"], home.path(), &[]);
    let o = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(o.contains("architecture: llama · 30 layers") && o.contains("210× Q4_1"), "{o}");
    assert!(o.contains("engine:       duet kernels"), "{o}");
    assert!(o.contains("gpt2 (49152 tokens)") && o.contains("template:     from the file"), "{o}");
}

#[test]
fn a_reader_that_leaves_early_is_not_an_error() {
    // `duet models list | head -1`: the pipe closes before duet writes.
    let home = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_duet"))
        .args(["models", "list"])
        .env("DUET_HOME", home.path())
        .env("DUET_MODELS", crate::common::models_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("ends");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Broken pipe"), "{}", stderr(&out));
}
