//! Calls waiting for a person. The dispatcher owns them here: their deadlines (the approval
//! timeout, the end of a hold), the progress sent to clients while they wait, and their fate
//! when a person answers, the client cancels, or time runs out. Channels only show and collect.
//!
//! A waiting call is offered on every live channel at once (the terminal, MCP elicitation when
//! the client offers it, and every connected `toolgate approve`); the first answer wins and the
//! other channels are withdrawn.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use super::approver_socket::{Approvers, FromApprover, NotTaken, error_line, result_line};
use super::elicit;
use super::gate::{self, Decided, Next, Settlement};
use super::request_state::{self, Sealer};
use super::review_queue::Parking;
use super::session::Session;
use crate::audit::DecidedBy;
use crate::human::approver_protocol::Approval;
use crate::human::terminal::{self, Terminal};
use crate::human::{Answer, Command, Event, Kind, Request, Withdrawn};
use crate::policy::{Gate, remember};
use crate::trust::Answered;
use crate::wire::Id;

/// How often a waiting call with a progress token reports progress to the client.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Terminal,
    Elicitation,
    /// A `toolgate approve`, by its connection.
    Approver(u64),
}

impl Via {
    /// The channel's name in audit records and logs.
    fn name(self) -> &'static str {
        match self {
            Via::Terminal => "terminal",
            Via::Elicitation => "elicitation",
            Via::Approver(_) => "approver",
        }
    }
}

struct HeldCall {
    call: Decided,
    /// What the channels are shown.
    request: Request,
    kind: Kind,
    deadline: Instant,
    progress: Option<Progress>,
    /// Shown (or queued) on the terminal.
    on_terminal: bool,
    /// The id of toolgate's `elicitation/create` to the client, while it is open.
    elicitation: Option<Id>,
    /// Offered to the connected approvers.
    on_approvers: bool,
}

struct Progress {
    token: Value,
    next: Instant,
    count: u64,
}

/// Every call waiting for a person, and the channels that can reach one.
pub(super) struct Held {
    calls: HashMap<u64, HeldCall>,
    by_request: HashMap<Id, u64>,
    next_ticket: u64,
    terminal: Option<Terminal>,
    /// The terminal may be used (not in the core's tests, which must not touch a real one).
    terminal_allowed: bool,
    events: UnboundedSender<Event>,
    /// toolgate's open elicitations, by request id.
    elicitations: HashMap<Id, u64>,
    pub elicit_ids: elicit::Ids,
    /// The connected `toolgate approve` processes.
    pub approvers: Approvers,
    /// Protects the state of questions asked inside 2026-07-28 clients.
    sealer: Sealer,
}

impl Held {
    pub fn new(events: UnboundedSender<Event>, approvers: Approvers) -> Self {
        Held {
            calls: HashMap::new(),
            by_request: HashMap::new(),
            next_ticket: 1,
            terminal: None,
            terminal_allowed: true,
            events,
            elicitations: HashMap::new(),
            elicit_ids: elicit::Ids::new(),
            approvers,
            sealer: Sealer::new(),
        }
    }

    /// Whether toolgate has an elicitation open under this id.
    pub fn elicitation_open(&self, id: &Id) -> bool {
        self.elicitations.contains_key(id)
    }

    /// The earliest moment something held needs attention.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.calls.values().flat_map(|h| [Some(h.deadline), h.progress.as_ref().map(|p| p.next)]).flatten().min()
    }

    /// A one-line notice, shown on the terminal when one is usable.
    pub fn notice(&mut self, text: String) {
        if let Ok(terminal) = self.terminal() {
            terminal.send(Command::Notice(text));
        }
    }

    /// Never uses the terminal (the core's tests).
    #[cfg(test)]
    pub fn without_terminal(mut self) -> Self {
        self.terminal_allowed = false;
        self
    }

    /// The terminal channel, started on first use, when toolgate may prompt on it now.
    fn terminal(&mut self) -> Result<&Terminal, String> {
        if !self.terminal_allowed {
            return Err("the terminal is not to be used".to_owned());
        }
        match &self.terminal {
            Some(t) => t.usable().map_err(|e| e.to_string())?,
            None => terminal::available().map_err(|e| e.to_string())?,
        }
        if self.terminal.is_none() {
            let started = Terminal::start(self.events.clone()).map_err(|e| format!("cannot open the terminal: {e}"))?;
            self.terminal = Some(started);
        }
        self.terminal.as_ref().ok_or_else(|| "no terminal".to_owned())
    }

    fn take(&mut self, ticket: u64) -> Option<HeldCall> {
        let held = self.calls.remove(&ticket)?;
        self.approvers.forget(ticket);
        self.by_request.remove(&held.call.id);
        if let Some(id) = &held.elicitation {
            self.elicitations.remove(id);
        }
        Some(held)
    }
}

