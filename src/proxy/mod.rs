//! The proxy: toolgate between an MCP client (its own stdin/stdout) and the server it launches.
//!
//! Four tasks own the four pipe ends (a reader and a writer per side). Readers frame and check
//! lines and hand them to one dispatcher, which owns every piece of session state, decides, and
//! hands bytes to the writers. Writers never block the dispatcher (their queues are unbounded),
//! and each reader waits for byte credit from its own direction's writer, so a slow peer slows
//! only the traffic going to it, and memory stays bounded.

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
mod resident;
#[doc(hidden)]
pub mod request_state; // public for the fuzz targets (fuzz/)
mod review_queue;
mod route;
mod session;
mod session_trust;
pub mod stdio;
mod writer;

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncRead;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
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

/// Everything `toolgate run` needs.
pub struct Options {
    /// The server command and its arguments.
    pub command: Vec<OsString>,
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
    // The server's identity binds trust to the program (`crate::identity`). It is hashed while
    // the server starts and the first messages pass; the first judgement that needs it waits.
    let identity = session_trust::ServerIdentity::hash(opts.command.clone())?;
    let server = child::Server::spawn(&opts.command)?;
    let (child, server_in, server_out, group) = server.into_parts();
    let server_pid = child.id();
    let max = opts.max_message_bytes;
    let depth = opts.max_depth;

    let to_server_credit = Arc::new(Semaphore::new(IN_FLIGHT_BYTES));
    let to_client_credit = Arc::new(Semaphore::new(IN_FLIGHT_BYTES));
    // Both readers feed one queue: lines are taken in the order they were read, whichever side
    // they came from, and the dispatcher waits on one queue instead of two.
    let (arrival_tx, mut arrivals) = mpsc::channel(256);
    tokio::spawn(read_loop(client_in, max, depth, to_server_credit, arrival_tx.clone(), Peer::Client));
    tokio::spawn(read_loop(server_out, max, depth, to_client_credit, arrival_tx, Peer::Server));
    let (to_client, client_writer) = writer::PeerInput::start(client_out, Peer::Client);
    let (to_server, server_writer) =
        writer::PeerInput::start(stdio::Destination::pipe(server_in.into_owned_fd()?)?, Peer::Server);
    // Everything else (signals, the server's exit, people's answers, approvers, policy edits)
    // arrives on one queue of rare events, so that the dispatcher looks at one queue, not four,
    // for every message.
    let (rare_tx, mut rare) = mpsc::unbounded_channel();
    let signals = Signals {
        hangup: signal(SignalKind::hangup())?,
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    };
    let lifecycle_task = tokio::spawn(watch_lifecycle(child, signals, rare_tx.clone()));

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
    let mut writers = Writers { to_client, to_server: Some(to_server), group };
    // A session that cannot go on still ends as every session does: what waits is answered.
    let driven = drive(&mut core, &mut arrivals, &mut rare, &mut writers).await;
    if let Err(e) = &driven {
        tracing::error!("the session cannot go on: {e}; every request still waiting gets an error");
    }
    lifecycle_task.abort();
    // Whatever the server started must not outlive it.
    group.signal(Signal::SIGKILL);
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
async fn drive(
    core: &mut Dispatcher,
    arrivals: &mut mpsc::Receiver<Event>,
    rare: &mut mpsc::UnboundedReceiver<Rare>,
    writers: &mut Writers,
) -> io::Result<()> {
    // One timer for every deadline: armed for the earliest, moved only when that changes.
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;

    // Messages handled since the writers were last flushed.
    let mut unflushed = 0;
    // Events handled, and after how many memory is next handed back (see `resident`): first
    // after the client's `initialize` is forwarded, while the server starts.
    let (mut handled, mut release_after) = (0u64, 1u64);
    while core.running() {
        // What the last messages produced goes out once no more are at hand (a burst leaves in
        // one write, after its audit records in one write), and at the latest every
        // `FLUSH_EVERY` messages.
        unflushed += 1;
        if arrivals.is_empty() || unflushed >= FLUSH_EVERY {
            writers.deliver(core.flush(Instant::now()));
            unflushed = 0;
            if handled >= release_after && arrivals.is_empty() {
                resident::release();
                release_after = handled.saturating_mul(resident::NEXT_RELEASE_AFTER);
            }
        }
        let next = core.next_deadline();
        if next != armed {
            if let Some(at) = next {
                timer.as_mut().reset(at);
            }
            armed = next;
        }
        // Rare events first, so that a flood of messages cannot keep them waiting; while they
        // are quiet, each costs one look at an empty queue.
        let event = tokio::select! {
            biased;
            // The one rare event that can fail: waiting for the server's exit.
            Some(event) = rare.recv() => event?,
            () = &mut timer, if armed.is_some() => {
                armed = None;
                Event::Tick
            },
            // A line, or a peer's end (`Event::Line`, `Event::Closed`).
            Some(arrival) = arrivals.recv(), if core.reading() => arrival,
        };
        core.handle(event, Instant::now());
        handled += 1;
    }
    Ok(())
}

/// Where the dispatcher's output goes: the two writers and the server's process group.
struct Writers {
    to_client: writer::PeerInput,
    to_server: Option<writer::PeerInput>,
    group: child::Group,
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
            self.group.signal(signal);
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

/// Waits for the server to exit and for signals, and tells the dispatcher.
async fn watch_lifecycle(mut child: tokio::process::Child, mut signals: Signals, tx: mpsc::UnboundedSender<Rare>) {
    let mut running = true;
    loop {
        let event = tokio::select! {
            exited = child.wait(), if running => {
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

/// Frames and checks one peer's lines and hands them to the dispatcher.
async fn read_loop<R: AsyncRead + Unpin>(
    reader: R,
    max: usize,
    depth: usize,
    credit: Arc<Semaphore>,
    tx: mpsc::Sender<Event>,
    peer: Peer,
) {
    let mut lines = LineReader::new(reader, max);
    loop {
        let frame = match lines.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("cannot read from the {peer}: {e}");
                break;
            }
        };
        let (line, read) = match frame {
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
        };
        let wanted = u32::try_from((line.len() + MESSAGE_OVERHEAD).min(IN_FLIGHT_BYTES)).unwrap_or(u32::MAX);
        let Ok(permit) = credit.clone().acquire_many_owned(wanted).await else {
            break;
        };
        if tx.send(Event::Line(peer, Inbound { line, read, _credit: Some(permit) })).await.is_err() {
            return;
        }
    }
    let _ = tx.send(Event::Closed(peer)).await;
}
