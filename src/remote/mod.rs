//! A remote MCP server over Streamable HTTP, presented to the proxy as if it were a child's
//! stdio: the proxy writes the lines for the server into one pipe and reads the server's lines
//! from another, and a bridge task between them speaks HTTP. The core does not know the
//! difference; only starting, stopping and the server's "exit" differ (`proxy::mod`).
//!
//! The bridge POSTs each message (`Accept: application/json, text/event-stream`), and turns what
//! comes back into lines: a JSON body is one message, an SSE stream carries several, 202 carries
//! none. It keeps the session id the server gave with its `initialize` answer and the protocol
//! version that answer names, and sends both with every later request. Once the client said
//! `notifications/initialized`, it opens the GET stream for what the server starts on its own
//! (405: the server offers none), and resumes a stream cut before its end with `Last-Event-ID`,
//! after the `retry` time the stream asked for. When the client closes its side, it ends the
//! session with DELETE. A server that offers only the HTTP+SSE transport of 2024-11-05 (a 4xx
//! to the POST of `initialize`) is spoken to as [`legacy`] describes.
//!
//! Every request on its way has an entry in one map; whoever takes the entry out answers it:
//! the server's answer, or the bridge's own error when its POST failed (the server unreachable,
//! an HTTP error, a stream that ended before the answer). So each request is answered once.
//! A 401 (or a 403 asking for more scopes) goes to `auth`, which refreshes the token or signs in
//! while the POST waits, and the POST is sent again with the new token. Failures that end the
//! session (a 401 toolgate could not answer with a token; 404 on a session: it expired) answer
//! every request on its way, then close the pipe, and the proxy ends the session as when a child
//! exits.

pub mod auth;
pub mod frame;
mod legacy;
mod metadata;
pub mod sse;
mod target;

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

pub use target::{Target, TargetError};

const SESSION_ID: &str = "mcp-session-id";
const PROTOCOL_VERSION: &str = "mcp-protocol-version";
const LAST_EVENT_ID: &str = "last-event-id";
/// The JSON-RPC error code of the bridge's own errors (the server range: the server failed).
const ERROR_CODE: i64 = -32000;
/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the DELETE that ends a session may take.
const DELETE_TIMEOUT: Duration = Duration::from_millis(800);
/// The wait before a cut stream is resumed when the server named none.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// The longest wait before resuming that toolgate honours.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Attempts in a row to resume a stream before giving up on it.
const RESUME_ATTEMPTS: u32 = 3;
/// Lines queued for the proxy before the bridge stops reading the server.
const QUEUED_LINES: usize = 64;

/// The proxy's side of a running bridge.
pub struct Bridge {
    /// Where the proxy writes the lines for the server (a pipe).
    pub to_server: OwnedFd,
    /// Where the proxy reads the server's lines.
    pub from_server: pipe::Receiver,
    /// The bridge's end: 0 when the session ended as asked, 1 when it failed.
    pub ended: JoinHandle<i32>,
    pub stop: Stop,
}

/// Stops a bridge: gently (a DELETE, then the end) or at once.
#[derive(Clone)]
pub struct Stop {
    gently: Arc<Notify>,
    now: AbortHandle,
}

impl Stop {
    /// Ends the session: requests on their way get an error, then DELETE, then the end.
    pub fn terminate(&self) {
        self.gently.notify_one();
    }

    /// Ends the bridge at once (the proxy answers what is left).
    pub fn kill(&self) {
        self.now.abort();
    }
}

/// Starts the bridge to `target` on the current runtime. Messages over `max_message_bytes`
/// from the server are refused.
pub fn start(target: Target, max_message_bytes: usize) -> io::Result<Bridge> {
    let auth = auth::Auth::new(&target, auth::Prompt::Proxy).map_err(|e| io::Error::other(e.to_string()))?;
    let (requests_rx, to_server) = pipe_pair()?;
    let (from_server, lines_tx) = pipe_pair()?;
    let requests = pipe::Receiver::from_owned_fd(requests_rx)?;
    let from_server = pipe::Receiver::from_owned_fd(from_server)?;
    let lines = pipe::Sender::from_owned_fd(lines_tx)?;
    let client = reqwest::Client::builder()
        // A redirect would carry the session and the `--header`s to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| io::Error::other(format!("cannot set up HTTP: {}", describe(e))))?;
    let (out, queued) = mpsc::channel(QUEUED_LINES);
    tokio::spawn(write_lines(queued, lines));
    let shared = Arc::new(Shared {
        client,
        target,
        auth,
        max: max_message_bytes,
        out,
        state: Mutex::new(State::default()),
        failed: Notify::new(),
    });
    let gently = Arc::new(Notify::new());
    let ended = tokio::spawn(run(shared, requests, Arc::clone(&gently)));
    let stop = Stop { gently, now: ended.abort_handle() };
    Ok(Bridge { to_server, from_server, ended, stop })
}

