//! `toolgate wrap` / `unwrap`: put toolgate in front of every stdio MCP server of a client's
//! configuration, and take it away again.
//!
//! Each stdio entry `{"command": C, "args": A}` becomes `{"command": TOOLGATE, "args": ["run",
//! "--name", NAME, ("--policy", P,) "--", C, A...]}`; everything else in the entry (env, type,
//! ...) stays. Entries that already run toolgate are left alone, so wrapping twice changes
//! nothing. Remote servers (a `url`, or `type` other than `stdio`) cannot be wrapped and are
//! listed. Before the first change the file is copied to `FILE.toolgate-backup`; `unwrap`
//! restores that copy byte for byte when the file is still as `wrap` left it, and otherwise
//! unwraps entry by entry.

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

/// Wraps every stdio entry of `config`.
fn wrap_config(config: &mut Value, toolgate: &str, policy: Option<&Path>) -> Changes {
    let mut changes = Changes::default();
    for table in server_tables(config) {
        for (name, entry) in table.iter_mut() {
            let Some(entry) = entry.as_object_mut() else { continue };
            let kind = entry.get("type").and_then(Value::as_str).unwrap_or("stdio");
            if entry.contains_key("url") || kind != "stdio" || !entry.contains_key("command") {
                changes.skipped.push(format!("{name}: a remote server ({kind}); toolgate gates stdio servers only"));
                continue;
            }
            if is_toolgate(entry) {
                changes.unchanged.push(name.clone());
                continue;
            }
            let before = shown(entry);
            let mut args = vec![json!("run"), json!("--name"), json!(name)];
            if let Some(policy) = policy {
                args.extend([json!("--policy"), json!(policy.display().to_string())]);
            }
            args.push(json!("--"));
            args.push(entry.get("command").cloned().unwrap_or(Value::Null));
            args.extend(entry.get("args").and_then(Value::as_array).cloned().unwrap_or_default());
            entry.insert("command".into(), json!(toolgate));
            entry.insert("args".into(), Value::Array(args));
            changes.changed.push(format!("{name}: {before}  →  {}", shown(entry)));
        }
    }
    changes
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
                changes.skipped.push(format!("{name}: runs toolgate without `--`; left as it is"));
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
