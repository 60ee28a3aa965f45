//! The project's fake MCP server (`tests/support/fake_server.py`) behind `toolgate run`, for the
//! tests that choose what the server does (`proxy_lifecycle`, `faults`, `listing`, ...).
//! [`FakeServer`] names the files of one run in its [`Env`]'s folder: the policy and audit log
//! toolgate is given, and the files the server reports through, what it received (`--record`),
//! its process id (`--pid`) and the signals it caught (`--signals`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{Env, eventually, fake_server, policy_file};

pub struct FakeServer {
    pub env: Env,
}

impl FakeServer {
    pub fn new() -> FakeServer {
        FakeServer { env: Env::new() }
    }

    /// `toolgate run --policy policy.toml --audit audit.jsonl OPTIONS -- python3 fake_server.py
    /// FLAGS`, with `policy` written to `policy.toml` first.
    pub fn toolgate(&self, policy: &str, options: &[&str], flags: &[&str]) -> Command {
        let policy = policy_file(self.env.path(), policy);
        let mut cmd = self.env.toolgate();
        cmd.arg("run").arg("--policy").arg(&policy).arg("--audit").arg(self.audit()).args(options);
        cmd.arg("--").arg("python3").arg(fake_server()).args(flags);
        cmd
    }

    pub fn policy(&self) -> PathBuf {
        self.env.join("policy.toml")
    }

    pub fn audit(&self) -> PathBuf {
        self.env.join("audit.jsonl")
    }

    /// The value for the server's `--record`, read back by [`FakeServer::received`].
    pub fn record_file(&self) -> String {
        self.file("record.jsonl")
    }

    /// The value for the server's `--pid`, read back by [`FakeServer::pid`].
    pub fn pid_file(&self) -> String {
        self.file("pid")
    }

    /// The value for the server's `--signals`, read back by [`FakeServer::signals`].
    pub fn signals_file(&self) -> String {
        self.file("signals")
    }

    fn file(&self, name: &str) -> String {
        self.env.join(name).display().to_string()
    }

    /// The lines the server received, as it read them (none before it wrote any).
    pub fn received(&self) -> Vec<String> {
        received(Path::new(&self.record_file()))
    }

    /// The messages the server received, in order (none before it wrote any).
    pub fn messages(&self) -> Vec<Value> {
        received_messages(Path::new(&self.record_file()))
    }

    /// Whether any line the server received contains `needle`.
    pub fn reached(&self, needle: &str) -> bool {
        self.received().iter().any(|line| line.contains(needle))
    }

    /// The server's process id, once it has written it.
    pub fn pid(&self) -> i32 {
        let path = self.pid_file();
        eventually("the server writing its pid", || std::fs::read_to_string(&path).is_ok_and(|s| !s.trim().is_empty()));
        std::fs::read_to_string(&path).unwrap().trim().parse().unwrap()
    }

    /// The signals the server caught, one name a line; `None` when it caught none.
    pub fn signals(&self) -> Option<String> {
        std::fs::read_to_string(self.signals_file()).ok()
    }
}

/// The lines a fake server received, from the file its `--record` named (each line is written
/// there as a JSON string); none before it wrote any.
pub fn received(record: &Path) -> Vec<String> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<String>(l).unwrap())
        .collect()
}

/// The messages a fake server received (see [`received`]), parsed.
pub fn received_messages(record: &Path) -> Vec<Value> {
    received(record).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}
