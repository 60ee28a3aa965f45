//! A remote server reached straight over Streamable HTTP and through `toolgate run --url` over
//! stdio gives the same session. The official TypeScript SDK client
//! (`tests/node/session_client.mjs`) plays one scripted session both ways against each real
//! server (the Python SDK's, `tests/python/http_server.py`; server-everything in its
//! `streamableHttp` mode) and the two transcripts must be equal: tools, progress, sampling,
//! elicitation, a request the server starts on its GET stream, a cancelled call. And toolgate's
//! deny, ask and hold rules treat one tool served remotely exactly as the same tool served
//! locally over stdio: the client gets the same answers and questions, the audit log the same
//! records.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;
use crate::remote::{Everything, HttpServer};

/// The transcript of `session_client.mjs` playing `plan` over `transport` (`http URL` or
/// `stdio COMMAND ARGS...`).
fn transcript(env: &Env, plan: &str, transport: &[&str], marker: &Path) -> Vec<Value> {
    let script = root().join("tests/node/session_client.mjs");
    let out = env.command("node").arg(script).arg(plan).args(transport).env("MARKER", marker).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{plan} over {}: {}\n{stdout}", transport[0], String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not a transcript ({e}): {stdout}"))
}

/// The session through `toolgate run --url URL` over stdio.
fn gated(env: &Env, plan: &str, url: &str, marker: &Path) -> Vec<Value> {
    let policy = policy_file(env.path(), "[settings]\ndefault_tier = \"low\"\n");
    let (policy, audit) = (policy.display().to_string(), env.join("audit.jsonl").display().to_string());
    transcript(
        env,
        plan,
        &["stdio", toolgate(), "run", "--policy", &policy, "--audit", &audit, "--name", "remote", "--url", url],
        marker,
    )
}

fn step<'a>(transcript: &'a [Value], name: &str) -> &'a Value {
    transcript.iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("no step {name:?}: {transcript:?}"))
}

fn got<'a>(step: &'a Value, method: &str) -> Vec<&'a Value> {
    step["messages"].as_array().unwrap().iter().filter_map(|m| m.get("got")).filter(|m| m["method"] == method).collect()
}

fn sent<'a>(step: &'a Value, method: &str) -> Vec<&'a Value> {
    step["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.get("sent"))
        .filter(|m| m["method"] == method)
        .collect()
}

fn text(step: &Value) -> String {
    let content = step["outcome"]["result"]["content"].as_array().cloned().unwrap_or_default();
    content.iter().filter_map(|c| c["text"].as_str()).collect::<Vec<_>>().join("\n")
}

/// What each session must hold, so that two empty or broken transcripts cannot pass as equal.
/// `answers_cancelled`: the server answers a call the client cancelled (the Python SDK does, with
/// the error -32800, though MCP says it should not).
fn check_session(transcript: &[Value], plain: &str, answers_cancelled: bool) {
    let names: Vec<&str> = transcript.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "initialize",
            "tools/list",
            "a plain call",
            "a call with progress",
            "a call that asks for a sampling",
            "a call that asks for an elicitation",
            "a request the server starts outside any call",
            "a call the client cancels",
            "a ping after it",
        ]
    );
    assert!(step(transcript, "tools/list")["outcome"]["result"]["tools"].as_array().is_some_and(|t| t.len() > 3));
    assert!(text(step(transcript, "a plain call")).contains(plain), "{transcript:?}");
    let progress = step(transcript, "a call with progress");
    assert_eq!(progress["progress"].as_array().map(Vec::len), Some(3), "{progress}");
    assert_eq!(got(progress, "notifications/progress").len(), 3, "{progress}");
    let sampling = step(transcript, "a call that asks for a sampling");
    assert_eq!(got(sampling, "sampling/createMessage").len(), 1, "{sampling}");
    assert!(text(sampling).contains("a summary of:"), "the server got the client's sampling: {sampling}");
    let elicitation = step(transcript, "a call that asks for an elicitation");
    assert_eq!(got(elicitation, "elicitation/create").len(), 1, "{elicitation}");
    assert!(text(elicitation).contains("Ada Lovelace"), "the server got the client's answer: {elicitation}");
    let started = step(transcript, "a request the server starts outside any call");
    assert_eq!(got(started, "roots/list").len(), 1, "{started}");
    assert_eq!(got(started, "notifications/message").len(), 1, "{started}");

    let cancelled = step(transcript, "a call the client cancels");
    assert!(cancelled["outcome"]["error"].as_str().is_some_and(|e| e.contains("the client gave up")), "{cancelled}");
    let call = sent(cancelled, "tools/call")[0]["id"].clone();
    assert_eq!(sent(cancelled, "notifications/cancelled")[0]["params"]["requestId"], call, "{cancelled}");
    let messages = || transcript.iter().flat_map(|s| s["messages"].as_array().unwrap());
    let answers: Vec<&Value> =
        messages().filter_map(|m| m.get("got")).filter(|m| m.get("method").is_none() && m["id"] == call).collect();
    let errors: Vec<&Value> = messages().filter_map(|m| m.get("client_error")).collect();
    if answers_cancelled {
        let late = json!({"jsonrpc": "2.0", "id": call, "error": {"code": -32800, "message": "Request cancelled"}});
        assert_eq!(answers, [&late], "{transcript:?}");
        assert!(errors.len() == 1 && errors[0].to_string().contains("unknown message ID"), "{errors:?}");
        assert!(cancelled["messages"].to_string().contains("-32800"), "the late answer is in its step: {cancelled}");
    } else {
        assert!(answers.is_empty(), "no answer to the cancelled call: {transcript:?}");
        assert!(errors.is_empty(), "the SDK found nothing wrong: {transcript:?}");
    }
    assert_eq!(step(transcript, "a ping after it")["outcome"], json!({"result": {}}));
}

