//! `toolgate approve`: answers the pending approvals of every running toolgate of this user,
//! from any terminal.
//!
//! It connects to each proxy's socket in the private runtime folder (see
//! `human::approver_protocol`), and to each new one as it appears, subscribes, and shows what they hold
//! on the same prompt as the proxy's own terminal channel (one at a time, with the same keys).
//! With `--json` it is a filter for scripts and other front ends: events as JSON lines on
//! stdout, answers as JSON lines on stdin.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::exit::ExitCode;
use crate::human::approver_protocol::{self as protocol, AnswerParams, Approval};
use crate::human::terminal::{self, Terminal};
use crate::human::{Answer, Command, Event, Withdrawn};
use crate::visible::visible;

/// A running proxy, known by its process id.
type Pid = u32;

/// What happens on a proxy's connection, for the main loop.
enum News {
    Connected {
        pid: Pid,
        server: String,
        out: UnboundedSender<Vec<u8>>,
        pending: Vec<Approval>,
    },
    Offered {
        pid: Pid,
        approval: Approval,
    },
    Withdrawn {
        pid: Pid,
        ticket: u64,
        why: Withdrawn,
    },
    /// The proxy tells the person something: a call that ran under `notify`, a tool that
    /// changed. `params` as the proxy sent them (`text`, `server`, `tool`?).
    Notice {
        pid: Pid,
        params: Value,
    },
    /// The proxy's reply to an answer.
    Replied {
        pid: Pid,
        ticket: u64,
        error: Option<String>,
    },
    Gone {
        pid: Pid,
    },
    /// A socket appeared in the folder.
    Appeared(PathBuf),
}

/// Where approvals are shown and answers come from.
enum Front {
    Terminal { terminal: Terminal, events: tokio::sync::mpsc::UnboundedReceiver<Event> },
    Json,
}

/// Why `toolgate approve` stopped short.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot use the runtime folder: {0}")]
    Folder(#[source] std::io::Error),
    #[error("toolgate approve needs a terminal ({0}); use --json from scripts")]
    NoTerminal(#[source] terminal::Unavailable),
    #[error("cannot open the terminal: {0}")]
    Terminal(#[source] std::io::Error),
    #[error("cannot handle SIGINT: {0}")]
    Signal(#[source] std::io::Error),
    #[error("the terminal can no longer be used: {0}")]
    TerminalLost(String),
}

impl Error {
    /// The status the process exits with after this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::NoTerminal(_) => ExitCode::USAGE,
            Error::Folder(_) | Error::Terminal(_) | Error::Signal(_) | Error::TerminalLost(_) => ExitCode::FAILURE,
        }
    }
}

/// Runs until interrupted (or, with `--json`, until stdin ends).
pub async fn run(json: bool) -> Result<ExitCode, Error> {
    let folder = protocol::folder();
    protocol::private_folder(&folder).map_err(Error::Folder)?;
    let (news_tx, mut news) = unbounded_channel();
    let _watch = match watch(&folder, news_tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("cannot watch {} for new proxies ({e}); only running ones are shown", folder.display());
            None
        }
    };
    let mut front = if json {
        Front::Json
    } else {
        terminal::available().map_err(Error::NoTerminal)?;
        let (tx, events) = unbounded_channel();
        let terminal = Terminal::start(tx).map_err(Error::Terminal)?;
        Front::Terminal { terminal, events }
    };
    let mut state = State::default();
    for path in sockets(&folder) {
        state.connect(path, &news_tx);
    }
    let mut stdin = json.then(|| BufReader::new(tokio::io::stdin()).lines());
    let intro = format!(
        "approve: watching {} for running toolgates ({} now); their approvals appear here (Ctrl-C quits)",
        folder.display(),
        state.connecting.len()
    );
    match &front {
        Front::Terminal { terminal, .. } => terminal.send(Command::Notice(intro)),
        Front::Json => tracing::info!("{intro}"),
    }
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map_err(Error::Signal)?;
    loop {
        tokio::select! {
            Some(item) = news.recv() => state.on_news(item, &mut front, &news_tx),
            event = terminal_event(&mut front) => match event {
                Some(Event::Answered { ticket, answer }) => state.answer_local(ticket, &answer),
                Some(Event::Lost { why, .. }) => return Err(Error::TerminalLost(why)),
                // The terminal's thread ended without a word.
                None => return Ok(ExitCode::FAILURE),
            },
            line = next_line(&mut stdin) => match line {
                Some(line) => state.answer_json(&line),
                None => return Ok(ExitCode::OK),
            },
            _ = interrupt.recv() => return Ok(ExitCode::INTERRUPTED),
        }
    }
}

