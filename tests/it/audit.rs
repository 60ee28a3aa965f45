//! The audit log through the real binary: a hash-chained log that `audit verify` accepts, and
//! that it rejects, naming the line and what happened, after an edit, a deletion, a reordering
//! or a truncation; several proxies writing one log at once; `audit show` and its filters; and
//! secrets kept out.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::{Value, json};

const POLICY: &str = "[settings]\ndefault_tier = \"low\"\n\
[[rules]]\nname = \"money needs a yes\"\ntools = [\"send_payment\"]\ntier = \"high\"\nreason = \"it moves money\"\n";

/// Runs a session of `calls` reads and one refused payment, writing to `audit`.
fn session(env: &Env, dir: &Path, audit: &Path, calls: usize) {
    let policy = policy_file(dir, POLICY);
    let mut peer = Peer::toolgate(env, &policy, audit, &[toolgate(), "demo-server"]);
    initialize(&mut peer, "2025-11-25");
    for i in 0..calls {
        let args = json!({"path": format!("notes/{i}.txt"), "api_token": "s3cr3t-value"});
        let id = i64::try_from(i).unwrap() + 1;
        peer.request(id, "tools/call", json!({"name": "read_file", "arguments": args}));
    }
    peer.request(1000, "tools/call", json!({"name": "send_payment", "arguments": {"to": "ACME", "amount": 5}}));
    peer.close_stdin();
    peer.wait();
}

fn toolgate_audit(env: &Env, args: &[&str]) -> (bool, String) {
    run_to_end(env.toolgate().arg("audit").args(args))
}

fn verify(env: &Env, path: &Path) -> (bool, String) {
    toolgate_audit(env, &["verify", path.to_str().unwrap()])
}

/// A copy of the log (and its head) with its lines changed by `edit`.
fn tampered(original: &Path, name: &str, edit: impl FnOnce(&mut Vec<String>)) -> PathBuf {
    let path = original.with_file_name(name);
    let mut lines: Vec<String> = std::fs::read_to_string(original).unwrap().lines().map(str::to_owned).collect();
    edit(&mut lines);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let head = |p: &Path| PathBuf::from(format!("{}.head", p.display()));
    std::fs::copy(head(original), head(&path)).unwrap();
    path
}

#[test]
fn verify_accepts_the_log_and_names_each_kind_of_tampering() {
    let env = Env::new();
    let audit = env.join("audit.jsonl");
    session(&env, env.path(), &audit, 3);
    let (ok, text) = verify(&env, &audit);
    assert!(ok, "{text}");
    assert!(text.contains("ok: 7 lines, 7 chained records"), "{text}");

    let edited = tampered(&audit, "edited.jsonl", |l| l[2] = l[2].replace("notes/", "secret/"));
    assert_eq!(
        verify(&env, &edited),
        (false, format!("{}: line 3: edited (its hash no longer matches the chain)\n", edited.display()))
    );

    let last_edited = tampered(&audit, "last.jsonl", |l| {
        let n = l.len() - 1;
        l[n] = l[n].replace("ACME", "EVIL");
    });
    assert!(verify(&env, &last_edited).1.contains("line 7: edited"), "{}", verify(&env, &last_edited).1);

    let deleted = tampered(&audit, "deleted.jsonl", |l| {
        l.remove(3);
    });
    assert!(
        verify(&env, &deleted).1.contains("line 4: record 4 before it was deleted"),
        "{}",
        verify(&env, &deleted).1
    );

    let reordered = tampered(&audit, "reordered.jsonl", |l| l.swap(1, 2));
    assert!(
        verify(&env, &reordered).1.contains("line 2: reordered (record 3 where record 2 belongs)"),
        "{}",
        verify(&env, &reordered).1
    );

    let truncated = tampered(&audit, "truncated.jsonl", |l| l.truncate(5));
    let (ok, text) = verify(&env, &truncated);
    assert!(!ok);
    assert!(
        text.contains("truncated: the head record says the log ran to record 7, but it ends at record 5"),
        "{text}"
    );

    let garbage = tampered(&audit, "garbage.jsonl", |l| l[0] = "not json".into());
    assert!(verify(&env, &garbage).1.contains("line 1: not a JSON record"), "{}", verify(&env, &garbage).1);

    let headless = tampered(&audit, "headless.jsonl", |_| {});
    std::fs::remove_file(format!("{}.head", headless.display())).unwrap();
    let (ok, text) = verify(&env, &headless);
    assert!(!ok && text.contains("head record is missing"), "{text}");
}

#[test]
fn several_proxies_share_one_log_without_breaking_the_chain() {
    let env = Env::new();
    let audit = env.join("audit.jsonl");
    std::thread::scope(|scope| {
        for i in 0..4 {
            let work = env.join(format!("w{i}"));
            std::fs::create_dir(&work).unwrap();
            let (env, audit) = (&env, &audit);
            scope.spawn(move || session(env, &work, audit, 40));
        }
    });
    let (ok, text) = verify(&env, &audit);
    assert!(ok, "{text}");
    // Each proxy: 40 reads with their outcomes and one refused payment.
    assert!(text.contains("ok: 324 lines, 324 chained records"), "{text}");
    let sessions: std::collections::HashSet<String> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["session"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sessions.len(), 4);
}

#[test]
fn show_prints_the_history_with_filters_and_keeps_secrets_out() {
    let env = Env::new();
    let audit = env.join("audit.jsonl");
    session(&env, env.path(), &audit, 2);
    let raw = std::fs::read_to_string(&audit).unwrap();
    assert!(!raw.contains("s3cr3t-value"), "secrets are recorded as a digest");
    assert!(raw.contains("\"api_token\":\"[secret sha256:"));

    let (ok, text) = toolgate_audit(&env, &["show", audit.to_str().unwrap()]);
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("test/read_file  allow → forwarded by policy, ok in"), "{text}");
    assert!(lines[2].contains("test/send_payment  ask → refused by toolgate  rule \"money needs a yes\""), "{text}");

    let (_, refused) = toolgate_audit(&env, &["show", audit.to_str().unwrap(), "--decision", "refused"]);
    assert_eq!(refused.lines().count(), 1, "{refused}");
    let (_, by_policy) =
        toolgate_audit(&env, &["show", audit.to_str().unwrap(), "--decided-by", "policy", "--tool", "read_*"]);
    assert_eq!(by_policy.lines().count(), 2, "{by_policy}");
    let (_, future) = toolgate_audit(&env, &["show", audit.to_str().unwrap(), "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(future, "");
    let (_, recent) = toolgate_audit(&env, &["show", audit.to_str().unwrap(), "--since", "1h", "--json"]);
    let records: Vec<Value> = recent.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["outcome"]["outcome"], "ok");
    assert!(records[2].get("outcome").is_none(), "a refused call has no outcome");
    let (ok, text) = toolgate_audit(&env, &["show", audit.to_str().unwrap(), "--since", "last tuesday"]);
    assert!(!ok && text.contains("--since \"last tuesday\""), "{text}");
}