fn assert_same(direct: &[Value], gated: &[Value]) {
    for (d, g) in direct.iter().zip(gated) {
        assert_eq!(d, g, "step {} differs: straight over HTTP, then through toolgate", d["step"]);
    }
    assert_eq!(direct.len(), gated.len());
}

#[test]
fn the_python_sdk_server_gives_the_typescript_client_the_same_session_through_toolgate() {
    let env = Env::new();
    let server = HttpServer::start(&env, &[]);
    let marker = env.join("marker.txt");
    let roots = server.log.with_extension("jsonl.roots");
    let direct = transcript(&env, "python", &["http", &server.url()], &marker);
    check_session(&direct, "written", true);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "written");
    assert_eq!(std::fs::read_to_string(&roots).unwrap(), "file:///toolgate-session/root");
    std::fs::remove_file(&marker).unwrap();
    std::fs::remove_file(&roots).unwrap();
    let gets_direct = server.requests().iter().filter(|r| r["http"] == "GET").count();
    assert!(gets_direct > 0, "the client opened the GET stream");

    let gated = gated(&env, "python", &server.url(), &marker);
    check_session(&gated, "written", true);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "written", "the call through toolgate wrote it again");
    assert_eq!(std::fs::read_to_string(&roots).unwrap(), "file:///toolgate-session/root");
    assert!(server.requests().iter().filter(|r| r["http"] == "GET").count() > gets_direct, "toolgate opened it too");
    assert_same(&direct, &gated);
}

#[test]
fn server_everything_gives_the_typescript_client_the_same_session_through_toolgate() {
    let env = Env::new();
    let everything = Everything::start(&env);
    let direct = transcript(&env, "everything", &["http", &everything.url()], &env.join("unused"));
    let gated = gated(&env, "everything", &everything.url(), &env.join("unused"));
    check_session(&direct, "Echo: through the gate", false);
    check_session(&gated, "Echo: through the gate", false);
    // It asked for the roots on its own, 350 ms after the session began, as well as when told.
    for transcript in [&direct, &gated] {
        assert_eq!(got(step(transcript, "initialize"), "roots/list").len(), 1, "{transcript:?}");
    }
    assert_same(&direct, &gated);
}

const RULES: &str = r#"
[settings]
default_tier = "low"
approval_timeout = "30s"

[[rules]]
name = "no denied files"
tools = ["write_marker"]
args = { "/path" = { glob = "**/denied*" } }
action = "deny"
reason = "denied files stay unwritten"

[[rules]]
name = "ask about these"
tools = ["write_marker"]
args = { "/path" = { glob = "**/asked*" } }
action = "ask"

[[rules]]
name = "these wait"
tools = ["write_marker"]
args = { "/path" = { glob = "**/held*" } }
action = "hold"
hold = "10m"
"#;

