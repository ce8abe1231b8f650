//! The desktop app driven through egui_kittest: real app state, the real
//! default model, a real SQLite file, `duet serve` on 127.0.0.1 as the cloud.
//! Widgets are found by their labels, as a person finds them.

use crate::common::{default_model, models_dir};
use duet::config::{CloudProfile, Paths};
use duet::engine::local::{LoadOptions, LocalEngine};
use duet::engine::BackendSpec;
use duet::secret::Secret;
use duet::server::{start, ServerConfig, ServerHandle};
use duet::ui::services::{LocalState, Services};
use duet::ui::{DuetApp, Screen};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "sk-gui-test-token-4242";

fn app(home: &Path) -> DuetApp {
    default_model();
    let paths = Paths::resolve(Some(home.to_path_buf()), Some(models_dir()));
    DuetApp::new(Services::open(paths).expect("services open"))
}

fn harness<'a>(app: DuetApp) -> Harness<'a, DuetApp> {
    Harness::builder()
        .with_size(eframe::egui::Vec2::new(1200.0, 800.0))
        .with_accessibility_check(false)
        .build_ui_state(|ui, app: &mut DuetApp| app.ui(ui), app)
}

/// Step frames until `done` holds (background threads need real time).
fn wait_for(h: &mut Harness<'_, DuetApp>, what: &str, done: impl Fn(&DuetApp) -> bool) {
    let start = Instant::now();
    // Clicks and keys queued before this call are handled by the first step.
    h.step();
    while !done(h.state()) {
        assert!(start.elapsed() < Duration::from_secs(120), "timed out waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
}

fn model_ready(a: &DuetApp) -> bool {
    matches!(a.services.local, LocalState::Ready(_))
}

/// `duet serve` with a token, as the "cloud".
fn cloud_server() -> ServerHandle {
    let engine = LocalEngine::start(&default_model(), LoadOptions::default()).expect("loads");
    start(engine, ServerConfig { port: 0, token: Some(Secret::new(TOKEN)), ..Default::default() }).expect("serves")
}

fn add_profile(a: &mut DuetApp, name: &str, server: &ServerHandle, key: &str) {
    a.services.settings.cloud.push(CloudProfile {
        name: name.into(),
        base_url: format!("http://{}/v1", server.addr),
        model: "smollm2-135m".into(),
        key_env: Some("DUET_TEST_UNSET_KEY_VAR".into()),
        key: Some(key.into()),
        usd_per_m_input: 1.0,
        usd_per_m_output: 2.0,
    });
}

/// At least one widget shows `text` (several may: a label and its text run).
fn shown(h: &Harness<'_, DuetApp>, text: &str) {
    shown_in(h, text);
}

fn shown_in<S>(h: &Harness<'_, S>, text: &str) {
    assert!(h.query_all_by_label_contains(text).next().is_some(), "nothing on screen says {text:?}");
}

fn type_into(h: &mut Harness<'_, DuetApp>, hint: &str, text: &str) {
    h.get_by_label(hint).click();
    h.step();
    h.get_by_label(hint).type_text(text);
    h.step();
}

#[test]
fn a_message_streams_an_answer_from_the_local_model_and_survives_a_restart() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut h = harness(app(home.path()));
    wait_for(&mut h, "the model to load", model_ready);
    type_into(&mut h, "Message", "What is the capital of France?");
    h.get_by_label("Send").click();
    h.step();
    assert!(h.state().chat.is_streaming() || !h.state().chat.session.messages.is_empty(), "sending started an answer");
    wait_for(&mut h, "the answer", |a| !a.chat.is_streaming());
    let msgs = &h.state().chat.session.messages;
    assert_eq!(msgs.len(), 2, "{:?}", h.state().chat.error);
    assert!(msgs[1].content.contains("Paris"), "{}", msgs[1].content);
    // The badge and the metrics are on screen.
    shown(&h, "on this computer");
    shown(&h, "tok/s");

    // A new app on the same database shows the same conversation.
    drop(h);
    let mut h = harness(app(home.path()));
    h.step();
    assert_eq!(h.state().chat.session.messages.len(), 2);
    shown(&h, "What is the capital of France?");
    shown(&h, "Paris");
}

#[test]
fn stop_cancels_a_long_answer() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut a = app(home.path());
    a.chat.session.conv.max_tokens = 2000;
    a.chat.session.conv.temperature = 0.8;
    let mut h = harness(a);
    wait_for(&mut h, "the model to load", model_ready);
    type_into(&mut h, "Message", "Write a very long story about a dragon, with many chapters.");
    h.get_by_label("Send").click();
    wait_for(&mut h, "some text", |a| a.chat.streaming_text().is_some_and(|t| t.len() > 20));
    h.get_by_label("Stop").click();
    wait_for(&mut h, "the stop", |a| !a.chat.is_streaming());
    let m = h.state().chat.session.messages.last().expect("the partial answer is kept");
    assert_eq!(m.role, "assistant");
    let metrics = m.metrics.as_ref().expect("metrics");
    assert!(metrics.stopped, "marked as stopped");
    assert!(metrics.completion_tokens < 2000);
    shown(&h, "stopped");
}

