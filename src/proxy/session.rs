//! What one session knows (the policy, what is pending, what the server listed, what people
//! allowed), and its outbox: every message for a peer is staged here, with the audit record it
//! waits on, until [`Session::flush`] writes the records and hands the lines over. The routing
//! of each line is `route.rs`; the calls waiting for a person, the review queue and toolgate's
//! own listing keep their own state (`held.rs`, `review_queue.rs`, `listing.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::allowances::Allowances;
use super::session_trust::{self, SessionTrust};
use super::{Inbound, Outgoing, Peer};
use crate::audit::{AuditLog, Outcome, SecretKeys};
use crate::policy::{Annotations, Policy};
use crate::review;
use crate::wire::{Id, reply};

/// What a client request that went to the server was.
pub(super) enum Waiting {
    /// A forwarded `tools/call`, with its audit call number.
    ToolsCall {
        call: u64,
        /// A 2026-07-28 call a person approved: its tool and the digest of the arguments that
        /// ran (the edited ones, when the person edited them), so that the server's own
        /// follow-up (an input-required result and the client's retry) is not asked about again.
        approved: Option<(String, String)>,
    },
    /// A `tools/list`, whose answer teaches toolgate the tools (schemas, annotations); `first`
    /// when it asked without a cursor, so that a new listing begins.
    ToolsList {
        first: bool,
    },
    Other,
}

pub(super) struct Pending {
    pub what: Waiting,
    pub since: Instant,
    /// The client cancelled it after it was forwarded: MCP says it gets no answer, so toolgate
    /// never answers it, and the server's late answer passes through untouched (the client
    /// ignores it) with no bookkeeping.
    pub cancelled: bool,
    /// Its line has left for the server (at the flush after it was staged). Until then, an
    /// answer the server sends under its id answers nothing toolgate sent.
    pub sent: bool,
}

impl Pending {
    pub fn new(what: Waiting, since: Instant) -> Pending {
        Pending { what, since, cancelled: false, sent: false }
    }
}

pub(super) struct Session {
    pub server: Arc<str>,
    pub policy: Arc<Policy>,
    pub audit: AuditLog,
    pub max_message_bytes: usize,
    /// The time of the event being handled: the core reads no clock of its own.
    pub now: Instant,
    /// Messages may still be sent to the server.
    server_input_open: bool,
    /// Client requests the server has not answered yet, by id.
    pub pending: HashMap<Id, Pending>,
    /// Each tool's hints, from the latest `tools/list`.
    pub annotations: HashMap<String, Annotations>,
    /// Set once toolgate has added its confidence property to a `tools/list` answer.
    pub confidence_injected: bool,
    /// Tools whose own schema has a property named like toolgate's: their calls are not touched.
    pub native_confidence: HashSet<String>,
    /// What people allowed beyond the calls they answered.
    pub allowed: Allowances,
    /// The policy's file, for "remember" proposals (`None`: the embedded default).
    pub policy_path: Option<std::path::PathBuf>,
    /// The client declared form elicitation in `initialize`.
    pub client_elicits: bool,
    /// Requests from the server to the client that the client has not answered yet.
    pub server_requests: HashSet<Id>,
    /// Earned autonomy and pinning.
    pub trust: SessionTrust,
    /// The session's transcript, when one is recorded.
    pub recorder: Option<super::record::Recorder>,
    /// The server's tools as listed: what calls' arguments are checked against.
    pub tools: crate::conformity::Tools,
    /// Where the server stands, for reading paths.
    pub place: super::place::ServerPlace,
    /// The server's `roots/list` requests the client has not answered yet.
    pub roots_requests: HashSet<Id>,
    /// Messages for either peer since the last flush, in order.
    outbox: Vec<Staged>,
    /// What is to be done outside the pipes, since the last flush.
    effects: Vec<Effect>,
    /// Requests whose lines are in the outbox, not yet sent.
    unsent: Vec<Id>,
}

/// Something to be done outside the pipes, handed to whoever owns that part of the world.
pub(super) enum Effect {
    /// A call to `tool` ran under `notify`: the person is told (`text`, escaped for display).
    Ran { tool: String, text: String },
    /// A call that ran under `notify`: an item "to review" in the review queue.
    ToReview(Box<review::Item>),
    /// A parked call whose record could not be written: it was refused, so it never runs.
    Unpark(u64),
}

/// What a flush hands the writers, per peer, in order.
#[derive(Default)]
pub(super) struct Lines {
    pub to_client: Vec<Outgoing>,
    pub to_server: Vec<Outgoing>,
}

/// A message for a peer, waiting for the next flush.
struct Staged {
    to: Peer,
    out: Outgoing,
    /// The audit record this message carries out, when it settles a call.
    record: Option<Recorded>,
}

