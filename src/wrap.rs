//! `toolgate wrap` / `unwrap`: put toolgate in front of every MCP server of a client's
//! configuration, and take it away again.
//!
//! Each stdio entry `{"command": C, "args": A}` becomes `{"command": TOOLGATE, "args": ["run",
//! "--name", NAME, ("--policy", P,) "--", C, A...]}`; everything else in the entry (env, type,
//! ...) stays. A remote entry `{"type": "http", "url": U, "headers": H}` (Claude Code, VS Code;
//! Cursor writes no `type`) becomes `{"type": "stdio", "command": TOOLGATE, "args": ["run",
//! "--name", NAME, ("--policy", P,) "--url", U, "--header-env", "NAME=VAR"...], "env": {VAR:
//! VALUE...}}`: each header's value moves to the entry's `env`, where the client interpolates
//! it as it did in `headers`, and where no other user can read it (a command line can be read
//! by anyone with `ps`). The args and env carry all that `unwrap` needs to rebuild the entry.
//! Entries of the 2024-11-05 HTTP+SSE transport (`type: sse`) are wrapped the same way (`run
//! --url` falls back to that transport when the server speaks only that), with
//! `TOOLGATE_WRAPPED_TYPE=sse` in `env` so that `unwrap` gives the entry its `type` back;
//! anything toolgate cannot tell how to wrap is left alone and listed. Entries that already run toolgate are left alone, so wrapping twice
//! changes nothing. Before the first change the file is copied to `FILE.toolgate-backup`;
//! `unwrap` restores that copy byte for byte when the file is still as `wrap` left it, and
//! otherwise unwraps entry by entry.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The clients whose configuration files toolgate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    Vscode,
}

/// The configuration file of a client, on this system.
pub fn config_path(client: Client) -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".config"));
    let mac = cfg!(target_os = "macos");
    Some(match client {
        Client::ClaudeDesktop if mac => home.join("Library/Application Support/Claude/claude_desktop_config.json"),
        Client::ClaudeDesktop => config.join("Claude/claude_desktop_config.json"),
        Client::ClaudeCode => home.join(".claude.json"),
        Client::Cursor => home.join(".cursor/mcp.json"),
        Client::Vscode if mac => home.join("Library/Application Support/Code/User/mcp.json"),
        Client::Vscode => config.join("Code/User/mcp.json"),
    })
}

fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".toolgate-backup");
    path.with_file_name(name)
}

/// Where the digest of the file `wrap` wrote is kept, to know it is unchanged.
fn stamp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".toolgate-wrapped");
    path.with_file_name(name)
}

fn digest(bytes: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(bytes))
}

/// What `wrap` or `unwrap` did, or would do.
#[derive(Debug, Default)]
pub struct Changes {
    /// `name: before → after`, one per entry changed.
    pub changed: Vec<String>,
    /// Entries that cannot be wrapped (remote servers), with why.
    pub skipped: Vec<String>,
    /// Entries already as wanted.
    pub unchanged: Vec<String>,
}

/// Every server table in a configuration: `mcpServers` or `servers` at the top, and Claude
/// Code's per-project `projects.*.mcpServers`.
fn server_tables(config: &mut Value) -> Vec<&mut Map<String, Value>> {
    let mut tables = Vec::new();
    let Some(root) = config.as_object_mut() else { return tables };
    let mut projects = None;
    for (key, value) in root.iter_mut() {
        match key.as_str() {
            "mcpServers" | "servers" => tables.extend(value.as_object_mut()),
            "projects" => projects = Some(value),
            _ => {}
        }
    }
    for project in projects.and_then(Value::as_object_mut).into_iter().flat_map(|p| p.values_mut()) {
        if let Some(servers) = project.get_mut("mcpServers").and_then(Value::as_object_mut) {
            tables.push(servers);
        }
    }
    tables
}

/// The stdio server entries of a configuration, by name.
pub fn stdio_entries(config: &Value) -> Vec<(String, Map<String, Value>)> {
    let mut config = config.clone();
    let mut out = Vec::new();
    for table in server_tables(&mut config) {
        for (name, entry) in table.iter() {
            let Some(entry) = entry.as_object() else { continue };
            let kind = entry.get("type").and_then(Value::as_str).unwrap_or("stdio");
            if kind == "stdio" && !entry.contains_key("url") && entry.contains_key("command") {
                out.push((name.clone(), entry.clone()));
            }
        }
    }
    out
}

