//! The proxy's side of the review queue (`crate::review`): `notify` calls are added "to review"
//! as they run; `queue` calls are parked, answered at once with their item number, and kept
//! here until a person approves them (`toolgate review --approve N` asks this proxy, over its
//! socket, to run item N). The run goes to the server under an id of toolgate's own, its answer
//! is recorded in the item and the audit log, and it never reaches the client. A parked call is
//! kept as it will be forwarded: without toolgate's confidence property, every other byte as the
//! client wrote it.

use std::collections::HashMap;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::approver_socket::{error_line, result_line};
use super::gate::{self, Decided, Settlement};
use super::session::Session;
use crate::audit::{DecidedBy, DecisionRecord, Outcome, Verdict};
use crate::decided::DecidedCall;
use crate::review::{self, QueueFile, Status};
use crate::wire::{Id, splice};

/// A parked call this proxy can run when it is approved.
struct ParkedCall {
    /// The `tools/call` line as the server is to get it.
    line: Vec<u8>,
    /// The call as the policy that parked it decided it: what the record of its run says.
    call: DecidedCall,
}

/// A run in flight: the reviewer waiting for it.
struct Running {
    item: u64,
    conn: u64,
    rpc: Value,
    call: u64,
    since: Instant,
}

pub(super) struct Parking {
    file: Option<QueueFile>,
    parked: HashMap<u64, ParkedCall>,
    running: HashMap<Id, Running>,
    prefix: String,
    next: u64,
}

impl Parking {
    pub fn new(path: Option<std::path::PathBuf>) -> Parking {
        let mut nonce = [0u8; 8];
        let _ = getrandom::fill(&mut nonce);
        Parking {
            file: path.map(QueueFile::new),
            parked: HashMap::new(),
            running: HashMap::new(),
            prefix: format!("toolgate-run-{:016x}-", u64::from_le_bytes(nonce)),
            next: 1,
        }
    }

    /// Whether a response from the server answers one of toolgate's runs.
    pub fn is_ours(&self, id: &Id) -> bool {
        self.running.contains_key(id)
    }

    /// A `notify` call ran: it goes into the queue "to review".
    pub fn to_review(&self, item: review::Item) {
        let Some(file) = &self.file else { return };
        let tool = item.call.tool.clone();
        if let Err(e) = file.update(|q| q.add(item)) {
            tracing::warn!("cannot add `{tool}` to the review queue: {e}");
        }
    }

    /// A parked call was refused after all (its audit record could not be written): it is no
    /// longer held here, and its item says it never runs, so that no reviewer can run it.
    pub fn unpark(&mut self, item: u64) {
        self.parked.remove(&item);
        let Some(file) = &self.file else { return };
        let marked = file.update(|q| {
            if let Some(parked) = q.items.get_mut(&item) {
                parked.status = Status::Rejected;
                parked.note = Some("toolgate could not write its audit record, so it never runs".to_owned());
                parked.decided_at = Some(crate::clock::now_ms());
            }
        });
        if let Err(e) = marked {
            tracing::error!("cannot mark review item {item} as never to run: {e}; this proxy will not run it");
        }
    }

    /// A `queue` call: parked as an item of the review queue, answered at once with its number.
    /// Without a queue to park it in, it is refused.
    pub fn park(&mut self, session: &mut Session, call: Decided) {
        let tool = call.params.name.clone();
        let line = match gate::for_server(&call, None) {
            None => call.inbound.line.clone(),
            Some(Some(line)) => line,
            Some(None) => {
                let text =
                    format!("toolgate could not prepare this call to `{tool}` for the server, so it was not run.");
                let note = Some("cannot prepare the call for the server".to_owned());
                return gate::settle(
                    session,
                    call,
                    Settlement::Refuse { by: DecidedBy::Toolgate, channel: None, note, text },
                );
            }
        };
        let params = std::str::from_utf8(&line)
            .ok()
            .and_then(|t| splice::member(t.trim_end(), "params"))
            .and_then(|p| serde_json::from_str::<Value>(p).ok());
        let mut item = review::item(Status::Waiting, call.decided.clone());
        item.proxy = Some(std::process::id());
        item.params = params;
        let added = match &self.file {
            Some(file) => file.update(|q| q.add(item)).map_err(|e| e.to_string()),
            None => Err("no place for the review queue (set XDG_STATE_HOME or HOME)".to_owned()),
        };
        let number = match added {
            Ok(number) => number,
            Err(why) => {
                let text = format!(
                    "toolgate should have parked this call to `{tool}` for human review, but the review queue cannot be \
                 written ({why}), so the call was not run. Tell the user."
                );
                let note = Some(format!("the review queue cannot be written: {why}"));
                return gate::settle(
                    session,
                    call,
                    Settlement::Refuse { by: DecidedBy::Toolgate, channel: None, note, text },
                );
            }
        };
        self.parked.insert(number, ParkedCall { line, call: call.decided.clone() });
        let text = format!(
            "toolgate parked this call to `{tool}` for human review as item {number}{}. It has NOT run. It runs only if \
         the user approves it (toolgate review); tell the user it is waiting.",
            gate::rules_clause(&call.decided)
        );
        tracing::info!("parked `{tool}` as review item {number}");
        gate::settle(session, call, Settlement::Park { item: number, text });
    }

