//! What a person reads is what will run: a tool name, a server name and argument values that
//! carry terminal controls (CR and `ESC[2K`, OSC 0 and OSC 52, `ESC[8m`, the 8-bit CSI U+009B),
//! a right-to-left override and a zero-width space cannot change what the screen shows about a
//! call. The bytes toolgate writes are rendered by a terminal emulator (vt100), and the tests
//! read that screen, as a person would: the escaped form is shown, the sequences are not run,
//! and a name that needed escaping is flagged. The same for `toolgate approve`, the `notify`
//! notice and the log; and `toolgate approve --json` prints exact JSON with no raw controls.

use std::io::Read;
use std::process::Stdio;

use crate::common::approvers::event;
use crate::common::pty::{Place, Screen, Seen, command_on_pty, toolgate_before_on_pty};
use crate::common::*;
use serde_json::{Map, Value, json};

/// Erases its own line and writes another name there, retitles the window, writes the
/// clipboard, hides text, reverses text, and sends an 8-bit CSI and a zero-width space.
const TOOL: &str =
    "send_payment\r\x1b[2Kread_file\x1b]0;pwned\x07\x1b]52;c;cHduZWQ=\x07\x1b[8mhidden\u{202e}fdp.exe\u{9b}2J\u{200b}";
/// The same, as the screen must show it.
const TOOL_SHOWN: &str = "send_payment\\u{d}\\u{1b}[2Kread_file\\u{1b}]0;pwned\\u{7}\\u{1b}]52;c;cHduZWQ=\\u{7}\\u{1b}[8mhidden\\u{202e}fdp.exe\\u{9b}2J\\u{200b}";

const SERVER: &str = "bank\x1b[8m\u{202e}";
const SERVER_SHOWN: &str = "bank\\u{1b}[8m\\u{202e}";

fn arguments() -> Value {
    json!({
        "to": "ACME\r\x1b[2KEvil Corp",
        "memo": "\x1b[8msecret\u{202e}txt.exe\u{9b}31m\u{200b}",
        "amount": 1200,
    })
}

/// The argument rows as the prompt shows them: JSON, each control a `\uXXXX` escape.
const TO_SHOWN: &str = r#""to": "ACME\r\u001b[2KEvil Corp","#;
const MEMO_SHOWN: &str = r#""memo": "\u001b[8msecret\u202etxt.exe\u009b31m\u200b","#;

/// Every call asks a person.
const ASK: &str = "[settings]\ndefault_tier = \"high\"\napproval_timeout = \"30s\"\n";

/// The fake server, listing a tool named [`TOOL`] beside its own.
fn server() -> Vec<String> {
    let script = fake_server();
    vec!["python3".into(), script, "--tool".into(), TOOL.into()]
}

/// `toolgate run --name demo` on a pty, in front of [`server`], initialized.
fn on_pty(env: &Env, policy: &str) -> (Peer, Screen) {
    let policy = policy_file(env.path(), policy);
    let server = server();
    let server: Vec<&str> = server.iter().map(String::as_str).collect();
    let (mut peer, screen) =
        toolgate_before_on_pty(env, &policy, &env.join("audit.jsonl"), Place::Foreground, &[], &server);
    initialize(&mut peer, "2025-06-18");
    (peer, screen)
}

fn call(peer: &mut Peer, id: i64) {
    peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": TOOL, "arguments": arguments()}}));
}

/// Waits for a whole prompt (up to its answer line) and returns the screen as rendered.
fn prompt(screen: &mut Screen) -> Seen {
    screen.wait_for("── toolgate:");
    screen.wait_for("> ");
    screen.seen()
}

/// What the rendered prompt must say about the call, whatever the names and arguments hold.
fn assert_prompt_shows_the_call(seen: &Seen, server_row: &str) {
    let text = seen.text();
    assert_eq!(seen.rows_starting("  server").len(), 1, "{text}");
    assert_eq!(seen.rows_starting("  server")[0], server_row, "{text}");
    assert_eq!(seen.rows_starting("  tool     "), [format!("  tool     {TOOL_SHOWN}")], "{text}");
    assert!(text.contains("the tool's name contains hidden or control characters, shown escaped"), "{text}");
    assert!(seen.rows.iter().any(|r| r.trim_start() == TO_SHOWN), "{text}");
    assert!(seen.rows.iter().any(|r| r.trim_start() == MEMO_SHOWN), "{text}");
    // Nothing the name or the arguments asked of the terminal happened.
    assert!(seen.asked.titles.is_empty(), "the window was retitled: {:?}", seen.asked);
    assert!(seen.asked.clipboard.is_empty(), "the clipboard was written: {:?}", seen.asked);
    assert!(!seen.rows.iter().any(|r| r.starts_with("read_file") || r.starts_with("Evil Corp")), "{text}");
    let answer_row = seen.rows[usize::from(seen.cursor)].trim_end();
    assert!(answer_row.starts_with("answer (") && answer_row.ends_with("s left) >"), "{answer_row:?} in:\n{text}");
}

#[test]
fn a_hostile_tool_name_and_arguments_cannot_rewrite_the_prompt() {
    let env = Env::new();
    let (mut peer, mut screen) = on_pty(&env, ASK);
    call(&mut peer, 1);
    let seen = prompt(&mut screen);
    assert_prompt_shows_the_call(&seen, "  server   demo");
    assert!(!seen.text().contains("the server's name contains"), "a clean name is not flagged:\n{}", seen.text());
    assert!(seen.text().contains(&format!("[a] allow {TOOL_SHOWN} for this session")), "{}", seen.text());
    screen.type_keys("n\r\r");
    let reply = peer.response(&json!(1));
    assert_eq!(reply["result"]["isError"], true, "{reply}");
}

