//! Confidence reporting against a real server whose schemas forbid unknown properties (built
//! with rmcp, tests/rmcp-server): toolgate adds `toolgate_confidence` to the schemas it lists,
//! reads it from calls, removes it, and the strict server never sees it, on every route a call
//! takes: at once, edited by a person, parked and run by `review --approve` or `review --run`.
//! `replay` reads it from recorded calls as the proxy did, and `replay --serve` takes the calls
//! toolgate forwards without it.

use std::path::{Path, PathBuf};

use crate::common::approvers::event;
use crate::common::*;
use serde_json::{Value, json};

fn strict_server() -> String {
    rmcp_server().display().to_string()
}

/// toolgate in front of the strict server, which records every arguments object it receives.
fn start(env: &Env, policy: &str) -> (Peer, PathBuf) {
    let dir = env.path();
    let policy = policy_file(dir, policy);
    let record = dir.join("received.jsonl");
    let mut cmd = env.toolgate();
    cmd.args(["run", "--name", "notes", "--policy"]).arg(&policy).arg("--audit").arg(dir.join("audit.jsonl"));
    cmd.arg("--").arg(strict_server()).env("RECORD", &record);
    let mut peer = Peer::start(cmd);
    initialize(&mut peer, "2025-06-18");
    (peer, record)
}

fn received(record: &Path) -> Vec<Value> {
    std::fs::read_to_string(record).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn note(peer: &mut Peer, id: i64, confidence: Option<f64>) -> Value {
    let mut args = json!({"title": format!("t{id}"), "body": "b"});
    if let Some(c) = confidence {
        args["toolgate_confidence"] = json!(c);
    }
    peer.request(id, "tools/call", json!({"name": "write_note", "arguments": args}))
}

const USES_CONFIDENCE: &str = "[settings]\ndefault_tier = \"low\"\nmin_confidence = 0.5\nmissing_confidence = \"ask\"\n\
[[rules]]\nname = \"notes need certainty\"\ntools = [\"write_note\"]\nmin_confidence = 0.9\n";

#[test]
fn the_strict_server_really_refuses_an_unknown_argument() {
    let env = Env::new();
    let record = env.join("received.jsonl");
    let mut cmd = env.command(strict_server());
    cmd.env("RECORD", &record);
    let mut direct = Peer::start(cmd);
    initialize(&mut direct, "2025-06-18");
    let listed = direct.request(1, "tools/list", json!({}));
    for tool in listed["result"]["tools"].as_array().unwrap() {
        assert_eq!(tool["inputSchema"]["additionalProperties"], false, "{tool}");
    }
    let reply = direct.request(
        2,
        "tools/call",
        json!({"name": "write_note", "arguments": {"title": "a", "body": "b", "toolgate_confidence": 0.95}}),
    );
    assert_eq!(reply["result"]["isError"], true, "{reply}");
    assert!(reply["result"]["content"][0]["text"].as_str().unwrap().contains("unknown field `toolgate_confidence`"));
    // The same call without the property runs, so the refusal above was the property's doing.
    let ok = direct.request(3, "tools/call", json!({"name": "write_note", "arguments": {"title": "a", "body": "b"}}));
    assert_eq!(ok["result"]["content"][0]["text"], "noted: a", "{ok}");
    assert_eq!(received(&record), vec![json!({"title": "a", "body": "b"})]);
}

#[test]
fn schemas_gain_the_property_and_nothing_else_changes() {
    let env = Env::new();
    let (mut peer, _) = start(&env, USES_CONFIDENCE);
    let listed = peer.request(1, "tools/list", json!({}));
    let mut direct = Peer::start(env.command(strict_server()));
    initialize(&mut direct, "2025-06-18");
    let original = direct.request(1, "tools/list", json!({}));
    let tools = listed["result"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2);
    for (tool, before) in tools.iter().zip(original["result"]["tools"].as_array().unwrap()) {
        let schema = &tool["inputSchema"];
        assert_eq!(schema["properties"]["toolgate_confidence"]["type"], "number", "{tool}");
        assert_eq!(schema["additionalProperties"], false);
        let mut without = tool.clone();
        without["inputSchema"]["properties"].as_object_mut().unwrap().remove("toolgate_confidence");
        assert_eq!(&without, before, "only the property was added");
    }
}

#[test]
fn a_confident_call_succeeds_and_the_server_never_sees_the_property() {
    let env = Env::new();
    let (mut peer, record) = start(&env, USES_CONFIDENCE);
    peer.request(1, "tools/list", json!({}));
    let reply = note(&mut peer, 2, Some(0.95));
    assert_eq!(reply["result"]["content"][0]["text"], "noted: t2", "{reply}");
    assert_eq!(received(&record), vec![json!({"title": "t2", "body": "b"})]);
    peer.close_stdin();
    peer.wait();
    let audit = std::fs::read_to_string(env.join("audit.jsonl")).unwrap();
    let decision: Value =
        audit.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|r| r["event"] == "decision").unwrap();
    assert_eq!(decision["confidence"], 0.95);
    assert_eq!(decision["arguments"], json!({"title": "t2", "body": "b"}));
}