/// The call a staged message settles, for the refusal the client reads if its record cannot be
/// written.
pub(super) struct Recorded {
    /// Its audit call number.
    pub call: u64,
    pub tool: String,
    /// Its JSON-RPC id.
    pub id: Value,
    /// It is of the 2026-07-28 era (its refusal is a result, not an error).
    pub stateless: bool,
    /// Where the message goes: to the server, the call was about to run (and is pending).
    pub to: Peer,
    /// The review item it was parked as, if it was.
    pub parked: Option<u64>,
}

impl Session {
    #[expect(clippy::too_many_arguments, reason = "called once, by the dispatcher, with every part named")]
    pub fn new(
        server: String,
        policy: Arc<Policy>,
        audit: AuditLog,
        max_message_bytes: usize,
        now: Instant,
        policy_path: Option<std::path::PathBuf>,
        trust_path: Option<std::path::PathBuf>,
        identity: session_trust::ServerIdentity,
    ) -> Self {
        let mut audit = audit;
        audit.set_secret_keys(SecretKeys::from_setting(policy.settings.audit_secret_keys.as_deref()));
        audit.set_rotation(policy.settings.audit_rotation);
        Session {
            server: server.into(),
            policy,
            audit,
            max_message_bytes,
            now,
            server_input_open: true,
            pending: HashMap::new(),
            annotations: HashMap::new(),
            confidence_injected: false,
            native_confidence: HashSet::new(),
            allowed: Allowances::default(),
            policy_path,
            client_elicits: false,
            server_requests: HashSet::new(),
            trust: SessionTrust::open(trust_path, identity),
            recorder: None,
            tools: crate::conformity::Tools::default(),
            place: super::place::ServerPlace::default(),
            roots_requests: HashSet::new(),
            outbox: Vec::new(),
            effects: Vec::new(),
            unsent: Vec::new(),
        }
    }

    /// Sends bytes to the client.
    pub fn send_client(&mut self, bytes: Vec<u8>) {
        self.stage(Peer::Client, Outgoing::new(bytes, None), None);
    }

    /// Answers a message from the client with toolgate's own reply. The reply keeps that
    /// message's byte credit until it is written, so a client that writes faster than it reads
    /// is held back here as a server would hold it back, instead of replies queueing without end.
    pub fn answer_client(&mut self, bytes: Vec<u8>, credit: Option<OwnedSemaphorePermit>) {
        self.stage(Peer::Client, Outgoing::new(bytes, credit), None);
    }

    /// Passes a line from the server on to the client (as it arrived, or as toolgate rewrote it).
    pub fn forward_to_client(&mut self, bytes: Vec<u8>, credit: Option<OwnedSemaphorePermit>) {
        self.stage(Peer::Client, Outgoing::new(bytes, credit), None);
    }

    /// Sends bytes of toolgate's own to the server (replies to requests it refused).
    pub fn send_server(&mut self, bytes: Vec<u8>) {
        self.stage(Peer::Server, Outgoing::new(bytes, None), None);
    }

    /// Passes a checked line on to the server, exactly as it arrived.
    pub fn forward_to_server(&mut self, inbound: Inbound) {
        self.stage(Peer::Server, Outgoing::new(inbound.line, inbound._credit), None);
    }

    /// Sends what settles a call whose decision is staged in the audit log: it leaves only once
    /// that record is written, and if it cannot be, the client reads a refusal instead.
    pub fn settled(&mut self, to: Peer, out: Outgoing, record: Recorded) {
        self.stage(to, out, Some(record));
    }

    /// Tells the person that a call to `tool` ran under `notify` (`text`, escaped for display).
    pub fn notice_ran(&mut self, tool: &str, text: String) {
        self.effects.push(Effect::Ran { tool: tool.to_owned(), text });
    }

    /// Adds an item "to review" to the review queue.
    pub fn add_to_review(&mut self, item: review::Item) {
        self.effects.push(Effect::ToReview(Box::new(item)));
    }

    /// Takes back a parked call whose record could not be written: it was refused, so it must
    /// never run.
    pub fn unpark(&mut self, item: u64) {
        self.effects.push(Effect::Unpark(item));
    }

