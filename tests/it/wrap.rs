//! `toolgate wrap` / `unwrap` on real-looking configuration files of Claude Desktop, Claude Code,
//! Cursor and VS Code (found where each client keeps it, under a test HOME): every stdio and
//! Streamable HTTP server runs through toolgate, with header values moved off the command line
//! into the entry's `env` where the client still fills in its own `${...}`; HTTP+SSE entries too,
//! their `type` kept in `env` for unwrap; wrapping twice changes nothing, `--dry-run` changes nothing,
//! and unwrapping restores the file byte for byte. One test launches a wrapped remote entry as a
//! client would and sees a call go through the gate to the Python SDK's HTTP server.

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

/// The wrapped remote entry runs `toolgate run --name NAME --policy P --url URL` and each header
/// comes from `env` by `--header-env`: its value (`value` here) is in `env`, not in `args`.
fn runs_remote_through_toolgate(entry: &Value, name: &str, url: &str, header: Option<(&str, &str)>) {
    let args: Vec<&str> = entry["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(entry["command"].as_str().unwrap().ends_with("toolgate"), "{entry}");
    assert_eq!(&args[..3], ["run", "--name", name], "{entry}");
    assert_eq!(args[3], "--policy");
    assert_eq!(&args[5..7], ["--url", url], "{entry}");
    assert!(entry.get("url").is_none() && entry.get("headers").is_none(), "{entry}");
    if let Some((header, value)) = header {
        let var = format!("TOOLGATE_HEADER_{}", header.to_uppercase().replace('-', "_"));
        assert_eq!(&args[7..], ["--header-env", &format!("{header}={var}")], "{entry}");
        assert_eq!(entry["env"][&var], value, "{entry}");
        assert!(!entry["args"].to_string().contains(value), "the value is not on the command line: {entry}");
    }
}

#[test]
fn claude_desktop_round_trip() {
    round_trip("claude-desktop", "claude_desktop_config.json", ".config/Claude/claude_desktop_config.json", |c, _| {
        runs_through_toolgate(&c["mcpServers"]["filesystem"], "filesystem", "npx");
        runs_through_toolgate(&c["mcpServers"]["github"], "github", "docker");
        assert_eq!(c["mcpServers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"], "<token>", "env is kept");
        assert_eq!(c["globalShortcut"], "Ctrl+Space", "the rest of the file is kept");
        runs_remote_through_toolgate(
            &c["mcpServers"]["notes"],
            "notes",
            "https://notes.example/mcp",
            Some(("Authorization", "Bearer n0tes-s3cret")),
        );
        assert!(c["mcpServers"]["notes"].get("type").is_none(), "no type before, none after");
    });
}

#[test]
fn claude_code_round_trip_wraps_user_and_project_servers_http_ones_too_and_leaves_sse() {
    round_trip("claude-code", "claude.json", ".claude.json", |c, out| {
        runs_through_toolgate(&c["mcpServers"]["memory"], "memory", "npx");
        runs_through_toolgate(&c["projects"]["/home/me/project"]["mcpServers"]["everything"], "everything", "npx");
        runs_remote_through_toolgate(&c["mcpServers"]["sentry"], "sentry", "https://mcp.sentry.dev/mcp", None);
        assert_eq!(c["mcpServers"]["sentry"]["type"], "stdio", "Claude Code's stdio spelling");
        assert!(c["mcpServers"]["sentry"].get("env").is_none(), "no headers, no env");
        let bank = &c["projects"]["/home/me/project"]["mcpServers"]["bank"];
        // Claude Code fills in `${BANK_TOKEN}` in env as it did in headers.
        runs_remote_through_toolgate(bank, "bank", "https://mcp.bank.example/mcp", None);
        assert_eq!(bank["env"]["TOOLGATE_HEADER_AUTHORIZATION"], "Bearer ${BANK_TOKEN}");
        assert_eq!(bank["env"]["TOOLGATE_HEADER_X_API_KEY"], "literal-s3cret");
        assert!(!bank["args"].to_string().contains("s3cret") && !bank["args"].to_string().contains("BANK_TOKEN"));
        // An HTTP+SSE entry: `run --url` falls back to that transport; `env` keeps its type for unwrap.
        let linear = &c["mcpServers"]["linear"];
        runs_remote_through_toolgate(linear, "linear", "https://mcp.linear.app/sse", None);
        assert_eq!(linear["env"], serde_json::json!({"TOOLGATE_WRAPPED_TYPE": "sse"}));
        assert!(!out.contains("left alone"), "{out}");
        assert_eq!(c["numStartups"], 42);
    });
}

#[test]
fn cursor_round_trip_keeps_a_four_space_file_without_a_final_newline() {
    round_trip("cursor", "cursor_mcp.json", ".cursor/mcp.json", |c, out| {
        runs_through_toolgate(&c["mcpServers"]["postgres"], "postgres", "uvx");
        runs_remote_through_toolgate(
            &c["mcpServers"]["context7"],
            "context7",
            "https://mcp.context7.com/mcp",
            Some(("CONTEXT7_API_KEY", "${env:CONTEXT7_API_KEY}")),
        );
        assert!(c["mcpServers"]["context7"].get("type").is_none(), "Cursor's entries have no type");
        runs_remote_through_toolgate(&c["mcpServers"]["remote"], "remote", "https://example.com/sse", None);
        assert!(!out.contains("left alone"), "{out}");
    });
}

#[test]
fn vscode_round_trip_uses_its_servers_table() {
    round_trip("vscode", "vscode_mcp.json", ".config/Code/User/mcp.json", |c, out| {
        runs_through_toolgate(&c["servers"]["fetch"], "fetch", "uvx");
        runs_through_toolgate(&c["servers"]["playwright"], "playwright", "npx");
        assert_eq!(c["servers"]["playwright"]["env"]["API_KEY"], "${input:api-key}");
        runs_remote_through_toolgate(
            &c["servers"]["github"],
            "github",
            "https://api.githubcopilot.com/mcp/",
            Some(("Authorization", "Bearer ${input:github-token}")),
        );
        assert_eq!(c["servers"]["github"]["type"], "stdio", "VS Code wants a type");
        runs_remote_through_toolgate(&c["servers"]["legacy"], "legacy", "http://localhost:3001/sse", None);
        assert_eq!(c["servers"]["legacy"]["env"]["TOOLGATE_WRAPPED_TYPE"], "sse");
        assert!(!out.contains("left alone"), "{out}");
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
    let original =
        serde_json::from_slice::<Value>(&std::fs::read(root().join("tests/configs/cursor_mcp.json")).unwrap());
    assert_eq!(c["mcpServers"]["context7"], original.unwrap()["mcpServers"]["context7"], "the remote entry is rebuilt");

    std::fs::write(&path, "{ not json").unwrap();
    let (ok, out) = home.toolgate(&["wrap", "--config", path.to_str().unwrap()]);
    assert!(!ok && out.contains(".mcp.json:1:3: not JSON"), "{out}");
}

/// The Python SDK's Streamable HTTP server (`tests/python/http_server.py`) on a port of its own,
/// logging each request it gets; killed when dropped.
struct HttpServer {
    child: std::process::Child,
    url: String,
    log: PathBuf,
}

impl HttpServer {
    fn start(env: &Env) -> HttpServer {
        use std::io::BufRead;
        let log = env.join("http.jsonl");
        let mut child = env
            .python()
            .arg(root().join("tests/python/http_server.py"))
            .arg(&log)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // It prints its port once it listens.
        let mut port = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut port).unwrap();
        HttpServer { child, url: format!("http://127.0.0.1:{}/mcp", port.trim()), log }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What Claude Code does to a string of its configuration: `${VAR}` from its own environment.
fn interpolate(text: &str, client_env: &[(&str, &str)]) -> String {
    client_env.iter().fold(text.to_owned(), |text, (var, value)| text.replace(&format!("${{{var}}}"), value))
}

#[test]
fn a_wrapped_remote_entry_launched_as_the_client_would_gates_the_python_sdk_http_server() {
    let home = Home::new();
    let server = HttpServer::start(&home.env);
    let path = home.env.home().join(".claude.json");
    let config = serde_json::json!({"mcpServers": {"notes": {
        "type": "http",
        "url": server.url,
        "headers": {"X-Test-Token": "tok-${NOTES_TOKEN}"}
    }}});
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let policy = policy_file(
        home.env.path(),
        r#"
[settings]
default_tier = "low"

[[rules]]
name = "no denied files"
tools = ["write_marker"]
args = { "/path" = { glob = "**/denied*" } }
action = "deny"
"#,
    );
    let (ok, out) = home.toolgate(&["wrap", "--client", "claude-code", "--policy", policy.to_str().unwrap()]);
    assert!(ok, "{out}");
    let entry = json(&path)["mcpServers"]["notes"].clone();
    assert!(!entry["args"].to_string().contains("tok-"), "{entry}");

    // Launch the entry as Claude Code would: its command, its args and its env, each string
    // with the client's own `${...}` filled in.
    let client_env = [("NOTES_TOKEN", "s3cret")];
    let mut cmd = home.env.command(entry["command"].as_str().unwrap());
    cmd.args(entry["args"].as_array().unwrap().iter().map(|a| interpolate(a.as_str().unwrap(), &client_env)));
    for (var, value) in entry["env"].as_object().unwrap() {
        cmd.env(var, interpolate(value.as_str().unwrap(), &client_env));
    }
    let mut peer = Peer::start(cmd);
    let init = initialize(&mut peer, "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "toolgate-test-http-server", "{init}");
    let marker = home.env.join("allowed.txt");
    let answer =
        peer.request(2, "tools/call", serde_json::json!({"name": "write_marker", "arguments": {"path": marker}}));
    assert_eq!(answer["result"]["content"][0]["text"], "written", "{answer}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "written");
    let denied = home.env.join("denied.txt");
    let answer =
        peer.request(3, "tools/call", serde_json::json!({"name": "write_marker", "arguments": {"path": denied}}));
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(!denied.exists(), "the wrapped entry's policy refused it before the server");
    peer.close_stdin();
    while peer.next_line().is_some() {}
    peer.wait();

    // The server got the header as the client would have sent it, on every request.
    let requests: Vec<Value> =
        std::fs::read_to_string(&server.log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!requests.is_empty() && requests.iter().all(|r| r["token"] == "tok-s3cret"), "{requests:?}");
    assert_eq!(requests.iter().filter(|r| r["method"] == "tools/call").count(), 1, "{requests:?}");
    // And the gate wrote down both calls, under the entry's name.
    let decisions = audit_decisions(&home.env.state().join("toolgate/audit.jsonl"));
    let text = serde_json::to_string(&decisions).unwrap();
    assert_eq!(decisions.len(), 2, "{text}");
    assert!(decisions.iter().all(|d| d["server"] == "notes"), "{text}");
    assert!(text.contains("no denied files") && !text.contains("s3cret"), "{text}");
}
