//! The core on its own: a [`Dispatcher`] fed events at times the test chooses, with its output
//! read back. No process, pipe, socket, terminal or clock is involved; the audit log and the
//! policy are files in a temporary folder.

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::Instant;

use super::{Dispatcher, Event, Output, RELOAD_SETTLE};
use crate::audit::AuditLog;
use crate::human::approver_protocol::AnswerParams;
use crate::policy::Policy;
use crate::proxy::approver_socket::{Approvers, FromApprover};
use crate::proxy::held::Held;
use crate::proxy::route::Router;
use crate::proxy::session::Session;
use crate::proxy::session_trust::ServerIdentity;
use crate::proxy::{Inbound, Peer, Read};
use crate::wire::envelope;

/// Payments wait for a person; reads run.
const ASK: &str = r#"
[settings]
default_tier = "low"
approval_timeout = "10m"
desktop_notifications = false
[[rules]]
name = "money"
tools = ["send_payment"]
tier = "high"
"#;

/// Payments are held for a minute, then run unless someone cancels them.
const HOLD: &str = r#"
[settings]
default_tier = "low"
desktop_notifications = false
[[rules]]
name = "money waits"
tools = ["send_payment"]
action = "hold"
hold = "60s"
"#;

/// Payments are refused.
const DENY: &str = r#"
[settings]
default_tier = "low"
desktop_notifications = false
[[rules]]
name = "no money"
tools = ["send_payment"]
action = "deny"
"#;

/// Payments are parked in the review queue until a person approves them.
const QUEUE: &str = r#"
[settings]
default_tier = "low"
desktop_notifications = false
[[rules]]
name = "money is reviewed"
tools = ["send_payment"]
action = "queue"
"#;

/// A dispatcher, the clock the test moves, and what has come out of it so far.
struct Core {
    core: Dispatcher,
    start: Instant,
    now: Instant,
    dir: tempfile::TempDir,
    to_client: Vec<Value>,
    to_server: Vec<Value>,
    signals: Vec<Signal>,
    /// Lines sent to the approver connection, once one is connected.
    approver: Option<UnboundedReceiver<Vec<u8>>>,
}