#[test]
fn low_or_missing_confidence_is_not_forwarded_and_ignore_lets_missing_run() {
    let env = Env::new();
    let (mut peer, record) = start(&env, USES_CONFIDENCE);
    peer.request(1, "tools/list", json!({}));
    for (id, confidence) in [(2, Some(0.2)), (3, Some(0.85)), (4, None), (5, Some(7.0))] {
        let reply = note(&mut peer, id, confidence);
        assert_eq!(reply["result"]["isError"], true, "{confidence:?}: {reply}");
        assert!(
            reply["result"]["content"][0]["text"].as_str().unwrap().contains("needs a human's approval"),
            "{reply}"
        );
    }
    // An echo needs only the settings' 0.5.
    let echo =
        peer.request(6, "tools/call", json!({"name": "echo", "arguments": {"text": "hi", "toolgate_confidence": 0.6}}));
    assert_eq!(echo["result"]["content"][0]["text"], "hi");
    assert_eq!(received(&record), vec![json!({"text": "hi"})], "only the echo reached the server");
    peer.close_stdin();
    assert!(peer.wait().success());
    let decisions = audit_decisions(&env.join("audit.jsonl"));
    let seen: Vec<_> =
        decisions.iter().map(|d| (d["tool"].clone(), d["confidence"].clone(), d["verdict"].clone())).collect();
    assert_eq!(
        seen,
        vec![
            (json!("write_note"), json!(0.2), json!("refused")),
            (json!("write_note"), json!(0.85), json!("refused")),
            (json!("write_note"), Value::Null, json!("refused")),
            (json!("write_note"), Value::Null, json!("refused")),
            (json!("echo"), json!(0.6), json!("forwarded")),
        ]
    );
    for d in &decisions[..4] {
        assert!(d["arguments"].get("toolgate_confidence").is_none(), "{d}");
    }

    let env = Env::new();
    let (mut peer, record) = start(&env, &USES_CONFIDENCE.replace("\"ask\"", "\"ignore\""));
    peer.request(1, "tools/list", json!({}));
    assert_eq!(note(&mut peer, 2, None)["result"]["content"][0]["text"], "noted: t2");
    assert_eq!(received(&record), vec![json!({"title": "t2", "body": "b"})]);
}

