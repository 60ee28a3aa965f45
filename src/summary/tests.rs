//! The summary of a made-up week: what each count, exception and proposal must be.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::*;
use crate::trust::Record;

/// 2026-11-30T00:00:00Z.
fn day0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_996_800)
}

fn decision(day: u64, server: &str, tool: &str, gate: &str, verdict: &str, by: &str) -> Decision {
    Decision {
        at: day0() + Duration::from_secs(day * 86_400 + 3600),
        server: server.into(),
        tool: tool.into(),
        arguments: Map::new(),
        gate: gate.into(),
        rules: Vec::new(),
        verdict: verdict.into(),
        decided_by: by.into(),
        channel: None,
        note: None,
        waited_ms: 0,
        edited: false,
    }
}

fn log(decisions: Vec<Decision>) -> Log {
    Log { decisions, notes: Vec::new() }
}

fn approved(day: u64, tool: &str, waited_ms: u64) -> Decision {
    Decision { channel: Some("terminal".into()), waited_ms, ..decision(day, "bank", tool, "ask", "forwarded", "human") }
}

const POLICY: &str = r#"
[settings]
default_tier = "high"
[[rules]]
name = "reads are safe"
tools = ["read_*"]
tier = "low"
[[rules]]
name = "never delete"
tools = ["delete"]
action = "deny"
[[rules]]
name = "old rule"
tools = ["fax"]
tier = "low"
"#;

fn summary_of(decisions: &[Decision], policy: &Policy, queue: Option<&Queue>, trust: Option<&Store>) -> Summary {
    let sources = Sources {
        queue,
        trust,
        policy: Some((policy, Some(PathBuf::from("policy.toml")))),
        since: day0(),
        until: day0() + Duration::from_secs(7 * 86_400),
        server: None,
        propose_after: 20,
        now_ms: u64::try_from(
            (day0() + Duration::from_secs(7 * 86_400)).duration_since(UNIX_EPOCH).unwrap().as_millis(),
        )
        .unwrap(),
    };
    summarize(&sources, &Log { decisions: decisions.to_vec(), notes: Vec::new() }, "ok".into())
}

fn week() -> Vec<Decision> {
    let mut d = Vec::new();
    for day in 0..5 {
        for _ in 0..10 {
            d.push(Decision {
                rules: vec!["reads are safe".into()],
                ..decision(day, "fs", "read_file", "allow", "forwarded", "policy")
            });
        }
        for i in 0..4 {
            d.push(approved(day, "get_balance", 1000 * (i + 1)));
        }
    }
    d.push(Decision {
        channel: Some("approver".into()),
        waited_ms: 9000,
        ..decision(2, "bank", "send_payment", "ask", "refused", "human")
    });
    d.push(Decision {
        note: Some("needs a human, and no approval channel is available: no terminal".into()),
        ..decision(3, "bank", "send_payment", "ask", "refused", "toolgate")
    });
    for _ in 0..3 {
        let mut refused = decision(4, "fs", "delete", "deny", "refused", "policy");
        refused.rules = vec!["never delete".into()];
        refused.arguments.insert("path".into(), json!("/etc"));
        d.push(refused);
    }
    d.push(decision(4, "fs", "write_file", "hold", "forwarded", "timer"));
    d.push(decision(4, "fs", "notes", "notify", "forwarded", "trust"));
    d.push(Decision { channel: Some("review".into()), ..decision(4, "bank", "refund", "queue", "forwarded", "human") });
    d.push(decision(5, "bank", "transfer", "ask", "refused", "timeout"));
    // Outside the period: never counted.
    d.push(Decision {
        at: day0() - Duration::from_secs(1),
        ..decision(0, "fs", "read_file", "allow", "forwarded", "policy")
    });
    d
}

#[test]
fn what_ran_is_counted_by_gate_by_who_decided_and_by_day() {
    let policy = Policy::from_toml(POLICY, "policy.toml").unwrap();
    let s = summary_of(&week(), &policy, None, None);
    assert_eq!(s.ran.calls, 50 + 20 + 2 + 3 + 4);
    // By the policy (50 reads), the timer (1) and trust (1): no person decided.
    assert_eq!(s.ran.without_person, 52);
    assert_eq!(s.ran.by_gate["allow"], 50);
    assert_eq!(s.ran.by_gate["ask"], 20 + 2 + 1);
    assert_eq!(s.ran.by_decider["person"], 21);
    assert_eq!(s.ran.by_decider["review"], 1);
    assert_eq!(s.ran.by_decider["timeout"], 1);
    assert_eq!(s.ran.tools[0].tool, "read_file", "most calls first");
    assert_eq!(s.days.len(), 6);
    assert_eq!(s.days[0].day, "2026-11-30");
    assert_eq!(s.days[0].by_gate.values().sum::<u64>(), 14);
}