/// A pipe: (read end, write end), closed on exec.
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// What every task of the bridge shares.
struct Shared {
    client: reqwest::Client,
    target: Target,
    /// OAuth for the server, unless the user sends an `Authorization` header of their own.
    auth: Option<auth::Auth>,
    max: usize,
    /// Lines for the proxy, each with its `\n`.
    out: mpsc::Sender<Vec<u8>>,
    state: Mutex<State>,
    /// A failure that ends the session happened (its reason is in the state).
    failed: Notify,
}

#[derive(Default)]
struct State {
    session: Option<HeaderValue>,
    version: Option<HeaderValue>,
    /// Requests sent and not answered yet, by their id's JSON text.
    in_flight: HashMap<String, Value>,
    /// Requests the bridge answered with an error: a late answer of the server's is dropped.
    answered: HashSet<String>,
    /// The GET stream's task, once it started.
    listening: Option<AbortHandle>,
    /// Why the session ended, once it has.
    ended: Option<String>,
    /// Where messages go when the server speaks the HTTP+SSE transport of 2024-11-05
    /// (`legacy`): the endpoint its event stream named.
    legacy: Option<reqwest::Url>,
    /// The `Mcp-Param-*` headers of the tools the server listed (2026-07-28).
    params: metadata::ParamHeaders,
    /// 2026-07-28 requests on their way, by key: closing a request's stream cancels it there.
    cancels: HashMap<String, oneshot::Sender<()>>,
}

/// What the bridge needs to know of a message: its id and method.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
}

impl Probe {
    fn of(line: &[u8]) -> Option<Probe> {
        serde_json::from_slice(line).ok()
    }

    /// The id of a request.
    fn request_id(&self) -> Option<&Value> {
        self.id.as_ref().filter(|_| self.method.is_some())
    }

    /// The id of a response.
    fn response_id(&self) -> Option<&Value> {
        self.id.as_ref().filter(|_| self.method.is_none())
    }
}

fn key(id: &Value) -> String {
    id.to_string()
}