fn is_toolgate(entry: &Map<String, Value>) -> bool {
    let command = entry.get("command").and_then(Value::as_str).unwrap_or_default();
    let first = entry.get("args").and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str);
    Path::new(command).file_name().is_some_and(|n| n == "toolgate") && first == Some("run")
}

fn shown(entry: &Map<String, Value>) -> String {
    let mut words = vec![entry.get("command").and_then(Value::as_str).unwrap_or("?").to_owned()];
    words.extend(entry.get("args").and_then(Value::as_array).into_iter().flatten().map(|a| match a {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }));
    words.join(" ")
}

/// What `wrap` makes of one entry.
enum Plan {
    Stdio,
    Remote(Remote),
    /// Left alone, for this reason.
    Skip(String),
}

/// A remote entry that can be wrapped: its URL and its headers, in the file's order.
struct Remote {
    url: String,
    headers: Vec<(String, String)>,
}

/// The prefix of the environment variables that carry a wrapped remote entry's headers.
const HEADER_VAR: &str = "TOOLGATE_HEADER_";
/// The variable that remembers a wrapped entry's `type` when it was not `http` (`sse`). toolgate
/// itself does not read it: `run --url` finds the transport the server speaks.
const TYPE_VAR: &str = "TOOLGATE_WRAPPED_TYPE";

fn plan(entry: &Map<String, Value>) -> Plan {
    let kind = entry.get("type").map(|t| t.as_str().unwrap_or("?"));
    let url = entry.get("url");
    match kind {
        None | Some("stdio") if url.is_none() => {
            if entry.contains_key("command") {
                Plan::Stdio
            } else {
                Plan::Skip("neither a command nor a url".into())
            }
        }
        None | Some("http" | "sse") => remote(entry),
        Some(other) => Plan::Skip(format!("type {other:?}: not a transport toolgate knows how to wrap")),
    }
}

/// A `url` entry, if toolgate can stand in front of it.
fn remote(entry: &Map<String, Value>) -> Plan {
    let Some(url) = entry.get("url").and_then(Value::as_str) else {
        return Plan::Skip("a remote server without a `url` string".into());
    };
    for key in ["headersHelper", "oauth", "command", "args"] {
        if entry.contains_key(key) {
            return Plan::Skip(format!("a remote server with `{key}`, which toolgate cannot carry over"));
        }
    }
    if entry.get("env").is_some_and(|e| !e.is_object()) {
        return Plan::Skip("its `env` is not an object".into());
    }
    let mut headers = Vec::new();
    match entry.get("headers") {
        None => {}
        Some(Value::Object(given)) => {
            for (name, value) in given {
                let Some(value) = value.as_str() else {
                    return Plan::Skip(format!("header {name:?} is not a string"));
                };
                // `--header-env NAME=VAR` would read a name with `=` in it otherwise.
                let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
                if name.is_empty() || !name.bytes().all(token) {
                    return Plan::Skip(format!("header {name:?} is not an HTTP header name"));
                }
                headers.push((name.clone(), value.to_owned()));
            }
        }
        Some(_) => return Plan::Skip("its `headers` is not an object".into()),
    }
    // What `run` would refuse at start is refused now, while the user is looking. A URL with
    // the client's `${...}` in it is only known once the client fills it in.
    let checked_url = if url.contains("${") { "http://placeholder/" } else { url };
    let names: Vec<String> = headers.iter().map(|(name, _)| format!("{name}=x")).collect();
    if let Err(e) = crate::remote::Target::parse(checked_url, &names, |_| None) {
        return Plan::Skip(e.to_string());
    }
    Plan::Remote(Remote { url: url.to_owned(), headers })
}