#[test]
fn switching_to_a_cloud_profile_changes_the_badge_and_a_bad_key_says_what_to_do() {
    let server = cloud_server();
    let home = tempfile::tempdir().expect("tempdir");
    let mut a = app(home.path());
    add_profile(&mut a, "lab", &server, TOKEN);
    add_profile(&mut a, "wrongkey", &server, "sk-not-the-right-one");
    let mut h = harness(a);
    wait_for(&mut h, "the model to load", model_ready);
    type_into(&mut h, "Message", "Say hello.");
    h.get_by_label("Send").click();
    wait_for(&mut h, "the local answer", |a| !a.chat.is_streaming());

    // Switch mid-conversation: the history stays, the next answer says where it ran.
    h.state_mut().set_chat_backend("cloud:lab");
    h.step();
    shown(&h, "sent to 127.0.0.1");
    type_into(&mut h, "Message", "And goodbye?");
    h.get_by_label("Send").click();
    wait_for(&mut h, "the cloud answer", |a| !a.chat.is_streaming());
    let msgs = h.state().chat.session.messages.clone();
    assert_eq!(msgs.len(), 4, "{:?}", h.state().chat.error);
    assert_eq!(msgs[1].location.to_string(), "on this computer");
    assert!(msgs[3].location.to_string().starts_with("sent to 127.0.0.1"), "{}", msgs[3].location);
    assert!(msgs[3].metrics.as_ref().and_then(|m| m.cost_usd).is_some_and(|c| c > 0.0), "cloud answers have a cost");

    h.state_mut().set_chat_backend("cloud:wrongkey");
    type_into(&mut h, "Message", "Hello?");
    h.get_by_label("Send").click();
    wait_for(&mut h, "the refusal", |a| !a.chat.is_streaming());
    let err = h.state().chat.error.clone().expect("an error is shown");
    assert!(err.contains("401") && err.contains("key"), "{err}");
    assert!(!err.contains("sk-not-the-right-one"), "the key never appears: {err}");
    shown(&h, "rejected");
    // The failed question stays, with a Retry that answers it once the cause is fixed.
    assert_eq!(h.state().chat.session.messages.last().map(|m| m.content.as_str()), Some("Hello?"));
    h.state_mut().set_chat_backend("cloud:lab");
    h.step();
    h.get_by_label("Retry").click();
    wait_for(&mut h, "the retried answer", |a| !a.chat.is_streaming() && a.chat.session.messages.len() == 6);
    assert_eq!(h.state().chat.error, None);
    server.shutdown();
}

#[test]
fn the_models_screen_lists_the_catalog() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut h = harness(app(home.path()));
    h.get_by_label("Models").click();
    h.step();
    assert_eq!(h.state().screen, Screen::Models);
    for name in ["SmolLM2 135M Instruct (default)", "Gemma 3 270M", "Phi-3.5 mini Instruct"] {
        h.get_by_label(name);
    }
    wait_for(&mut h, "the model to load", model_ready);
    shown(&h, "verified");
}

/// At the window's default size (1100×720) every button of a row is on
/// screen, and a long error under a model wraps there instead of pushing
/// the columns after it off the screen.
#[test]
fn a_long_download_error_wraps_and_every_button_stays_on_screen() {
    let home = tempfile::tempdir().expect("tempdir");
    let width = 1100.0;
    let mut h = Harness::builder()
        .with_size(eframe::egui::Vec2::new(width, 720.0))
        .with_accessibility_check(false)
        .build_ui_state(|ui, app: &mut DuetApp| app.ui(ui), app(home.path()));
    h.get_by_label("Models").click();
    h.step();
    wait_for(&mut h, "the model to load", model_ready);
    let error = "could not fetch gemma-3-270m-q4_k_m.gguf. Tried: the Hugging Face hub (connection refused); \
                 the Python package index (pip could not reach it). Get it from https://huggingface.co/x/y and save it \
                 as /home/someone/.local/share/duet/models/gemma3-270m/gemma-3-270m-q4_k_m.gguf";
    h.state_mut().models.outcomes.insert("gemma3-270m".into(), error.into());
    h.run_steps(3);
    let mut buttons = 0;
    for label in ["Delete…", "Set as default", "Download"] {
        for b in h.get_all_by_label(label) {
            assert!(
                b.rect().max.x <= width,
                "a {label} button ends at x = {}, past the window's {width}",
                b.rect().max.x
            );
            buttons += 1;
        }
    }
    assert!(buttons >= 3, "the rows' buttons are there ({buttons})");
}

