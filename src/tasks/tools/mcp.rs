//! MCP servers: tools from other programs, spoken to over stdio with `rmcp`.
//!
//! Servers are listed in an `mcp.json` (the file LM Studio and Cursor read):
//! `{"mcpServers": {"NAME": {"command": "...", "args": [...], "env": {...}}}}`.
//! Each one's tools join duet's own, and every one of them waits for the
//! person's yes: duet cannot know what another program's tool does, and a
//! tool's description is the server's word, not a promise.
//!
//! A server that is not installed, exits, or does not answer in time is
//! reported by name with what to do; it never stops the others.

use super::Tool;
use crate::engine::{Cancel, ToolSpec};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a server may take to start and list its tools (npx may download it first).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("could not read {path}: {why}. Fix it, or move it away to use duet's own tools only.")]
    Config { path: String, why: String },
    #[error("the MCP server '{name}' could not be started ({why}). Is `{command}` installed and on the PATH?")]
    NotInstalled { name: String, command: String, why: String },
    #[error("the MCP server '{name}' did not answer within {secs} s; it was stopped")]
    Hung { name: String, secs: u64 },
    #[error("the MCP server '{name}' stopped or refused to talk ({why})")]
    Failed { name: String, why: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerEntry {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
struct McpFile {
    #[serde(rename = "mcpServers", default)]
    servers: BTreeMap<String, ServerEntry>,
}

/// Where `mcp.json` lives: duet's settings folder.
pub fn config_file(paths: &crate::config::Paths) -> std::path::PathBuf {
    paths.config_dir.join("mcp.json")
}

/// The servers an `mcp.json` lists, by name (none when the file does not exist).
pub fn read_config(path: &Path) -> Result<BTreeMap<String, ServerEntry>, McpError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(McpError::Config { path: path.display().to_string(), why: e.to_string() }),
    };
    let file: McpFile = serde_json::from_str(&text)
        .map_err(|e| McpError::Config { path: path.display().to_string(), why: format!("not an mcp.json ({e})") })?;
    Ok(file.servers)
}

type Client = RunningService<RoleClient, ()>;

/// One connected server.
pub struct Server {
    pub name: String,
    client: Arc<Client>,
    tools: Vec<rmcp::model::Tool>,
}

impl Server {
    /// Start the server and list its tools, giving up after `start_timeout`.
    pub fn connect(name: &str, entry: &ServerEntry, start_timeout: Duration) -> Result<Server, McpError> {
        let mut cmd = tokio::process::Command::new(&entry.command);
        cmd.args(&entry.args).envs(&entry.env);
        let not_installed =
            |why: String| McpError::NotInstalled { name: name.into(), command: entry.command.clone(), why };
        crate::runtime().block_on(async {
            // Its log lines would mix with duet's output; they are not for the person.
            let (transport, _) = TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| not_installed(e.to_string()))?;
            let started = tokio::time::timeout(start_timeout, async {
                let client =
                    ().serve(transport)
                        .await
                        .map_err(|e| McpError::Failed { name: name.into(), why: e.to_string() })?;
                let tools = client
                    .list_all_tools()
                    .await
                    .map_err(|e| McpError::Failed { name: name.into(), why: e.to_string() })?;
                Ok::<_, McpError>((client, tools))
            })
            .await;
            match started {
                Err(_) => Err(McpError::Hung { name: name.into(), secs: start_timeout.as_secs() }),
                Ok(Err(e)) => Err(e),
                Ok(Ok((client, tools))) => Ok(Server { name: name.into(), client: Arc::new(client), tools }),
            }
        })
    }

    pub fn tool_count(&self) -> usize {
        self.tools.len()
    }

    /// Its tools, ready for a [`super::Toolbox`].
    pub fn tools(&self) -> Vec<Box<dyn Tool>> {
        self.tools
            .iter()
            .map(|t| {
                Box::new(McpTool { server: self.name.clone(), client: self.client.clone(), tool: t.clone() })
                    as Box<dyn Tool>
            })
            .collect()
    }
}

/// Offer every tool of `servers` beside those already in `toolbox`.
pub fn add_tools(toolbox: &mut super::Toolbox, servers: &[Server]) {
    for s in servers {
        for t in s.tools() {
            toolbox.add(t);
        }
    }
}

/// Connect every server an `mcp.json` lists; those that fail are returned
/// beside those that work.
pub fn connect_all(path: &Path, start_timeout: Duration) -> Result<(Vec<Server>, Vec<McpError>), McpError> {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (name, entry) in read_config(path)? {
        match Server::connect(&name, &entry, start_timeout) {
            Ok(s) => ok.push(s),
            Err(e) => failed.push(e),
        }
    }
    Ok((ok, failed))
}

struct McpTool {
    server: String,
    client: Arc<Client>,
    tool: rmcp::model::Tool,
}

impl Tool for McpTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.tool.name.to_string(),
            description: self.tool.description.as_deref().unwrap_or("").to_string(),
            parameters: Value::Object((*self.tool.input_schema).clone()),
        }
    }

    fn needs_yes(&self) -> bool {
        true
    }

    fn describe(&self, args: &Value) -> String {
        format!("Run the tool '{}' of the MCP server '{}' with {args}", self.tool.name, self.server)
    }

    fn source(&self) -> String {
        format!("MCP server '{}'", self.server)
    }

    fn run(&self, args: &Value, cancel: &Cancel) -> Result<String, String> {
        let params = CallToolRequestParams::new(self.tool.name.to_string())
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        let server = self.server.clone();
        crate::runtime().block_on(async {
            let call = tokio::time::timeout(CALL_TIMEOUT, self.client.call_tool(params));
            let result = tokio::select! {
                r = call => r,
                _ = crate::engine::cloud::cancelled(cancel) => return Err("stopped".to_string()),
            };
            let result = match result {
                Err(_) => {
                    return Err(format!("the MCP server '{server}' did not answer within {} s", CALL_TIMEOUT.as_secs()))
                }
                Ok(Err(e)) => return Err(format!("the MCP server '{server}' failed: {e}")),
                Ok(Ok(r)) => r,
            };
            let mut text: Vec<String> =
                result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect();
            if text.is_empty() {
                if let Some(s) = &result.structured_content {
                    text.push(s.to_string());
                }
            }
            let text = text.join("\n");
            match result.is_error {
                Some(true) => Err(text),
                _ => Ok(text),
            }
        })
    }
}
