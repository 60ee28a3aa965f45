//! With the official Python SDK (`mcp==2.3.0`): its client in `legacy` and `auto` modes runs
//! the same session with and without toolgate against a server built with the SDK; a denied
//! side effect never happens; and the Python-specific smuggling shape (a lone CR, which the
//! SDK's reader treats as a line break) is refused.

use std::path::Path;

use crate::common::*;
use serde_json::{Value, json};

fn script(name: &str) -> String {
    root().join("tests/python").join(name).display().to_string()
}

fn run_client(env: &Env, mode: &str, extra: &[&str], server: &[&str]) -> Value {
    let out = env.python().arg(script("sdk_client.py")).arg(mode).args(extra).arg("--").args(server).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn through_toolgate(dir: &Path, policy: &str, server: &[&str]) -> Vec<String> {
    let policy = policy_file(dir, policy);
    let mut cmd = vec![
        toolgate().to_owned(),
        "run".into(),
        "--name".into(),
        "sdk".into(),
        "--policy".into(),
        policy.display().to_string(),
        "--audit".into(),
        dir.join("audit.jsonl").display().to_string(),
        "--".into(),
    ];
    cmd.extend(server.iter().map(|s| s.to_string()));
    cmd
}

fn session_is_the_same(mode: &str) -> Value {
    let py = python().display().to_string();
    let server = script("sdk_server.py");
    let env = Env::new();
    let direct = run_client(&env, mode, &[], &[&py, &server]);
    let proxied = through_toolgate(env.path(), "[settings]\ndefault_tier = \"low\"\n", &[&py, &server]);
    let proxied: Vec<&str> = proxied.iter().map(String::as_str).collect();
    let through = run_client(&env, mode, &[], &proxied);
    assert_eq!(direct, through, "{mode}: the session differs through toolgate");
    through
}

#[test]
fn legacy_mode_session_is_the_same_through_toolgate() {
    let s = session_is_the_same("legacy");
    assert_eq!(s["echo"]["content"][0]["text"], "hello");
    assert_eq!(s["progress"], json!([[1.0, 3.0, "step 1"], [2.0, 3.0, "step 2"], [3.0, 3.0, "step 3"]]));
    assert_eq!(s["ask_name"]["content"][0]["text"], "accept: Ada", "server-to-client elicitation");
    assert_eq!(s["summarize"]["content"][0]["text"], "model said: a short summary", "server-to-client sampling");
    assert_eq!(s["slow_cancelled"], true);
    assert_eq!(s["after_cancel"]["content"][0]["text"], "still here");
}

#[test]
fn auto_mode_session_is_the_same_through_toolgate() {
    // auto probes `server/discover` and speaks 2026-07-28 with this server.
    let s = session_is_the_same("auto");
    assert_eq!(s["echo"]["resultType"], "complete");
    assert_eq!(s["progress"].as_array().map(Vec::len), Some(3));
    assert_eq!(s["after_cancel"]["content"][0]["text"], "still here");
}

#[test]
fn a_denied_side_effect_never_happens_in_either_mode() {
    let py = python().display().to_string();
    let server = script("sdk_server.py");
    for mode in ["legacy", "auto"] {
        let env = Env::new();
        let marker = env.join("marker");
        let policy = "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"no markers\"\ntools = [\"write_marker\"]\naction = \"deny\"\nreason = \"markers are off\"\n";
        let cmd = through_toolgate(env.path(), policy, &[&py, &server]);
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let out = run_client(&env, mode, &["--deny-check", marker.to_str().unwrap()], &cmd);
        let result = &out["write_marker"];
        assert_eq!(result["isError"], true, "{mode}: {out}");
        assert!(result["content"][0]["text"].as_str().unwrap().contains("markers are off"), "{mode}: {out}");
        if mode == "auto" {
            assert_eq!(result["resultType"], "complete", "2026-07-28 results carry resultType");
        }
        assert!(!marker.exists(), "{mode}: the denied call ran");
    }
}

fn lone_cr_line(marker: &Path) -> Vec<u8> {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}}\r{{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{{\"name\":\"write_marker\",\"arguments\":{{\"path\":\"{}\"}}}}}}\n",
        marker.display()
    )
    .into_bytes()
}

fn raw_session(peer: &mut Peer) {
    initialize(peer, "2025-06-18");
}

#[test]
fn a_lone_cr_runs_a_second_message_on_the_python_server_but_not_through_toolgate() {
    let py = python().display().to_string();
    let server = script("sdk_server.py");
    // Directly, the SDK's reader splits the line at the CR and runs the hidden call.
    let env = Env::new();
    let marker = env.join("direct");
    let mut direct = env.python();
    direct.arg(&server);
    let mut direct = Peer::start(direct);
    raw_session(&mut direct);
    direct.send_raw(&lone_cr_line(&marker));
    direct.response(&json!(5));
    assert!(marker.exists(), "the lone-CR shape no longer smuggles on this SDK; update this test");

    // Through toolgate, the line is refused whole; the session goes on.
    let marker = env.join("proxied");
    let policy = policy_file(
        env.path(),
        "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"no markers\"\ntools = [\"write_marker\"]\naction = \"deny\"\n",
    );
    let mut p = Peer::toolgate(&env, &policy, &env.join("audit.jsonl"), &[&py, &server]);
    raw_session(&mut p);
    p.send_raw(&lone_cr_line(&marker));
    // Both requests hidden in the line are told, so neither waits forever.
    for id in [4, 5] {
        let refused = p.recv();
        assert_eq!(refused["id"], id, "{refused}");
        assert_eq!(refused["error"]["code"], -32700);
    }
    for (i, shape) in [
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/list","method":"tools/call","params":{"name":"write_marker","arguments":{"path":"P"}}}"#,
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","name":"write_marker","arguments":{"path":"P"}}}"#,
        r#"{"jsonrpc":"2.0","id":8,"method":"tools\u002fcall","params":{"name":"write\u005fmarker","arguments":{"path":"P"}}}"#,
    ]
    .into_iter()
    .enumerate()
    {
        p.send_raw(format!("{}\n", shape.replace('P', &marker.display().to_string())).as_bytes());
        let reply = p.response(&json!(6 + i));
        assert!(reply.get("error").is_some() || reply["result"]["isError"] == true, "{reply}");
    }
    assert_eq!(
        p.request(9, "tools/call", json!({"name": "echo", "arguments": {"text": "alive"}}))["result"]["content"][0]["text"],
        "alive"
    );
    p.close_stdin();
    p.wait();
    assert!(!marker.exists(), "a smuggled call ran through toolgate");
}
