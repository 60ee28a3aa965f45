//! The proxy: toolgate between an MCP client (its own stdin/stdout) and the server it launches.
//!
//! The driver reads both peers' pipes itself, frames and checks each line, and hands it to one
//! dispatcher, which owns every piece of session state, decides, and hands bytes to the
//! writers: straight into a pipe when it has room, else to a writer task per side. Writers
//! never block the dispatcher (their queues are unbounded), and a peer is read only while its
//! direction has byte credit, which a line gives back once written, so a slow peer slows only
//! the traffic going to it, and memory stays bounded.

mod allowances;
mod approver_socket;
pub mod child;
mod dispatcher;
mod elicit;
mod gate;
mod held;
mod listing;
mod place;
mod record;
mod reload;
#[doc(hidden)]
pub mod request_state; // public for the fuzz targets (fuzz/)
mod resident;
mod review_queue;
mod route;
mod session;
mod session_trust;
pub mod stdio;
mod writer;

use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncRead;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc};
use tokio::time::Instant;

use crate::audit::AuditLog;
use crate::policy::Policy;
use crate::wire::{Envelope, Frame, LineReader, Refusal, envelope};
pub use child::SpawnError;
use dispatcher::{Dispatcher, Event};
use session::Session;

/// At most this many messages are handled before what they produced is written.
const FLUSH_EVERY: usize = 64;
/// Bytes read but not yet written, per direction, before the reader waits.
const IN_FLIGHT_BYTES: usize = 16 * 1024 * 1024;
/// What a queued message costs beyond its bytes (its allocation, its queue slot, the reply
/// toolgate writes instead of it), charged to the credit so that a flood of small messages is
/// held to about `IN_FLIGHT_BYTES` of memory too, not to several times that.
const MESSAGE_OVERHEAD: usize = 256;

/// The server toolgate stands in front of.
pub enum Upstream {
    /// A command toolgate starts, speaking MCP on its stdin/stdout.
    Command(Vec<OsString>),
    /// A remote server, speaking Streamable HTTP (`crate::remote`).
    Remote(crate::remote::Target),
}

/// Everything `toolgate run` needs.
pub struct Options {
    pub server: Upstream,
    /// The server's name in rules and records (`--name`).
    pub server_name: String,
    pub policy: Policy,
    /// The policy's file, watched for edits and reloaded on SIGHUP (`None`: the embedded default).
    pub policy_path: Option<PathBuf>,
    pub audit_path: PathBuf,
    /// The trust record (`None`: no place for one, so no tool earns trust).
    pub trust_path: Option<PathBuf>,
    /// The review queue (`None`: no place for one, so `queue` calls are refused).
    pub queue_path: Option<PathBuf>,
    /// Write a transcript of the session here.
    pub record: Option<PathBuf>,
    pub max_message_bytes: usize,
    pub max_depth: usize,
}

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One line read from a peer, checked and classified, with the byte credit it holds.
struct Inbound {
    line: Vec<u8>,
    read: Read,
    _credit: Option<OwnedSemaphorePermit>,
}

/// What a reader made of a frame.
enum Read {
    Message(Envelope),
    Refused(Refusal),
    Oversized { len: usize, id: Option<serde_json::Value> },
    Unterminated,
}

/// Bytes for a writer, with the credit to give back once written.
pub(crate) struct Outgoing {
    bytes: Vec<u8>,
    /// How many of the bytes are already written.
    written: usize,
    /// Held until the bytes are written (or dropped).
    credit: Option<OwnedSemaphorePermit>,
}

impl Outgoing {
    pub(crate) fn new(bytes: Vec<u8>, credit: Option<OwnedSemaphorePermit>) -> Self {
        Outgoing { bytes, written: 0, credit }
    }
}

