//! Against the official npm servers: a whole server-everything session gives the same results
//! with and without toolgate, and every smuggling shape fails against server-filesystem, whose
//! write_file the policy denies, though most of them run when sent to it directly.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::{Value, json};

/// A scripted client that answers the server's own requests as a real client would.
struct Client {
    peer: Peer,
    /// Every message received, in order, except answers to our own requests.
    seen: Vec<Value>,
}

impl Client {
    fn new(peer: Peer) -> Self {
        Client { peer, seen: Vec::new() }
    }

    /// Reads one message, answering server requests (roots, sampling, elicitation).
    fn pump(&mut self) -> Value {
        let msg = self.peer.recv();
        if let (Some(method), Some(id)) = (msg["method"].as_str(), msg.get("id")) {
            let result = match method {
                "roots/list" => json!({"roots": [{"uri": "file:///tmp", "name": "tmp"}]}),
                "sampling/createMessage" => {
                    json!({"role": "assistant", "content": {"type": "text", "text": "a fake completion"}, "model": "fake-model", "stopReason": "endTurn"})
                }
                "elicitation/create" => json!({"action": "decline"}),
                _ => json!({}),
            };
            self.peer.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
        }
        msg
    }

    fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.until_response(id)
    }

    fn until_response(&mut self, id: i64) -> Value {
        loop {
            let msg = self.pump();
            if msg["id"] == id && msg.get("method").is_none() {
                return msg;
            }
            self.seen.push(msg);
        }
    }
}

/// One whole session; returns what the client saw, in a comparable form.
fn everything_session(peer: Peer) -> (Vec<Value>, String) {
    let mut c = Client::new(peer);
    let caps = json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}});
    let init = c.request(
        0,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": caps, "clientInfo": {"name": "t", "version": "0"}}),
    );
    c.peer.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    // The server asks for roots (with id 0, the same as our initialize) a moment after start.
    while !c.seen.iter().any(|m| m["method"] == "roots/list") {
        let msg = c.pump();
        c.seen.push(msg);
    }
    let mut out = vec![init];
    c.peer.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let list_line = loop {
        let line = c.peer.next_line().unwrap();
        if line.contains("\"id\":1") && line.contains("\"tools\"") {
            break line;
        }
    };
    out.push(serde_json::from_str(&list_line).unwrap());
    let progress = json!({"name": "trigger-long-running-operation", "arguments": {"duration": 1, "steps": 2}, "_meta": {"progressToken": "p-1"}});
    out.push(c.request(2, "tools/call", progress));
    out.push(c.request(
        3,
        "tools/call",
        json!({"name": "trigger-sampling-request", "arguments": {"prompt": "hi", "maxTokens": 5}}),
    ));
    out.push(c.request(4, "tools/call", json!({"name": "trigger-elicitation-request", "arguments": {}})));
    out.push(c.request(5, "tools/call", json!({"name": "get-sum", "arguments": {"a": 2, "b": 40}})));
    out.push(c.request(6, "vendor/never-heard-of", json!({"x": 1})));
    // Cancel a slow call once it has reported progress; the session goes on.
    let slow = json!({"name": "trigger-long-running-operation", "arguments": {"duration": 30, "steps": 30}, "_meta": {"progressToken": "p-2"}});
    c.peer.send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": slow}));
    loop {
        let msg = c.pump();
        let started = msg["params"]["progressToken"] == "p-2";
        c.seen.push(msg);
        if started {
            break;
        }
    }
    c.peer.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7, "reason": "changed my mind"}}));
    out.push(c.request(8, "ping", json!({})));
    // What arrived besides answers: progress for our tokens, and the server's own requests.
    let mut extras: Vec<Value> = c
        .seen
        .iter()
        .filter(|m| {
            let method = m["method"].as_str().unwrap_or_default();
            // Logging and list-changed notifications depend on timing, not on the proxy.
            let timing = matches!(
                method,
                "notifications/message" | "notifications/tools/list_changed" | "notifications/resources/list_changed"
            );
            let cancelled_progress = method == "notifications/progress" && m["params"]["progressToken"] == "p-2";
            !timing && !cancelled_progress
        })
        .cloned()
        .collect();
    extras.sort_by_key(|m| m.to_string());
    out.extend(extras);
    (out, list_line)
}

