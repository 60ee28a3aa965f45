//! `toolgate replay`: the decisions a policy takes on recorded traffic, and with `--against`,
//! which of them another policy changes. A recording is a transcript (`toolgate record`, the
//! format of `fixtures/`) or an audit log; both are read line by line, each line telling which
//! it is.
//!
//! A recorded call is decided as the proxy decided it: toolgate's confidence property is read
//! from a transcript's call and taken out of its arguments (an audit log recorded both apart
//! already), unless the tool's own schema has a property of that name; and a transcript's call is
//! checked against the schema its tool was last listed with (`[settings] arguments`). Audit logs
//! hold no schemas: their calls are judged on every reading.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::confidence;
use crate::policy::{Annotations, Call, Decision, Gate, Policy};
use crate::visible::{json, visible};

/// One recorded `tools/call`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    /// Its line in the recording (counted across an audit log's segments, oldest first).
    pub line: usize,
    pub server: String,
    pub tool: String,
    /// Without toolgate's confidence property.
    pub arguments: Map<String, Value>,
    pub annotations: Option<Annotations>,
    /// The confidence the call reported in toolgate's property.
    pub confidence: Option<f64>,
    /// The arguments against the schema the tool was last listed with in the transcript;
    /// `None` when the recording listed no tools before the call.
    pub checked: Option<crate::conformity::Verdict>,
}

/// Why a recording cannot be read or played.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}:{line}: not a JSON line: {source}", path.display())]
    NotJsonLine { path: PathBuf, line: usize, source: serde_json::Error },
    /// Reading the client's lines or writing the server's failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not JSON ({source}): {line}")]
    NotJson { line: String, source: serde_json::Error },
    #[error("a line the recording does not have: {0}")]
    Unexpected(String),
}

