//! `toolgate audit show`: the history of decisions, one line each with its outcome, filtered by
//! tool, server, decision, who decided and time; or the matching records as JSON lines.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use crate::visible::{json, visible};

/// Which decisions to show.
#[derive(Debug, Default)]
pub struct Filter {
    /// A glob on the tool's name.
    pub tool: Option<globset::GlobMatcher>,
    /// A glob on the server's name.
    pub server: Option<globset::GlobMatcher>,
    /// A gate (`allow`, `ask`, ...) or a verdict (`forwarded`, `refused`, `dropped`).
    pub decision: Option<String>,
    /// `policy`, `human`, `timeout`, `timer`, `client` or `toolgate`.
    pub decided_by: Option<String>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
}

impl Filter {
    fn matches(&self, record: &Value) -> bool {
        let text = |key: &str| record.get(key).and_then(Value::as_str).unwrap_or_default();
        let time = humantime::parse_rfc3339_weak(text("ts")).ok();
        self.tool.as_ref().is_none_or(|g| g.is_match(text("tool")))
            && self.server.as_ref().is_none_or(|g| g.is_match(text("server")))
            && self.decision.as_deref().is_none_or(|d| d == text("gate") || d == text("verdict"))
            && self.decided_by.as_deref().is_none_or(|d| d == text("decided_by"))
            && self.since.is_none_or(|since| time.is_some_and(|t| t >= since))
            && self.until.is_none_or(|until| time.is_some_and(|t| t <= until))
    }
}

/// How a call that ran ended: its outcome record's `outcome` and `ms`.
struct Ran {
    outcome: Box<str>,
    ms: Value,
}

/// The fields every record begins with that tell what it is, and an outcome's, read without
/// building the rest.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session: Option<Cow<'a, str>>,
    call: Option<u64>,
    /// An outcome record's own fields (absent from other records).
    outcome: Option<Value>,
    ms: Option<Value>,
}

/// Writes the matching decisions of every segment of the log, oldest first; returns how many
/// there were. Lines that are not records are skipped (`verify` is the place to hear about them).
///
/// The log is read twice, as a stream: first for how each call ended (an outcome record
/// follows its decision, often much later), then for the decisions, each printed as it is
/// read. Months of records need the memory of their outcomes, not of the whole log.
pub fn show(path: &Path, filter: &Filter, json: bool, out: &mut (impl Write + ?Sized)) -> io::Result<usize> {
    let segments = super::segments::list(path)?;
    // Outcomes by session, then call: a session's name is kept once, not once per call.
    let mut ran: HashMap<String, HashMap<u64, Ran>> = HashMap::new();
    super::segments::read_segments(&segments, |_, _, bytes| {
        let Ok(Kind { event: Some(event), session: Some(session), call: Some(call), outcome, ms }) =
            serde_json::from_slice(bytes)
        else {
            return Ok(ControlFlow::Continue(()));
        };
        if event == "outcome" {
            let outcome = outcome.as_ref().and_then(Value::as_str).unwrap_or("?").into();
            let ms = ms.unwrap_or(Value::Null);
            let calls = match ran.get_mut(session.as_ref()) {
                Some(calls) => calls,
                None => ran.entry(session.into_owned()).or_default(),
            };
            calls.insert(call, Ran { outcome, ms });
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let mut shown = 0;
    super::segments::read_segments(&segments, |_, _, bytes| {
        match serde_json::from_slice::<Kind>(bytes) {
            Ok(Kind { event: Some(event), .. }) if event == "decision" => {}
            _ => return Ok(ControlFlow::Continue(())),
        }
        let Ok(mut record) = serde_json::from_slice::<Value>(bytes) else { return Ok(ControlFlow::Continue(())) };
        if !filter.matches(&record) {
            return Ok(ControlFlow::Continue(()));
        }
        shown += 1;
        let session = record["session"].as_str().unwrap_or_default();
        let call = record["call"].as_u64().unwrap_or(0);
        let outcome = ran.get(session).and_then(|calls| calls.get(&call));
        if json {
            if let Some(o) = outcome {
                record["outcome"] = serde_json::json!({"outcome": &*o.outcome, "ms": o.ms});
            }
            writeln!(out, "{}", crate::visible::to_json(&record).unwrap_or_default())?;
        } else {
            writeln!(out, "{}", line(&record, outcome))?;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(shown)
}

/// One decision as a person reads it; every string from the record shown escaped (`visible`),
/// since names and arguments came from a server or a model.
fn line(record: &Value, outcome: Option<&Ran>) -> String {
    let text = |key: &str| visible(record.get(key).and_then(Value::as_str).unwrap_or("?"));
    let ts = text("ts");
    let when = ts.get(..19).unwrap_or(&ts).replace('T', " ");
    let mut out = format!(
        "{when}  {}/{}  {} → {} by {}",
        text("server"),
        text("tool"),
        text("gate"),
        text("verdict"),
        text("decided_by")
    );
    if let Some(channel) = record.get("channel").and_then(Value::as_str) {
        out.push_str(&format!(" ({})", visible(channel)));
    }
    if let Some(o) = outcome {
        out.push_str(&format!(", {} in {} ms", visible(&o.outcome), json(&o.ms.to_string())));
    }
    let rules: Vec<String> = record["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|r| format!("\"{}\"", visible(r)))
        .collect();
    if !rules.is_empty() {
        out.push_str(&format!("  rule {}", rules.join(", ")));
    }
    if let Some(note) = record.get("note").and_then(Value::as_str) {
        out.push_str(&format!("  ({})", visible(note)));
    }
    let args = record.get("arguments").map(|a| json(&a.to_string()).into_owned()).unwrap_or_default();
    let short: String = args.chars().take(100).collect();
    out.push_str(&format!("  {short}{}", if short.len() < args.len() { "…" } else { "" }));
    if record.get("edited_arguments").is_some() {
        out.push_str("  (edited before it ran)");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn hostile() -> Value {
        json!({
            "event": "decision", "ts": "2026-01-01T00:00:00Z", "session": "s", "call": 1,
            "server": "bank\u{202e}", "tool": "pay\r\x1b[2Kread", "gate": "ask", "verdict": "forwarded",
            "decided_by": "human", "channel": "terminal", "rules": ["r\u{2066}"], "note": "n\u{200b}",
            "arguments": {"to": "ACME\u{9b}2J"},
        })
    }

    #[test]
    fn a_record_shows_its_names_rules_and_arguments_escaped() {
        let shown = line(&hostile(), None);
        assert!(!crate::visible::needs_escaping(&shown), "{shown:?}");
        assert!(shown.contains("bank\\u{202e}/pay\\u{d}\\u{1b}[2Kread"), "{shown}");
        assert!(shown.contains("rule \"r\\u{2066}\"  (n\\u{200b})  {\"to\":\"ACME\\u009b2J\"}"), "{shown}");
    }

    #[test]
    fn json_lines_are_exact_and_safe_to_print() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, format!("{}\n", hostile())).unwrap();
        let mut out = Vec::new();
        assert_eq!(show(&path, &Filter::default(), true, &mut out).unwrap(), 1);
        let out = String::from_utf8(out).unwrap();
        assert!(!crate::visible::needs_escaping(out.trim_end()), "{out:?}");
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), hostile());
    }
}