#[test]
fn a_confidence_equal_to_the_threshold_reaches_it_and_the_next_double_below_does_not() {
    // The threshold must be reached, not passed: 0.8 and 0.8 are the same double, as TOML and
    // JSON both read them; 0.7999999999999999 is the double just below.
    let just_below = 0.799_999_999_999_999_9_f64;
    assert_eq!(just_below.to_bits() + 1, 0.8_f64.to_bits());
    for policy in [
        "[settings]\ndefault_tier = \"low\"\nmin_confidence = 0.8\n",
        "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"notes need 0.8\"\ntools = [\"write_note\"]\nmin_confidence = 0.8\n",
    ] {
        let env = Env::new();
        let (mut peer, record) = start(&env, policy);
        peer.request(1, "tools/list", json!({}));
        let reached = note(&mut peer, 2, Some(0.8));
        assert_eq!(reached["result"]["content"][0]["text"], "noted: t2", "{policy}: {reached}");
        let below = note(&mut peer, 3, Some(just_below));
        assert_eq!(below["result"]["isError"], true, "{policy}: {below}");
        assert!(
            below["result"]["content"][0]["text"].as_str().unwrap().contains("needs a human's approval"),
            "{below}"
        );
        assert_eq!(received(&record), vec![json!({"title": "t2", "body": "b"})], "{policy}");
        peer.close_stdin();
        assert!(peer.wait().success());
        let decisions = audit_decisions(&env.join("audit.jsonl"));
        let seen: Vec<_> =
            decisions.iter().map(|d| (d["gate"].clone(), d["confidence"].clone(), d["verdict"].clone())).collect();
        assert_eq!(
            seen,
            [(json!("allow"), json!(0.8), json!("forwarded")), (json!("ask"), json!(just_below), json!("refused"))],
            "{policy}"
        );
        assert_eq!(decisions[1]["reason"], "the model's confidence 0.7999999999999999 is below 0.8", "{policy}");
    }
}

#[test]
fn without_confidence_in_the_policy_tools_list_passes_byte_for_byte() {
    let env = Env::new();
    let (mut peer, _) = start(&env, "[settings]\ndefault_tier = \"low\"\n");
    let request = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}\n";
    peer.send_raw(request.as_bytes());
    let through = peer.next_line().unwrap();
    let mut direct = Peer::start(env.command(strict_server()));
    initialize(&mut direct, "2025-06-18");
    direct.send_raw(request.as_bytes());
    assert_eq!(through, direct.next_line().unwrap());
    assert!(!through.contains("toolgate_confidence"));
}

#[test]
fn stripping_the_property_leaves_every_other_argument_byte_for_byte() {
    // Re-encoding would turn 1e2 into 100.0 and a 20-digit integer into a float; a strict
    // server could then refuse what the client actually sent.
    let env = Env::new();
    let policy = policy_file(env.path(), USES_CONFIDENCE);
    let record = env.join("raw.jsonl");
    let fake = fake_server();
    let mut peer = Peer::toolgate(
        &env,
        &policy,
        &env.join("audit.jsonl"),
        &["python3", &fake, "--record", record.to_str().unwrap()],
    );
    initialize(&mut peer, "2025-06-18");
    peer.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"big\":18446744073709551616,\"e\":1e2,\"p\":0.10000000000000000001,\"toolgate_confidence\":0.9}}}\n");
    assert_eq!(peer.response(&json!(1))["result"]["isError"], json!(null));
    peer.close_stdin();
    peer.wait();
    let lines: Vec<String> =
        std::fs::read_to_string(&record).unwrap().lines().map(|l| serde_json::from_str::<String>(l).unwrap()).collect();
    let call = lines.iter().find(|l| l.contains("tools/call")).unwrap();
    assert_eq!(
        call,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"big\":18446744073709551616,\"e\":1e2,\"p\":0.10000000000000000001}}}\n"
    );
}

/// One user's proxies and the `toolgate review` and `toolgate approve` run beside them (they
/// share the state and runtime folders).
struct Place {
    env: Env,
}

