//! The review queue end to end, through the real binary: a parked call answers at once with
//! its item number and does not run; approved later, the proxy that parked it runs it once and
//! the result is recorded; a rejected or expired one never runs; a proxy that is gone leaves
//! `review --run -- CMD`; a `notify` call is queued to review, and flagging it writes the rule
//! that would have asked.

use std::path::{Path, PathBuf};

use crate::common::pty::command_on_pty;
use crate::common::*;
use serde_json::{Value, json};

const POLICY: &str = "[settings]\ndefault_tier = \"low\"\ndesktop_notifications = false\n\
[[rules]]\nname = \"deletes wait for review\"\ntools = [\"delete_file\"]\naction = \"queue\"\n\
[[rules]]\nname = \"mail is noticed\"\ntools = [\"send_email\"]\ntier = \"medium\"\n";

/// One user's proxies and the `toolgate review` run beside them (they share the state and
/// runtime folders).
struct Place {
    env: Env,
}

impl Place {
    fn new() -> Place {
        Place { env: Env::new() }
    }

    fn audit(&self) -> PathBuf {
        self.env.join("audit.jsonl")
    }

    fn proxy(&self) -> Peer {
        self.proxy_of(POLICY, &[toolgate(), "demo-server"])
    }

    fn proxy_of(&self, policy: &str, server: &[&str]) -> Peer {
        let policy = policy_file(self.env.path(), policy);
        let mut cmd = self.env.toolgate();
        cmd.arg("run").arg("--name").arg("files").arg("--policy").arg(&policy).arg("--audit").arg(self.audit());
        cmd.arg("--").args(server);
        let mut peer = Peer::start(cmd);
        initialize(&mut peer, "2025-11-25");
        peer
    }

    /// `toolgate review ARGS`: success and output.
    fn review(&self, args: &[&str]) -> (bool, String) {
        run_to_end(self.env.toolgate().arg("review").args(args))
    }

