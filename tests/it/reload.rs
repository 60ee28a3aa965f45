//! Live policy reload against a running proxy: an edit takes effect, a bad edit leaves the
//! previous policy in force and says so, SIGHUP reloads, and the audit names each version.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::common::asking::{accept, answer, pay, question};
use crate::common::*;
use serde_json::{Value, json};

const DENY_READS: &str = "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"no reads\"\ntools = [\"read_file\"]\naction = \"deny\"\nreason = \"reads are off\"\n";
const ALLOW_ALL: &str = "[settings]\ndefault_tier = \"low\"\n";

/// `toolgate run --name demo` in front of its demo server, under a policy file it watches, with
/// stderr read line by line.
struct Demo {
    peer: Peer,
    stderr: mpsc::Receiver<String>,
    policy: PathBuf,
    audit: PathBuf,
    _env: Env,
}

impl Demo {
    /// Under the policy file `policy`, which the test made in `env`'s folder.
    fn start(env: Env, policy: PathBuf) -> Demo {
        Demo::start_declaring(env, policy, "2025-06-18", json!({}))
    }

    /// Under a policy of this text, for a client that answers questions by elicitation.
    fn asking(text: &str) -> Demo {
        let env = Env::new();
        let policy = policy_file(env.path(), text);
        Demo::start_declaring(env, policy, "2025-11-25", json!({"elicitation": {"form": {}}}))
    }

    fn start_declaring(env: Env, policy: PathBuf, version: &str, capabilities: Value) -> Demo {
        let audit = env.join("audit.jsonl");
        let mut cmd = env.toolgate();
        cmd.arg("run").arg("--policy").arg(&policy).arg("--audit").arg(&audit).arg("--name").arg("demo");
        cmd.arg("--").arg(toolgate()).arg("demo-server");
        let (mut peer, stderr) = Peer::start_reading_stderr(cmd);
        initialize_declaring(&mut peer, version, capabilities);
        Demo { peer, stderr, policy, audit, _env: env }
    }

    /// Saves the policy as `text` and waits until toolgate says it reloaded it.
    fn reload(&self, text: &str) {
        save(&self.policy, text);
        said(&self.stderr, "policy reloaded");
    }
}

fn read(peer: &mut Peer, id: i64) -> Value {
    peer.request(id, "tools/call", json!({"name": "read_file", "arguments": {"path": "a"}}))
}

fn refused(reply: &Value) -> bool {
    reply["result"]["isError"] == json!(true)
}

/// Replaces the file the way editors do: write a new file, rename it over the old one.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn an_edited_policy_takes_effect_and_a_bad_edit_keeps_the_previous_one() {
    let env = Env::new();
    let policy = policy_file(env.path(), DENY_READS);
    let mut demo = Demo::start(env, policy);
    assert!(refused(&read(&mut demo.peer, 1)));

    demo.reload(ALLOW_ALL);
    assert!(!refused(&read(&mut demo.peer, 2)), "the edit did not take effect");

    save(&demo.policy, "[[rules]]\nname = \"broken\"\ntools = [\"read_file\"]\nacton = \"deny\"\n");
    let line = said(&demo.stderr, "does not load");
    assert!(line.contains("the previous policy (sha256:"), "{line}");
    said(&demo.stderr, "4:1: unknown field `acton`");
    assert!(!refused(&read(&mut demo.peer, 3)), "a bad edit must leave the previous policy in force");

    // Deleting the file is a failed load too: the policy in force stays.
    std::fs::remove_file(&demo.policy).unwrap();
    said(&demo.stderr, "does not load");
    assert!(!refused(&read(&mut demo.peer, 4)));

    demo.reload(DENY_READS);
    assert!(refused(&read(&mut demo.peer, 5)));

    demo.peer.close_stdin();
    assert!(demo.peer.wait().success());
    let versions: Vec<String> =
        audit_decisions(&demo.audit).iter().map(|r| r["policy"].as_str().unwrap().to_owned()).collect();
    let deny = toolgate::policy::version_of(DENY_READS);
    let allow = toolgate::policy::version_of(ALLOW_ALL);
    assert_eq!(versions, vec![deny.clone(), allow.clone(), allow.clone(), allow.clone(), deny]);
    // Each failed reload is in the audit log too, with the errors and the policy that stayed.
    let failed: Vec<Value> = std::fs::read_to_string(&demo.audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"] == "reload_failed")
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed[0]["errors"].as_str().unwrap().contains("unknown field `acton`"), "{failed:?}");
    assert_eq!(failed[0]["in_force"], json!(allow));
}