impl Held {
    /// Takes a request back from every channel it is still offered on, except the one that answered.
    fn retract(
        &mut self,
        session: &mut Session,
        ticket: u64,
        held: &HeldCall,
        why: Withdrawn,
        answered_on: Option<Via>,
    ) {
        if held.on_terminal
            && answered_on != Some(Via::Terminal)
            && let Some(t) = &self.terminal
        {
            t.send(Command::Withdraw { ticket, why });
        }
        if let Some(id) = &held.elicitation
            && answered_on != Some(Via::Elicitation)
        {
            let reason = match why {
                Withdrawn::TimedOut => "toolgate: nobody answered in time; the call was denied",
                Withdrawn::HoldElapsed => "toolgate: the hold ran out; the call ran",
                Withdrawn::Cancelled => "toolgate: the call was withdrawn",
                Withdrawn::AnsweredElsewhere => "toolgate: answered elsewhere",
                Withdrawn::Redecided => "toolgate: the policy changed; the call was decided again",
            };
            session.send_client(elicit::cancel_line(id, reason));
        }
        if held.on_approvers {
            let answering = match answered_on {
                Some(Via::Approver(conn)) => Some(conn),
                _ => None,
            };
            self.approvers.broadcast("withdrawn", json!({"ticket": ticket, "why": why}), answering);
        }
    }

