//! The proxy's end of `toolgate approve`: a listener on this process's socket, one task per
//! connected approver, and the dispatcher's list of who is subscribed and what each was offered
//! (which is all it may answer). The connection tasks only read and write lines; every decision
//! about a pending call is the dispatcher's (`held.rs`), which hears from them through
//! [`FromApprover`].
//!
//! An approver's answer runs a call, so its line is read as strictly as a line on the MCP wire:
//! the same check (`wire::strict`) and the same envelope rules (`wire::envelope`). A lenient
//! reader would take `"decision":"deny","decision":"allow_once"` as an allow.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::human::approver_protocol::{self, AnswerParams, Approval, Listener};
use crate::visible::preview;
use crate::wire::envelope::{self, Kind, Refusal, readable_ids};
use crate::wire::{Frame, LineReader};

/// The largest line an approver may send (not counting its `\n`). An answer is small; an `edit`
/// answer carries the edited arguments, so this is also the most arguments an approver can edit.
const MAX_LINE: usize = 1024 * 1024;

/// How deep an approver's line may nest: as deep as a message on the wire, because the
/// arguments of an `edit` answer go to the server inside one, as deep in it as in the answer.
const MAX_DEPTH: usize = crate::wire::DEFAULT_MAX_DEPTH;

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
    /// A line it sent was refused (`sha256`: of the line, when it was kept whole), for the
    /// audit log.
    Refused { reason: String, sha256: Option<String>, bytes: usize },
}

/// The approvers connected to this proxy.
pub(super) struct Approvers {
    /// The task that owns the socket (the file is removed when it ends).
    listener: Option<tokio::task::JoinHandle<()>>,
    /// Every open connection's outgoing lines.
    connections: HashMap<u64, UnboundedSender<Vec<u8>>>,
    /// The connections that subscribed, each with the tickets it was offered (in its
    /// `subscribe` result or an `offered` notification) that are still pending: it may answer
    /// only those.
    subscribed: BTreeMap<u64, HashSet<u64>>,
}

/// Why an approver's answer is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum NotTaken {
    /// The connection never subscribed, so it was shown nothing.
    #[error(
        "this connection has not subscribed, so it may not answer approval {0}: only a subscribed connection \
         that was offered an approval may answer it (send `subscribe` first)"
    )]
    Unsubscribed(u64),
    /// The approval was settled, withdrawn, or never offered to approvers.
    #[error("approval {0} is no longer pending")]
    NotPending(u64),
    /// The approval waits, but this connection was not offered it.
    #[error("approval {0} was not offered to this connection, so it may not answer it")]
    Unoffered(u64),
}

impl NotTaken {
    /// The JSON-RPC error code the approver gets.
    pub fn code(self) -> i64 {
        match self {
            NotTaken::NotPending(_) => -32001,
            NotTaken::Unsubscribed(_) | NotTaken::Unoffered(_) => -32003,
        }
    }
}

impl Approvers {
    /// Listens on this process's socket; without one, approvers cannot reach this proxy, which
    /// is said once and is otherwise harmless.
    pub fn listen(tx: UnboundedSender<FromApprover>) -> Approvers {
        match Listener::bind() {
            Ok(listener) => {
                tracing::debug!("approvers can connect at {}", listener.path.display());
                Approvers::new(Some(tokio::spawn(accept_loop(listener, tx))))
            }
            Err(e) => {
                tracing::warn!("`toolgate approve` cannot reach this proxy: cannot listen for it ({e})");
                Approvers::new(None)
            }
        }
    }

    /// Approvers with no socket of their own: connections are handed in (the core's tests).
    #[cfg(test)]
    pub fn unlistened() -> Approvers {
        Approvers::new(None)
    }

    fn new(listener: Option<tokio::task::JoinHandle<()>>) -> Approvers {
        Approvers { listener, connections: HashMap::new(), subscribed: BTreeMap::new() }
    }

    /// A new connection: its lines go out through `out`.
    pub fn connected(&mut self, conn: u64, out: UnboundedSender<Vec<u8>>) {
        self.connections.insert(conn, out);
    }

