//! Live policy reload against a running proxy: an edit takes effect, a bad edit leaves the
//! previous policy in force and says so, SIGHUP reloads, and the audit names each version.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;

use crate::common::*;
use serde_json::{Value, json};

const DENY_READS: &str = "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"no reads\"\ntools = [\"read_file\"]\naction = \"deny\"\nreason = \"reads are off\"\n";
const ALLOW_ALL: &str = "[settings]\ndefault_tier = \"low\"\n";

/// toolgate in front of its demo server, with stderr captured line by line.
fn start(env: &Env, policy: &Path, audit: &Path) -> (Peer, mpsc::Receiver<String>) {
    let (mut peer, rx) = Peer::start_reading_stderr(demo(env, policy, audit));
    initialize(&mut peer, "2025-06-18");
    (peer, rx)
}

/// `toolgate run --name demo` in front of its demo server.
fn demo(env: &Env, policy: &Path, audit: &Path) -> Command {
    let mut cmd = env.toolgate();
    cmd.arg("run").arg("--policy").arg(policy).arg("--audit").arg(audit).arg("--name").arg("demo");
    cmd.arg("--").arg(toolgate()).arg("demo-server");
    cmd
}

fn read(peer: &mut Peer, id: i64) -> Value {
    peer.request(id, "tools/call", json!({"name": "read_file", "arguments": {"path": "a"}}))
}

fn refused(reply: &Value) -> bool {
    reply["result"]["isError"] == json!(true)
}

/// Replaces the file the way editors do: write a new file, rename it over the old one.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn an_edited_policy_takes_effect_and_a_bad_edit_keeps_the_previous_one() {
    let env = Env::new();
    let policy = policy_file(env.path(), DENY_READS);
    let audit = env.join("audit.jsonl");
    let (mut peer, stderr) = start(&env, &policy, &audit);
    assert!(refused(&read(&mut peer, 1)));

    save(&policy, ALLOW_ALL);
    said(&stderr, "policy reloaded");
    assert!(!refused(&read(&mut peer, 2)), "the edit did not take effect");

    save(&policy, "[[rules]]\nname = \"broken\"\ntools = [\"read_file\"]\nacton = \"deny\"\n");
    let line = said(&stderr, "does not load");
    assert!(line.contains("the previous policy (sha256:"), "{line}");
    said(&stderr, "4:1: unknown field `acton`");
    assert!(!refused(&read(&mut peer, 3)), "a bad edit must leave the previous policy in force");

    // Deleting the file is a failed load too: the policy in force stays.
    std::fs::remove_file(&policy).unwrap();
    said(&stderr, "does not load");
    assert!(!refused(&read(&mut peer, 4)));

    save(&policy, DENY_READS);
    said(&stderr, "policy reloaded");
    assert!(refused(&read(&mut peer, 5)));

    peer.close_stdin();
    assert!(peer.wait().success());
    let versions: Vec<String> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"] == "decision")
        .map(|r| r["policy"].as_str().unwrap().to_owned())
        .collect();
    let deny = toolgate::policy::version_of(DENY_READS);
    let allow = toolgate::policy::version_of(ALLOW_ALL);
    assert_eq!(versions, vec![deny.clone(), allow.clone(), allow.clone(), allow, deny]);
}

#[test]
fn sighup_reloads_a_policy_the_watcher_cannot_see() {
    // The policy is a symlink into another folder: editing the target is invisible to the
    // watcher on the link's folder, so only SIGHUP can bring the change in.
    let env = Env::new();
    let elsewhere = env.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let target = policy_file(&elsewhere, DENY_READS);
    let link = env.join("policy.toml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (mut peer, stderr) = start(&env, &link, &env.join("audit.jsonl"));
    assert!(refused(&read(&mut peer, 1)));

    std::fs::write(&target, ALLOW_ALL).unwrap();
    assert!(refused(&read(&mut peer, 2)), "nothing should have reloaded yet");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(peer.child.id() as i32), nix::sys::signal::Signal::SIGHUP)
        .unwrap();
    said(&stderr, "policy reloaded");
    assert!(!refused(&read(&mut peer, 3)));
}

/// toolgate in front of its demo server for a client that answers questions by elicitation.
fn start_asking(env: &Env, policy: &Path, audit: &Path) -> (Peer, mpsc::Receiver<String>) {
    let (mut peer, rx) = Peer::start_reading_stderr(demo(env, policy, audit));
    peer.request(
        0,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"form": {}}}, "clientInfo": {"name": "t", "version": "0"}}),
    );
    peer.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    (peer, rx)
}

const PAY_ASKS: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"10m\"\n[[rules]]\nname = \"money needs a yes\"\ntools = [\"send_payment\"]\ntier = \"high\"\n";
const PAY_DENIED: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"10m\"\n[[rules]]\nname = \"no money\"\ntools = [\"send_payment\"]\naction = \"deny\"\nreason = \"payments are off\"\n";
const PAY_HELD: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"10m\"\n[[rules]]\nname = \"money waits\"\ntools = [\"send_payment\"]\naction = \"hold\"\nhold = \"10m\"\n";

fn pay(peer: &mut Peer, id: i64) {
    peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "send_payment", "arguments": {"to": "ACME", "amount": 1200}}}));
}

fn question(peer: &Peer) -> Value {
    let msg = peer.recv();
    assert_eq!(msg["method"], "elicitation/create", "{msg}");
    msg
}

fn accept(peer: &mut Peer, question: &Value, decision: &str) {
    peer.send(&json!({"jsonrpc": "2.0", "id": question["id"], "result": {"action": "accept", "content": {"toolgate_decision": decision}}}));
}