/// Reads the proxy's lines and POSTs each, until the proxy closes its side, the session fails,
/// or the bridge is told to stop.
async fn run(shared: Arc<Shared>, requests: pipe::Receiver, gently: Arc<Notify>) -> i32 {
    let mut requests = BufReader::new(requests);
    let mut line = Vec::new();
    let mut posts = JoinSet::new();
    let code = loop {
        tokio::select! {
            () = gently.notified() => {
                end(&shared, "toolgate is stopping").await;
                break 0;
            }
            () = shared.failed.notified() => {
                let why = shared.state.lock().expect("state").ended.clone().unwrap_or_default();
                end(&shared, &why).await;
                break 1;
            }
            read = requests.read_until(b'\n', &mut line) => {
                match read {
                    Ok(0) | Err(_) => {
                        end(&shared, "the client closed its side").await;
                        break 0;
                    }
                    Ok(_) => {}
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                let message = std::mem::take(&mut line);
                if cancel_modern(&shared, &message) {
                    continue;
                }
                let probe = Probe::of(&message);
                let (sent, answered) = oneshot::channel();
                // A notification or a response waits for its 202 before the next message
                // leaves: the server must see `notifications/initialized` before the requests
                // that follow it (the Python SDK refuses them otherwise). So must `initialize`,
                // whose answer names the session the next message belongs to.
                let wait = probe.as_ref().is_none_or(|p| p.request_id().is_none() || p.method.as_deref() == Some("initialize"));
                let cancel = modern_request(&shared, &message, probe.as_ref());
                posts.spawn(post(Arc::clone(&shared), message, probe, sent, cancel));
                if wait {
                    let _ = answered.await;
                }
            }
            Some(_) = posts.join_next(), if !posts.is_empty() => {}
        }
    };
    posts.shutdown().await;
    // The GET stream holds the way to the proxy too: the pipe closes once it is gone.
    let listening = shared.state.lock().expect("state").listening.take();
    if let Some(listening) = listening {
        listening.abort();
    }
    code
}

/// Ends the session: every request on its way gets an error saying `why`, and the server is
/// told with DELETE.
async fn end(shared: &Shared, why: &str) {
    let waiting: Vec<Value> = {
        let mut state = shared.state.lock().expect("state");
        let waiting: Vec<(String, Value)> = state.in_flight.drain().collect();
        for (k, _) in &waiting {
            state.answered.insert(k.clone());
        }
        waiting.into_iter().map(|(_, id)| id).collect()
    };
    let message = format!("the remote MCP server did not answer: {why}");
    for id in waiting {
        let _ = shared.out.send(crate::wire::reply::error(&id, ERROR_CODE, &message)).await;
    }
    let session = shared.state.lock().expect("state").session.clone();
    if let Some(session) = session {
        let request = shared.request(reqwest::Method::DELETE).header(SESSION_ID, session).timeout(DELETE_TIMEOUT);
        match request.send().await {
            Ok(r) if r.status().is_success() || r.status() == StatusCode::METHOD_NOT_ALLOWED => {}
            Ok(r) => tracing::debug!("the server answered the session's DELETE with {}", r.status()),
            Err(e) => tracing::debug!("could not end the session with DELETE: {}", describe(e)),
        }
    }
}

impl Shared {
    /// A request to the server with the `--header`s and the negotiated protocol version. A
    /// POST goes to the endpoint of the 2024-11-05 transport once the server turned out to
    /// speak only that.
    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut headers: HeaderMap = self.target.headers.clone();
        let state = self.state.lock().expect("state");
        if let Some(version) = &state.version {
            headers.insert(PROTOCOL_VERSION, version.clone());
        }
        if let Some((_, Some(bearer))) = self.auth.as_ref().map(auth::Auth::header) {
            headers.insert(reqwest::header::AUTHORIZATION, bearer);
        }
        let url = match &state.legacy {
            Some(endpoint) if method == reqwest::Method::POST => endpoint.clone(),
            _ => self.target.url.clone(),
        };
        self.client.request(method, url).headers(headers)
    }

    /// Whether the server speaks the HTTP+SSE transport of 2024-11-05.
    fn legacy(&self) -> bool {
        self.state.lock().expect("state").legacy.is_some()
    }

    /// The session's id, if the server gave one.
    fn session(&self) -> Option<HeaderValue> {
        self.state.lock().expect("state").session.clone()
    }

    /// Ends the session for a reason that leaves no way on.
    fn fail(&self, why: String) {
        tracing::error!("{why}");
        self.state.lock().expect("state").ended.get_or_insert(why);
        self.failed.notify_one();
    }

    /// Answers request `id` with an error, unless something answered it already.
    async fn answer_error(&self, id: &Value, why: &str) {
        let k = key(id);
        let taken = {
            let mut state = self.state.lock().expect("state");
            let taken = state.in_flight.remove(&k).is_some();
            if taken {
                state.answered.insert(k);
            }
            taken
        };
        if taken {
            tracing::warn!("request {id} failed: {why}");
            let _ = self.out.send(crate::wire::reply::error(id, ERROR_CODE, why)).await;
        }
    }

    /// Hands one message from the server to the proxy, as one line. `asked`: the request of the
    /// POST it came on, if it came on one.
    async fn deliver(&self, mut message: Vec<u8>, asked: Option<&Asked>) {
        frame::one_line(&mut message);
        let probe = Probe::of(&message);
        {
            let mut state = self.state.lock().expect("state");
            let answers = match &probe {
                Some(p) => p.response_id().map(key),
                // Not readable here; the proxy's strict check will refuse it, answering the
                // request it names, so it counts as the answer to that request.
                None => crate::wire::envelope::sniff_id(&message).map(|id| key(&id)),
            };
            if let Some(k) = answers {
                if state.in_flight.remove(&k).is_none() && state.answered.contains(&k) {
                    tracing::warn!("dropped the server's late answer to request {k}: toolgate answered it already");
                    return;
                }
                if let Some(asked) = asked
                    && asked.key == k
                {
                    if asked.initialize {
                        state.version = negotiated_version(&message);
                    } else if asked.listing {
                        state.params.learn(&message);
                    }
                }
            }
        }
        message.push(b'\n');
        let _ = self.out.send(message).await;
    }
}