    fn items(&self) -> Vec<Value> {
        let (ok, text) = self.review(&["--json"]);
        assert!(ok, "{text}");
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn delete(peer: &mut Peer, id: i64, path: &str) -> Value {
    peer.request(id, "tools/call", json!({"name": "delete_file", "arguments": {"path": path}}))
}

fn text(response: &Value) -> &str {
    response["result"]["content"][0]["text"].as_str().unwrap_or_default()
}

fn decisions(audit: &Path) -> Vec<(String, String)> {
    audit_decisions(audit)
        .iter()
        .map(|r| (r["verdict"].as_str().unwrap().to_owned(), r["decided_by"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn a_parked_call_runs_once_when_approved_and_its_result_is_recorded() {
    let place = Place::new();
    let mut proxy = place.proxy();
    let parked = delete(&mut proxy, 1, "old.txt");
    assert_eq!(parked["result"]["isError"], true);
    assert!(text(&parked).contains("parked this call to `delete_file` for human review as item 1"), "{parked}");
    assert!(text(&parked).contains("has NOT run"));
    let items = place.items();
    assert_eq!((items[0]["id"].as_u64(), items[0]["status"].as_str()), (Some(1), Some("waiting")));
    assert_eq!(decisions(&place.audit()), [("parked".into(), "policy".into())]);

    let (ok, out) = place.review(&["--approve", "1"]);
    assert!(ok, "{out}");
    assert!(out.contains("item 1: ran:") && out.contains("deleted old.txt"), "{out}");
    let item = &place.items()[0];
    assert_eq!(item["status"], "ran");
    assert_eq!(item["result"]["content"][0]["text"], "deleted old.txt");
    let audit = audit_decisions(&place.audit());
    assert_eq!((audit[1]["decided_by"].as_str(), audit[1]["channel"].as_str()), (Some("human"), Some("review")));

    // It runs once: a second approval is refused, and the run's answer never reached the client.
    let (ok, out) = place.review(&["--approve", "1"]);
    assert!(!ok && out.contains("item 1: cannot be approved now: it is ran"), "{out}");
    let pong = proxy.request(9, "ping", json!({}));
    assert_eq!(pong["id"], 9, "the next message the client sees is its own answer");
}

#[test]
fn a_real_servers_parked_write_runs_once_when_approved() {
    let place = Place::new();
    let project = place.env.join("project");
    std::fs::create_dir(&project).unwrap();
    let policy = "[settings]\ndefault_tier = \"low\"\ndesktop_notifications = false\n\
        [[rules]]\nname = \"writes wait for review\"\ntools = [\"write_file\"]\naction = \"queue\"\n";
    let server = node_server("mcp-server-filesystem").display().to_string();
    let mut proxy = place.proxy_of(policy, &[&server, project.to_str().unwrap()]);
    let target = project.join("notes.txt");
    let write = json!({"name": "write_file", "arguments": {"path": target, "content": "once\n"}});
    let parked = proxy.request(1, "tools/call", write);
    assert!(text(&parked).contains("as item 1"), "{parked}");
    assert!(!target.exists(), "a parked call has not run");

    let (ok, out) = place.review(&["--approve", "1"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "once\n");
    let item = &place.items()[0];
    assert_eq!(item["status"], "ran");
    assert!(item["result"]["content"][0]["text"].as_str().unwrap().contains("Successfully wrote"), "{item}");
    // Ran once: the file is written again only if someone writes it; a second approval is refused.
    std::fs::write(&target, "changed by hand\n").unwrap();
    assert!(!place.review(&["--approve", "1"]).0);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "changed by hand\n");
}

#[test]
fn rejected_and_expired_calls_never_run() {
    let place = Place::new();
    let mut proxy = place.proxy();
    delete(&mut proxy, 1, "a.txt");
    delete(&mut proxy, 2, "b.txt");
    let (ok, out) = place.review(&["--reject", "1", "--reason", "keep it"]);
    assert!(ok, "{out}");
    let (ok, out) = place.review(&["--expiry", "0s"]);
    assert!(ok && out.contains("1 parked call(s) expired"), "{out}");
    let statuses: Vec<Value> = place.items().iter().map(|i| i["status"].clone()).collect();
    assert_eq!(statuses, [json!("rejected"), json!("expired")]);
    for id in ["1", "2"] {
        let (ok, out) = place.review(&["--approve", id]);
        assert!(!ok, "{out}");
    }
    assert!(decisions(&place.audit()).iter().all(|(verdict, _)| verdict == "parked"), "nothing ran");
    assert_eq!(place.items()[0]["note"], "rejected by a person: keep it");
}

#[test]
fn an_approved_call_whose_proxy_is_gone_runs_with_review_run() {
    let place = Place::new();
    let mut proxy = place.proxy();
    delete(&mut proxy, 1, "old.txt");
    proxy.close_stdin();
    proxy.wait();
    let (ok, out) = place.review(&["--approve", "1"]);
    assert!(!ok && out.contains("cannot be reached") && out.contains("toolgate review --run 1"), "{out}");
    let (ok, out) = place.review(&["--run", "1", "--", toolgate(), "demo-server"]);
    assert!(ok, "{out}");
    assert_eq!(place.items()[0]["result"]["content"][0]["text"], "deleted old.txt");
    let log = place.env.join("state/toolgate/audit.jsonl");
    let run = audit_decisions(&log);
    assert_eq!((run[0]["decided_by"].as_str(), run[0]["channel"].as_str()), (Some("human"), Some("review")), "{run:?}");
}

#[test]
fn a_noticed_call_is_queued_to_review_and_flagging_it_writes_the_rule_that_would_have_asked() {
    let place = Place::new();
    let mut proxy = place.proxy();
    let sent = proxy.request(1, "tools/call", json!({"name": "send_email", "arguments": {"to": "a@example.com"}}));
    assert_ne!(sent["result"]["isError"], true);
    let item = &place.items()[0];
    assert_eq!((item["status"].as_str(), item["tool"].as_str()), (Some("to_review"), Some("send_email")));

    let policy = place.env.join("policy.toml");
    let (ok, out) = place.review(&["--flag", "1", "--write-rule", policy.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("name = \"ask before send_email on files\""), "{out}");
    // The running proxy reloads the policy: the next mail needs a yes (and nobody can be asked).
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let again = proxy.request(2, "tools/call", json!({"name": "send_email", "arguments": {"to": "b@example.com"}}));
        if again["result"]["isError"] == true {
            assert!(text(&again).contains("flagged in review"), "{again}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the flagged rule never took effect");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let check = place.env.toolgate().arg("check").arg(&policy).output().unwrap();
    assert!(check.status.success(), "{check:?}");
}

#[test]
fn review_on_a_terminal_lists_by_risk_and_takes_decisions_one_or_several_at_a_time() {
    let place = Place::new();
    let mut proxy = place.proxy();
    delete(&mut proxy, 1, "a.txt");
    proxy.request(2, "tools/call", json!({"name": "send_email", "arguments": {"to": "a@example.com"}}));
    delete(&mut proxy, 3, "b.txt");
    let mut cmd = place.env.toolgate();
    cmd.arg("review").env("TERM", "xterm");
    let (mut child, mut screen) = command_on_pty(cmd);

    // Highest risk first: the two parked deletes (high), then the mail that ran (medium).
    let list = screen.wait_for("  quit");
    let first = list.find("#1 high files/delete_file").expect(&list);
    let second = list.find("#3 high files/delete_file").expect(&list);
    let third = list.find("#2 medium files/send_email").expect(&list);
    assert!(first < second && second < third, "{list}");

    // One item: the first, rejected.
    screen.type_keys("\r");
    screen.wait_for("do what?");
    screen.type_keys("\x1b[B\r");
    screen.wait_for("item 1: rejected");
    // Several at once: mark the remaining delete, approve it.
    screen.wait_for("  quit");
    screen.type_keys("\x1b[B\x1b[B\r");
    screen.wait_for("Space marks");
    screen.type_keys(" \r");
    screen.wait_for("do what?");
    screen.type_keys("\r");
    screen.wait_for("item 3: ran:");
    screen.wait_for("  quit");
    screen.type_keys("\x1b");
    assert!(child.wait().unwrap().success());

    let statuses: Vec<(u64, String)> =
        place.items().iter().map(|i| (i["id"].as_u64().unwrap(), i["status"].as_str().unwrap().to_owned())).collect();
    assert_eq!(statuses, [(1, "rejected".into()), (3, "ran".into()), (2, "to_review".into())]);
}