/// A payment held under `policy` (a hold, not a question), with the hold's notice.
fn hold_a_payment(env: &Env, policy: &Path, audit: &Path) -> (Peer, mpsc::Receiver<String>, Value) {
    let (mut peer, stderr) = start_asking(env, policy, audit);
    pay(&mut peer, 1);
    let hold = question(&peer);
    assert_eq!(
        hold["params"]["requestedSchema"]["properties"]["toolgate_decision"]["enum"],
        json!(["cancel", "run_now"])
    );
    (peer, stderr, hold)
}

/// A ping and its answer: everything the proxy sent before it is read first, in order.
fn ping_after(peer: &mut Peer, id: i64) -> Vec<Value> {
    peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": "ping"}));
    let mut before = Vec::new();
    loop {
        let msg = peer.recv();
        if msg["id"] == json!(id) && msg.get("result").is_some() {
            return before;
        }
        before.push(msg);
    }
}

#[test]
fn a_call_waiting_for_a_yes_is_refused_the_moment_a_reloaded_policy_denies_it() {
    let env = Env::new();
    let policy = policy_file(env.path(), PAY_ASKS);
    let audit = env.join("audit.jsonl");
    let (mut peer, stderr) = start_asking(&env, &policy, &audit);
    pay(&mut peer, 1);
    let q = question(&peer);

    save(&policy, PAY_DENIED);
    said(&stderr, "policy reloaded");
    // Refused now, with the new rule's reason, and the question withdrawn; nobody answered yet.
    let sent = ping_after(&mut peer, 2);
    let reply = sent.iter().find(|m| m["id"] == json!(1)).unwrap_or_else(|| panic!("call 1 still waits: {sent:?}"));
    assert!(refused(reply), "{reply}");
    let text = reply["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("payments are off") && text.contains("\"no money\""), "{text}");
    assert!(sent.iter().any(|m| m["method"] == "notifications/cancelled"), "the question was not withdrawn: {sent:?}");

    // The person's yes arrives afterwards and runs nothing.
    accept(&mut peer, &q, "allow_once");
    let sent = ping_after(&mut peer, 3);
    assert!(sent.is_empty(), "the late answer did something: {sent:?}");
    peer.close_stdin();
    assert!(peer.wait().success());
    let records: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["tool"] == "send_payment")
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!((records[0]["verdict"].as_str(), records[0]["gate"].as_str()), (Some("refused"), Some("deny")));
    assert_eq!(records[0]["policy"], json!(toolgate::policy::version_of(PAY_DENIED)));
}

#[test]
fn a_hold_that_a_reloaded_policy_makes_a_question_is_asked_anew() {
    let env = Env::new();
    let policy = policy_file(env.path(), PAY_HELD);
    let (mut peer, stderr, hold) = hold_a_payment(&env, &policy, &env.join("audit.jsonl"));

    save(&policy, PAY_ASKS);
    said(&stderr, "policy reloaded");
    let sent = ping_after(&mut peer, 2);
    assert!(sent.iter().all(|m| m["id"] != json!(1)), "the call was settled: {sent:?}");
    assert!(sent.iter().any(|m| m["method"] == "notifications/cancelled"), "the hold notice stayed: {sent:?}");
    let asked = sent.iter().find(|m| m["method"] == "elicitation/create").expect("asked anew");
    let choices = &asked["params"]["requestedSchema"]["properties"]["toolgate_decision"]["enum"];
    assert_eq!(choices, &json!(["allow_once", "allow_session", "deny"]), "{asked}");

    // Dismissing the old hold notice now cancels nothing and runs nothing: the question decides.
    accept(&mut peer, &hold, "run_now");
    assert!(ping_after(&mut peer, 3).is_empty());
    accept(&mut peer, asked, "deny");
    assert!(refused(&peer.response(&json!(1))));
}

#[test]
fn a_looser_reloaded_policy_never_releases_a_call_nobody_answered() {
    let env = Env::new();
    let policy = policy_file(env.path(), PAY_ASKS);
    let audit = env.join("audit.jsonl");
    let (mut peer, stderr) = start_asking(&env, &policy, &audit);
    pay(&mut peer, 1);
    let q = question(&peer);

    save(&policy, ALLOW_ALL);
    said(&stderr, "policy reloaded");
    let sent = ping_after(&mut peer, 2);
    assert!(sent.is_empty(), "a looser policy changed a waiting call: {sent:?}");
    accept(&mut peer, &q, "deny");
    assert!(refused(&peer.response(&json!(1))));
}

#[test]
fn a_reload_to_supervised_autonomy_turns_a_waiting_hold_into_a_question() {
    let env = Env::new();
    let policy = policy_file(env.path(), PAY_HELD);
    let (mut peer, stderr, hold) = hold_a_payment(&env, &policy, &env.join("audit.jsonl"));

    // Same rules, one level of autonomy lower: every call needs a yes, the waiting one too.
    save(&policy, &PAY_HELD.replace("[settings]\n", "[settings]\nautonomy = \"supervised\"\n"));
    said(&stderr, "policy reloaded");
    let sent = ping_after(&mut peer, 2);
    assert!(sent.iter().all(|m| m["id"] != json!(1)), "the call was settled: {sent:?}");
    let asked = sent.iter().find(|m| m["method"] == "elicitation/create").expect("asked anew");
    assert!(asked["params"]["message"].as_str().unwrap().contains("supervised"), "{asked}");
    accept(&mut peer, &hold, "run_now");
    assert!(ping_after(&mut peer, 3).is_empty(), "the old hold notice must not run the call");
    accept(&mut peer, asked, "deny");
    assert!(refused(&peer.response(&json!(1))));
}
