//! How far "allow for the session" reaches, through the real binary: it covers the one tool a
//! person allowed, on that proxy, until the proxy ends. Another tool that needs a yes is still
//! asked about, a rule that says `always_ask` still asks, and a new proxy under the same name
//! (same user, same state folder) asks again.
//!
//! "Still asked" is read off the wire, not off a clock: the held call gets no response before
//! the response to a later `tools/list` (the fake server answers in the order it reads, so a
//! forwarded call would be answered first), and the approver socket is offered it.

use std::path::Path;

use crate::common::approvers::Socket;
use crate::common::fake::received_messages;
use crate::common::*;
use serde_json::{Value, json};

/// `echo` and `write_marker` each need a yes; the rest is allowed.
const BOTH_NEED_A_YES: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"30s\"\n\
desktop_notifications = false\n\
[[rules]]\nname = \"echo needs a yes\"\ntools = [\"echo\"]\ntier = \"high\"\n\
[[rules]]\nname = \"markers need a yes\"\ntools = [\"write_marker\"]\ntier = \"high\"\n";

/// `echo` is asked about every time, whatever a person said before.
const ECHO_ALWAYS_ASKS: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"30s\"\n\
desktop_notifications = false\n\
[[rules]]\nname = \"echo always asks\"\ntools = [\"echo\"]\nalways_ask = true\n";

const SESSION_NOTE: &str = "the person allowed this tool for the session";

/// A proxy named `name` in front of the fake server, which records every line it receives in
/// `work/received.jsonl`; the server's tools are listed (see [`still_waiting`]). With an
/// approver socket subscribed to it.
fn proxy(env: &Env, work: &Path, name: &str, policy: &str) -> (Peer, Socket) {
    let record = work.join("received.jsonl").display().to_string();
    let server = fake_server();
    let mut peer = env.proxy_before(work, name, policy, &[], &["python3", &server, "--record", &record]);
    peer.request(1000, "tools/list", json!({}));
    let mut socket = env.connect(&peer);
    socket.subscribe();
    (peer, socket)
}

/// The approver socket is offered the next call, which must be a call to `tool`; its ticket.
fn offered(socket: &mut Socket, tool: &str) -> Value {
    let offered = socket.notification("offered");
    assert_eq!(offered["tool"], tool, "{offered}");
    offered["ticket"].clone()
}

/// Asserts that call `held` waits for a person: the proxy answers a `tools/list` (under
/// `probe`) without having answered it. The proxy must have listed the server's tools already:
/// a call that comes first waits for toolgate's own listing, and a forwarded call would then be
/// answered after the probe.
fn still_waiting(peer: &mut Peer, held: i64, probe: i64) {
    peer.send(&json!({"jsonrpc": "2.0", "id": probe, "method": "tools/list", "params": {}}));
    loop {
        let msg = peer.recv();
        assert_ne!(msg["id"], held, "call {held} was answered without asking anyone: {msg}");
        if msg["id"] == probe && msg.get("method").is_none() {
            return;
        }
    }
}

fn ran(response: &Value) {
    assert!(response.get("result").is_some() && response["result"]["isError"] != true, "{response}");
}

