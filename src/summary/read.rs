//! The decision records of the audit log, as the summary reads them: only what it counts.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};

/// One decision record.
#[derive(Debug, Clone)]
pub struct Decision {
    pub at: SystemTime,
    pub server: String,
    pub tool: String,
    pub arguments: Map<String, Value>,
    pub gate: String,
    /// Every rule that matched.
    pub rules: Vec<String>,
    pub verdict: String,
    pub decided_by: String,
    pub channel: Option<String>,
    pub note: Option<String>,
    pub waited_ms: u64,
    /// The call ran with arguments a person edited.
    pub edited: bool,
}

/// A record about no call: a line toolgate refused, a policy that failed to reload.
#[derive(Debug, Clone)]
pub struct Note {
    pub at: SystemTime,
    /// `refused_line` or `reload_failed`.
    pub event: String,
    /// The proxy's server (absent in records written before it was kept).
    pub server: Option<String>,
    /// Who sent a refused line: client, server or approver.
    pub from: Option<String>,
    /// Why it was refused, or the policy's errors.
    pub reason: Option<String>,
}

/// What the summary reads of an audit log.
#[derive(Debug, Default)]
pub struct Log {
    pub decisions: Vec<Decision>,
    pub notes: Vec<Note>,
}

#[derive(Deserialize)]
struct Line {
    event: Option<String>,
    from: Option<String>,
    reason: Option<String>,
    errors: Option<String>,
    ts: Option<String>,
    server: Option<String>,
    tool: Option<String>,
    #[serde(default)]
    arguments: Map<String, Value>,
    edited_arguments: Option<Value>,
    gate: Option<String>,
    #[serde(default)]
    rules: Vec<String>,
    verdict: Option<String>,
    decided_by: Option<String>,
    channel: Option<String>,
    note: Option<String>,
    #[serde(default)]
    waited_ms: u64,
}

/// Every decision record and note of the log (all its segments) written between `since` and
/// `until`, oldest first: months of log are read for a week's summary, and only the week is
/// kept. Other lines (outcomes, lines from before the chain, a line cut short) are passed over;
/// `audit verify` judges the log's integrity, not this.
pub fn read_log(path: &Path, since: SystemTime, until: SystemTime) -> std::io::Result<Log> {
    let mut out = Log::default();
    let read = crate::audit::segments::read_lines(path, |_, _, line| {
        if let Ok(record) = serde_json::from_slice::<Line>(line) {
            out.take(record, since, until);
        }
        Ok(ControlFlow::Continue(()))
    });
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Log::default()),
        Err(e) => Err(e),
        Ok(()) => Ok(out),
    }
}

impl Log {
    /// Keeps a record if it is a decision or a note of the period.
    fn take(&mut self, record: Line, since: SystemTime, until: SystemTime) {
        let Some(at) = record.ts.as_deref().and_then(|ts| humantime::parse_rfc3339_weak(ts).ok()) else { return };
        if at < since || at > until {
            return;
        }
        match record.event.as_deref() {
            Some("decision") => {}
            Some(event @ ("refused_line" | "reload_failed")) => {
                let reason = record.reason.or(record.errors);
                let (event, server) = (event.to_owned(), record.server.clone());
                self.notes.push(Note { at, event, server, from: record.from, reason });
                return;
            }
            _ => return,
        }
        let (Some(server), Some(tool), Some(gate), Some(verdict), Some(decided_by)) =
            (record.server, record.tool, record.gate, record.verdict, record.decided_by)
        else {
            return;
        };
        self.decisions.push(Decision {
            at,
            server,
            tool,
            arguments: record.arguments,
            gate,
            rules: record.rules,
            verdict,
            decided_by,
            channel: record.channel,
            note: record.note,
            waited_ms: record.waited_ms,
            edited: record.edited_arguments.is_some(),
        });
    }
}

impl Decision {
    /// Who settled the call, as the summary counts them: a person's answer from the review
    /// queue is `review`, any other is `person`.
    pub fn decider(&self) -> &str {
        match (self.decided_by.as_str(), self.channel.as_deref()) {
            ("human", Some("review")) => "review",
            ("human", _) => "person",
            (other, _) => other,
        }
    }

    /// The UTC day it was decided, `YYYY-MM-DD`.
    pub fn day(&self) -> String {
        humantime::format_rfc3339_seconds(self.at).to_string()[..10].to_owned()
    }

    /// Refused because no person could be reached.
    pub fn unreachable(&self) -> bool {
        self.verdict == "refused"
            && self.decided_by == "toolgate"
            && self.note.as_deref().is_some_and(|n| n.starts_with("needs a human, and no approval channel"))
    }

    /// A digest of the arguments that does not depend on the order of their keys.
    pub fn arguments_digest(&self) -> String {
        crate::wire::canonical::sha256_hex(&Value::Object(self.arguments.clone()))
    }
}