#[test]
fn a_whole_server_everything_session_is_the_same_through_toolgate() {
    let server = node_server("mcp-server-everything").display().to_string();
    let env = Env::new();
    let mut direct = env.command(&server);
    direct.arg("stdio");
    let (direct, direct_list) = everything_session(Peer::start(direct));
    let policy = policy_file(env.path(), "[settings]\ndefault_tier = \"low\"\n");
    let (through, through_list) =
        everything_session(Peer::toolgate(&env, &policy, &env.join("audit.jsonl"), &[&server, "stdio"]));
    assert_eq!(direct, through);
    assert_eq!(direct_list, through_list, "tools/list must arrive byte for byte");
    // The session really exercised what it claims.
    let text = |i: usize| through[i]["result"]["content"][0]["text"].as_str().unwrap_or_default().to_owned();
    assert!(text(3).contains("a fake completion"), "sampling: {}", text(3));
    assert!(text(4).contains("decline"), "elicitation: {}", text(4));
    assert_eq!(through[6]["error"]["code"], -32601);
    assert!(through.iter().any(|m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == "p-1"));
    assert!(through.iter().any(|m| m["method"] == "sampling/createMessage"));
    assert!(through.iter().any(|m| m["method"] == "elicitation/create"));
    assert!(through.iter().any(|m| m["method"] == "roots/list" && m["id"] == 0));
}

