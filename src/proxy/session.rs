//! The dispatcher's state for one session: what is pending, what the server listed, and where
//! each checked line goes. Every event passes through here, one at a time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::held::{self, Held};
use super::review_queue::{self, Parking};
use super::session_trust::{self, SessionTrust};
use super::{Inbound, Outgoing, Peer, Read, elicit, gate, listing};
use crate::audit::{AuditLog, Outcome, SecretKeys};
use crate::confidence;
use crate::policy::{Annotations, ChangedTools, Policy, lint};
use crate::visible::{preview, visible};
use crate::wire::Envelope;
use crate::wire::envelope::readable_ids;
use crate::wire::{Id, Kind, reply};

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
    pub server: String,
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
    /// Calls waiting for a person.
    pub held: Held,
    /// The policy's file, for "remember" proposals (`None`: the embedded default).
    pub policy_path: Option<std::path::PathBuf>,
    /// The client declared form elicitation in `initialize`.
    pub client_elicits: bool,
    /// Requests from the server to the client that the client has not answered yet.
    pub server_requests: HashSet<Id>,
    /// Earned autonomy and pinning.
    pub trust: SessionTrust,
    /// Parked calls and the runs of approved ones.
    pub parking: Parking,
    /// The session's transcript, when one is recorded.
    pub recorder: Option<super::record::Recorder>,
    /// The server's tools as listed: what calls' arguments are checked against.
    pub tools: crate::conformity::Tools,
    /// toolgate's own `tools/list`, for calls that come before the client listed the tools.
    pub listing: super::listing::Listing,
    /// Where the server stands, for reading paths.
    pub place: super::place::ServerPlace,
    /// The server's `roots/list` requests the client has not answered yet.
    roots_requests: HashSet<Id>,
    /// Messages for either peer since the last flush, in order.
    outbox: Vec<Staged>,
    /// Requests whose lines are in the outbox, not yet sent.
    unsent: Vec<Id>,
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
}