impl Place {
    fn new() -> Place {
        Place { env: Env::new() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.env.join(name)
    }

    /// `toolgate run` under `policy` in front of `server`, recording the session to
    /// `session.jsonl`; the strict server records what it receives in `received.jsonl`.
    fn proxy(&self, policy: &str, server: &[&str]) -> Peer {
        let policy = policy_file(self.env.path(), policy);
        let mut cmd = self.env.toolgate();
        cmd.args(["run", "--name", "notes", "--record"]).arg(self.path("session.jsonl"));
        cmd.arg("--policy").arg(&policy).arg("--audit").arg(self.path("audit.jsonl"));
        cmd.arg("--").args(server).env("RECORD", self.path("received.jsonl"));
        let mut peer = Peer::start(cmd);
        initialize(&mut peer, "2025-06-18");
        peer
    }

    /// A `toolgate` command (`review`, `replay`, `test`, ...): success and output.
    fn toolgate(&self, args: &[&str]) -> (bool, String) {
        run_to_end(self.env.toolgate().args(args).env("RECORD", self.path("received.jsonl")))
    }

    fn item(&self, id: u64) -> Value {
        let (ok, text) = self.toolgate(&["review", "--json"]);
        assert!(ok, "{text}");
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|i| i["id"] == id).unwrap()
    }
}

const QUEUES_NOTES: &str = "[settings]\ndefault_tier = \"low\"\nmin_confidence = 0.5\ndesktop_notifications = false\n\
[[rules]]\nname = \"notes wait for review\"\ntools = [\"write_note\", \"echo\"]\naction = \"queue\"\n";

#[test]
fn a_parked_call_approved_in_review_reaches_the_server_without_the_property_and_every_other_byte_as_written() {
    let place = Place::new();
    let raw = place.path("raw.jsonl");
    let fake = fake_server();
    let mut peer = place.proxy(QUEUES_NOTES, &["python3", &fake, "--record", raw.to_str().unwrap()]);
    peer.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"big\":18446744073709551616,\"e\":1e2,\"toolgate_confidence\":0.9}}}\n");
    let parked = peer.response(&json!(1));
    assert!(parked["result"]["content"][0]["text"].as_str().unwrap().contains("as item 1"), "{parked}");
    assert_eq!(place.item(1)["params"]["arguments"].get("toolgate_confidence"), None, "the queue keeps it without");

    let (ok, out) = place.toolgate(&["review", "--approve", "1"]);
    assert!(ok && out.contains("item 1: ran:"), "{out}");
    let received: Vec<String> =
        std::fs::read_to_string(&raw).unwrap().lines().map(|l| serde_json::from_str::<String>(l).unwrap()).collect();
    let call = received.iter().find(|l| l.contains("tools/call")).unwrap();
    let id = serde_json::from_str::<Value>(call).unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        *call,
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":\"{id}\",\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"big\":18446744073709551616,\"e\":1e2}}}}}}\n"
        )
    );
    peer.close_stdin();
    peer.wait();
    let run = audit_decisions(&place.path("audit.jsonl")).pop().unwrap();
    assert_eq!((run["channel"].as_str(), run["verdict"].as_str()), (Some("review"), Some("forwarded")), "{run}");
    assert_eq!(run["confidence"], 0.9, "the run's record keeps the confidence the call reported");
}

#[test]
fn review_run_never_sends_the_property_even_for_an_item_that_kept_it() {
    let place = Place::new();
    let mut peer = place.proxy(QUEUES_NOTES, &[&strict_server()]);
    let parked = note(&mut peer, 1, Some(0.95));
    assert!(parked["result"]["content"][0]["text"].as_str().unwrap().contains("as item 1"), "{parked}");
    peer.close_stdin();
    peer.wait();
    // An item parked by an earlier toolgate kept the property in the call it stored.
    let queue_file = place.path("state/toolgate/queue.json");
    let mut queue: Value = serde_json::from_str(&std::fs::read_to_string(&queue_file).unwrap()).unwrap();
    queue["items"]["1"]["params"]["arguments"]["toolgate_confidence"] = json!(0.95);
    std::fs::write(&queue_file, queue.to_string()).unwrap();

    let (ok, out) = place.toolgate(&["review", "--approve", "1"]);
    assert!(!ok && out.contains("cannot be reached"), "{out}");
    let (ok, out) = place.toolgate(&["review", "--run", "1", "--", &strict_server()]);
    assert!(ok, "{out}");
    assert_eq!(place.item(1)["result"]["content"][0]["text"], "noted: t1", "{out}");
    assert_eq!(received(&place.path("received.jsonl")), vec![json!({"title": "t1", "body": "b"})]);
}

