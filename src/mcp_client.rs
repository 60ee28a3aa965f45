//! The MCP client toolgate is when it speaks first: `init --list-tools` asks a configured server
//! for its tools, `review --run` runs an approved call on a server it starts, and `demo` drives the
//! proxy in-process. The handshake, request numbering, response matching and error extraction
//! live here once.
//!
//! [`Exchange`] is the sans-IO core: it writes request lines (one JSON message per line) and
//! recognises, among the lines that come back, the response to a request. Notifications and the
//! server's own requests are skipped unanswered: toolgate declares no client capabilities, so
//! a server has nothing to ask it, and a `ping` left alone costs the server only its own timeout.
//! Around the core, [`Client`] speaks over blocking streams (a reader thread, so an answer can
//! have a deadline), [`AsyncClient`] over tokio streams, and [`Server`] starts a command with
//! piped stdio and stops it when dropped: stdin closed, a grace to exit, then killed.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, Lines};

/// The protocol version toolgate asks for; a server that speaks an older one answers with it.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// How long a started server has to exit once its stdin is closed, before it is killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why a conversation with a server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot start {program}: {source}")]
    Start { program: String, source: io::Error },
    /// The server started without a pipe for stdin or stdout.
    #[error("no {0}")]
    NoPipe(&'static str),
    /// Reading from or writing to the server failed.
    #[error("{0}")]
    Pipe(#[source] io::Error),
    #[error("the server ended before answering")]
    Ended,
    #[error("the server did not answer {method} within {}", humantime::format_duration(*.patience))]
    Timeout { method: String, patience: Duration },
    /// The server answered with a JSON-RPC error (boxed: it holds a whole JSON value).
    #[error("the server refused {method}: {error}")]
    Refused { method: String, error: Box<RpcError> },
}

/// A JSON-RPC error response's error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// The error object as the server sent it: `null` when the response held neither a result
    /// nor an error.
    pub object: Value,
}

impl RpcError {
    fn from_object(object: Value) -> RpcError {
        let code = object.get("code").and_then(Value::as_i64).unwrap_or_default();
        let message = object.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
        RpcError { code, message, object }
    }
}

/// The sans-IO core: numbers requests and finds their responses.
#[derive(Debug, Default)]
pub struct Exchange {
    last_id: u64,
}

impl Exchange {
    /// A new request's line (newline included) and the id its response will carry.
    pub fn request(&mut self, method: &str, params: Value) -> (u64, Vec<u8>) {
        self.last_id += 1;
        let id = self.last_id;
        (id, line(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})))
    }

    /// A notification's line.
    pub fn notification(method: &str) -> Vec<u8> {
        line(&json!({"jsonrpc": "2.0", "method": method}))
    }

    /// What `line` means to the request waiting for `id`: `None` when it is something else (a
    /// notification, a server's request, another response, not JSON), else the result or the
    /// error.
    pub fn answer(id: u64, line: &str) -> Option<Result<Value, RpcError>> {
        let Ok(mut message) = serde_json::from_str::<Value>(line) else { return None };
        if message.get("id") != Some(&json!(id)) || message.get("method").is_some() {
            return None;
        }
        Some(match message.get_mut("result").map(Value::take) {
            Some(result) => Ok(result),
            None => Err(RpcError::from_object(message.get_mut("error").map(Value::take).unwrap_or_default())),
        })
    }

    /// The `initialize` params: toolgate as `client`, with no client capabilities.
    pub fn initialize_params(client: &str) -> Value {
        json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": client, "version": env!("CARGO_PKG_VERSION")},
        })
    }
}

