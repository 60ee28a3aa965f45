//! Faults, through the real binary: the server killed while a call waits for a person and
//! another runs, the server dying with requests the client cancelled, the client vanishing with
//! a call held, the audit log's disk filling up, the policy file deleted or made unreadable while
//! running. Each checks that nothing is let through, every request gets exactly one answer (one
//! the client cancelled gets none), and the reason is given to the model and the person. (The terminal hung up during a prompt is in `terminal.rs`; a server writing garbage
//! or half a line, a crashing server and an audit log that cannot be opened are in
//! `proxy_lifecycle.rs`; docs/guide/troubleshooting.md, "When things go wrong", lists them
//! all.)

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// Markers need a yes; everything else runs; `delete_*` is refused.
const POLICY: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"60s\"\ndesktop_notifications = false\n\
[[rules]]\nname = \"markers need a yes\"\ntools = [\"write_marker\"]\ntier = \"high\"\n\
[[rules]]\nname = \"no deleting\"\ntools = [\"delete_*\"]\naction = \"deny\"\n";

/// `toolgate run --name fake` under [`POLICY`] in front of the fake server (recording what
/// reaches it, writing its pid), stderr piped.
fn command(f: &FakeServer) -> Command {
    let mut cmd = f.toolgate(POLICY, &["--name", "fake"], &["--record", &f.record_file(), "--pid", &f.pid_file()]);
    cmd.stderr(Stdio::piped());
    cmd
}

/// [`command`] started, with stderr read line by line. `setup` may change the command (more
/// server flags, limits).
fn start(f: &FakeServer, setup: impl FnOnce(&mut Command)) -> (Peer, mpsc::Receiver<String>) {
    let mut cmd = command(f);
    setup(&mut cmd);
    Peer::start_reading_stderr(cmd)
}

/// The handshake, declaring elicitation: toolgate can then hold a call while it asks the client.
fn initialize_asking(p: &mut Peer) {
    let init = initialize_declaring(p, "2025-06-18", json!({"elicitation": {}}));
    assert!(init.get("result").is_some(), "{init}");
}

/// Sends a `write_marker` call and waits until toolgate holds it, asking the client.
fn hold_a_marker(p: &mut Peer, id: i64, marker: &Path) {
    p.send_call(id, "write_marker", json!({"path": marker}));
    let asked = p.recv();
    assert_eq!(asked["method"], "elicitation/create", "{asked}");
}

/// Reads every remaining message until the output ends; answers are collected by id.
fn answers_until_the_end(p: &mut Peer) -> Vec<Value> {
    let mut answers = Vec::new();
    while let Some(line) = p.next_line() {
        let msg: Value = serde_json::from_str(&line).unwrap();
        if msg.get("method").is_none() {
            answers.push(msg);
        }
    }
    answers
}

fn text_of(answer: &Value) -> String {
    match answer.get("error") {
        Some(e) => e["message"].as_str().unwrap_or_default().to_owned(),
        None => answer["result"]["content"][0]["text"].as_str().unwrap_or_default().to_owned(),
    }
}

fn refused(answer: &Value) -> bool {
    answer.get("error").is_some() || answer["result"]["isError"] == true
}

/// The ids the answers are for, sorted.
fn ids(answers: &[Value]) -> Vec<i64> {
    let mut ids: Vec<i64> = answers.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

/// The held `write_marker` call wrote no marker, never reached the server, and is audited as
/// not forwarded; its decision record.
fn the_held_call_never_ran(f: &FakeServer, marker: &Path) -> Value {
    assert!(!marker.exists(), "the held call ran");
    assert!(!f.reached("write_marker"), "the held call reached the server");
    let decisions = audit_decisions(&f.audit());
    let held = decisions.into_iter().find(|d| d["tool"] == "write_marker").expect("the held call is audited");
    assert_ne!(held["verdict"], "forwarded", "{held}");
    held
}

#[test]
fn the_server_killed_mid_stream_answers_every_request_once_and_runs_nothing_held() {
    let f = FakeServer::new();
    let marker = f.env.join("marker");
    let (mut p, stderr) = start(&f, |_| {});
    initialize_asking(&mut p);
    hold_a_marker(&mut p, 1, &marker);
    p.send_call(2, "slow", json!({}));
    p.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}));
    assert_eq!(p.response(&json!(3))["result"], json!({}), "the server is serving");
    eventually("the slow call to reach the server", || f.reached("slow"));
    let server = f.pid();
    kill(Pid::from_raw(server), Signal::SIGKILL).unwrap();

    let answers = answers_until_the_end(&mut p);
    assert_eq!(ids(&answers), [1, 2], "each waiting request is answered exactly once: {answers:?}");
    for answer in &answers {
        assert!(refused(answer), "{answer}");
    }
    let slow = answers.iter().find(|a| a["id"] == 2).unwrap();
    assert!(text_of(slow).contains("exited") && text_of(slow).contains("before answering"), "{slow}");
    let status = p.wait();
    assert!(!status.success(), "a killed server is a failure: {status:?}");
    said(&stderr, "server");
    the_held_call_never_ran(&f, &marker);
}