    /// Holds a call that needs a person and offers it on every live channel; with none, refuses it
    /// at once and says how to get asked next time.
    pub fn hold(&mut self, session: &mut Session, call: Decided) {
        let kind = if call.decided.gate == Gate::Hold { Kind::Hold } else { Kind::Approve };
        let wait = match kind {
            Kind::Hold => call.beyond.hold.unwrap_or_default(),
            Kind::Approve => session.policy.settings.approval_timeout,
        };
        let deadline = session.now + wait;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        // Why trust did not spare the person the question (another program, a listing that has
        // not shown the pinned tool, a reset) is theirs to read too.
        let mut shown = call.decided.clone();
        if let Some(super::session_trust::TrustSays::Lost(lost)) = &call.trust {
            shown.reason = Some(match shown.reason {
                Some(reason) => format!("{reason}; {lost}"),
                None => lost.clone(),
            });
        }
        let request = Request {
            ticket,
            kind,
            call: shown,
            deadline: deadline.into_std(),
            remember: remember::proposal(
                &session.policy,
                session.policy_path.as_deref(),
                &session.server,
                Some(&session.trust.identity().id),
                &call.params.name,
                &call.decision(),
            ),
        };
        let mut absent = Vec::new();
        if call.stateless() {
            // A 2026-07-28 request cannot be held while the client asks its user: the question
            // ends the request. So the client is asked only when no channel that can hold is live.
            let client_elicits = call.params.client_capabilities().is_some_and(elicit::capabilities_allow_form);
            if kind == Kind::Approve && client_elicits && self.terminal().is_err() && !self.approvers.live() {
                self.ask_inside(session, call, &request, wait);
                return;
            }
            if !client_elicits {
                absent.push("the client did not offer elicitation".to_owned());
            }
        }
        let on_terminal = match self.terminal() {
            Ok(terminal) => {
                terminal.send(Command::Offer(request.clone()));
                true
            }
            Err(why) => {
                absent.push(why);
                false
            }
        };
        let elicitation = if call.stateless() {
            None
        } else if !session.client_elicits {
            absent.push("the client did not offer elicitation".to_owned());
            None
        } else {
            let id = self.elicit_ids.fresh(&session.server_requests);
            session.send_client(elicit::request_line(&id, &request, wait.as_secs()));
            self.elicitations.insert(id.clone(), ticket);
            Some(id)
        };
        let on_approvers = self.approvers.live();
        if on_approvers {
            self.approvers.offer(&Approval::from_request(&request, session.now.into_std()));
        } else {
            absent.push("no `toolgate approve` is running".to_owned());
        }
        if !on_terminal && elicitation.is_none() && !on_approvers {
            let why = absent.join("; ");
            let text = format!(
                "{} No person could be asked: {why}. To be asked next time, run `toolgate approve` in a terminal of \
                 this user, use a client that supports MCP elicitation, or run the agent and toolgate in a terminal \
                 you are using.",
                gate::refusal_text(&call.decided)
            );
            let note = Some(format!("needs a human, and no approval channel is available: {why}"));
            gate::settle(session, call, Settlement::Refuse { by: DecidedBy::Toolgate, channel: None, note, text });
            return;
        }
        let channels: Vec<&str> = [
            on_terminal.then_some("terminal"),
            elicitation.as_ref().map(|_| "elicitation"),
            on_approvers.then_some("approver"),
        ]
        .into_iter()
        .flatten()
        .collect();
        tracing::info!(
            "`{}` waits for a person ({}) on {}{}",
            call.params.name,
            call.decided.gate.as_str(),
            channels.join(" and "),
            gate::rules_clause(&call.decided)
        );
        if session.policy.settings.desktop_notifications {
            crate::human::desktop::notify(&request);
        }
        let progress =
            call.params.progress_token().cloned().map(|token| Progress { token, next: session.now, count: 0 });
        self.by_request.insert(call.id.clone(), ticket);
        self.calls.insert(
            ticket,
            HeldCall { call, request, kind, deadline, progress, on_terminal, elicitation, on_approvers },
        );
    }

    /// Answers a 2026-07-28 call with toolgate's question (an input-required result); the client
    /// asks its user and retries the call with the answer and the state, which [`retried`] reads.
    fn ask_inside(&mut self, session: &mut Session, call: Decided, request: &Request, wait: Duration) {
        // What of the server's own this call carries goes into toolgate's state, to come back.
        let mut carried = serde_json::Map::new();
        if let Some(state) = &call.params.request_state {
            carried.insert("requestState".into(), state.clone());
        }
        if let Some(responses) = &call.params.input_responses {
            carried.insert("inputResponses".into(), responses.clone());
        }
        let carried = (!carried.is_empty()).then_some(Value::Object(carried));
        let now = request_state::now_ms();
        let state = self.sealer.seal(&session.server, &call.params.name, &call.decided.arguments, wait, carried, now);
        tracing::info!(
            "`{}` needs a person; asking inside the client{}",
            call.params.name,
            gate::rules_clause(&call.decided)
        );
        let line = elicit::input_required_line(&call.id, request, wait.as_secs(), &state);
        gate::settle(session, call, Settlement::Question { line });
    }