impl Session {
    #[expect(clippy::too_many_arguments, reason = "called once, by the dispatcher, with every part named")]
    pub fn new(
        server: String,
        policy: Arc<Policy>,
        audit: AuditLog,
        max_message_bytes: usize,
        now: Instant,
        held: Held,
        policy_path: Option<std::path::PathBuf>,
        trust_path: Option<std::path::PathBuf>,
        queue_path: Option<std::path::PathBuf>,
        identity: session_trust::ServerIdentity,
    ) -> Self {
        let mut audit = audit;
        audit.set_secret_keys(SecretKeys::from_setting(policy.settings.audit_secret_keys.as_deref()));
        Session {
            server,
            policy,
            audit,
            max_message_bytes,
            now,
            server_input_open: true,
            pending: HashMap::new(),
            annotations: HashMap::new(),
            confidence_injected: false,
            native_confidence: HashSet::new(),
            held,
            policy_path,
            client_elicits: false,
            server_requests: HashSet::new(),
            trust: SessionTrust::open(trust_path, identity),
            parking: Parking::new(queue_path),
            recorder: None,
            tools: crate::conformity::Tools::default(),
            listing: super::listing::Listing::default(),
            place: super::place::ServerPlace::default(),
            roots_requests: HashSet::new(),
            outbox: Vec::new(),
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
    fn take_sent(&mut self, id: &Id) -> Option<Pending> {
        if self.unsent(id) {
            return None;
        }
        self.pending.remove(id)
    }

    /// A request with this id is pending, and its line has not left for the server yet.
    fn unsent(&self, id: &Id) -> bool {
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

    pub fn on_client(&mut self, mut inbound: Inbound) {
        if let Some(recorder) = &mut self.recorder {
            recorder.message("c2s", &inbound.line, matches!(inbound.read, Read::Oversized { .. }));
        }
        match &inbound.read {
            Read::Message(env) => match &env.kind {
                Kind::Request { id, method } if method == "tools/call" => {
                    let (id, env) = (id.clone(), env.clone());
                    gate::call(self, id, env, inbound);
                }
                Kind::Request { id, method } => {
                    if method == "initialize" {
                        self.client_elicits =
                            params(&inbound.line, env).as_ref().is_some_and(elicit::client_can_elicit);
                    }
                    let what = if method == "tools/list" {
                        Waiting::ToolsList {
                            first: params(&inbound.line, env).is_none_or(|p| p.get("cursor").is_none()),
                        }
                    } else {
                        Waiting::Other
                    };
                    self.await_answer(id.clone(), Pending::new(what, self.now));
                    self.forward_to_server(inbound);
                }
                Kind::Notification { method } if method == "notifications/cancelled" => {
                    // A cancellation of a held call ends it here; the server never saw the call.
                    // One of a forwarded request goes on to the server, which may stop the work.
                    let request = cancelled_request(&inbound.line);
                    let held =
                        request.as_ref().is_some_and(|id| held::cancelled(self, id) || listing::cancelled(self, id));
                    if !held {
                        if let Some(id) = &request {
                            self.cancelled_forwarded(id);
                        }
                        self.forward_to_server(inbound);
                    }
                }
                Kind::Notification { method } if method == "tools/call" => {
                    tracing::warn!(
                        "dropped a tools/call without an id (a call must be a request): {}",
                        preview(&inbound.line)
                    );
                }
                Kind::Response { id: Some(id), .. } if self.held.elicit_ids.is_ours(id) => {
                    let id = id.clone();
                    held::elicitation_answer(self, &id, &inbound.line);
                }
                Kind::Response { id: Some(id), is_error } => {
                    self.server_requests.remove(id);
                    if self.roots_requests.remove(id) && !is_error {
                        self.learn_roots(&inbound.line);
                    }
                    self.forward_to_server(inbound);
                }
                Kind::Notification { .. } | Kind::Response { id: None, .. } => self.forward_to_server(inbound),
            },
            Read::Refused(refusal) => {
                tracing::warn!("refused a line from the client: {}: {}", refusal.reason, preview(&inbound.line));
                for r in readable_ids(&inbound.line).into_iter().filter(|r| r.is_request) {
                    let message = format!("toolgate refused this message: {}", refusal.reason);
                    self.answer_client(reply::error(&r.id, refusal.code, &message), inbound._credit.take());
                }
            }
            Read::Oversized { len, id } => {
                let message = format!(
                    "toolgate refused a message of {len} bytes: larger than --max-message-bytes ({})",
                    self.max_message_bytes
                );
                tracing::warn!("{message}");
                if let Some(id) = id {
                    self.answer_client(reply::error(id, -32600, &message), inbound._credit.take());
                }
            }
            Read::Unterminated => {
                tracing::warn!(
                    "dropped an unterminated line at the end of the client's input: {}",
                    preview(&inbound.line)
                );
            }
        }
    }

    pub fn on_server(&mut self, inbound: Inbound) {
        if let Some(recorder) = &mut self.recorder {
            recorder.message("s2c", &inbound.line, matches!(inbound.read, Read::Oversized { .. }));
        }
        match &inbound.read {
            Read::Message(env) => {
                let mut rewritten = None;
                if let Kind::Response { id: Some(id), .. } = &env.kind
                    && self.parking.is_ours(id)
                {
                    let id = id.clone();
                    review_queue::ran(self, &id, &inbound.line);
                    return;
                }
                if let Kind::Response { id: Some(id), .. } = &env.kind
                    && self.listing.is_ours(id)
                {
                    listing::answered(self, &inbound.line);
                    return;
                }
                // An answer to a request still waiting to leave answers nothing the server was
                // sent: it is dropped, and the request goes out and gets its own answer.
                if let Kind::Response { id: Some(id), .. } = &env.kind
                    && self.unsent(id)
                {
                    tracing::warn!("the server answered request {id} before toolgate sent it; the answer is dropped");
                    return;
                }
                if let Kind::Notification { method } = &env.kind
                    && method == "notifications/tools/list_changed"
                {
                    self.tools.changed();
                    self.trust.tools_changed();
                }
                if let Kind::Response { id: Some(id), is_error } = &env.kind
                    && let Some(pending) = self.take_sent(id)
                {
                    rewritten = self.answered(pending, *is_error, &inbound.line);
                }
                if let Kind::Request { id, method } = &env.kind {
                    if self.held.elicit_ids.is_ours(id) || self.held.elicitation_open(id) {
                        tracing::warn!("refused a server request whose id {id} is one of toolgate's own");
                        let message = "toolgate refused this request: its id is in use by toolgate";
                        self.send_server(reply::error(&id.to_value(), -32600, message));
                        return;
                    }
                    if method == "elicitation/create" && impersonates(&inbound.line, env) {
                        tracing::warn!(
                            "refused an elicitation from the server that presents itself as toolgate's: {}",
                            preview(&inbound.line)
                        );
                        let message = "toolgate refused this elicitation: it presents itself as toolgate's";
                        self.send_server(reply::error(&id.to_value(), -32600, message));
                        return;
                    }
                    self.server_requests.insert(id.clone());
                    if method == "roots/list" {
                        self.roots_requests.insert(id.clone());
                    }
                }
                let bytes = rewritten.unwrap_or(inbound.line);
                self.stage(Peer::Client, Outgoing::new(bytes, inbound._credit), None);
            }
            Read::Refused(refusal) => {
                tracing::warn!("refused a line from the server: {}: {}", refusal.reason, preview(&inbound.line));
                for r in readable_ids(&inbound.line).into_iter().filter(|r| !r.is_request) {
                    let message = format!("toolgate refused the server's reply: {}", refusal.reason);
                    self.fail_one(&r.id, &message);
                }
            }
            Read::Oversized { len, id } => {
                let message = format!(
                    "toolgate refused a message of {len} bytes from the server: larger than --max-message-bytes ({})",
                    self.max_message_bytes
                );
                tracing::warn!("{message}");
                if let Some(id) = id {
                    self.fail_one(id, &message);
                }
            }
            Read::Unterminated => {
                tracing::warn!(
                    "dropped an unterminated line at the end of the server's output: {}",
                    preview(&inbound.line)
                );
            }
        }
    }

    /// The client cancelled a request it sent to the server: the call's outcome is recorded
    /// now, and from here on toolgate never answers it.
    fn cancelled_forwarded(&mut self, id: &Id) {
        let Some(pending) = self.pending.get_mut(id).filter(|p| !p.cancelled) else { return };
        pending.cancelled = true;
        if let Waiting::ToolsCall { call, .. } = pending.what {
            self.audit.outcome(call, Outcome::Cancelled, self.now.saturating_duration_since(pending.since));
        }
        tracing::debug!("the client cancelled request {id}; it gets no answer from toolgate");
    }

    /// Answers a pending client request with an error, if it is pending and not cancelled.
    fn fail_one(&mut self, id: &Value, message: &str) {
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

    /// Bookkeeping for a server's answer to a client request; returns the line to send instead,
    /// when toolgate rewrites the answer.
    fn answered(&mut self, pending: Pending, is_error: bool, line: &[u8]) -> Option<Vec<u8>> {
        if pending.cancelled {
            return None;
        }
        match pending.what {
            Waiting::ToolsCall { call, approved } => {
                if let Some((tool, digest)) = approved
                    && let Some(state) = servers_input_request_state(line)
                {
                    let ttl = self.policy.settings.approval_timeout;
                    self.held.continues(state, tool, digest, ttl, self.now);
                }
                let outcome = if is_error {
                    Outcome::Error
                } else if result_is_error(line) {
                    Outcome::ToolError
                } else {
                    Outcome::Ok
                };
                self.audit.outcome(call, outcome, self.now.saturating_duration_since(pending.since));
                None
            }
            Waiting::ToolsList { first } if !is_error => {
                self.learn_listing(line, first);
                let mut rewritten = None;
                if self.policy.settings.changed_tools == ChangedTools::Hide {
                    let hidden = self.trust.changed_tools(&self.server);
                    if !hidden.is_empty() {
                        rewritten = session_trust::without_tools(line, &hidden);
                    }
                }
                if !self.policy.uses_confidence() {
                    return rewritten;
                }
                let (injected, native) = confidence::inject(rewritten.as_deref().unwrap_or(line))?;
                self.confidence_injected = true;
                self.native_confidence.extend(native);
                Some(injected)
            }
            Waiting::ToolsList { .. } | Waiting::Other => None,
        }
    }

    /// A page of the client's listing (`first`: its request had no cursor).
    fn learn_listing(&mut self, line: &[u8], first: bool) {
        #[derive(Deserialize)]
        struct Response {
            result: ListResult,
        }
        #[derive(Deserialize)]
        struct ListResult {
            #[serde(default)]
            tools: Vec<Value>,
            #[serde(default, rename = "nextCursor")]
            next_cursor: Option<Value>,
        }
        let Ok(response) = serde_json::from_slice::<Response>(line) else { return };
        let last = response.result.next_cursor.is_none();
        self.learn_tools(&response.result.tools, first, last);
    }

    /// What a page of a listing teaches: the tools' schemas, hints and definitions.
    pub fn learn_tools(&mut self, tools: &[Value], first: bool, last: bool) {
        self.tools.learn(tools, first, last);
        let mut names = Vec::new();
        for tool in tools {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                self.annotations.insert(name.to_owned(), Annotations::from_tool(tool));
                names.push(name.to_owned());
            }
        }
        let (reset, changes) = self.trust.listed(&self.server, tools, first);
        if let Some(why) = reset {
            // The reason names the server and its command line: escaped, as it reaches a terminal.
            let notice = format!("{}; the trust its tools had earned starts from nothing", visible(&why));
            tracing::warn!("{notice}");
            self.held.notice(notice);
        }
        for (tool, change) in changes {
            // The change quotes the old and new description `{:?}`-escaped; the names are
            // shown escaped here, as the notice reaches a terminal, and the command to paste
            // quotes them as shell words, so that a name cannot run anything.
            let command = format!(
                "toolgate trust accept {} {}",
                crate::visible::shell_word(&self.server),
                crate::visible::shell_word(&tool)
            );
            let (server, tool) = (visible(&self.server), visible(&tool));
            let notice = format!(
                "{server} changed its tool `{tool}`: {change}. Its calls need a yes until you accept it: {command}"
            );
            tracing::warn!("{notice}");
            self.held.notice(notice);
        }
        for warning in lint::unmatched_tools(&self.policy, &self.server, &names, false) {
            tracing::warn!("policy {}: {}", self.policy.origin, warning.message);
        }
        if last {
            // A tool's schema, hints or pinned definition judge its calls too.
            held::redecide(self, "the server listed its tools again");
        }
    }

    /// The client's roots, from its answer to the server's `roots/list`: folders a server may
    /// resolve relative paths against.
    fn learn_roots(&mut self, line: &[u8]) {
        let message: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
        let roots = message.pointer("/result/roots").and_then(Value::as_array).cloned().unwrap_or_default();
        // Every root ever named counts: a server may keep serving an earlier one (server-filesystem
        // ignores an answer without a usable folder), and one more folder only adds readings.
        let mut learned = false;
        for root in
            roots.iter().filter_map(|r| r.get("uri").and_then(Value::as_str)).flat_map(super::place::root_folders)
        {
            if !self.place.roots.contains(&root) && self.place.roots.len() < MAX_ROOTS {
                self.place.roots.push(root);
                learned = true;
            }
        }
        if learned {
            // A relative path in a waiting call may now name a place a rule guards.
            held::redecide(self, "the client named another root");
        }
    }

    /// Loads the policy file again; a policy that fails to load leaves the current one in force.
    pub fn reload(&mut self, path: &std::path::Path) {
        match Policy::load(path) {
            Ok(policy) if policy.version == self.policy.version => {
                tracing::debug!("policy {} unchanged ({})", path.display(), policy.version);
            }
            Ok(policy) => {
                tracing::info!("policy reloaded: {} ({}, was {})", path.display(), policy.version, self.policy.version);
                self.audit.set_secret_keys(SecretKeys::from_setting(policy.settings.audit_secret_keys.as_deref()));
                self.policy = Arc::new(policy);
                held::redecide(self, "the policy was reloaded");
            }
            Err(errors) => tracing::error!(
                "the policy file changed and does not load; the previous policy ({}) stays in force:\n{errors}",
                self.policy.version
            ),
        }
    }

    /// Ends every call still waiting for a person: the client or the server is gone.
    pub fn abandon_held(&mut self, why: &str) {
        held::abandon_all(self, why);
    }

    /// Answers every request the server will now never answer, but those the client cancelled.
    pub fn fail_pending(&mut self, status: i32) {
        self.abandon_held("the session ended");
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

/// Client roots remembered, at most.
const MAX_ROOTS: usize = 256;

/// Whether a server's `elicitation/create` presents itself as toolgate's.
fn impersonates(line: &[u8], env: &Envelope) -> bool {
    params(line, env).is_some_and(|p| elicit::impersonates_toolgate(&p))
}

/// A message's `params`, decoded.
fn params(line: &[u8], env: &Envelope) -> Option<Value> {
    serde_json::from_slice(&line[env.params.clone()?]).ok()
}

/// The `requestId` of a `notifications/cancelled`.
fn cancelled_request(line: &[u8]) -> Option<Id> {
    #[derive(Deserialize)]
    struct Note {
        params: Params,
    }
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "requestId")]
        request_id: Value,
    }
    Id::from_value(&serde_json::from_slice::<Note>(line).ok()?.params.request_id)
}

/// The `requestState` of a server's input-required result, if the line is one.
fn servers_input_request_state(line: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Response {
        result: Interim,
    }
    #[derive(Deserialize)]
    struct Interim {
        #[serde(rename = "resultType")]
        result_type: Option<String>,
        #[serde(rename = "requestState")]
        request_state: Option<String>,
    }
    let interim = serde_json::from_slice::<Response>(line).ok()?.result;
    (interim.result_type.as_deref() == Some("input_required")).then_some(interim.request_state).flatten()
}

/// Whether a `tools/call` result says `isError: true`.
fn result_is_error(line: &[u8]) -> bool {
    // Most results say nothing of `isError`: a line that spells it neither plainly nor with a
    // `\u` escape (the only escape that can spell a letter) cannot hold the key, and is not read
    // a second time.
    if memchr::memmem::find(line, b"isError").is_none() && memchr::memmem::find(line, b"\\u").is_none() {
        return false;
    }
    #[derive(Deserialize)]
    struct Response {
        result: Flag,
    }
    #[derive(Deserialize)]
    struct Flag {
        #[serde(default, rename = "isError")]
        is_error: bool,
    }
    serde_json::from_slice::<Response>(line).is_ok_and(|r| r.result.is_error)
}

#[cfg(test)]
mod tests {
    use super::result_is_error;

    #[test]
    fn a_result_is_an_error_only_when_it_says_so_however_the_key_is_spelled() {
        let plain = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#;
        let escaped = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"is\u0045rror":true}}"#;
        let escaped_late = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isErro\u0072":true}}"#;
        assert!(result_is_error(plain));
        assert!(result_is_error(escaped));
        assert!(result_is_error(escaped_late));
        let ok = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"a\nb"}]}}"#;
        let said_false = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#;
        let only_in_text = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"isError"}]}}"#;
        assert!(!result_is_error(ok));
        assert!(!result_is_error(said_false));
        assert!(!result_is_error(only_in_text));
    }
}