/// Runs the proxy until the server is gone, and returns the exit code toolgate should report.
pub async fn run<I>(opts: Options, client_in: I, client_out: stdio::Destination) -> Result<i32, ProxyError>
where
    I: AsyncRead + Unpin + Send + 'static,
{
    // A file over the process's size limit (RLIMIT_FSIZE) then fails to grow, as on a full disk,
    // and the call whose audit record it is gets refused; by default SIGXFSZ would end toolgate.
    // SAFETY: installing SIG_IGN runs no handler code.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGXFSZ, nix::sys::signal::SigHandler::SigIgn) };
    let max = opts.max_message_bytes;
    let depth = opts.max_depth;
    let (server_in, server_out, exit, stopper, server_pid, identity) = match opts.server {
        Upstream::Command(command) => {
            let server = child::Server::spawn(&command)?;
            // The server's identity binds trust to the program (`crate::identity`). It is
            // hashed while the server starts and the first messages pass; the first judgement
            // that needs it waits. (Its thread starts once the server has: the server's start
            // is what the client waits for.)
            let identity = session_trust::ServerIdentity::hash(command)?;
            let (child, server_in, server_out, group) = server.into_parts();
            let pid = child.id();
            (
                server_in.into_owned_fd()?,
                ServerOutput::Child(server_out),
                Exit::Child(child),
                Stopper::Group(group),
                pid,
                identity,
            )
        }
        Upstream::Remote(target) => {
            // A remote server is its URL (`crate::identity`): there is no program to hash.
            let identity =
                session_trust::ServerIdentity::known(crate::identity::Identity::of_url(&target.origin_and_path()));
            tracing::info!("remote MCP server {}", target.origin_and_path());
            let bridge = crate::remote::start(target, max)?;
            let out = ServerOutput::Remote(bridge.from_server);
            (bridge.to_server, out, Exit::Bridge(bridge.ended), Stopper::Bridge(bridge.stop), None, identity)
        }
    };

    // The driver reads both peers itself: a line is framed, checked and handed to the core in
    // the same turn, with no task between them.
    let mut sources = Sources {
        client: Source::new(client_in, Peer::Client, Arc::new(Semaphore::new(IN_FLIGHT_BYTES)), max, depth),
        server: Source::new(server_out, Peer::Server, Arc::new(Semaphore::new(IN_FLIGHT_BYTES)), max, depth),
        server_first: false,
    };
    let (to_client, client_writer) = writer::PeerInput::start(client_out, Peer::Client);
    let (to_server, server_writer) = writer::PeerInput::start(stdio::Destination::pipe(server_in)?, Peer::Server);
    // Everything else (signals, the server's exit, people's answers, approvers, policy edits)
    // arrives on one queue of rare events, so that the dispatcher looks at one queue, not four,
    // for every message.
    let (rare_tx, mut rare) = mpsc::unbounded_channel();
    let signals = Signals {
        hangup: signal(SignalKind::hangup())?,
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    };
    let lifecycle_task = tokio::spawn(watch_lifecycle(exit, signals, rare_tx.clone()));

    let audit = AuditLog::open(&opts.audit_path);
    if let Some(problem) = audit.unavailable() {
        tracing::error!("{problem}; every tools/call will be refused");
    }
    let recorder = match &opts.record {
        Some(path) => Some(
            record::Recorder::create(path, &opts.server_name)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot write the recording {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let (human_tx, from_human) = mpsc::unbounded_channel();
    tokio::spawn(forward(from_human, rare_tx.clone(), |e| Ok(Event::Human(e))));
    let (approver_tx, from_approvers) = mpsc::unbounded_channel();
    tokio::spawn(forward(from_approvers, rare_tx.clone(), |n| Ok(Event::Approver(n))));
    let held = held::Held::new(human_tx, approver_socket::Approvers::listen(approver_tx));
    let mut session = Session::new(
        opts.server_name,
        Arc::new(opts.policy),
        audit,
        max,
        Instant::now(),
        opts.policy_path.clone(),
        opts.trust_path.clone(),
        identity,
    );
    session.recorder = recorder;
    session.place.pid = server_pid;

    let policy_path = opts.policy_path;
    let edited = rare_tx;
    let _watch = policy_path.as_deref().and_then(|p| {
        match reload::PolicyWatch::start(p, move || {
            let _ = edited.send(Ok(Event::PolicyEdited));
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("cannot watch {} for edits ({e}); send SIGHUP to reload it", p.display());
                None
            }
        }
    });
    let mut core = Dispatcher::new(route::Router::new(session, held, opts.queue_path), policy_path);
    let mut writers = Writers { to_client, to_server: Some(to_server), stopper: stopper.clone() };
    // A session that cannot go on still ends as every session does: what waits is answered.
    let driven = drive(&mut core, &mut sources, &mut rare, &mut writers).await;
    if let Err(e) = &driven {
        tracing::error!("the session cannot go on: {e}; every request still waiting gets an error");
    }
    lifecycle_task.abort();
    // Whatever the server started must not outlive it.
    stopper.signal(Signal::SIGKILL);
    let (last, code) = core.finish(Instant::now());
    writers.deliver(last);
    let Writers { to_client, .. } = writers;
    drop(to_client);
    // Give the writers a bounded time to flush: a client that stopped reading must not hang us.
    let flush = async {
        let _ = client_writer.await;
        let _ = server_writer.await;
    };
    if tokio::time::timeout(Duration::from_secs(2), flush).await.is_err() {
        tracing::warn!("could not deliver the last messages to the client in time");
    }
    driven?;
    Ok(code)
}

/// Feeds the core every event as it happens, with the time, and delivers what it produces,
/// until the server is gone.
async fn drive<C, S>(
    core: &mut Dispatcher,
    sources: &mut Sources<C, S>,
    rare: &mut mpsc::UnboundedReceiver<Rare>,
    writers: &mut Writers,
) -> io::Result<()>
where
    C: AsyncRead + Unpin,
    S: AsyncRead + Unpin,
{
    // One timer for every deadline: armed for the earliest, moved only when that changes.
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;

    // Messages handled since the writers were last flushed.
    let mut unflushed = 0;
    // Events handled, and after how many memory is next handed back (see `resident`): first
    // once the server's answer to `initialize` is on its way, so that it does not wait for it.
    let (mut handled, mut release_after) = (0u64, 2u64);
    while core.running() {
        rearm(timer.as_mut(), &mut armed, core.next_deadline());
        // What the last messages produced goes out once no more are at hand (a burst leaves in
        // one write, after its audit records in one write), and at the latest every
        // `FLUSH_EVERY` messages.
        let at_hand = if unflushed < FLUSH_EVERY {
            let reading = core.reading();
            std::future::poll_fn(|cx| Poll::Ready(next_event(cx, reading, rare, timer.as_mut(), &mut armed, sources)))
                .await
        } else {
            Poll::Pending
        };
        let event = match at_hand {
            Poll::Ready(event) => event,
            Poll::Pending => {
                let idle = unflushed < FLUSH_EVERY;
                writers.deliver(core.flush(Instant::now()));
                unflushed = 0;
                if idle && handled >= release_after {
                    resident::release();
                    release_after = handled.saturating_mul(resident::NEXT_RELEASE_AFTER);
                }
                if !idle {
                    // A peer whose last read drained its pipe is read again only once the
                    // reactor says it has more, and the reactor is asked when the driver
                    // yields: without this, a client that writes without pause would keep the
                    // server's answers (and the credit they hold) waiting.
                    tokio::task::yield_now().await;
                }
                // The flush may have named a deadline of its own (the audit log's head record).
                rearm(timer.as_mut(), &mut armed, core.next_deadline());
                let reading = core.reading();
                std::future::poll_fn(|cx| next_event(cx, reading, rare, timer.as_mut(), &mut armed, sources)).await
            }
        };
        core.handle(event?, Instant::now());
        unflushed += 1;
        handled += 1;
    }
    Ok(())
}

/// Points the timer at the core's next deadline, when that changed.
fn rearm(timer: Pin<&mut tokio::time::Sleep>, armed: &mut Option<Instant>, next: Option<Instant>) {
    if next != *armed {
        if let Some(at) = next {
            timer.reset(at);
        }
        *armed = next;
    }
}

/// The next event, if one is at hand; otherwise every source of one will wake the driver.
/// Rare events come first, so that a flood of messages cannot keep them waiting; while they
/// are quiet, each costs one look at an empty queue.
fn next_event<C, S>(
    cx: &mut Context<'_>,
    reading: bool,
    rare: &mut mpsc::UnboundedReceiver<Rare>,
    timer: Pin<&mut tokio::time::Sleep>,
    armed: &mut Option<Instant>,
    sources: &mut Sources<C, S>,
) -> Poll<io::Result<Event>>
where
    C: AsyncRead + Unpin,
    S: AsyncRead + Unpin,
{
    // (A closed queue of rare events has no more to say; the others still do.)
    if let Poll::Ready(Some(event)) = rare.poll_recv(cx) {
        return Poll::Ready(event);
    }
    if armed.is_some() && timer.poll(cx).is_ready() {
        *armed = None;
        return Poll::Ready(Ok(Event::Tick));
    }
    // A line, or a peer's end (`Event::Line`, `Event::Closed`).
    if reading && let Poll::Ready(event) = sources.poll(cx) {
        return Poll::Ready(Ok(event));
    }
    Poll::Pending
}

/// Where the dispatcher's output goes: the two writers and what stops the server.
struct Writers {
    to_client: writer::PeerInput,
    to_server: Option<writer::PeerInput>,
    stopper: Stopper,
}

impl Writers {
    /// Queues the lines, writes what fits now, then signals and closes as the output says.
    fn deliver(&mut self, output: dispatcher::Output) {
        let dispatcher::Output { to_client, to_server, signals, close_server_input } = output;
        self.to_client.send_all(to_client);
        if let Some(server) = &self.to_server {
            server.send_all(to_server);
        }
        self.to_client.flush();
        if let Some(server) = &self.to_server {
            server.flush();
        }
        if close_server_input {
            // The writer finishes what is queued, then closes the pipe.
            self.to_server = None;
        }
        for signal in signals {
            self.stopper.signal(signal);
        }
    }
}

/// Passes what one producer of rare events sends on to the dispatcher's queue of them.
async fn forward<T>(mut from: mpsc::UnboundedReceiver<T>, to: mpsc::UnboundedSender<Rare>, wrap: fn(T) -> Rare) {
    while let Some(item) = from.recv().await {
        if to.send(wrap(item)).is_err() {
            return;
        }
    }
}

/// The two sides toolgate stands between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Client,
    Server,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Peer::Client => "client",
            Peer::Server => "server",
        })
    }
}