    /// A 2026-07-28 call that carries toolgate's state: the client's retry after toolgate's
    /// question. The state must be toolgate's, for this very call, unexpired and unused; then the
    /// call is decided again, and where it still needs a person the answer it carries decides.
    /// toolgate's state and answer are removed before the call goes on.
    pub fn retried(&mut self, session: &mut Session, mut call: Decided) -> Next {
        let state = match &call.params.request_state {
            Some(Value::String(state)) => state.clone(),
            _ => return gate::carry_out(session, call),
        };
        let channel = Some(Via::Elicitation.name());
        let tool = call.params.name.clone();
        let now = request_state::now_ms();
        let opened = self.sealer.open(&state, &session.server, &tool, &call.decided.arguments, now);
        let carried = match opened {
            Ok(carried) => carried,
            Err(why) => {
                let text = format!(
                    "toolgate refused this call to `{tool}`: the approval it carries is not valid ({why}), so the call was \
                 not run. Call the tool again to ask the user."
                );
                let note = Some(format!("requestState rejected: {why}"));
                gate::settle(session, call, Settlement::Refuse { by: DecidedBy::Toolgate, channel, note, text });
                return Next::Settled;
            }
        };
        let response = call.params.input_responses.as_ref().and_then(|r| r.get(request_state::INPUT_KEY));
        let answer = elicit::read_result(Kind::Approve, response);
        match elicit::restore_servers_input(&call.inbound.line, carried.as_ref()) {
            Some(line) => call.inbound.line = line,
            None => {
                let text = format!("toolgate could not prepare this call to `{tool}`, so it was not run.");
                let note = Some("cannot remove toolgate's state from the retry".to_owned());
                gate::settle(session, call, Settlement::Refuse { by: DecidedBy::Toolgate, channel, note, text });
                return Next::Settled;
            }
        }
        if !matches!(call.decided.gate, Gate::Ask | Gate::Hold) {
            // The policy changed since the question: it decides alone now.
            return gate::carry_out(session, call);
        }
        match answer {
            Ok(answer) => {
                let answer = answer.unwrap_or(Answer::Deny { reason: None });
                let settlement = self.settlement_for(session, answer, Kind::Approve, &tool, Via::Elicitation);
                gate::settle(session, call, settlement);
            }
            Err(why) => {
                tracing::warn!("the client's answer to toolgate's question is not valid ({why}); the call is denied");
                let text = format!(
                    "toolgate asked the user about this call to `{tool}`, but the answer could not be read, so the call was not run."
                );
                let note = Some(format!("unreadable elicitation answer: {why}"));
                gate::settle(session, call, Settlement::Refuse { by: DecidedBy::Toolgate, channel, note, text });
            }
        }
        Next::Settled
    }

    /// The terminal's news.
    pub fn on_event(&mut self, session: &mut Session, event: Event) {
        match event {
            Event::Answered { ticket, answer } => self.answered(session, ticket, answer, Via::Terminal),
            Event::Lost { ticket, why } => {
                let Some(held) = self.calls.get_mut(&ticket) else { return };
                held.on_terminal = false;
                if held.elicitation.is_some() || held.on_approvers {
                    tracing::warn!(
                        "the terminal was lost ({why}); the call still waits for an answer on another channel"
                    );
                    return;
                }
                let Some(held) = self.take(ticket) else { return };
                let text =
                    format!("{} The terminal could no longer be used: {why}.", gate::refusal_text(&held.call.decided));
                let note = Some(format!("the terminal was lost: {why}"));
                gate::settle(
                    session,
                    held.call,
                    Settlement::Refuse { by: DecidedBy::Toolgate, channel: None, note, text },
                );
            }
        }
    }

