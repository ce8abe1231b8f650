//! Tools in the terminal: which ones `--tools` offers, and the yes/no question
//! an action waits for.

use super::*;
use crate::tasks::tools::gate::{Approval, Confirm, Proposal};
use crate::tasks::tools::Toolbox;

/// duet's tools plus those of the MCP servers `mcp_file` lists. A server that
/// fails is reported on stderr and left out; the rest still work.
pub fn toolbox_with_mcp(paths: &Paths, mcp_file: &Path) -> Result<(Toolbox, Vec<crate::tasks::tools::mcp::Server>)> {
    let mut b = Toolbox::builtin(paths);
    let (servers, failed) = crate::tasks::tools::mcp::connect_all(mcp_file, crate::tasks::tools::mcp::START_TIMEOUT)?;
    for e in failed {
        eprintln!("{e}");
    }
    crate::tasks::tools::mcp::add_tools(&mut b, &servers);
    Ok((b, servers))
}

/// Asks on the terminal: d = deny, o = allow once, a = always for this run.
/// An empty line, end of input (nothing piped in) or anything else is a no.
pub struct TerminalConfirm;

impl Confirm for TerminalConfirm {
    fn ask(&self, p: &Proposal) -> Approval {
        eprintln!("\nThe model wants to use {} (from {}):\n  {}", p.call.name, p.source, p.what.replace('\n', "\n  "));
        eprint!("Allow? [o]nce / [a]lways for this chat / [d]eny (default): ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line);
        match (read, line.trim().to_lowercase().as_str()) {
            (Ok(n), "o" | "once" | "y" | "yes") if n > 0 => Approval::AllowOnce,
            (Ok(n), "a" | "always") if n > 0 => Approval::AlwaysForChat,
            _ => Approval::Deny,
        }
    }
}
