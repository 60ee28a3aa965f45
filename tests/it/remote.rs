//! `toolgate run --url`: a remote server over Streamable HTTP, here one built with the official
//! Python SDK (`tests/python/http_server.py`) on a port of its own. The client side is stdio, as
//! always; the server logs every HTTP request it gets, so the tests see what toolgate sent.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};

use serde_json::{Value, json};

use crate::common::*;

/// The test server, killed when dropped.
pub struct HttpServer {
    child: Child,
    port: u16,
    pub log: PathBuf,
    /// It speaks the HTTP+SSE transport of 2024-11-05 (`--sse`).
    sse: bool,
}

impl HttpServer {
    pub fn start(env: &Env, flags: &[&str]) -> HttpServer {
        let log = env.join(format!("http-{}.jsonl", flags.join("")));
        let script = root().join("tests/python/http_server.py");
        let mut child = env
            .python()
            .arg(script)
            .arg(&log)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // It prints its port once it listens: no waiting on a clock.
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let port = first.trim().parse().unwrap_or_else(|_| panic!("no port from the server: {first:?}"));
        HttpServer { child, port, log, sse: flags.contains(&"--sse") }
    }

    pub fn url(&self) -> String {
        let path = if self.sse { "sse" } else { "mcp" };
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// Every HTTP request the server got, in order.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

const POLICY: &str = r#"
[settings]
default_tier = "low"

approval_timeout = "30s"

[[rules]]
name = "no denied files"
tools = ["write_marker"]
args = { "/path" = { glob = "**/denied*" } }
action = "deny"

[[rules]]
name = "ask about these"
tools = ["write_marker"]
args = { "/path" = { glob = "**/asked*" } }
action = "ask"
"#;

fn toolgate_cmd(env: &Env, server: &HttpServer, extra: &[&str]) -> std::process::Command {
    let policy = policy_file(env.path(), POLICY);
    let mut cmd = env.toolgate();
    cmd.arg("run").arg("--policy").arg(policy).arg("--audit").arg(env.join("audit.jsonl"));
    cmd.arg("--name").arg("remote").arg("--url").arg(server.url()).args(extra);
    cmd
}

fn start(env: &Env, server: &HttpServer) -> Peer {
    Peer::start(toolgate_cmd(env, server, &[]))
}

fn call(peer: &mut Peer, id: i64, tool: &str, arguments: Value) -> Value {
    peer.request(id, "tools/call", json!({"name": tool, "arguments": arguments}))
}

/// Every message left until toolgate's output ends, after the client closed its side.
fn rest(peer: &mut Peer) -> Vec<Value> {
    peer.close_stdin();
    let mut out = Vec::new();
    while let Some(line) = peer.next_line() {
        out.push(serde_json::from_str(&line).unwrap());
    }
    peer.wait();
    out
}

fn answers_to(messages: &[Value], id: i64) -> usize {
    messages.iter().filter(|m| m["id"] == id && m.get("method").is_none()).count()
}

/// The same call straight to the server, with the SDK's own client: the control.
fn call_directly(env: &Env, url: &str, tool: &str, arguments: Value) {
    // The SDK's client takes a URL as Streamable HTTP; the 2024-11-05 transport is its own.
    let server = if url.ends_with("/sse") {
        format!("__import__('mcp.client.sse').client.sse.sse_client({url:?})")
    } else {
        format!("{url:?}")
    };
    let script = format!(
        "import anyio, json, sys\nfrom mcp import Client\nasync def main():\n    async with Client({server}) as c:\n        \
         print(json.dumps((await c.call_tool({tool:?}, json.loads(sys.argv[1]))).model_dump(mode='json')))\n\
         anyio.run(main)\n"
    );
    let out = env.python().arg("-c").arg(script).arg(arguments.to_string()).output().unwrap();
    assert!(out.status.success(), "direct call failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn session_gated(flags: &[&str]) {
    let env = Env::new();
    let server = HttpServer::start(&env, flags);
    let mut peer = start(&env, &server);
    let init = initialize(&mut peer, "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "toolgate-test-http-server", "{init}");
    let listed = peer.request(2, "tools/list", json!({}));
    let names: Vec<&str> =
        listed["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"write_marker") && names.contains(&"echo"), "{listed}");

    let allowed = env.join("allowed.txt");
    let answer = call(&mut peer, 3, "write_marker", json!({"path": allowed}));
    assert_eq!(answer["result"]["content"][0]["text"], "written", "{answer}");
    assert_eq!(std::fs::read_to_string(&allowed).unwrap(), "written");

    let denied = env.join("denied.txt");
    let answer = call(&mut peer, 4, "write_marker", json!({"path": denied}));
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(!denied.exists(), "a denied call must not reach the server");
    let rest = rest(&mut peer);
    assert!(rest.iter().all(|m| m["id"] != 4), "answered once: {rest:?}");
    let posted_calls = server.requests().iter().filter(|r| r["method"] == "tools/call").count();
    assert_eq!(posted_calls, 1, "only the allowed call reached the server: {:?}", server.requests());

    let decisions = audit_decisions(&env.join("audit.jsonl"));
    assert!(decisions.iter().any(|d| d.to_string().contains("no denied files")), "{decisions:?}");

    // The control: the same call straight to the server does write the file.
    call_directly(&env, &server.url(), "write_marker", json!({"path": denied}));
    assert!(denied.exists(), "the control call should write the file");
}

#[test]
fn calls_to_a_remote_server_are_gated_over_sse_streams() {
    session_gated(&[]);
}

#[test]
fn calls_to_a_remote_server_are_gated_over_json_answers() {
    session_gated(&["--json"]);
}

#[test]
fn calls_to_a_server_of_the_2024_11_05_transport_are_gated_over_its_event_stream() {
    session_gated(&["--sse"]);
}

#[test]
fn the_2024_11_05_transport_is_tried_only_after_the_post_fails_and_then_used_for_every_message() {
    let env = Env::new();
    let server = HttpServer::start(&env, &["--sse"]);
    let secret = "s3cret-token-value";
    let mut cmd = toolgate_cmd(&env, &server, &["--header", "X-Test-Token=${TEST_TOKEN}"]);
    cmd.env("TEST_TOKEN", secret);
    let mut peer = Peer::start(cmd);
    initialize(&mut peer, "2024-11-05");
    let echoed = call(&mut peer, 2, "echo", json!({"text": "old transport"}));
    assert_eq!(echoed["result"]["content"][0]["text"], "old transport", "{echoed}");
    let rest = rest(&mut peer);
    assert_eq!(answers_to(&rest, 2), 0, "{rest:?}");
    let requests = server.requests();
    // The POST of `initialize` to the URL (refused: the server has no such route), the event
    // stream, then `initialize` again and every later message to the endpoint it named.
    let http: Vec<(&str, Option<&str>)> =
        requests.iter().map(|r| (r["http"].as_str().unwrap(), r["method"].as_str())).collect();
    assert_eq!(
        http[..4],
        [
            ("POST", Some("initialize")),
            ("GET", None),
            ("POST", Some("initialize")),
            ("POST", Some("notifications/initialized"))
        ],
        "{requests:?}"
    );
    assert!(http[4..].contains(&("POST", Some("tools/call"))), "{requests:?}");
    assert_eq!((requests[0]["path"].as_str(), requests[1]["path"].as_str()), (Some("/sse"), Some("/sse")));
    for request in &requests[2..] {
        assert_eq!(request["path"], "/messages/", "to the endpoint the stream named: {request}");
    }
    for request in &requests {
        assert_eq!(request["token"], secret, "the headers go with every request: {request}");
    }
}

#[test]
fn the_session_id_version_and_headers_reach_the_server_and_no_secret_is_logged() {
    let env = Env::new();
    let server = HttpServer::start(&env, &[]);
    let secret = "s3cret-token-value";
    let mut cmd = toolgate_cmd(&env, &server, &["--header", "X-Test-Token=Bearer ${TEST_TOKEN}"]);
    cmd.env("TEST_TOKEN", secret).env("TOOLGATE_LOG", "trace");
    let (mut peer, stderr) = Peer::start_reading_stderr(cmd);
    initialize(&mut peer, "2025-06-18");
    peer.request(2, "tools/list", json!({}));
    call(&mut peer, 3, "echo", json!({"text": "hi"}));
    rest(&mut peer);
    let logged: Vec<String> = stderr.try_iter().collect();
    assert!(!logged.is_empty());
    assert!(logged.iter().all(|l| !l.contains(secret)), "a header value was logged");

    let requests = server.requests();
    let first = &requests[0];
    assert_eq!((first["http"].as_str(), first["method"].as_str()), (Some("POST"), Some("initialize")));
    assert!(first["session"].is_null() && first["version"].is_null(), "{first}");
    let session = requests[1]["session"].as_str().expect("a session id after initialize").to_owned();
    for later in &requests[1..] {
        assert_eq!(later["session"], session.as_str(), "every later request is in the session: {later}");
        assert_eq!(later["version"], "2025-06-18", "{later}");
    }
    for request in &requests {
        assert_eq!(request["token"], format!("Bearer {secret}"), "{request}");
    }
    assert!(requests.iter().any(|r| r["http"] == "GET"), "the server's own stream is opened: {requests:?}");
    assert_eq!(requests.last().unwrap()["http"], "DELETE", "the session ends with DELETE: {requests:?}");
}

#[test]
fn an_http_error_answers_its_own_request_once_and_the_session_goes_on() {
    let env = Env::new();
    let server = HttpServer::start(&env, &[]);
    let mut peer = start(&env, &server);
    initialize(&mut peer, "2025-06-18");
    peer.request(2, "tools/list", json!({}));
    let failed = call(&mut peer, 3, "explode", json!({}));
    let message = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("HTTP 500") && message.contains("boom"), "{failed}");
    // An HTTP error whose body is the server's own JSON-RPC answer to the request is that answer.
    let refused = call(&mut peer, 5, "refuse", json!({}));
    assert_eq!(refused["error"], json!({"code": -32020, "message": "Header mismatch: test"}), "{refused}");
    let after = call(&mut peer, 4, "echo", json!({"text": "still here"}));
    assert_eq!(after["result"]["content"][0]["text"], "still here", "{after}");
    let rest = rest(&mut peer);
    assert_eq!(answers_to(&rest, 3), 0, "answered once: {rest:?}");
    assert_eq!(answers_to(&rest, 5), 0, "answered once: {rest:?}");
    // The audit log says why each failed call failed.
    let audit = std::fs::read_to_string(env.join("audit.jsonl")).unwrap();
    let errors: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"] == "outcome" && r["outcome"] == "error")
        .map(|r| r["error"].clone())
        .collect();
    assert!(
        errors.iter().any(|e| e["message"].as_str().is_some_and(|m| m.contains("HTTP 500") && m.contains("boom"))),
        "{errors:?}"
    );
    assert!(errors.contains(&json!({"code": -32020, "message": "Header mismatch: test"})), "{errors:?}");
}

#[test]
fn a_server_killed_mid_session_answers_every_request_in_flight_once() {
    killed_mid_session(&[]);
}

#[test]
fn a_server_of_the_2024_11_05_transport_killed_mid_session_answers_every_request_in_flight_once() {
    // Its one event stream carries every answer, and cannot be resumed.
    killed_mid_session(&["--sse"]);
}

fn killed_mid_session(flags: &[&str]) {
    let env = Env::new();
    let mut server = HttpServer::start(&env, flags);
    let mut peer = start(&env, &server);
    initialize(&mut peer, "2025-06-18");
    peer.request(2, "tools/list", json!({}));
    let started: Vec<PathBuf> = (0..3).map(|i| env.join(format!("started-{i}"))).collect();
    for (i, path) in started.iter().enumerate() {
        peer.send_call(10 + i as i64, "slow", json!({"path": path}));
    }
    eventually("every slow call reached the server", || started.iter().all(|p| p.exists()));
    server.kill();
    // Each gets one error, in whatever order the streams broke.
    let mut answered: Vec<i64> = (0..3)
        .map(|_| {
            let answer = peer.recv();
            assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains("remote MCP server")), "{answer}");
            answer["id"].as_i64().unwrap()
        })
        .collect();
    answered.sort();
    assert_eq!(answered, [10, 11, 12]);
    let rest = rest(&mut peer);
    for id in 10..13 {
        assert_eq!(answers_to(&rest, id), 0, "request {id} answered twice: {rest:?}");
    }
}

#[test]
fn an_unreachable_server_gets_a_clear_error_for_each_request() {
    let env = Env::new();
    let mut server = HttpServer::start(&env, &[]);
    server.kill();
    let mut peer = start(&env, &server);
    let answer = peer.request(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot reach the remote MCP server"), "{answer}");
    let rest = rest(&mut peer);
    assert_eq!(answers_to(&rest, 1), 0, "{rest:?}");
}

#[test]
fn header_values_stay_out_of_errors_and_bad_flags_stop_before_anything_runs() {
    let env = Env::new();
    let secret = "s3cret-token-value";
    for (flags, expected) in [
        (vec!["--url", "http://127.0.0.1:9/mcp", "--header", "Authorization: Bearer s3cret-token-value"], "NAME=VALUE"),
        (
            vec!["--url", "http://127.0.0.1:9/mcp", "--header", "Authorization=Bearer ${NO_SUCH_VAR}"],
            "NO_SUCH_VAR is not set",
        ),
        (vec!["--url", "http://u:s3cret-token-value@127.0.0.1:9/mcp"], "user name or password"),
        (vec!["--url", "ftp://127.0.0.1/"], "http:// or https://"),
    ] {
        let out = env.toolgate().arg("run").args(&flags).stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(!stderr.contains(secret), "{flags:?}: {stderr}");
    }
    let both = env.toolgate().args(["run", "--url", "http://127.0.0.1:9/", "--", "true"]).output().unwrap();
    assert_eq!(both.status.code(), Some(2), "--url and a command conflict");
}

/// server-everything in one of its HTTP modes, killed when dropped.
pub struct Everything {
    child: Child,
    port: u16,
    path: &'static str,
}

impl Everything {
    /// In its Streamable HTTP mode.
    pub fn start(env: &Env) -> Everything {
        Everything::start_in(env, "streamableHttp", "listening on port", "mcp")
    }

    /// In `mode`, which says `ready` once it listens, at `path`.
    fn start_in(env: &Env, mode: &str, ready: &str, path: &'static str) -> Everything {
        // It takes its port from PORT: a free one, picked here.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let entry = root().join("tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        assert!(entry.exists(), "run tests/setup.sh first: {} is missing", entry.display());
        let mut child = env
            .command("node")
            .arg(entry)
            .arg(mode)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains(ready) {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "server-everything ended before it listened");
        }
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Everything { child, port, path }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, self.path)
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn server_everything_over_streamable_http_through_toolgate() {
    server_everything("streamableHttp", "mcp", "listening on port");
}

#[test]
fn server_everything_over_the_2024_11_05_transport_through_toolgate() {
    server_everything("sse", "sse", "Server is running on port");
}

/// server-everything in one of its HTTP modes, its `echo` called through toolgate.
fn server_everything(mode: &str, path: &'static str, ready: &str) {
    let env = Env::new();
    let everything = Everything::start_in(&env, mode, ready, path);
    let policy = policy_file(env.path(), "[settings]\ndefault_tier = \"low\"\n");
    let mut cmd = env.toolgate();
    cmd.arg("run").arg("--policy").arg(policy).arg("--audit").arg(env.join("audit.jsonl"));
    cmd.arg("--url").arg(everything.url());
    let mut peer = Peer::start(cmd);
    let init = initialize(&mut peer, "2025-06-18");
    assert!(init["result"]["serverInfo"]["name"].is_string(), "{init}");
    let listed = peer.request(2, "tools/list", json!({}));
    assert!(listed["result"]["tools"].as_array().unwrap().iter().any(|t| t["name"] == "echo"), "{listed}");
    let echoed = call(&mut peer, 3, "echo", json!({"message": "through the gate"}));
    assert_eq!(echoed["result"]["content"][0]["text"], "Echo: through the gate", "{echoed}");
    let rest = rest(&mut peer);
    assert_eq!(answers_to(&rest, 3), 0, "{rest:?}");
}

#[test]
fn an_expired_session_ends_with_one_error_for_every_request_in_flight() {
    let env = Env::new();
    let server = HttpServer::start(&env, &[]);
    let mut peer = start(&env, &server);
    initialize(&mut peer, "2025-06-18");
    peer.request(2, "tools/list", json!({}));
    let started = env.join("started");
    peer.send_call(10, "slow", json!({"path": started}));
    eventually("the slow call reached the server", || started.exists());
    peer.send_call(11, "expire", json!({}));
    let mut answered: Vec<(i64, String)> = (0..2)
        .map(|_| {
            let answer = peer.recv();
            (answer["id"].as_i64().unwrap(), answer["error"]["message"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    answered.sort();
    assert_eq!(answered[0].0, 10);
    assert!(answered[0].1.contains("session expired"), "{answered:?}");
    assert_eq!(answered[1].0, 11);
    assert!(answered[1].1.contains("session expired (HTTP 404)"), "{answered:?}");
    // The session is over: toolgate ends as when a server exits, with status 1.
    let mut rest = Vec::new();
    while let Some(line) = peer.next_line() {
        rest.push(line);
    }
    assert!(rest.iter().all(|l| !l.contains("\"id\":10") && !l.contains("\"id\":11")), "{rest:?}");
    assert_eq!(peer.wait().code(), Some(1));
}

#[test]
fn a_stream_the_server_closes_before_its_answer_is_resumed_with_last_event_id() {
    let env = Env::new();
    let server = HttpServer::start(&env, &["--resumable"]);
    let mut peer = start(&env, &server);
    // The SDK primes a stream with an event id only for 2025-11-25 clients.
    initialize(&mut peer, "2025-11-25");
    peer.request(2, "tools/list", json!({}));
    let answer = call(&mut peer, 3, "polled", json!({"text": "after the cut"}));
    assert_eq!(answer["result"]["content"][0]["text"], "after the cut", "{answer}");
    let rest = rest(&mut peer);
    assert_eq!(answers_to(&rest, 3), 0, "answered once: {rest:?}");
    let requests = server.requests();
    assert!(
        requests.iter().any(|r| r["http"] == "GET" && r["last_event_id"].is_string()),
        "the stream was resumed with Last-Event-ID: {requests:?}"
    );
}

#[test]
fn a_call_asked_about_inside_the_client_runs_on_the_remote_server_only_once_allowed() {
    let env = Env::new();
    let server = HttpServer::start(&env, &[]);
    let mut peer = start(&env, &server);
    initialize_declaring(&mut peer, "2025-06-18", json!({"elicitation": {}}));
    peer.request(2, "tools/list", json!({}));
    let asked = env.join("asked.txt");
    peer.send_call(3, "write_marker", json!({"path": asked}));
    let question = asking::question(&peer);
    assert!(!asked.exists(), "an asked call waits for the answer");
    assert!(server.requests().iter().all(|r| r["method"] != "tools/call"), "nothing reached the server yet");
    asking::answer(&mut peer, &question, asking::accept("allow_once"));
    let answer = peer.response(&json!(3));
    assert_eq!(answer["result"]["content"][0]["text"], "written", "{answer}");
    assert!(asked.exists());
    // The client's answer to toolgate's question is toolgate's: it never reaches the server.
    assert!(
        server.requests().iter().all(|r| r["method"].is_string() || r["http"] != "POST"),
        "{:?}",
        server.requests()
    );
}

#[test]
fn the_python_sdk_client_in_either_mode_talks_through_toolgate_to_the_remote_server() {
    let env = Env::new();
    let server = HttpServer::start(&env, &[]);
    let policy = policy_file(env.path(), POLICY);
    // `auto` probes `server/discover` (2026-07-28) first, gets an error, and falls back to
    // `initialize`, as it would straight to this server.
    let script = "import anyio, os, sys\nfrom mcp import Client, StdioServerParameters\n\
        async def main():\n    tg, policy, audit, url, mode = sys.argv[1:]\n    \
        p = StdioServerParameters(command=tg, args=['run', '--policy', policy, '--audit', audit, '--url', url], env=dict(os.environ))\n    \
        async with Client(p, mode=mode, read_timeout_seconds=30) as c:\n        \
        print((await c.call_tool('echo', {'text': 'hi ' + mode})).content[0].text)\n\
        anyio.run(main)\n";
    for mode in ["legacy", "auto"] {
        let out = env
            .python()
            .arg("-c")
            .arg(script)
            .arg(toolgate())
            .arg(&policy)
            .arg(env.join("audit.jsonl"))
            .arg(server.url())
            .arg(mode)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.trim(), format!("hi {mode}"));
    }
}

/// One session of the Python SDK's client in the 2026-07-28 era (no `initialize`: each request
/// carries its version in `_meta`), straight to `url` or through toolgate: a call, a call whose
/// argument the tool marks `x-mcp-header`, a call cancelled by the client, a call after it.
/// Prints one line per result.
const MODERN_SESSION: &str = "import anyio, os, sys\nfrom mcp import Client, StdioServerParameters\n\
async def main():\n    url, started = sys.argv[1], sys.argv[2]\n    server = url\n    \
    if len(sys.argv) > 3:\n        tg, policy, audit = sys.argv[3:]\n        \
        server = StdioServerParameters(command=tg, args=['run', '--policy', policy, '--audit', audit, '--url', url], env=dict(os.environ))\n    \
    async with Client(server, mode='2026-07-28', read_timeout_seconds=30) as c:\n        \
        print((await c.call_tool('echo', {'text': 'modern'})).content[0].text)\n        \
        print((await c.call_tool('regional', {'region': 'eu-west 1 \u{e9}', 'text': 'hi'})).content[0].text)\n        \
        with anyio.move_on_after(60) as scope:\n            \
            async with anyio.create_task_group() as tg_:\n                \
                async def slow():\n                    await c.call_tool('slow', {'path': started})\n                \
                tg_.start_soon(slow)\n                \
                while not os.path.exists(started):\n                    await anyio.sleep(0.01)\n                \
                tg_.cancel_scope.cancel()\n        \
        print('cancelled' if not scope.cancelled_caught else 'not cancelled')\n        \
        print((await c.call_tool('echo', {'text': 'after'})).content[0].text)\n\
anyio.run(main)\n";

#[test]
fn a_2026_07_28_session_carries_its_request_headers_and_cancels_by_closing_the_stream() {
    let env = Env::new();
    let server = HttpServer::start(&env, &[]);
    let policy = policy_file(env.path(), POLICY);
    let session = |started: &str, through: bool| {
        let mut cmd = env.python();
        cmd.arg("-c").arg(MODERN_SESSION).arg(server.url()).arg(env.join(started));
        if through {
            cmd.arg(toolgate()).arg(&policy).arg(env.join("audit.jsonl"));
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "through toolgate: {through}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    // The control: the same session straight to the server.
    let direct = session("started-direct", false);
    let sent_directly = server.requests().len();
    let through = session("started-through", true);
    assert_eq!(direct, "modern\neu-west 1 \u{e9}: hi\ncancelled\nafter\n");
    assert_eq!(through, direct, "the same session through toolgate");

    let requests = &server.requests()[sent_directly..];
    assert!(requests.iter().all(|r| r["session"].is_null()), "no sessions in this era: {requests:?}");
    assert!(requests.iter().all(|r| r["http"] == "POST"), "no GET stream, no DELETE: {requests:?}");
    for request in requests {
        assert_eq!(request["version"], "2026-07-28", "{request}");
        assert_eq!(request["mcp_method"], request["method"], "{request}");
    }
    let regional = requests.iter().find(|r| r["tool"] == "regional").expect("the call reached the server");
    assert_eq!(regional["mcp_name"], "regional");
    // Not plain ASCII, with a space at the end: base64, as the spec says.
    assert_eq!(regional["mcp_param_region"], "=?base64?ZXUtd2VzdCAxIMOp?=", "{regional}");
    assert!(
        !requests.iter().any(|r| r["method"] == "notifications/cancelled"),
        "over HTTP this era cancels by closing the stream, not by a notification: {requests:?}"
    );
}