    /// News from a connected `toolgate approve`.
    pub fn on_approver(&mut self, session: &mut Session, parking: &mut Parking, news: FromApprover) {
        match news {
            FromApprover::Connected { conn, out } => self.approvers.connected(conn, out),
            FromApprover::Gone { conn } => self.approvers.gone(conn),
            FromApprover::Refused { reason, sha256, bytes } => {
                session.refused_digest("approver", &reason, sha256, bytes);
            }
            FromApprover::Run { conn, id, item } => {
                if let Some(refusal) = parking.run(session, id, item, conn) {
                    self.approvers.send_line(conn, refusal);
                }
            }
            FromApprover::Subscribe { conn, id } => {
                let now = session.now.into_std();
                let mut pending: Vec<(u64, Approval)> = Vec::new();
                for (ticket, held) in &mut self.calls {
                    held.on_approvers = true;
                    pending.push((*ticket, Approval::from_request(&held.request, now)));
                }
                pending.sort_by_key(|(ticket, _)| *ticket);
                let approvers = &mut self.approvers;
                approvers.subscribe(conn, pending.iter().map(|(ticket, _)| *ticket));
                let pending: Vec<Approval> = pending.into_iter().map(|(_, a)| a).collect();
                let proxy = json!({
                    "pid": std::process::id(),
                    "server": session.server,
                    "policy": session.policy.origin,
                });
                approvers.send_line(conn, result_line(&id, json!({"proxy": proxy, "pending": pending})));
            }
            FromApprover::Answer { conn, id, params } => {
                let ticket = params.ticket;
                let pending = self.calls.get(&ticket).is_some_and(|h| h.on_approvers);
                let Ok(answer) = params.answer() else { return };
                if let Err(why) = self.approvers.may_answer(conn, ticket, pending) {
                    match why {
                        // A late answer: another channel or time came first, as happens.
                        NotTaken::NotPending(_) => tracing::debug!("approver connection {conn} answered late: {why}"),
                        NotTaken::Unsubscribed(_) | NotTaken::Unoffered(_) => {
                            tracing::warn!("refused an answer from approver connection {conn}: {why}");
                        }
                    }
                    self.approvers.send_line(conn, error_line(&id, why.code(), &why.to_string()));
                    return;
                }
                self.approvers.send_line(conn, result_line(&id, json!({"settled": true})));
                self.answered(session, params.ticket, answer, Via::Approver(conn));
            }
        }
    }

    /// The client's response to one of toolgate's elicitations. It is toolgate's and never reaches
    /// the server, whatever it says.
    pub fn elicitation_answer(&mut self, session: &mut Session, id: &Id, line: &[u8]) {
        let Some(&ticket) = self.elicitations.get(id) else {
            tracing::debug!("an answer to a withdrawn elicitation {id} was dropped");
            return;
        };
        let Some(kind) = self.calls.get(&ticket).map(|h| h.kind) else { return };
        match elicit::read_answer(kind, line) {
            Ok(Some(answer)) => self.answered(session, ticket, answer, Via::Elicitation),
            Ok(None) => {
                // A dismissed hold notice: the hold goes on, the elicitation is closed.
                self.elicitations.remove(id);
                if let Some(held) = self.calls.get_mut(&ticket) {
                    held.elicitation = None;
                }
            }
            Err(why) => {
                tracing::warn!("the client's answer to toolgate's question is not valid ({why}); the call is denied");
                let Some(held) = self.take(ticket) else { return };
                self.retract(session, ticket, &held, Withdrawn::AnsweredElsewhere, Some(Via::Elicitation));
                let text = format!(
                    "toolgate asked the user about this call to `{}`, but the answer could not be read, so the call was not run.",
                    held.call.params.name
                );
                let note = Some(format!("unreadable elicitation answer: {why}"));
                let channel = Some(Via::Elicitation.name());
                gate::settle(session, held.call, Settlement::Refuse { by: DecidedBy::Toolgate, channel, note, text });
            }
        }
    }

    /// A person answered on `channel`: the call is settled and every other channel withdrawn.
    fn answered(&mut self, session: &mut Session, ticket: u64, answer: Answer, via: Via) {
        let Some(held) = self.take(ticket) else { return };
        self.retract(session, ticket, &held, Withdrawn::AnsweredElsewhere, Some(via));
        let tool = held.call.params.name.clone();
        let settlement = self.settlement_for(session, answer, held.kind, &tool, via);
        gate::settle(session, held.call, settlement);
    }

