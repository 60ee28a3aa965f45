//! Load, through the real binary: a million messages in one session, ten thousand requests in
//! flight at once, and 64 MiB messages both ways. Every request gets exactly one answer, the
//! right one for its id, and toolgate's memory stays flat and bounded (read from
//! /proc/PID/status; bounds, never timings, are asserted).

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdout, Command, Stdio};

use common::*;
use serde_json::{Value, json};

const POLICY: &str = "[settings]\ndefault_tier = \"low\"\n";
const MIB: u64 = 1024 * 1024;

/// A field of /proc/PID/status, in bytes (`VmRSS`: resident now, `VmHWM`: the peak).
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// toolgate in front of `server`, with raw pipes: the test writes and reads on threads of its own.
fn start(dir: &std::path::Path, server: &[&str]) -> (Child, std::process::ChildStdin, BufReader<ChildStdout>) {
    let policy = policy_file(dir, POLICY);
    let mut cmd = Command::new(toolgate());
    cmd.args(["run", "-q", "--name", "load", "--policy"]).arg(&policy).arg("--audit").arg(dir.join("audit.jsonl"));
    cmd.arg("--").args(server);
    cmd.env("XDG_RUNTIME_DIR", test_runtime_dir()).env("XDG_STATE_HOME", dir.join("state"));
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    // SAFETY: setsid is async-signal-safe; no controlling terminal, so nothing prompts.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            let _ = nix::unistd::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::with_capacity(1 << 20, child.stdout.take().unwrap());
    (child, stdin, stdout)
}

fn handshake(to: &mut impl Write, from: &mut impl BufRead) {
    let init = json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "load", "version": "0"}}});
    writeln!(to, "{init}").unwrap();
    to.flush().unwrap();
    let mut line = String::new();
    from.read_line(&mut line).unwrap();
    assert!(line.contains("\"result\""), "{line}");
    writeln!(to, "{}", json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).unwrap();
}

fn fake_server() -> String {
    root().join("tests/support/fake_server.py").display().to_string()
}

/// One session, a million messages from the client (every tenth a `tools/call`, decided and
/// audited; the rest `ping`s, and a notification every hundredth), written as fast as toolgate
/// takes them while another thread reads the answers.
#[test]
fn a_million_messages_in_one_session_each_answered_once_in_flat_memory() {
    const MESSAGES: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, stdin, mut stdout) = start(dir.path(), &[toolgate(), "demo-server"]);
    let pid = child.id();
    let mut to = BufWriter::with_capacity(1 << 16, stdin);
    handshake(&mut to, &mut stdout);

    let writer = std::thread::spawn(move || {
        let mut requests = 0u64;
        for n in 0..MESSAGES {
            let line = if n % 100 == 99 {
                json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": n, "progress": n}})
            } else if n.is_multiple_of(10) {
                requests += 1;
                json!({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "read_file", "arguments": {"path": format!("/src/{n}.rs")}}})
            } else {
                requests += 1;
                json!({"jsonrpc": "2.0", "id": n, "method": "ping"})
            };
            writeln!(to, "{line}").unwrap();
        }
        to.flush().unwrap();
        (requests, to)
    });

    // Resident memory after every 100,000 answers.
    let mut samples = Vec::new();
    let mut answered = HashSet::new();
    let mut line = String::new();
    let expected = MESSAGES - MESSAGES / 100;
    while (answered.len() as u64) < expected {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "output ended after {} answers", answered.len());
        let answer: Value = serde_json::from_str(&line).unwrap();
        let id = answer["id"].as_u64().unwrap_or_else(|| panic!("not an answer: {line}"));
        if id.is_multiple_of(10) {
            let text = answer["result"]["content"][0]["text"].as_str().unwrap_or_default();
            assert!(text.contains(&format!("/src/{id}.rs")), "the answer for {id} is another's: {line}");
        } else {
            assert_eq!(answer["result"], json!({}), "{line}");
        }
        assert!(answered.insert(id), "{id} answered twice");
        if answered.len().is_multiple_of(100_000) {
            samples.push(memory(pid, "VmRSS"));
        }
    }
    let (requests, to) = writer.join().unwrap();
    assert_eq!(answered.len() as u64, requests);
    let peak = memory(pid, "VmHWM");
    drop(to);
    line.clear();
    assert_eq!(stdout.read_line(&mut line).unwrap(), 0, "nothing after the last answer: {line}");
    assert!(child.wait().unwrap().success());

    eprintln!("resident memory every 100k answers (MiB): {:?}; peak {} MiB", mib(&samples), peak / MIB);
    // Flat: once warm (after 200k), the rest of the run adds no more than a few MiB; anything
    // kept per request (a pending entry, an id: tens of bytes) would add tens of MiB.
    let warm = samples[1];
    let last = *samples.last().unwrap();
    assert!(last < warm + 4 * MIB, "memory grew from {} to {} MiB", warm / MIB, last / MIB);
    // Bounded: the byte credit per direction (16 MiB) and a debug build's overhead.
    assert!(peak < 96 * MIB, "peak {} MiB", peak / MIB);
}