    /// What is to be done outside the pipes since the last time, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    fn stage(&mut self, to: Peer, out: Outgoing, record: Option<Recorded>) {
        if to == Peer::Server && !self.server_input_open {
            tracing::debug!("server input already closed; a message was dropped");
            return;
        }
        self.outbox.push(Staged { to, out, record });
    }

    /// Writes the audit records staged, then returns what waited on them and everything else
    /// staged since the last time, in order. A message that settles a call whose record could
    /// not be written is turned into a refusal.
    pub fn flush(&mut self) -> Lines {
        self.audit.commit();
        let failed = self.audit.take_failed();
        let mut lines = Lines::default();
        for Staged { to, out, record } in std::mem::take(&mut self.outbox) {
            if let Some(record) = record
                && let Some(problem) = failed.get(&record.call)
            {
                if let Some(refusal) = self.unrecorded(record, out, &problem.to_string()) {
                    lines.to_client.push(refusal);
                }
                continue;
            }
            match to {
                Peer::Client => lines.to_client.push(out),
                Peer::Server => lines.to_server.push(out),
            }
        }
        // What was staged for the server leaves now: its answers are now answers.
        for id in std::mem::take(&mut self.unsent) {
            if let Some(pending) = self.pending.get_mut(&id) {
                pending.sent = true;
            }
        }
        lines
    }

    /// The pending request with this id, once its line has left for the server.
    pub fn take_sent(&mut self, id: &Id) -> Option<Pending> {
        if self.unsent(id) {
            return None;
        }
        self.pending.remove(id)
    }

    /// A request with this id is pending, and its line has not left for the server yet.
    pub fn unsent(&self, id: &Id) -> bool {
        self.pending.get(id).is_some_and(|p| !p.sent)
    }

    /// A request on its way to the server: its answer is awaited once its line has left.
    pub fn await_answer(&mut self, id: Id, pending: Pending) {
        self.unsent.push(id.clone());
        self.pending.insert(id, pending);
    }

    /// A settled call whose audit record could not be written: it does not run, and the model
    /// is told why (a call the client withdrew gets no answer).
    fn unrecorded(&mut self, record: Recorded, out: Outgoing, problem: &str) -> Option<Outgoing> {
        tracing::error!("{problem}; refused `{}` without forwarding it", record.tool);
        if let Some(item) = record.parked {
            self.unpark(item);
        }
        // A call about to run is pending: one the client cancelled meanwhile, or that was
        // already answered (the server ended), gets no second answer.
        if record.to == Peer::Server {
            let pending = Id::from_value(&record.id).and_then(|id| self.pending.remove(&id));
            if pending.is_none_or(|p| p.cancelled) {
                return None;
            }
        }
        let text = unrecorded_text(&record.tool, problem);
        Some(Outgoing::new(reply::refused_call(&record.id, &text, record.stateless), out.credit))
    }

    /// Closes the server's stdin once everything staged for it is written; what is sent to it
    /// after that is dropped.
    pub fn close_server_input(&mut self) {
        self.server_input_open = false;
    }

    /// The server's stdin is still open.
    pub fn server_input_open(&self) -> bool {
        self.server_input_open
    }

    /// The client cancelled a request it sent to the server: the call's outcome is recorded
    /// now, and from here on toolgate never answers it.
    pub fn cancelled_forwarded(&mut self, id: &Id) {
        let Some(pending) = self.pending.get_mut(id).filter(|p| !p.cancelled) else { return };
        pending.cancelled = true;
        if let Waiting::ToolsCall { call, .. } = pending.what {
            self.audit.outcome(call, Outcome::Cancelled, self.now.saturating_duration_since(pending.since));
        }
        tracing::debug!("the client cancelled request {id}; it gets no answer from toolgate");
    }

    /// Answers a pending client request with an error, if it is pending and not cancelled.
    pub fn fail_one(&mut self, id: &Value, message: &str) {
        if let Some(pending) = Id::from_value(id).and_then(|id| self.take_sent(&id)) {
            if pending.cancelled {
                return;
            }
            if let Waiting::ToolsCall { call, .. } = pending.what {
                self.audit.outcome(call, Outcome::Error, self.now.saturating_duration_since(pending.since));
            }
            self.send_client(reply::error(id, -32603, message));
        }
    }

    /// Records a line toolgate refused (from `from`: client, server or approver) in the audit
    /// log: why, its length and its digest, never its bytes (`line`: `None` when it was too long
    /// to be kept whole).
    pub fn refused_line(&mut self, from: &str, reason: &str, line: Option<&[u8]>, bytes: usize) {
        let sha256 = line.map(crate::audit::chain::hash);
        self.refused_digest(from, reason, sha256, bytes);
    }

    /// As [`Session::refused_line`], with the line's digest taken already (or none).
    pub fn refused_digest(&mut self, from: &str, reason: &str, sha256: Option<String>, bytes: usize) {
        let server = &*self.server;
        let mut body = serde_json::json!({"server": server, "from": from, "reason": reason, "bytes": bytes});
        if let Some(sha256) = sha256 {
            body["sha256"] = Value::from(sha256);
        }
        self.audit.note("refused_line", &body);
    }

    /// Answers every request the server will now never answer, but those the client cancelled.
    pub fn fail_pending(&mut self, status: i32) {
        let message = format!("the MCP server exited (status {status}) before answering");
        for (id, pending) in std::mem::take(&mut self.pending).into_iter().filter(|(_, p)| !p.cancelled) {
            if let Waiting::ToolsCall { call, .. } = pending.what {
                self.audit.outcome(call, Outcome::NoAnswer, self.now.saturating_duration_since(pending.since));
            }
            self.send_client(reply::error(&id.to_value(), -32000, &message));
        }
    }
}

/// What the model reads about a call whose audit record could not be written.
pub(super) fn unrecorded_text(tool: &str, problem: &str) -> String {
    format!(
        "toolgate refused this call to `{tool}` because it could not write its audit log ({problem}). \
         The call was not run. Tell the user."
    )
}