    /// How a person's answer ends a call; an answer to an approval goes into the tool's record.
    fn settlement_for(
        &mut self,
        session: &mut Session,
        answer: Answer,
        kind: Kind,
        tool: &str,
        via: Via,
    ) -> Settlement {
        let channel = Some(via.name());
        if kind == Kind::Approve {
            let answered = match &answer {
                Answer::AllowOnce | Answer::AllowForSession | Answer::Remembered => Answered::Approved,
                Answer::Deny { .. } => Answered::Denied,
                Answer::Edited(_) => Answered::Edited,
            };
            let server = session.server.clone();
            session.trust.answered(&server, tool, answered);
        }
        match answer {
            Answer::AllowOnce => Settlement::Forward { by: DecidedBy::Human, channel, note: None, edited: None },
            Answer::AllowForSession => {
                session.allowed.allow_tool(tool);
                let note = Some("allowed this tool for the rest of the session".to_owned());
                Settlement::Forward { by: DecidedBy::Human, channel, note, edited: None }
            }
            Answer::Remembered => {
                let note = Some("remembered as a rule in the policy file".to_owned());
                Settlement::Forward { by: DecidedBy::Human, channel, note, edited: None }
            }
            Answer::Edited(arguments) => {
                let note = Some("the person edited the arguments".to_owned());
                Settlement::Forward { by: DecidedBy::Human, channel, note, edited: Some(arguments) }
            }
            Answer::Deny { reason } => {
                let (what, verb) = match kind {
                    Kind::Hold => ("held call", "cancelled"),
                    Kind::Approve => ("call", "declined"),
                };
                let said = reason.as_deref().map(|r| format!(" They said: {r}")).unwrap_or_default();
                let text = format!("The user {verb} this {what} to `{tool}`, so it was not run.{said}");
                Settlement::Refuse { by: DecidedBy::Human, channel, note: reason, text }
            }
        }
    }

    /// Time passed: ends what ran out of time and reports progress for what still waits.
    pub fn on_timer(&mut self, session: &mut Session) {
        let now = session.now;
        let expired: Vec<u64> = self.calls.iter().filter(|(_, h)| h.deadline <= now).map(|(t, _)| *t).collect();
        for ticket in expired {
            let Some(held) = self.take(ticket) else { continue };
            let tool = held.call.params.name.clone();
            match held.kind {
                Kind::Hold => {
                    self.retract(session, ticket, &held, Withdrawn::HoldElapsed, None);
                    gate::settle(
                        session,
                        held.call,
                        Settlement::Forward { by: DecidedBy::Timer, channel: None, note: None, edited: None },
                    );
                }
                Kind::Approve => {
                    self.retract(session, ticket, &held, Withdrawn::TimedOut, None);
                    let server = session.server.clone();
                    session.trust.answered(&server, &tool, Answered::Timeout);
                    let waited = session.policy.settings.approval_timeout;
                    let text = format!(
                        "Nobody approved this call to `{tool}` within {}, so it was not run. Tell the user it needs their approval.",
                        humantime::format_duration(waited)
                    );
                    gate::settle(
                        session,
                        held.call,
                        Settlement::Refuse { by: DecidedBy::Timeout, channel: None, note: None, text },
                    );
                }
            }
        }
        let mut notes = Vec::new();
        for held in self.calls.values_mut() {
            let Some(progress) = held.progress.as_mut().filter(|p| p.next <= now) else { continue };
            progress.count += 1;
            progress.next = now + PROGRESS_EVERY;
            let left = held.deadline.saturating_duration_since(now).as_secs();
            let message = match held.kind {
                Kind::Approve => {
                    format!(
                        "toolgate: waiting for a person to approve `{}` ({left}s left)",
                        crate::visible::visible(&held.call.params.name)
                    )
                }
                Kind::Hold => format!(
                    "toolgate: `{}` runs in {left}s unless a person cancels it",
                    crate::visible::visible(&held.call.params.name)
                ),
            };
            notes.push(json!({
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": progress.token, "progress": progress.count, "message": message},
            }));
        }
        for note in notes {
            let mut line = note.to_string().into_bytes();
            line.push(b'\n');
            session.send_client(line);
        }
    }

    /// The client cancelled a request; true when it was a held call (which is then dropped and
    /// withdrawn from every channel, and never reaches the server).
    pub fn cancelled(&mut self, session: &mut Session, request: &Id) -> bool {
        let Some(&ticket) = self.by_request.get(request) else { return false };
        let Some(held) = self.take(ticket) else { return false };
        self.retract(session, ticket, &held, Withdrawn::Cancelled, None);
        let note = "the client cancelled the call while it waited".to_owned();
        gate::settle(session, held.call, Settlement::Drop { by: DecidedBy::Client, note });
        true
    }