/// An environment variable for header `name` that `env` does not hold yet.
fn header_var(name: &str, env: &Map<String, Value>, taken: &[String]) -> String {
    let base: String = format!("{HEADER_VAR}{name}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect();
    let free = |v: &String| !env.contains_key(v) && !taken.contains(v);
    std::iter::once(base.clone()).chain((2..).map(|n| format!("{base}_{n}"))).find(free).unwrap_or(base)
}

fn head_args(name: &str, policy: Option<&Path>) -> Vec<Value> {
    let mut args = vec![json!("run"), json!("--name"), json!(name)];
    if let Some(policy) = policy {
        args.extend([json!("--policy"), json!(policy.display().to_string())]);
    }
    args
}

/// The URL as shown: without its query, which may carry a key.
fn shown_url(url: &str) -> &str {
    url.split('?').next().unwrap_or_default()
}

fn shown_remote(entry: &Map<String, Value>) -> String {
    let kind = entry.get("type").and_then(Value::as_str).map(|t| format!(" ({t})")).unwrap_or_default();
    let url = entry.get("url").and_then(Value::as_str).unwrap_or("?");
    let names: Vec<&str> = entry
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|h| h.keys())
        .map(String::as_str)
        .collect();
    let headers = if names.is_empty() { String::new() } else { format!(" with headers {}", names.join(", ")) };
    format!("{}{kind}{headers}", shown_url(url))
}

