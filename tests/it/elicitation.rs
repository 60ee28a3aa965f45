//! Asking inside the client: toolgate's own `elicitation/create` while it holds a call, strict
//! reading of the answer, withdrawal, and refusing a server that poses as toolgate.

use std::path::{Path, PathBuf};

use crate::common::asking::{accept, answer, pay, question};
use crate::common::*;
use serde_json::{Value, json};

const POLICY: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"30s\"\n\
[[rules]]\nname = \"money needs a yes\"\ntools = [\"send_payment\"]\ntier = \"high\"\nreason = \"it moves money\"\n";

struct Session {
    peer: Peer,
    _env: Env,
    audit: PathBuf,
}

/// toolgate in front of its demo server under `policy`, for a client that declares
/// `elicitation` (or none).
fn start(elicitation: Option<Value>, policy: &str) -> Session {
    let env = Env::new();
    let policy = policy_file(env.path(), policy);
    let audit = env.join("audit.jsonl");
    let mut peer = Peer::toolgate(&env, &policy, &audit, &[toolgate(), "demo-server"]);
    let mut capabilities = json!({});
    if let Some(e) = elicitation {
        capabilities["elicitation"] = e;
    }
    initialize_declaring(&mut peer, "2025-11-25", capabilities);
    Session { peer, _env: env, audit }
}

/// A payment (id 1) under `policy`, asked about inside a client that declares `elicitation`:
/// the session and toolgate's question.
fn asked_to_pay(elicitation: Value, policy: &str) -> (Session, Value) {
    let mut s = start(Some(elicitation), policy);
    pay(&mut s.peer, 1);
    let q = question(&s.peer);
    (s, q)
}

#[test]
fn the_question_says_it_is_toolgates_and_shows_the_call() {
    let (_s, q) = asked_to_pay(json!({}), POLICY);
    let id = q["id"].as_str().unwrap();
    assert!(id.starts_with("toolgate-"), "{id}");
    let message = q["params"]["message"].as_str().unwrap();
    assert!(message.starts_with("toolgate (the approval gate in front of server \"test\") asks you:"), "{message}");
    assert!(message.contains("`send_payment`") && message.contains("\"amount\": 1200"), "{message}");
    assert!(message.contains("rule \"money needs a yes\" (it moves money)"), "{message}");
    let choices = &q["params"]["requestedSchema"]["properties"]["toolgate_decision"]["enum"];
    assert_eq!(choices, &json!(["allow_once", "allow_session", "deny"]));
}

#[test]
fn allow_once_runs_the_call_once() {
    let (mut s, q) = asked_to_pay(json!({"form": {}}), POLICY);
    answer(&mut s.peer, &q, accept("allow_once"));
    let reply = s.peer.response(&json!(1));
    assert_eq!(reply["result"]["content"][0]["text"], "paid 1200 to ACME");
    // Asked again: allow once was once.
    pay(&mut s.peer, 2);
    let q = question(&s.peer);
    answer(&mut s.peer, &q, accept("deny"));
    assert_eq!(s.peer.response(&json!(2))["result"]["isError"], true);
    s.peer.close_stdin();
    assert!(s.peer.wait().success());
    let d = audit_decisions(&s.audit);
    assert_eq!((d[0]["decided_by"].as_str(), d[0]["channel"].as_str()), (Some("human"), Some("elicitation")));
    assert_eq!(d[0]["verdict"], "forwarded");
    assert_eq!(d[1]["verdict"], "refused");
}

#[test]
fn allow_for_the_session_stops_asking_for_that_tool() {
    let (mut s, q) = asked_to_pay(json!({}), POLICY);
    answer(&mut s.peer, &q, accept("allow_session"));
    assert_eq!(s.peer.response(&json!(1))["result"]["content"][0]["text"], "paid 1200 to ACME");
    pay(&mut s.peer, 2);
    let reply = s.peer.recv();
    assert_eq!(reply["id"], 2, "no second question: {reply}");
    assert_eq!(reply["result"]["content"][0]["text"], "paid 1200 to ACME");
}

#[test]
fn deny_with_a_reason_reaches_the_model() {
    let (mut s, q) = asked_to_pay(json!({}), POLICY);
    answer(
        &mut s.peer,
        &q,
        json!({"action": "accept", "content": {"toolgate_decision": "deny", "toolgate_reason": "pay from the other account"}}),
    );
    let reply = s.peer.response(&json!(1));
    assert_eq!(reply["result"]["isError"], true);
    let text = reply["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(
        text,
        "The user declined this call to `send_payment`, so it was not run. They said: pay from the other account"
    );
}

#[test]
fn decline_cancel_errors_and_garbage_all_deny() {
    for bad in [
        json!({"result": {"action": "decline"}}),
        json!({"result": {"action": "cancel"}}),
        json!({"error": {"code": -32603, "message": "dialog failed"}}),
        json!({"result": {"action": "accept", "content": {"toolgate_decision": "yes please"}}}),
        json!({"result": {"action": "accept", "content": {"toolgate_decision": "allow_once", "sneaky": true}}}),
        json!({"result": "accept"}),
    ] {
        let (mut s, q) = asked_to_pay(json!({}), POLICY);
        let mut msg = json!({"jsonrpc": "2.0", "id": q["id"]});
        msg.as_object_mut().unwrap().extend(bad.as_object().unwrap().clone());
        s.peer.send(&msg);
        let reply = s.peer.response(&json!(1));
        assert_eq!(reply["result"]["isError"], true, "{bad} let the call through: {reply}");
        s.peer.close_stdin();
        s.peer.wait();
        assert_eq!(audit_decisions(&s.audit)[0]["verdict"], "refused", "{bad}");
    }
}