async fn terminal_event(front: &mut Front) -> Option<Event> {
    match front {
        Front::Terminal { events, .. } => events.recv().await,
        Front::Json => std::future::pending().await,
    }
}

async fn next_line(stdin: &mut Option<tokio::io::Lines<BufReader<tokio::io::Stdin>>>) -> Option<String> {
    match stdin {
        Some(lines) => lines.next_line().await.ok().flatten(),
        None => std::future::pending().await,
    }
}

#[derive(Default)]
struct State {
    /// Sockets being connected to, so a socket is never joined twice.
    connecting: Vec<PathBuf>,
    proxies: HashMap<Pid, Proxy>,
    /// The terminal's tickets: which proxy's approval each one shows.
    local: HashMap<u64, (Pid, u64)>,
    next_local: u64,
}

struct Proxy {
    server: String,
    out: UnboundedSender<Vec<u8>>,
    /// This proxy's pending approvals shown on the terminal: its ticket to ours.
    shown: HashMap<u64, u64>,
}

impl State {
    fn connect(&mut self, path: PathBuf, news: &UnboundedSender<News>) {
        if self.connecting.contains(&path) {
            return;
        }
        let Some(pid) = pid_of(&path) else { return };
        if self.proxies.contains_key(&pid) {
            return;
        }
        self.connecting.push(path.clone());
        tokio::spawn(follow(path, pid, news.clone()));
    }

    fn on_news(&mut self, news: News, front: &mut Front, tx: &UnboundedSender<News>) {
        match news {
            News::Appeared(path) => self.connect(path, tx),
            News::Connected { pid, server, out, pending } => {
                self.connecting.retain(|p| pid_of(p) != Some(pid));
                self.proxies.insert(pid, Proxy { server: server.clone(), out, shown: HashMap::new() });
                match front {
                    Front::Terminal { terminal, .. } => {
                        let server = visible(&server);
                        terminal.send(Command::Notice(format!("connected to toolgate {pid} (server {server})")));
                    }
                    Front::Json => emit(&json!({"event": "connected", "proxy": pid, "server": server})),
                }
                for approval in pending {
                    self.offered(pid, approval, front);
                }
            }
            News::Offered { pid, approval } => self.offered(pid, approval, front),
            News::Withdrawn { pid, ticket, why } => match front {
                Front::Terminal { terminal, .. } => {
                    if let Some(local) = self.proxies.get_mut(&pid).and_then(|p| p.shown.remove(&ticket)) {
                        self.local.remove(&local);
                        terminal.send(Command::Withdraw { ticket: local, why });
                    }
                }
                Front::Json => emit(&json!({"event": "withdrawn", "proxy": pid, "ticket": ticket, "why": why})),
            },
            News::Notice { pid, params } => match front {
                Front::Terminal { terminal, .. } => {
                    let text = params.get("text").and_then(Value::as_str).unwrap_or_default();
                    terminal.send(Command::Notice(format!("toolgate {pid}: {}", visible(text))));
                }
                Front::Json => {
                    let mut event = json!({"event": "notice", "proxy": pid});
                    for key in ["server", "tool", "text"] {
                        if let Some(value) = params.get(key) {
                            event[key] = value.clone();
                        }
                    }
                    emit(&event);
                }
            },
            News::Replied { pid, ticket, error } => match front {
                Front::Terminal { terminal, .. } => {
                    if let Some(error) = error {
                        let error = visible(&error);
                        terminal.send(Command::Notice(format!("toolgate {pid} did not take the answer: {error}")));
                    }
                }
                Front::Json => {
                    emit(
                        &json!({"event": "answered", "proxy": pid, "ticket": ticket, "settled": error.is_none(), "error": error}),
                    );
                }
            },
            News::Gone { pid } => {
                self.connecting.retain(|p| pid_of(p) != Some(pid));
                let Some(proxy) = self.proxies.remove(&pid) else { return };
                match front {
                    Front::Terminal { terminal, .. } => {
                        for local in proxy.shown.values() {
                            self.local.remove(local);
                            terminal.send(Command::Withdraw { ticket: *local, why: Withdrawn::Cancelled });
                        }
                        let server = visible(&proxy.server);
                        terminal.send(Command::Notice(format!("toolgate {pid} (server {server}) ended")));
                    }
                    Front::Json => emit(&json!({"event": "disconnected", "proxy": pid})),
                }
            }
        }
    }

