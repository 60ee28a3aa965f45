//! The binary starts, proxies a session with its demo server, and decides calls.

use crate::common::*;
use serde_json::json;

#[test]
fn demo_server_session_through_the_real_binary() {
    let env = Env::new();
    let policy = policy_file(
        env.path(),
        "[[rules]]\nname = \"reads\"\ntools = [\"read_*\"]\ntier = \"low\"\n[[rules]]\nname = \"no deletes\"\ntools = [\"delete_*\"]\naction = \"deny\"\nreason = \"not here\"\n",
    );
    let audit = env.join("audit.jsonl");
    let mut p = Peer::toolgate(&env, &policy, &audit, &[toolgate(), "demo-server"]);
    initialize(&mut p, "2025-06-18");
    let read = p.request(1, "tools/call", json!({"name": "read_file", "arguments": {"path": "a"}}));
    assert_eq!(read["result"]["content"][0]["text"], "(contents of a) buy milk; call the bank");
    let del = p.request(2, "tools/call", json!({"name": "delete_file", "arguments": {"path": "a"}}));
    assert_eq!(del["result"]["isError"], true);
    assert!(del["result"]["content"][0]["text"].as_str().unwrap().contains("not here"));
    p.close_stdin();
    assert!(p.wait().success());
    let log = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let decisions: Vec<_> = records
        .iter()
        .filter(|r| r["event"] == "decision")
        .map(|r| (r["tool"].clone(), r["verdict"].clone()))
        .collect();
    assert_eq!(decisions, vec![(json!("read_file"), json!("forwarded")), (json!("delete_file"), json!("refused"))]);
    assert!(records.iter().any(|r| r["event"] == "outcome" && r["outcome"] == "ok"));
}