#[test]
fn a_client_without_elicitation_and_no_terminal_is_refused_at_once_with_how_to_be_asked() {
    let mut s = start(None, POLICY);
    pay(&mut s.peer, 1);
    let reply = s.peer.recv();
    assert_eq!(reply["id"], 1);
    let text = reply["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("No person could be asked") && text.contains("the client did not offer elicitation"),
        "{text}"
    );
    assert!(text.contains("use a client that supports MCP elicitation"), "{text}");
}

#[test]
fn client_cancellation_and_timeout_withdraw_the_question() {
    let (mut s, q) = asked_to_pay(json!({}), &POLICY.replace("\"30s\"", "\"1s\""));
    // Nobody answers: at the timeout the call is refused and the question withdrawn.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(s.peer.recv());
    }
    let withdrawn = seen.iter().find(|m| m["method"] == "notifications/cancelled").expect("withdrawn");
    assert_eq!(withdrawn["params"]["requestId"], q["id"]);
    let refused = seen.iter().find(|m| m["id"] == 1).expect("answered");
    assert!(
        refused["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Nobody approved this call to `send_payment` within 1s")
    );

    pay(&mut s.peer, 2);
    let q = question(&s.peer);
    s.peer.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}}));
    let withdrawn = s.peer.recv();
    assert_eq!(
        (withdrawn["method"].as_str(), &withdrawn["params"]["requestId"]),
        (Some("notifications/cancelled"), &q["id"])
    );
    // A late answer to the withdrawn question goes nowhere; the session goes on.
    answer(&mut s.peer, &q, accept("allow_once"));
    assert_eq!(s.peer.request(3, "ping", json!({})), json!({"jsonrpc": "2.0", "id": 3, "result": {}}));
    s.peer.close_stdin();
    s.peer.wait();
    let d = audit_decisions(&s.audit);
    assert_eq!(d[0]["decided_by"], "timeout");
    assert_eq!((d[1]["decided_by"].as_str(), d[1]["verdict"].as_str()), (Some("client"), Some("dropped")));
}

/// toolgate under `policy` in front of `tests/support/impersonating_server.py MODE`, for a client
/// that declares elicitation, called once (`ask`, id 1); the server notes every message it
/// receives in the file returned.
fn ask_through(mode: &str, policy: &str) -> (Session, PathBuf) {
    let env = Env::new();
    let policy = policy_file(env.path(), policy);
    let (audit, record) = (env.join("audit.jsonl"), env.join("server.jsonl"));
    let script = root().join("tests/support/impersonating_server.py");
    let server = ["python3", script.to_str().unwrap(), mode, record.to_str().unwrap()];
    let mut peer = Peer::toolgate(&env, &policy, &audit, &server);
    initialize_declaring(&mut peer, "2025-11-25", json!({"elicitation": {}}));
    peer.send_call(1, "ask", json!({}));
    (Session { peer, _env: env, audit }, record)
}

/// The messages the impersonating server received, once it has ended.
fn the_server_received(s: &mut Session, record: &Path) -> Vec<Value> {
    s.peer.close_stdin();
    s.peer.wait();
    std::fs::read_to_string(record).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_server_posing_as_toolgate_is_refused_and_an_honest_one_passes() {
    for (mode, passes) in [("impersonate", false), ("honest", true)] {
        let (mut s, record) = ask_through(mode, "[settings]\ndefault_tier = \"low\"\n");
        let mut got = Vec::new();
        loop {
            let msg = s.peer.recv();
            let done = msg["id"] == 1;
            got.push(msg);
            if done {
                break;
            }
        }
        let elicited = got.iter().any(|m| m["method"] == "elicitation/create");
        assert_eq!(elicited, passes, "{mode}: {got:?}");
        if !passes {
            // The server was told no; wait for its record of that answer.
            let seen = the_server_received(&mut s, &record);
            let refusal = seen.iter().find(|m| m["id"] == "srv-1").unwrap();
            assert_eq!(
                refusal["error"]["message"],
                "toolgate refused this elicitation: it presents itself as toolgate's"
            );
        }
    }
}

#[test]
fn toolgates_question_and_its_answer_never_reach_the_server() {
    let policy = "[[rules]]\nname = \"ask first\"\ntools = [\"ask\"]\ntier = \"high\"\n";
    let (mut s, record) = ask_through("honest", policy);
    let ours = question(&s.peer);
    answer(&mut s.peer, &ours, accept("allow_once"));
    // Now the server's own question comes through, and its answer goes to the server.
    let theirs = question(&s.peer);
    assert_eq!(theirs["id"], "srv-1");
    answer(&mut s.peer, &theirs, json!({"action": "accept", "content": {"name": "Ada"}}));
    assert_eq!(s.peer.response(&json!(1))["result"]["content"][0]["text"], "asked");
    let seen = the_server_received(&mut s, &record);
    assert!(seen.iter().any(|m| m["id"] == "srv-1" && m["result"]["content"]["name"] == "Ada"), "{seen:?}");
    assert!(!seen.iter().any(|m| m["id"] == ours["id"] || m.to_string().contains("toolgate_decision")), "{seen:?}");
}
