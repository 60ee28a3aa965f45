//! The proxy's life: byte-for-byte forwarding, shutdown in steps, a crashing or misbehaving
//! server, signals, a missing command, oversized messages and an audit log that cannot be
//! written. Against the project's own fake server, `tests/support/fake_server.py`.

use std::path::{Path, PathBuf};

use crate::common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

const ALLOW_ALL: &str = "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"no markers\"\ntools = [\"write_marker\"]\naction = \"deny\"\n";

struct Fixture {
    env: Env,
}

impl Fixture {
    fn new() -> Self {
        Fixture { env: Env::new() }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.env.join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
    /// toolgate in front of the fake server with these flags, under `policy`.
    fn start(&self, policy: &str, flags: &[&str], extra: &[&str]) -> Peer {
        let policy = policy_file(self.env.path(), policy);
        let mut cmd = self.env.toolgate();
        cmd.arg("run").arg("--policy").arg(&policy).arg("--audit").arg(self.path("audit.jsonl")).args(extra);
        cmd.arg("--").arg("python3").arg(fake_server()).args(flags);
        Peer::start(cmd)
    }
    fn recorded(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("record.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<String>(l).unwrap())
            .collect()
    }
}

fn pid_of(path: &Path) -> i32 {
    eventually("the server writing its pid", || std::fs::read_to_string(path).is_ok_and(|s| !s.is_empty()));
    std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

#[test]
fn lines_pass_byte_for_byte_in_both_directions() {
    let f = Fixture::new();
    let mut p = f.start(ALLOW_ALL, &["--record", &f.s("record.jsonl")], &[]);
    initialize(&mut p, "2025-06-18");
    let odd = "{ \"params\" : {\"name\":\"echo\" ,\"arguments\":{\"t\":\"caf\\u00e9 ☕ \\\"q\\\" \\u002f\"}}, \"id\":\"x-1\",\"method\":\"tools/call\",\"jsonrpc\":\"2.0\" }\r\n";
    p.send_raw(odd.as_bytes());
    let through = p.next_line().unwrap();
    let unknown = "{\"jsonrpc\":\"2.0\",\"id\":-5,\"method\":\"vendor/custom\",\"params\":{\"k\":[1,2.5,null]}}\n";
    p.send_raw(unknown.as_bytes());
    let error = p.recv();
    assert_eq!(
        error,
        json!({"jsonrpc": "2.0", "id": -5, "error": {"code": -32601, "message": "unknown method vendor/custom"}})
    );
    let note = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\",\"params\":{}}\n";
    p.send_raw(note.as_bytes());
    assert_eq!(p.request(9, "ping", json!({})), json!({"jsonrpc": "2.0", "id": 9, "result": {}}));
    p.close_stdin();
    assert!(p.wait().success());
    let seen = f.recorded();
    assert!(seen.contains(&odd.to_owned()), "the client's bytes changed on the way: {seen:?}");
    assert!(seen.contains(&unknown.to_owned()) && seen.contains(&note.to_owned()));

    // The reverse: what the client got is what the server wrote when asked directly.
    let mut direct = f.env.command("python3");
    direct.arg(fake_server());
    let mut direct = Peer::start(direct);
    initialize(&mut direct, "2025-06-18");
    direct.send_raw(odd.as_bytes());
    assert_eq!(through, direct.next_line().unwrap());
}

#[test]
fn eof_with_a_well_behaved_server_ends_with_its_status() {
    let f = Fixture::new();
    let mut p = f.start(ALLOW_ALL, &["--signals", &f.s("signals")], &[]);
    initialize(&mut p, "2025-06-18");
    p.close_stdin();
    assert_eq!(p.wait().code(), Some(0));
    assert!(!f.path("signals").exists(), "a server that exits on EOF needs no signal");
}

#[test]
fn a_server_that_ignores_eof_gets_sigterm() {
    let f = Fixture::new();
    let mut p = f.start(ALLOW_ALL, &["--ignore-eof", "--signals", &f.s("signals"), "--pid", &f.s("pid")], &[]);
    initialize(&mut p, "2025-06-18");
    let pid = pid_of(&f.path("pid"));
    p.close_stdin();
    p.wait();
    assert_eq!(std::fs::read_to_string(f.path("signals")).unwrap(), "TERM\n");
    eventually("the server to be gone", || gone(pid));
}

#[test]
fn a_server_that_ignores_eof_and_sigterm_is_killed() {
    let f = Fixture::new();
    let flags = ["--ignore-eof", "--ignore-term", "--signals", &f.s("signals"), "--pid", &f.s("pid")];
    let mut p = f.start(ALLOW_ALL, &flags, &[]);
    initialize(&mut p, "2025-06-18");
    let pid = pid_of(&f.path("pid"));
    p.close_stdin();
    let status = p.wait();
    assert_eq!(status.code(), Some(128 + 9), "toolgate reports the server's SIGKILL");
    assert_eq!(std::fs::read_to_string(f.path("signals")).unwrap(), "TERM\n");
    eventually("the server to be gone", || gone(pid));
}

#[test]
fn a_crashing_server_fails_every_pending_request_and_its_status_is_toolgates() {
    let f = Fixture::new();
    let mut p = f.start(ALLOW_ALL, &["--crash-after", "4"], &[]);
    initialize(&mut p, "2025-06-18");
    p.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "slow"}}));
    p.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}));
    let mut ids = Vec::new();
    for _ in 0..2 {
        let msg = p.recv();
        assert_eq!(msg["error"]["code"], -32000, "{msg}");
        assert!(msg["error"]["message"].as_str().unwrap().contains("exited (status 3) before answering"));
        ids.push(msg["id"].clone());
    }
    ids.sort_by_key(|v| v.as_i64());
    assert_eq!(ids, vec![json!(1), json!(2)]);
    assert_eq!(p.wait().code(), Some(3));
}