#[test]
fn arguments_a_person_edits_lose_the_property_too() {
    let place = Place::new();
    let policy = USES_CONFIDENCE
        .replace("[settings]\n", "[settings]\napproval_timeout = \"30s\"\ndesktop_notifications = false\n");
    let mut peer = place.proxy(&policy, &[&strict_server()]);
    let mut approver = place.env.approver();
    event(&approver, "connected");
    // Too little confidence: it needs a yes. The person edits it, and writes a confidence in.
    let args = json!({"title": "t2", "body": "b", "toolgate_confidence": 0.2});
    peer.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "write_note", "arguments": args}}));
    let offered = event(&approver, "offered");
    assert_eq!(offered["approval"]["arguments"], json!({"title": "t2", "body": "b"}));
    approver.send(&json!({"proxy": offered["proxy"], "ticket": offered["approval"]["ticket"], "decision": "edit",
        "arguments": {"title": "edited", "body": "b", "toolgate_confidence": 1}}));
    let ran = peer.response(&json!(2));
    assert_eq!(ran["result"]["content"][0]["text"], "noted: edited", "{ran}");
    assert_eq!(received(&place.path("received.jsonl")), vec![json!({"title": "edited", "body": "b"})]);
    peer.close_stdin();
    peer.wait();
    let decision = audit_decisions(&place.path("audit.jsonl")).pop().unwrap();
    assert_eq!(decision["edited_arguments"], json!({"title": "edited", "body": "b"}), "the record says what ran");
}

/// The gate of each call `toolgate replay` lists.
fn replayed_gates(listing: &str) -> Vec<String> {
    listing.lines().filter(|l| l.starts_with("line")).map(|l| l.split_whitespace().nth(3).unwrap().to_owned()).collect()
}

#[test]
fn replay_decides_a_recorded_call_with_the_confidence_it_reported_and_serve_takes_it_without() {
    let place = Place::new();
    let mut peer = place.proxy(USES_CONFIDENCE, &[&strict_server()]);
    peer.request(1, "tools/list", json!({}));
    assert_eq!(note(&mut peer, 2, Some(0.95))["result"]["content"][0]["text"], "noted: t2");
    assert_eq!(note(&mut peer, 3, Some(0.2))["result"]["isError"], true);
    peer.close_stdin();
    peer.wait();
    let policy = place.path("policy.toml");
    let policy = policy.to_str().unwrap();

    // The transcript and the audit log give the same decisions the proxy took.
    for recording in ["session.jsonl", "audit.jsonl"] {
        let (ok, listing) = place.toolgate(&["replay", place.path(recording).to_str().unwrap(), "--policy", policy]);
        assert!(ok, "{listing}");
        assert_eq!(replayed_gates(&listing), ["allow", "ask"], "{recording}: {listing}");
    }
    let suite = place.path("suite.toml");
    std::fs::write(
        &suite,
        "policy = \"policy.toml\"\n[[recording]]\nfile = \"session.jsonl\"\nexpect = [\"allow\", \"ask\"]\n",
    )
    .unwrap();
    let (ok, out) = place.toolgate(&["test", suite.to_str().unwrap()]);
    assert!(ok, "{out}");

    // The recorded server takes the call toolgate forwards, without the property.
    let session = place.path("session.jsonl");
    let mut cmd = place.env.toolgate();
    cmd.args(["run", "--name", "notes", "--policy", policy, "--audit"]).arg(place.path("again.jsonl"));
    cmd.args(["--", toolgate(), "replay", session.to_str().unwrap(), "--serve"]);
    let mut again = Peer::start(cmd);
    initialize(&mut again, "2025-06-18");
    again.request(1, "tools/list", json!({}));
    let reply = note(&mut again, 2, Some(0.95));
    assert_eq!(reply["result"]["content"][0]["text"], "noted: t2", "{reply}");
    assert_eq!(note(&mut again, 3, Some(0.2))["result"]["isError"], true);
    again.close_stdin();
    assert!(again.wait().success());
}