/// The protocol version an `initialize` answer names, as a header value.
fn negotiated_version(answer: &[u8]) -> Option<HeaderValue> {
    #[derive(Deserialize)]
    struct Answer {
        result: Option<Initialized>,
    }
    #[derive(Deserialize)]
    struct Initialized {
        #[serde(rename = "protocolVersion")]
        protocol_version: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(answer).ok()?;
    HeaderValue::from_str(&answer.result?.protocol_version?).ok()
}

/// The request a POST carried.
struct Asked {
    id: Value,
    key: String,
    initialize: bool,
    /// A `tools/list`: its answer names the tools' `Mcp-Param-*` headers.
    listing: bool,
}

/// A 2026-07-28 request (its `_meta` names a protocol version): registered so that the client's
/// `notifications/cancelled` can close its stream, which is how that era cancels over HTTP.
fn modern_request(shared: &Shared, message: &[u8], probe: Option<&Probe>) -> Option<oneshot::Receiver<()>> {
    let id = probe?.request_id()?;
    metadata::Request::of(message)?.modern_version()?;
    let (cancel, cancelled) = oneshot::channel();
    shared.state.lock().expect("state").cancels.insert(key(id), cancel);
    Some(cancelled)
}

/// The client's `notifications/cancelled` of a 2026-07-28 request on its way: its stream is
/// closed instead (that era has no notifications from client to server over HTTP). `false`
/// when the message is anything else, and goes as it is.
fn cancel_modern(shared: &Shared, message: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Cancelled {
        method: String,
        params: CancelledParams,
    }
    #[derive(Deserialize)]
    struct CancelledParams {
        #[serde(rename = "requestId")]
        request_id: Value,
    }
    if shared.state.lock().expect("state").cancels.is_empty() {
        return false;
    }
    let Ok(cancelled) = serde_json::from_slice::<Cancelled>(message) else { return false };
    if cancelled.method != "notifications/cancelled" {
        return false;
    }
    let Some(cancel) = shared.state.lock().expect("state").cancels.remove(&key(&cancelled.params.request_id)) else {
        return false;
    };
    let _ = cancel.send(());
    true
}

/// POSTs one message (see [`exchange`]); a 2026-07-28 request stops when the client cancels it,
/// which closes its stream: the server's sign that it was cancelled. It gets no answer then, as
/// a cancelled request gets none.
async fn post(
    shared: Arc<Shared>,
    message: Vec<u8>,
    probe: Option<Probe>,
    sent: oneshot::Sender<()>,
    cancel: Option<oneshot::Receiver<()>>,
) {
    let Some(cancelled) = cancel else { return exchange(shared, message, probe, sent).await };
    let k = probe.as_ref().and_then(Probe::request_id).map(key).unwrap_or_default();
    tokio::select! {
        () = exchange(Arc::clone(&shared), message, probe, sent) => {}
        Ok(()) = cancelled => {
            tracing::debug!("request {k} was cancelled by the client: its stream is closed");
            let mut state = shared.state.lock().expect("state");
            if state.in_flight.remove(&k).is_some() {
                state.answered.insert(k.clone());
            }
        }
    }
    shared.state.lock().expect("state").cancels.remove(&k);
}

/// POSTs one message and delivers what comes back. `sent` is told once the server answered
/// the POST (or it failed).
async fn exchange(shared: Arc<Shared>, message: Vec<u8>, probe: Option<Probe>, sent: oneshot::Sender<()>) {
    let asked = probe.as_ref().and_then(|p| {
        let id = p.request_id()?;
        let method = p.method.as_deref();
        Some(Asked {
            id: id.clone(),
            key: key(id),
            initialize: method == Some("initialize"),
            listing: method == Some("tools/list"),
        })
    });
    if let Some(asked) = &asked {
        let mut state = shared.state.lock().expect("state");
        state.answered.remove(&asked.key);
        state.in_flight.insert(asked.key.clone(), asked.id.clone());
    }
    let initialized = probe.as_ref().is_some_and(|p| p.method.as_deref() == Some("notifications/initialized"));
    // Kept to be sent again, should the server turn out to speak only the 2024-11-05 transport.
    let again = asked.as_ref().is_some_and(|a| a.initialize && !shared.legacy()).then(|| message.clone());
    // A 2026-07-28 request carries its version, method, name and marked arguments as headers.
    let mirrored = match metadata::Request::of(&message) {
        Some(request) => metadata::headers(&request, &shared.state.lock().expect("state").params),
        None => Ok(Vec::new()),
    };
    let mirrored: HeaderMap = match mirrored {
        Ok(mirrored) => mirrored.into_iter().collect(),
        Err(why) => {
            match &asked {
                Some(asked) => {
                    shared.answer_error(&asked.id, &format!("toolgate does not send this request: {why}")).await
                }
                None => tracing::warn!("toolgate did not send a message: {why}"),
            }
            let _ = sent.send(());
            return;
        }
    };
    // Kept for sending again after a sign-in, only when toolgate does OAuth for this server.
    let signed_in_again = shared.auth.is_some().then(|| message.clone());
    let (seen, mut response) = send_message(&shared, message, mirrored.clone()).await;
    if let (Some(auth), Some(message), Ok(r)) = (&shared.auth, signed_in_again, &response)
        && let Some(challenge) = auth_challenge(r)
    {
        // The request waits here while the token is refreshed or a person signs in.
        match auth.refused(seen, &challenge).await {
            Ok(()) => response = send_message(&shared, message, mirrored).await.1,
            Err(e) => {
                let why = e.to_string();
                if let Some(asked) = &asked {
                    shared.answer_error(&asked.id, &why).await;
                }
                shared.fail(why);
                let _ = sent.send(());
                return;
            }
        }
    }
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            let why = format!("cannot reach the remote MCP server: {}", describe(e));
            match &asked {
                Some(asked) => shared.answer_error(&asked.id, &why).await,
                None => tracing::warn!("{why}; a message that needs no answer was lost"),
            }
            let _ = sent.send(());
            return;
        }
    };
    let status = response.status();
    if asked.as_ref().is_some_and(|a| a.initialize)
        && status.is_success()
        && let Some(session) = response.headers().get(SESSION_ID)
    {
        shared.state.lock().expect("state").session = Some(session.clone());
    }
    if let Some(why) = ending(status, shared.session().is_some()) {
        if let Some(asked) = &asked {
            shared.answer_error(&asked.id, &why).await;
        }
        shared.fail(why);
        let _ = sent.send(());
        return;
    }
    if !status.is_success() {
        let answer = match &asked {
            Some(asked) => own_error_answer(response, asked, shared.max).await,
            None => Err(body_hint(response).await),
        };
        match (answer, &asked) {
            // The server's own JSON-RPC error for this request (a 2026-07-28 server's
            // unsupported version, say) is its answer: the client reads what it sent.
            (Ok(body), Some(asked)) => shared.deliver(body, Some(asked)).await,
            (Err(hint), Some(asked)) => {
                let why = format!("the remote MCP server answered HTTP {status}{hint}");
                // A server of the 2024-11-05 transport refuses a POST to its URL with 400, 404 or
                // 405 (and without a JSON-RPC error of its own, which was taken above).
                let old_transport =
                    matches!(status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED);
                if let Some(again) = again.filter(|_| old_transport && shared.session().is_none()) {
                    match legacy::fall_back(&shared).await {
                        Ok(()) => {
                            let probe = Probe::of(&again);
                            return Box::pin(exchange(Arc::clone(&shared), again, probe, sent)).await;
                        }
                        Err(not) => {
                            let why = format!("{why}; nor does it speak the HTTP+SSE transport of 2024-11-05: {not}");
                            shared.answer_error(&asked.id, &why).await;
                        }
                    }
                } else {
                    shared.answer_error(&asked.id, &why).await;
                }
            }
            (_, None) => {
                tracing::warn!("the remote MCP server answered HTTP {status} to a message that needs no answer")
            }
        }
        let _ = sent.send(());
        return;
    }
    if shared.legacy() {
        // The server took the message (202); what it says comes on its event stream.
        let _ = sent.send(());
        return;
    }
    if initialized && status == StatusCode::ACCEPTED {
        start_listening(&shared);
    }
    // The next message leaves now, but after `initialize` only once its answer is read: it
    // names the protocol version the next message carries.
    let mut sent = Some(sent);
    if !asked.as_ref().is_some_and(|a| a.initialize)
        && let Some(s) = sent.take()
    {
        let _ = s.send(());
    }
    let Some(asked) = asked else {
        // A notification or a response: 202 and no body is all there is to it.
        return;
    };
    let kind = content_type(&response);
    if kind.starts_with("application/json") {
        match body(response, shared.max).await {
            Ok(body) => shared.deliver(body, Some(&asked)).await,
            Err(why) => shared.answer_error(&asked.id, &why).await,
        }
    } else if kind.starts_with("text/event-stream") {
        let mut stream = Stream::new(shared.max);
        let result = stream.read(&shared, response, Some(&asked)).await;
        if still_waiting(&shared, &asked) {
            resume(&shared, &asked, stream, result).await;
        }
    } else {
        let why = format!("the remote MCP server answered with {kind:?}, neither JSON nor an event stream");
        shared.answer_error(&asked.id, &why).await;
    }
    if let Some(s) = sent.take() {
        let _ = s.send(());
    }
}