/// The lines of a recording, each with the file it is in and its line there. An audit log is read
/// across its segments, oldest first (a transcript has no segments, and is read alone).
fn read_lines(path: &Path) -> Result<Vec<(Arc<Path>, usize, String)>, Error> {
    let mut lines = Vec::new();
    let mut current: Option<Arc<Path>> = None;
    crate::audit::segments::read_lines(path, |segment, n, line| {
        let file = match &current {
            Some(file) if **file == *segment.path => Arc::clone(file),
            _ => Arc::clone(current.insert(segment.path.as_path().into())),
        };
        let text = String::from_utf8(line.to_vec()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        lines.push((file, n, text));
        Ok(std::ops::ControlFlow::Continue(()))
    })
    .map_err(|source| Error::Read { path: path.to_owned(), source })?;
    Ok(lines)
}

/// The calls in a recording, in order. `server` names the server of a transcript whose
/// decisions do not say it.
pub fn calls(path: &Path, server: &str) -> Result<Vec<RecordedCall>, Error> {
    let lines = read_lines(path)?;
    let mut annotations: HashMap<String, Annotations> = HashMap::new();
    let mut tools = crate::conformity::Tools::default();
    // Whether the next tools/list answer begins a listing (the one before it had no next page).
    let mut listing_begins = true;
    // Tools whose own schema has a property named like toolgate's.
    let mut native: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    let mut server = server.to_owned();
    for (i, (segment, line_in_segment, raw)) in lines.iter().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let entry: Value = serde_json::from_str(raw).map_err(|source| Error::NotJsonLine {
            path: segment.to_path_buf(),
            line: *line_in_segment,
            source,
        })?;
        // An audit log's decision record.
        if entry.get("event").and_then(Value::as_str) == Some("decision") {
            let text = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            out.push(RecordedCall {
                line: i + 1,
                server: text("server"),
                tool: text("tool"),
                arguments: entry.get("arguments").and_then(Value::as_object).cloned().unwrap_or_default(),
                annotations: None,
                confidence: entry.get("confidence").and_then(Value::as_f64),
                checked: None,
            });
            continue;
        }
        let dir = entry.get("dir").and_then(Value::as_str);
        if dir == Some("session") {
            if let Some(name) = entry.get("server").and_then(Value::as_str) {
                server = name.to_owned();
            }
            continue;
        }
        let Some(line) = entry.get("line").and_then(Value::as_str) else { continue };
        let Ok(message) = serde_json::from_str::<Value>(line) else { continue };
        match dir {
            Some("s2c") => {
                if let Some(listed) = message.pointer("/result/tools").and_then(Value::as_array) {
                    let last = message.pointer("/result/nextCursor").is_none();
                    tools.learn(listed, listing_begins, last);
                    listing_begins = last;
                }
                for tool in message.pointer("/result/tools").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(name) = tool.get("name").and_then(Value::as_str) {
                        annotations.insert(name.to_owned(), Annotations::from_tool(tool));
                        if confidence::is_the_tools_own(tool) {
                            native.insert(name.to_owned());
                        }
                    }
                }
            }
            Some("c2s")
                if message.get("method").and_then(Value::as_str) == Some("tools/call")
                    && message.get("id").is_some() =>
            {
                let Some(tool) = message.pointer("/params/name").and_then(Value::as_str) else { continue };
                let mut arguments =
                    message.pointer("/params/arguments").and_then(Value::as_object).cloned().unwrap_or_default();
                let (_, confidence) =
                    if native.contains(tool) { (false, None) } else { confidence::take(&mut arguments) };
                let checked = match tools.check(tool, &mut arguments) {
                    crate::conformity::Verdict::Unlisted => None,
                    verdict => Some(verdict),
                };
                out.push(RecordedCall {
                    line: i + 1,
                    server: server.clone(),
                    tool: tool.to_owned(),
                    arguments,
                    annotations: annotations.get(tool).copied(),
                    confidence,
                    checked,
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The decision `policy` takes on a recorded call, with the confidence it reported, its
/// arguments checked against the tool's schema as the proxy checks them. Paths are read
/// lexically: the server's folders and disk are not the recording's.
pub fn decide(policy: &Policy, call: &RecordedCall) -> Decision {
    let schema = match &call.checked {
        Some(crate::conformity::Verdict::Conforms(schema)) => Some(schema.clone()),
        _ => None,
    };
    let context =
        crate::policy::reading::Context { schema: schema.as_deref(), ..crate::policy::reading::Context::lexical() };
    let mut decision = policy.decide(
        &Call::new(&call.server, &call.tool, &call.arguments)
            .with_annotations(call.annotations)
            .with_confidence(call.confidence)
            .with_context(context),
    );
    if let Some(verdict) = &call.checked {
        crate::conformity::apply(policy.settings.arguments, verdict, &call.tool, &mut decision);
    }
    decision
}

fn why(decision: &Decision) -> String {
    let rules: Vec<String> = decision.deciding_rules().map(|r| format!("{r:?}")).collect();
    match rules.len() {
        0 => {
            let reason = decision.reason.as_deref().map(|r| visible(r).into_owned());
            reason.unwrap_or_else(|| format!("no rule: the default tier, {}", decision.tier.as_str()))
        }
        1 => format!("rule {}", rules[0]),
        _ => format!("rules {}", rules.join(", ")),
    }
}

/// Prints each call's decision under `policy`.
pub fn show(calls: &[RecordedCall], policy: &Policy, out: &mut impl Write) {
    for call in calls {
        let d = decide(policy, call);
        let (server, tool) = (visible(&call.server), visible(&call.tool));
        let _ = writeln!(out, "line {:>4}  {server}/{tool}  {}  ({})", call.line, d.gate.as_str(), why(&d));
    }
    let _ = writeln!(out, "{} calls", calls.len());
}

/// Prints the calls whose gate differs between `a` and `b`, and a summary; returns how many.
pub fn compare(calls: &[RecordedCall], a: &Policy, b: &Policy, out: &mut impl Write) -> usize {
    let mut changes: Vec<((Gate, Gate), usize)> = Vec::new();
    let mut changed = 0;
    for call in calls {
        let (da, db) = (decide(a, call), decide(b, call));
        if da.gate == db.gate {
            continue;
        }
        changed += 1;
        let args = json(&Value::Object(call.arguments.clone()).to_string()).into_owned();
        let short: String = args.chars().take(60).collect();
        let _ = writeln!(
            out,
            "line {:>4}  {}/{} {short}  {} → {}  ({} → {})",
            call.line,
            visible(&call.server),
            visible(&call.tool),
            da.gate.as_str(),
            db.gate.as_str(),
            why(&da),
            why(&db)
        );
        match changes.iter_mut().find(|(k, _)| *k == (da.gate, db.gate)) {
            Some((_, n)) => *n += 1,
            None => changes.push(((da.gate, db.gate), 1)),
        }
    }
    let summary: Vec<String> =
        changes.iter().map(|((from, to), n)| format!("{} → {}: {n}", from.as_str(), to.as_str())).collect();
    let _ = writeln!(
        out,
        "{} calls, {changed} changed{}",
        calls.len(),
        if summary.is_empty() { String::new() } else { format!(" ({})", summary.join(", ")) }
    );
    changed
}

/// `toolgate replay FILE --serve`: plays the server side of a transcript on stdin/stdout, as a
/// fake server. Each line received must match (as JSON) a recorded client line, in order (a
/// recorded line that never comes, because toolgate refused it, is skipped with its answers);
/// the server lines recorded after it are written byte for byte. A recorded call matches as the
/// client sent it or as toolgate forwards it, without toolgate's confidence property. A line
/// that matches nothing ends the replay with an error: the session is not the recorded one.
pub fn serve(path: &Path, input: impl std::io::BufRead, out: &mut impl Write) -> Result<(), Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let mut native: HashSet<String> = HashSet::new();
    let mut entries: Vec<Recorded> = Vec::new();
    for entry in text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
        let Some(line) = entry.get("line").and_then(Value::as_str) else { continue };
        let message = serde_json::from_str::<Value>(line).ok();
        match entry.get("dir").and_then(Value::as_str) {
            Some("c2s") => entries.push(Recorded::Client(forms(message, &native))),
            Some("s2c") => {
                let tools = message.as_ref().and_then(|m| m.pointer("/result/tools")).and_then(Value::as_array);
                for tool in tools.into_iter().flatten().filter(|t| confidence::is_the_tools_own(t)) {
                    native.extend(tool.get("name").and_then(Value::as_str).map(str::to_owned));
                }
                entries.push(Recorded::Server(line.to_owned()));
            }
            _ => {}
        }
    }
    let mut pos = 0;
    let emit = |pos: &mut usize, out: &mut dyn Write| -> io::Result<()> {
        while let Some(Recorded::Server(line)) = entries.get(*pos) {
            writeln!(out, "{line}")?;
            *pos += 1;
        }
        out.flush()
    };
    emit(&mut pos, out)?;
    for line in input.lines() {
        let line = line?;
        let got: Value = match serde_json::from_str(&line) {
            Ok(got) => got,
            Err(source) => return Err(Error::NotJson { line, source }),
        };
        let found =
            (pos..entries.len()).find(|&i| matches!(&entries[i], Recorded::Client(forms) if forms.contains(&got)));
        let Some(i) = found else {
            return Err(Error::Unexpected(line));
        };
        pos = i + 1;
        emit(&mut pos, out)?;
    }
    Ok(())
}

/// A line of a transcript, as `serve` plays it.
enum Recorded {
    /// A client line, in each form it may arrive in (none when it is not JSON).
    Client(Vec<Value>),
    /// A server line, written as recorded.
    Server(String),
}

/// The forms a recorded client message may reach the server in: as sent, and for a call that
/// carried toolgate's confidence property (a tool whose own schema does not have one), without
/// it.
fn forms(message: Option<Value>, native: &HashSet<String>) -> Vec<Value> {
    let Some(message) = message else { return Vec::new() };
    let call = message.get("method").and_then(Value::as_str) == Some("tools/call");
    let tool = message.pointer("/params/name").and_then(Value::as_str);
    if !call || tool.is_none_or(|t| native.contains(t)) {
        return vec![message];
    }
    let mut forwarded = message.clone();
    let took = forwarded
        .pointer_mut("/params/arguments")
        .and_then(Value::as_object_mut)
        .is_some_and(|arguments| arguments.shift_remove(confidence::PROPERTY).is_some());
    if took { vec![message, forwarded] } else { vec![message] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transcripts_call_is_checked_against_the_schema_its_tool_was_listed_with() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.jsonl");
        let lines = [
            r#"{"dir":"c2s","line":"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}"}"#,
            r#"{"dir":"s2c","line":"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"wipe\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"recursive\":{\"type\":\"boolean\"}}}}]}}"}"#,
            r#"{"dir":"c2s","line":"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"wipe\",\"arguments\":{\"recursive\":\"true\"}}}"}"#,
            r#"{"dir":"c2s","line":"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"wipe\",\"arguments\":{\"recursive\":false}}}"}"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let calls = calls(&path, "fs").unwrap();
        let gates = |setting: &str| -> Vec<Gate> {
            let policy = Policy::from_toml(
                &format!(
                    "[settings]\ndefault_tier = \"low\"\narguments = \"{setting}\"\n\
                     [[rules]]\nname = \"no recursive wipes\"\ntools = [\"wipe\"]\n\
                     args = {{ \"/recursive\" = {{ equals = true }} }}\naction = \"ask\"\n"
                ),
                "p.toml",
            )
            .unwrap();
            calls.iter().map(|c| decide(&policy, c).gate).collect()
        };
        // Strict: "true" is no boolean, so the call is refused as the proxy refuses it.
        assert_eq!(gates("strict"), [Gate::Deny, Gate::Allow]);
        // Off: it is judged on every reading, and pydantic reads "true" as True.
        assert_eq!(gates("off"), [Gate::Ask, Gate::Allow]);
    }
}