#[test]
fn sigterm_and_sigint_stop_the_server_and_exit_143_and_130() {
    for (sig, code) in [(Signal::SIGTERM, 143), (Signal::SIGINT, 130)] {
        let f = Fixture::new();
        let mut p = f.start(ALLOW_ALL, &["--ignore-eof", "--pid", &f.s("pid")], &[]);
        initialize(&mut p, "2025-06-18");
        let pid = pid_of(&f.path("pid"));
        kill(Pid::from_raw(p.child.id() as i32), sig).unwrap();
        assert_eq!(p.wait().code(), Some(code), "{sig}");
        eventually("the server to be gone", || gone(pid));
    }
}

#[test]
fn the_server_does_not_outlive_a_killed_toolgate() {
    let f = Fixture::new();
    let mut p = f.start(ALLOW_ALL, &["--ignore-eof", "--ignore-term", "--pid", &f.s("pid")], &[]);
    initialize(&mut p, "2025-06-18");
    let pid = pid_of(&f.path("pid"));
    kill(Pid::from_raw(p.child.id() as i32), Signal::SIGKILL).unwrap();
    p.wait();
    eventually("the server to die with toolgate", || gone(pid));
}

#[test]
fn a_missing_command_exits_127_with_one_clear_line() {
    let out = Env::new()
        .toolgate()
        .args(["run", "--audit", "/dev/null", "--", "/no/such/server-binary", "--flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("cannot start the server `/no/such/server-binary`: No such file or directory"),
        "{stderr}"
    );
}

#[test]
fn garbage_and_partial_lines_from_the_server_are_not_forwarded() {
    let f = Fixture::new();
    let mut p = f.start(ALLOW_ALL, &["--partial"], &[]);
    initialize(&mut p, "2025-06-18");
    let reply = p.request(1, "tools/call", json!({"name": "garbage"}));
    assert_eq!(reply["result"]["content"][0]["text"], "after garbage");
    // A broken reply to a pending request becomes an error for it, not a hang.
    let reply = p.request(2, "tools/call", json!({"name": "badreply"}));
    assert_eq!(reply["error"]["code"], -32603, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("appears twice"), "{reply}");
    p.close_stdin();
    // The partial line the server writes at EOF never reaches the client.
    if let Some(line) = p.next_line() {
        panic!("unexpected output after EOF: {line}");
    }
    assert!(p.wait().success());
}

/// serde_json reads `{"$serde_json::private::RawValue": "\"x\""}` as the value "x": toolgate
/// would decide on an argument the server never receives. Such a call never reaches the server.
#[test]
fn a_value_hidden_behind_serde_jsons_raw_value_marker_is_refused() {
    let f = Fixture::new();
    let mut p = f.start(ALLOW_ALL, &[], &[]);
    initialize(&mut p, "2025-06-18");
    let hidden = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo",
        "arguments": {"t": {"$serde_json::private::RawValue": "\"harmless\""}}}});
    p.send(&hidden);
    let reply = p.recv();
    assert_eq!(reply["id"], 7);
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("takes as an instruction"), "{reply}");
    assert_eq!(p.request(8, "ping", json!({})), json!({"jsonrpc": "2.0", "id": 8, "result": {}}));
}