    fn offered(&mut self, pid: Pid, approval: Approval, front: &mut Front) {
        match front {
            Front::Terminal { terminal, .. } => {
                let Some(proxy) = self.proxies.get_mut(&pid) else { return };
                if proxy.shown.contains_key(&approval.ticket) {
                    return;
                }
                self.next_local += 1;
                let local = self.next_local;
                proxy.shown.insert(approval.ticket, local);
                self.local.insert(local, (pid, approval.ticket));
                let mut request = approval.to_request(local, Instant::now());
                request.call.server = format!("{} (toolgate {pid})", request.call.server).into();
                terminal.send(Command::Offer(request));
            }
            Front::Json => emit(&json!({"event": "offered", "proxy": pid, "approval": approval})),
        }
    }

    fn answer_local(&mut self, local: u64, answer: &Answer) {
        let Some((pid, ticket)) = self.local.remove(&local) else { return };
        if let Some(proxy) = self.proxies.get_mut(&pid) {
            proxy.shown.remove(&ticket);
        }
        self.send_answer(pid, AnswerParams::new(ticket, answer));
    }

    /// One line of `--json` input: `{"proxy": PID, "ticket": N, "decision": ..., "reason"?, "arguments"?}`.
    fn answer_json(&mut self, line: &str) {
        #[derive(Deserialize)]
        struct Line {
            proxy: Pid,
            #[serde(flatten)]
            answer: AnswerParams,
        }
        if line.trim().is_empty() {
            return;
        }
        let parsed = serde_json::from_str::<Line>(line).map_err(|e| e.to_string());
        let parsed = parsed.and_then(|l| l.answer.answer().map(|_| l));
        match parsed {
            Ok(Line { proxy, answer }) if self.proxies.contains_key(&proxy) => self.send_answer(proxy, answer),
            Ok(Line { proxy, answer }) => emit(&json!({"event": "answered", "proxy": proxy, "ticket": answer.ticket,
                "settled": false, "error": format!("no running toolgate {proxy} is connected")})),
            Err(e) => emit(&json!({"event": "error", "error": format!("cannot read the answer line: {e}")})),
        }
    }

    fn send_answer(&mut self, pid: Pid, params: AnswerParams) {
        let Some(proxy) = self.proxies.get(&pid) else { return };
        // The id names the ticket, so the reply says which answer it is about.
        let id = format!("answer-{}", params.ticket);
        let message = json!({"jsonrpc": "2.0", "id": id, "method": "answer", "params": params});
        let _ = proxy.out.send(protocol::line(&message));
    }
}

/// One line of `--json` output: exact JSON, with every control, bidi and zero-width character
/// in a string written as a `\uXXXX` escape, so a terminal shows it and never runs it.
fn emit(event: &Value) {
    let mut line = crate::visible::to_json(event).unwrap_or_default();
    line.push('\n');
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(line.as_bytes());
    let _ = stdout.flush();
}

