//! The proxy's life: byte-for-byte forwarding, shutdown in steps, a crashing or misbehaving
//! server, signals, a missing command, oversized messages and an audit log that cannot be
//! written. Against the project's own fake server, `tests/support/fake_server.py`.

use std::process::ExitStatus;

use crate::common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

const ALLOW_ALL: &str = "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"no markers\"\ntools = [\"write_marker\"]\naction = \"deny\"\n";

/// toolgate under [`ALLOW_ALL`] in front of the fake server with these `flags`, toolgate's own
/// `options` before them; initialized.
fn start(f: &FakeServer, flags: &[&str], options: &[&str]) -> Peer {
    let mut p = Peer::start(f.toolgate(ALLOW_ALL, options, flags));
    initialize(&mut p, "2025-06-18");
    p
}

#[test]
fn lines_pass_byte_for_byte_in_both_directions() {
    let f = FakeServer::new();
    let mut p = start(&f, &["--record", &f.record_file()], &[]);
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
    let seen = f.received();
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
    let f = FakeServer::new();
    let mut p = start(&f, &["--signals", &f.signals_file()], &[]);
    p.close_stdin();
    assert_eq!(p.wait().code(), Some(0));
    assert_eq!(f.signals(), None, "a server that exits on EOF needs no signal");
}

/// Closes toolgate's stdin in front of a server that ignores EOF (`flags` may add more): the
/// server is sent one SIGTERM, and is gone once toolgate has ended. toolgate's status.
fn eof_to_a_server_that_ignores_it(flags: &[&str]) -> ExitStatus {
    let f = FakeServer::new();
    let mut p =
        start(&f, &[&["--ignore-eof", "--signals", &f.signals_file(), "--pid", &f.pid_file()], flags].concat(), &[]);
    let pid = f.pid();
    p.close_stdin();
    let status = p.wait();
    assert_eq!(f.signals().as_deref(), Some("TERM\n"));
    eventually("the server to be gone", || gone(pid));
    status
}

#[test]
fn a_server_that_ignores_eof_gets_sigterm() {
    eof_to_a_server_that_ignores_it(&[]);
}

#[test]
fn a_server_that_ignores_eof_and_sigterm_is_killed() {
    let status = eof_to_a_server_that_ignores_it(&["--ignore-term"]);
    assert_eq!(status.code(), Some(128 + 9), "toolgate reports the server's SIGKILL");
}

#[test]
fn a_crashing_server_fails_every_pending_request_and_its_status_is_toolgates() {
    let f = FakeServer::new();
    // The tools are listed first, so that the call goes to the server (a call that waits for
    // toolgate's own listing when the server ends is refused by toolgate instead, and recorded).
    // The server then crashes on the ping, its fifth message, leaving both unanswered.
    let mut p = start(&f, &["--crash-after", "5"], &[]);
    p.request(10, "tools/list", json!({}));
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
        let f = FakeServer::new();
        let mut p = start(&f, &["--ignore-eof", "--pid", &f.pid_file()], &[]);
        let pid = f.pid();
        kill(Pid::from_raw(p.child.id() as i32), sig).unwrap();
        assert_eq!(p.wait().code(), Some(code), "{sig}");
        eventually("the server to be gone", || gone(pid));
    }
}

#[test]
fn the_server_does_not_outlive_a_killed_toolgate() {
    let f = FakeServer::new();
    let mut p = start(&f, &["--ignore-eof", "--ignore-term", "--pid", &f.pid_file()], &[]);
    let pid = f.pid();
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
    let f = FakeServer::new();
    let mut p = start(&f, &["--partial"], &[]);
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
    let f = FakeServer::new();
    let mut p = start(&f, &[], &[]);
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
    let f = FakeServer::new();
    let mut p = start(&f, &["--big", "3000"], &["--max-message-bytes", "2KiB"]);
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
    let f = FakeServer::new();
    let size = 17 << 20;
    let mut p = start(&f, &["--big", &size.to_string()], &[]);
    let text = "z".repeat(size);
    let reply = p.request(1, "tools/call", json!({"name": "echo", "arguments": {"t": text}}));
    let echoed: Value = serde_json::from_str(reply["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["t"].as_str().map(str::len), Some(size));
    let reply = p.request(2, "tools/call", json!({"name": "big"}));
    assert_eq!(reply["result"]["content"][0]["text"].as_str().map(str::len), Some(size));
}

#[test]
fn a_call_whose_decision_cannot_be_audited_is_refused_and_never_reaches_the_server() {
    let f = FakeServer::new();
    // A folder where the audit log is to be.
    std::fs::create_dir(f.audit()).unwrap();
    let mut p = start(&f, &["--record", &f.record_file()], &[]);
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
    assert!(!f.received().iter().any(|l| l.contains("tools/call")), "{:?}", f.received());
}