impl Core {
    /// A session whose client can answer in a dialog (form elicitation), past `initialize` and
    /// a `tools/list`.
    fn new(policy: &str) -> Core {
        let dir = tempfile::tempdir().unwrap();
        let policy_path = dir.path().join("policy.toml");
        std::fs::write(&policy_path, policy).unwrap();
        let start = Instant::now();
        let (human, _) = unbounded_channel();
        let session = Session::new(
            "bank".into(),
            Arc::new(Policy::load(&policy_path).unwrap()),
            AuditLog::open(&dir.path().join("audit.jsonl")),
            1 << 20,
            start,
            Some(policy_path.clone()),
            None,
            ServerIdentity::known(crate::identity::Identity::of(&["true".into()])),
        );
        let held = Held::new(human, Approvers::unlistened()).without_terminal();
        let mut core = Core {
            core: Dispatcher::new(Router::new(session, held, Some(dir.path().join("queue.json"))), Some(policy_path)),
            start,
            now: start,
            dir,
            to_client: Vec::new(),
            to_server: Vec::new(),
            signals: Vec::new(),
            approver: None,
        };
        core.client(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "test", "version": "0"}}}));
        core.flush();
        core.server(json!({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}}, "serverInfo": {"name": "bank", "version": "0"}}}));
        core.client(json!({"jsonrpc": "2.0", "id": "list", "method": "tools/list"}));
        core.flush();
        let schema = json!({"type": "object", "properties": {"amount": {"type": "number"}}});
        core.server(json!({"jsonrpc": "2.0", "id": "list", "result": {"tools": [
            {"name": "send_payment", "inputSchema": schema},
            {"name": "read_file", "inputSchema": {"type": "object"}}]}}));
        core.flush();
        core.to_client.clear();
        core.to_server.clear();
        core
    }

    fn handle(&mut self, event: Event) {
        self.core.handle(event, self.now);
    }

    fn line(peer: Peer, message: Value) -> Event {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        let read = match envelope::parse(&line, crate::wire::DEFAULT_MAX_DEPTH) {
            Ok(env) => Read::Message(env),
            Err(refusal) => Read::Refused(refusal),
        };
        Event::Line(peer, Inbound { line, read, _credit: None })
    }

    fn client(&mut self, message: Value) {
        self.handle(Core::line(Peer::Client, message));
    }

    fn server(&mut self, message: Value) {
        self.handle(Core::line(Peer::Server, message));
    }

    fn payment(&mut self, id: u64) {
        self.client(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "send_payment", "arguments": {"amount": 100}}}));
    }

    /// Moves the clock to `at` after the start and lets what is due happen.
    fn at(&mut self, at: Duration) {
        self.now = self.start + at;
        self.handle(Event::Tick);
    }

    /// Takes the output, as the proxy's writers would.
    fn flush(&mut self) {
        let Output { to_client, to_server, signals, close_server_input: _ } = self.core.flush(self.now);
        let parse = |o: &super::Outgoing| serde_json::from_slice::<Value>(&o.bytes).unwrap();
        self.to_client.extend(to_client.iter().map(parse));
        self.to_server.extend(to_server.iter().map(parse));
        self.signals.extend(signals);
    }

    /// A `toolgate approve` connects as connection 1 and subscribes.
    fn connect_approver(&mut self) {
        let (out, lines) = unbounded_channel();
        self.approver = Some(lines);
        self.handle(Event::Approver(FromApprover::Connected { conn: 1, out }));
        self.handle(Event::Approver(FromApprover::Subscribe { conn: 1, id: json!("sub") }));
        assert!(self.approver_said("sub").is_some(), "the subscription was answered");
    }

    /// The approver's lines so far; the first whose id or method is `what`.
    fn approver_said(&mut self, what: &str) -> Option<Value> {
        let lines = self.approver.as_mut().unwrap();
        let mut found = None;
        while let Ok(line) = lines.try_recv() {
            let message: Value = serde_json::from_slice(&line).unwrap();
            if found.is_none() && (message["id"] == what || message["method"] == what) {
                found = Some(message);
            }
        }
        found
    }

    fn approver_answers(&mut self, ticket: u64, decision: &str) {
        let params = AnswerParams { ticket, decision: decision.into(), reason: None, arguments: None };
        self.handle(Event::Approver(FromApprover::Answer { conn: 1, id: json!("answer"), params }));
    }

    /// The calls the server was sent, by id.
    fn calls_run(&self) -> Vec<&Value> {
        self.to_server.iter().filter(|m| m["method"] == "tools/call").map(|m| &m["id"]).collect()
    }

    /// The client's answer to request `id`, if it has one.
    fn answer_to(&self, id: u64) -> Option<&Value> {
        self.to_client.iter().find(|m| m["id"] == id && m.get("method").is_none())
    }

    /// The review queue's file, to read and change as `toolgate review` would.
    fn queue(&self) -> crate::review::QueueFile {
        crate::review::QueueFile::new(self.dir.path().join("queue.json"))
    }

    /// A reviewer approves review item `item` in the queue's file, then asks the proxy to run it.
    fn approve_and_run(&mut self, item: u64) {
        self.queue().update(|q| q.items.get_mut(&item).unwrap().status = crate::review::Status::Approved).unwrap();
        self.handle(Event::Approver(FromApprover::Run { conn: 1, id: json!("run"), item }));
    }

    fn decisions(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["event"] == "decision")
            .collect()
    }
}