    /// A reviewer (approver connection `conn`, request `rpc`) asks this proxy to run an approved
    /// item. Returns the refusal to send the reviewer, if the item does not run; its result goes to
    /// them when the server answers ([`Parking::ran`]).
    pub fn run(&mut self, session: &mut Session, rpc: Value, item: u64, conn: u64) -> Option<Vec<u8>> {
        let refuse = |message: String| Some(error_line(&rpc, -32002, &message));
        let Some(file) = &self.file else { return refuse("this proxy has no review queue".into()) };
        let status = file.read().ok().and_then(|q| q.items.get(&item).map(|i| i.status));
        if status != Some(Status::Approved) {
            return refuse(format!("item {item} is not approved (it is {status:?})"));
        }
        let Some(parked) = self.parked.remove(&item) else {
            return refuse(format!("this proxy does not hold item {item}"));
        };
        let id = Id::Str(format!("{}{}", self.prefix, self.next));
        self.next += 1;
        let Some(line) = std::str::from_utf8(&parked.line)
            .ok()
            .and_then(|t| splice::set_member(t.trim_end(), "id", Some(&id.to_value().to_string())))
        else {
            return refuse(format!("item {item} cannot be prepared for the server"));
        };
        let note = format!("review item {item}, approved");
        let record = DecisionRecord {
            call: &parked.call,
            edited_arguments: None,
            request_id: id.to_value(),
            verdict: Verdict::Forwarded,
            decided_by: DecidedBy::Human,
            channel: Some("review"),
            note: Some(&note),
            waited_ms: 0,
        };
        let call = match session.audit.decision(&record) {
            Ok(call) => call,
            Err(problem) => {
                self.parked.insert(item, parked);
                return refuse(format!("the audit log cannot be written ({problem}); item {item} did not run"));
            }
        };
        tracing::info!("running review item {item} (`{}`), approved by a person", parked.call.tool);
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        self.running.insert(id, Running { item, conn, rpc, call, since: session.now });
        session.send_server(bytes);
        None
    }

    /// The server is gone (it exited with `status`): every run still in flight ends without an
    /// answer. Returns each reviewer's connection and the line that tells them.
    pub fn abandon_runs(&mut self, session: &mut Session, status: i32) -> Vec<(u64, Vec<u8>)> {
        let mut told = Vec::new();
        for (_, running) in std::mem::take(&mut self.running) {
            session.audit.outcome(
                running.call,
                Outcome::NoAnswer,
                session.now.saturating_duration_since(running.since),
            );
            let message =
                format!("the MCP server exited (status {status}) before it answered the run of item {}", running.item);
            told.push((running.conn, error_line(&running.rpc, -32000, &message)));
        }
        told
    }

    /// The server answered a run: the result goes into the item and the audit log. Returns the
    /// reviewer's connection and the line that tells them.
    pub fn ran(&mut self, session: &mut Session, id: &Id, line: &[u8]) -> Option<(u64, Vec<u8>)> {
        let running = self.running.remove(id)?;
        let message: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
        let (result, outcome) = match (message.get("result"), message.get("error")) {
            (Some(r), _) if r.get("isError") == Some(&Value::Bool(true)) => (r.clone(), Outcome::ToolError),
            (Some(r), _) => (r.clone(), Outcome::Ok),
            (None, Some(e)) => (json!({"error": e}), Outcome::Error),
            (None, None) => (Value::Null, Outcome::Error),
        };
        session.audit.outcome(running.call, outcome, session.now.saturating_duration_since(running.since));
        if let Some(file) = &self.file {
            let recorded = file.update(|q| {
                if let Some(item) = q.items.get_mut(&running.item) {
                    item.status = Status::Ran;
                    item.result = Some(result.clone());
                }
            });
            if let Err(e) = recorded {
                tracing::warn!("cannot record the result of review item {}: {e}", running.item);
            }
        }
        let reply = result_line(&running.rpc, json!({"item": running.item, "ran": true, "result": result}));
        Some((running.conn, reply))
    }
}
