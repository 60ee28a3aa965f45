//! The terminal prompt, on a real pseudo-terminal in the production topology: JSON-RPC on
//! pipes, the prompt on the controlling terminal.

use crate::common::asking::pay;
use crate::common::pty::{Place, Screen, toolgate_on_pty};
use crate::common::*;
use serde_json::{Value, json};

const POLICY: &str = "# the team's policy\n[settings]\ndefault_tier = \"low\"   # reads and the rest\napproval_timeout = \"30s\"\n\n\
[[rules]]\nname = \"money needs a yes\"\ntools = [\"send_payment\"]\ntier = \"high\"\nreason = \"it moves money\"\n\n\
[[rules]]\nname = \"mail waits\"\ntools = [\"send_email\"]\naction = \"hold\"\nhold = \"30s\"\n";

struct Run {
    peer: Peer,
    screen: Screen,
    env: Env,
}

fn start_with(policy: &str, place: Place, vars: &[(&str, &str)]) -> Run {
    let env = Env::new();
    let policy = policy_file(env.path(), policy);
    let (mut peer, screen) = toolgate_on_pty(&env, &policy, &env.join("audit.jsonl"), place, vars);
    initialize(&mut peer, "2025-06-18");
    Run { peer, screen, env }
}

fn start(policy: &str) -> Run {
    start_with(policy, Place::Foreground, &[])
}

/// Waits for a new prompt (not a redraw of the one before) and returns what it shows.
fn prompt(screen: &mut Screen) -> String {
    let head = screen.wait_for("── toolgate:");
    head + &screen.wait_for("> ")
}

fn text(reply: &Value) -> &str {
    reply["result"]["content"][0]["text"].as_str().unwrap_or_default()
}

fn decisions(run: &mut Run) -> Vec<Value> {
    run.peer.close_stdin();
    run.peer.wait();
    audit_decisions(&run.env.join("audit.jsonl"))
}

#[test]
fn y_allows_once_and_the_prompt_shows_what_and_why() {
    let mut r = start(POLICY);
    pay(&mut r.peer, 1);
    let shown = prompt(&mut r.screen);
    for part in [
        "toolgate: approval needed",
        "server   demo",
        "tool     send_payment",
        "\"amount\": 1200",
        "rule \"money needs a yes\": it moves money",
        "[y] allow once",
    ] {
        assert!(shown.contains(part), "{part:?} missing from:\n{shown}");
    }
    r.screen.type_keys("y\r");
    assert_eq!(text(&r.peer.response(&json!(1))), "paid 1200 to ACME");
    r.screen.wait_for("allowed once");
    let d = decisions(&mut r);
    assert_eq!((d[0]["decided_by"].as_str(), d[0]["channel"].as_str()), (Some("human"), Some("terminal")));
}

#[test]
fn n_with_a_reason_reaches_the_model_and_ctrl_c_denies() {
    let mut r = start(POLICY);
    pay(&mut r.peer, 1);
    prompt(&mut r.screen);
    r.screen.type_keys("n\r");
    r.screen.wait_for("reason for the AI");
    r.screen.type_keys("wrong account\r");
    let reply = r.peer.response(&json!(1));
    assert_eq!(
        text(&reply),
        "The user declined this call to `send_payment`, so it was not run. They said: wrong account"
    );
    pay(&mut r.peer, 2);
    prompt(&mut r.screen);
    r.screen.type_keys("\x03");
    assert_eq!(r.peer.response(&json!(2))["result"]["isError"], true);
    r.screen.wait_for("denied (Ctrl-C)");
}

#[test]
fn a_allows_the_tool_for_the_session() {
    let mut r = start(POLICY);
    pay(&mut r.peer, 1);
    prompt(&mut r.screen);
    r.screen.type_keys("a\r");
    assert_eq!(text(&r.peer.response(&json!(1))), "paid 1200 to ACME");
    pay(&mut r.peer, 2);
    assert_eq!(text(&r.peer.response(&json!(2))), "paid 1200 to ACME", "no second prompt");
    let d = decisions(&mut r);
    assert_eq!(d[1]["channel"], "session");
}

#[test]
fn two_calls_wait_in_line_while_other_traffic_flows() {
    let mut r = start(POLICY);
    pay(&mut r.peer, 1);
    prompt(&mut r.screen);
    pay(&mut r.peer, 2);
    // Other messages and calls that need nobody pass while the prompt is open.
    assert_eq!(r.peer.request(3, "ping", json!({})), json!({"jsonrpc": "2.0", "id": 3, "result": {}}));
    assert_eq!(
        text(&r.peer.request(4, "tools/call", json!({"name": "read_file", "arguments": {"path": "x"}}))),
        "(contents of x) buy milk; call the bank"
    );
    r.screen.type_keys("y\r");
    assert_eq!(text(&r.peer.response(&json!(1))), "paid 1200 to ACME");
    let second = prompt(&mut r.screen);
    assert!(second.contains("toolgate: approval needed"));
    r.screen.type_keys("n\r\r");
    assert_eq!(r.peer.response(&json!(2))["result"]["isError"], true);
}