/// The signals toolgate answers to.
struct Signals {
    hangup: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

/// A rare event in the proxy's life (signals, the server's exit, people's answers, approvers,
/// policy edits), or why the server's exit could not be awaited.
type Rare = io::Result<Event>;

/// What stops the server: signals to its process group, or to the bridge to a remote one.
#[derive(Clone)]
enum Stopper {
    Group(child::Group),
    Bridge(crate::remote::Stop),
}

impl Stopper {
    /// SIGKILL ends a bridge at once; any other signal ends its session in order.
    fn signal(&self, signal: Signal) {
        match self {
            Stopper::Group(group) => group.signal(signal),
            Stopper::Bridge(stop) if signal == Signal::SIGKILL => stop.kill(),
            Stopper::Bridge(stop) => stop.terminate(),
        }
    }
}

/// The server's end: a child's exit, or the bridge's.
enum Exit {
    Child(tokio::process::Child),
    Bridge(tokio::task::JoinHandle<i32>),
}

impl Exit {
    /// Waits for the end. A bridge's ends as a process's would: its code, or SIGKILL when it
    /// was ended at once.
    async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        match self {
            Exit::Child(child) => child.wait().await,
            Exit::Bridge(bridge) => Ok(match bridge.await {
                Ok(code) => std::process::ExitStatus::from_raw((code & 0xff) << 8),
                Err(_) => std::process::ExitStatus::from_raw(Signal::SIGKILL as i32),
            }),
        }
    }
}

