//! Proxies and `toolgate approve --json` sharing a private runtime folder, for tests that answer
//! held calls through an approver.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::{Peer, initialize, policy_file, toolgate};

/// A private runtime folder for one test's proxies and approvers.
pub struct Runtime {
    pub dir: tempfile::TempDir,
}

impl Runtime {
    pub fn new() -> Runtime {
        Runtime { dir: tempfile::tempdir().unwrap() }
    }

    pub fn var(&self) -> (&'static str, String) {
        ("XDG_RUNTIME_DIR", self.dir.path().display().to_string())
    }

    pub fn folder(&self) -> PathBuf {
        self.dir.path().join("toolgate")
    }

    /// A proxy in front of the demo server, initialized without elicitation, its audit log
    /// `work/NAME.jsonl`.
    pub fn proxy_with(&self, work: &Path, name: &str, policy: &str, env: &[(&str, &str)]) -> Peer {
        let policy = policy_file(work, policy);
        let mut cmd = Command::new(toolgate());
        cmd.envs(env.iter().copied());
        cmd.arg("run").arg("--policy").arg(&policy).arg("--audit").arg(work.join(format!("{name}.jsonl")));
        cmd.arg("--name").arg(name).arg("--").arg(toolgate()).arg("demo-server");
        let (k, v) = self.var();
        cmd.env(k, v);
        let mut peer = Peer::start(cmd);
        initialize(&mut peer, "2025-11-25");
        peer
    }

    /// `toolgate approve --json`.
    pub fn approver(&self) -> Peer {
        let mut cmd = Command::new(toolgate());
        cmd.arg("approve").arg("--json");
        let (k, v) = self.var();
        cmd.env(k, v);
        Peer::start(cmd)
    }
}

/// The approver's next event of this kind (others are skipped).
pub fn event(approver: &Peer, kind: &str) -> Value {
    loop {
        let e = approver.recv();
        if e["event"] == kind {
            return e;
        }
    }
}

pub fn answer(approver: &mut Peer, offered: &Value, decision: &str, reason: Option<&str>) {
    let mut line = json!({"proxy": offered["proxy"], "ticket": offered["approval"]["ticket"], "decision": decision});
    if let Some(r) = reason {
        line["reason"] = json!(r);
    }
    approver.send(&line);
}
