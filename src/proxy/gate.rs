//! The decision point: every `tools/call` request passes through [`call`], and every call ends
//! in [`settle`]. Nowhere else is a call forwarded or refused, and nowhere else is its final
//! gate set ([`judge`]: the policy, then the tool's trust, then its listed schema).
//!
//! The policy says which gate the call meets; this module carries it out, or says where the
//! call waits ([`Next`]): for a person (`held.rs`), in the review queue (`review_queue.rs`), or
//! for toolgate's own listing of the tools (`listing.rs`). Those settle it here when someone (or
//! a timer) decides; this module never calls them. A call that needs a human when no channel to
//! one exists, or whose decision cannot be written to the audit log, is refused: toolgate fails
//! closed and says why, to the model and on stderr.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::listing::Unlisted;
use super::session::{Pending, Recorded, Session, Waiting, unrecorded_text};
use super::session_trust::TrustSays;
use super::{Inbound, Outgoing, Peer, request_state};
use crate::audit::{DecidedBy, DecisionRecord, Verdict};
use crate::confidence;
use crate::conformity;
use crate::decided::DecidedCall;
use crate::policy::ArgumentsSetting as Setting;
use crate::policy::reading::Context;
use crate::policy::{Basis, Call, ConfidenceCheck, Decision, Gate};
use crate::review::{self, Status};
use crate::visible::{preview, visible};
use crate::wire::{CallToolParams, Envelope, Id, reply};

/// A call that has been decided by the policy and waits to be settled.
pub(super) struct Decided {
    pub id: Id,
    pub inbound: Inbound,
    /// The call's params; their arguments moved into `decided`.
    pub params: CallToolParams,
    /// The call as decided: what its record, its queue item and a person's question show.
    pub decided: DecidedCall,
    /// What else the policy's decision said.
    pub beyond: Beyond,
    /// toolgate's confidence property is not the tool's in this call: it is read and never
    /// forwarded, not even in arguments a person edited.
    pub strips: bool,
    /// The arguments lost toolgate's confidence property, so the line must be re-encoded.
    pub stripped: bool,
    /// Where the arguments lie in the line as the client wrote them.
    pub written: Option<std::ops::Range<usize>>,
    pub since: Instant,
    /// What the tool's trust record did to the gate, or why it did not lower it.
    pub trust: Option<TrustSays>,
}

impl Decided {
    pub fn stateless(&self) -> bool {
        self.params.is_stateless_era()
    }

    /// Takes a new judgement of the call, by the policy in force now.
    pub fn judged_again(&mut self, session: &Session, judgement: Judgement) {
        let arguments = std::mem::take(&mut self.decided.arguments);
        let confidence = self.decided.confidence;
        (self.decided, self.beyond) = split(session, &self.params.name, arguments, judgement.decision, confidence);
        self.trust = judgement.trust;
    }

    /// The policy's decision on the call, whole again (for `remember::proposal`).
    pub fn decision(&self) -> Decision {
        let Beyond { hold, always_ask, basis, confidence } = self.beyond;
        Decision {
            gate: self.decided.gate,
            tier: self.decided.tier,
            basis,
            matched: self.decided.matched.clone(),
            reason: self.decided.reason.clone(),
            hold,
            always_ask,
            confidence,
        }
    }
}

/// What the policy's decision on a call says beyond the decided call, which only the proxy reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Beyond {
    /// How long a `hold` gate waits.
    pub hold: Option<Duration>,
    /// A rule says `always_ask`: no allowance or earned trust may lower the gate.
    pub always_ask: bool,
    basis: Basis,
    confidence: Option<ConfidenceCheck>,
}

/// The policy's decision on a call to `tool` with `arguments` (by the policy in force), as the
/// decided call and what else it says.
fn split(
    session: &Session,
    tool: &str,
    arguments: Map<String, Value>,
    decision: Decision,
    confidence: Option<f64>,
) -> (DecidedCall, Beyond) {
    let Decision { hold, always_ask, basis, confidence: check, .. } = decision;
    let beyond = Beyond { hold, always_ask, basis, confidence: check };
    let (server, version) = (session.server.clone(), session.policy.version.clone());
    let decided = DecidedCall::new(server, tool, arguments, decision, version, confidence);
    (decided, beyond)
}