fn mib(samples: &[u64]) -> Vec<f64> {
    samples.iter().map(|s| (*s as f64 / MIB as f64 * 10.0).round() / 10.0).collect()
}

/// Ten thousand calls written before any is answered; the server answers only when it holds
/// all of them, newest first. Each gets its own answer, once.
#[test]
fn ten_thousand_requests_in_flight_each_get_their_own_answer() {
    const CALLS: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let server = fake_server();
    let (mut child, stdin, mut stdout) = start(dir.path(), &["python3", &server, "--batch", &CALLS.to_string()]);
    let pid = child.id();
    let mut to = BufWriter::new(stdin);
    handshake(&mut to, &mut stdout);
    let writer = std::thread::spawn(move || {
        for n in 0..CALLS {
            let call = json!({"jsonrpc": "2.0", "id": format!("call-{n}"), "method": "tools/call", "params": {"name": "echo", "arguments": {"n": n}}});
            writeln!(to, "{call}").unwrap();
        }
        to.flush().unwrap();
        to
    });
    let mut answered = HashSet::new();
    let mut line = String::new();
    let mut order = Vec::new();
    while (answered.len() as u64) < CALLS {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "output ended after {} answers", answered.len());
        let answer: Value = serde_json::from_str(&line).unwrap();
        let id = answer["id"].as_str().unwrap_or_else(|| panic!("not an answer: {line}")).to_owned();
        let echoed: Value = serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(format!("call-{}", echoed["n"]), id, "an answer under another call's id");
        order.push(echoed["n"].as_u64().unwrap());
        assert!(answered.insert(id.clone()), "{id} answered twice");
    }
    assert_eq!(order.first(), Some(&(CALLS - 1)), "the server answered only once all were in flight");
    let peak = memory(pid, "VmHWM");
    drop(writer.join().unwrap());
    assert!(child.wait().unwrap().success());
    eprintln!("10,000 in flight: peak resident memory {} MiB", peak / MIB);
    assert!(peak < 64 * MIB, "peak {} MiB", peak / MIB);
    let decisions = audit_decisions(&dir.path().join("audit.jsonl"));
    assert_eq!(decisions.len() as u64, CALLS, "every call decided and audited once");
}

/// A 64 MiB argument to the server and a 64 MiB result back: both pass whole, and toolgate's
/// peak memory stays within twice the largest message and its own few MiB (a debug build's).
#[test]
fn sixty_four_mebibyte_messages_pass_within_twice_their_size_in_memory() {
    const SIZE: usize = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let server = fake_server();
    let (mut child, stdin, mut stdout) = start(dir.path(), &["python3", &server, "--big", &SIZE.to_string()]);
    let pid = child.id();
    let mut to = BufWriter::new(stdin);
    handshake(&mut to, &mut stdout);
    let text = "z".repeat(SIZE);
    let writer = std::thread::spawn(move || {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"t": text}}});
        writeln!(to, "{call}").unwrap();
        writeln!(to, "{}", json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "big"}}))
            .unwrap();
        to.flush().unwrap();
        to
    });
    let mut line = String::new();
    for _ in 0..2 {
        line.clear();
        stdout.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap();
        let text = answer["result"]["content"][0]["text"].as_str().unwrap();
        match answer["id"].as_u64() {
            Some(1) => {
                let echoed: Value = serde_json::from_str(text).unwrap();
                assert_eq!(echoed["t"].as_str().map(str::len), Some(SIZE));
            }
            Some(2) => assert_eq!(text.len(), SIZE),
            _ => panic!("unexpected answer {}", &line[..200]),
        }
    }
    let peak = memory(pid, "VmHWM");
    drop(writer.join().unwrap());
    assert!(child.wait().unwrap().success());
    eprintln!("64 MiB both ways: peak resident memory {} MiB", peak / MIB);
    assert!(peak < 2 * SIZE as u64 + 24 * MIB, "peak {} MiB for a {} MiB message", peak / MIB, SIZE as u64 / MIB);
}
