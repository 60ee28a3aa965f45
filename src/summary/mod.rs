//! `toolgate summary`: what the agents did over a period, what needs the person's attention, and
//! what they could stop approving. Read back from the record toolgate already keeps: the audit
//! log (every decision and outcome), the review queue (what waits) and the trust record (tools
//! whose definition changed). Nothing here writes but [`write_rule`], which appends one proposal
//! to a policy after checking that the policy still loads with it.
//!
//! The month-three stage of human-in-the-loop: a person reads this summary instead of answering
//! every call, and steps in on the exceptions it lists first.

mod read;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::policy::Policy;
use crate::review::{Queue, Status};
use crate::trust::Store;

pub use read::{Decision, Log, Note, read_log};

/// What the summary reads, and the period it covers.
pub struct Sources<'a> {
    /// The review queue, if there is one.
    pub queue: Option<&'a Queue>,
    /// The trust record, if there is one.
    pub trust: Option<&'a Store>,
    /// The policy in force, to name rules that never matched and to check proposals.
    pub policy: Option<(&'a Policy, Option<PathBuf>)>,
    pub since: SystemTime,
    pub until: SystemTime,
    /// Only servers matching this glob.
    pub server: Option<&'a globset::GlobMatcher>,
    /// A tool a person approved at least this many times, and never denied or edited, is
    /// proposed for a lower gate.
    pub propose_after: u64,
    /// Now, for the age of waiting items (unix milliseconds).
    pub now_ms: u64,
}

/// The summary, as `--json` prints it (its shape is documented in
/// docs/reference/summary-json.md and kept stable: fields are only ever added).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The version of this shape.
    pub v: u32,
    pub since: String,
    pub until: String,
    /// What needs the person's attention, most pressing first.
    pub exceptions: Vec<Exception>,
    pub ran: Ran,
    pub people: People,
    /// Calls per day (UTC), by gate.
    pub days: Vec<Day>,
    /// What the record suggests changing, numbered for `--write-rule`.
    pub proposals: Vec<Proposal>,
    /// The audit log's hash chain: `ok`, or the first problem found.
    pub chain: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Ran {
    /// Every `tools/call` decided in the period.
    pub calls: u64,
    /// Calls that ran with no person deciding: by the policy, by earned trust, or when a hold
    /// ran out unchallenged.
    pub without_person: u64,
    pub by_gate: BTreeMap<String, u64>,
    /// Who settled each call: policy, person, review, timer, timeout, trust, client, toolgate.
    pub by_decider: BTreeMap<String, u64>,
    /// Per server and tool, most calls first.
    pub tools: Vec<ToolRow>,
}

#[derive(Debug, Serialize)]
pub struct ToolRow {
    pub server: String,
    pub tool: String,
    pub calls: u64,
    pub by_gate: BTreeMap<String, u64>,
    pub by_decider: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct People {
    /// Calls a person let run, by channel (terminal, elicitation, approver, session, review).
    pub approved: BTreeMap<String, u64>,
    /// Calls a person refused, by channel.
    pub denied: BTreeMap<String, u64>,
    /// Calls that ran with arguments a person edited, by channel.
    pub edited: BTreeMap<String, u64>,
    /// How long calls waited for a person's answer, in milliseconds.
    pub wait_p50_ms: Option<u64>,
    pub wait_p95_ms: Option<u64>,
    /// Calls nobody answered in time.
    pub timed_out: u64,
}

#[derive(Debug, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub by_gate: BTreeMap<String, u64>,
}

/// Something the person should look at.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Exception {
    /// The audit log's chain is broken.
    Chain { problem: String },
    /// Calls refused because no person could be reached.
    Unreachable { server: String, tool: String, calls: u64 },
    /// Calls denied, by the policy or by a person.
    Denied { server: String, tool: String, calls: u64, by: BTreeMap<String, u64> },
    /// A tool whose definition changed since it was pinned, not accepted yet.
    ToolChanged { server: String, tool: String },
    /// A parked call still waiting for a person.
    Waiting { item: u64, server: String, tool: String, age_s: u64 },
    /// Lines toolgate refused, from the client, the server or an approver, by reason.
    RefusedLines { from: String, lines: u64, reasons: BTreeMap<String, u64> },
    /// The policy file was edited and did not load, so the one before stayed in force; `last`:
    /// the latest errors.
    ReloadFailed { times: u64, last: String },
}