#[test]
fn what_people_did_is_counted_by_channel_with_their_wait() {
    let policy = Policy::from_toml(POLICY, "policy.toml").unwrap();
    let s = summary_of(&week(), &policy, None, None);
    assert_eq!(s.people.approved["terminal"], 20);
    assert_eq!(s.people.approved["review"], 1);
    assert_eq!(s.people.denied["approver"], 1);
    assert!(s.people.edited.is_empty());
    assert_eq!(s.people.timed_out, 1);
    // 21 waits: 5 each of 1, 2, 3 and 4 seconds, and 9 s. The review's answer is not a wait.
    assert_eq!(s.people.wait_p50_ms, Some(3000));
    assert_eq!(s.people.wait_p95_ms, Some(4000));
}

#[test]
fn exceptions_come_first_and_name_what_to_do() {
    let policy = Policy::from_toml(POLICY, "policy.toml").unwrap();
    let mut queue = Queue::default();
    let decision = policy.decide(&crate::policy::Call::new("bank", "refund", &Map::new()));
    let call =
        crate::decided::DecidedCall::new("bank".into(), "refund", Map::new(), decision, policy.version.clone(), None);
    let mut item = crate::review::item(crate::review::Status::Waiting, call);
    item.at = u64::try_from((day0() + Duration::from_secs(5 * 86_400)).duration_since(UNIX_EPOCH).unwrap().as_millis())
        .unwrap();
    queue.add(item);
    let mut trust = Store::default();
    trust.tools.insert(
        "fs/write_file".into(),
        Record { pinned: Some("a".into()), seen: Some("b".into()), ..Record::default() },
    );
    let s = summary_of(&week(), &policy, Some(&queue), Some(&trust));
    let kinds: Vec<Value> = s.exceptions.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
    assert_eq!(kinds[0], json!({"kind": "unreachable", "server": "bank", "tool": "send_payment", "calls": 1}));
    assert!(
        kinds.contains(&json!({"kind": "denied", "server": "fs", "tool": "delete", "calls": 3, "by": {"policy": 3}}))
    );
    assert!(kinds.contains(
        &json!({"kind": "denied", "server": "bank", "tool": "send_payment", "calls": 1, "by": {"person": 1}})
    ));
    assert!(kinds.contains(&json!({"kind": "tool_changed", "server": "fs", "tool": "write_file"})));
    assert!(
        kinds.contains(&json!({"kind": "waiting", "item": 1, "server": "bank", "tool": "refund", "age_s": 172_800}))
    );
    let text = render::text(&s);
    let attention = text.find("Needs your attention").unwrap();
    assert!(attention < text.find("What ran").unwrap(), "exceptions come first:\n{text}");
    assert!(text.contains("toolgate trust accept fs write_file"), "{text}");

    let broken = summarize(
        &Sources { since: day0(), until: day0() + Duration::from_secs(86_400), ..sources_for(&policy) },
        &Log::default(),
        "line 3: edited".into(),
    );
    assert!(matches!(&broken.exceptions[0], Exception::Chain { problem } if problem == "line 3: edited"));
}

fn sources_for(policy: &Policy) -> Sources<'_> {
    Sources {
        queue: None,
        trust: None,
        policy: Some((policy, None)),
        since: day0(),
        until: day0(),
        server: None,
        propose_after: 20,
        now_ms: 0,
    }
}

