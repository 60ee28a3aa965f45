//! The decision point: every `tools/call` request passes through [`call`], and nowhere else.
//!
//! The policy says which gate the call meets; this module carries it out. A call that needs a
//! human when no channel to one exists, or whose decision cannot be written to the audit log,
//! is refused: toolgate fails closed and says why, to the model and on stderr.

use super::session::{Pending, Session, Waiting, preview};
use super::{Inbound, confidence};
use crate::audit::{DecidedBy, DecisionRecord, Verdict};
use crate::policy::{Call, Decision, Gate};
use crate::wire::{CallToolParams, Envelope, Id, reply};

/// Decides one `tools/call` and forwards it or answers it.
pub(super) fn call(session: &mut Session, id: Id, env: Envelope, mut inbound: Inbound) {
    // The line passed the strict check, so it is UTF-8.
    let text = std::str::from_utf8(&inbound.line).unwrap_or_default();
    let mut params = match CallToolParams::parse(env.params.map(|range| &text[range])) {
        Ok(params) => params,
        Err(why) => {
            tracing::warn!("refused a malformed tools/call: {why}: {}", preview(&inbound.line));
            session.to_client(reply::error(&id.to_value(), -32602, &format!("toolgate refused this call: {why}")));
            return;
        }
    };
    let policy = session.policy.clone();
    // The confidence property toolgate added to the schema is read here and never forwarded.
    let strips = (session.confidence_injected || policy.uses_confidence())
        && !session.native_confidence.contains(&params.name);
    let (stripped, confidence) = if strips { confidence::take(&mut params.arguments) } else { (false, None) };
    let decision = policy.decide(&Call {
        server: &session.server,
        tool: &params.name,
        arguments: &params.arguments,
        annotations: session.annotations.get(&params.name).copied(),
        confidence,
    });
    let (verdict, decided_by, note) = match decision.gate {
        Gate::Allow | Gate::Notify => (Verdict::Forwarded, DecidedBy::Policy, None),
        Gate::Deny => (Verdict::Refused, DecidedBy::Policy, None),
        Gate::Hold | Gate::Ask | Gate::Queue => (Verdict::Refused, DecidedBy::Toolgate, Some(NO_CHANNEL)),
    };
    let record = DecisionRecord {
        server: &session.server,
        tool: &params.name,
        arguments: &params.arguments,
        request_id: id.to_value(),
        gate: decision.gate,
        tier: decision.tier,
        rules: DecisionRecord::rules_of(&decision),
        reason: decision.reason.as_deref(),
        verdict,
        decided_by,
        note,
        confidence,
        policy: &policy.version,
        waited_ms: 0,
    };
    let stateless = params.is_stateless_era();
    let call_no = match session.audit.decision(&record) {
        Ok(call_no) => call_no,
        Err(problem) => {
            tracing::error!("{problem}; refused {} without forwarding it", params.name);
            let text = format!(
                "toolgate refused this call to `{}` because it could not write its audit log ({problem}). \
                 The call was not run. Tell the user.",
                params.name
            );
            session.to_client(reply::refused_call(&id.to_value(), &text, stateless));
            return;
        }
    };
    match verdict {
        Verdict::Forwarded => {
            if decision.gate == Gate::Notify {
                tracing::info!("notice: {} called `{}`{}", session.server, params.name, because(&decision));
            } else {
                tracing::debug!("allowed `{}`{}", params.name, because(&decision));
            }
            if stripped {
                // What is forwarded is what was decided on: the same arguments, re-encoded.
                match confidence::rewrite_call(&inbound.line, &params.arguments) {
                    Some(line) => inbound.line = line,
                    None => {
                        tracing::error!("cannot re-encode a call to `{}` without its confidence; refused", params.name);
                        let text = format!("toolgate could not prepare this call to `{}`, so it was not run.", params.name);
                        session.to_client(reply::refused_call(&id.to_value(), &text, stateless));
                        return;
                    }
                }
            }
            session
                .pending
                .insert(id, Pending { what: Waiting::ToolsCall { call: call_no }, since: tokio::time::Instant::now() });
            session.forward_to_server(inbound);
        }
        Verdict::Refused => {
            let text = refusal_text(&params.name, &decision);
            tracing::warn!("refused `{}`: {text}", params.name);
            session.to_client(reply::refused_call(&id.to_value(), &text, stateless));
        }
    }
}

const NO_CHANNEL: &str = "needs a human, and no approval channel is available";

/// What the model reads when toolgate refuses a call.
pub(super) fn refusal_text(tool: &str, decision: &Decision) -> String {
    match decision.gate {
        Gate::Deny => format!(
            "toolgate refused this call to `{tool}`: {}{}. The call was not run.",
            decision.reason.as_deref().unwrap_or("the policy does not allow it"),
            rules_clause(decision),
        ),
        Gate::Hold | Gate::Ask | Gate::Queue => format!(
            "toolgate stopped this call to `{tool}`: it needs a human's approval ({} tier{}{}), and no \
             approval channel is available, so the call was not run. Tell the user that this call \
             needs their approval.",
            decision.tier.as_str(),
            decision.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default(),
            rules_clause(decision),
        ),
        Gate::Allow | Gate::Notify => format!("toolgate did not run this call to `{tool}`."),
    }
}

/// `(rule "a", "b")`, naming the rules that chose the gate.
fn rules_clause(decision: &Decision) -> String {
    let rules: Vec<String> = decision.deciding_rules().map(|r| format!("{r:?}")).collect();
    match rules.len() {
        0 => String::new(),
        1 => format!(" (rule {})", rules[0]),
        _ => format!(" (rules {})", rules.join(", ")),
    }
}

fn because(decision: &Decision) -> String {
    let mut out = rules_clause(decision);
    if let Some(reason) = &decision.reason {
        out.push_str(&format!(": {reason}"));
    }
    out
}
