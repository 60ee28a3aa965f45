//! Recorded sessions with real servers (fixtures/*.jsonl) replayed through the real toolgate
//! binary, in front of a fake server that plays the recorded server side.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{Value, json};

struct Entry {
    c2s: bool,
    line: String,
}

fn transcript(name: &str) -> (PathBuf, Vec<Entry>) {
    let path = root().join("fixtures").join(name);
    let entries = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Entry { c2s: v["dir"] == "c2s", line: v["line"].as_str().unwrap().to_owned() }
        })
        .collect();
    (path, entries)
}

/// Replays a transcript through toolgate; `refused` names tools the policy denies. Returns how
/// many recorded server lines were checked byte for byte.
fn replay(name: &str, policy: &str, refused: &[&str]) -> usize {
    let (path, entries) = transcript(name);
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(dir.path(), policy);
    let script = root().join("tests/support/replay_server.py");
    let mut peer = Peer::toolgate(
        &policy,
        &dir.path().join("audit.jsonl"),
        &["python3", script.to_str().unwrap(), path.to_str().unwrap()],
    );
    let mut checked = 0;
    let mut i = 0;
    while i < entries.len() {
        assert!(entries[i].c2s, "{name}: a transcript alternates client lines with their answers");
        let sent: Value = serde_json::from_str(&entries[i].line).unwrap();
        peer.send_raw(format!("{}\n", entries[i].line).as_bytes());
        i += 1;
        let answers: Vec<&str> = entries[i..].iter().take_while(|e| !e.c2s).map(|e| e.line.as_str()).collect();
        i += answers.len();
        let tool = sent["params"]["name"].as_str().unwrap_or_default();
        if sent["method"] == "tools/call" && refused.contains(&tool) {
            let reply = peer.recv();
            assert_eq!(reply["id"], sent["id"]);
            assert_eq!(reply["result"]["isError"], true, "{name}: {tool} was not refused: {reply}");
            continue;
        }
        for expected in answers {
            assert_eq!(peer.next_line().as_deref(), Some(expected), "{name}: after {}", sent);
            checked += 1;
        }
    }
    peer.close_stdin();
    assert!(peer.wait().success(), "{name}: the replay server saw something it did not expect");
    checked
}

const ALLOW_ALL: &str = "[settings]\ndefault_tier = \"low\"\n";

#[test]
fn server_everything_session_replays_byte_for_byte() {
    assert!(replay("server-everything.jsonl", ALLOW_ALL, &[]) >= 6);
}

#[test]
fn server_filesystem_session_replays_byte_for_byte() {
    assert!(replay("server-filesystem.jsonl", ALLOW_ALL, &[]) >= 5);
}

#[test]
fn python_sdk_session_replays_byte_for_byte_with_progress() {
    let (_, entries) = transcript("python-sdk.jsonl");
    assert!(entries.iter().any(|e| e.line.contains("notifications/progress")), "the recording has progress");
    assert!(replay("python-sdk.jsonl", ALLOW_ALL, &[]) >= 5);
}

#[test]
fn a_denied_call_is_refused_and_the_rest_of_the_session_is_unchanged() {
    let deny = "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"no writes\"\ntools = [\"write_file\", \"write_marker\"]\naction = \"deny\"\n";
    assert!(replay("server-filesystem.jsonl", deny, &["write_file"]) >= 4);
    assert!(replay("python-sdk.jsonl", deny, &["write_marker"]) >= 4);
}

#[test]
fn the_replay_server_notices_a_session_that_differs_from_the_recording() {
    // Guards the guard: a line the recording never had ends the replay with an error.
    let (path, _) = transcript("python-sdk.jsonl");
    let script = root().join("tests/support/replay_server.py");
    let mut peer = Peer::spawn("python3", &[script.to_str().unwrap(), path.to_str().unwrap()]);
    peer.send(&json!({"jsonrpc": "2.0", "id": 77, "method": "never/recorded"}));
    peer.close_stdin();
    assert_eq!(peer.wait().code(), Some(2));
}
