//! `toolgate wrap` / `unwrap` on real-looking configuration files of Claude Desktop, Claude Code,
//! Cursor and VS Code (found where each client keeps it, under a test HOME): every stdio server
//! runs through toolgate, remote ones are left alone and listed, wrapping twice changes nothing,
//! `--dry-run` changes nothing, and unwrapping restores the file byte for byte.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

/// A user whose configuration files lie in their HOME, with no `XDG_CONFIG_HOME` set (so
/// toolgate looks where each client keeps its file by default).
struct Home {
    env: Env,
}

impl Home {
    fn new() -> Home {
        Home { env: Env::new() }
    }

    /// Puts a sample config where `client` keeps it; returns its path.
    fn place(&self, sample: &str, at: &str) -> PathBuf {
        let path = self.env.home().join(at);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(root().join("tests/configs").join(sample), &path).unwrap();
        path
    }

    fn toolgate(&self, args: &[&str]) -> (bool, String) {
        run_to_end(self.env.toolgate().args(args).env_remove("XDG_CONFIG_HOME"))
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Wraps, checks, wraps again, unwraps: the file is back byte for byte.
fn round_trip(client: &str, sample: &str, at: &str, check: impl Fn(&Value, &str)) {
    let home = Home::new();
    let path = home.place(sample, at);
    let original = std::fs::read(&path).unwrap();

    let (ok, out) = home.toolgate(&["wrap", "--client", client, "--dry-run"]);
    assert!(ok, "{out}");
    assert!(out.contains("would change"), "{out}");
    assert_eq!(std::fs::read(&path).unwrap(), original, "--dry-run changes nothing");

    let policy = home.env.home().join("policy.toml");
    std::fs::write(&policy, "").unwrap();
    let (ok, out) = home.toolgate(&["wrap", "--client", client, "--policy", policy.to_str().unwrap()]);
    assert!(ok, "{out}");
    let wrapped = std::fs::read(&path).unwrap();
    check(&json(&path), &out);
    assert!(path.with_file_name(format!("{}.toolgate-backup", path.file_name().unwrap().to_string_lossy())).exists());

    let (ok, out) = home.toolgate(&["wrap", "--client", client, "--policy", policy.to_str().unwrap()]);
    assert!(ok && out.contains("nothing to change"), "{out}");
    assert_eq!(std::fs::read(&path).unwrap(), wrapped, "wrapping twice changes nothing");

    let (ok, out) = home.toolgate(&["unwrap", "--client", client]);
    assert!(ok && out.contains("restored"), "{out}");
    assert_eq!(std::fs::read(&path).unwrap(), original, "unwrap restores the file exactly");
}

/// The wrapped entry runs `toolgate run --name NAME --policy P -- CMD ARGS...`.
fn runs_through_toolgate(entry: &Value, name: &str, command: &str) {
    let args: Vec<&str> = entry["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(entry["command"].as_str().unwrap().ends_with("toolgate"), "{entry}");
    assert_eq!(&args[..3], ["run", "--name", name], "{entry}");
    assert_eq!(args[3], "--policy");
    let dashes = args.iter().position(|a| *a == "--").unwrap();
    assert_eq!(args[dashes + 1], command, "{entry}");
}

#[test]
fn claude_desktop_round_trip() {
    round_trip("claude-desktop", "claude_desktop_config.json", ".config/Claude/claude_desktop_config.json", |c, _| {
        runs_through_toolgate(&c["mcpServers"]["filesystem"], "filesystem", "npx");
        runs_through_toolgate(&c["mcpServers"]["github"], "github", "docker");
        assert_eq!(c["mcpServers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"], "<token>", "env is kept");
        assert_eq!(c["globalShortcut"], "Ctrl+Space", "the rest of the file is kept");
    });
}

#[test]
fn claude_code_round_trip_wraps_user_and_project_servers_and_leaves_remote_ones() {
    round_trip("claude-code", "claude.json", ".claude.json", |c, out| {
        runs_through_toolgate(&c["mcpServers"]["memory"], "memory", "npx");
        runs_through_toolgate(&c["projects"]["/home/me/project"]["mcpServers"]["everything"], "everything", "npx");
        assert_eq!(c["mcpServers"]["sentry"]["url"], "https://mcp.sentry.dev/mcp");
        assert!(out.contains("left alone: sentry: a remote server (http)"), "{out}");
        assert_eq!(c["numStartups"], 42);
    });
}

#[test]
fn cursor_round_trip_keeps_a_four_space_file_without_a_final_newline() {
    round_trip("cursor", "cursor_mcp.json", ".cursor/mcp.json", |c, out| {
        runs_through_toolgate(&c["mcpServers"]["postgres"], "postgres", "uvx");
        assert!(out.contains("left alone: remote"), "{out}");
    });
}

#[test]
fn vscode_round_trip_uses_its_servers_table() {
    round_trip("vscode", "vscode_mcp.json", ".config/Code/User/mcp.json", |c, out| {
        runs_through_toolgate(&c["servers"]["fetch"], "fetch", "uvx");
        runs_through_toolgate(&c["servers"]["playwright"], "playwright", "npx");
        assert_eq!(c["servers"]["playwright"]["env"]["API_KEY"], "${input:api-key}");
        assert!(out.contains("left alone: github"), "{out}");
        assert_eq!(c["inputs"][0]["id"], "api-key");
    });
}

#[test]
fn any_config_by_path_and_unwrap_after_a_hand_edit_goes_entry_by_entry() {
    let home = Home::new();
    let path = home.place("cursor_mcp.json", "project/.mcp.json");
    let (ok, out) = home.toolgate(&["wrap", "--config", path.to_str().unwrap()]);
    assert!(ok, "{out}");
    // The user edits the wrapped file; unwrap cannot restore the backup, so it unwraps entries.
    let mut edited = json(&path);
    edited["mcpServers"]["extra"] = serde_json::json!({"command": "node", "args": ["x.js"]});
    std::fs::write(&path, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    let (ok, out) = home.toolgate(&["unwrap", "--config", path.to_str().unwrap()]);
    assert!(ok && out.contains("entry by entry"), "{out}");
    let c = json(&path);
    assert_eq!(c["mcpServers"]["postgres"]["command"], "uvx");
    assert_eq!(c["mcpServers"]["postgres"]["args"][0], "mcp-server-postgres");
    assert_eq!(c["mcpServers"]["extra"]["command"], "node", "the user's edit stays");

    std::fs::write(&path, "{ not json").unwrap();
    let (ok, out) = home.toolgate(&["wrap", "--config", path.to_str().unwrap()]);
    assert!(!ok && out.contains(".mcp.json:1:3: not JSON"), "{out}");
}