fn line(message: &Value) -> Vec<u8> {
    let mut bytes = message.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

fn refused(method: &str) -> impl FnOnce(RpcError) -> ClientError {
    let method = method.to_owned();
    move |error| ClientError::Refused { method, error: Box::new(error) }
}

/// A client over blocking streams. Lines are read on a thread of their own, so an answer can be
/// waited for with a deadline.
pub struct Client<W: Write> {
    /// `None` once closed.
    writer: Option<W>,
    lines: mpsc::Receiver<io::Result<String>>,
    exchange: Exchange,
    patience: Option<Duration>,
}

impl<W: Write> Client<W> {
    /// A client writing to `writer` and reading the answers from `reader`.
    pub fn new(reader: impl Read + Send + 'static, writer: W) -> Client<W> {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let failed = line.is_err();
                if tx.send(line).is_err() || failed {
                    break;
                }
            }
        });
        Client { writer: Some(writer), lines, exchange: Exchange::default(), patience: None }
    }

    /// Each answer must come within `patience` of its request, or the request fails.
    pub fn set_patience(&mut self, patience: Duration) {
        self.patience = Some(patience);
    }

    /// `initialize` as `client`, then `notifications/initialized`; the server's `initialize` result.
    pub fn initialize(&mut self, client: &str) -> Result<Value, ClientError> {
        let result = self.request("initialize", Exchange::initialize_params(client))?;
        self.send(&Exchange::notification("notifications/initialized"))?;
        Ok(result)
    }

    /// Sends a request and waits for its result.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let (id, bytes) = self.exchange.request(method, params);
        self.send(&bytes)?;
        let deadline = self.patience.map(|p| Instant::now() + p);
        loop {
            let line = match deadline {
                None => self.lines.recv().map_err(|_| ClientError::Ended)?,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.lines.recv_timeout(left) {
                        Ok(line) => line,
                        Err(RecvTimeoutError::Disconnected) => return Err(ClientError::Ended),
                        Err(RecvTimeoutError::Timeout) => {
                            let patience = self.patience.unwrap_or_default();
                            return Err(ClientError::Timeout { method: method.to_owned(), patience });
                        }
                    }
                }
            };
            if let Some(answer) = Exchange::answer(id, &line.map_err(ClientError::Pipe)?) {
                return answer.map_err(refused(method));
            }
        }
    }

    /// Closes the writer: for a server on pipes, end of input asks it to stop.
    pub fn close(&mut self) {
        self.writer = None;
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "the client is closed");
        let writer = self.writer.as_mut().ok_or_else(closed).map_err(ClientError::Pipe)?;
        writer.write_all(bytes).and_then(|()| writer.flush()).map_err(ClientError::Pipe)
    }
}

/// A server started with piped stdin and stdout, and the client that speaks to it. Dropping it
/// stops the server: its stdin is closed, it has [`SHUTDOWN_GRACE`] to exit, then it is killed.
pub struct Server {
    pub client: Client<ChildStdin>,
    child: Child,
}