/// The process id in a socket's name (`PID.sock`).
fn pid_of(path: &Path) -> Option<Pid> {
    path.file_name()?.to_str()?.strip_suffix(".sock")?.parse().ok()
}

/// The sockets in the folder now.
fn sockets(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| pid_of(p).is_some()).collect();
    found.sort();
    found
}

fn watch(folder: &Path, news: UnboundedSender<News>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Create(_)) {
            for path in event.paths {
                if pid_of(&path).is_some() {
                    let _ = news.send(News::Appeared(path));
                }
            }
        }
    })?;
    watcher.watch(folder, notify::RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Connects to one proxy and relays what it says until it goes away.
async fn follow(path: PathBuf, pid: Pid, news: UnboundedSender<News>) {
    let Some(stream) = connect(&path, pid).await else {
        let _ = news.send(News::Gone { pid });
        return;
    };
    if let Err(why) = protocol::same_user(&stream) {
        tracing::warn!("not using {}: {why}", path.display());
        let _ = news.send(News::Gone { pid });
        return;
    }
    let (read, mut write) = stream.into_split();
    let (out, mut out_rx) = unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(line) = out_rx.recv().await {
            if write.write_all(&line).await.is_err() {
                break;
            }
        }
    });
    let _ = out.send(protocol::line(&json!({"jsonrpc": "2.0", "id": "subscribe", "method": "subscribe"})));
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            tracing::warn!("toolgate {pid} sent a line that is not JSON; ignored");
            continue;
        };
        let item = match (message.get("id").and_then(Value::as_str), message.get("method").and_then(Value::as_str)) {
            (Some("subscribe"), None) => {
                let server = message.pointer("/result/proxy/server").and_then(Value::as_str).unwrap_or("?").to_owned();
                let pending = message
                    .pointer("/result/pending")
                    .cloned()
                    .and_then(|p| serde_json::from_value(p).ok())
                    .unwrap_or_default();
                News::Connected { pid, server, out: out.clone(), pending }
            }
            (Some(id), None) if id.starts_with("answer-") => {
                let ticket = id["answer-".len()..].parse().unwrap_or(0);
                let error = message.pointer("/error/message").and_then(Value::as_str).map(str::to_owned);
                News::Replied { pid, ticket, error }
            }
            (None, Some("offered")) => match message.get("params").cloned().map(serde_json::from_value) {
                Some(Ok(approval)) => News::Offered { pid, approval },
                _ => {
                    tracing::warn!("toolgate {pid} offered an approval this approver cannot read; ignored");
                    continue;
                }
            },
            (None, Some("notice")) => News::Notice { pid, params: message.get("params").cloned().unwrap_or_default() },
            (None, Some("withdrawn")) => {
                let ticket = message.pointer("/params/ticket").and_then(Value::as_u64).unwrap_or(0);
                let why = message.pointer("/params/why").cloned().and_then(|w| serde_json::from_value(w).ok());
                News::Withdrawn { pid, ticket, why: why.unwrap_or(Withdrawn::Cancelled) }
            }
            _ => continue,
        };
        if news.send(item).is_err() {
            break;
        }
    }
    writer.abort();
    let _ = news.send(News::Gone { pid });
}

/// Connects to a proxy's socket. A socket whose process is gone is removed; one whose process
/// runs but does not answer yet (it is binding right now) is tried again briefly.
async fn connect(path: &Path, pid: Pid) -> Option<UnixStream> {
    for attempt in 0..10 {
        match UnixStream::connect(path).await {
            Ok(stream) => return Some(stream),
            Err(e) if !process_exists(pid) => {
                tracing::debug!("{} belongs to a toolgate that is gone ({e}); removing it", path.display());
                let _ = std::fs::remove_file(path);
                return None;
            }
            Err(e) if attempt == 9 => {
                tracing::warn!("cannot connect to toolgate {pid} at {}: {e}", path.display());
                return None;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    None
}

fn process_exists(pid: Pid) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    !matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None), Err(nix::errno::Errno::ESRCH))
}