/// The tools the fake server was called with, in order, once a `tools/list` (under `probe`)
/// is answered: the server records a line before it answers it.
fn tools_called(peer: &mut Peer, work: &Path, probe: i64) -> Vec<String> {
    peer.request(probe, "tools/list", json!({}));
    received_messages(&work.join("received.jsonl"))
        .into_iter()
        .filter(|m| m["method"] == "tools/call")
        .map(|m| m["params"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Each decision's tool and note, in order.
fn notes(audit: &Path) -> Vec<(String, String)> {
    audit_decisions(audit)
        .iter()
        .map(|d| (d["tool"].as_str().unwrap().to_owned(), d["note"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Calls `echo` under `id`, is offered it, answers `allow_session` under `id + 1`, and the call
/// runs.
fn allow_echo_for_the_session(peer: &mut Peer, socket: &mut Socket, id: i64) {
    peer.send_call(id, "echo", json!({"text": "first"}));
    let ticket = offered(socket, "echo");
    assert_eq!(socket.answer(id + 1, &ticket, "allow_session")["result"]["settled"], true);
    ran(&peer.response(&json!(id)));
}

#[test]
fn allowing_a_tool_for_the_session_covers_that_tool_and_no_other() {
    let env = Env::new();
    let work = env.path();
    let (mut peer, mut socket) = proxy(&env, work, "files", BOTH_NEED_A_YES);
    allow_echo_for_the_session(&mut peer, &mut socket, 1);

    // The same tool again runs without a question.
    peer.send_call(3, "echo", json!({"text": "again"}));
    ran(&peer.response(&json!(3)));

    // Another tool that needs a yes is still asked about.
    let marker = work.join("marker");
    peer.send_call(4, "write_marker", json!({"path": marker}));
    still_waiting(&mut peer, 4, 5);
    let ticket = offered(&mut socket, "write_marker");
    assert_eq!(socket.answer(6, &ticket, "deny")["result"]["settled"], true);
    assert_eq!(peer.response(&json!(4))["result"]["isError"], true);

    assert_eq!(tools_called(&mut peer, work, 7), ["echo", "echo"]);
    assert!(!marker.exists(), "the marker tool never ran");
    let decisions = audit_decisions(&work.join("files.jsonl"));
    let by: Vec<(&str, &str)> =
        decisions.iter().map(|d| (d["tool"].as_str().unwrap(), d["channel"].as_str().unwrap_or("-"))).collect();
    assert_eq!(by, [("echo", "approver"), ("echo", "session"), ("write_marker", "approver")]);
    assert_eq!(decisions[1]["note"], SESSION_NOTE);
}

#[test]
fn allowing_a_tool_for_the_session_never_overrides_always_ask() {
    let env = Env::new();
    let work = env.path();
    let (mut peer, mut socket) = proxy(&env, work, "files", ECHO_ALWAYS_ASKS);
    allow_echo_for_the_session(&mut peer, &mut socket, 1);

    peer.send_call(3, "echo", json!({"text": "again"}));
    still_waiting(&mut peer, 3, 4);
    let ticket = offered(&mut socket, "echo");
    assert_eq!(socket.answer(5, &ticket, "allow_once")["result"]["settled"], true);
    ran(&peer.response(&json!(3)));

    let seen = notes(&work.join("files.jsonl"));
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|(_, note)| note != SESSION_NOTE), "{seen:?}");
    let decisions = audit_decisions(&work.join("files.jsonl"));
    assert_eq!(decisions[1]["channel"], "approver", "a person answered the second call too");
}

#[test]
fn a_new_proxy_under_the_same_name_asks_again() {
    // One user: both proxies share the state folder (the trust record) and the runtime folder.
    let env = Env::new();
    let first_work = env.join("first");
    std::fs::create_dir(&first_work).unwrap();
    let (mut first, mut socket) = proxy(&env, &first_work, "files", BOTH_NEED_A_YES);
    allow_echo_for_the_session(&mut first, &mut socket, 1);
    first.send_call(3, "echo", json!({"text": "again"}));
    ran(&first.response(&json!(3)));
    first.close_stdin();
    assert!(first.wait().success());

    let second_work = env.join("second");
    std::fs::create_dir(&second_work).unwrap();
    let (mut second, mut socket) = proxy(&env, &second_work, "files", BOTH_NEED_A_YES);
    second.send_call(1, "echo", json!({"text": "new session"}));
    still_waiting(&mut second, 1, 2);
    let ticket = offered(&mut socket, "echo");
    assert_eq!(socket.answer(3, &ticket, "deny")["result"]["settled"], true);
    assert_eq!(second.response(&json!(1))["result"]["isError"], true);
    assert_eq!(tools_called(&mut second, &second_work, 4), Vec::<String>::new());
    let decisions = audit_decisions(&second_work.join("files.jsonl"));
    assert_eq!(
        (decisions[0]["decided_by"].as_str(), decisions[0]["channel"].as_str()),
        (Some("human"), Some("approver"))
    );
}
