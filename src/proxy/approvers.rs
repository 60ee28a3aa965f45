//! The proxy's end of `toolgate approve`: a listener on this process's socket, one task per
//! connected approver, and the dispatcher's list of who is subscribed. The connection tasks
//! only read and write lines; every decision about a pending call is the dispatcher's
//! (`approval.rs`), which hears from them through [`FromApprover`].

use std::collections::HashMap;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::human::approvers::{self, AnswerParams, Approval, Listener};
use crate::wire::{Frame, LineReader};

/// The largest line an approver may send.
const MAX_LINE: usize = 1024 * 1024;

/// What a connected approver asked, for the dispatcher.
pub(super) enum FromApprover {
    /// A new connection from this user; lines for it go to `out`.
    Connected { conn: u64, out: UnboundedSender<Vec<u8>> },
    /// It wants the pending approvals now and each new one as it comes.
    Subscribe { conn: u64, id: Value },
    /// It answers a pending approval.
    Answer { conn: u64, id: Value, params: AnswerParams },
    /// `toolgate review` asks to run a parked call a person approved.
    Run { conn: u64, id: Value, item: u64 },
    /// Its connection closed.
    Gone { conn: u64 },
}

/// The approvers connected to this proxy.
pub(super) struct Approvers {
    /// The task that owns the socket (the file is removed when it ends).
    listener: Option<tokio::task::JoinHandle<()>>,
    /// Every open connection's outgoing lines.
    connections: HashMap<u64, UnboundedSender<Vec<u8>>>,
    /// The connections that subscribed.
    subscribed: Vec<u64>,
}

impl Approvers {
    /// Listens on this process's socket; without one, approvers cannot reach this proxy, which
    /// is said once and is otherwise harmless.
    pub fn listen(tx: UnboundedSender<FromApprover>) -> Approvers {
        match Listener::bind() {
            Ok(listener) => {
                tracing::debug!("approvers can connect at {}", listener.path.display());
                Approvers {
                    listener: Some(tokio::spawn(accept_loop(listener, tx))),
                    connections: HashMap::new(),
                    subscribed: Vec::new(),
                }
            }
            Err(e) => {
                tracing::warn!("`toolgate approve` cannot reach this proxy: cannot listen for it ({e})");
                Approvers { listener: None, connections: HashMap::new(), subscribed: Vec::new() }
            }
        }
    }

    /// A new connection: its lines go out through `out`.
    pub fn connected(&mut self, conn: u64, out: UnboundedSender<Vec<u8>>) {
        self.connections.insert(conn, out);
    }

    pub fn gone(&mut self, conn: u64) {
        self.connections.remove(&conn);
        self.subscribed.retain(|c| *c != conn);
    }

    pub fn subscribe(&mut self, conn: u64) {
        if !self.subscribed.contains(&conn) {
            self.subscribed.push(conn);
        }
    }

    /// Whether any approver is listening for new approvals.
    pub fn live(&self) -> bool {
        !self.subscribed.is_empty()
    }

    /// Sends a line to one connection.
    pub fn send_line(&self, conn: u64, line: Vec<u8>) {
        if let Some(out) = self.connections.get(&conn) {
            let _ = out.send(line);
        }
    }

    /// Sends a notification to every subscriber but `except`.
    pub fn broadcast(&self, method: &str, params: Value, except: Option<u64>) {
        let line = approvers::line(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
        for conn in self.subscribed.iter().filter(|c| Some(**c) != except) {
            if let Some(out) = self.connections.get(conn) {
                let _ = out.send(line.clone());
            }
        }
    }

    pub fn offer(&self, approval: &Approval) {
        self.broadcast("offered", serde_json::to_value(approval).unwrap_or_default(), None);
    }
}

impl Drop for Approvers {
    /// Stops listening as the session ends: the socket file goes with the task that owns it.
    fn drop(&mut self) {
        if let Some(task) = self.listener.take() {
            task.abort();
        }
    }
}

async fn accept_loop(listener: Listener, tx: UnboundedSender<FromApprover>) {
    let mut next = 1;
    loop {
        let stream = match listener.listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("cannot accept an approver's connection: {e}");
                continue;
            }
        };
        if let Err(why) = approvers::same_user(&stream) {
            tracing::warn!("refused a connection on {}: {why}", listener.path.display());
            continue;
        }
        let conn = next;
        next += 1;
        let (out_tx, out_rx) = unbounded_channel();
        if tx.send(FromApprover::Connected { conn, out: out_tx.clone() }).is_err() {
            return;
        }
        tokio::spawn(serve(stream, conn, out_tx, out_rx, tx.clone()));
    }
}

/// Reads one approver's requests and writes what the dispatcher sends it.
async fn serve(
    stream: UnixStream,
    conn: u64,
    out_tx: UnboundedSender<Vec<u8>>,
    mut out_rx: UnboundedReceiver<Vec<u8>>,
    requests: UnboundedSender<FromApprover>,
) {
    let (read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(line) = out_rx.recv().await {
            if write.write_all(&line).await.is_err() {
                break;
            }
        }
    });
    read_requests(read, conn, &out_tx, &requests).await;
    let _ = requests.send(FromApprover::Gone { conn });
    drop(out_tx);
    writer.abort();
}

async fn read_requests(
    read: impl AsyncRead + Unpin,
    conn: u64,
    out: &UnboundedSender<Vec<u8>>,
    requests: &UnboundedSender<FromApprover>,
) {
    let mut lines = LineReader::new(read, MAX_LINE);
    while let Ok(Some(frame)) = lines.next().await {
        let Frame::Line(line) = frame else {
            let _ = out.send(error_line(&Value::Null, -32600, "the line is too long or unterminated"));
            continue;
        };
        match request(&line, conn) {
            Ok(Some(request)) => {
                if requests.send(request).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err((id, code, message)) => {
                let _ = out.send(error_line(&id, code, &message));
            }
        }
    }
}

/// An approver's line, read.
fn request(line: &[u8], conn: u64) -> Result<Option<FromApprover>, (Value, i64, String)> {
    let message: Value = serde_json::from_slice(line).map_err(|e| (Value::Null, -32700, format!("not JSON: {e}")))?;
    let id = message.get("id").cloned();
    let method = message.get("method").and_then(Value::as_str);
    let Some(id) = id else {
        // A notification: nothing an approver sends needs no answer.
        return Ok(None);
    };
    match method {
        Some("subscribe") => Ok(Some(FromApprover::Subscribe { conn, id })),
        Some("answer") => {
            let params = message.get("params").cloned().unwrap_or(Value::Null);
            let params: AnswerParams = serde_json::from_value(params)
                .map_err(|e| (id.clone(), -32602, format!("invalid answer params: {e}")))?;
            params.answer().map_err(|why| (id.clone(), -32602, why))?;
            Ok(Some(FromApprover::Answer { conn, id, params }))
        }
        Some("run") => match message.pointer("/params/item").and_then(Value::as_u64) {
            Some(item) => Ok(Some(FromApprover::Run { conn, id, item })),
            None => Err((id, -32602, "`run` needs params {\"item\": N}".to_owned())),
        },
        Some(other) => Err((id, -32601, format!("unknown method `{other}` (expected subscribe, answer or run)"))),
        None => Err((id, -32600, "a request needs a method".to_owned())),
    }
}

pub(super) fn error_line(id: &Value, code: i64, message: &str) -> Vec<u8> {
    approvers::line(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
}

pub(super) fn result_line(id: &Value, result: Value) -> Vec<u8> {
    approvers::line(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
}
