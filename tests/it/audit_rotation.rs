//! Audit log rotation through the real binary: a run of calls that spans many segments reads
//! back whole through `audit verify`, `audit show`, `summary` and `replay`; two proxies writing
//! one rotating log keep one chain; and rotation by age and deletion past the retention period
//! follow the test's clock.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::{Value, json};

const POLICY: &str = "[settings]\ndefault_tier = \"low\"\n";

/// A proxy over the demo server with `policy`, on the test's clock, making `reads` reads with
/// ids from `first_id`.
fn session(env: &Env, dir: &Path, policy: &str, audit: &Path, clock: &Path, first_id: i64, reads: i64) {
    let policy = policy_file(dir, policy);
    let mut cmd = env.toolgate();
    cmd.env("TOOLGATE_TEST_CLOCK", clock);
    cmd.arg("run").arg("--policy").arg(&policy).arg("--audit").arg(audit).arg("--name").arg("test").arg("--");
    cmd.args([toolgate(), "demo-server"]);
    let mut peer = Peer::start(cmd);
    initialize(&mut peer, "2025-11-25");
    for id in first_id..first_id + reads {
        let answer =
            peer.request(id, "tools/call", json!({"name": "read_file", "arguments": {"path": format!("n/{id}.txt")}}));
        assert!(answer.get("result").is_some(), "{answer}");
    }
    peer.close_stdin();
    assert!(peer.wait().success());
}

/// The log's files beside it, by name, sorted: the live one, its head, and its segments.
fn files(audit: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(audit.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("audit.jsonl"))
        .collect();
    names.sort();
    names
}

fn rotated(audit: &Path) -> Vec<String> {
    files(audit).into_iter().filter(|n| n.len() > "audit.jsonl.head".len()).collect()
}

fn toolgate_run(env: &Env, clock: &Path, args: &[&str]) -> (bool, String) {
    run_to_end(env.toolgate().env("TOOLGATE_TEST_CLOCK", clock).args(args))
}

/// The request ids `audit show --json` lists, in order.
fn shown_ids(env: &Env, clock: &Path, audit: &Path) -> Vec<i64> {
    let (ok, text) = toolgate_run(env, clock, &["audit", "show", "--json", audit.to_str().unwrap()]);
    assert!(ok, "{text}");
    text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["request_id"].as_i64().unwrap()).collect()
}

fn clock_at(env: &Env, time: &str) -> PathBuf {
    let clock = env.join("clock");
    std::fs::write(&clock, time).unwrap();
    clock
}

#[test]
fn a_run_spanning_many_segments_reads_back_whole_through_every_command() {
    let env = Env::new();
    let clock = clock_at(&env, "2026-11-02T10:00:00Z");
    let audit = env.join("audit.jsonl");
    let policy = format!("{POLICY}audit_rotate_size = \"2 KiB\"\n");
    session(&env, env.path(), &policy, &audit, &clock, 1, 60);

    let segments = rotated(&audit);
    assert!(segments.len() >= 5, "{:?}", files(&audit));
    // Compressed before the proxy ended, with nothing left half done.
    assert!(segments.iter().all(|s| s.ends_with(".gz")), "{segments:?}");

    let (ok, text) = toolgate_run(&env, &clock, &["audit", "verify", audit.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("ok: {} segments, ", segments.len() + 1)), "{text}");
    assert!(!text.contains("begins at record"), "{text}");

    assert_eq!(shown_ids(&env, &clock, &audit), (1..=60).collect::<Vec<i64>>());

    let (ok, text) =
        toolgate_run(&env, &clock, &["summary", "--json", "--since", "2026-11-01", "--audit", audit.to_str().unwrap()]);
    assert!(ok, "{text}");
    let summary: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(summary["days"], json!([{"day": "2026-11-02", "by_gate": {"allow": 60}}]), "{summary:#}");

    let replay_policy =
        policy_file(env.path(), "[[rules]]\nname = \"no reads\"\ntools = [\"read_file\"]\naction = \"deny\"\n");
    let (_, text) =
        toolgate_run(&env, &clock, &["replay", "--policy", replay_policy.to_str().unwrap(), audit.to_str().unwrap()]);
    assert_eq!(text.lines().filter(|l| l.contains("test/read_file  deny")).count(), 60, "{text}");
}

#[test]
fn two_proxies_writing_one_rotating_log_keep_one_chain() {
    let env = Env::new();
    let clock = clock_at(&env, "2026-11-02T10:00:00Z");
    let audit = env.join("audit.jsonl");
    let policy = format!("{POLICY}audit_rotate_size = \"3 KiB\"\n");
    std::thread::scope(|scope| {
        for i in 0..2 {
            let work = env.join(format!("w{i}"));
            std::fs::create_dir(&work).unwrap();
            let (env, audit, clock, policy) = (&env, &audit, &clock, &policy);
            scope.spawn(move || session(env, &work, policy, audit, clock, i * 1000 + 1, 60));
        }
    });
    assert!(rotated(&audit).len() >= 5, "{:?}", files(&audit));
    let (ok, text) = toolgate_run(&env, &clock, &["audit", "verify", audit.to_str().unwrap()]);
    assert!(ok, "{text}");
    let mut ids = shown_ids(&env, &clock, &audit);
    // Each proxy's calls in its own order, none lost or doubled.
    let of = |first: i64| ids.iter().copied().filter(|id| (first..first + 60).contains(id)).collect::<Vec<i64>>();
    assert_eq!(of(1), (1..=60).collect::<Vec<i64>>());
    assert_eq!(of(1001), (1001..=1060).collect::<Vec<i64>>());
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 120);
}

#[test]
fn segments_rotate_by_age_and_are_deleted_past_the_retention_only_when_it_is_set() {
    let env = Env::new();
    let audit = env.join("audit.jsonl");
    let clock = env.join("clock");
    let day = |d: u32| format!("2026-11-{d:02}T10:00:00Z");
    let by_age = format!("{POLICY}audit_rotate_age = \"1d\"\n");
    // Days 1 to 4: a segment a day, kept, since no retention is set.
    for d in 1..=4 {
        std::fs::write(&clock, day(d)).unwrap();
        session(&env, env.path(), &by_age, &audit, &clock, i64::from(d) * 10, 2);
    }
    assert_eq!(rotated(&audit).len(), 3, "{:?}", files(&audit));
    std::fs::write(&clock, day(4)).unwrap();
    assert_eq!(shown_ids(&env, &clock, &audit), [10, 11, 20, 21, 30, 31, 40, 41]);

    // Day 8, with a retention of three days: the segments whose records all predate day 5 go;
    // the one written on day 4 ran on until day 8's rotation, so it stays.
    std::fs::write(&clock, day(8)).unwrap();
    session(&env, env.path(), &format!("{by_age}audit_retention = \"3d\"\n"), &audit, &clock, 80, 2);
    assert_eq!(rotated(&audit).len(), 1, "{:?}", files(&audit));
    assert_eq!(shown_ids(&env, &clock, &audit), [40, 41, 80, 81]);
    let (ok, text) = toolgate_run(&env, &clock, &["audit", "verify", audit.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("ok: 2 segments, "), "{text}");
    assert!(text.contains("the log begins at record "), "{text}");
}