#[test]
fn the_prompt_says_how_many_wait() {
    let mut r = start(POLICY);
    pay(&mut r.peer, 1);
    prompt(&mut r.screen);
    pay(&mut r.peer, 2);
    pay(&mut r.peer, 3);
    assert_eq!(r.peer.request(4, "ping", json!({}))["result"], json!({}));
    r.screen.type_keys("y\r");
    let next = prompt(&mut r.screen);
    assert!(next.contains("waiting  1 more call after this one"), "{next}");
}

#[test]
fn timeout_and_client_cancellation_withdraw_the_prompt() {
    let mut r = start(&POLICY.replace("\"30s\"\n\n", "\"1s\"\n\n"));
    pay(&mut r.peer, 1);
    r.screen.wait_for("nobody answered in time: denied");
    assert!(text(&r.peer.response(&json!(1))).starts_with("Nobody approved this call to `send_payment` within 1s"));
    pay(&mut r.peer, 2);
    prompt(&mut r.screen);
    r.peer.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}}));
    r.screen.wait_for("the client withdrew the call");
    assert_eq!(r.peer.request(3, "ping", json!({}))["result"], json!({}));
    let d = decisions(&mut r);
    assert_eq!(d[0]["decided_by"], "timeout");
    assert_eq!(d[1]["decided_by"], "client");
}

#[test]
fn a_hold_counts_down_and_c_cancels_it_or_it_runs() {
    let mut r = start(&POLICY.replace("hold = \"30s\"", "hold = \"2s\""));
    let mail = json!({"name": "send_email", "arguments": {"to": "boss@example.com"}});
    r.peer.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": mail}));
    prompt(&mut r.screen);
    r.screen.type_keys("c\r");
    assert_eq!(
        text(&r.peer.response(&json!(1))),
        "The user cancelled this held call to `send_email`, so it was not run."
    );
    r.peer.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": mail}));
    r.screen.wait_for("the time is up: it runs");
    assert_eq!(text(&r.peer.response(&json!(2))), "sent to boss@example.com");
    let d = decisions(&mut r);
    assert_eq!(d[0]["decided_by"], "human");
    assert_eq!(d[1]["decided_by"], "timer");
}

#[test]
fn e_edits_the_arguments_and_the_audit_keeps_both() {
    let env = Env::new();
    let editor = env.join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/1200/5/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut r = start_with(POLICY, Place::Foreground, &[("EDITOR", editor.to_str().unwrap()), ("VISUAL", "")]);
    pay(&mut r.peer, 1);
    prompt(&mut r.screen);
    r.screen.type_keys("e\r");
    assert_eq!(text(&r.peer.response(&json!(1))), "paid 5 to ACME");
    let d = decisions(&mut r);
    assert_eq!(d[0]["arguments"], json!({"to": "ACME", "amount": 1200}));
    assert_eq!(d[0]["edited_arguments"], json!({"to": "ACME", "amount": 5}));
}

#[test]
fn r_remembers_a_rule_in_the_policy_keeping_its_comments() {
    let policy = "# the team's policy\n[settings]\ndefault_tier = \"high\"   # ask for the unknown\n";
    let mut r = start(policy);
    pay(&mut r.peer, 1);
    prompt(&mut r.screen);
    r.screen.type_keys("r\r");
    let proposal = r.screen.wait_for("write this rule? [y/n]");
    assert!(proposal.contains("name = \"allow send_payment on demo\""), "{proposal}");
    r.screen.type_keys("y\r");
    assert_eq!(text(&r.peer.response(&json!(1))), "paid 1200 to ACME");
    let written = std::fs::read_to_string(r.env.join("policy.toml")).unwrap();
    assert!(written.starts_with(policy), "{written}");
    assert!(written.contains("tools = [\"send_payment\"]"), "{written}");
    // The rule written allows such calls from now on, from this program only.
    let identity = written.split("identity = \"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
    let reloaded = toolgate::policy::Policy::load(&r.env.join("policy.toml")).unwrap();
    let args = json!({"to": "ACME", "amount": 1200}).as_object().cloned().unwrap();
    let call = toolgate::policy::Call::new("demo", "send_payment", &args);
    assert_eq!(reloaded.decide(&call.with_identity(Some(identity))).gate, toolgate::policy::Gate::Allow);
    assert_eq!(reloaded.decide(&call).gate, toolgate::policy::Gate::Ask, "not for a program not vouched for");
}

#[test]
fn a_background_toolgate_refuses_at_once_and_never_hangs() {
    let mut r = start_with(POLICY, Place::Background, &[]);
    pay(&mut r.peer, 1);
    let reply = r.peer.response(&json!(1));
    assert!(text(&reply).contains("toolgate is not in the terminal's foreground"), "{reply}");
}

#[test]
fn v_shows_long_arguments_whole() {
    let mut r = start(POLICY);
    let memo = "word ".repeat(60);
    r.peer.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "send_payment", "arguments": {"to": "ACME", "amount": 1, "memo": memo}}}));
    let shown = prompt(&mut r.screen);
    assert!(shown.contains("v shows it whole") && !shown.contains(memo.trim_end()), "{shown}");
    r.screen.type_keys("v\r");
    r.screen.wait_for(memo.trim_end());
    r.screen.type_keys("y\r");
    assert_eq!(text(&r.peer.response(&json!(1))), "paid 1 to ACME");
}