#[test]
fn an_allowed_call_leaves_only_after_its_record_is_written() {
    let mut core = Core::new(ASK);
    core.client(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "read_file", "arguments": {}}}));
    assert!(core.decisions().is_empty(), "nothing is written before the flush");
    core.flush();
    assert_eq!(core.calls_run(), [&json!(1)]);
    let decisions = core.decisions();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["verdict"], "forwarded");
}

#[test]
fn an_audit_write_that_fails_refuses_the_call_and_nothing_reaches_the_server() {
    let mut core = Core::new(ASK);
    core.core.router.session.audit.fail_writes();
    for id in 1..=3 {
        core.client(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "read_file", "arguments": {}}}));
    }
    core.flush();
    assert!(core.calls_run().is_empty(), "a call whose record was not written ran");
    for id in 1..=3 {
        let answer = core.answer_to(id).expect("each call is answered");
        assert!(answer.to_string().contains("could not write its audit log"), "{answer}");
    }
    assert_eq!(core.to_client.len(), 3, "each call is answered once");
}

#[test]
fn the_first_answer_wins_across_channels() {
    let mut core = Core::new(ASK);
    core.connect_approver();
    core.payment(7);
    core.flush();
    // Offered in the client's dialog and to the approver at once.
    let dialog = core.to_client.iter().find(|m| m["method"] == "elicitation/create").cloned().expect("asked");
    let offered = core.approver_said("offered").expect("offered to the approver");
    let ticket = offered["params"]["ticket"].as_u64().unwrap();
    assert!(core.calls_run().is_empty());

    core.now += Duration::from_secs(3);
    core.approver_answers(ticket, "allow_once");
    assert_eq!(core.approver_said("answer").unwrap()["result"]["settled"], true);
    // The dialog's answer comes second: it finds nothing to decide.
    core.client(json!({"jsonrpc": "2.0", "id": dialog["id"], "result": {"action": "accept",
        "content": {"toolgate_decision": "deny"}}}));
    core.flush();
    assert_eq!(core.calls_run(), [&json!(7)], "the call ran once, on the first answer");
    assert!(core.answer_to(7).is_none(), "the client got no refusal");
    let withdrawn = core.to_client.iter().any(|m| m["method"] == "notifications/cancelled");
    assert!(withdrawn, "the dialog was withdrawn: {:?}", core.to_client);
    let decisions = core.decisions();
    assert_eq!(decisions.len(), 1);
    assert_eq!((&decisions[0]["decided_by"], &decisions[0]["channel"]), (&json!("human"), &json!("approver")));
    assert_eq!(decisions[0]["waited_ms"], 3000, "the wait is measured on the test's clock");
}

#[test]
fn a_hold_runs_when_it_elapses_and_not_a_moment_before() {
    let mut core = Core::new(HOLD);
    core.connect_approver();
    core.payment(1);
    core.flush();
    assert!(core.approver_said("offered").is_some());
    assert_eq!(core.core.next_deadline(), Some(core.start + Duration::from_secs(60)));
    core.at(Duration::from_millis(59_999));
    core.flush();
    assert!(core.calls_run().is_empty(), "the hold ran early");
    core.at(Duration::from_secs(60));
    core.flush();
    assert_eq!(core.calls_run(), [&json!(1)]);
    assert_eq!(core.decisions()[0]["decided_by"], "timer");
    assert!(core.approver_said("withdrawn").is_some(), "the approver is told the hold ran out");
}

#[test]
fn a_hold_cancelled_by_a_person_never_runs() {
    let mut core = Core::new(HOLD);
    core.connect_approver();
    core.payment(1);
    core.flush();
    let ticket = core.approver_said("offered").unwrap()["params"]["ticket"].as_u64().unwrap();
    core.now += Duration::from_secs(5);
    core.approver_answers(ticket, "deny");
    core.at(Duration::from_secs(600));
    core.flush();
    assert!(core.calls_run().is_empty());
    let answer = core.answer_to(1).expect("the client is told").to_string();
    assert!(answer.contains("cancelled this held call"), "{answer}");
    assert_eq!(core.decisions()[0]["verdict"], "refused");
}