#[test]
fn a_request_the_client_cancelled_is_never_answered_by_toolgate_and_its_outcome_is_cancelled() {
    let f = FakeServer::new();
    // The server answers echo calls two at a time (newest first), so one can be cancelled
    // while the server still holds it, and answered after.
    let (mut p, _stderr) = start(&f, |cmd| {
        cmd.args(["--batch", "2"]);
    });
    initialize(&mut p, "2025-06-18");
    // Listed first, as clients do, so that every call goes to the server at once.
    p.request(100, "tools/list", json!({}));
    p.send_call(1, "slow", json!({}));
    p.send_call(2, "slow", json!({}));
    p.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "slow", "params": {}}));
    p.send(&json!({"jsonrpc": "2.0", "id": 4, "method": "slow", "params": {}}));
    p.send_call(5, "echo", json!({"n": 5}));
    for id in [1, 3, 5] {
        p.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id}}));
    }
    p.send_call(6, "echo", json!({"n": 6}));
    // The server still answers the cancelled call: its answer passes through (the client
    // ignores it), after the answer to the call that released it.
    let (six, five) = (p.recv(), p.recv());
    assert_eq!((&six["id"], &six["result"]["content"][0]["text"]), (&json!(6), &json!("{\"n\": 6}")), "{six}");
    assert_eq!((&five["id"], &five["result"]["content"][0]["text"]), (&json!(5), &json!("{\"n\": 5}")), "{five}");
    // A reply the strict check refuses becomes an error for its request, unless the client
    // cancelled that request.
    p.send_call(7, "badreply", json!({}));
    p.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}));
    p.send_call(8, "badreply", json!({}));
    let eight = p.recv();
    assert_eq!((&eight["id"], &eight["error"]["code"]), (&json!(8), &json!(-32603)), "{eight}");
    // The server answered 8, then 7: once the ping's answer is here, 7's reply was read too.
    p.send(&json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}));
    assert_eq!(p.recv(), json!({"jsonrpc": "2.0", "id": 9, "result": {}}), "nothing comes for 7");
    let forwarded = f.received().iter().filter(|l| l.contains("notifications/cancelled")).count();
    assert_eq!(forwarded, 4, "each cancellation goes on to the server");

    kill(Pid::from_raw(f.pid()), Signal::SIGKILL).unwrap();
    let answers = answers_until_the_end(&mut p);
    assert_eq!(ids(&answers), [2, 4], "only the requests nobody cancelled are answered: {answers:?}");
    for answer in &answers {
        assert_eq!(answer["error"]["code"], -32000, "{answer}");
    }
    p.wait();

    // One outcome per forwarded call: the cancelled ones' is `cancelled`, never a second one.
    let records = audit_records(&f.audit());
    let outcomes = |request: i64| -> Vec<Value> {
        let decision = records.iter().find(|r| r["event"] == "decision" && r["request_id"] == request).unwrap();
        let of_call = |r: &&Value| r["event"] == "outcome" && r["call"] == decision["call"];
        records.iter().filter(of_call).map(|r| r["outcome"].clone()).collect()
    };
    assert_eq!(outcomes(1), [json!("cancelled")]);
    assert_eq!(outcomes(2), [json!("no_answer")]);
    assert_eq!(outcomes(5), [json!("cancelled")]);
    assert_eq!(outcomes(6), [json!("ok")]);
    assert_eq!(outcomes(7), [json!("cancelled")]);
    assert_eq!(outcomes(8), [json!("error")]);
    let (ok, shown) = {
        let out = f.env.toolgate().args(["audit", "show"]).arg(f.audit()).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert!(ok, "{shown}");
    assert_eq!(shown.matches(", cancelled in ").count(), 3, "{shown}");
}

#[test]
fn a_vanished_client_stops_the_server_and_its_held_call_never_runs() {
    let f = FakeServer::new();
    let marker = f.env.join("marker");
    // The client is this test itself, on raw pipes it can drop at once, as a dying client's
    // pipes close (a `Peer` reads stdout on a thread that would keep its end open).
    let mut cmd = command(&f);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    no_terminal(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let (tx, stderr) = mpsc::channel();
    read_stderr(&mut child, tx);
    let mut to_toolgate = child.stdin.take().unwrap();
    let mut from_toolgate = BufReader::new(child.stdout.take().unwrap());
    let mut send = |msg: Value| to_toolgate.write_all(format!("{msg}\n").as_bytes()).unwrap();
    send(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}}, "clientInfo": {"name": "faults", "version": "0"}}}),
    );
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "write_marker", "arguments": {"path": marker}}}),
    );
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "slow", "arguments": {}}}));
    let mut line = String::new();
    while !line.contains("elicitation/create") {
        line.clear();
        assert!(from_toolgate.read_line(&mut line).unwrap() > 0, "toolgate ended before asking");
    }
    eventually("the slow call to reach the server", || f.reached("slow"));
    let server = f.pid();

    // The client dies.
    drop(to_toolgate);
    drop(from_toolgate);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "toolgate did not end after its client vanished");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.code().is_some(), "toolgate ended on its own, not by a signal: {status:?}");
    eventually("the server to be gone", || gone(server));
    said(&stderr, "client");
    let held = the_held_call_never_ran(&f, &marker);
    assert!(held["note"].as_str().unwrap_or_default().contains("client"), "{held}");
}