/// A change the record suggests.
#[derive(Debug, Serialize)]
pub struct Proposal {
    /// Its number, for `--write-rule POLICY N`.
    pub n: usize,
    #[serde(flatten)]
    pub what: Proposed,
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Proposed {
    /// A person approved every call of this tool: its gate could be lowered. `rule` is the TOML
    /// to add, when a new rule can lower it; otherwise `edit` says which rule to change.
    LowerGate {
        server: String,
        tool: String,
        approved: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        edit: Option<String>,
    },
    /// A rule of the policy matched no call in the period.
    UnusedRule { rule: String },
    /// The model called this tool again with the same arguments after it was refused.
    Retried { server: String, tool: String, refused: u64 },
}

impl Proposed {
    /// The rule `--write-rule` appends, if this proposal has one.
    pub fn rule(&self) -> Option<&str> {
        match self {
            Proposed::LowerGate { rule, .. } => rule.as_deref(),
            _ => None,
        }
    }
}

/// Reads the record and sums up the period.
pub fn summarize(sources: &Sources<'_>, log: &Log, chain: String) -> Summary {
    let in_scope: Vec<&Decision> = log
        .decisions
        .iter()
        .filter(|d| sources.in_period(d.at))
        .filter(|d| sources.server.is_none_or(|g| g.is_match(&d.server)))
        .collect();
    let tally = Tally::of(&in_scope);
    let exceptions = exceptions(sources, log, &tally, &chain);
    let mut proposals = Vec::new();
    proposals.extend(lower_gates(sources, &in_scope));
    proposals.extend(retried(&in_scope));
    // A rule that matched nothing says something only when there were calls it could match.
    if let Some((policy, _)) = sources.policy.as_ref().filter(|_| !in_scope.is_empty()) {
        for rule in policy.rules.rules() {
            if !tally.matched.contains(&*rule.name) {
                proposals.push(Proposed::UnusedRule { rule: rule.name.to_string() });
            }
        }
    }
    let Tally { mut ran, tools, people, days, .. } = tally;
    let mut tools: Vec<ToolRow> = tools.into_values().collect();
    tools.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| (&a.server, &a.tool).cmp(&(&b.server, &b.tool))));
    ran.tools = tools;
    Summary {
        v: 1,
        since: humantime::format_rfc3339_seconds(sources.since).to_string(),
        until: humantime::format_rfc3339_seconds(sources.until).to_string(),
        exceptions,
        ran,
        people,
        days: days.into_iter().map(|(day, by_gate)| Day { day, by_gate }).collect(),
        proposals: proposals.into_iter().enumerate().map(|(i, what)| Proposal { n: i + 1, what }).collect(),
        chain,
    }
}

impl Sources<'_> {
    fn in_period(&self, at: SystemTime) -> bool {
        at >= self.since && at <= self.until
    }
}

/// The period's decisions, counted every way the summary shows them.
#[derive(Default)]
struct Tally<'a> {
    ran: Ran,
    tools: BTreeMap<(String, String), ToolRow>,
    people: People,
    days: BTreeMap<String, BTreeMap<String, u64>>,
    /// Refused calls by server and tool, by who refused them.
    denied: BTreeMap<(String, String), BTreeMap<String, u64>>,
    /// Calls refused because no person could be reached, by server and tool.
    unreachable: BTreeMap<(String, String), u64>,
    /// Every rule that matched a call.
    matched: BTreeSet<&'a str>,
}

