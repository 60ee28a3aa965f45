//! Where each checked line goes, and who answers each event. The [`Router`] owns the session
//! and the three kinds of call that wait: for a person (`held.rs`), in the review queue
//! (`review_queue.rs`), for toolgate's own listing of the tools (`listing.rs`). A `tools/call`
//! is judged by `gate.rs`, which settles it or says where it waits ([`Next`]); this module
//! takes it there. Nothing below this module calls back up into it.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::approver_socket::FromApprover;
use super::gate::{self, Next};
use super::held::Held;
use super::listing::Listing;
use super::review_queue::Parking;
use super::session::{Effect, Pending, Session, Waiting};
use super::session_trust;
use super::{Inbound, Read, elicit};
use crate::audit::{ErrorNote, Outcome, SecretKeys};
use crate::confidence;
use crate::policy::{Annotations, ChangedTools, Policy, lint};
use crate::visible::{preview, visible};
use crate::wire::Envelope;
use crate::wire::envelope::readable_ids;
use crate::wire::{Id, Kind, reply};

pub(super) struct Router {
    pub session: Session,
    /// Calls waiting for a person, and the channels that reach one.
    pub held: Held,
    /// Parked calls and the runs of approved ones.
    parking: Parking,
    /// toolgate's own `tools/list`, for calls that come before the client listed the tools.
    listing: Listing,
}

impl Router {
    pub fn new(session: Session, held: Held, queue_path: Option<std::path::PathBuf>) -> Router {
        Router { session, held, parking: Parking::new(queue_path), listing: Listing::default() }
    }

    /// The earliest moment a waiting call needs attention.
    pub fn next_wakeup(&self) -> Option<tokio::time::Instant> {
        [self.held.next_wakeup(), self.listing.deadline()].into_iter().flatten().min()
    }