#[test]
fn the_reviews_example_is_classified_counted_and_charted() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut h = harness(app(home.path()));
    h.get_by_label("Reviews").click();
    h.step();
    wait_for(&mut h, "the model to load", model_ready);
    h.get_by_label("Try the example").click();
    h.step();
    h.get_by_label("Classify").click();
    h.step();
    wait_for(&mut h, "the run", |a| !a.reviews.is_running());
    let s = h.state().reviews.summary.clone().expect("a summary");
    assert_eq!(s.counts.iter().map(|(_, c)| c).sum::<usize>(), 5, "every review is labeled");
    shown(&h, &s.sentence());
    shown(&h, "The mochi is excellent!");
    // The chart's bars carry the labels.
    shown(&h, "positive");
    // How the run went is this screen's news: not shown on the others.
    h.step();
    let status = h.state().reviews.status.clone().expect("the run's speed is shown");
    assert!(status.starts_with("5 reviews in"), "{status}");
    shown(&h, &status);
    h.get_by_label("Settings").click();
    h.run_steps(2);
    assert!(h.query_by_label_contains("reviews in").is_none(), "the Reviews status line shows on Settings");
}

#[test]
fn compare_fills_both_columns_and_keeps_the_verdict() {
    let server = cloud_server();
    let home = tempfile::tempdir().expect("tempdir");
    let mut a = app(home.path());
    add_profile(&mut a, "lab", &server, TOKEN);
    a.compare.selected = vec![BackendSpec::Local, BackendSpec::cloud("lab")];
    let mut h = harness(a);
    h.get_by_label("Compare").click();
    h.step();
    wait_for(&mut h, "the model to load", model_ready);
    type_into(&mut h, "Prompt", "Name a fruit.");
    h.get_by_label("Run comparison").click();
    wait_for(&mut h, "both answers", |a| a.compare.saved_id.is_some());
    shown(&h, "stayed on this computer");
    h.get_by_label_contains("$0 (free)");
    h.get_by_label("Tie").click();
    h.step();
    assert_eq!(h.state().compare.verdict, Some(duet::tasks::compare::Verdict::Tie));
    let tallies = duet::tasks::compare::tallies(&h.state().services.db).expect("tallies");
    assert_eq!(tallies.len(), 1);
    assert_eq!(tallies[0].ties, 1);
    server.shutdown();
}

#[test]
fn code_blocks_in_answers_have_a_copy_button() {
    let mut cache = egui_commonmark::CommonMarkCache::default();
    // The copy icon (U+1F5D0) and the check mark shown once copied are in no egui
    // font; duet's icon font has them. kittest fails on a missing glyph (a box).
    let mut h = Harness::builder().with_accessibility_check(false).build_ui(move |ui| {
        duet::ui::fonts::install(ui.ctx());
        egui_commonmark::CommonMarkViewer::new().show(ui, &mut cache, "Run:\n\n```sh\ncargo run --release\n```\n");
    });
    h.run();
    let copy = h.get_by_label("\u{1F5D0}");
    copy.click();
    h.run();
    h.get_by_label("\u{2714}");
}

#[test]
fn a_model_that_fails_to_load_says_why() {
    let home = tempfile::tempdir().expect("tempdir");
    let bad = home.path().join("broken.gguf");
    std::fs::write(&bad, b"this is not a model").expect("write");
    let mut a = app(home.path());
    a.services.settings.app.default_model = bad.display().to_string();
    let mut h = harness(a);
    wait_for(&mut h, "the load to fail", |a| matches!(a.services.local, LocalState::Failed(_)));
    shown(&h, "The local model is not available");
    shown(&h, "GGUF");
    h.get_by_label("Models").click();
    h.step();
    shown(&h, "The model could not be loaded");
    // Classifying now says why, and leaves no empty run behind in "Earlier runs".
    h.get_by_label("Reviews").click();
    h.step();
    h.get_by_label("Try the example").click();
    h.step();
    h.get_by_label("Classify").click();
    h.step();
    h.step();
    shown(&h, "The local model could not be loaded");
    assert!(!h.state().reviews.is_running());
    assert!(h.state().services.db.runs().expect("runs").is_empty(), "a refused run is not kept");
}

