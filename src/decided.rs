//! One decided call: the call and what the policy made of it, built once from a
//! `policy::Decision` and carried everywhere the call goes after that. The audit log records it
//! (`audit::DecisionRecord` borrows it beside what only a record has: the verdict, who decided,
//! the request id, ...), the review queue keeps it (`review::Item`), a parked call holds it until
//! it runs, and a person is shown it (`human::Request`, and `human::approver_protocol::Approval`
//! on the approver socket).
//!
//! It holds every rule that matched, each with the gate it asked for and its reason; each view
//! takes the rules it lists from that one list: the audit log every matched rule by name
//! ([`DecidedCall::rule_names`]), the review queue and a person the rules that chose the gate
//! ([`DecidedCall::deciding`]), with their reasons for the person. A queue item and an approval
//! keep only those deciding rules, so a call read back from one ([`DecidedCall::read_back`])
//! lists them alone, each as having asked for the call's gate: every view of it shows what it
//! showed before.
//!
//! The type has no serialized form of its own: each view writes its fields in the order its
//! format has always had (an audit record's bytes are hash-chained, queue files and approver
//! messages are read by other versions), mixed with fields of its own.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::policy::{Decision, Gate, Matched, Tier};

/// A call and what the policy decided for it. The proxy builds one for every call it judges,
/// so building it copies nothing but the tool's name: the arguments and the rules move in, and
/// the server's name and the policy's version are shared with the session.
#[derive(Debug, Clone, PartialEq)]
pub struct DecidedCall {
    pub server: Arc<str>,
    pub tool: String,
    /// The arguments it was judged on (without toolgate's confidence property).
    pub arguments: Map<String, Value>,
    pub gate: Gate,
    pub tier: Tier,
    /// Every rule that matched, in file order, with the gate it asked for and its reason.
    pub matched: Vec<Matched>,
    /// Why the call met its gate, in one line: the reason of the first rule that asked for it,
    /// or of what changed the gate after the rules (the arguments against the tool's schema, the
    /// tool's trust).
    pub reason: Option<String>,
    /// The version of the policy that decided it; unknown for a call read back from a queue item
    /// older than that field, or from an approval (the approver protocol does not carry it).
    pub policy: Option<Arc<str>>,
    /// The confidence the model reported, when the policy asks for it.
    pub confidence: Option<f64>,
}

impl DecidedCall {
    /// The call `tool` with `arguments` to `server`, as `decision` of the policy `policy` (its
    /// version) decided it. What else the decision says (how long a hold waits, ...) is the
    /// caller's to keep: its rules and reason move here.
    pub fn new(
        server: Arc<str>,
        tool: &str,
        arguments: Map<String, Value>,
        decision: Decision,
        policy: Arc<str>,
        confidence: Option<f64>,
    ) -> DecidedCall {
        DecidedCall {
            server,
            tool: tool.to_owned(),
            arguments,
            gate: decision.gate,
            tier: decision.tier,
            matched: decision.matched,
            reason: decision.reason,
            policy: Some(policy),
            confidence,
        }
    }

    /// The matched rules of a call read back from a view that kept only the rules that chose
    /// its gate (`rules`, each with its reason: a queue item, an approval): each stands as
    /// having asked for that gate, so the call lists them again wherever it goes.
    pub fn read_back(gate: Gate, rules: impl IntoIterator<Item = (String, Option<String>)>) -> Vec<Matched> {
        rules
            .into_iter()
            .map(|(rule, reason)| Matched { rule, gate: Some(gate), tier: None, reason, some_readings: false })
            .collect()
    }

    /// The name of every rule that matched, in file order: what the audit log lists.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.matched.iter().map(|m| m.rule.as_str())
    }

    /// The rules that asked for the gate the call met: what the review queue and a person see.
    pub fn deciding(&self) -> impl Iterator<Item = &Matched> {
        self.matched.iter().filter(move |m| m.gate == Some(self.gate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Basis;

    fn matched(rule: &str, gate: Option<Gate>, reason: Option<&str>) -> Matched {
        Matched { rule: rule.into(), gate, tier: None, reason: reason.map(str::to_owned), some_readings: false }
    }

    #[test]
    fn the_record_lists_every_matched_rule_and_the_views_those_that_chose_the_gate() {
        let decision = Decision {
            gate: Gate::Ask,
            tier: Tier::High,
            basis: Basis::Rules,
            matched: vec![
                matched("notes writes", Some(Gate::Notify), None),
                matched("confident enough", None, None),
                matched("writes outside", Some(Gate::Ask), Some("outside the project")),
                matched("payments", Some(Gate::Ask), None),
            ],
            reason: Some("outside the project".into()),
            hold: None,
            always_ask: false,
            confidence: None,
        };
        let call = DecidedCall::new("fs".into(), "write", Map::new(), decision, "sha256:1".into(), Some(0.5));
        let names: Vec<&str> = call.rule_names().collect();
        assert_eq!(names, ["notes writes", "confident enough", "writes outside", "payments"]);
        let deciding: Vec<(&str, Option<&str>)> =
            call.deciding().map(|m| (m.rule.as_str(), m.reason.as_deref())).collect();
        assert_eq!(deciding, [("writes outside", Some("outside the project")), ("payments", None)]);

        // Read back from a view that kept the deciding rules, it shows them again, and the
        // record lists them alone.
        let back = DecidedCall {
            matched: DecidedCall::read_back(call.gate, call.deciding().map(|m| (m.rule.clone(), m.reason.clone()))),
            policy: None,
            confidence: None,
            ..call.clone()
        };
        let again: Vec<(&str, Option<&str>)> =
            back.deciding().map(|m| (m.rule.as_str(), m.reason.as_deref())).collect();
        assert_eq!(again, deciding);
        assert_eq!(back.rule_names().collect::<Vec<_>>(), ["writes outside", "payments"]);
    }
}
