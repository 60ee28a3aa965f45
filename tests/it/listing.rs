//! toolgate's own `tools/list`: a call's arguments are checked against the schema its tool was
//! listed with, so a call that comes before the client listed the tools (or after the server said
//! they changed) waits while toolgate lists them itself, every page. Its requests and their
//! answers never reach the client; a tool the server does not list, or a server that will not
//! list its tools, fails closed with a reason; a call withdrawn while it waits is recorded and
//! dropped.

use crate::common::*;
use serde_json::{Value, json};

struct Setup {
    peer: Peer,
    fake: FakeServer,
}

/// toolgate (allowing everything) in front of the fake server with these flags, recording what
/// it receives.
fn start(flags: &[&str]) -> Setup {
    let fake = FakeServer::new();
    let record = fake.record_file();
    let flags = [&["--record", record.as_str()], flags].concat();
    let peer = Peer::start(fake.toolgate("[settings]\ndefault_tier = \"low\"\n", &["--name", "test"], &flags));
    Setup { peer, fake }
}

/// The method and id of each message the server received, in order.
fn methods_and_ids(fake: &FakeServer) -> Vec<(String, Value)> {
    fake.messages().iter().map(|m| (m["method"].as_str().unwrap_or("").to_owned(), m["id"].clone())).collect()
}

fn call(peer: &mut Peer, id: i64, tool: &str) -> Value {
    peer.request(id, "tools/call", json!({"name": tool, "arguments": {"n": id}}))
}

fn text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"].as_str().unwrap_or_default()
}

#[test]
fn a_call_before_any_listing_waits_while_toolgate_lists_the_tools_itself_and_the_client_sees_only_its_answer() {
    let mut s = start(&["--pages", "3"]);
    initialize(&mut s.peer, "2025-06-18");
    // The first line the client reads after its call is the call's answer: toolgate's listing
    // (three pages) and its answers stay between toolgate and the server.
    s.peer.send_call(1, "echo", json!({"n": 1}));
    let answer = s.peer.recv();
    assert_eq!((&answer["id"], text(&answer)), (&json!(1), "{\"n\": 1}"), "{answer}");
    let seen = methods_and_ids(&s.fake);
    let calls: Vec<&(String, Value)> =
        seen.iter().filter(|(m, _)| m != "initialize" && !m.starts_with("notifications/")).collect();
    assert_eq!(
        calls,
        [
            &("tools/list".to_owned(), json!("toolgate-list-1")),
            &("tools/list".to_owned(), json!("toolgate-list-2")),
            &("tools/list".to_owned(), json!("toolgate-list-3")),
            &("tools/call".to_owned(), json!(1)),
        ]
    );
    let second = s.fake.messages().into_iter().find(|m| m["id"] == "toolgate-list-2").unwrap();
    assert_eq!(second["params"]["cursor"], "1", "the pages follow the server's cursor: {second}");
    // Listed once: the next call goes straight to the server.
    assert_eq!(text(&call(&mut s.peer, 2, "echo")), "{\"n\": 2}");
    assert_eq!(methods_and_ids(&s.fake).iter().filter(|(m, _)| m == "tools/list").count(), 3);
}

#[test]
fn a_tool_the_server_does_not_list_is_refused_with_its_name_and_recorded() {
    let mut s = start(&[]);
    initialize(&mut s.peer, "2025-06-18");
    s.peer.request(1, "tools/list", json!({}));
    let refused = call(&mut s.peer, 2, "unlisted_tool");
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(text(&refused).contains("the server does not list a tool named `unlisted_tool`"), "{refused}");
    assert!(methods_and_ids(&s.fake).iter().all(|(m, _)| m != "tools/call"), "never forwarded");
    let record = &audit_decisions(&s.fake.audit())[0];
    assert_eq!((record["verdict"].as_str(), record["gate"].as_str()), (Some("refused"), Some("deny")), "{record}");
    assert!(record["note"].as_str().unwrap().starts_with("arguments = \"strict\""), "{record}");
}

#[test]
fn after_the_server_says_its_tools_changed_the_next_call_waits_for_a_fresh_listing() {
    let mut s = start(&[]);
    initialize(&mut s.peer, "2025-06-18");
    s.peer.request(1, "tools/list", json!({}));
    // `added` is not listed yet: refused.
    assert_eq!(call(&mut s.peer, 2, "added")["result"]["isError"], true);
    // The server announces a change (and, from now on, lists `added`); the notification reaches
    // the client, and the next call is judged on a fresh listing.
    s.peer.send_call(3, "change", json!({}));
    let changed = s.peer.recv();
    assert_eq!(changed["method"], "notifications/tools/list_changed", "{changed}");
    assert_eq!(text(&s.peer.response(&json!(3))), "change");
    assert_eq!(text(&call(&mut s.peer, 4, "added")), "added");
    let lists: Vec<Value> =
        methods_and_ids(&s.fake).into_iter().filter(|(m, _)| m == "tools/list").map(|(_, id)| id).collect();
    assert_eq!(lists, [json!(1), json!("toolgate-list-1")]);
}

#[test]
fn a_server_that_will_not_list_its_tools_gets_no_call_and_the_model_is_told_why() {
    let mut s = start(&["--list-error"]);
    initialize(&mut s.peer, "2025-06-18");
    let refused = call(&mut s.peer, 1, "echo");
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let why = text(&refused);
    assert!(why.contains("the server's tools could not be listed") && why.contains("no tools here"), "{why}");
    assert!(methods_and_ids(&s.fake).iter().all(|(m, _)| m != "tools/call"));
    assert_eq!(audit_decisions(&s.fake.audit())[0]["verdict"], "refused");
}

#[test]
fn a_call_withdrawn_while_toolgate_lists_the_tools_is_recorded_and_never_reaches_the_server() {
    let mut s = start(&["--hold-list"]);
    initialize(&mut s.peer, "2025-06-18");
    s.peer.send_call(1, "echo", json!({}));
    // The server holds toolgate's tools/list until it sees a ping: the call is still waiting.
    eventually("toolgate lists the tools", || methods_and_ids(&s.fake).iter().any(|(m, _)| m == "tools/list"));
    s.peer.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}));
    // The ping releases the listing; its answer is the next (and only) thing the client reads.
    assert_eq!(s.peer.request(2, "ping", json!({})), json!({"jsonrpc": "2.0", "id": 2, "result": {}}));
    assert_eq!(text(&call(&mut s.peer, 3, "echo")), "{\"n\": 3}");
    let calls: Vec<Value> =
        methods_and_ids(&s.fake).into_iter().filter(|(m, _)| m == "tools/call").map(|(_, id)| id).collect();
    assert_eq!(calls, [json!(3)], "the withdrawn call never reached the server");
    let record = &audit_decisions(&s.fake.audit())[0];
    assert_eq!((record["request_id"].as_i64(), record["verdict"].as_str()), (Some(1), Some("dropped")), "{record}");
    assert_eq!(record["decided_by"], "client");
}

#[test]
fn a_2026_07_28_call_lends_its_version_and_capabilities_to_toolgates_listing() {
    let mut s = start(&[]);
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "progressToken": 9});
    let answer = s.peer.request(1, "tools/call", json!({"name": "echo", "arguments": {"n": 1}, "_meta": meta}));
    assert_eq!(text(&answer), "{\"n\": 1}", "{answer}");
    let list = s.fake.messages().into_iter().find(|m| m["method"] == "tools/list").unwrap();
    assert_eq!(list["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"], "2026-07-28", "{list}");
    assert!(list["params"]["_meta"].get("progressToken").is_none(), "only the protocol's own keys: {list}");
}