/// Each shape tries to write `NAME` in the served folder; the policy denies write_file.
fn shapes(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let p = |name: &str| dir.join(name).display().to_string();
    let call =
        |name: &str| format!(r#""params":{{"name":"write_file","arguments":{{"path":"{}","content":"x"}}}}"#, p(name));
    let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
    vec![
        ("dup_method", format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools/list","method":"tools/call",{}}}"#, call("dup_method")).into_bytes()),
        ("dup_name", format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"read_text_file","name":"write_file","arguments":{{"path":"{}","content":"x"}}}}}}"#, p("dup_name")).into_bytes()),
        ("dup_arg", format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"write_file","arguments":{{"path":"{}","path":"{}","content":"x"}}}}}}"#, p("elsewhere"), p("dup_arg")).into_bytes()),
        ("escaped_method", format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools\u002fcall",{}}}"#, call("escaped_method")).into_bytes()),
        ("escaped_name", format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"write\u005ffile","arguments":{{"path":"{}","content":"x"}}}}}}"#, p("escaped_name")).into_bytes()),
        ("float_id", format!(r#"{{"jsonrpc":"2.0","id":19.0,"method":"tools/call",{}}}"#, call("float_id")).into_bytes()),
        ("batch", format!(r#"[{{"jsonrpc":"2.0","id":5,"method":"tools/call",{}}}]"#, call("batch")).into_bytes()),
        ("no_id", format!(r#"{{"jsonrpc":"2.0","method":"tools/call",{}}}"#, call("no_id")).into_bytes()),
        ("lone_cr", format!("{{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}}\r{{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",{}}}", call("lone_cr")).into_bytes()),
        ("bom", [b"\xEF\xBB\xBF".to_vec(), format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call",{}}}"#, call("bom")).into_bytes()].concat()),
        ("bad_utf8", format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"write_file","arguments":{{"path":"{}","content":"XX"}}}}}}"#, p("bad_utf8")).replace("XX", "\u{1}").into_bytes().into_iter().map(|b| if b == 1 { 0xFF } else { b }).collect()),
        ("trailing", format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call",{}}} {{"x":1}}"#, call("trailing")).into_bytes()),
        ("too_deep", format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"write_file","arguments":{{"path":"{}","content":"x","d":{deep}}}}}}}"#, p("too_deep")).into_bytes()),
    ]
}

/// A user, and an empty folder of theirs for the filesystem server to serve.
fn served() -> (Env, PathBuf) {
    let env = Env::new();
    let served = env.join("served");
    std::fs::create_dir(&served).unwrap();
    let served = served.canonicalize().unwrap();
    (env, served)
}

/// The filesystem server serving `dir`, through toolgate or directly.
fn start_filesystem(env: &Env, dir: &Path, through_toolgate: bool) -> Peer {
    let server = node_server("mcp-server-filesystem").display().to_string();
    let served = dir.display().to_string();
    let mut peer = if through_toolgate {
        let policy = policy_file(
            env.path(),
            "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"no writes\"\ntools = [\"write_file\", \"edit_file\", \"move_file\", \"create_directory\"]\naction = \"deny\"\nreason = \"read-only here\"\n",
        );
        Peer::toolgate(env, &policy, &env.join("audit.jsonl"), &[&server, &served])
    } else {
        let mut cmd = env.command(&server);
        cmd.arg(&served);
        Peer::start(cmd)
    };
    initialize(&mut peer, "2025-06-18");
    peer
}

#[test]
fn every_smuggling_shape_fails_through_toolgate_against_server_filesystem() {
    let (env, served) = served();
    let mut peer = start_filesystem(&env, &served, true);
    for (i, (name, mut bytes)) in shapes(&served).into_iter().enumerate() {
        bytes.push(b'\n');
        peer.send_raw(&bytes);
        // Prove the session is alive (and that the shape was dealt with before this answer).
        let ping = 1000 + i as i64;
        let pong = peer.request(ping, "ping", json!({}));
        assert_eq!(pong["result"], json!({}), "{name}");
        assert!(!served.join(name).exists(), "{name} wrote through toolgate");
    }
    // A plain denied call is refused with the rule's reason, and reads still work.
    let denied = peer.request(1, "tools/call", json!({"name": "write_file", "arguments": {"path": served.join("plain").display().to_string(), "content": "x"}}));
    assert!(denied["result"]["content"][0]["text"].as_str().unwrap().contains("read-only here"));
    let listed = peer.request(
        2,
        "tools/call",
        json!({"name": "list_directory", "arguments": {"path": served.display().to_string()}}),
    );
    assert_eq!(listed["result"]["isError"], json!(null), "{listed}");
    peer.close_stdin();
    peer.wait();
    assert_eq!(std::fs::read_dir(&served).unwrap().count(), 0, "nothing may have been written");
}

#[test]
fn the_shapes_toolgate_refuses_do_run_when_sent_to_the_server_directly() {
    // Without toolgate, the official TS SDK executes these (measured: duplicate keys are
    // last-wins, escapes decode, and 19.0 is read as 19). The batch, id-less, lone-CR, BOM,
    // bad-UTF-8, trailing-data and deep shapes the SDK rejects on its own; toolgate refuses
    // them anyway, since a Python server splits on a lone CR and other servers differ.
    let (env, served) = served();
    let mut peer = start_filesystem(&env, &served, false);
    let dangerous = ["dup_method", "dup_name", "dup_arg", "escaped_method", "escaped_name", "float_id"];
    for (name, mut bytes) in shapes(&served).into_iter().filter(|(n, _)| dangerous.contains(n)) {
        bytes.push(b'\n');
        peer.send_raw(&bytes);
        let answer = peer.recv();
        assert!(served.join(name).exists(), "{name} did not run directly: {answer}");
    }
}

#[test]
fn a_denied_call_gets_the_rules_reason_as_a_tool_error() {
    let (env, served) = served();
    let mut peer = start_filesystem(&env, &served, true);
    let reply = peer.request(
        3,
        "tools/call",
        json!({"name": "write_file", "arguments": {"path": served.join("a").display().to_string(), "content": "x"}}),
    );
    assert_eq!(
        reply,
        json!({"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": "toolgate refused this call to `write_file`: read-only here (rule \"no writes\"). The call was not run."}], "isError": true}})
    );
}