/// The stdio entry that runs toolgate in front of `remote`, keeping every other key where it was.
fn wrap_remote(entry: &Map<String, Value>, remote: Remote, mut args: Vec<Value>, toolgate: &str) -> Map<String, Value> {
    let mut env = entry.get("env").and_then(Value::as_object).cloned().unwrap_or_default();
    args.extend([json!("--url"), json!(remote.url)]);
    let mut taken = Vec::new();
    for (name, value) in remote.headers {
        let var = header_var(&name, &env, &taken);
        args.extend([json!("--header-env"), json!(format!("{name}={var}"))]);
        taken.push(var.clone());
        env.insert(var, Value::String(value));
    }
    if let Some(kind) = entry.get("type").filter(|t| *t != "http") {
        env.insert(TYPE_VAR.into(), kind.clone());
    }
    let mut out = Map::new();
    for (key, value) in entry {
        match key.as_str() {
            "type" => {
                out.insert("type".into(), json!("stdio"));
            }
            "url" => {
                out.insert("command".into(), json!(toolgate));
                out.insert("args".into(), Value::Array(args.clone()));
            }
            // The headers' values now live in `env`: where `headers` was, when there was no `env`.
            "headers" if !entry.contains_key("env") && !env.is_empty() => {
                out.insert("env".into(), Value::Object(env.clone()));
            }
            "headers" => {}
            "env" => {
                out.insert("env".into(), Value::Object(env.clone()));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if !out.contains_key("env") && !env.is_empty() {
        out.insert("env".into(), Value::Object(env));
    }
    out
}

/// Wraps every stdio and remote entry of `config`.
fn wrap_config(config: &mut Value, toolgate: &str, policy: Option<&Path>) -> Changes {
    let mut changes = Changes::default();
    for table in server_tables(config) {
        for (name, entry) in table.iter_mut() {
            let Some(entry) = entry.as_object_mut() else { continue };
            match plan(entry) {
                Plan::Skip(why) => changes.skipped.push(format!("{name}: {why}")),
                Plan::Stdio if is_toolgate(entry) => changes.unchanged.push(name.clone()),
                Plan::Stdio => {
                    let before = shown(entry);
                    let mut args = head_args(name, policy);
                    args.push(json!("--"));
                    args.push(entry.get("command").cloned().unwrap_or(Value::Null));
                    args.extend(entry.get("args").and_then(Value::as_array).cloned().unwrap_or_default());
                    entry.insert("command".into(), json!(toolgate));
                    entry.insert("args".into(), Value::Array(args));
                    changes.changed.push(format!("{name}: {before}  →  {}", shown(entry)));
                }
                Plan::Remote(remote) => {
                    let before = shown_remote(entry);
                    *entry = wrap_remote(entry, remote, head_args(name, policy), toolgate);
                    changes.changed.push(format!("{name}: {before}  →  {}", shown(entry)));
                }
            }
        }
    }
    changes
}

/// A wrapped remote entry's URL and headers, read back from toolgate's arguments; headers of
/// `--header-env` are `(NAME, VAR)` and taken from `env`.
struct Wrapped {
    url: String,
    headers: Vec<(String, Header)>,
}

enum Header {
    Value(String),
    Var(String),
}

fn read_wrapped(args: &[Value]) -> Result<Wrapped, String> {
    let mut url = None;
    let mut headers = Vec::new();
    let mut words = args.iter().skip(1);
    while let Some(flag) = words.next() {
        let flag = flag.as_str().unwrap_or_default();
        let Some(value) = words.next().and_then(Value::as_str) else {
            return Err(format!("runs toolgate with `{flag}` and no value after it; left as it is"));
        };
        match flag {
            "--name" | "--policy" | "--audit" | "--record" | "--max-message-bytes" => {}
            "--url" => url = Some(value.to_owned()),
            "--header" | "--header-env" => {
                let Some((name, rest)) = value.split_once('=') else {
                    return Err(format!("runs toolgate with `{flag}` not NAME=...; left as it is"));
                };
                let rest = rest.to_owned();
                headers
                    .push((name.to_owned(), if flag == "--header" { Header::Value(rest) } else { Header::Var(rest) }));
            }
            other => return Err(format!("runs toolgate with `{other}`, which unwrap does not know; left as it is")),
        }
    }
    let url = url.ok_or("runs toolgate without `--` or `--url`; left as it is")?;
    Ok(Wrapped { url, headers })
}

/// The remote entry a wrapped one stood for, every other key where it was.
fn unwrap_remote(entry: &Map<String, Value>, wrapped: Wrapped) -> Result<Map<String, Value>, String> {
    let mut env = entry.get("env").and_then(Value::as_object).cloned().unwrap_or_default();
    let kind = env.remove(TYPE_VAR).unwrap_or_else(|| json!("http"));
    let mut headers = Map::new();
    for (name, header) in wrapped.headers {
        let value = match header {
            Header::Value(value) => Value::String(value),
            Header::Var(var) => env.remove(&var).ok_or_else(|| {
                format!(
                    "its header {name} comes from the variable {var}, which its `env` no longer holds; left as it is"
                )
            })?,
        };
        headers.insert(name, value);
    }
    let mut out = Map::new();
    for (key, value) in entry {
        match key.as_str() {
            "type" => {
                out.insert("type".into(), kind.clone());
            }
            "command" => {
                out.insert("url".into(), json!(wrapped.url));
            }
            "args" if !headers.is_empty() => {
                out.insert("headers".into(), Value::Object(headers.clone()));
            }
            "args" => {}
            // An `env` that held only the headers was toolgate's.
            "env" if env.is_empty() && value.as_object().is_some_and(|e| !e.is_empty()) => {}
            "env" => {
                out.insert("env".into(), Value::Object(env.clone()));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(out)
}

/// Unwraps every entry that runs toolgate.
fn unwrap_config(config: &mut Value) -> Changes {
    let mut changes = Changes::default();
    for table in server_tables(config) {
        for (name, entry) in table.iter_mut() {
            let Some(entry) = entry.as_object_mut() else { continue };
            if !is_toolgate(entry) {
                changes.unchanged.push(name.clone());
                continue;
            }
            let before = shown(entry);
            let args = entry.get("args").and_then(Value::as_array).cloned().unwrap_or_default();
            let Some(dashes) = args.iter().position(|a| a == "--") else {
                match read_wrapped(&args).and_then(|wrapped| unwrap_remote(entry, wrapped)) {
                    Ok(remote) => {
                        *entry = remote;
                        changes.changed.push(format!("{name}: {before}  →  {}", shown_remote(entry)));
                    }
                    Err(why) => changes.skipped.push(format!("{name}: {why}")),
                }
                continue;
            };
            let Some(command) = args.get(dashes + 1).cloned() else { continue };
            entry.insert("command".into(), command);
            entry.insert("args".into(), Value::Array(args[dashes + 2..].to_vec()));
            changes.changed.push(format!("{name}: {before}  →  {}", shown(entry)));
        }
    }
    changes
}

/// Why a configuration could not be wrapped or unwrapped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}:{}:{}: not JSON: {source}", path.display(), source.line(), source.column())]
    NotJson { path: PathBuf, source: serde_json::Error },
    #[error("cannot tell where toolgate is: {0}")]
    CurrentExe(#[source] io::Error),
    #[error("cannot write the backup {}: {source}", path.display())]
    Backup { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    /// The stamp that tells a later `unwrap` the file is as `wrap` left it.
    #[error("{0}")]
    Stamp(#[source] io::Error),
    #[error("{0}")]
    Render(#[source] serde_json::Error),
}

fn read(path: &Path) -> Result<(Vec<u8>, Value), Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let value = serde_json::from_slice(&bytes).map_err(|source| Error::NotJson { path: path.to_owned(), source })?;
    Ok((bytes, value))
}

/// The configuration as text, in the file's own style as far as it can be told: its indent
/// width and whether it ends with a newline.
fn render(value: &Value, original: &[u8]) -> Result<Vec<u8>, Error> {
    let text = String::from_utf8_lossy(original);
    let indent =
        text.lines().skip(1).find(|l| !l.trim().is_empty()).map_or(2, |l| l.len() - l.trim_start().len()).clamp(1, 8);
    let indent_text =
        if text.lines().nth(1).is_some_and(|l| l.starts_with('\t')) { "\t".to_owned() } else { " ".repeat(indent) };
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent_text.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(value, &mut ser).map_err(Error::Render)?;
    if original.ends_with(b"\n") {
        out.push(b'\n');
    }
    Ok(out)
}

/// Wraps the configuration at `path`; with `dry_run` only says what would change.
pub fn wrap(path: &Path, policy: Option<&Path>, dry_run: bool, out: &mut impl Write) -> Result<Changes, Error> {
    let (bytes, mut config) = read(path)?;
    let toolgate = std::env::current_exe().map_err(Error::CurrentExe)?;
    let changes = wrap_config(&mut config, &toolgate.display().to_string(), policy);
    report(path, &changes, dry_run, out);
    if dry_run || changes.changed.is_empty() {
        return Ok(changes);
    }
    let backup = backup_path(path);
    if !backup.exists() {
        std::fs::write(&backup, &bytes).map_err(|source| Error::Backup { path: backup.clone(), source })?;
        let _ = writeln!(out, "backup: {}", backup.display());
    }
    let wrapped = render(&config, &bytes)?;
    write_whole(path, &wrapped)?;
    std::fs::write(stamp_path(path), digest(&wrapped)).map_err(Error::Stamp)?;
    Ok(changes)
}

/// Takes toolgate away again: the backup when the file is as `wrap` left it, else entry by entry.
pub fn unwrap(path: &Path, dry_run: bool, out: &mut impl Write) -> Result<Changes, Error> {
    let (bytes, mut config) = read(path)?;
    let changes = unwrap_config(&mut config);
    report(path, &changes, dry_run, out);
    if dry_run || changes.changed.is_empty() {
        return Ok(changes);
    }
    let (backup, stamp) = (backup_path(path), stamp_path(path));
    let untouched = std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == digest(&bytes));
    if untouched && let Ok(original) = std::fs::read(&backup) {
        write_whole(path, &original)?;
        let _ = std::fs::remove_file(&backup);
        let _ = std::fs::remove_file(&stamp);
        let _ = writeln!(out, "restored {} from its backup", path.display());
    } else {
        write_whole(path, &render(&config, &bytes)?)?;
        let _ = std::fs::remove_file(&stamp);
        let _ = writeln!(
            out,
            "{} changed since it was wrapped: unwrapped entry by entry (the backup stays)",
            path.display()
        );
    }
    Ok(changes)
}

fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("toolgate-tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| Error::Write { path: path.to_owned(), source })
}

fn report(path: &Path, changes: &Changes, dry_run: bool, out: &mut impl Write) {
    let _ = writeln!(out, "{}:", path.display());
    for line in &changes.changed {
        let _ = writeln!(out, "  {}{line}", if dry_run { "would change " } else { "" });
    }
    for line in &changes.unchanged {
        let _ = writeln!(out, "  {line}: already as wanted");
    }
    for line in &changes.skipped {
        let _ = writeln!(out, "  left alone: {line}");
    }
    if changes.changed.is_empty() {
        let _ = writeln!(out, "  nothing to change");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOLGATE: &str = "/usr/bin/toolgate";

    fn wrapped(config: &Value) -> (Value, Changes) {
        let mut config = config.clone();
        let changes = wrap_config(&mut config, TOOLGATE, Some(Path::new("/p.toml")));
        (config, changes)
    }

    /// Wraps, checks that wrapping again changes nothing, unwraps entry by entry: the same
    /// value, keys in the same order.
    fn round_trip(config: Value) -> Value {
        let (wrapped, changes) = wrapped(&config);
        assert!(!changes.changed.is_empty(), "{changes:?}");
        let (again, twice) = self::wrapped(&wrapped);
        assert_eq!(again, wrapped);
        assert!(twice.changed.is_empty(), "{twice:?}");
        let mut unwrapped = wrapped.clone();
        let back = unwrap_config(&mut unwrapped);
        assert!(back.skipped.is_empty(), "{back:?}");
        assert_eq!(serde_json::to_string(&unwrapped).unwrap(), serde_json::to_string(&config).unwrap());
        wrapped
    }

    fn strings(value: &Value) -> Vec<&str> {
        value.as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect()
    }

    #[test]
    fn a_claude_code_http_entry_runs_toolgate_with_its_headers_in_env() {
        let config = json!({"mcpServers": {"bank": {
            "type": "http",
            "url": "https://mcp.bank.example/mcp?tenant=${TENANT}",
            "headers": {"Authorization": "Bearer ${BANK_TOKEN:-none}", "X-Api-Key": "literal-s3cret"},
            "timeout": 5000
        }}});
        let wrapped = round_trip(config);
        let entry = &wrapped["mcpServers"]["bank"];
        assert_eq!(entry["type"], "stdio");
        assert_eq!(entry["command"], TOOLGATE);
        assert_eq!(
            strings(&entry["args"]),
            [
                "run",
                "--name",
                "bank",
                "--policy",
                "/p.toml",
                "--url",
                "https://mcp.bank.example/mcp?tenant=${TENANT}",
                "--header-env",
                "Authorization=TOOLGATE_HEADER_AUTHORIZATION",
                "--header-env",
                "X-Api-Key=TOOLGATE_HEADER_X_API_KEY"
            ]
        );
        assert!(!entry["args"].to_string().contains("s3cret"), "no secret on the command line");
        // The client interpolates env as it did headers: `${BANK_TOKEN:-none}` stays its to fill.
        assert_eq!(
            entry["env"],
            json!({"TOOLGATE_HEADER_AUTHORIZATION": "Bearer ${BANK_TOKEN:-none}", "TOOLGATE_HEADER_X_API_KEY": "literal-s3cret"})
        );
        assert_eq!(entry["timeout"], 5000, "other keys stay");
        let keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["type", "command", "args", "env", "timeout"], "in the entry's own order");
    }

    #[test]
    fn an_existing_env_is_kept_and_never_clobbered() {
        let config = json!({"servers": {"gh": {
            "type": "http",
            "url": "https://api.githubcopilot.com/mcp/",
            "headers": {"Authorization": "Bearer ${input:gh-token}"},
            "env": {"TOOLGATE_HEADER_AUTHORIZATION": "the user's own", "OTHER": "${env:HOME}"},
            "dev": {"watch": "x"}
        }}});
        let wrapped = round_trip(config);
        let entry = &wrapped["servers"]["gh"];
        assert_eq!(strings(&entry["args"])[7..], ["--header-env", "Authorization=TOOLGATE_HEADER_AUTHORIZATION_2"]);
        assert_eq!(entry["env"]["TOOLGATE_HEADER_AUTHORIZATION"], "the user's own");
        assert_eq!(entry["env"]["TOOLGATE_HEADER_AUTHORIZATION_2"], "Bearer ${input:gh-token}");
        assert_eq!(entry["env"]["OTHER"], "${env:HOME}");
    }

    #[test]
    fn a_cursor_entry_without_type_stays_without_type() {
        let config = json!({"mcpServers": {"ctx": {
            "url": "https://mcp.context7.com/mcp",
            "headers": {"CONTEXT7_API_KEY": "${env:CONTEXT7_API_KEY}"}
        }, "plain": {"url": "http://127.0.0.1:8000/mcp"}}});
        let wrapped = round_trip(config);
        let entry = &wrapped["mcpServers"]["ctx"];
        assert!(entry.get("type").is_none(), "{entry}");
        assert_eq!(entry["env"]["TOOLGATE_HEADER_CONTEXT7_API_KEY"], "${env:CONTEXT7_API_KEY}");
        let plain = &wrapped["mcpServers"]["plain"];
        assert!(plain.get("env").is_none(), "no headers, no env: {plain}");
        assert_eq!(strings(&plain["args"])[5..], ["--url", "http://127.0.0.1:8000/mcp"]);
    }

    #[test]
    fn what_toolgate_cannot_carry_is_left_alone_with_why() {
        let config = json!({"mcpServers": {
            "helper": {"type": "http", "url": "https://x.example/mcp", "headersHelper": "/bin/get-headers"},
            "ws": {"type": "ws", "url": "wss://x.example/mcp"},
            "own": {"type": "http", "url": "https://x.example/mcp", "headers": {"Accept": "text/html"}},
            "creds": {"type": "http", "url": "https://me:pw@x.example/mcp"},
            "eq": {"type": "http", "url": "https://x.example/mcp", "headers": {"X=Y": "v"}},
        }});
        let (after, changes) = wrapped(&config);
        assert_eq!(after, config, "nothing changed");
        let skipped = changes.skipped.join("\n");
        for expected in [
            "helper: a remote server with `headersHelper`",
            "ws: type \"ws\"",
            "own: --header Accept: toolgate sets this header itself",
            "creds: --url must not carry a user name or password",
            "eq: header \"X=Y\" is not an HTTP header name",
        ] {
            assert!(skipped.contains(expected), "{expected:?} in {skipped}");
        }
        assert!(!skipped.contains("pw"), "{skipped}");
    }

    #[test]
    fn entries_of_the_2024_11_05_transport_are_wrapped_and_get_their_type_back() {
        let config = json!({"mcpServers": {
            "old": {"type": "sse", "url": "https://mcp.asana.com/sse"},
            "old-keyed": {"type": "sse", "url": "https://x.example/sse", "headers": {"X-Key": "${KEY}"}, "timeout": 5},
            "cursor-old": {"url": "https://example.com/sse/"},
        }});
        let (mut wrapped, changes) = wrapped(&config);
        assert_eq!(changes.changed.len(), 3, "{changes:?}");
        let old = &wrapped["mcpServers"]["old"];
        assert_eq!(old["type"], "stdio");
        assert_eq!(strings(&old["args"])[5..], ["--url", "https://mcp.asana.com/sse"]);
        assert_eq!(old["env"], json!({"TOOLGATE_WRAPPED_TYPE": "sse"}));
        assert!(wrapped["mcpServers"]["cursor-old"].get("type").is_none(), "Cursor's own spelling stays");
        // Entry by entry (not from the backup): each comes back as it was.
        unwrap_config(&mut wrapped);
        assert_eq!(wrapped, config);
    }

    #[test]
    fn unwrap_after_an_edit_goes_by_args_and_env() {
        let config = json!({"mcpServers": {"api": {
            "type": "http", "url": "https://x.example/mcp", "headers": {"X-Key": "${KEY}"}, "env": {}
        }}});
        let (mut wrapped, _) = wrapped(&config);
        // The user adds a variable of their own: it stays; toolgate's goes back into headers.
        wrapped["mcpServers"]["api"]["env"]["MINE"] = json!("1");
        unwrap_config(&mut wrapped);
        assert_eq!(
            wrapped["mcpServers"]["api"],
            json!({"type": "http", "url": "https://x.example/mcp", "headers": {"X-Key": "${KEY}"}, "env": {"MINE": "1"}})
        );

        // A variable gone from env: the header cannot be rebuilt, so the entry stays wrapped.
        let (mut wrapped, _) = self::wrapped(&config);
        wrapped["mcpServers"]["api"]["env"] = json!({});
        let before = wrapped.clone();
        let changes = unwrap_config(&mut wrapped);
        assert_eq!(wrapped, before);
        assert!(changes.skipped[0].contains("TOOLGATE_HEADER_X_KEY, which its `env` no longer holds"), "{changes:?}");
    }

    #[test]
    fn a_hand_written_remote_entry_unwraps_too() {
        let mut config = json!({"mcpServers": {"docs": {
            "command": "toolgate", "args": ["run", "--url", "https://d.example/mcp", "--header", "X-A=b"]
        }}});
        unwrap_config(&mut config);
        assert_eq!(config["mcpServers"]["docs"], json!({"url": "https://d.example/mcp", "headers": {"X-A": "b"}}));
    }
}