    pub fn gone(&mut self, conn: u64) {
        self.connections.remove(&conn);
        self.subscribed.remove(&conn);
    }

    /// The connection subscribed and was sent these pending tickets.
    pub fn subscribe(&mut self, conn: u64, pending: impl IntoIterator<Item = u64>) {
        self.subscribed.entry(conn).or_default().extend(pending);
    }

    /// Whether this connection may answer this ticket, which is `pending` (on approvers) or not.
    /// Only a connection that subscribed, and so was shown the call, may answer it: a program
    /// that never subscribed could otherwise settle calls nobody saw.
    pub fn may_answer(&self, conn: u64, ticket: u64, pending: bool) -> Result<(), NotTaken> {
        let Some(offered) = self.subscribed.get(&conn) else { return Err(NotTaken::Unsubscribed(ticket)) };
        if !pending {
            return Err(NotTaken::NotPending(ticket));
        }
        if !offered.contains(&ticket) {
            return Err(NotTaken::Unoffered(ticket));
        }
        Ok(())
    }

    /// The ticket no longer waits: nobody may answer it any more.
    pub fn forget(&mut self, ticket: u64) {
        for tickets in self.subscribed.values_mut() {
            tickets.remove(&ticket);
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
        let line = approver_protocol::line(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
        for conn in self.subscribed.keys().filter(|c| Some(**c) != except) {
            if let Some(out) = self.connections.get(conn) {
                let _ = out.send(line.clone());
            }
        }
    }

    /// Offers an approval to every subscriber, each of which may answer it from now on.
    pub fn offer(&mut self, approval: &Approval) {
        self.broadcast("offered", serde_json::to_value(approval).unwrap_or_default(), None);
        for tickets in self.subscribed.values_mut() {
            tickets.insert(approval.ticket);
        }
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
        if let Err(why) = approver_protocol::same_user(&stream) {
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
    // A line over the limit is answered as soon as it passes it, not when (or if) it ends: the
    // approver may be waiting for that answer, and the rest of the line is skipped unread.
    let mut lines = LineReader::reporting_early(read, MAX_LINE);
    while let Ok(Some(frame)) = lines.next().await {
        let line = match frame {
            Frame::Line(line) => line,
            Frame::TooLong { prefix, .. } | Frame::Oversized { prefix, .. } => {
                tracing::warn!("refused a line from approver connection {conn}: it is longer than {MAX_LINE} bytes");
                // Recorded before the approver hears of it, so that the record is never behind
                // what the approver saw.
                let reason = format!("longer than {MAX_LINE} bytes");
                let _ = requests.send(FromApprover::Refused { reason, sha256: None, bytes: prefix.len() });
                let id = envelope::sniff_id(&prefix).unwrap_or(Value::Null);
                let _ = out.send(error_line(&id, -32600, &too_long()));
                continue;
            }
            Frame::Unterminated(_) => {
                tracing::warn!("refused a line from approver connection {conn}: it ends without a newline");
                let _ = out.send(error_line(&Value::Null, -32600, "the line ends without a newline"));
                continue;
            }
        };
        match request(&line, conn) {
            Ok(Some(request)) => {
                if requests.send(request).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(refused) => {
                tracing::warn!("refused a line from approver connection {conn}: {}: {}", refused.why, preview(&line));
                let sha256 = Some(crate::audit::chain::hash(&line));
                let reason = refused.why.clone();
                let _ = requests.send(FromApprover::Refused { reason, sha256, bytes: line.len() });
                for id in &refused.ids {
                    let _ = out.send(error_line(id, refused.code, &refused.why));
                }
            }
        }
    }
}

/// What an approver is told of a line over [`MAX_LINE`].
fn too_long() -> String {
    format!(
        "toolgate refused this message: the line is longer than {MAX_LINE} bytes (1 MiB), the most an approver may \
         send; it was not read"
    )
}

/// An approver's line that is not acted on, and what its sender is told.
#[derive(Debug, PartialEq)]
struct Refused {
    /// The ids to send the error under; none for a line that must not be answered.
    ids: Vec<Value>,
    code: i64,
    why: String,
}

impl Refused {
    fn to(id: Value, code: i64, why: impl Into<String>) -> Refused {
        Refused { ids: vec![id], code, why: why.into() }
    }

    /// A line the strict check or the envelope rules refused. Its ids are read leniently, only
    /// to address the error (as on the wire); with none readable the error goes under `null`,
    /// as JSON-RPC has it for a request whose id cannot be told.
    fn unread(line: &[u8], refusal: Refusal) -> Refused {
        let mut ids: Vec<Value> = readable_ids(line).into_iter().filter(|r| r.is_request).map(|r| r.id).collect();
        if ids.is_empty() {
            ids.push(Value::Null);
        }
        Refused { ids, code: refusal.code, why: format!("toolgate refused this message: {}", refusal.reason) }
    }
}

/// An approver's line, read strictly: the line must pass the wire's check and be a JSON-RPC 2.0
/// request (a notification is ignored, since nothing an approver says goes without an answer).
fn request(line: &[u8], conn: u64) -> Result<Option<FromApprover>, Refused> {
    let envelope = envelope::parse(line, MAX_DEPTH).map_err(|refusal| Refused::unread(line, refusal))?;
    let (id, method) = match envelope.kind {
        Kind::Request { id, method } => (id.to_value(), method),
        Kind::Notification { .. } => return Ok(None),
        Kind::Response { .. } => {
            // The proxy asks approvers nothing, and a response is never answered.
            let why = "an approver's response answers nothing: the proxy sends approvers no requests";
            return Err(Refused { ids: Vec::new(), code: -32600, why: why.to_owned() });
        }
    };
    // The line passed the strict check, so its params hold no duplicate or marker key, and
    // serde_json reads them as the only reading there is.
    let params = envelope.params.map_or(&b"null"[..], |at| &line[at]);
    match method.as_str() {
        "subscribe" => Ok(Some(FromApprover::Subscribe { conn, id })),
        "answer" => {
            let params: AnswerParams = match serde_json::from_slice(params) {
                Ok(params) => params,
                Err(e) => return Err(Refused::to(id, -32602, format!("invalid answer params: {e}"))),
            };
            if let Err(why) = params.answer() {
                return Err(Refused::to(id, -32602, why));
            }
            Ok(Some(FromApprover::Answer { conn, id, params }))
        }
        "run" => match serde_json::from_slice::<Value>(params).ok().and_then(|p| p.get("item")?.as_u64()) {
            Some(item) => Ok(Some(FromApprover::Run { conn, id, item })),
            None => Err(Refused::to(id, -32602, "`run` needs params {\"item\": N}")),
        },
        other => Err(Refused::to(id, -32601, format!("unknown method `{other}` (expected subscribe, answer or run)"))),
    }
}

pub(super) fn error_line(id: &Value, code: i64, message: &str) -> Vec<u8> {
    approver_protocol::line(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
}

pub(super) fn result_line(id: &Value, result: Value) -> Vec<u8> {
    approver_protocol::line(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the reader makes of a line: the request it passes on, or the error it sends.
    fn read(line: &[u8]) -> Result<Option<FromApprover>, Refused> {
        request(line, 5)
    }

    fn refused(line: &[u8]) -> Refused {
        match read(line) {
            Err(refused) => refused,
            Ok(_) => panic!("read, not refused: {}", line.escape_ascii()),
        }
    }

    #[test]
    fn a_good_answer_is_read() {
        let line = br#"{"jsonrpc":"2.0","id":"answer-3","method":"answer","params":{"ticket":3,"decision":"deny","reason":"no"}}"#;
        let Ok(Some(FromApprover::Answer { conn, id, params })) = read(line) else { panic!("not an answer") };
        assert_eq!((conn, id), (5, json!("answer-3")));
        let want = AnswerParams { ticket: 3, decision: "deny".into(), reason: Some("no".into()), arguments: None };
        assert_eq!(params, want);
        let line = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"subscribe\"}\r\n";
        assert!(matches!(read(line), Ok(Some(FromApprover::Subscribe { conn: 5, .. }))));
        let line = br#"{"jsonrpc":"2.0","id":1,"method":"run","params":{"item":9}}"#;
        assert!(matches!(read(line), Ok(Some(FromApprover::Run { item: 9, .. }))));
    }

    #[test]
    fn a_duplicate_decision_is_refused_however_it_is_spelled() {
        for line in [
            br#"{"jsonrpc":"2.0","id":2,"method":"answer","params":{"ticket":1,"decision":"deny","decision":"allow_once"}}"#
                as &[u8],
            br#"{"jsonrpc":"2.0","id":2,"method":"answer","params":{"ticket":1,"decision":"deny","d\u0065cision":"allow_once"}}"#,
        ] {
            let r = refused(line);
            assert_eq!((r.ids, r.code), (vec![json!(2)], -32600), "{}", line.escape_ascii());
            assert!(r.why.contains(r#"the key "decision" appears twice"#), "{}", r.why);
        }
        // A duplicate in the envelope: which method would run is not for the reader to pick.
        let r = refused(br#"{"jsonrpc":"2.0","id":2,"method":"subscribe","method":"answer"}"#);
        assert_eq!((r.ids, r.code), (vec![json!(2)], -32600));
    }

    #[test]
    fn nesting_deeper_than_the_wire_allows_is_refused() {
        let arguments = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let line = |depth: usize| {
            format!(
                r#"{{"jsonrpc":"2.0","id":4,"method":"answer","params":{{"ticket":1,"decision":"edit","arguments":{{"a":{}}}}}}}"#,
                arguments(depth)
            )
        };
        // The envelope, params and arguments objects make three levels.
        assert!(matches!(read(line(MAX_DEPTH - 3).as_bytes()), Ok(Some(FromApprover::Answer { .. }))));
        let r = refused(line(MAX_DEPTH - 2).as_bytes());
        assert_eq!((r.ids, r.code), (vec![json!(4)], -32700));
        assert!(r.why.contains("nests deeper than 64 levels"), "{}", r.why);
    }

    #[test]
    fn a_marker_key_is_refused() {
        let line = br#"{"jsonrpc":"2.0","id":3,"method":"answer","params":{"ticket":1,"decision":"edit","arguments":{"$serde_json::private::RawValue":"{}"}}}"#;
        let r = refused(line);
        assert_eq!((r.ids, r.code), (vec![json!(3)], -32600));
        assert!(r.why.contains("$serde_json::private::RawValue"), "{}", r.why);
    }

    #[test]
    fn a_bom_a_raw_cr_and_bytes_that_are_not_json_are_refused() {
        let answer = r#"{"jsonrpc":"2.0","id":6,"method":"answer","params":{"ticket":1,"decision":"allow_once"}}"#;
        let r = refused(format!("\u{feff}{answer}").as_bytes());
        assert_eq!((r.ids, r.code), (vec![json!(6)], -32700));
        assert!(r.why.contains("byte-order mark"), "{}", r.why);
        // A lone CR could make a reader that splits on it see two messages.
        let r = refused(format!("{answer}\r{answer}\n").as_bytes());
        assert_eq!((r.ids, r.code), (vec![json!(6), json!(6)], -32700));
        assert!(r.why.contains("raw carriage return"), "{}", r.why);
        let r = refused(b"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"answer\",\"params\":{\"reason\":\"\xff\"}}");
        assert_eq!(r.code, -32700);
        assert!(r.why.contains("not valid UTF-8"), "{}", r.why);
        // With no id to be read, the error goes under null.
        let r = refused(b"allow_once\n");
        assert_eq!((r.ids, r.code), (vec![Value::Null], -32700));
    }

    #[test]
    fn what_is_not_a_json_rpc_request_is_refused() {
        let r = refused(br#"{"id":1,"method":"subscribe"}"#);
        assert_eq!((r.ids, r.code), (vec![json!(1)], -32600));
        assert!(r.why.contains(r#"lacks "jsonrpc": "2.0""#), "{}", r.why);
        let r =
            refused(br#"[{"jsonrpc":"2.0","id":1,"method":"subscribe"},{"jsonrpc":"2.0","id":2,"method":"answer"}]"#);
        assert_eq!((r.ids, r.code), (vec![json!(1), json!(2)], -32600));
        assert_eq!(refused(b"17").code, -32600);
        assert_eq!(refused(br#"{"jsonrpc":"2.0","id":1.0,"method":"subscribe"}"#).code, -32600);
        // A response answers nothing and gets no answer back.
        assert!(refused(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).ids.is_empty());
        // A notification is not acted on.
        assert!(matches!(read(br#"{"jsonrpc":"2.0","method":"answer","params":{"ticket":1}}"#), Ok(None)));
    }

    fn approval(ticket: u64) -> Approval {
        serde_json::from_value(json!({"ticket": ticket, "kind": "approve", "server": "s", "tool": "t",
            "arguments": {}, "gate": "ask", "tier": "high", "rules": [], "expires_in_ms": 1000}))
        .unwrap()
    }

    #[test]
    fn a_connection_may_answer_only_what_it_was_offered_since_it_subscribed() {
        let mut approvers = Approvers::new(None);
        let (early, mut early_lines) = unbounded_channel();
        let (stranger, mut stranger_lines) = unbounded_channel();
        approvers.connected(1, early);
        approvers.connected(2, stranger);
        approvers.subscribe(1, []);
        assert!(approvers.live());

        // Offered by a notification, to subscribers only.
        approvers.offer(&approval(7));
        assert!(String::from_utf8(early_lines.try_recv().unwrap()).unwrap().contains(r#""method":"offered""#));
        assert!(stranger_lines.try_recv().is_err());
        assert_eq!(approvers.may_answer(1, 7, true), Ok(()));
        assert_eq!(approvers.may_answer(1, 8, true), Err(NotTaken::Unoffered(8)));
        assert_eq!(approvers.may_answer(2, 7, true), Err(NotTaken::Unsubscribed(7)));
        // What no longer waits is not pending; that a stranger is one comes first.
        assert_eq!(approvers.may_answer(1, 7, false), Err(NotTaken::NotPending(7)));
        assert_eq!(approvers.may_answer(2, 7, false), Err(NotTaken::Unsubscribed(7)));

        // Offered in the `subscribe` result: what waits then, and what is offered after.
        approvers.subscribe(2, [7]);
        approvers.offer(&approval(8));
        assert_eq!((approvers.may_answer(2, 7, true), approvers.may_answer(2, 8, true)), (Ok(()), Ok(())));

        // A ticket that no longer waits is nobody's to answer; a connection that is gone is
        // subscribed no more.
        approvers.forget(7);
        assert_eq!(approvers.may_answer(1, 7, true), Err(NotTaken::Unoffered(7)));
        assert_eq!(approvers.may_answer(2, 7, true), Err(NotTaken::Unoffered(7)));
        approvers.gone(1);
        assert_eq!(approvers.may_answer(1, 8, true), Err(NotTaken::Unsubscribed(8)));
        approvers.gone(2);
        assert!(!approvers.live());
    }

    #[test]
    fn params_that_are_not_an_answer_are_refused_under_the_request_id() {
        let r = refused(br#"{"jsonrpc":"2.0","id":8,"method":"answer","params":{"ticket":1,"decision":"yes"}}"#);
        assert_eq!((r.ids, r.code), (vec![json!(8)], -32602));
        let r = refused(br#"{"jsonrpc":"2.0","id":8,"method":"answer"}"#);
        assert_eq!((r.ids, r.code), (vec![json!(8)], -32602));
        let r = refused(br#"{"jsonrpc":"2.0","id":8,"method":"approve"}"#);
        assert_eq!((r.ids, r.code), (vec![json!(8)], -32601));
    }
}
