//! toolgate asking inside a real 2026-07-28 client: the official Python SDK client
//! (`mcp==2.3.0`) in auto mode gets toolgate's question as an input-required result and retries
//! with the answer; its callback approves, allows for the session, denies, declines, cancels,
//! answers garbage or fails, and only an approval ever writes the marker file. In both modes, a
//! tool that asks its own question after toolgate's approval: the person answers each once.
//! (Legacy mode's answers are pinned word for word in `python_elicitation.rs`.)

use std::path::Path;

use crate::common::*;
use serde_json::Value;

const POLICY: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"20s\"\ndesktop_notifications = false\n\
[[rules]]\nname = \"writes need a yes\"\ntools = [\"write_marker\", \"confirmed_write\"]\ntier = \"high\"\nreason = \"it writes a file\"\n";

struct Outcome {
    out: Value,
    marker: std::path::PathBuf,
    audit: std::path::PathBuf,
    _env: Env,
}

/// Runs the client with `behaviour` through toolgate in front of the SDK's own server. The
/// client runs in a new session (no controlling terminal), so toolgate cannot prompt there.
fn run(mode: &str, behaviour: &str) -> Outcome {
    let env = Env::new();
    let policy = policy_file(env.path(), POLICY);
    let marker = env.join("marker");
    let audit = env.join("audit.jsonl");
    let args = [mode.as_ref(), behaviour.as_ref(), marker.as_os_str()];
    let out = sdk_client_through_toolgate(&env, "approving_client.py", &args, &policy, &audit).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let out = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    Outcome { out, marker, audit, _env: env }
}

fn text(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_owned()
}

fn questions(o: &Outcome) -> usize {
    o.out["seen"].as_array().unwrap().len()
}

fn approved(mode: &str) {
    let o = run(mode, "approve");
    assert_eq!(o.out["first"]["isError"], false, "{}", o.out);
    assert!(o.marker.exists());
    assert_eq!(questions(&o), 1);
    let question = &o.out["seen"][0];
    assert!(question["message"].as_str().unwrap().starts_with("toolgate"), "{question}");
    assert!(question["message"].as_str().unwrap().contains("write_marker"), "{question}");
    assert_eq!(question["fields"], serde_json::json!(["toolgate_decision", "toolgate_reason"]));
    let audit = audit_decisions(&o.audit);
    let verdicts: Vec<&str> = audit.iter().map(|r| r["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["asked", "forwarded"], "the question and then the answered retry are recorded");
    assert_eq!((audit[1]["decided_by"].as_str(), audit[1]["channel"].as_str()), (Some("human"), Some("elicitation")));
}

fn allowed_for_the_session(mode: &str) {
    let o = run(mode, "session");
    assert_eq!(o.out["second"]["isError"], false, "{}", o.out);
    assert!(o.marker.exists() && Path::new(&format!("{}.2", o.marker.display())).exists());
    assert_eq!(questions(&o), 1, "the second call is not asked again");
}

/// The call is refused with an error result (or, when the client itself gave up, an error),
/// and the marker never appears.
fn refused(mode: &str, behaviour: &str) -> Outcome {
    let o = run(mode, behaviour);
    assert!(!o.marker.exists(), "{behaviour}: the call ran");
    let first = &o.out["first"];
    assert!(first["isError"] == true || first.as_str().is_some_and(|e| e.starts_with("error")), "{first}");
    o
}

fn every_refusal(mode: &str) {
    let denied = refused(mode, "deny");
    assert!(text(&denied.out["first"]).contains("not today"), "the reason reaches the model: {}", denied.out);
    assert_eq!(audit_decisions(&denied.audit)[1]["decided_by"], "human");
    for behaviour in ["decline", "cancel", "garbage", "error"] {
        refused(mode, behaviour);
    }
    let silent = refused(mode, "none");
    assert_eq!(questions(&silent), 0);
    assert!(text(&silent.out["first"]).contains("toolgate approve"), "says how to be asked: {}", silent.out);
}

#[test]
fn auto_mode_an_approval_runs_the_call() {
    approved("auto");
}

#[test]
fn auto_mode_allow_for_the_session_asks_once() {
    allowed_for_the_session("auto");
}

#[test]
fn auto_mode_every_other_answer_and_no_elicitation_refuse() {
    every_refusal("auto");
}

/// A tool that asks its own question after toolgate's approval: the person answers toolgate
/// once and the server once, and the server's own question and answer pass untouched.
fn the_servers_own_question_follows_the_approval(mode: &str) {
    let o = run(mode, "server-asks");
    assert_eq!(o.out["first"]["isError"], false, "{}", o.out);
    assert!(o.marker.exists());
    let messages: Vec<&str> =
        o.out["seen"].as_array().unwrap().iter().map(|q| q["message"].as_str().unwrap()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].starts_with("toolgate"), "{messages:?}");
    assert!(messages[1].starts_with("Really write"), "{messages:?}");
}

#[test]
fn legacy_mode_the_servers_own_question_follows_the_approval() {
    the_servers_own_question_follows_the_approval("legacy");
}

#[test]
fn auto_mode_the_servers_own_question_follows_the_approval() {
    the_servers_own_question_follows_the_approval("auto");
}