#[test]
fn a_policy_reloaded_while_a_call_waits_decides_it_again() {
    let mut core = Core::new(ASK);
    core.connect_approver();
    core.payment(1);
    core.flush();
    assert!(core.approver_said("offered").is_some());
    std::fs::write(core.dir.path().join("policy.toml"), DENY).unwrap();
    core.now += Duration::from_secs(1);
    core.handle(Event::PolicyEdited);
    // Editors write in steps: the reload waits for the folder to settle.
    assert_eq!(core.core.next_deadline(), Some(core.now + RELOAD_SETTLE));
    core.flush();
    assert!(core.answer_to(1).is_none(), "decided before the edit settled");
    core.at(Duration::from_secs(1) + RELOAD_SETTLE);
    core.flush();
    assert!(core.calls_run().is_empty());
    let answer = core.answer_to(1).expect("refused under the new policy").to_string();
    assert!(answer.contains("no money") || answer.contains("refused"), "{answer}");
    assert!(core.approver_said("withdrawn").is_some(), "the question is withdrawn from the approver");
}

#[test]
fn a_closed_client_stops_the_server_gently_then_firmly() {
    let mut core = Core::new(ASK);
    core.payment(1);
    core.handle(Event::Closed(Peer::Client));
    core.flush();
    assert!(core.calls_run().is_empty(), "the held call never runs");
    assert!(core.signals.is_empty());
    core.at(super::EOF_GRACE - Duration::from_millis(1));
    core.flush();
    assert!(core.signals.is_empty(), "the server has its grace period");
    core.at(super::EOF_GRACE);
    core.flush();
    assert_eq!(core.signals, [Signal::SIGTERM]);
    core.at(super::EOF_GRACE + super::TERM_GRACE);
    core.flush();
    assert_eq!(core.signals, [Signal::SIGTERM, Signal::SIGKILL]);
    core.handle(Event::Exited(std::process::ExitStatus::from_raw(9)));
    core.handle(Event::Closed(Peer::Server));
    assert!(!core.core.running());
}

#[test]
fn a_call_cancelled_in_the_burst_that_ran_it_is_recorded_decision_first() {
    let mut core = Core::new(ASK);
    core.client(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "read_file", "arguments": {}}}));
    core.client(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}));
    core.flush();
    core.core.router.session.audit.flush();
    let records: Vec<Value> = std::fs::read_to_string(core.dir.path().join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["event"].as_str().unwrap(), r.get("outcome").and_then(Value::as_str).unwrap_or("-")))
        .collect();
    assert_eq!(events, [("decision", "-"), ("outcome", "cancelled")], "{records:#?}");
    // The call and then its cancellation reach the server, in that order.
    let methods: Vec<&Value> = core.to_server.iter().map(|m| &m["method"]).collect();
    assert_eq!(methods, [&json!("tools/call"), &json!("notifications/cancelled")]);
}

#[test]
fn an_answer_to_a_call_not_yet_sent_answers_nothing() {
    let mut core = Core::new(ASK);
    core.client(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "read_file", "arguments": {}}}));
    // A server that guesses the next id answers it, and refuses it, before it was sent.
    core.server(json!({"jsonrpc": "2.0", "id": 5, "result": {"content": [], "forged": true}}));
    core.server(json!({"jsonrpc": "2.0", "id": 5, "result": {"x": 1}, "error": {"code": 1, "message": "two"}}));
    core.flush();
    assert_eq!(core.calls_run(), [&json!(5)], "the call still goes out");
    assert!(core.answer_to(5).is_none(), "nothing answered it early: {:?}", core.to_client);
    core.server(json!({"jsonrpc": "2.0", "id": 5, "result": {"content": []}}));
    core.flush();
    assert_eq!(core.to_client.iter().filter(|m| m["id"] == 5).count(), 1, "answered once, by its own answer");
    assert!(core.answer_to(5).unwrap()["result"].get("forged").is_none());
}