#[test]
fn documents_add_the_sample_handbook_and_answer_from_its_parking_passage() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut h = harness(app(home.path()));
    h.get_by_label("Documents").click();
    h.step();
    wait_for(&mut h, "the model to load", model_ready);
    h.get_by_label("Add the sample handbook").click();
    wait_for(&mut h, "indexing", |a| !a.documents.is_busy() && !a.documents.outcomes.is_empty());
    shown(&h, "handbook.md");
    shown(&h, "passages");
    // The sample fills in the course's question.
    assert_eq!(h.state().documents.question, "Is there parking for employees?");
    h.get_by_label("Ask").click();
    wait_for(&mut h, "the answer", |a| !a.documents.is_busy());
    let answer = h.state().documents.answer.clone().expect("an answer");
    assert!(answer.sources[0].text.contains("park for free"), "{:?}", answer.sources[0]);
    shown(&h, "From your documents");
    shown(&h, "Employees may park for free");
    shown(&h, "Passages (on this computer)");
    shown(&h, "Parking and getting to work");
    // A citation opens its passage, file and page named.
    let last = answer.sources.len();
    let link = format!("[{last}] handbook.md, page 1");
    h.query_all_by_label_contains(&link).next().expect("a link per passage").click();
    h.step();
    h.step();
    assert_eq!(h.state().documents.opened, Some(last - 1));
    let passage = &answer.sources[last - 1];
    let words: String = passage.text.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    shown(&h, &words);
    shown(&h, &format!("{} · page 1 · characters {}–{}", passage.path, passage.start_char, passage.end_char));
}

#[test]
fn compare_without_a_cloud_profile_leads_to_settings() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut a = app(home.path());
    a.services.settings.cloud.clear();
    let mut h = harness(a);
    h.get_by_label("Compare").click();
    h.step();
    shown(&h, "No cloud profile yet");
    h.get_by_label("Open Settings").click();
    h.step();
    h.step();
    assert_eq!(h.state().screen, Screen::Settings);
}

/// Where no file dialog can be shown, a typed path brings the file in.
#[test]
fn reviews_import_a_typed_path() {
    let home = tempfile::tempdir().expect("tempdir");
    let csv = home.path().join("labeled.csv");
    std::fs::write(&csv, "id,review,label\n1,Great tacos!,positive\n").expect("write");
    let mut h = harness(app(home.path()));
    h.get_by_label("Reviews").click();
    h.step();
    type_into(&mut h, "Path", &csv.display().to_string());
    h.get_by_label("Open").click();
    h.step();
    h.step();
    assert_eq!(h.state().reviews.file.as_deref(), Some(csv.as_path()), "{:?}", h.state().reviews.error);
    assert_eq!(h.state().reviews.label_column, "label", "the label column is found");
    shown(&h, "labeled.csv");
}

/// A folder added on the Documents screen is followed while the app is open:
/// each file is reported once, and a file written later goes in on its own.
#[test]
fn documents_follow_a_folder_added_by_path() {
    let home = tempfile::tempdir().expect("tempdir");
    let folder = tempfile::tempdir().expect("tempdir");
    std::fs::write(folder.path().join("hours.md"), "# Hours\n\nThe bakery opens at seven.").expect("write");
    std::fs::write(folder.path().join("broken.txt"), b"\x7fELF\x02\x01\x01\x00\x00\x00").expect("write");
    let mut h = harness(app(home.path()));
    h.get_by_label("Documents").click();
    h.step();
    type_into(&mut h, "Path", &folder.path().display().to_string());
    h.get_by_label("Add").click();
    wait_for(&mut h, "indexing", |a| !a.documents.is_busy() && !a.documents.outcomes.is_empty());
    let outcomes = h.state().documents.outcomes.clone();
    assert_eq!(outcomes.iter().filter(|l| l.contains("hours.md")).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|l| l.contains("broken.txt")).count(), 1, "{outcomes:?}");
    shown(&h, "Stop following");
    std::fs::write(folder.path().join("parking.md"), "# Parking\n\nStaff park behind the mill.").expect("write");
    wait_for(&mut h, "the new file", |a| a.documents.outcomes.iter().any(|l| l.contains("indexed parking.md")));
    shown(&h, "parking.md");
}

