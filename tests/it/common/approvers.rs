//! Proxies and `toolgate approve --json` of one [`Env`] (so sharing its private runtime
//! folder), for tests that answer held calls through an approver; and [`Socket`], a raw
//! connection to a proxy's socket for tests that speak the protocol themselves, line by line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Env, PATIENCE, Peer, initialize, policy_file, toolgate};

impl Env {
    /// The folder the proxies put their approver sockets in.
    pub fn socket_folder(&self) -> PathBuf {
        self.runtime().join("toolgate")
    }

    /// A proxy in front of the demo server, initialized without elicitation, its audit log
    /// `work/NAME.jsonl`.
    pub fn proxy_with(&self, work: &Path, name: &str, policy: &str, vars: &[(&str, &str)]) -> Peer {
        self.proxy_before(work, name, policy, vars, &[toolgate(), "demo-server"])
    }

    /// A proxy in front of `server`, initialized without elicitation, its audit log
    /// `work/NAME.jsonl`.
    pub fn proxy_before(&self, work: &Path, name: &str, policy: &str, vars: &[(&str, &str)], server: &[&str]) -> Peer {
        let policy = policy_file(work, policy);
        let mut cmd = self.toolgate();
        cmd.envs(vars.iter().copied());
        cmd.arg("run").arg("--policy").arg(&policy).arg("--audit").arg(work.join(format!("{name}.jsonl")));
        cmd.arg("--name").arg(name).arg("--").args(server);
        let mut peer = Peer::start(cmd);
        initialize(&mut peer, "2025-11-25");
        peer
    }

    /// A raw connection to this proxy's socket.
    pub fn connect(&self, proxy: &Peer) -> Socket {
        let path = self.socket_folder().join(format!("{}.sock", proxy.child.id()));
        let stream = UnixStream::connect(&path).unwrap_or_else(|e| panic!("cannot connect to {}: {e}", path.display()));
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Socket { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) }
    }

    /// `toolgate approve --json`.
    pub fn approver(&self) -> Peer {
        let mut cmd = self.toolgate();
        cmd.arg("approve").arg("--json");
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

/// A connection to a proxy's approver socket, for tests that write the lines themselves.
pub struct Socket {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Socket {
    /// Writes raw bytes (a line must bring its own `\n`).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    pub fn send(&mut self, message: &Value) {
        self.send_raw(format!("{message}\n").as_bytes());
    }

    /// The next message from the proxy. Panics after [`PATIENCE`] or when the proxy hangs up.
    pub fn recv(&mut self) -> Value {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("the proxy closed the connection"),
            Ok(_) => serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")),
            Err(e) => panic!("nothing from the proxy within {PATIENCE:?}: {e}"),
        }
    }

    /// The reply under this id (notifications before it are skipped).
    pub fn reply(&mut self, id: &Value) -> Value {
        loop {
            let message = self.recv();
            if message.get("method").is_none() && message.get("id") == Some(id) {
                return message;
            }
        }
    }

    /// The next notification of this method, its params (other messages are skipped).
    pub fn notification(&mut self, method: &str) -> Value {
        loop {
            let message = self.recv();
            if message["method"] == method {
                return message["params"].clone();
            }
        }
    }

    /// Subscribes; returns the result (`proxy` and `pending`).
    pub fn subscribe(&mut self) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": "subscribe", "method": "subscribe"}));
        let reply = self.reply(&json!("subscribe"));
        assert!(reply.get("error").is_none(), "{reply}");
        reply["result"].clone()
    }

    /// Answers a ticket under request id `id`; returns the reply.
    pub fn answer(&mut self, id: i64, ticket: &Value, decision: &str) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": "answer", "params": {"ticket": ticket, "decision": decision}}));
        self.reply(&json!(id))
    }
}