/// POSTs `message`: the generation of the token it carried, and the answer.
async fn send_message(shared: &Shared, message: Vec<u8>, mirrored: HeaderMap) -> (u64, reqwest::Result<Response>) {
    let seen = shared.auth.as_ref().map_or(0, |a| a.header().0);
    let mut request = shared
        .request(reqwest::Method::POST)
        .headers(mirrored)
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json");
    if let Some(session) = shared.session() {
        request = request.header(SESSION_ID, session);
    }
    (seen, request.body(message).send().await)
}

/// The challenge of a 401, or of a 403 asking for more scopes: toolgate's to answer with a token.
fn auth_challenge(response: &Response) -> Option<auth::Challenge> {
    let challenge = || {
        auth::Challenge::parse(
            response.headers().get_all(reqwest::header::WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()),
        )
    };
    match response.status() {
        StatusCode::UNAUTHORIZED => Some(challenge()),
        StatusCode::FORBIDDEN => Some(challenge()).filter(auth::Challenge::insufficient_scope),
        _ => None,
    }
}

/// A status that ends the session, and why.
fn ending(status: StatusCode, in_session: bool) -> Option<String> {
    match status {
        StatusCode::UNAUTHORIZED => {
            Some("the remote MCP server refused the authorization toolgate sent (HTTP 401)".into())
        }
        StatusCode::NOT_FOUND if in_session => {
            Some("the remote MCP server's session expired (HTTP 404); toolgate ends the session".into())
        }
        _ => None,
    }
}