impl Server {
    /// Starts `command` (its program, arguments and stderr as the caller set them) with stdin and
    /// stdout piped.
    pub fn spawn(command: &mut Command) -> Result<Server, ClientError> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|source| ClientError::Start { program, source })?;
        let pipes = child.stdin.take().ok_or(ClientError::NoPipe("stdin")).and_then(|stdin| {
            let stdout = child.stdout.take().ok_or(ClientError::NoPipe("stdout"))?;
            Ok(Client::new(stdout, stdin))
        });
        match pipes {
            Ok(client) => Ok(Server { client, child }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.client.close();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Ok(Some(_)) | Err(_) => return,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client over tokio streams, for the demo, which drives the proxy in-process.
pub struct AsyncClient<R, W> {
    lines: Lines<R>,
    writer: W,
    exchange: Exchange,
}

impl<R: AsyncBufRead + Unpin, W: AsyncWrite + Unpin> AsyncClient<R, W> {
    pub fn new(reader: R, writer: W) -> AsyncClient<R, W> {
        AsyncClient { lines: reader.lines(), writer, exchange: Exchange::default() }
    }

    /// `initialize` as `client`, then `notifications/initialized`; the server's `initialize` result.
    pub async fn initialize(&mut self, client: &str) -> Result<Value, ClientError> {
        let result = self.request("initialize", Exchange::initialize_params(client)).await?;
        self.send(&Exchange::notification("notifications/initialized")).await?;
        Ok(result)
    }

    /// Sends a request and waits for its result.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let (id, bytes) = self.exchange.request(method, params);
        self.send(&bytes).await?;
        while let Some(line) = self.lines.next_line().await.map_err(ClientError::Pipe)? {
            if let Some(answer) = Exchange::answer(id, &line) {
                return answer.map_err(refused(method));
            }
        }
        Err(ClientError::Ended)
    }

    /// Shuts the writer down: end of input tells the peer the session is over.
    pub async fn close(&mut self) -> io::Result<()> {
        self.writer.shutdown().await
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.writer.write_all(bytes).await.map_err(ClientError::Pipe)?;
        self.writer.flush().await.map_err(ClientError::Pipe)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{PipeReader, PipeWriter};

    use super::*;

    /// A client on pipes, what it writes, and the pipe to answer it on.
    fn on_pipes() -> (Client<PipeWriter>, PipeReader, PipeWriter) {
        let (from_server, to_client) = io::pipe().unwrap();
        let (sent, to_server) = io::pipe().unwrap();
        (Client::new(from_server, to_server), sent, to_client)
    }

    fn answer_with(to_client: &mut impl Write, lines: &[Value]) {
        for message in lines {
            to_client.write_all(&line(message)).unwrap();
        }
    }

    fn messages(sent: impl Read) -> Vec<Value> {
        BufReader::new(sent).lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect()
    }

    /// What the server says before its answers: none of it is an answer to request 1.
    fn chatter() -> Vec<Value> {
        vec![
            json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "hi"}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            json!({"jsonrpc": "2.0", "id": 7, "result": {}}),
            json!("not a message"),
        ]
    }

    #[test]
    fn requests_are_numbered_lines() {
        let mut exchange = Exchange::default();
        let (id, bytes) = exchange.request("tools/list", json!({}));
        assert_eq!(
            (id, bytes),
            (1, b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}\n".to_vec())
        );
        assert_eq!(exchange.request("ping", json!({})).0, 2);
        assert_eq!(
            Exchange::notification("notifications/initialized"),
            line(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        );
    }

    #[test]
    fn only_the_response_with_the_id_answers() {
        for other in chatter() {
            assert_eq!(Exchange::answer(1, &other.to_string()), None, "{other}");
        }
        assert_eq!(Exchange::answer(1, "{\"id\":1,"), None, "a broken line");
        let ok = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}});
        assert_eq!(Exchange::answer(1, &ok.to_string()), Some(Ok(json!({"tools": []}))));
    }

    #[test]
    fn an_error_response_gives_its_code_message_and_object() {
        let error = json!({"code": -32601, "message": "method not found: x", "data": [1]});
        let refused = json!({"jsonrpc": "2.0", "id": 3, "error": error});
        let expected = RpcError { code: -32601, message: "method not found: x".into(), object: error };
        assert_eq!(Exchange::answer(3, &refused.to_string()), Some(Err(expected)));
        let neither = json!({"jsonrpc": "2.0", "id": 3});
        let expected = RpcError { code: 0, message: String::new(), object: Value::Null };
        assert_eq!(Exchange::answer(3, &neither.to_string()), Some(Err(expected)));
    }

    #[test]
    fn the_handshake_and_a_request_skip_what_does_not_answer_them() {
        let (mut client, sent, mut to_client) = on_pipes();
        let mut lines = chatter();
        lines.push(json!({"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": PROTOCOL_VERSION}}));
        lines.extend(chatter());
        lines.push(json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "read_file"}]}}));
        answer_with(&mut to_client, &lines);
        assert_eq!(client.initialize("toolgate-test").unwrap(), json!({"protocolVersion": PROTOCOL_VERSION}));
        assert_eq!(client.request("tools/list", json!({})).unwrap(), json!({"tools": [{"name": "read_file"}]}));
        drop(client);
        let hello = json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "toolgate-test", "version": env!("CARGO_PKG_VERSION")}});
        assert_eq!(
            messages(sent),
            [
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}),
            ]
        );
    }

    #[test]
    fn an_error_response_is_a_refusal_that_names_the_method() {
        let (mut client, _sent, mut to_client) = on_pipes();
        let error = json!({"code": -32602, "message": "unknown tool"});
        answer_with(&mut to_client, &[json!({"jsonrpc": "2.0", "id": 1, "error": error})]);
        let refused = client.request("tools/call", json!({"name": "x"})).unwrap_err();
        assert_eq!(refused.to_string(), "the server refused tools/call: unknown tool (-32602)");
        let ClientError::Refused { error: refusal, .. } = refused else { panic!("{refused:?}") };
        assert_eq!(refusal.object, error);
    }

    #[test]
    fn a_server_that_keeps_quiet_past_the_patience_times_out() {
        let (mut client, _sent, mut to_client) = on_pipes();
        client.set_patience(Duration::from_millis(50));
        answer_with(&mut to_client, &chatter());
        let started = Instant::now();
        let quiet = client.request("tools/list", json!({})).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(matches!(quiet, ClientError::Timeout { .. }), "{quiet:?}");
        assert_eq!(quiet.to_string(), "the server did not answer tools/list within 50ms");
    }

    #[test]
    fn a_server_that_closes_before_answering_has_ended() {
        let (mut client, _sent, mut to_client) = on_pipes();
        answer_with(&mut to_client, &chatter());
        drop(to_client);
        let ended = client.request("initialize", json!({})).unwrap_err();
        assert_eq!(ended.to_string(), "the server ended before answering");
    }

    #[test]
    fn a_closed_client_cannot_send() {
        let (mut client, _sent, _to_client) = on_pipes();
        client.close();
        assert!(matches!(client.request("ping", json!({})), Err(ClientError::Pipe(_))));
    }

    #[test]
    fn a_started_server_is_spoken_to_and_stops_when_its_input_ends() {
        // `cat` sends the request back: a request, not its answer, so it waits out its patience.
        let mut server = Server::spawn(&mut Command::new("cat")).unwrap();
        server.client.set_patience(Duration::from_millis(100));
        let echoed = server.client.request("tools/list", json!({})).unwrap_err();
        assert!(matches!(echoed, ClientError::Timeout { .. }), "{echoed:?}");
        let stopping = Instant::now();
        drop(server);
        assert!(stopping.elapsed() < SHUTDOWN_GRACE, "cat ends with its input, before it would be killed");
    }

    #[test]
    fn a_server_that_does_not_start_says_which() {
        let Err(failed) = Server::spawn(&mut Command::new("/no/such/server")) else { panic!("it started") };
        assert!(failed.to_string().starts_with("cannot start /no/such/server: "), "{failed}");
    }

    #[tokio::test]
    async fn the_async_client_shares_the_handshake_and_the_matching() {
        let (client_side, mut server_side) = tokio::io::duplex(1 << 16);
        let (from_server, to_server) = tokio::io::split(client_side);
        let mut client = AsyncClient::new(tokio::io::BufReader::new(from_server), to_server);
        let mut lines = chatter();
        lines.push(json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
        lines.push(json!({"jsonrpc": "2.0", "id": 2, "error": {"code": 1, "message": "no"}}));
        for message in &lines {
            server_side.write_all(&line(message)).await.unwrap();
        }
        assert_eq!(client.initialize("toolgate-test").await.unwrap(), json!({}));
        let refused = client.request("tools/call", json!({})).await.unwrap_err();
        assert_eq!(refused.to_string(), "the server refused tools/call: no (1)");
        client.close().await.unwrap();
        let mut sent = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut server_side, &mut sent).await.unwrap();
        let methods: Vec<Value> = messages(sent.as_bytes()).into_iter().map(|m| m["method"].clone()).collect();
        assert_eq!(methods, ["initialize", "notifications/initialized", "tools/call"]);
        drop(server_side);
        assert!(matches!(client.request("ping", json!({})).await, Err(ClientError::Pipe(_) | ClientError::Ended)));
    }
}
