//! `toolgate init`: a starter policy, written to the XDG location, tuned to the MCP servers found
//! in the clients' configurations. With `--list-tools` it starts each stdio server, asks for its
//! tools, and writes a rule per kind of tool it finds (reads, changes, sends, payments, deletes,
//! by name and by the server's annotations), each with a comment that says why.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::mcp_client::Server;
use crate::wrap::{self, Client};

/// A stdio server found in a client's configuration.
#[derive(Debug, Clone)]
pub struct FoundServer {
    pub name: String,
    pub client: &'static str,
    pub command: String,
    pub args: Vec<String>,
    /// Its tools (name and annotations), when they could be listed.
    pub tools: Option<Vec<Value>>,
}

/// The stdio servers of every client configuration on this system (already wrapped ones are
/// read through toolgate's `run` arguments).
pub fn find_servers() -> Vec<FoundServer> {
    let clients = [
        (Client::ClaudeDesktop, "Claude Desktop"),
        (Client::ClaudeCode, "Claude Code"),
        (Client::Cursor, "Cursor"),
        (Client::Vscode, "VS Code"),
    ];
    let mut found = Vec::new();
    for (client, label) in clients {
        let Some(path) = wrap::config_path(client) else { continue };
        let Ok(config) = std::fs::read(&path).map(|b| serde_json::from_slice::<Value>(&b)) else { continue };
        let Ok(config) = config else { continue };
        for (name, entry) in wrap::stdio_entries(&config) {
            let mut command = entry.get("command").and_then(Value::as_str).unwrap_or_default().to_owned();
            let mut args: Vec<String> = entry
                .get("args")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            if Path::new(&command).file_name().is_some_and(|n| n == "toolgate")
                && let Some(dashes) = args.iter().position(|a| a == "--")
                && dashes + 1 < args.len()
            {
                command = args[dashes + 1].clone();
                args = args[dashes + 2..].to_vec();
            }
            if !found.iter().any(|f: &FoundServer| f.name == name) {
                found.push(FoundServer { name, client: label, command, args, tools: None });
            }
        }
    }
    found
}

/// Starts a server and asks for its tools; `None` when it does not answer within `patience`.
pub fn list_tools(server: &FoundServer, patience: Duration) -> Option<Vec<Value>> {
    let mut command = Command::new(&server.command);
    command.args(&server.args).stderr(Stdio::null());
    let listed = Server::spawn(&mut command).and_then(|mut started| {
        started.client.set_patience(patience);
        started.client.initialize("toolgate-init")?;
        started.client.request("tools/list", json!({}))
    });
    match listed {
        Ok(listed) => listed.get("tools").and_then(Value::as_array).cloned(),
        Err(why) => {
            tracing::debug!("{}: {why}", server.name);
            None
        }
    }
}

/// What kind of tool a name and its annotations suggest, and the rule text for that kind.
fn kind_of(tool: &Value) -> &'static str {
    let name = tool.get("name").and_then(Value::as_str).unwrap_or_default().to_lowercase();
    let hint = |k: &str| tool.pointer(&format!("/annotations/{k}")).and_then(Value::as_bool);
    let has = |words: &[&str]| words.iter().any(|w| name.starts_with(w) || name.contains(&format!("_{w}")));
    if has(&["delete", "remove", "rm", "drop", "destroy", "purge"]) || hint("destructiveHint") == Some(true) {
        "destructive"
    } else if has(&["pay", "transfer", "charge", "refund", "purchase"]) || name.contains("payment") {
        "money"
    } else if has(&["send", "post", "publish", "reply", "email"]) {
        "outside"
    } else if hint("readOnlyHint") == Some(true)
        || has(&["read", "list", "get", "search", "find", "describe", "view", "stat"])
        || name == "directory_tree"
    {
        "read"
    } else {
        "change"
    }
}

/// The starter policy text.
pub fn policy(servers: &[FoundServer]) -> String {
    let mut out = String::from(
        "# toolgate policy, written by `toolgate init`. Edit it freely: toolgate reloads it when it\n\
         # changes. `toolgate check` finds mistakes, `toolgate explain` shows how a call is decided,\n\
         # and docs/reference/policy.md in toolgate's repository has the whole reference.\n\n\
         [settings]\n\
         default_tier = \"high\"      # a tool no rule below names needs a person's yes\n\
         approval_timeout = \"60s\"   # a question nobody answers is a no\n\
         autonomy = \"standard\"      # follow the tiers (\"supervised\": ask for everything)\n\
         arguments = \"strict\"     # a call whose arguments do not match the tool's schema is refused\n\n",
    );
    out.push_str(
        "# For every server: what people do not want to happen by accident.\n\
         [[rules]]\n\
         name = \"never delete\"\n\
         tools = [\"delete_*\", \"remove_*\", \"rm\", \"drop_*\", \"destroy_*\", \"purge_*\"]\n\
         action = \"deny\"\n\
         reason = \"Deleting is not allowed by this policy; ask the user to do it.\"\n\n\
         [[rules]]\n\
         name = \"money needs a yes\"\n\
         tools = [\"*payment*\", \"pay_*\", \"transfer_*\", \"charge_*\", \"refund_*\"]\n\
         tier = \"high\"\n\
         always_ask = true   # no autonomy level or earned trust lowers this\n\
         reason = \"it moves money\"\n\n",
    );
    for server in servers {
        let s = |v: &str| toml::Value::String(v.to_owned()).to_string();
        out.push_str(&format!(
            "# ── server {} (from {}: {} {}) ──\n",
            server.name,
            server.client,
            server.command,
            server.args.join(" ")
        ));
        let Some(tools) = &server.tools else {
            out.push_str(&format!(
                "# Its tools were not listed (run `toolgate init --list-tools`); reads run, the rest asks.\n\
                 [[rules]]\nname = {}\nservers = [{}]\ntools = [\"read_*\", \"list_*\", \"get_*\", \"search_*\"]\ntier = \"low\"\n\n",
                s(&format!("{} reads", server.name)),
                s(&server.name)
            ));
            continue;
        };
        for (kind, tier, comment) in [
            ("read", "low", "they only read, by their names or the server's readOnlyHint: they run"),
            ("change", "medium", "they change things: they run, and you are told"),
            ("outside", "high", "they reach other people: they need a yes"),
        ] {
            let names: Vec<String> = tools
                .iter()
                .filter(|t| kind_of(t) == kind)
                .filter_map(|t| {
                    t.get("name").and_then(Value::as_str).map(|n| s(&crate::policy::remember::escape_glob(n)))
                })
                .collect();
            if names.is_empty() {
                continue;
            }
            out.push_str(&format!(
                "# {comment}.\n[[rules]]\nname = {}\nservers = [{}]\ntools = [{}]\ntier = \"{tier}\"\n\n",
                s(&format!("{} {kind}", server.name)),
                s(&crate::policy::remember::escape_glob(&server.name)),
                names.join(", ")
            ));
        }
        let others: Vec<&str> = tools
            .iter()
            .filter(|t| matches!(kind_of(t), "destructive" | "money"))
            .filter_map(|t| t.get("name").and_then(Value::as_str))
            .collect();
        if !others.is_empty() {
            out.push_str(&format!(
                "# {} are covered by \"never delete\" and \"money needs a yes\" above, or by the default tier.\n\n",
                others.join(", ")
            ));
        }
    }
    out
}

/// Where `init` writes: `$XDG_CONFIG_HOME/toolgate/policy.toml`.
pub fn default_path() -> Option<PathBuf> {
    crate::paths::config_dir().map(|d| d.join("policy.toml"))
}
