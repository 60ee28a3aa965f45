//! Shared support for the integration tests: the real binary over real pipes, in an
//! environment of the test's own ([`env::Env`]), and the real MCP software that
//! `tests/setup.sh` installs.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub mod approvers;
pub mod asking;
pub mod env;
pub mod fake;
pub mod pty;

pub use env::{Env, node_server, python, rmcp_server, toolgate};
pub use fake::FakeServer;

/// How long any single expected event may take before a test gives up (a hang guard, not a
/// timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The project's fake MCP server (`tests/support/fake_server.py`, run by `python3`), as an
/// argument.
pub fn fake_server() -> String {
    root().join("tests/support/fake_server.py").display().to_string()
}

/// A policy file in a temporary directory.
pub fn policy_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `toolgate run` (or any process) with line-oriented access to its stdio.
pub struct Peer {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    /// `toolgate run --policy P --audit A -- server...`.
    pub fn toolgate(env: &Env, policy: &Path, audit: &Path, server: &[&str]) -> Peer {
        let mut cmd = env.toolgate();
        cmd.arg("run").arg("--policy").arg(policy).arg("--audit").arg(audit).arg("--name").arg("test").arg("--");
        cmd.args(server);
        Peer::start(cmd)
    }

    pub fn start(mut cmd: Command) -> Peer {
        cmd.stderr(Stdio::inherit());
        Peer::start_with(cmd, |_| {})
    }

    /// Like [`Peer::start`], keeping the command's stderr setting and handing the child to
    /// `setup` (to take its stderr, say) before stdout is read.
    pub fn start_with(mut cmd: Command, setup: impl FnOnce(&mut Child)) -> Peer {
        assert!(env::built_by_env(&cmd), "{cmd:?}: build commands with Env::command");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        no_terminal(&mut cmd);
        let mut child = cmd.spawn().expect("spawn");
        setup(&mut child);
        let stdin = child.stdin.take();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer { child, stdin, lines }
    }

    /// Like [`Peer::start`], with the command's stderr read line by line: the lines, for
    /// [`said`].
    pub fn start_reading_stderr(mut cmd: Command) -> (Peer, mpsc::Receiver<String>) {
        cmd.stderr(Stdio::piped());
        let (tx, stderr) = mpsc::channel();
        let peer = Peer::start_with(cmd, |child| read_stderr(child, tx));
        (peer, stderr)
    }

    /// Writes raw bytes (a line must bring its own `\n`).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Writes one JSON message as a line.
    pub fn send(&mut self, msg: &Value) {
        self.send_raw(format!("{msg}\n").as_bytes());
    }

    /// The next line, or `None` at end of output. Panics after [`PATIENCE`].
    pub fn next_line(&self) -> Option<String> {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => Some(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no output within {PATIENCE:?}"),
        }
    }

    /// The next message, parsed.
    pub fn recv(&self) -> Value {
        let line = self.next_line().expect("output ended");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Reads messages until the response with this id, returning it (others are skipped).
    pub fn response(&self, id: &Value) -> Value {
        loop {
            let msg = self.recv();
            if msg.get("id") == Some(id) && msg.get("method").is_none() {
                return msg;
            }
        }
    }

    /// Sends a request and waits for its response.
    pub fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(&serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(&Value::from(id))
    }

    /// Sends a `tools/call` without waiting for its answer.
    pub fn send_call(&mut self, id: i64, tool: &str, arguments: Value) {
        let params = serde_json::json!({"name": tool, "arguments": arguments});
        self.send(&serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}));
    }

    /// Closes stdin (EOF for the peer).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit; panics after [`PATIENCE`].
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "process did not exit within {PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` in a new session, with no controlling terminal, so toolgate never prompts on
/// the terminal of whoever runs the tests (common/pty.rs gives it one on purpose).
pub fn no_terminal(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            // A process that already made itself a session (common/pty.rs) keeps it.
            let _ = nix::unistd::setsid();
            Ok(())
        });
    }
}

/// Hands a child's stderr lines to `tx` (and shows them in the test's output).
pub fn read_stderr(child: &mut Child, tx: mpsc::Sender<String>) {
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("toolgate: {line}");
            let _ = tx.send(line);
        }
    });
}

/// Reads stderr lines until one contains `needle`; returns that line. Panics after
/// [`PATIENCE`].
pub fn said(stderr: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        match stderr.recv_timeout(PATIENCE) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("toolgate never said {needle:?} on stderr ({e})"),
        }
    }
}

/// `tests/python/CLIENT ARGS -- toolgate run --name sdk ... -- python sdk_server.py`: a Python
/// SDK client through toolgate in front of the SDK's own server, in a new session (neither has
/// a controlling terminal, so toolgate cannot ask on the terminal of whoever runs the tests).
pub fn sdk_client_through_toolgate(
    env: &Env,
    client: &str,
    args: &[&std::ffi::OsStr],
    policy: &Path,
    audit: &Path,
) -> Command {
    let scripts = root().join("tests/python");
    let mut cmd = env.python();
    no_terminal(&mut cmd);
    cmd.arg(scripts.join(client)).args(args).arg("--").arg(toolgate());
    cmd.args(["run", "--name", "sdk", "--policy"]).arg(policy).arg("--audit").arg(audit);
    cmd.arg("--").arg(python()).arg(scripts.join("sdk_server.py"));
    cmd
}

/// Runs `cmd` to its end: whether it succeeded, and what it wrote (stdout, then stderr).
pub fn run_to_end(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The records of an audit log, in order.
pub fn audit_records(audit: &Path) -> Vec<Value> {
    std::fs::read_to_string(audit).unwrap().lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).collect()
}

/// The decision records of an audit log, in order.
pub fn audit_decisions(audit: &Path) -> Vec<Value> {
    audit_records(audit).into_iter().filter(|r| r["event"] == "decision").collect()
}

/// The standard `initialize` handshake through a peer, declaring no client capabilities.
pub fn initialize(peer: &mut Peer, version: &str) -> Value {
    initialize_declaring(peer, version, serde_json::json!({}))
}

/// The `initialize` handshake through a peer, declaring these client capabilities (say
/// `{"elicitation": {}}`, so that toolgate asks inside the client); the answer.
pub fn initialize_declaring(peer: &mut Peer, version: &str, capabilities: Value) -> Value {
    let init = peer.request(
        0,
        "initialize",
        serde_json::json!({"protocolVersion": version, "capabilities": capabilities, "clientInfo": {"name": "toolgate-tests", "version": "0"}}),
    );
    peer.send(&serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    init
}

/// Waits until a condition holds (a hang guard, not a timing assertion).
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "{what} did not happen within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process that has exited (a zombie counts) or never existed.
pub fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}