/// How a call ends.
pub(super) enum Settlement {
    /// Forward it, with other arguments if a person edited them.
    Forward { by: DecidedBy, channel: Option<&'static str>, note: Option<String>, edited: Option<Map<String, Value>> },
    /// Answer it with a refusal the model reads.
    Refuse { by: DecidedBy, channel: Option<&'static str>, note: Option<String>, text: String },
    /// Drop it without an answer: the client withdrew it.
    Drop { by: DecidedBy, note: String },
    /// Answer it with toolgate's question (this line); the retry brings the answer.
    Question { line: Vec<u8> },
    /// Parked as this review item; the client is told so in `text`.
    Park { item: u64, text: String },
}

/// Where a call goes once the gate has had its say.
pub(super) enum Next {
    /// It is settled: its record and what carries it out are staged.
    Settled,
    /// It waits for a person.
    Hold(Box<Decided>),
    /// It is parked in the review queue.
    Park(Box<Decided>),
    /// A 2026-07-28 retry that answers toolgate's own question: the answer it carries decides.
    Retried(Box<Decided>),
    /// It waits for toolgate's own listing of the server's tools.
    List(Box<Unlisted>),
}

/// Whether toolgate may still list the server's tools for a call, or already did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listed {
    /// The tool may simply not have been listed yet: toolgate lists the tools first.
    MayList,
    /// toolgate listed the tools for this call: a tool still unknown is not the server's; with
    /// the reason, the listing failed.
    Done(Option<String>),
    /// The client withdrew the call while toolgate listed the tools: it is recorded and dropped.
    Withdrawn,
    /// toolgate is stopping (why) while the call waits for the listing: it is recorded and
    /// refused.
    Abandoned(String),
}

/// Decides one `tools/call`: forwards it, answers it, or says where it waits.
pub(super) fn call(session: &mut Session, id: Id, env: Envelope, inbound: Inbound) -> Next {
    decide(session, id, env, inbound, Listed::MayList)
}

/// Decides a call that waited for toolgate's own listing of the tools (`failure`: why that
/// listing failed).
pub(super) fn call_listed(session: &mut Session, call: Unlisted, failure: Option<String>) -> Next {
    decide(session, call.id, call.env, call.inbound, Listed::Done(failure))
}

/// Records and drops a call the client withdrew while it waited for toolgate's listing.
pub(super) fn withdrawn_while_listing(session: &mut Session, call: Unlisted) {
    decide(session, call.id, call.env, call.inbound, Listed::Withdrawn);
}

/// Records and refuses a call that waited for toolgate's listing when the session ended (`why`).
pub(super) fn abandoned_while_listing(session: &mut Session, call: Unlisted, why: &str) {
    decide(session, call.id, call.env, call.inbound, Listed::Abandoned(why.to_owned()));
}

fn decide(session: &mut Session, id: Id, env: Envelope, mut inbound: Inbound, listed: Listed) -> Next {
    // The line passed the strict check, so it is UTF-8.
    let text = std::str::from_utf8(&inbound.line).unwrap_or_default();
    let mut params = match CallToolParams::parse(env.params.clone().map(|range| &text[range])) {
        Ok(params) => params,
        Err(why) => {
            tracing::warn!("refused a malformed tools/call: {why}: {}", preview(&inbound.line));
            let answer = reply::error(&id.to_value(), -32602, &format!("toolgate refused this call: {why}"));
            session.answer_client(answer, inbound._credit.take());
            return Next::Settled;
        }
    };
    let policy = session.policy.clone();
    // The confidence property toolgate added to the schema is read here and never forwarded.
    let strips =
        (session.confidence_injected || policy.uses_confidence()) && !session.native_confidence.contains(&params.name);
    let (stripped, confidence) = if strips { confidence::take(&mut params.arguments) } else { (false, None) };
    // The arguments against the schema the tool was listed with: where they conform, the
    // server's validator reads them as they are; where not, every reading counts, and
    // `[settings] arguments` says what else happens.
    let setting = policy.settings.arguments;
    // What toolgate knows of the tools may be out of date (the server said they changed, or a
    // listing has not run to its end): the call waits for a fresh listing.
    // Trust applies only to tools this session's listing showed pinned, so the listing runs
    // whatever `[settings] arguments` says.
    if listed == Listed::MayList && session.tools.stale() {
        let meta = params.meta;
        return Next::List(Box::new(Unlisted { id, env, inbound, meta }));
    }
    // The arguments as written, for numbers a double cannot hold.
    let written = env.params.as_ref().zip(params.arguments_at.clone()).map(|(p, a)| p.start + a.start..p.start + a.end);
    let failure = match &listed {
        Listed::Done(Some(why)) => Some(why.as_str()),
        _ => None,
    };
    let Judgement { decision, trust, verdict, changed } = judge(
        session,
        &params.name,
        &mut params.arguments,
        confidence,
        written.clone().and_then(|r| text.get(r)),
        failure,
    );
    let changed = if matches!(listed, Listed::Withdrawn | Listed::Abandoned(_)) { None } else { changed };
    let arguments = std::mem::take(&mut params.arguments);
    let (decided, beyond) = split(session, &params.name, arguments, decision, confidence);
    let call = Decided { id, inbound, params, decided, beyond, strips, stripped, written, since: session.now, trust };
    if let Some(why) = changed.filter(|_| call.decided.gate == Gate::Deny) {
        let text = format!("toolgate refused this call to `{}`: {why}. The call was not run.", call.params.name);
        let note = Some(format!("arguments = \"strict\": {why}"));
        tracing::warn!("refused `{}`: {why}", call.params.name);
        settle(session, call, Settlement::Refuse { by: DecidedBy::Policy, channel: None, note, text });
        return Next::Settled;
    }
    if setting == Setting::Off && !matches!(verdict, conformity::Verdict::Conforms(_)) {
        tracing::debug!(
            "`{}`: {} (arguments = \"off\")",
            call.params.name,
            conformity::refusal(&call.params.name, &verdict)
        );
    }
    if listed == Listed::Withdrawn {
        let note = "the client cancelled the call while toolgate listed the server's tools".to_owned();
        settle(session, call, Settlement::Drop { by: DecidedBy::Client, note });
        return Next::Settled;
    }
    if let Listed::Abandoned(why) = listed {
        let text = format!(
            "toolgate stopped ({why}) while it listed the server's tools to check this call to `{}`; the call was not run.",
            call.params.name
        );
        let note = Some(format!("{why} while toolgate listed the server's tools"));
        settle(session, call, Settlement::Refuse { by: DecidedBy::Toolgate, channel: None, note, text });
        return Next::Settled;
    }
    match &call.params.request_state {
        // A 2026-07-28 retry that answers toolgate's own question.
        Some(Value::String(state)) if request_state::is_toolgates(state) => Next::Retried(Box::new(call)),
        // The server asked for more input about a call a person approved; this is the retry.
        Some(Value::String(state))
            if matches!(call.decided.gate, Gate::Ask | Gate::Hold)
                && session.allowed.continuation(state, &call.params.name, &call.decided.arguments, session.now) =>
        {
            let note = Some("continues a call a person approved (the server asked the client for more input)".into());
            settle(session, call, Settlement::Forward { by: DecidedBy::Human, channel: None, note, edited: None });
            Next::Settled
        }
        _ => carry_out(session, call),
    }
}

/// What the policy, the tool's trust and its listed schema make of a call.
pub(super) struct Judgement {
    pub decision: Decision,
    pub trust: Option<TrustSays>,
    pub verdict: conformity::Verdict,
    /// Why `[settings] arguments` changed the gate, when it did.
    pub changed: Option<String>,
}

/// Judges a call as it stands now: under the policy in force, the tool's trust record and its
/// listed schema. `written` is the arguments' text as the client sent it; `failure` says why
/// toolgate's own listing of the tools failed, when it did. Used when a call arrives and again,
/// for every call still waiting, whenever what judged it changes.
pub(super) fn judge(
    session: &mut Session,
    tool: &str,
    arguments: &mut Map<String, Value>,
    confidence: Option<f64>,
    written: Option<&str>,
    failure: Option<&str>,
) -> Judgement {
    let policy = session.policy.clone();
    // The arguments against the schema the tool was listed with: where they conform, the
    // server's validator reads them as they are; where not, every reading counts, and
    // `[settings] arguments` says what else happens.
    let verdict = match (session.tools.check(tool, arguments), failure) {
        (conformity::Verdict::Unlisted, Some(why)) => {
            conformity::Verdict::CannotJudge(format!("the server's tools could not be listed ({why})"))
        }
        (conformity::Verdict::Unlisted, None) => {
            conformity::Verdict::CannotJudge(format!("the server does not list a tool named `{tool}`"))
        }
        (verdict, _) => verdict,
    };
    let schema = match &verdict {
        conformity::Verdict::Conforms(schema) => Some(schema.clone()),
        _ => None,
    };
    let mut decision = {
        let place = session.place.view();
        let context = Context { schema: schema.as_deref(), text: written, place: &place };
        policy.decide(
            &Call::new(&session.server, tool, arguments)
                .with_identity(session.trust.vouched(&session.server, tool))
                .with_annotations(session.annotations.get(tool).copied())
                .with_confidence(confidence)
                .with_context(context),
        )
    };
    let trust = session.trust.adjust(&policy.settings, &session.server, tool, &mut decision);
    let changed = conformity::apply(policy.settings.arguments, &verdict, tool, &mut decision);
    Judgement { decision, trust, verdict, changed }
}

/// Carries out the gate the policy chose for a call, or says where it waits.
pub(super) fn carry_out(session: &mut Session, call: Decided) -> Next {
    match call.decided.gate {
        Gate::Allow => settle(
            session,
            call,
            Settlement::Forward { by: DecidedBy::Policy, channel: None, note: None, edited: None },
        ),
        Gate::Notify => {
            let why = match &call.trust {
                Some(TrustSays::Earned(earned)) => format!(" ({earned})"),
                _ => because(&call.decided),
            };
            // Names and reasons are shown escaped: the notice reaches a terminal.
            let (server, tool) = (visible(&session.server), visible(&call.params.name));
            let notice = format!("{server} ran `{tool}`{why}");
            tracing::info!("notice: {notice}");
            session.notice_ran(&call.params.name, notice);
            let (by, note) = match call.trust.clone() {
                Some(TrustSays::Earned(earned)) => (DecidedBy::Trust, Some(earned)),
                _ => (DecidedBy::Policy, None),
            };
            session.add_to_review(review::item(Status::ToReview, call.decided.clone()));
            settle(session, call, Settlement::Forward { by, channel: None, note, edited: None });
        }
        Gate::Deny => {
            let text = refusal_text(&call.decided);
            settle(session, call, Settlement::Refuse { by: DecidedBy::Policy, channel: None, note: None, text });
        }
        Gate::Queue => return Next::Park(Box::new(call)),
        // A session's allowance is for the tool as this session's listing showed it pinned.
        Gate::Ask
            if session.allowed.allows_tool(&call.params.name)
                && !call.beyond.always_ask
                && session.trust.shows_pinned(&session.server, &call.params.name) =>
        {
            let note = Some("the person allowed this tool for the session".to_owned());
            settle(
                session,
                call,
                Settlement::Forward { by: DecidedBy::Human, channel: Some("session"), note, edited: None },
            );
        }
        Gate::Ask | Gate::Hold => return Next::Hold(Box::new(call)),
    }
    Next::Settled
}

/// Ends a call: writes its decision to the audit log, then forwards or answers it.
pub(super) fn settle(session: &mut Session, mut call: Decided, mut how: Settlement) {
    // Once the server's input is closed (toolgate is stopping), nothing more reaches it: a call
    // that would run is refused, and recorded so.
    if matches!(how, Settlement::Forward { .. }) && !session.server_input_open() {
        let text = format!(
            "toolgate did not run this call to `{}`: it is stopping, and the server takes no more calls.",
            call.params.name
        );
        let note = Some("the server's input was already closed".to_owned());
        how = Settlement::Refuse { by: DecidedBy::Toolgate, channel: None, note, text };
    }
    // Arguments a person wrote are forwarded as written, but for toolgate's own property.
    if let Settlement::Forward { edited: Some(arguments), .. } = &mut how
        && call.strips
        && arguments.shift_remove(confidence::PROPERTY).is_some()
    {
        tracing::warn!(
            "removed {} from the edited arguments of `{}`: it is toolgate's, not the tool's",
            confidence::PROPERTY,
            call.params.name
        );
    }
    // What the server is to get is prepared before the record says the call was forwarded: a
    // call that cannot be prepared is refused, and recorded so.
    let mut prepared = None;
    if let Settlement::Forward { edited, .. } = &how {
        match for_server(&call, edited.as_ref()) {
            Some(None) => {
                tracing::error!("cannot prepare a call to `{}` for the server; refused", call.params.name);
                let text =
                    format!("toolgate could not prepare this call to `{}`, so it was not run.", call.params.name);
                let note = Some("cannot prepare the call for the server".to_owned());
                how = Settlement::Refuse { by: DecidedBy::Toolgate, channel: None, note, text };
            }
            line => prepared = line.flatten(),
        }
    }
    let waited = session.now.saturating_duration_since(call.since);
    let park_note = match &how {
        Settlement::Park { item, .. } => Some(format!("parked as review item {item}")),
        _ => None,
    };
    let (verdict, by, channel, mut note, edited) = match &how {
        Settlement::Forward { by, channel, note, edited } => {
            (Verdict::Forwarded, *by, *channel, note.as_deref(), edited.as_ref())
        }
        Settlement::Refuse { by, channel, note, .. } => (Verdict::Refused, *by, *channel, note.as_deref(), None),
        Settlement::Drop { by, note } => (Verdict::Dropped, *by, None, Some(note.as_str()), None),
        Settlement::Park { .. } => (Verdict::Parked, DecidedBy::Policy, None, park_note.as_deref(), None),
        Settlement::Question { .. } => (
            Verdict::Asked,
            DecidedBy::Policy,
            Some("elicitation"),
            Some("asked inside the client; its retry carries the answer"),
            None,
        ),
    };
    // A call asked about because its tool lost its trust says so, unless a person's note is there.
    if let (None, Some(TrustSays::Lost(lost))) = (note, &call.trust) {
        note = Some(lost.as_str());
    }
    let record = DecisionRecord {
        call: &call.decided,
        edited_arguments: edited,
        request_id: call.id.to_value(),
        verdict,
        decided_by: by,
        channel,
        note,
        waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
    };
    let stateless = call.stateless();
    let id = call.id.to_value();
    if let Some(recorder) = &mut session.recorder {
        let rules: Vec<&str> = call.decided.rule_names().collect();
        recorder.decision(serde_json::json!({
            "request_id": id, "tool": call.params.name, "gate": call.decided.gate, "tier": call.decided.tier,
            "rules": rules, "verdict": verdict, "decided_by": by, "channel": channel, "note": note,
        }));
    }
    // The record is staged, and written before anything that carries the call out leaves
    // (`Session::flush`); a record that cannot be written turns that into a refusal.
    let call_no = match session.audit.stage(&record) {
        Ok(call_no) => call_no,
        Err(problem) => {
            tracing::error!("{problem}; refused `{}` without forwarding it", call.params.name);
            if !matches!(how, Settlement::Drop { .. }) {
                let text = unrecorded_text(&call.params.name, &problem.to_string());
                session.answer_client(reply::refused_call(&id, &text, stateless), call.inbound._credit.take());
            }
            if let Settlement::Park { item, .. } = how {
                session.unpark(item);
            }
            return;
        }
    };
    carry(session, call, how, prepared, call_no, waited);
}

/// Stages what carries out a call whose record is staged (audit call number `call_no`): the line
/// for the server (`prepared`, or the client's own when that is `None`), with the call pending,
/// or the client's answer. Each leaves only once the record is written (`Session::flush`).
fn carry(
    session: &mut Session,
    mut call: Decided,
    how: Settlement,
    prepared: Option<Vec<u8>>,
    call_no: u64,
    waited: Duration,
) {
    let stateless = call.stateless();
    let id = call.id.to_value();
    let parked = match &how {
        Settlement::Park { item, .. } => Some(*item),
        _ => None,
    };
    let recorded =
        |to| Recorded { call: call_no, tool: call.params.name.clone(), id: id.clone(), stateless, to, parked };
    let credit = call.inbound._credit.take();
    match how {
        Settlement::Forward { by, edited, .. } => {
            if by != DecidedBy::Policy {
                tracing::info!("`{}` runs: decided by {}{}", call.params.name, by.as_str(), wait_clause(waited));
            } else {
                tracing::debug!("allowed `{}`{}", call.params.name, because(&call.decided));
            }
            let line = prepared.unwrap_or_else(|| std::mem::take(&mut call.inbound.line));
            // A person's yes covers the call that ran: with edited arguments, those.
            let approved = (by == DecidedBy::Human && stateless).then(|| {
                let ran = edited.as_ref().unwrap_or(&call.decided.arguments);
                (call.params.name.clone(), request_state::digest(ran))
            });
            let what = Waiting::ToolsCall { call: call_no, approved };
            let record = recorded(Peer::Server);
            session.await_answer(call.id, Pending::new(what, call.since));
            session.settled(Peer::Server, Outgoing::new(line, credit), record);
        }
        Settlement::Refuse { text, .. } => {
            tracing::warn!("refused `{}`: {text}", call.params.name);
            let out = Outgoing::new(reply::refused_call(&id, &text, stateless), credit);
            session.settled(Peer::Client, out, recorded(Peer::Client));
        }
        Settlement::Drop { note, .. } => tracing::info!("dropped `{}`: {note}", call.params.name),
        Settlement::Question { line } => {
            session.settled(Peer::Client, Outgoing::new(line, credit), recorded(Peer::Client))
        }
        Settlement::Park { text, .. } => {
            let out = Outgoing::new(reply::refused_call(&id, &text, stateless), credit);
            session.settled(Peer::Client, out, recorded(Peer::Client));
        }
    }
}

/// The call's line as the server is to get it, when that is not the line the client sent:
/// `Some(Some(line))` with the arguments a person edited, or the client's own bytes less
/// toolgate's property (nothing else is re-encoded); `Some(None)` when it cannot be prepared.
pub(super) fn for_server(call: &Decided, edited: Option<&Map<String, Value>>) -> Option<Option<Vec<u8>>> {
    match edited {
        Some(arguments) => Some(confidence::rewrite_call(&call.inbound.line, arguments)),
        None if call.stripped => Some(confidence::strip_call(&call.inbound.line)),
        None => None,
    }
}

/// What the model reads when the policy refuses a call, or when no person can be asked.
pub(super) fn refusal_text(call: &DecidedCall) -> String {
    let tool = &call.tool;
    match call.gate {
        Gate::Deny => format!(
            "toolgate refused this call to `{tool}`: {}{}. The call was not run.",
            call.reason.as_deref().unwrap_or("the policy does not allow it"),
            rules_clause(call),
        ),
        Gate::Hold | Gate::Ask | Gate::Queue => format!(
            "toolgate stopped this call to `{tool}`: it needs a human's approval ({} tier{}{}), and no \
             approval channel is available, so the call was not run. Tell the user that this call \
             needs their approval.",
            call.tier.as_str(),
            call.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default(),
            rules_clause(call),
        ),
        Gate::Allow | Gate::Notify => format!("toolgate did not run this call to `{tool}`."),
    }
}

/// `(rule "a", "b")`, naming the rules that chose the gate.
pub(super) fn rules_clause(call: &DecidedCall) -> String {
    let rules: Vec<String> = call.deciding().map(|m| format!("{:?}", m.rule)).collect();
    match rules.len() {
        0 => String::new(),
        1 => format!(" (rule {})", rules[0]),
        _ => format!(" (rules {})", rules.join(", ")),
    }
}

fn because(call: &DecidedCall) -> String {
    let mut out = rules_clause(call);
    if let Some(reason) = &call.reason {
        out.push_str(&format!(": {}", visible(reason)));
    }
    out
}

fn wait_clause(waited: Duration) -> String {
    if waited < Duration::from_millis(1) { String::new() } else { format!(" after {:.1}s", waited.as_secs_f64()) }
}