/// One session through toolgate under [`RULES`], to `server` (the arguments after `run`): a
/// denied call, an asked call allowed inside the client, a held call run at once inside the
/// client. What the client got (toolgate's questions and the three answers), and the audit log,
/// each normalised for what is not the rule's doing (times, the session, the hash chain, the
/// test's folder). Each session has an [`Env`] of its own: in one, the second server under the
/// same name would be noted as a different program from the first (trust is bound to it).
fn ruled_session(env: &Env, server: &[&str]) -> (Value, Value) {
    let files = ["denied.txt", "asked.txt", "held.txt"].map(|f| env.join(f));
    for f in &files {
        let _ = std::fs::remove_file(f);
    }
    let audit = env.join("rules-audit.jsonl");
    let _ = std::fs::remove_file(&audit);
    let mut cmd = env.toolgate();
    cmd.arg("run").arg("--policy").arg(policy_file(env.path(), RULES)).arg("--audit").arg(&audit);
    cmd.arg("--name").arg("notes").args(server);
    let mut peer = Peer::start(cmd);
    initialize_declaring(&mut peer, "2025-11-25", json!({"elicitation": {}}));
    peer.request(2, "tools/list", json!({}));
    let mut seen = Vec::new();
    seen.push(peer.request(3, "tools/call", json!({"name": "write_marker", "arguments": {"path": files[0]}})));
    for (id, file, decision) in [(4, &files[1], "allow_once"), (5, &files[2], "run_now")] {
        peer.send_call(id, "write_marker", json!({"path": file}));
        let question = asking::question(&peer);
        assert!(!file.exists(), "a call waits for its answer");
        asking::answer(&mut peer, &question, asking::accept(decision));
        seen.push(without_token(question));
        seen.push(peer.response(&json!(id)));
    }
    peer.close_stdin();
    while let Some(line) = peer.next_line() {
        seen.push(serde_json::from_str(&line).unwrap());
    }
    peer.wait();
    assert!(!files[0].exists(), "the denied call never ran");
    assert!(files[1].exists() && files[2].exists(), "the allowed calls ran");
    let records = audit_records(&audit)
        .into_iter()
        .map(|mut r| {
            for varying in ["prev", "ts", "session", "ms", "waited_ms"] {
                r.as_object_mut().unwrap().remove(varying);
            }
            r
        })
        .collect();
    let folder = env.path().display().to_string();
    let normalised = |v: Vec<Value>| serde_json::from_str(&json!(v).to_string().replace(&folder, "ENV")).unwrap();
    (normalised(seen), normalised(records))
}

/// toolgate's own request ids (`toolgate-HEX-N`) carry a token that differs from run to run.
fn without_token(mut question: Value) -> Value {
    let id = question["id"].as_str().expect("toolgate's question has a string id").to_owned();
    let (prefix, rest) = id.split_once('-').unwrap();
    let (_token, n) = rest.split_once('-').unwrap();
    question["id"] = json!(format!("{prefix}-TOKEN-{n}"));
    question
}

#[test]
fn deny_ask_and_hold_treat_a_remote_tool_as_the_same_tool_served_locally() {
    let (local, remote) = (Env::new(), Env::new());
    let server = HttpServer::start(&remote, &[]);
    let script = root().join("tests/python/http_server.py").display().to_string();
    let log = local.join("stdio-log").display().to_string();
    let (local_seen, local_audit) =
        ruled_session(&local, &["--", python().to_str().unwrap(), &script, &log, "--stdio"]);
    let (remote_seen, remote_audit) = ruled_session(&remote, &["--url", &server.url()]);
    let (remote_seen, remote_audit) = (remote_seen.as_array().unwrap(), remote_audit.as_array().unwrap());
    let (local_seen, local_audit) = (local_seen.as_array().unwrap(), local_audit.as_array().unwrap());

    assert_eq!(local_seen.len(), 5, "{local_seen:?}");
    let refused = &local_seen[0];
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(refused.to_string().contains("denied files stay unwritten"), "{refused}");
    assert_eq!(local_seen[2]["result"]["content"][0]["text"], "written", "{local_seen:?}");
    assert_eq!(local_seen[4]["result"]["content"][0]["text"], "written", "{local_seen:?}");
    assert_eq!(local_seen, remote_seen, "the client got the same, locally and remotely");

    let decisions: Vec<(&str, &str)> = local_audit
        .iter()
        .filter(|r| r["event"] == "decision")
        .map(|r| (r["verdict"].as_str().unwrap(), r["decided_by"].as_str().unwrap()))
        .collect();
    assert_eq!(decisions, [("refused", "policy"), ("forwarded", "human"), ("forwarded", "human")], "{local_audit:?}");
    assert_eq!(local_audit, remote_audit, "the audit log says the same, locally and remotely");
    let posted: Vec<Value> =
        server.requests().iter().filter(|r| r["method"] == "tools/call").map(|r| r["tool"].clone()).collect();
    assert_eq!(posted, ["write_marker", "write_marker"], "only the allowed calls reached the remote server");
}