    /// What judged the waiting calls changed (`why`: the policy reloaded, a tool's definition
    /// changed): each is judged again, in the order it arrived. A stricter judgement wins at once: a
    /// call now denied is refused, one now queued is parked, and one whose gate rose (a hold that
    /// now needs a yes, or a longer hold) is withdrawn and offered anew. A judgement as strict or
    /// looser changes nothing: only a person (or the timer they were shown) releases a call.
    pub fn redecide(&mut self, session: &mut Session, parking: &mut Parking, why: &str) {
        let mut tickets: Vec<u64> = self.calls.keys().copied().collect();
        tickets.sort_unstable();
        for ticket in tickets {
            let Some(held) = self.calls.get_mut(&ticket) else { continue };
            let tool = held.call.params.name.clone();
            let mut arguments = std::mem::take(&mut held.call.decided.arguments);
            let written = held.call.written.clone().and_then(|r| held.call.inbound.line.get(r));
            let written = written.and_then(|w| std::str::from_utf8(w).ok()).map(str::to_owned);
            let confidence = held.call.decided.confidence;
            let judged = gate::judge(session, &tool, &mut arguments, confidence, written.as_deref(), None);
            let Some(held) = self.calls.get_mut(&ticket) else { continue };
            held.call.decided.arguments = arguments;
            let (was, now) = (&held.call, &judged.decision);
            let rose = now.gate > was.decided.gate
                || (now.gate == Gate::Hold
                    && was.decided.gate == Gate::Hold
                    && now.hold.unwrap_or_default() > was.beyond.hold.unwrap_or_default());
            if !rose {
                // The policy in force now judged it and let it wait on: its record names this one.
                held.call.decided.policy = Some(session.policy.version.clone());
                tracing::debug!("`{}` still waits: {why}, and the call is judged no stricter", held.call.params.name);
                continue;
            }
            let Some(mut held) = self.take(ticket) else { continue };
            self.retract(session, ticket, &held, Withdrawn::Redecided, None);
            let was = held.call.decided.gate;
            let changed = judged.changed.clone();
            held.call.judged_again(session, judged);
            tracing::warn!(
                "`{tool}` was waiting ({}) when {why}; it is now judged {}{}",
                was.as_str(),
                held.call.decided.gate.as_str(),
                gate::rules_clause(&held.call.decided)
            );
            match (held.call.decided.gate, changed) {
                (Gate::Deny, Some(changed)) => {
                    let text = format!("toolgate refused this call to `{tool}`: {changed}. The call was not run.");
                    let note = Some(format!("{why}; arguments = \"strict\": {changed}"));
                    gate::settle(
                        session,
                        held.call,
                        Settlement::Refuse { by: DecidedBy::Policy, channel: None, note, text },
                    );
                }
                (Gate::Deny, None) => {
                    let text = gate::refusal_text(&held.call.decided);
                    let note = Some(format!("{why} while the call waited for a person"));
                    gate::settle(
                        session,
                        held.call,
                        Settlement::Refuse { by: DecidedBy::Policy, channel: None, note, text },
                    );
                }
                // Queued, or asked again under its new gate; never let through by a session's
                // allowance for the tool, which answered a question asked under another policy.
                (Gate::Queue, _) => parking.park(session, held.call),
                _ => self.hold(session, held.call),
            }
        }
    }

    /// Ends every waiting call: the session is ending.
    pub fn abandon_all(&mut self, session: &mut Session, why: &str) {
        let tickets: Vec<u64> = self.calls.keys().copied().collect();
        for ticket in tickets {
            let Some(held) = self.take(ticket) else { continue };
            self.retract(session, ticket, &held, Withdrawn::Cancelled, None);
            let text = format!(
                "toolgate stopped before a person answered ({why}); the call to `{}` was not run.",
                held.call.params.name
            );
            let note = Some(why.to_owned());
            gate::settle(session, held.call, Settlement::Refuse { by: DecidedBy::Toolgate, channel: None, note, text });
        }
    }
}