#[test]
fn with_tools_on_chat_shows_the_calculator_and_an_action_waits_for_a_yes_in_a_dialog() {
    let (base, _provider) = crate::tools::action_provider();
    let home = tempfile::tempdir().expect("tempdir");
    let mut a = app(home.path());
    a.services.settings.cloud.push(CloudProfile {
        name: "asker".into(),
        base_url: base,
        model: "m".into(),
        key_env: Some("DUET_TEST_UNSET_KEY_VAR".into()),
        key: Some("unused".into()),
        usd_per_m_input: 0.0,
        usd_per_m_output: 0.0,
    });
    // An MCP server (made with the Python `mcp` package) in the settings folder's mcp.json.
    let site = crate::tools::python_package("mcp", "mcp-2", "mcp>=2,<3");
    let mcp = serde_json::json!({"mcpServers": {"py": {"command": "python3",
        "args": [crate::common::data("mcp_server.py")], "env": {"PYTHONPATH": site}}}});
    std::fs::write(home.path().join("mcp.json"), mcp.to_string()).expect("mcp.json");
    let mut h = harness(a);
    wait_for(&mut h, "the model to load", model_ready);
    h.get_by_label("Tools").click();
    wait_for(&mut h, "the MCP server", |a| a.chat.mcp_status().is_some_and(|s| s.starts_with("MCP:")));
    let status = h.state().chat.mcp_status().unwrap_or_default().to_string();
    assert!(status.contains("py (2 tools"), "{status}");
    shown(&h, "MCP: py");
    let offered = h.state().chat.session.toolbox.as_ref().map(|t| t.names()).unwrap_or_default();
    assert!(offered.iter().any(|n| n == "add") && offered.iter().any(|n| n == "calculator"), "{offered:?}");
    type_into(&mut h, "Message", "What is 1234 × 5678?");
    h.get_by_label("Send").click();
    wait_for(&mut h, "the answer", |a| !a.chat.is_streaming());
    let last = h.state().chat.session.messages.last().expect("an answer").clone();
    assert!(last.content.contains("7006652"), "{}", last.content);
    shown(&h, "= 7006652");

    // A model that proposes an action: a dialog says exactly what will happen.
    let notes = home.path().join("data/notes/plan.md");
    h.state_mut().set_chat_backend("cloud:asker");
    for (button, written) in [("Deny", false), ("Allow once", true)] {
        type_into(&mut h, "Message", "Save my plan");
        h.get_by_label("Send").click();
        wait_for(&mut h, "the question", |a| a.chat.session.pending_action().is_some());
        shown(&h, "Allow this action?");
        shown(&h, "buy eggs");
        assert!(!notes.exists(), "nothing is written before the answer");
        h.get_by_label(button).click();
        wait_for(&mut h, "the answer", |a| !a.chat.is_streaming());
        assert_eq!(notes.exists(), written, "after {button}");
        let answer = h.state().chat.session.messages.last().expect("answer").content.clone();
        assert!(answer.contains(if written { "Saved the note" } else { "declined" }), "{answer}");
    }
}

#[test]
fn teaching_from_the_example_data_shows_its_metrics_and_classifies_with_it() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut h = harness(app(home.path()));
    h.get_by_label("Reviews").click();
    h.step();
    h.get_by_label("Teach a classifier").click();
    h.step();
    h.get_by_label("Use the example data").click();
    h.step();
    shown_in(&h, "From product-reviews.csv (text: text, labels: label)");
    h.get_by_label("Teach").click();
    wait_for(&mut h, "teaching", |a| !a.reviews.teach.is_running());
    let info = match h.state().reviews.teach.result.clone() {
        Some(Ok(info)) => info,
        other => panic!("taught: {other:?}"),
    };
    assert_eq!(info.taught_rows + info.held_out_rows, 1000);
    h.step();
    shown(
        &h,
        &format!(
            "Held-out accuracy {:.1}% on {} rows it never learned from",
            100.0 * info.held_out_accuracy,
            info.held_out_rows
        ),
    );
    // The taught model is chosen under "Run on", with its own labels.
    assert_eq!(h.state().reviews.taught.as_deref(), Some("product-reviews"));
    h.get_by_label("Classify reviews").click();
    h.step();
    h.get_by_label_contains("Labels: negative, positive");
    h.get_by_label("Classify").click();
    wait_for(&mut h, "the run", |a| !a.reviews.is_running());
    let s = h.state().reviews.summary.clone().expect("a summary");
    let e = s.evaluation.expect("the example has labels");
    assert_eq!(e.rows, 1000);
    assert!(s.flagged >= info.taught_rows, "rows it was taught are flagged: {}", s.flagged);
}