impl<'a> Tally<'a> {
    fn of(decisions: &[&'a Decision]) -> Tally<'a> {
        let mut t = Tally::default();
        let mut waits = Vec::new();
        for d in decisions {
            let decider = d.decider();
            let key = (d.server.clone(), d.tool.clone());
            t.ran.calls += 1;
            *t.ran.by_gate.entry(d.gate.clone()).or_default() += 1;
            *t.ran.by_decider.entry(decider.to_owned()).or_default() += 1;
            if d.verdict == "forwarded" && matches!(decider, "policy" | "trust" | "timer") {
                t.ran.without_person += 1;
            }
            let row = t.tools.entry(key.clone()).or_insert_with(|| ToolRow {
                server: d.server.clone(),
                tool: d.tool.clone(),
                calls: 0,
                by_gate: BTreeMap::new(),
                by_decider: BTreeMap::new(),
            });
            row.calls += 1;
            *row.by_gate.entry(d.gate.clone()).or_default() += 1;
            *row.by_decider.entry(decider.to_owned()).or_default() += 1;
            *t.days.entry(d.day()).or_default().entry(d.gate.clone()).or_default() += 1;
            t.matched.extend(d.rules.iter().map(String::as_str));
            if d.decided_by == "human" {
                let counts = match d.verdict.as_str() {
                    "forwarded" if d.edited => &mut t.people.edited,
                    "forwarded" => &mut t.people.approved,
                    _ => &mut t.people.denied,
                };
                *counts.entry(d.channel.clone().unwrap_or_else(|| "-".to_owned())).or_default() += 1;
                // A session's allowance and a review answer nothing while the call waits.
                if !matches!(d.channel.as_deref(), Some("session" | "review")) {
                    waits.push(d.waited_ms);
                }
            }
            if d.decided_by == "timeout" {
                t.people.timed_out += 1;
            }
            if d.verdict == "refused" && matches!(d.decided_by.as_str(), "policy" | "human") {
                *t.denied.entry(key.clone()).or_default().entry(decider.to_owned()).or_default() += 1;
            }
            if d.unreachable() {
                *t.unreachable.entry(key).or_default() += 1;
            }
        }
        waits.sort_unstable();
        t.people.wait_p50_ms = percentile(&waits, 50);
        t.people.wait_p95_ms = percentile(&waits, 95);
        t
    }
}

/// What needs a person, most pressing first: the chain, the policy in force, calls no one could
/// be asked about, refused lines, denials, changed tools, parked calls waiting.
fn exceptions(sources: &Sources<'_>, log: &Log, tally: &Tally<'_>, chain: &str) -> Vec<Exception> {
    let mut exceptions = Vec::new();
    if chain != "ok" {
        exceptions.push(Exception::Chain { problem: chain.to_owned() });
    }
    let mut refused: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut reloads = (0, String::new());
    let named = |server: &str| sources.server.is_none_or(|g| g.is_match(server));
    let notes = log.notes.iter().filter(|n| sources.in_period(n.at));
    // A note names its proxy's server; one from before that was kept counts for every server.
    for note in notes.filter(|n| n.server.as_deref().is_none_or(named)) {
        let reason = note.reason.clone().unwrap_or_default();
        match note.event.as_str() {
            "refused_line" => {
                let from = note.from.clone().unwrap_or_else(|| "?".to_owned());
                *refused.entry(from).or_default().entry(reason).or_default() += 1;
            }
            _ => reloads = (reloads.0 + 1, reason),
        }
    }
    if reloads.0 > 0 {
        exceptions.push(Exception::ReloadFailed { times: reloads.0, last: reloads.1 });
    }
    for ((server, tool), calls) in &tally.unreachable {
        exceptions.push(Exception::Unreachable { server: server.clone(), tool: tool.clone(), calls: *calls });
    }
    for (from, reasons) in refused {
        exceptions.push(Exception::RefusedLines { from, lines: reasons.values().sum(), reasons });
    }
    for ((server, tool), by) in &tally.denied {
        let calls = by.values().sum();
        exceptions.push(Exception::Denied { server: server.clone(), tool: tool.clone(), calls, by: by.clone() });
    }
    for (key, record) in sources.trust.iter().flat_map(|t| &t.tools) {
        let Some((server, tool)) = key.split_once('/') else { continue };
        if record.changed() && named(server) {
            exceptions.push(Exception::ToolChanged { server: server.to_owned(), tool: tool.to_owned() });
        }
    }
    for item in sources.queue.iter().flat_map(|q| q.items.values()) {
        if item.status == Status::Waiting && named(&item.call.server) {
            let age_s = sources.now_ms.saturating_sub(item.at) / 1000;
            exceptions.push(Exception::Waiting {
                item: item.id,
                server: item.call.server.to_string(),
                tool: item.call.tool.clone(),
                age_s,
            });
        }
    }
    exceptions
}

/// Tools a person approved every time, often enough: their gate could be lowered.
fn lower_gates(sources: &Sources<'_>, decisions: &[&Decision]) -> Vec<Proposed> {
    #[derive(Default)]
    struct Answers {
        approved: u64,
        other: u64,
    }
    let mut answers: BTreeMap<(&str, &str), Answers> = BTreeMap::new();
    let mut last: BTreeMap<(&str, &str), &Decision> = BTreeMap::new();
    for d in decisions {
        let key = (d.server.as_str(), d.tool.as_str());
        if d.decided_by == "human" || d.decided_by == "timeout" {
            let a = answers.entry(key).or_default();
            if d.decided_by == "human" && d.verdict == "forwarded" && !d.edited {
                a.approved += 1;
            } else {
                a.other += 1;
            }
            last.insert(key, d);
        }
    }
    let mut out = Vec::new();
    for ((server, tool), a) in answers {
        if a.other > 0 || a.approved < sources.propose_after {
            continue;
        }
        // A rule for this server names its program, as the trust record last saw it.
        let identity = sources.trust.and_then(|t| t.servers.get(server)).map(|i| i.id.as_str());
        let (rule, edit) = match &sources.policy {
            Some((policy, path)) => {
                match proposal(policy, path.as_deref(), server, identity, tool, last[&(server, tool)]) {
                    Some(proposed) => proposed,
                    // The policy in force no longer asks: nothing to propose.
                    None => continue,
                }
            }
            None => (None, Some("no policy file was given to write a rule to (--policy)".to_owned())),
        };
        out.push(Proposed::LowerGate {
            server: server.to_owned(),
            tool: tool.to_owned(),
            approved: a.approved,
            rule,
            edit,
        });
    }
    out
}

/// The rule that would let this tool's calls run without asking, under the policy in force; or
/// why none can, and what to edit instead. `None` when the policy in force no longer asks.
fn proposal(
    policy: &Policy,
    path: Option<&Path>,
    server: &str,
    identity: Option<&str>,
    tool: &str,
    last: &Decision,
) -> Option<(Option<String>, Option<String>)> {
    let arguments = last.arguments.clone();
    let decision = policy.decide(&crate::policy::Call::new(server, tool, &arguments).with_identity(identity));
    if decision.gate <= crate::policy::Gate::Notify {
        return None;
    }
    Some(match crate::policy::remember::proposal(policy, path, server, identity, tool, &decision) {
        crate::policy::remember::Remember::Possible { rule, .. } => (Some(rule), None),
        crate::policy::remember::Remember::Impossible(why) => (None, Some(why)),
    })
}

/// Calls the model made again, with the same arguments, after they were refused.
fn retried(decisions: &[&Decision]) -> Vec<Proposed> {
    let mut refused: BTreeMap<(&str, &str, String), u64> = BTreeMap::new();
    for d in decisions {
        if d.verdict == "refused" && matches!(d.decided_by.as_str(), "policy" | "human" | "timeout") {
            *refused.entry((d.server.as_str(), d.tool.as_str(), d.arguments_digest())).or_default() += 1;
        }
    }
    let mut by_tool: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for ((server, tool, _), n) in refused {
        if n >= 2 {
            *by_tool.entry((server, tool)).or_default() += n;
        }
    }
    by_tool
        .into_iter()
        .map(|((server, tool), refused)| Proposed::Retried {
            server: server.to_owned(),
            tool: tool.to_owned(),
            refused,
        })
        .collect()
}

/// The value below which `pct` percent of the sorted values lie (nearest rank).
fn percentile(sorted: &[u64], pct: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Why `--write-rule` did not write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("there is no proposal {0} (see the numbers in `toolgate summary`)")]
    NoSuchProposal(usize),
    #[error("proposal {n} has no rule to write: {why}")]
    NoRule { n: usize, why: String },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the policy would not load with proposal {n} added, so nothing was written:\n{errors}")]
    Check { n: usize, errors: String },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Appends proposal `n` to the policy at `path`, under a comment, once the policy with it added
/// passes the same checks as `toolgate check`.
pub fn write_rule(summary: &Summary, n: usize, path: &Path) -> Result<String, WriteError> {
    let proposal = summary.proposals.iter().find(|p| p.n == n).ok_or(WriteError::NoSuchProposal(n))?;
    let Some(rule) = proposal.what.rule() else {
        let why = match &proposal.what {
            Proposed::LowerGate { edit: Some(edit), .. } => edit.clone(),
            _ => "only a proposal to lower a gate comes with a rule".to_owned(),
        };
        return Err(WriteError::NoRule { n, why });
    };
    let text = std::fs::read_to_string(path).map_err(|source| WriteError::Read { path: path.to_owned(), source })?;
    let with = format!("{text}\n{rule}");
    if let Err(errors) = Policy::from_toml(&with, &path.display().to_string()) {
        return Err(WriteError::Check { n, errors: errors.to_string() });
    }
    let comment = match &proposal.what {
        Proposed::LowerGate { approved, .. } => format!(
            "Added by `toolgate summary --write-rule` ({}): a person approved every one of {approved} calls from {} to {}.",
            humantime::format_rfc3339_seconds(crate::clock::now()),
            summary.since,
            summary.until
        ),
        _ => "Added by `toolgate summary --write-rule`.".to_owned(),
    };
    crate::policy::remember::append(path, rule, &comment)
        .map_err(|source| WriteError::Write { path: path.to_owned(), source })?;
    Ok(rule.to_owned())
}

#[cfg(test)]
mod tests;