    /// A checked line from the client: a `tools/call` goes to the gate; everything else to the
    /// server, but toolgate's own business (cancellations of calls that wait here, answers to
    /// toolgate's questions) and lines the strict check refused, which are answered here.
    pub fn on_client(&mut self, mut inbound: Inbound) {
        if let Some(recorder) = &mut self.session.recorder {
            recorder.message("c2s", &inbound.line, matches!(inbound.read, Read::Oversized { .. }));
        }
        match &inbound.read {
            Read::Message(env) => match &env.kind {
                Kind::Request { id, method } if method == "tools/call" => {
                    let (id, env) = (id.clone(), env.clone());
                    let next = gate::call(&mut self.session, id, env, inbound);
                    self.carry(next);
                }
                Kind::Request { id, method } => {
                    if method == "initialize" {
                        self.session.client_elicits =
                            params(&inbound.line, env).as_ref().is_some_and(elicit::client_can_elicit);
                    }
                    let what = if method == "tools/list" {
                        Waiting::ToolsList {
                            first: params(&inbound.line, env).is_none_or(|p| p.get("cursor").is_none()),
                        }
                    } else {
                        Waiting::Other
                    };
                    self.session.await_answer(id.clone(), Pending::new(what, self.session.now));
                    self.session.forward_to_server(inbound);
                }
                Kind::Notification { method } if method == "notifications/cancelled" => {
                    // A cancellation of a held call ends it here; the server never saw the call.
                    // One of a forwarded request goes on to the server, which may stop the work.
                    let request = cancelled_request(&inbound.line);
                    let held = request.as_ref().is_some_and(|id| self.cancelled_waiting(id));
                    if !held {
                        if let Some(id) = &request {
                            self.session.cancelled_forwarded(id);
                        }
                        self.session.forward_to_server(inbound);
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
                    self.held.elicitation_answer(&mut self.session, &id, &inbound.line);
                }
                Kind::Response { id: Some(id), is_error } => {
                    self.session.server_requests.remove(id);
                    if self.session.roots_requests.remove(id) && !is_error {
                        self.learn_roots(&inbound.line);
                    }
                    self.session.forward_to_server(inbound);
                }
                Kind::Notification { .. } | Kind::Response { id: None, .. } => self.session.forward_to_server(inbound),
            },
            Read::Refused(refusal) => {
                tracing::warn!("refused a line from the client: {}: {}", refusal.reason, preview(&inbound.line));
                self.session.refused_line("client", &refusal.reason, Some(&inbound.line), inbound.line.len());
                for r in readable_ids(&inbound.line).into_iter().filter(|r| r.is_request) {
                    let message = format!("toolgate refused this message: {}", refusal.reason);
                    self.session.answer_client(reply::error(&r.id, refusal.code, &message), inbound._credit.take());
                }
            }
            Read::Oversized { len, id } => {
                let message = format!(
                    "toolgate refused a message of {len} bytes: larger than --max-message-bytes ({})",
                    self.session.max_message_bytes
                );
                tracing::warn!("{message}");
                self.session.refused_line("client", "larger than --max-message-bytes", None, *len);
                if let Some(id) = id {
                    self.session.answer_client(reply::error(id, -32600, &message), inbound._credit.take());
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

    /// A checked line from the server: answers to toolgate's own requests stay here; answers to
    /// the client's requests are noted (a call's outcome, a listing's tools) and passed on;
    /// requests that impersonate toolgate are refused.
    pub fn on_server(&mut self, inbound: Inbound) {
        if let Some(recorder) = &mut self.session.recorder {
            recorder.message("s2c", &inbound.line, matches!(inbound.read, Read::Oversized { .. }));
        }
        match &inbound.read {
            Read::Message(env) => {
                let mut rewritten = None;
                if let Kind::Response { id: Some(id), .. } = &env.kind
                    && self.parking.is_ours(id)
                {
                    let id = id.clone();
                    if let Some((conn, reply)) = self.parking.ran(&mut self.session, &id, &inbound.line) {
                        self.held.approvers.send_line(conn, reply);
                    }
                    return;
                }
                if let Kind::Response { id: Some(id), .. } = &env.kind
                    && self.listing.is_ours(id)
                {
                    self.listing_answered(&inbound.line);
                    return;
                }
                // An answer to a request still waiting to leave answers nothing the server was
                // sent: it is dropped, and the request goes out and gets its own answer.
                if let Kind::Response { id: Some(id), .. } = &env.kind
                    && self.session.unsent(id)
                {
                    tracing::warn!("the server answered request {id} before toolgate sent it; the answer is dropped");
                    return;
                }
                if let Kind::Notification { method } = &env.kind
                    && method == "notifications/tools/list_changed"
                {
                    self.session.tools.changed();
                    self.session.trust.tools_changed();
                }
                if let Kind::Response { id: Some(id), is_error } = &env.kind
                    && let Some(pending) = self.session.take_sent(id)
                {
                    rewritten = self.answered(pending, *is_error, &inbound.line);
                }
                if let Kind::Request { id, method } = &env.kind {
                    if self.held.elicit_ids.is_ours(id) || self.held.elicitation_open(id) {
                        tracing::warn!("refused a server request whose id {id} is one of toolgate's own");
                        let message = "toolgate refused this request: its id is in use by toolgate";
                        self.session.send_server(reply::error(&id.to_value(), -32600, message));
                        return;
                    }
                    if method == "elicitation/create" && impersonates(&inbound.line, env) {
                        tracing::warn!(
                            "refused an elicitation from the server that presents itself as toolgate's: {}",
                            preview(&inbound.line)
                        );
                        let message = "toolgate refused this elicitation: it presents itself as toolgate's";
                        self.session.send_server(reply::error(&id.to_value(), -32600, message));
                        return;
                    }
                    self.session.server_requests.insert(id.clone());
                    if method == "roots/list" {
                        self.session.roots_requests.insert(id.clone());
                    }
                }
                let bytes = rewritten.unwrap_or(inbound.line);
                self.session.forward_to_client(bytes, inbound._credit);
            }
            Read::Refused(refusal) => {
                tracing::warn!("refused a line from the server: {}: {}", refusal.reason, preview(&inbound.line));
                self.session.refused_line("server", &refusal.reason, Some(&inbound.line), inbound.line.len());
                for r in readable_ids(&inbound.line).into_iter().filter(|r| !r.is_request) {
                    let message = format!("toolgate refused the server's reply: {}", refusal.reason);
                    self.session.fail_one(&r.id, &message);
                }
            }
            Read::Oversized { len, id } => {
                let message = format!(
                    "toolgate refused a message of {len} bytes from the server: larger than --max-message-bytes ({})",
                    self.session.max_message_bytes
                );
                tracing::warn!("{message}");
                self.session.refused_line("server", "larger than --max-message-bytes", None, *len);
                if let Some(id) = id {
                    self.session.fail_one(id, &message);
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
                    let ttl = self.session.policy.settings.approval_timeout;
                    self.session.allowed.continues(state, tool, digest, ttl, self.session.now);
                }
                let (outcome, error) = if is_error {
                    (Outcome::Error, ErrorNote::of(line))
                } else if result_is_error(line) {
                    (Outcome::ToolError, None)
                } else {
                    (Outcome::Ok, None)
                };
                let took = self.session.now.saturating_duration_since(pending.since);
                self.session.audit.outcome_with(call, outcome, took, error);
                None
            }
            Waiting::ToolsList { first } if !is_error => {
                self.learn_listing(line, first);
                let mut rewritten = None;
                if self.session.policy.settings.changed_tools == ChangedTools::Hide {
                    let hidden = self.session.trust.changed_tools(&self.session.server);
                    if !hidden.is_empty() {
                        rewritten = session_trust::without_tools(line, &hidden);
                    }
                }
                if !self.session.policy.uses_confidence() {
                    return rewritten;
                }
                let (injected, native) = confidence::inject(rewritten.as_deref().unwrap_or(line))?;
                self.session.confidence_injected = true;
                self.session.native_confidence.extend(native);
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
    fn learn_tools(&mut self, tools: &[Value], first: bool, last: bool) {
        self.session.tools.learn(tools, first, last);
        let mut names = Vec::new();
        for tool in tools {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                self.session.annotations.insert(name.to_owned(), Annotations::from_tool(tool));
                names.push(name.to_owned());
            }
        }
        let (reset, changes) = self.session.trust.listed(&self.session.server, tools, first);
        if let Some(why) = reset {
            // The reason names the server and its command line: escaped, as it reaches a terminal.
            let notice = format!("{}; the trust its tools had earned starts from nothing", visible(&why));
            tracing::warn!("{notice}");
            self.notice(notice, None);
        }
        for (tool, change) in changes {
            // The change quotes the old and new description `{:?}`-escaped; the names are
            // shown escaped here, as the notice reaches a terminal, and the command to paste
            // quotes them as shell words, so that a name cannot run anything.
            let command = format!(
                "toolgate trust accept {} {}",
                crate::visible::shell_word(&self.session.server),
                crate::visible::shell_word(&tool)
            );
            let (server, tool) = (visible(&self.session.server), visible(&tool));
            let notice = format!(
                "{server} changed its tool `{tool}`: {change}. Its calls need a yes until you accept it: {command}"
            );
            tracing::warn!("{notice}");
            self.notice(notice, None);
        }
        for warning in lint::unmatched_tools(&self.session.policy, &self.session.server, &names, false) {
            tracing::warn!("policy {}: {}", self.session.policy.origin, warning.message);
        }
        if last {
            // A tool's schema, hints or pinned definition judge its calls too.
            self.redecide("the server listed its tools again");
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
            if !self.session.place.roots.contains(&root) && self.session.place.roots.len() < MAX_ROOTS {
                self.session.place.roots.push(root);
                learned = true;
            }
        }
        if learned {
            // A relative path in a waiting call may now name a place a rule guards.
            self.redecide("the client named another root");
        }
    }

    /// Loads the policy file again; a policy that fails to load leaves the current one in force.
    pub fn reload(&mut self, path: &std::path::Path) {
        match Policy::load(path) {
            Ok(policy) if policy.version == self.session.policy.version => {
                tracing::debug!("policy {} unchanged ({})", path.display(), policy.version);
            }
            Ok(policy) => {
                tracing::info!(
                    "policy reloaded: {} ({}, was {})",
                    path.display(),
                    policy.version,
                    self.session.policy.version
                );
                self.session
                    .audit
                    .set_secret_keys(SecretKeys::from_setting(policy.settings.audit_secret_keys.as_deref()));
                self.session.audit.set_rotation(policy.settings.audit_rotation);
                self.session.policy = Arc::new(policy);
                self.redecide("the policy was reloaded");
            }
            Err(errors) => {
                tracing::error!(
                    "the policy file changed and does not load; the previous policy ({}) stays in force:\n{errors}",
                    self.session.policy.version
                );
                let body = serde_json::json!({
                    "server": &*self.session.server,
                    "policy": path.display().to_string(),
                    "errors": errors.to_string(),
                    "in_force": self.session.policy.version,
                });
                self.session.audit.note("reload_failed", &body);
            }
        }
    }

    /// Takes a call where the gate said it goes; what comes of it there may send it on again
    /// (a retry judged anew), until it is settled or waits.
    fn carry(&mut self, next: Next) {
        let mut next = next;
        loop {
            next = match next {
                Next::Settled => return,
                Next::Hold(call) => return self.held.hold(&mut self.session, *call),
                Next::Park(call) => return self.parking.park(&mut self.session, *call),
                Next::Retried(call) => self.held.retried(&mut self.session, *call),
                Next::List(waiting) => return self.listing.wait(&mut self.session, *waiting),
            };
        }
    }

    /// The client withdrew a request that waits here (for a person, or for toolgate's listing):
    /// it is dropped, and never reaches the server. False when no such call waits.
    fn cancelled_waiting(&mut self, request: &Id) -> bool {
        if self.held.cancelled(&mut self.session, request) {
            return true;
        }
        match self.listing.cancelled(request) {
            Some(call) => {
                gate::withdrawn_while_listing(&mut self.session, call);
                true
            }
            None => false,
        }
    }

    /// The server answered a page of toolgate's listing.
    fn listing_answered(&mut self, line: &[u8]) {
        match self.listing.answered(line) {
            None => {}
            Some(Err(why)) => self.listing_over(Some(why)),
            Some(Ok(page)) => {
                self.learn_tools(&page.tools, page.first, page.cursor.is_none());
                if let Some(failure) = self.listing.go_on(&mut self.session, page) {
                    self.listing_over(failure);
                }
            }
        }
    }

    /// The listing is over (`failure`: why it failed): the calls that waited for it are decided.
    fn listing_over(&mut self, failure: Option<String>) {
        for call in self.listing.finish(failure.as_deref()) {
            let next = gate::call_listed(&mut self.session, call, failure.clone());
            self.carry(next);
        }
    }

    /// What judged the waiting calls changed: each is judged again (see `Held::redecide`).
    fn redecide(&mut self, why: &str) {
        self.held.redecide(&mut self.session, &mut self.parking, why);
    }

    /// A person answered on the terminal or in the client's dialog.
    pub fn on_human(&mut self, event: crate::human::Event) {
        self.held.on_event(&mut self.session, event);
    }

    /// A `toolgate approve` connection said something: an answer, or a reviewer's request to
    /// run an approved item of the review queue, or a line toolgate refused.
    pub fn on_approver(&mut self, news: FromApprover) {
        self.held.on_approver(&mut self.session, &mut self.parking, news);
    }

    /// Time passed: ends what ran out of time.
    pub fn on_timer(&mut self) {
        let now = self.session.now;
        if self.held.next_wakeup().is_some_and(|at| at <= now) {
            self.held.on_timer(&mut self.session);
        }
        if let Some(why) = self.listing.timed_out(now) {
            self.listing_over(Some(why));
        }
    }

    /// Ends every call still waiting for a person or for toolgate's listing: the client or the
    /// server is gone, or toolgate is stopping.
    pub fn abandon_held(&mut self, why: &str) {
        self.held.abandon_all(&mut self.session, why);
        for call in self.listing.abandon() {
            gate::abandoned_while_listing(&mut self.session, call, why);
        }
    }

    /// Answers every request the server will now never answer, but those the client cancelled,
    /// and tells each reviewer whose approved item was running.
    pub fn fail_pending(&mut self, status: i32) {
        self.abandon_held("the session ended");
        self.session.fail_pending(status);
        for (conn, line) in self.parking.abandon_runs(&mut self.session, status) {
            self.held.approvers.send_line(conn, line);
        }
    }

    /// Tells the person (`text`, escaped for display): on the terminal, and every subscribed
    /// `toolgate approve` (a `notice`); for a call to `ran` that ran under `notify`, on the
    /// desktop too when the policy asks for desktop notifications.
    fn notice(&mut self, text: String, ran: Option<&str>) {
        let mut event = serde_json::json!({"text": text, "server": self.session.server});
        if let Some(tool) = ran {
            event["tool"] = Value::from(tool);
            if self.session.policy.settings.desktop_notifications {
                crate::human::desktop::ran(&self.session.server, tool, &text);
            }
        }
        self.held.approvers.broadcast("notice", event, None);
        self.held.notice(text);
    }

    /// Does what was asked outside the pipes: notices on the terminal, the review queue's items.
    pub fn apply_effects(&mut self) {
        for effect in self.session.take_effects() {
            match effect {
                Effect::Ran { tool, text } => self.notice(text, Some(&tool)),
                Effect::ToReview(item) => self.parking.to_review(*item),
                Effect::Unpark(item) => self.parking.unpark(item),
            }
        }
    }
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