/// The server's output: a child's stdout, or the bridge's pipe.
enum ServerOutput {
    Child(tokio::process::ChildStdout),
    Remote(tokio::net::unix::pipe::Receiver),
}

impl AsyncRead for ServerOutput {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerOutput::Child(out) => Pin::new(out).poll_read(cx, buf),
            ServerOutput::Remote(out) => Pin::new(out).poll_read(cx, buf),
        }
    }
}

/// Waits for the server to exit and for signals, and tells the dispatcher.
async fn watch_lifecycle(mut exit: Exit, mut signals: Signals, tx: mpsc::UnboundedSender<Rare>) {
    let mut running = true;
    loop {
        let event = tokio::select! {
            exited = exit.wait(), if running => {
                running = false;
                exited.map(Event::Exited)
            }
            Some(()) = signals.interrupt.recv() => Ok(Event::Interrupt),
            Some(()) = signals.terminate.recv() => Ok(Event::Terminate),
            Some(()) = signals.hangup.recv() => Ok(Event::Hangup),
            // The runtime is shutting down.
            else => return,
        };
        if tx.send(event).is_err() {
            return;
        }
    }
}

/// Both peers' outputs, read in turns.
struct Sources<C, S> {
    client: Source<C>,
    server: Source<S>,
    /// Which peer is looked at first next time: they take turns, so that a peer that writes
    /// without pause cannot keep the other's lines waiting.
    server_first: bool,
}

