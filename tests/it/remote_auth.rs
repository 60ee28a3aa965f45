//! `run --url` and `toolgate login` against a remote server that requires OAuth: the Python
//! SDK's own authorization server and resource server (`tests/python/oauth_server.py`). The
//! browser is `tests/python/browser.py`, named by `$BROWSER`: it follows the authorization URL
//! to toolgate's loopback redirect, as a person's browser would once they approved.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::common::*;

struct OAuthServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl OAuthServer {
    fn start(env: &Env) -> OAuthServer {
        let log = env.join("oauth-server.jsonl");
        let mut child = env
            .python()
            .arg(root().join("tests/python/oauth_server.py"))
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let port = first.trim().parse().unwrap_or_else(|_| panic!("no port from the server: {first:?}"));
        OAuthServer { child, port, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn token_requests(&self, grant: &str) -> Vec<Value> {
        self.requests().into_iter().filter(|r| r["path"] == "/token" && r["grant_type"] == grant).collect()
    }

    /// `expire` (access tokens forgotten) or `revoke` (refresh tokens too).
    fn control(&self, env: &Env, what: &str) {
        let script = format!(
            "import urllib.request\nurllib.request.urlopen(urllib.request.Request('http://127.0.0.1:{}/control/{what}', method='POST'))",
            self.port
        );
        let out = env.python().arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$BROWSER` for the test browser, counting its runs in `browser.log`.
fn browser(env: &Env) -> String {
    format!(
        "{} {} {}",
        python().display(),
        root().join("tests/python/browser.py").display(),
        env.join("browser.log").display()
    )
}

fn browser_runs(env: &Env) -> usize {
    std::fs::read_to_string(env.join("browser.log")).unwrap_or_default().lines().count()
}

/// No browser: `$BROWSER` names nothing and `PATH` has no opener in it.
fn no_browser(env: &Env, cmd: &mut Command) {
    let empty = env.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    cmd.env("BROWSER", "/nonexistent/browser").env("PATH", empty);
}

fn run_cmd(env: &Env, server: &OAuthServer) -> Command {
    let policy = policy_file(env.path(), "[settings]\ndefault_tier = \"low\"\n");
    let mut cmd = env.toolgate();
    cmd.arg("run").arg("--policy").arg(policy).arg("--audit").arg(env.join("audit.jsonl"));
    cmd.arg("--name").arg("remote").arg("--url").arg(server.url());
    cmd.env("TOOLGATE_LOG", "trace");
    no_terminal(&mut cmd);
    cmd
}

fn tokens_file(env: &Env) -> PathBuf {
    let folder = env.state().join("toolgate/oauth");
    let files: Vec<PathBuf> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "one tokens file, no temporary left: {files:?}");
    files[0].clone()
}

/// The tokens in the file now.
fn tokens(env: &Env) -> Vec<String> {
    let stored: Value = serde_json::from_slice(&std::fs::read(tokens_file(env)).unwrap()).unwrap();
    ["access_token", "refresh_token"].iter().filter_map(|k| stored[k].as_str().map(str::to_owned)).collect()
}

fn call_marker(peer: &mut Peer, id: i64, marker: &std::path::Path) -> Value {
    peer.request(id, "tools/call", json!({"name": "write_marker", "arguments": {"path": marker}}))
}

fn marker_lines(marker: &std::path::Path) -> usize {
    std::fs::read_to_string(marker).unwrap_or_default().lines().count()
}

#[test]
fn a_sign_in_through_the_browser_is_refreshed_then_done_again_after_revocation_and_no_token_is_shown() {
    let env = Env::new();
    let server = OAuthServer::start(&env);
    let marker = env.join("marker");
    let mut cmd = run_cmd(&env, &server);
    cmd.env("BROWSER", browser(&env));
    let (mut peer, stderr) = Peer::start_reading_stderr(cmd);

    // The first request meets 401: discovery, registration and the browser sign-in happen
    // while it waits; then it is sent again with the token.
    let init = initialize(&mut peer, "2025-11-25");
    assert!(init.get("result").is_some(), "{init}");
    let first = call_marker(&mut peer, 2, &marker);
    assert_eq!(first["result"]["isError"], false, "{first}");
    assert_eq!(marker_lines(&marker), 1);
    assert_eq!(browser_runs(&env), 1);
    let requests = server.requests();
    assert_eq!(requests.iter().filter(|r| r["path"] == "/register").count(), 1, "{requests:?}");
    let codes = server.token_requests("authorization_code");
    assert_eq!(codes.len(), 1);
    assert_eq!(codes[0]["resource"], server.url(), "the resource parameter names the server");
    let tokens_file = tokens_file(&env);
    assert_eq!(std::fs::metadata(&tokens_file).unwrap().permissions().mode() & 0o777, 0o600);
    let mut seen = tokens(&env);

    // An access token the server forgot: refreshed, no browser.
    server.control(&env, "expire");
    let second = call_marker(&mut peer, 3, &marker);
    assert_eq!(second["result"]["isError"], false, "{second}");
    assert_eq!(marker_lines(&marker), 2);
    assert_eq!(browser_runs(&env), 1, "a refresh needs no browser");
    let refreshes = server.token_requests("refresh_token");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0]["resource"], server.url());
    seen.extend(tokens(&env));

    // Every token revoked: the refresh fails, and the person signs in again.
    server.control(&env, "revoke");
    let third = call_marker(&mut peer, 4, &marker);
    assert_eq!(third["result"]["isError"], false, "{third}");
    assert_eq!(marker_lines(&marker), 3);
    assert_eq!(browser_runs(&env), 2, "a failed refresh leads to signing in again");
    assert_eq!(server.token_requests("refresh_token").len(), 2);
    assert_eq!(server.requests().iter().filter(|r| r["path"] == "/register").count(), 1, "the client is reused");
    seen.extend(tokens(&env));

    peer.close_stdin();
    let mut rest = Vec::new();
    while let Some(line) = peer.next_line() {
        rest.push(line);
    }
    peer.wait();
    assert!(rest.iter().all(|l| !l.contains("\"id\"")), "no request is answered twice: {rest:?}");

    let logged: Vec<String> = stderr.try_iter().collect();
    assert!(logged.iter().any(|l| l.contains("refreshed the access token")), "{logged:?}");
    let audit = std::fs::read_to_string(env.join("audit.jsonl")).unwrap();
    let mut help = String::new();
    for args in [&["run", "--help"][..], &["login", "--help"]] {
        let out = env.toolgate().args(args).output().unwrap();
        help.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    assert_eq!(seen.len(), 6);
    for token in &seen {
        assert!(logged.iter().all(|l| !l.contains(token.as_str())), "a token was logged");
        assert!(!audit.contains(token.as_str()), "a token is in the audit log");
        assert!(!help.contains(token.as_str()));
    }
}

#[test]
fn with_no_browser_and_no_terminal_the_call_fails_closed_saying_how_to_sign_in() {
    let env = Env::new();
    let server = OAuthServer::start(&env);
    let marker = env.join("marker");
    let mut cmd = run_cmd(&env, &server);
    no_browser(&env, &mut cmd);
    let mut peer = Peer::start(cmd);
    // Only the request: toolgate ends the session once it answered it, so a
    // `notifications/initialized` after the answer could meet a closed pipe.
    let init = peer.request(
        0,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    let message = init["error"]["message"].as_str().unwrap_or_else(|| panic!("an error: {init}"));
    assert!(message.contains(&format!("toolgate login {}", server.url().trim_end_matches("/mcp"))), "{message}");
    // Nothing can go on without a token: the session ends, as when a server exits.
    assert!(peer.next_line().is_none(), "no other answer");
    peer.close_stdin();
    assert!(!peer.wait().success(), "the session ends");
    assert!(!marker.exists(), "the tool never ran");
    assert!(server.requests().iter().all(|r| r["tool"].is_null() && r["path"] != "/token"));
}

#[test]
fn login_ahead_lets_run_start_where_nobody_can_sign_in_and_logout_forgets() {
    let env = Env::new();
    let server = OAuthServer::start(&env);
    let marker = env.join("marker");
    let out = env.toolgate().arg("login").arg(server.url()).env("BROWSER", browser(&env)).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(out.stdout.is_empty());
    assert!(said.contains("signed in to"), "{said}");
    assert_eq!(browser_runs(&env), 1);
    let held = tokens(&env);
    assert!(held.iter().all(|t| !said.contains(t.as_str())));

    let mut cmd = run_cmd(&env, &server);
    no_browser(&env, &mut cmd);
    let mut peer = Peer::start(cmd);
    assert!(initialize(&mut peer, "2025-11-25").get("result").is_some());
    let answer = call_marker(&mut peer, 2, &marker);
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert_eq!(marker_lines(&marker), 1);
    peer.close_stdin();
    peer.wait();
    assert_eq!(browser_runs(&env), 1, "run used the tokens login kept");

    let out = env.toolgate().arg("logout").arg(server.url()).output().unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_dir(env.state().join("toolgate/oauth")).unwrap().count(), 0);
}

#[test]
fn an_authorization_header_of_the_user_s_own_turns_sign_in_off() {
    let env = Env::new();
    let server = OAuthServer::start(&env);
    let mut cmd = run_cmd(&env, &server);
    cmd.args(["--header", "Authorization=Bearer not-a-token-of-this-server"]).env("BROWSER", browser(&env));
    let mut peer = Peer::start(cmd);
    // Only the request: toolgate ends the session once it answered it, so a
    // `notifications/initialized` after the answer could meet a closed pipe.
    let init = peer.request(
        0,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    let message = init["error"]["message"].as_str().unwrap_or_else(|| panic!("an error: {init}"));
    assert!(message.contains("HTTP 401"), "{message}");
    peer.close_stdin();
    peer.wait();
    assert_eq!(browser_runs(&env), 0, "no sign-in");
    assert!(server.requests().iter().all(|r| r["path"] == "/mcp"), "no discovery, no registration");
    assert!(!env.state().join("toolgate/oauth").exists());
}