#[test]
fn a_hostile_tool_name_cannot_rewrite_the_notify_notice() {
    let env = Env::new();
    let (mut peer, mut screen) = on_pty(
        &env,
        "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"tell me\"\naction = \"notify\"\nreason = \"told\\u001B[2K\\u202E\"\n",
    );
    call(&mut peer, 1);
    let reply = peer.response(&json!(1));
    assert_ne!(reply["result"]["isError"], true, "{reply}");
    screen.wait_for("toolgate: demo ran");
    screen.wait_for("\n");
    let seen = screen.seen();
    let notices = seen.rows_starting("  toolgate: demo ran");
    assert_eq!(
        notices,
        [format!("  toolgate: demo ran `{TOOL_SHOWN}` (rule \"tell me\"): told\\u{{1b}}[2K\\u{{202e}}")],
        "{}",
        seen.text()
    );
    assert!(seen.asked.titles.is_empty() && seen.asked.clipboard.is_empty(), "{:?}", seen.asked);
}

#[test]
fn the_log_on_stderr_shows_hostile_names_escaped() {
    let env = Env::new();
    // A call that runs with a notice, and one refused (each logs the tool's name).
    let policy = policy_file(
        env.path(),
        "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"n\"\naction = \"notify\"\n\
         [[rules]]\nname = \"d\"\nargs = { \"/deny\" = { exists = true } }\naction = \"deny\"\n",
    );
    let mut cmd = env.toolgate();
    cmd.arg("run").arg("--policy").arg(&policy).arg("--audit").arg(env.join("audit.jsonl"));
    cmd.arg("--name").arg(SERVER).arg("--").args(server()).stderr(Stdio::piped());
    let mut stderr = None;
    let mut peer = Peer::start_with(cmd, |child| stderr = child.stderr.take());
    initialize(&mut peer, "2025-06-18");
    call(&mut peer, 1);
    let reply = peer.response(&json!(1));
    assert_ne!(reply["result"]["isError"], true, "{reply}");
    peer.send(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": TOOL, "arguments": {"deny": 1}}}),
    );
    let refused = peer.response(&json!(2));
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    peer.close_stdin();
    peer.wait();
    let mut log = String::new();
    stderr.unwrap().read_to_string(&mut log).unwrap();
    let notice = log.lines().find(|l| l.contains("notice:")).unwrap_or_else(|| panic!("no notice in:\n{log}"));
    assert!(notice.contains(SERVER_SHOWN) && notice.contains("hidden\\u{202e}fdp.exe\\u{9b}2J\\u{200b}"), "{notice}");
    assert!(log.lines().any(|l| l.contains("refused") && l.contains("fdp.exe")), "{log}");
    let raw: Vec<char> = log.chars().filter(|&c| toolgate::visible::is_hidden(c) && c != '\n').collect();
    assert!(raw.is_empty(), "raw controls {raw:?} in the log:\n{log}");
}

#[test]
fn toolgate_approve_shows_hostile_names_escaped_and_flags_them() {
    let env = Env::new();
    let work = env.path();
    let mut cmd = env.toolgate();
    cmd.arg("approve");
    let (mut approver, mut screen) = command_on_pty(cmd);
    screen.wait_for("appear here");
    let server = server();
    let server: Vec<&str> = server.iter().map(String::as_str).collect();
    let mut proxy = env.proxy_before(work, SERVER, ASK, &[], &server);
    screen.wait_for("connected to toolgate");
    call(&mut proxy, 1);
    let seen = prompt(&mut screen);
    let pid = proxy.child.id();
    assert_prompt_shows_the_call(&seen, &format!("  server   {SERVER_SHOWN} (toolgate {pid})"));
    assert!(seen.text().contains("the server's name contains hidden or control characters, shown escaped"));
    let connected = seen.rows_starting("  toolgate: connected to toolgate");
    assert_eq!(connected, [format!("  toolgate: connected to toolgate {pid} (server {SERVER_SHOWN})")]);
    screen.type_keys("n\r\r");
    let reply = proxy.response(&json!(1));
    assert_eq!(reply["result"]["isError"], true, "{reply}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(approver.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    approver.wait().unwrap();
}

#[test]
fn toolgate_approve_json_is_exact_and_has_no_raw_controls() {
    let env = Env::new();
    let work = env.path();
    let server = server();
    let server: Vec<&str> = server.iter().map(String::as_str).collect();
    let mut proxy = env.proxy_before(work, SERVER, ASK, &[], &server);
    let approver = env.approver();
    event(&approver, "connected");
    call(&mut proxy, 1);
    let line = loop {
        let line = approver.next_line().expect("the approver ended");
        if line.contains("\"offered\"") {
            break line;
        }
    };
    let raw: Vec<char> = line.chars().filter(|&c| toolgate::visible::is_hidden(c)).collect();
    assert!(raw.is_empty(), "raw controls {raw:?} in: {line}");
    for escape in ["\\u001b", "\\u202e", "\\u009b", "\\u200b"] {
        assert!(line.contains(escape), "{escape} missing from: {line}");
    }
    let offered: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(offered["approval"]["tool"], TOOL);
    assert_eq!(offered["approval"]["server"], SERVER);
    let sent: Map<String, Value> = arguments().as_object().unwrap().clone();
    assert_eq!(offered["approval"]["arguments"], Value::Object(sent));
}
