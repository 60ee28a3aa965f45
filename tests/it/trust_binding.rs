//! Trust is bound to what earned it, through the real binary: earned trust, "allow for the
//! session" and a remembered rule never carry to a different program started under the same
//! `--name` (here: the same shell script with one more line), and earned trust does not apply
//! before this session's `tools/list` showed the pinned tool. The person is told why, on the
//! question and in the audit log.

use std::path::{Path, PathBuf};

use crate::common::approvers::{answer, event};
use crate::common::*;
use serde_json::{Value, json};

const EARN: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"30s\"\ndesktop_notifications = false\n\
[trust]\napprovals = 2\nwithin = \"1h\"\n\
[[rules]]\nname = \"money needs a yes\"\ntools = [\"send_payment\"]\ntier = \"high\"\n";

/// A script that runs the demo server: the program under the name, whose text is its code.
fn demo_script(work: &Path) -> PathBuf {
    let script = work.join("server.sh");
    std::fs::write(&script, format!("exec '{}' demo-server\n", toolgate())).unwrap();
    script
}

/// The same command line, another program: the script gains a line.
fn change(script: &Path) {
    let text = std::fs::read_to_string(script).unwrap();
    std::fs::write(script, format!("# another version\n{text}")).unwrap();
}

/// A proxy named `bank` in front of `sh SCRIPT`, once `approver` is connected to it.
fn proxy(env: &Env, approver: &Peer, policy: &str, script: &Path, vars: &[(&str, &str)]) -> Peer {
    let peer = env.proxy_before(env.path(), "bank", policy, vars, &["sh", &script.display().to_string()]);
    event(approver, "connected");
    peer
}

fn pay(peer: &mut Peer, id: i64) {
    peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "send_payment", "arguments": {"to": "ACME", "amount": 50}}}));
}

/// Pays, expects the approver to be asked, answers `decision`; returns what was offered.
fn pay_asked(peer: &mut Peer, approver: &mut Peer, id: i64, decision: &str) -> Value {
    pay(peer, id);
    let offered = event(approver, "offered");
    assert_eq!(offered["approval"]["tool"], "send_payment", "{offered}");
    answer(approver, &offered, decision, None);
    let response = peer.response(&json!(id));
    assert_eq!(response["result"]["isError"] == true, decision == "deny", "{response}");
    offered
}

/// Pays and expects no question: the call runs at once.
fn pay_unasked(peer: &mut Peer, id: i64) {
    pay(peer, id);
    let response = peer.response(&json!(id));
    assert_ne!(response["result"]["isError"], true, "{response}");
}

fn last_decision(audit: &Path) -> Value {
    audit_decisions(audit).pop().unwrap()
}

/// Earns trust for `send_payment` with two approvals and shows it applies; the proxy is gone after.
fn earn(env: &Env, approver: &mut Peer, policy: &str, script: &Path) {
    let mut bank = proxy(env, approver, policy, script, &[]);
    bank.request(1, "tools/list", json!({}));
    pay_asked(&mut bank, approver, 10, "allow_once");
    pay_asked(&mut bank, approver, 11, "allow_once");
    pay_unasked(&mut bank, 12);
    let record = last_decision(&env.join("bank.jsonl"));
    assert_eq!((record["gate"].as_str(), record["decided_by"].as_str()), (Some("notify"), Some("trust")), "{record}");
}

#[test]
fn trust_earned_by_one_program_does_not_carry_to_another_under_the_same_name() {
    let env = Env::new();
    let work = env.path();
    let mut approver = env.approver();
    let script = demo_script(work);
    earn(&env, &mut approver, EARN, &script);

    // Another program under the name `bank`, called before anything listed its tools.
    change(&script);
    let mut other = proxy(&env, &approver, EARN, &script, &[]);
    let offered = pay_asked(&mut other, &mut approver, 20, "allow_once");
    let reason = offered["approval"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("a different program runs as `bank`"), "{offered}");
    assert!(reason.contains("server.sh changed"), "{offered}");
    let record = last_decision(&work.join("bank.jsonl"));
    assert_eq!(record["decided_by"], "human", "{record}");
    let note = record["note"].as_str().unwrap_or_default();
    assert!(note.contains("reset: a different program runs as `bank`"), "{record}");
}

