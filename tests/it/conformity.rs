//! `[settings] arguments`: a call is checked against the input schema its tool was listed with,
//! by the real Python SDK server (`tests/python/sdk_server.py`, whose `count(n: int)` pydantic
//! would coerce `"3"` for). `strict` refuses a call that does not conform and names the argument
//! and the type; `ask` asks a person (here: no channel can reach one, so it is refused as needing
//! one); `off` lets the server coerce it. A call that conforms runs under every setting.

use crate::common::*;
use serde_json::{Value, json};

fn session(setting: &str) -> (Peer, std::path::PathBuf, Env) {
    let env = Env::new();
    let policy = policy_file(env.path(), &format!("[settings]\ndefault_tier = \"low\"\narguments = \"{setting}\"\n"));
    let audit = env.join("audit.jsonl");
    let py = python();
    let server = root().join("tests/python/sdk_server.py");
    let mut peer = Peer::toolgate(&env, &policy, &audit, &[py.to_str().unwrap(), server.to_str().unwrap()]);
    initialize(&mut peer, "2025-06-18");
    peer.request(1, "tools/list", json!({}));
    (peer, audit, env)
}

fn count(peer: &mut Peer, id: i64, n: Value) -> Value {
    peer.request(id, "tools/call", json!({"name": "count", "arguments": {"n": n}}))
}

fn text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"].as_str().unwrap_or_default()
}

#[test]
fn strict_refuses_a_call_that_does_not_conform_and_names_the_argument_and_the_type() {
    let (mut p, audit, _dir) = session("strict");
    let refused = count(&mut p, 2, json!("3"));
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let why = text(&refused);
    assert!(why.contains("argument /n: \"3\" is not of type \"integer\""), "{why}");
    assert!(why.contains("Send each argument with the type the schema declares"), "{why}");
    assert_eq!(text(&count(&mut p, 3, json!(3))), "counted to 3", "a call that conforms runs");
    let records = audit_decisions(&audit);
    assert_eq!((records[0]["verdict"].as_str(), records[0]["gate"].as_str()), (Some("refused"), Some("deny")));
    assert_eq!(records[1]["verdict"], "forwarded");
}

#[test]
fn ask_puts_a_call_that_does_not_conform_before_a_person() {
    let (mut p, audit, _dir) = session("ask");
    let refused = count(&mut p, 2, json!("3"));
    // No channel can reach a person in this test: the call that needed one is refused as such.
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(text(&refused).contains("needs a human's approval"), "{refused}");
    let record = &audit_decisions(&audit)[0];
    assert_eq!(record["gate"], "ask", "{record}");
    assert!(record["reason"].as_str().unwrap().contains("argument /n"), "{record}");
    assert_eq!(text(&count(&mut p, 3, json!(3))), "counted to 3");
}

#[test]
fn off_lets_the_server_read_the_arguments_its_own_way() {
    let (mut p, _audit, _dir) = session("off");
    assert_eq!(text(&count(&mut p, 2, json!("3"))), "counted to 3", "pydantic coerces \"3\" to 3");
}