#[test]
fn a_tool_approved_every_time_often_enough_is_proposed_a_rule_that_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, POLICY).unwrap();
    let policy = Policy::load(&path).unwrap();
    let mut sources = sources_for(&policy);
    sources.policy = Some((&policy, Some(path.clone())));
    sources.until = day0() + Duration::from_secs(7 * 86_400);
    let s = summarize(&sources, &log(week()), "ok".into());
    let lower: Vec<&Proposal> = s.proposals.iter().filter(|p| matches!(p.what, Proposed::LowerGate { .. })).collect();
    assert_eq!(lower.len(), 1, "{:?}", s.proposals);
    assert!(
        matches!(&lower[0].what, Proposed::LowerGate { tool, approved: 20, rule: Some(_), .. } if tool == "get_balance")
    );
    // send_payment was denied once: never proposed, however often it was approved.
    assert!(!s.proposals.iter().any(|p| matches!(&p.what, Proposed::LowerGate { tool, .. } if tool == "send_payment")));
    assert!(s.proposals.iter().any(|p| matches!(&p.what, Proposed::UnusedRule { rule } if rule == "old rule")));
    assert!(
        s.proposals.iter().any(|p| matches!(&p.what, Proposed::Retried { tool, refused: 3, .. } if tool == "delete"))
    );

    let n = lower[0].n;
    write_rule(&s, n, &path).unwrap();
    let written = Policy::load(&path).expect("the policy with the rule loads");
    let now = written.decide(&crate::policy::Call::new("bank", "get_balance", &Map::new()));
    assert_eq!(now.gate, crate::policy::Gate::Allow, "the written rule applies to the tool");
    assert!(std::fs::read_to_string(&path).unwrap().contains("# Added by `toolgate summary --write-rule`"));

    // One approval fewer than the setting asks for: nothing is proposed.
    let mut fewer = week();
    let at = fewer.iter().position(|d| d.tool == "get_balance").unwrap();
    fewer.remove(at);
    let s = summarize(&sources, &log(fewer), "ok".into());
    assert!(!s.proposals.iter().any(|p| matches!(p.what, Proposed::LowerGate { .. })));
    // A proposal without a rule is not written, and says why.
    let unused = s.proposals.iter().find(|p| matches!(p.what, Proposed::UnusedRule { .. })).unwrap();
    assert!(matches!(write_rule(&s, unused.n, &path), Err(WriteError::NoRule { .. })));
    assert!(matches!(write_rule(&s, 99, &path), Err(WriteError::NoSuchProposal(99))));
}

#[test]
fn names_from_the_record_are_shown_escaped() {
    let policy = Policy::from_toml(POLICY, "policy.toml").unwrap();
    let hostile = decision(0, "evil", "x\u{1b}[2J|*", "deny", "refused", "policy");
    let s = summary_of(&[hostile], &policy, None, None);
    let text = render::text(&s);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    let markdown = render::markdown(&s);
    assert!(!markdown.contains('\u{1b}') && markdown.contains("\\|\\*"), "{markdown}");
}

#[test]
fn refused_lines_and_failed_reloads_are_exceptions() {
    let policy = Policy::from_toml(POLICY, "policy.toml").unwrap();
    let note = |day: u64, event: &str, from: Option<&str>, reason: &str| Note {
        at: day0() + Duration::from_secs(day * 86_400),
        event: event.into(),
        server: Some("fs".into()),
        from: from.map(Into::into),
        reason: Some(reason.into()),
    };
    let log = Log {
        decisions: Vec::new(),
        notes: vec![
            note(1, "refused_line", Some("client"), "duplicate key \"name\""),
            note(1, "refused_line", Some("client"), "duplicate key \"name\""),
            note(2, "refused_line", Some("approver"), "not JSON"),
            note(3, "reload_failed", None, "policy.toml:3:1: unknown key\nmore"),
            // Before the period: not counted.
            note(0, "reload_failed", None, "old"),
        ],
    };
    let mut sources = sources_for(&policy);
    sources.since = day0() + Duration::from_secs(3600);
    sources.until = day0() + Duration::from_secs(7 * 86_400);
    let s = summarize(&sources, &log, "ok".into());
    let kinds: Vec<Value> = s.exceptions.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
    assert_eq!(
        kinds,
        [
            json!({"kind": "reload_failed", "times": 1, "last": "policy.toml:3:1: unknown key\nmore"}),
            json!({"kind": "refused_lines", "from": "approver", "lines": 1, "reasons": {"not JSON": 1}}),
            json!({"kind": "refused_lines", "from": "client", "lines": 2, "reasons": {"duplicate key \"name\"": 2}}),
        ]
    );
    let text = render::text(&s);
    assert!(text.contains("refused 2 line(s) from the client"), "{text}");
    // Another server's proxy refused them: a summary of one server leaves them out.
    let bank = globset::Glob::new("bank").unwrap().compile_matcher();
    sources.server = Some(&bank);
    assert!(summarize(&sources, &log, "ok".into()).exceptions.is_empty());
    assert!(text.contains("(policy.toml:3:1: unknown key): run `toolgate check`"), "{text}");
}