#[test]
fn oversized_messages_are_refused_whole_and_the_session_goes_on() {
    let f = Fixture::new();
    let mut p = f.start(ALLOW_ALL, &["--big", "3000"], &["--max-message-bytes", "2KiB"]);
    initialize(&mut p, "2025-06-18");
    let big = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {"t": "y".repeat(4000)}}});
    p.send(&big);
    let reply = p.recv();
    assert_eq!(reply["id"], 7);
    assert_eq!(reply["error"]["code"], -32600);
    assert!(reply["error"]["message"].as_str().unwrap().contains("larger than --max-message-bytes (2048)"), "{reply}");
    assert_eq!(p.request(8, "ping", json!({})), json!({"jsonrpc": "2.0", "id": 8, "result": {}}));
    // A server answer over the limit becomes an error for its request.
    let reply = p.request(9, "tools/call", json!({"name": "big"}));
    assert!(reply["error"]["message"].as_str().unwrap().contains("from the server: larger than"), "{reply}");
    assert_eq!(p.request(10, "ping", json!({})), json!({"jsonrpc": "2.0", "id": 10, "result": {}}));
}

#[test]
fn sixteen_mebibyte_messages_pass_both_ways() {
    let f = Fixture::new();
    let size = 17 << 20;
    let mut p = f.start(ALLOW_ALL, &["--big", &size.to_string()], &[]);
    initialize(&mut p, "2025-06-18");
    let text = "z".repeat(size);
    let reply = p.request(1, "tools/call", json!({"name": "echo", "arguments": {"t": text}}));
    let echoed: Value = serde_json::from_str(reply["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["t"].as_str().map(str::len), Some(size));
    let reply = p.request(2, "tools/call", json!({"name": "big"}));
    assert_eq!(reply["result"]["content"][0]["text"].as_str().map(str::len), Some(size));
}

#[test]
fn a_call_whose_decision_cannot_be_audited_is_refused_and_never_reaches_the_server() {
    let f = Fixture::new();
    std::fs::create_dir(f.path("audit-is-a-dir")).unwrap();
    let policy = policy_file(f.env.path(), ALLOW_ALL);
    let mut p = Peer::toolgate(
        &f.env,
        &policy,
        &f.path("audit-is-a-dir"),
        &["python3", &fake_server(), "--record", &f.s("record.jsonl")],
    );
    initialize(&mut p, "2025-06-18");
    let reply = p.request(1, "tools/call", json!({"name": "echo", "arguments": {"t": "hi"}}));
    assert_eq!(reply["result"]["isError"], true);
    assert!(
        reply["result"]["content"][0]["text"].as_str().unwrap().contains("could not write its audit log"),
        "{reply}"
    );
    // Other traffic still flows.
    assert_eq!(p.request(2, "ping", json!({})), json!({"jsonrpc": "2.0", "id": 2, "result": {}}));
    p.close_stdin();
    p.wait();
    assert!(!f.recorded().iter().any(|l| l.contains("tools/call")), "{:?}", f.recorded());
}