fn still_waiting(shared: &Shared, asked: &Asked) -> bool {
    shared.state.lock().expect("state").in_flight.contains_key(&asked.key)
}

fn content_type(response: &Response) -> String {
    let kind = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    kind.trim().to_ascii_lowercase()
}

/// A whole body, refused over `max` bytes.
async fn body(mut response: Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(format!("the remote MCP server's answer is larger than --max-message-bytes ({max})"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(format!("the remote MCP server's answer was cut: {}", describe(e))),
        }
    }
}

/// An HTTP error's body when it is a JSON-RPC response to `asked` (by its id); else the start
/// of the body, for the error toolgate writes instead.
async fn own_error_answer(response: Response, asked: &Asked, max: usize) -> Result<Vec<u8>, String> {
    if !content_type(&response).starts_with("application/json") {
        return Err(body_hint(response).await);
    }
    let body = body(response, max).await?;
    match Probe::of(&body) {
        Some(probe) if probe.response_id().is_some_and(|id| key(id) == asked.key) => Ok(body),
        _ => Err(hint(&body)),
    }
}

/// The start of an error body, for the error message: a server often says why there.
async fn body_hint(response: Response) -> String {
    let Ok(bytes) = body(response, 64 * 1024).await else { return String::new() };
    hint(&bytes)
}

fn hint(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.trim().is_empty() { String::new() } else { format!(": {}", text.trim()) }
}

/// One SSE stream's reading: its parser (which keeps the last event id and retry time).
struct Stream {
    parser: sse::Parser,
}

impl Stream {
    fn new(max: usize) -> Stream {
        Stream { parser: sse::Parser::new(max) }
    }

