//! Tools end to end: the real model with the calculator and with constrained
//! tool calls, `duet serve` used by the official `openai` Python client, and
//! the confirmation gate in the terminal against a real HTTP provider on
//! 127.0.0.1 that asks for an action.

use crate::common::{default_model, duet, models_dir};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use duet::engine::local::{LoadOptions, LocalEngine};
use duet::engine::{Cancel, Constraint, GenRequest, Message, ToolSpec};
use duet::tasks::tools::Toolbox;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn with_tools_the_default_model_multiplies_exactly_and_shows_the_calculator() {
    let home = tempfile::tempdir().expect("tempdir");
    let o = duet(&["ask", "--tools", "What is 1234 × 5678?"], home.path(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("7006652"), "answer: {}", stdout(&o));
    assert!(stderr(&o).contains("calculator") && stderr(&o).contains("= 7006652"), "{}", stderr(&o));
}

/// Its own engine, so constrained runs do not wait behind other tests' answers.
fn engine() -> LocalEngine {
    static E: OnceLock<LocalEngine> = OnceLock::new();
    E.get_or_init(|| LocalEngine::start(&default_model(), LoadOptions::default()).expect("loads")).clone()
}

fn offered() -> Vec<ToolSpec> {
    let mut b = Toolbox::with_calculator();
    b.add(Box::new(duet::tasks::tools::actions::SaveNote { dir: std::env::temp_dir().join("duet-never-written") }));
    b.specs()
}

#[test]
fn a_required_call_from_the_default_model_parses_and_fits_the_schema() {
    for question in ["What is 1234 * 5678?", "Save a note titled groceries that says: eggs, milk."] {
        let mut req = GenRequest::new(vec![Message::user(question)]);
        req.tools = offered();
        req.constraint = Some(Constraint::ToolCall);
        req.max_tokens = 80;
        let c = engine().complete(req, Cancel::new()).expect("answers");
        assert!(c.broken_calls.is_empty(), "{question}: {:?}", c.broken_calls);
        assert_eq!(c.tool_calls.len(), 1, "{question}: {c:?}");
        let call = &c.tool_calls[0];
        let spec = offered().into_iter().find(|t| t.name == call.name).expect("a tool that was offered");
        for key in spec.parameters["required"].as_array().expect("required") {
            assert!(call.arguments[key.as_str().expect("name")].is_string(), "{question}: {call:?}");
        }
    }
}

#[test]
fn json_mode_gives_json_that_fits_the_schema() {
    let schema = json!({"type": "object", "properties": {"sentiment": {"enum": ["positive", "negative"]}},
                        "required": ["sentiment"], "additionalProperties": false});
    let mut req = GenRequest::new(vec![Message::user("Review: \"The soup was cold and the waiter rude.\" Sentiment?")]);
    req.constraint = Some(Constraint::Json { schema: Some(schema) });
    req.max_tokens = 40;
    let c = engine().complete(req, Cancel::new()).expect("answers");
    let v: Value = serde_json::from_str(&c.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", c.text));
    assert!(matches!(v["sentiment"].as_str(), Some("positive" | "negative")), "{v}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
}

/// A Python package from PyPI, installed once per machine beside the models
/// (into its own folder, for PYTHONPATH).
pub fn python_package(module: &str, folder: &str, requirement: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = models_dir().join("..").join("test-python").join(folder);
    if !dir.join(module).exists() {
        let ok = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&dir)
            .arg(requirement)
            .status()
            .expect("python3 runs");
        assert!(ok.success(), "pip could not install {requirement} into {}", dir.display());
    }
    dir
}

/// The official `openai` client.
fn openai_python() -> PathBuf {
    python_package("openai", "openai-2", "openai>=1.50,<3")
}

const CLIENT: &str = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="unused")
tools = [{"type": "function", "function": {"name": "calculator", "description": "Exact arithmetic.",
          "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}]
messages = [{"role": "user", "content": "What is 1234 * 5678?"}]
out = {}
r = client.chat.completions.create(model="smollm2-135m", messages=messages, tools=tools, tool_choice="required",
                                   temperature=0, max_tokens=60)
m = r.choices[0].message
out["finish"] = r.choices[0].finish_reason
out["calls"] = [{"id": c.id, "name": c.function.name, "arguments": json.loads(c.function.arguments)} for c in m.tool_calls]
# Streamed, the pieces join into the same call.
parts = {}
for chunk in client.chat.completions.create(model="smollm2-135m", messages=messages, tools=tools,
                                            tool_choice="required", temperature=0, max_tokens=60, stream=True):
    for d in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        p = parts.setdefault(d.index, {"name": "", "arguments": ""})
        p["name"] += d.function.name or ""
        p["arguments"] += d.function.arguments or ""
out["streamed"] = [{"name": p["name"], "arguments": json.loads(p["arguments"])} for p in parts.values()]
# The result goes back (and the calls in OpenAI's shape); the model answers in text.
messages.append(m.model_dump(exclude_none=True))
messages.append({"role": "tool", "tool_call_id": m.tool_calls[0].id, "content": "7006652"})
r = client.chat.completions.create(model="smollm2-135m", messages=messages, temperature=0, max_tokens=40)
out["answer"] = r.choices[0].message.content
out["answer_finish"] = r.choices[0].finish_reason
r = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Name a fruit as JSON."}],
                                   response_format={"type": "json_object"}, temperature=0, max_tokens=100)
out["json_text"] = r.choices[0].message.content
out["json_finish"] = r.choices[0].finish_reason
print(json.dumps(out))
"#;

#[test]
fn the_openai_python_client_gets_tool_calls_from_duet_serve() {
    let site = openai_python();
    let h = duet::server::start(engine(), duet::server::ServerConfig { port: 0, ..Default::default() })
        .expect("server starts");
    let o = Command::new("python3")
        .args(["-c", CLIENT, &format!("http://{}/v1", h.addr)])
        .env("PYTHONPATH", &site)
        .output()
        .expect("python3 runs");
    h.shutdown();
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_str(stdout(&o).trim()).expect("the script prints JSON");
    assert_eq!(out["finish"], "tool_calls", "{out}");
    assert_eq!(out["calls"][0]["name"], "calculator", "{out}");
    let arguments = out["calls"][0]["arguments"].as_object().expect("arguments");
    assert!(arguments["expression"].is_string(), "{out}");
    assert_eq!(arguments.len(), 1, "no properties beyond the schema's: {out}");
    assert_eq!(out["streamed"][0]["name"], out["calls"][0]["name"], "{out}");
    assert_eq!(out["streamed"][0]["arguments"], out["calls"][0]["arguments"], "{out}");
    assert_eq!(out["answer_finish"], "stop", "{out}");
    assert!(out["answer"].as_str().is_some_and(|a| !a.trim().is_empty()), "{out}");
    let json_text = out["json_text"].as_str().unwrap_or("");
    assert_eq!(out["json_finish"], "stop", "{out}");
    assert!(serde_json::from_str::<Value>(json_text).is_ok_and(|v| v.is_object()), "{out}");
}

/// A provider that asks for one action, then answers with whatever the tool
/// result said; it streams when asked to, as OpenAI does.
#[derive(Default)]
pub struct Asker {
    seen: Mutex<Vec<Value>>,
}

async fn ask_for_a_note(State(p): State<Arc<Asker>>, Json(body): Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse;
    p.seen.lock().unwrap_or_else(|e| e.into_inner()).push(body.clone());
    let last = body["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
    let call = json!({"id": "call_a", "type": "function",
                      "function": {"name": "save_note", "arguments": "{\"title\": \"plan\", \"text\": \"buy eggs\"}"}});
    let (message, finish) = if last["role"] == "tool" {
        (
            json!({"role": "assistant", "content": format!("Tool said: {}", last["content"].as_str().unwrap_or(""))}),
            "stop",
        )
    } else {
        (json!({"role": "assistant", "content": null, "tool_calls": [call]}), "tool_calls")
    };
    if body["stream"] == true {
        let mut delta = message.clone();
        if let Some(calls) = delta["tool_calls"].as_array_mut() {
            calls[0]["index"] = json!(0);
        }
        let chunks = [
            json!({"choices": [{"index": 0, "delta": delta, "finish_reason": null}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}),
        ];
        let sse: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect::<String>() + "data: [DONE]\n\n";
        return ([("content-type", "text/event-stream")], sse).into_response();
    }
    Json(json!({"choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}))
    .into_response()
}

/// Start the provider; its base URL and what it was sent.
pub fn action_provider() -> (String, Arc<Asker>) {
    let asker = Arc::new(Asker::default());
    let app = Router::new().route("/v1/chat/completions", post(ask_for_a_note)).with_state(asker.clone());
    let listener = duet::runtime().block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("addr"));
    duet::runtime().spawn(async move { axum::serve(listener, app).await });
    (base, asker)
}

fn ask_with_answer(home: &Path, base: &str, typed: &str) -> std::process::Output {
    std::fs::write(
        home.join("settings.toml"),
        format!("[[cloud]]\nname = \"lab\"\nbase_url = \"{base}\"\nmodel = \"m\"\nkey_env = \"NO_KEY_HERE\"\n"),
    )
    .expect("settings");
    crate::common::duet_typing(
        &["ask", "--tools", "--backend", "cloud:lab", "--no-stream", "Save my plan"],
        home,
        typed.as_bytes(),
    )
}

#[test]
fn an_action_waits_for_a_yes_in_the_terminal_and_a_no_writes_nothing() {
    let (base, asker) = action_provider();
    for (typed, written) in [("d\n", false), ("", false), ("o\n", true)] {
        let home = tempfile::tempdir().expect("tempdir");
        let o = ask_with_answer(home.path(), &base, typed);
        assert!(o.status.success(), "{}", stderr(&o));
        let note = home.path().join("data/notes/plan.md");
        assert!(
            stderr(&o).contains("buy eggs") && stderr(&o).contains("plan.md"),
            "the person saw what would happen: {}",
            stderr(&o)
        );
        assert_eq!(note.exists(), written, "typed {typed:?}");
        let told = stdout(&o);
        if written {
            assert_eq!(std::fs::read_to_string(&note).expect("note"), "buy eggs");
            assert!(told.contains("Saved the note"), "{told}");
        } else {
            assert!(told.contains("declined"), "the model heard the no: {told}");
        }
    }
    // The calls went out in OpenAI's shape, with the tools offered.
    let seen = asker.seen.lock().unwrap_or_else(|e| e.into_inner());
    assert!(seen[0]["tools"].as_array().is_some_and(|t| t.iter().any(|t| t["function"]["name"] == "save_note")));
    assert_eq!(seen[1]["messages"][1]["tool_calls"][0]["function"]["name"], "save_note");
    assert!(seen[1]["messages"][1]["tool_calls"][0]["function"]["arguments"].is_string());
}

/// The reference MCP servers from npm (no one here wrote them), installed once per machine.
fn mcp_servers_from_npm() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = models_dir().join("..").join("test-node").join("mcp-2026.8.31");
        let everything = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        if !everything.exists() {
            let ok = Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .args([
                    "@modelcontextprotocol/server-everything@2026.8.31",
                    "@modelcontextprotocol/server-filesystem@2026.8.31",
                ])
                .status()
                .expect("npm runs");
            assert!(ok.success(), "npm could not install the MCP servers into {}", dir.display());
        }
        dir.join("node_modules/@modelcontextprotocol")
    })
    .clone()
}

#[test]
fn real_mcp_servers_tools_are_listed_called_and_gated_and_broken_servers_are_named() {
    use duet::engine::ToolCall;
    use duet::tasks::tools::gate::{Gate, NoOneToAsk};
    use duet::tasks::tools::mcp::connect_all;
    let npm = mcp_servers_from_npm();
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("dir");
    let config = json!({"mcpServers": {
        "everything": {"command": "node", "args": [npm.join("server-everything/dist/index.js"), "stdio"]},
        "files": {"command": "node", "args": [npm.join("server-filesystem/dist/index.js"), &shared]},
        "missing": {"command": "no-such-mcp-server-here"},
        "crashes": {"command": "node", "args": ["-e", "process.exit(3)"]},
        "hangs": {"command": "node", "args": ["-e", "setInterval(() => {}, 1000)"]},
        "python": {"command": "python3", "args": [crate::common::data("mcp_server.py")],
                   "env": {"PYTHONPATH": python_package("mcp", "mcp-2", "mcp>=2,<3")}},
    }});
    let file = dir.path().join("mcp.json");
    std::fs::write(&file, config.to_string()).expect("mcp.json");
    let (servers, failed) = connect_all(&file, std::time::Duration::from_secs(3)).expect("the file reads");
    let why: Vec<String> = failed.iter().map(|e| e.to_string()).collect();
    assert_eq!(servers.len(), 3, "{why:?}");
    assert!(why.iter().any(|w| w.contains("'missing'") && w.contains("installed")), "{why:?}");
    assert!(why.iter().any(|w| w.contains("'crashes'") && w.contains("stopped")), "{why:?}");
    assert!(why.iter().any(|w| w.contains("'hangs'") && w.contains("did not answer within 3 s")), "{why:?}");

    let mut toolbox = Toolbox::with_calculator();
    for s in &servers {
        for t in s.tools() {
            toolbox.add(t);
        }
    }
    let names = toolbox.names();
    assert!(names.iter().any(|n| n == "echo") && names.iter().any(|n| n == "write_file"), "{names:?}");
    let echo = ToolCall { id: "c1".into(), name: "echo".into(), arguments: json!({"message": "hello from duet"}) };
    let out = toolbox.run(&echo, &Cancel::new());
    assert!(out.ok && out.text.contains("hello from duet"), "{out:?}");
    // The Python server (made with the `mcp` package) works the same way.
    let add = ToolCall { id: "c0".into(), name: "add".into(), arguments: json!({"a": 1234, "b": 8766}) };
    let out = toolbox.run(&add, &Cancel::new());
    assert!(out.ok && out.text.contains("10000"), "{out:?}");
    // Its tool whose description claims to authorise everything still waits for a yes.
    let shout = ToolCall { id: "c4".into(), name: "shout".into(), arguments: json!({"text": "hi"}) };
    assert!(!Gate::new().check(toolbox.get("shout").expect("listed"), &shout, &NoOneToAsk).may_run());
    // Every MCP tool waits for a yes; with no one to say it, nothing is written.
    let target = shared.join("note.txt");
    let write = ToolCall {
        id: "c2".into(),
        name: "write_file".into(),
        arguments: json!({"path": target.to_string_lossy(), "content": "written"}),
    };
    let tool = toolbox.get("write_file").expect("listed");
    assert!(!Gate::new().check(tool, &write, &NoOneToAsk).may_run());
    assert!(!target.exists());
    // With a yes it runs, and the server's own refusal (outside its folder) comes back as an error.
    assert!(toolbox.run(&write, &Cancel::new()).ok);
    assert_eq!(std::fs::read_to_string(&target).expect("written"), "written");
    let outside = ToolCall {
        id: "c3".into(),
        name: "write_file".into(),
        arguments: json!({"path": dir.path().join("escape.txt").to_string_lossy(), "content": "x"}),
    };
    assert!(!toolbox.run(&outside, &Cancel::new()).ok);
    assert!(!dir.path().join("escape.txt").exists());
}

/// A call the model starts on its own (no call required) is constrained from
/// its `<tool_call>` marker on: it parses and fits the schema.
#[test]
fn a_call_the_model_starts_by_itself_is_held_to_the_schema() {
    let first = duet::engine::ToolCall {
        id: "call_0".into(),
        name: "calculator".into(),
        arguments: json!({"expression": "1234 * 5678"}),
    };
    let messages = vec![
        Message::user("What is 1234 * 5678?"),
        Message { tool_calls: vec![first], ..Message::assistant("") },
        Message::tool_result("call_0", "1234 * 5678 = 7006652"),
        Message::user("And what is 99 * 99?"),
    ];
    let mut req = GenRequest::new(messages);
    req.tools = offered();
    req.max_tokens = 120;
    let c = engine().complete(req, Cancel::new()).expect("answers");
    // Shown a call in the history, the default model writes one itself (deterministic at temperature 0).
    assert_eq!(c.tool_calls.len(), 1, "{c:?}");
    assert!(c.broken_calls.is_empty(), "{:?}", c.broken_calls);
    let call = &c.tool_calls[0];
    assert!(offered().iter().any(|t| t.name == call.name), "{call:?}");
    let spec = offered().into_iter().find(|t| t.name == call.name).expect("offered");
    let allowed = spec.parameters["properties"].as_object().expect("properties").clone();
    assert!(call.arguments.as_object().expect("object").keys().all(|k| allowed.contains_key(k)), "{call:?}");
}

#[test]
fn the_terminal_chat_with_tools_shows_the_calculator_step_and_the_exact_answer() {
    crate::common::default_model();
    let home = tempfile::tempdir().expect("tempdir");
    let out =
        crate::common::duet_typing(&["chat", "--tools", "--temperature", "0"], home.path(), b"What is 1234 x 5678?\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Result of calculator: 1234 * 5678 = 7006652"), "{}", stderr(&out));
    assert!(stdout(&out).contains("7006652"), "{}", stdout(&out));
}
