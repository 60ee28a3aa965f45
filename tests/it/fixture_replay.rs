//! Recorded sessions with real servers (fixtures/*.jsonl) replayed through the real toolgate
//! binary, in front of a fake server that plays the recorded server side; and a session that
//! `toolgate record` writes itself, replayed the same way and through `toolgate replay`.

use std::path::PathBuf;

use crate::common::*;
use serde_json::{Value, json};

struct Entry {
    c2s: bool,
    line: String,
}

fn transcript(name: &str) -> (PathBuf, Vec<Entry>) {
    let path = root().join("fixtures").join(name);
    let entries = messages(&path);
    (path, entries)
}

/// The messages of a transcript (its session and decision lines left out).
fn messages(path: &std::path::Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["dir"] == "c2s" || v["dir"] == "s2c")
        .map(|v| Entry { c2s: v["dir"] == "c2s", line: v["line"].as_str().unwrap().to_owned() })
        .collect()
}

/// Replays a transcript through toolgate; `refused` names tools the policy denies. Returns how
/// many recorded server lines were checked byte for byte.
fn replay(name: &str, policy: &str, refused: &[&str]) -> usize {
    replay_file(&root().join("fixtures").join(name), policy, refused)
}

fn replay_file(path: &std::path::Path, policy: &str, refused: &[&str]) -> usize {
    let name = path.display().to_string();
    let entries = messages(path);
    let env = Env::new();
    let policy = policy_file(env.path(), policy);
    let mut peer = Peer::toolgate(
        &env,
        &policy,
        &env.join("audit.jsonl"),
        &[toolgate(), "replay", "--serve", path.to_str().unwrap()],
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
    let env = Env::new();
    let mut cmd = env.toolgate();
    cmd.args(["replay", "--serve", path.to_str().unwrap()]);
    let mut peer = Peer::start(cmd);
    peer.send(&json!({"jsonrpc": "2.0", "id": 77, "method": "never/recorded"}));
    peer.close_stdin();
    assert_eq!(peer.wait().code(), Some(2));
}

/// `toolgate replay`, its stdout and exit code.
fn toolgate_replay(env: &Env, args: &[&str]) -> (i32, String) {
    let out = env.toolgate().arg("replay").args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_session_recorded_by_toolgate_replays_and_shows_what_a_policy_edit_changes() {
    let env = Env::new();
    let project = env.join("project");
    std::fs::create_dir(&project).unwrap();
    let before = "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"writes are noticed\"\ntools = [\"write_file\"]\ntier = \"medium\"\n";
    let policy = policy_file(env.path(), before);
    let recording = env.join("session.jsonl");
    let audit = env.join("audit.jsonl");
    let server = node_server("mcp-server-filesystem").display().to_string();
    let mut cmd = env.toolgate();
    cmd.arg("record").arg("--out").arg(&recording).arg("--name").arg("fs").arg("--policy").arg(&policy);
    cmd.arg("--audit").arg(&audit).arg("--").arg(&server).arg(&project);
    let mut peer = Peer::start(cmd);
    initialize(&mut peer, "2025-06-18");
    peer.request(1, "tools/list", json!({}));
    let file = |n: &str| project.join(n).display().to_string();
    peer.request(2, "tools/call", json!({"name": "write_file", "arguments": {"path": file("a.txt"), "content": "a"}}));
    peer.request(3, "tools/call", json!({"name": "read_text_file", "arguments": {"path": file("a.txt")}}));
    peer.request(4, "tools/call", json!({"name": "write_file", "arguments": {"path": file("b.txt"), "content": "b"}}));
    peer.request(
        5,
        "tools/call",
        json!({"name": "list_directory", "arguments": {"path": project.display().to_string()}}),
    );
    peer.close_stdin();
    peer.wait();

    let lines: Vec<Value> =
        std::fs::read_to_string(&recording).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!((lines[0]["dir"].as_str(), lines[0]["server"].as_str()), (Some("session"), Some("fs")));
    let decisions: Vec<&Value> = lines.iter().filter(|l| l["dir"] == "decision").collect();
    let gates: Vec<&str> = decisions.iter().map(|d| d["gate"].as_str().unwrap()).collect();
    assert_eq!(gates, ["notify", "allow", "notify", "allow"]);
    assert!(lines.iter().all(|l| l["t"].is_number()));

    // The recorded server side plays back byte for byte through the proxy.
    assert!(replay_file(&recording, ALLOW_ALL, &[]) >= 6);

    // A policy edit that asks before writes changes exactly the two writes.
    let after = before.replace("tier = \"medium\"", "tier = \"high\"");
    let edited = env.join("after.toml");
    std::fs::write(&edited, after).unwrap();
    let (code, out) = toolgate_replay(
        &env,
        &[recording.to_str().unwrap(), "--policy", policy.to_str().unwrap(), "--against", edited.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}");
    let changed: Vec<&str> = out.lines().filter(|l| l.contains(" → ")).collect();
    assert_eq!(changed.len(), 3, "two calls and the summary: {out}");
    assert!(
        changed[0].contains("fs/write_file") && changed[0].contains("a.txt") && changed[0].contains("notify → ask"),
        "{out}"
    );
    assert!(changed[1].contains("b.txt"), "{out}");
    assert!(out.ends_with("4 calls, 2 changed (notify → ask: 2)\n"), "{out}");
    // Against itself nothing changes, and the audit log is a recording too.
    let (code, out) = toolgate_replay(
        &env,
        &[recording.to_str().unwrap(), "--policy", policy.to_str().unwrap(), "--against", policy.to_str().unwrap()],
    );
    assert_eq!((code, out.trim_end()), (0, "4 calls, 0 changed"));
    let (code, out) = toolgate_replay(
        &env,
        &[audit.to_str().unwrap(), "--policy", policy.to_str().unwrap(), "--against", edited.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(out.ends_with("4 calls, 2 changed (notify → ask: 2)\n"), "{out}");
}