#[test]
fn a_call_decided_after_stopping_began_is_refused_and_recorded_so() {
    let mut core = Core::new(ASK);
    core.handle(Event::Interrupt);
    core.client(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "read_file", "arguments": {}}}));
    core.flush();
    assert!(core.calls_run().is_empty());
    assert!(core.answer_to(1).unwrap().to_string().contains("it is stopping"));
    let decisions = core.decisions();
    assert_eq!((&decisions[0]["verdict"], &decisions[0]["decided_by"]), (&json!("refused"), &json!("toolgate")));
}

#[test]
fn a_parked_call_whose_record_fails_is_refused_and_can_never_run() {
    let mut core = Core::new(QUEUE);
    core.connect_approver();
    core.core.router.session.audit.fail_writes();
    core.payment(1);
    core.flush();
    let answer = core.answer_to(1).unwrap().to_string();
    assert!(answer.contains("could not write its audit log"), "{answer}");
    let item = core.queue().read().unwrap().items[&1].clone();
    assert_eq!(item.status, crate::review::Status::Rejected, "the queue says it never runs: {item:?}");
    // Even approved by hand in the file, this proxy no longer holds it.
    core.approve_and_run(1);
    core.flush();
    let refusal = core.approver_said("run").unwrap();
    assert!(refusal["error"]["message"].as_str().unwrap().contains("does not hold item 1"), "{refusal}");
    assert!(core.calls_run().is_empty(), "a call refused to the client ran");
}

#[test]
fn a_call_waiting_for_toolgates_listing_is_refused_and_recorded_when_toolgate_stops() {
    let mut core = Core::new(ASK);
    core.server(json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}));
    core.client(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "read_file", "arguments": {}}}));
    core.flush();
    let list =
        core.to_server.iter().find(|m| m["method"] == "tools/list").expect("toolgate lists the tools")["id"].clone();
    assert!(core.answer_to(3).is_none(), "the call waits for the listing");
    core.handle(Event::Terminate);
    core.flush();
    assert!(core.calls_run().is_empty());
    let answer = core.answer_to(3).expect("the waiting call is answered").to_string();
    assert!(answer.contains("toolgate stopped"), "{answer}");
    let decisions = core.decisions();
    assert_eq!((&decisions[0]["verdict"], &decisions[0]["decided_by"]), (&json!("refused"), &json!("toolgate")));
    // The server's late answer to toolgate's own request never reaches the client.
    core.server(json!({"jsonrpc": "2.0", "id": list, "result": {"tools": []}}));
    core.flush();
    assert!(core.to_client.iter().all(|m| m["id"] != list), "{:?}", core.to_client);
}

#[test]
fn a_reviewer_whose_item_was_running_is_told_when_the_server_ends() {
    let mut core = Core::new(QUEUE);
    core.connect_approver();
    core.payment(1);
    core.flush();
    assert!(core.answer_to(1).unwrap().to_string().contains("parked"), "{:?}", core.to_client);
    core.approve_and_run(1);
    core.flush();
    assert_eq!(core.to_server.iter().filter(|m| m["method"] == "tools/call").count(), 1, "the item runs");
    core.handle(Event::Exited(std::process::ExitStatus::from_raw(1 << 8)));
    core.handle(Event::Closed(Peer::Server));
    let mut approver = core.approver.take().unwrap();
    let (_, code) = core.core.finish(core.now);
    assert_eq!(code, 1);
    let mut told = None;
    while let Ok(line) = approver.try_recv() {
        let message: Value = serde_json::from_slice(&line).unwrap();
        if message["id"] == "run" {
            told = Some(message);
        }
    }
    let told = told.expect("the reviewer is answered");
    assert!(told["error"]["message"].as_str().unwrap().contains("exited (status 1)"), "{told}");
}