    /// Delivers every message of the stream until it ends; `Err` says why it ended early.
    async fn read(&mut self, shared: &Shared, mut response: Response, asked: Option<&Asked>) -> Result<(), String> {
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("the remote MCP server's stream was cut: {}", describe(e))),
            };
            let events = self.parser.feed(&chunk).map_err(|e| e.to_string())?;
            for event in events {
                if event.is_message() && !event.data.is_empty() {
                    shared.deliver(event.data, asked).await;
                }
            }
        }
    }

    fn retry(&self) -> Duration {
        self.parser.retry().map_or(DEFAULT_RETRY, Duration::from_millis).min(MAX_RETRY)
    }
}

/// A POST's stream ended before the answer: resumed with GET and `Last-Event-ID` when the
/// server gave the stream ids, else the request gets an error.
async fn resume(shared: &Shared, asked: &Asked, mut stream: Stream, mut result: Result<(), String>) {
    let mut attempts = 0;
    while let Some(last) = stream.parser.last_id().map(<[u8]>::to_vec) {
        if attempts == RESUME_ATTEMPTS || !still_waiting(shared, asked) {
            break;
        }
        attempts += 1;
        tokio::time::sleep(stream.retry()).await;
        let Ok(last) = HeaderValue::from_bytes(&last) else { break };
        let mut request =
            shared.request(reqwest::Method::GET).header(ACCEPT, "text/event-stream").header(LAST_EVENT_ID, last);
        if let Some(session) = shared.session() {
            request = request.header(SESSION_ID, session);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() && content_type(&r).starts_with("text/event-stream") => {
                attempts = 0;
                result = stream.read(shared, r, Some(asked)).await;
            }
            Ok(r) => {
                result = Err(format!("the remote MCP server's stream ended, and resuming it got HTTP {}", r.status()));
                break;
            }
            Err(e) => {
                result = Err(format!("the remote MCP server's stream ended, and resuming it failed: {}", describe(e)))
            }
        }
    }
    let why = match result {
        Ok(()) => "the remote MCP server's stream ended before it answered".to_owned(),
        Err(why) => why,
    };
    shared.answer_error(&asked.id, &why).await;
}

/// Opens the GET stream for what the server starts on its own, once per session.
fn start_listening(shared: &Arc<Shared>) {
    let mut state = shared.state.lock().expect("state");
    if state.listening.is_some() {
        return;
    }
    let listener = Arc::clone(shared);
    // It ends with the session, or when the server offers no stream (405) or it fails for good.
    state.listening = Some(tokio::spawn(async move { listen(&listener).await }).abort_handle());
}

async fn listen(shared: &Shared) {
    let mut stream = Stream::new(shared.max);
    let mut failures = 0;
    loop {
        let mut request = shared.request(reqwest::Method::GET).header(ACCEPT, "text/event-stream");
        if let Some(session) = shared.session() {
            request = request.header(SESSION_ID, session);
        }
        if let Some(last) = stream.parser.last_id().and_then(|l| HeaderValue::from_bytes(l).ok()) {
            request = request.header(LAST_EVENT_ID, last);
        }
        match request.send().await {
            Ok(r) if r.status() == StatusCode::METHOD_NOT_ALLOWED => {
                tracing::debug!("the remote MCP server offers no stream of its own (GET: 405)");
                return;
            }
            Ok(r) if r.status().is_success() && content_type(&r).starts_with("text/event-stream") => {
                failures = 0;
                if let Err(why) = stream.read(shared, r, None).await {
                    tracing::debug!("{why}; resuming");
                }
            }
            Ok(r) => {
                tracing::warn!("the remote MCP server's own stream (GET) got HTTP {}; not listening to it", r.status());
                return;
            }
            Err(e) => {
                failures += 1;
                if failures == RESUME_ATTEMPTS {
                    tracing::warn!("cannot open the remote MCP server's own stream (GET): {}", describe(e));
                    return;
                }
            }
        }
        tokio::time::sleep(stream.retry()).await;
    }
}

/// Writes the queued lines into the proxy's pipe; the pipe closes once every sender is gone.
async fn write_lines(mut queued: mpsc::Receiver<Vec<u8>>, mut pipe: pipe::Sender) {
    while let Some(line) = queued.recv().await {
        if pipe.write_all(&line).await.is_err() {
            return;
        }
    }
}

/// An HTTP error and its causes, without the URL (whose query may carry a key).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}