#[test]
fn trust_does_not_apply_before_this_sessions_listing_shows_the_pinned_tool() {
    let env = Env::new();
    let work = env.path();
    let mut approver = env.approver();
    // The fake server behind a script; with LIST_ERROR set (not part of the identity) its
    // tools/list fails. `arguments = "off"`: the listing's failure alone does not ask.
    let script = work.join("server.sh");
    let fake = fake_server();
    std::fs::write(&script, format!("exec python3 '{}' ${{LIST_ERROR:+--list-error}}\n", fake)).unwrap();
    let policy = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"30s\"\ndesktop_notifications = false\n\
        arguments = \"off\"\n[trust]\napprovals = 2\nwithin = \"1h\"\n\
        [[rules]]\nname = \"echo needs a yes\"\ntools = [\"echo\"]\ntier = \"high\"\n";
    let echo = |peer: &mut Peer, id: i64| {
        peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}));
    };
    let mut first = proxy(&env, &approver, policy, &script, &[]);
    first.request(1, "tools/list", json!({}));
    for id in [10, 11] {
        echo(&mut first, id);
        let offered = event(&approver, "offered");
        answer(&mut approver, &offered, "allow_once", None);
        first.response(&json!(id));
    }
    echo(&mut first, 12);
    assert_ne!(first.response(&json!(12))["result"]["isError"], true);
    assert_eq!(last_decision(&work.join("bank.jsonl"))["decided_by"], "trust");
    drop(first);

    // The same program, whose listing fails: its tools were never shown this session, so the
    // call asks, and says why.
    let mut unlisted = proxy(&env, &approver, policy, &script, &[("LIST_ERROR", "1")]);
    echo(&mut unlisted, 20);
    let offered = event(&approver, "offered");
    let reason = offered["approval"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("this session's tools/list has not shown `echo` with its pinned definition"), "{offered}");
    answer(&mut approver, &offered, "allow_once", None);
    unlisted.response(&json!(20));
    let record = last_decision(&work.join("bank.jsonl"));
    assert_eq!(record["decided_by"], "human", "{record}");
    assert!(record["note"].as_str().unwrap_or_default().contains("has not shown `echo`"), "{record}");
    drop(unlisted);

    // The same program listing normally, called first: toolgate lists the tools itself (under
    // `arguments = "off"` too), sees the pin, and trust applies.
    let mut listed = proxy(&env, &approver, policy, &script, &[]);
    echo(&mut listed, 30);
    assert_ne!(listed.response(&json!(30))["result"]["isError"], true);
    assert_eq!(last_decision(&work.join("bank.jsonl"))["decided_by"], "trust");
}

#[test]
fn a_session_approval_never_covers_another_program_under_the_same_name() {
    let env = Env::new();
    let work = env.path();
    let mut approver = env.approver();
    let script = demo_script(work);
    // No earned trust: only the session's allowance lets a call through unasked.
    let policy = &EARN.replace("[trust]\n", "[trust]\nenabled = false\n");
    let mut bank = proxy(&env, &approver, policy, &script, &[]);
    bank.request(1, "tools/list", json!({}));
    pay_asked(&mut bank, &mut approver, 10, "allow_session");
    pay_unasked(&mut bank, 11);
    assert_eq!(last_decision(&work.join("bank.jsonl"))["channel"], "session");
    drop(bank);

    change(&script);
    let mut other = proxy(&env, &approver, policy, &script, &[]);
    other.request(1, "tools/list", json!({}));
    pay_asked(&mut other, &mut approver, 20, "deny");
}

#[test]
fn a_remembered_rule_does_not_match_another_program_under_the_same_name() {
    let env = Env::new();
    let work = env.path();
    let mut approver = env.approver();
    let script = demo_script(work);
    // No rule asks: the default tier does, so "remember" can write a rule.
    let policy = "[settings]\ndefault_tier = \"high\"\napproval_timeout = \"30s\"\ndesktop_notifications = false\n\
        [trust]\nenabled = false\n";
    let mut bank = proxy(&env, &approver, policy, &script, &[]);
    bank.request(1, "tools/list", json!({}));
    pay(&mut bank, 10);
    let offered = event(&approver, "offered");
    let rule = offered["approval"]["remember"]["rule"].as_str().unwrap().to_owned();
    assert!(rule.contains("identity = \"sha256:"), "{rule}");
    // What `toolgate approve` does for "remember": the rule goes into the policy file.
    let file = PathBuf::from(offered["approval"]["remember"]["policy"].as_str().unwrap());
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}\n{rule}")).unwrap();
    answer(&mut approver, &offered, "remembered", None);
    bank.response(&json!(10));
    drop(bank);

    // The same program: the rule allows it.
    let mut again = proxy(&env, &approver, &std::fs::read_to_string(&file).unwrap(), &script, &[]);
    pay_unasked(&mut again, 20);
    let record = last_decision(&work.join("bank.jsonl"));
    assert_eq!((record["gate"].as_str(), record["decided_by"].as_str()), (Some("allow"), Some("policy")), "{record}");
    drop(again);

    // Another program under the same name: the rule does not match, and the call asks.
    change(&script);
    let mut other = proxy(&env, &approver, &std::fs::read_to_string(&file).unwrap(), &script, &[]);
    pay_asked(&mut other, &mut approver, 30, "deny");
}