/// The audit log's file may grow to this many bytes: a full disk, for this process alone.
const AUDIT_ROOM: u64 = 16 * 1024;

#[test]
fn a_full_audit_disk_refuses_calls_before_they_run_and_leaves_the_log_whole() {
    let f = FakeServer::new();
    let (mut p, stderr) = start(&f, |cmd| {
        // SAFETY: setrlimit is async-signal-safe. toolgate itself must cope with SIGXFSZ; the
        // test leaves its disposition at the default (which would kill toolgate).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(cmd, || {
                let room = libc::rlimit { rlim_cur: AUDIT_ROOM, rlim_max: AUDIT_ROOM };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &room) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    initialize(&mut p, "2025-06-18");
    let mut first_refused = None;
    for id in 1..=200 {
        let reply = p.request(id, "tools/call", json!({"name": "echo", "arguments": {"n": format!("call-{id}-")}}));
        if refused(&reply) {
            assert!(text_of(&reply).contains("could not write its audit log"), "{reply}");
            first_refused = Some(id);
            break;
        }
        assert!(text_of(&reply).contains(&format!("call-{id}-")), "{reply}");
    }
    let refused_id = first_refused.expect("the audit log never filled up");
    assert!(refused_id > 3, "calls ran while there was room");
    said(&stderr, "audit log");
    assert!(!f.reached(&format!("call-{refused_id}-")), "a call that could not be audited ran");
    // Everything else still flows, and later calls are refused the same way.
    assert_eq!(p.request(1000, "ping", json!({})), json!({"jsonrpc": "2.0", "id": 1000, "result": {}}));
    let later = p.request(1001, "tools/call", json!({"name": "echo", "arguments": {"n": "call-1001-"}}));
    assert!(refused(&later), "{later}");
    assert!(!f.reached("call-1001-"));
    p.close_stdin();
    p.wait();
    // What was written is a whole chain: no half line where the disk ran out.
    let (verified, said) = run_to_end(f.env.toolgate().args(["audit", "verify"]).arg(f.audit()));
    assert!(verified, "{said}");
    let decisions = audit_decisions(&f.audit());
    assert_eq!(decisions.len() as i64, refused_id - 1, "each call that ran is in the log");
}

#[test]
fn a_deleted_or_unreadable_policy_keeps_the_last_good_one_in_force() {
    let f = FakeServer::new();
    let (mut p, stderr) = start(&f, |_| {});
    initialize(&mut p, "2025-06-18");
    let delete = |p: &mut Peer, id: i64| p.request(id, "tools/call", json!({"name": "delete_file", "arguments": {}}));
    assert!(refused(&delete(&mut p, 1)));
    let policy = f.policy();

    std::fs::remove_file(&policy).unwrap();
    said(&stderr, "stays in force");
    assert!(refused(&delete(&mut p, 2)), "a deleted policy let a denied call through");
    let echo = p.request(3, "tools/call", json!({"name": "echo", "arguments": {"n": 3}}));
    assert!(!refused(&echo), "{echo}");

    // Unreadable: a directory where the file was (root reads any file, so chmod 000 cannot
    // stand in for this), and then bytes that are not UTF-8.
    std::fs::create_dir(&policy).unwrap();
    said(&stderr, "stays in force");
    assert!(refused(&delete(&mut p, 4)));
    std::fs::remove_dir(&policy).unwrap();
    said(&stderr, "stays in force");
    std::fs::write(&policy, b"[settings]\ndefault_tier = \"\xff\xfe\"\n").unwrap();
    said(&stderr, "stays in force");
    assert!(refused(&delete(&mut p, 5)));

    // The watch survives all that: a good policy put back takes effect (it denies `echo` now).
    std::fs::write(&policy, POLICY.replace("delete_*", "echo")).unwrap();
    said(&stderr, "policy reloaded");
    let echo = p.request(6, "tools/call", json!({"name": "echo", "arguments": {"n": 6}}));
    assert!(refused(&echo), "the new policy is in force: {echo}");
    assert!(!f.reached("delete_file"), "a denied call reached the server");
}