#[test]
fn sighup_reloads_a_policy_the_watcher_cannot_see() {
    // The policy is a symlink into another folder: editing the target is invisible to the
    // watcher on the link's folder, so only SIGHUP can bring the change in.
    let env = Env::new();
    let elsewhere = env.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let target = policy_file(&elsewhere, DENY_READS);
    let link = env.join("policy.toml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut demo = Demo::start(env, link);
    assert!(refused(&read(&mut demo.peer, 1)));

    std::fs::write(&target, ALLOW_ALL).unwrap();
    assert!(refused(&read(&mut demo.peer, 2)), "nothing should have reloaded yet");
    let pid = nix::unistd::Pid::from_raw(demo.peer.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    said(&demo.stderr, "policy reloaded");
    assert!(!refused(&read(&mut demo.peer, 3)));
}

const PAY_ASKS: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"10m\"\n[[rules]]\nname = \"money needs a yes\"\ntools = [\"send_payment\"]\ntier = \"high\"\n";
const PAY_DENIED: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"10m\"\n[[rules]]\nname = \"no money\"\ntools = [\"send_payment\"]\naction = \"deny\"\nreason = \"payments are off\"\n";
const PAY_HELD: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"10m\"\n[[rules]]\nname = \"money waits\"\ntools = [\"send_payment\"]\naction = \"hold\"\nhold = \"10m\"\n";

/// A payment (id 1) waiting under `policy` for the answer to toolgate's question (or hold
/// notice): the proxy and the question.
fn a_waiting_payment(policy: &str) -> (Demo, Value) {
    let mut demo = Demo::asking(policy);
    pay(&mut demo.peer, 1);
    let question = question(&demo.peer);
    (demo, question)
}

/// A ping and its answer: everything the proxy sent before it is read first, in order.
fn ping_after(peer: &mut Peer, id: i64) -> Vec<Value> {
    peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": "ping"}));
    let mut before = Vec::new();
    loop {
        let msg = peer.recv();
        if msg["id"] == json!(id) && msg.get("result").is_some() {
            return before;
        }
        before.push(msg);
    }
}

#[test]
fn a_call_waiting_for_a_yes_is_refused_the_moment_a_reloaded_policy_denies_it() {
    let (mut demo, q) = a_waiting_payment(PAY_ASKS);

    demo.reload(PAY_DENIED);
    // Refused now, with the new rule's reason, and the question withdrawn; nobody answered yet.
    let sent = ping_after(&mut demo.peer, 2);
    let reply = sent.iter().find(|m| m["id"] == json!(1)).unwrap_or_else(|| panic!("call 1 still waits: {sent:?}"));
    assert!(refused(reply), "{reply}");
    let text = reply["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("payments are off") && text.contains("\"no money\""), "{text}");
    assert!(sent.iter().any(|m| m["method"] == "notifications/cancelled"), "the question was not withdrawn: {sent:?}");

    // The person's yes arrives afterwards and runs nothing.
    answer(&mut demo.peer, &q, accept("allow_once"));
    let sent = ping_after(&mut demo.peer, 3);
    assert!(sent.is_empty(), "the late answer did something: {sent:?}");
    demo.peer.close_stdin();
    assert!(demo.peer.wait().success());
    let records: Vec<Value> = audit_records(&demo.audit).into_iter().filter(|r| r["tool"] == "send_payment").collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!((records[0]["verdict"].as_str(), records[0]["gate"].as_str()), (Some("refused"), Some("deny")));
    assert_eq!(records[0]["policy"], json!(toolgate::policy::version_of(PAY_DENIED)));
}

#[test]
fn a_looser_reloaded_policy_never_releases_a_call_nobody_answered() {
    let (mut demo, q) = a_waiting_payment(PAY_ASKS);

    demo.reload(ALLOW_ALL);
    let sent = ping_after(&mut demo.peer, 2);
    assert!(sent.is_empty(), "a looser policy changed a waiting call: {sent:?}");
    answer(&mut demo.peer, &q, accept("deny"));
    assert!(refused(&demo.peer.response(&json!(1))));
}

/// A payment held under [`PAY_HELD`] (a hold, not a question), then its policy reloaded as
/// `policy`: the call stays unsettled and is asked about anew. The proxy, the hold notice,
/// everything the proxy sent after the reload, and the new question.
fn a_hold_reloaded(policy: &str) -> (Demo, Value, Vec<Value>, Value) {
    let (mut demo, hold) = a_waiting_payment(PAY_HELD);
    let choices = &hold["params"]["requestedSchema"]["properties"]["toolgate_decision"]["enum"];
    assert_eq!(choices, &json!(["cancel", "run_now"]));

    demo.reload(policy);
    let sent = ping_after(&mut demo.peer, 2);
    assert!(sent.iter().all(|m| m["id"] != json!(1)), "the call was settled: {sent:?}");
    let asked = sent.iter().find(|m| m["method"] == "elicitation/create").expect("asked anew").clone();
    (demo, hold, sent, asked)
}

/// Dismissing the old hold notice cancels nothing and runs nothing: the new question decides,
/// and its no refuses the call.
fn the_new_question_decides(demo: &mut Demo, hold: &Value, asked: &Value) {
    answer(&mut demo.peer, hold, accept("run_now"));
    assert!(ping_after(&mut demo.peer, 3).is_empty(), "the old hold notice must not run the call");
    answer(&mut demo.peer, asked, accept("deny"));
    assert!(refused(&demo.peer.response(&json!(1))));
}

#[test]
fn a_hold_that_a_reloaded_policy_makes_a_question_is_asked_anew() {
    let (mut demo, hold, sent, asked) = a_hold_reloaded(PAY_ASKS);
    assert!(sent.iter().any(|m| m["method"] == "notifications/cancelled"), "the hold notice stayed: {sent:?}");
    let choices = &asked["params"]["requestedSchema"]["properties"]["toolgate_decision"]["enum"];
    assert_eq!(choices, &json!(["allow_once", "allow_session", "deny"]), "{asked}");
    the_new_question_decides(&mut demo, &hold, &asked);
}

#[test]
fn a_reload_to_supervised_autonomy_turns_a_waiting_hold_into_a_question() {
    // Same rules, one level of autonomy lower: every call needs a yes, the waiting one too.
    let supervised = PAY_HELD.replace("[settings]\n", "[settings]\nautonomy = \"supervised\"\n");
    let (mut demo, hold, _, asked) = a_hold_reloaded(&supervised);
    assert!(asked["params"]["message"].as_str().unwrap().contains("supervised"), "{asked}");
    the_new_question_decides(&mut demo, &hold, &asked);
}