#[test]
fn a_waiting_call_with_a_progress_token_reports_progress() {
    let mut r = start(POLICY);
    r.peer.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "send_payment", "arguments": {"to": "ACME", "amount": 1}, "_meta": {"progressToken": "wait-1"}}}));
    prompt(&mut r.screen);
    let progress = r.peer.recv();
    assert_eq!(progress["method"], "notifications/progress", "{progress}");
    assert_eq!(progress["params"]["progressToken"], "wait-1");
    assert!(progress["params"]["message"].as_str().unwrap().contains("waiting for a person to approve `send_payment`"));
    r.screen.type_keys("y\r");
    assert_eq!(text(&r.peer.response(&json!(1))), "paid 1 to ACME");
    let d = decisions(&mut r);
    assert!(d[0]["waited_ms"].as_u64().is_some(), "{:?}", d[0]);
}

#[test]
fn notify_prints_a_notice_and_does_not_hold_the_call() {
    let mut r = start(&format!(
        "{POLICY}\n[[rules]]\nname = \"writes are noticed\"\ntools = [\"write_file\"]\ntier = \"medium\"\n"
    ));
    let reply =
        r.peer.request(1, "tools/call", json!({"name": "write_file", "arguments": {"path": "a", "content": "b"}}));
    assert_eq!(text(&reply), "wrote 1 bytes to a");
    r.screen.wait_for("toolgate: demo ran `write_file` (rule \"writes are noticed\")");
}

#[test]
fn without_a_controlling_terminal_a_call_is_refused_at_once() {
    let env = Env::new();
    let policy = policy_file(env.path(), POLICY);
    // Peer::toolgate starts toolgate in a new session, with no controlling terminal.
    let mut p = Peer::toolgate(&env, &policy, &env.join("audit.jsonl"), &[toolgate(), "demo-server"]);
    initialize(&mut p, "2025-06-18");
    pay(&mut p, 1);
    let reply = p.response(&json!(1));
    assert!(text(&reply).contains("no controlling terminal"), "{reply}");
}

#[test]
fn the_terminal_is_restored_when_toolgate_is_stopped_during_a_prompt() {
    let mut r = start(POLICY);
    pay(&mut r.peer, 1);
    prompt(&mut r.screen);
    assert!(!r.screen.canonical(), "the prompt reads keys one by one");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(r.peer.child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    assert_eq!(r.peer.wait().code(), Some(143));
    assert!(r.screen.canonical(), "toolgate left the terminal in raw mode");
}

#[test]
fn a_terminal_closed_during_a_prompt_refuses_the_call_and_the_session_goes_on() {
    let Run { mut peer, mut screen, env } = start(POLICY);
    pay(&mut peer, 1);
    prompt(&mut screen);
    screen.hang_up();
    let reply = peer.response(&json!(1));
    assert_eq!(reply["result"]["isError"], true, "{reply}");
    assert!(text(&reply).contains("terminal"), "the model is told why: {reply}");
    // No terminal now: the next call is refused at once, and everything else still flows.
    pay(&mut peer, 2);
    let reply = peer.response(&json!(2));
    assert_eq!(reply["result"]["isError"], true, "{reply}");
    assert_eq!(peer.request(3, "ping", json!({})), json!({"jsonrpc": "2.0", "id": 3, "result": {}}));
    peer.close_stdin();
    assert!(peer.wait().success());
    let decisions = audit_decisions(&env.join("audit.jsonl"));
    assert!(decisions.iter().all(|d| d["verdict"] != "forwarded" || d["tool"] != "send_payment"), "{decisions:?}");
    assert_eq!(decisions[0]["decided_by"], "toolgate");
    assert!(decisions[0]["note"].as_str().unwrap().contains("the terminal was lost"), "{}", decisions[0]);
}