impl<C: AsyncRead + Unpin, S: AsyncRead + Unpin> Sources<C, S> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        self.server_first = !self.server_first;
        if self.server_first {
            if let Poll::Ready(event) = self.server.poll(cx) {
                return Poll::Ready(event);
            }
            self.client.poll(cx)
        } else {
            if let Poll::Ready(event) = self.client.poll(cx) {
                return Poll::Ready(event);
            }
            self.server.poll(cx)
        }
    }
}

/// A wait for byte credit.
type CreditWait = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// One peer's output: framed, checked, and charged to its direction's byte credit.
struct Source<R> {
    peer: Peer,
    lines: LineReader<R>,
    credit: Arc<Semaphore>,
    depth: usize,
    /// A line read while its direction had no credit left, until the credit comes back.
    waiting: Option<(Vec<u8>, Read, CreditWait)>,
    /// It ended (or could no longer be read, or be charged) and said so.
    closed: bool,
}

impl<R: AsyncRead + Unpin> Source<R> {
    fn new(reader: R, peer: Peer, credit: Arc<Semaphore>, max: usize, depth: usize) -> Self {
        Source { peer, lines: LineReader::new(reader, max), credit, depth, waiting: None, closed: false }
    }

    /// The next line, with its credit; or the peer's end, once.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if self.closed {
            return Poll::Pending;
        }
        if let Some((_, _, wait)) = &mut self.waiting {
            let granted = ready!(wait.as_mut().poll(cx));
            let (line, read, _) = self.waiting.take().expect("a line waits for credit");
            return Poll::Ready(match granted {
                Ok(permit) => Event::Line(self.peer, Inbound { line, read, _credit: Some(permit) }),
                Err(_) => self.close(),
            });
        }
        let frame = match ready!(self.lines.poll_next(cx)) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Poll::Ready(self.close()),
            Err(e) => {
                tracing::warn!("cannot read from the {}: {e}", self.peer);
                return Poll::Ready(self.close());
            }
        };
        let (line, read) = classify(frame, self.depth);
        let wanted = u32::try_from((line.len() + MESSAGE_OVERHEAD).min(IN_FLIGHT_BYTES)).unwrap_or(u32::MAX);
        match Arc::clone(&self.credit).try_acquire_many_owned(wanted) {
            Ok(permit) => Poll::Ready(Event::Line(self.peer, Inbound { line, read, _credit: Some(permit) })),
            Err(TryAcquireError::Closed) => Poll::Ready(self.close()),
            Err(TryAcquireError::NoPermits) => {
                // Nothing more is read from this peer until what it sent before is written.
                self.waiting = Some((line, read, Box::pin(Arc::clone(&self.credit).acquire_many_owned(wanted))));
                self.poll(cx)
            }
        }
    }

    fn close(&mut self) -> Event {
        self.closed = true;
        Event::Closed(self.peer)
    }
}

/// What a line is: a message, a line the strict check refused, or what was kept of one too
/// long or never ended.
fn classify(frame: Frame, depth: usize) -> (Vec<u8>, Read) {
    match frame {
        Frame::Line(line) => {
            let read = match envelope::parse(&line, depth) {
                Ok(env) => Read::Message(env),
                Err(refusal) => Read::Refused(refusal),
            };
            (line, read)
        }
        // (The wire's reader reads a long line to its end, so it never reports one early.)
        Frame::Oversized { prefix, len } | Frame::TooLong { prefix, seen: len } => {
            let id = envelope::sniff_id(&prefix);
            (prefix, Read::Oversized { len, id })
        }
        Frame::Unterminated(rest) => (rest, Read::Unterminated),
    }
}
