//! The terminal channel: prompts on the controlling terminal (`/dev/tty`), never on stdin or
//! stdout, which carry JSON-RPC.
//!
//! One thread owns the terminal. It shows one request at a time (the others wait in line),
//! redraws the time left every second, and reads keys in a raw mode it always restores. It
//! only shows and collects: deadlines belong to the dispatcher, which withdraws what ran out.
//!
//! dialoguer, the crate users expected here, blocks without a timeout, so a prompt could not
//! count down, be withdrawn when the client cancels, or time out, and it raises SIGINT on
//! Ctrl-C where toolgate must deny; so this is raw termios on `/dev/tty` through nix.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::Once;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{self, FlushArg, LocalFlags, SetArg, Termios};
use serde_json::{Map, Value};

use super::{Answer, Command, Event, Kind, Remember, Request, Withdrawn};
use crate::visible::{self, visible, visible_lines};

/// Why the terminal cannot be used right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Whether toolgate may prompt on its controlling terminal now: it has one, it is in the
/// terminal's foreground process group, and no other program holds the terminal in raw mode
/// (a full-screen client such as Claude Code owns the screen then, so asking inside it, by
/// elicitation, is the way to reach its user).
pub fn available() -> Result<(), Unavailable> {
    check(false)
}

/// Like [`available`]; `ours` says toolgate's own terminal thread is running, whose open
/// prompt is what holds the terminal raw.
fn check(ours: bool) -> Result<(), Unavailable> {
    ignore_background_stops();
    let tty = open_tty().map_err(|e| Unavailable(format!("no controlling terminal ({e})")))?;
    let foreground = nix::unistd::tcgetpgrp(tty.as_fd())
        .map_err(|e| Unavailable(format!("cannot read the terminal's foreground ({e})")))?;
    if foreground != nix::unistd::getpgrp() {
        return Err(Unavailable("toolgate is not in the terminal's foreground".into()));
    }
    let mode =
        termios::tcgetattr(tty.as_fd()).map_err(|e| Unavailable(format!("cannot read the terminal's mode ({e})")))?;
    if !ours && !mode.local_flags.contains(LocalFlags::ICANON) {
        return Err(Unavailable("another program holds the terminal in raw mode".into()));
    }
    Ok(())
}

/// A terminal read or write from the background then fails instead of stopping toolgate.
fn ignore_background_stops() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in [nix::sys::signal::Signal::SIGTTIN, nix::sys::signal::Signal::SIGTTOU] {
            // SAFETY: installing SIG_IGN has no handler code that could be unsound.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) };
        }
    });
}

fn open_tty() -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open("/dev/tty")
}

/// The thread that owns the terminal.
pub struct Terminal {
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Terminal {
    /// Starts the thread; its answers arrive on `events`.
    pub fn start(events: tokio::sync::mpsc::UnboundedSender<Event>) -> std::io::Result<Terminal> {
        let tty = open_tty()?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("toolgate-terminal".into())
            .spawn(move || Owner::new(tty, events).run(rx))?;
        Ok(Terminal { tx: Some(tx), thread: Some(thread) })
    }

    pub fn send(&self, command: Command) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(command);
        }
    }

    /// Whether this terminal can still be used (toolgate still in its foreground).
    pub fn usable(&self) -> Result<(), Unavailable> {
        check(true)
    }
}

/// What the person is typing into.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Choose,
    Reason,
    ConfirmRemember,
}

/// The result of one complete line of input.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Answer(Answer),
    /// Show this text, then the prompt again.
    Say(String),
    /// Ask for the reason line.
    AskReason,
    /// Show the rule and ask to confirm writing it.
    ConfirmRemember(String),
    /// Write the rule, then allow.
    WriteRule,
    /// Open the arguments in an editor.
    Edit,
}

/// Reads a submitted line in a stage; a pure function of the request and the text.
fn step(request: &Request, stage: &Stage, line: &str) -> Step {
    let line = line.trim();
    match (stage, request.kind, line) {
        (Stage::Reason, _, reason) => {
            Step::Answer(Answer::Deny { reason: (!reason.is_empty()).then(|| reason.to_owned()) })
        }
        (Stage::ConfirmRemember, _, "y") => Step::WriteRule,
        (Stage::ConfirmRemember, _, _) => Step::Say("not written".into()),
        (Stage::Choose, Kind::Hold, "c") => Step::Answer(Answer::Deny { reason: None }),
        (Stage::Choose, Kind::Hold, _) => {
            Step::Say("type c and Enter to cancel it; otherwise it runs when the time is up".into())
        }
        (Stage::Choose, Kind::Approve, "y") => Step::Answer(Answer::AllowOnce),
        (Stage::Choose, Kind::Approve, "a") => Step::Answer(Answer::AllowForSession),
        (Stage::Choose, Kind::Approve, "n") => Step::AskReason,
        (Stage::Choose, Kind::Approve, "e") => Step::Edit,
        (Stage::Choose, Kind::Approve, "v") => Step::Say(whole_arguments(&request.call.arguments)),
        (Stage::Choose, Kind::Approve, "r") => match &request.remember {
            Remember::Possible { policy, rule } => {
                let policy = policy.display().to_string();
                Step::ConfirmRemember(format!(
                    "this rule would be added to {}:\n\n{}",
                    visible(&policy),
                    visible_lines(rule)
                ))
            }
            Remember::Impossible(why) => Step::Say(format!("cannot remember this: {}", visible(why))),
        },
        (Stage::Choose, Kind::Approve, _) => Step::Say("answer y, a, n, e, r or v, then Enter (Ctrl-C denies)".into()),
    }
}

/// The prompt as text (without the answer line); `waiting` is how many more are in line.
pub fn render(request: &Request, waiting: usize) -> String {
    let mut out = String::new();
    let title = match request.kind {
        Kind::Approve => "toolgate: approval needed",
        Kind::Hold => "toolgate: a call is held",
    };
    out.push_str(&format!("\n── {title} {}\n", "─".repeat(60usize.saturating_sub(title.len()))));
    // Every string below comes from the server, the model or a policy file: shown escaped
    // (`visible`), and a name that needed it is flagged, since it may pose as another.
    let call = &request.call;
    out.push_str(&format!("  server   {}\n", visible(&call.server)));
    if let Some(warning) = visible::warning("the server's name", &call.server) {
        out.push_str(&format!("           {warning}\n"));
    }
    out.push_str(&format!("  tool     {}\n", visible(&call.tool)));
    if let Some(warning) = visible::warning("the tool's name", &call.tool) {
        out.push_str(&format!("           {warning}\n"));
    }
    let args = visible::to_json_pretty(&Value::Object(super::shortened(&call.arguments, SHORT, ", v shows it whole")))
        .unwrap_or_default();
    for (i, line) in args.lines().enumerate() {
        out.push_str(if i == 0 { "  args     " } else { "           " });
        out.push_str(line);
        out.push('\n');
    }
    let mut why = format!("{} · tier {}", call.gate.as_str(), call.tier.as_str());
    for rule in call.deciding() {
        why.push_str(&format!(" · rule \"{}\"", visible(&rule.rule)));
        if let Some(r) = &rule.reason {
            why.push_str(&format!(": {}", visible(r)));
        }
    }
    if call.deciding().next().is_none()
        && let Some(reason) = &call.reason
    {
        why.push_str(&format!(" · {}", visible(reason)));
    }
    out.push_str(&format!("  why      {why}\n"));
    if waiting > 0 {
        out.push_str(&format!(
            "  waiting  {waiting} more call{} after this one\n",
            if waiting == 1 { "" } else { "s" }
        ));
    }
    match request.kind {
        Kind::Approve => out.push_str(&format!(
            "  [y] allow once  [a] allow {} for this session  [n] deny  [e] edit  [r] remember  [v] view whole\n",
            visible(&call.tool)
        )),
        Kind::Hold => out.push_str("  [c] cancel it; otherwise it runs when the time is up\n"),
    }
    out
}

/// The answer line: the time left and what is typed.
fn answer_line(request: &Request, stage: &Stage, input: &str, now: Instant) -> String {
    let left = request.deadline.saturating_duration_since(now).as_secs();
    match (stage, request.kind) {
        (Stage::Reason, _) => format!("reason for the AI (optional, Enter to skip) > {input}"),
        (Stage::ConfirmRemember, _) => format!("write this rule? [y/n] > {input}"),
        (Stage::Choose, Kind::Approve) => format!("answer ({left}s left) > {input}"),
        (Stage::Choose, Kind::Hold) => format!("runs in {left}s > {input}"),
    }
}

const SHORT: usize = 120;

/// The arguments as pretty JSON, safe to show (and to edit: they parse back the same).
fn whole_arguments(arguments: &Map<String, Value>) -> String {
    visible::to_json_pretty(&Value::Object(arguments.clone())).unwrap_or_default()
}

/// The terminal's owner: the queue, the open prompt, and the saved terminal mode.
struct Owner {
    tty: File,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    queue: VecDeque<Request>,
    current: Option<Open>,
}

struct Open {
    request: Request,
    stage: Stage,
    input: String,
    saved: Termios,
    shown_secs: u64,
}

impl Owner {
    fn new(tty: File, events: tokio::sync::mpsc::UnboundedSender<Event>) -> Self {
        Owner { tty, events, queue: VecDeque::new(), current: None }
    }

    fn run(mut self, rx: mpsc::Receiver<Command>) {
        loop {
            // Take in everything already sent before showing the next prompt, so the count of
            // calls waiting behind it is current.
            while let Ok(more) = rx.try_recv() {
                self.command(more);
            }
            if self.current.is_none()
                && let Some(next) = self.queue.pop_front()
            {
                self.open(next);
            }
            let command = if self.current.is_some() {
                match rx.recv_timeout(Duration::from_millis(10)) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => break,
                }
            };
            if let Some(command) = command {
                self.command(command);
                // Everything else already sent, so the line and its count are current.
                while let Ok(more) = rx.try_recv() {
                    self.command(more);
                }
            }
            if self.current.is_some() {
                self.read_keys();
                self.tick();
            }
        }
        self.close("");
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Offer(request) => self.queue.push_back(request),
            Command::Notice(text) => {
                // A notice's names and reasons were made visible where it was written; this
                // net keeps anything missed there from reaching the terminal raw.
                self.write(&format!("\r\x1b[K  toolgate: {}\r\n", visible::escape_hidden(&text)));
                self.redraw_line();
            }
            Command::Withdraw { ticket, why } => {
                self.queue.retain(|r| r.ticket != ticket);
                if self.current.as_ref().is_some_and(|o| o.request.ticket == ticket) {
                    let said = match why {
                        Withdrawn::TimedOut => "nobody answered in time: denied",
                        Withdrawn::HoldElapsed => "the time is up: it runs",
                        Withdrawn::Cancelled => "the client withdrew the call",
                        Withdrawn::AnsweredElsewhere => "answered elsewhere",
                        Withdrawn::Redecided => "the policy changed and decided again",
                    };
                    self.close(said);
                }
            }
        }
    }

    /// Keys one by one, unechoed, Ctrl-C as a byte; type-ahead dropped first, so that a key
    /// pressed before the prompt appeared cannot answer it.
    fn enter_prompt_mode(&self, saved: &Termios) -> nix::Result<()> {
        let mut raw = saved.clone();
        raw.local_flags.remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG | LocalFlags::IEXTEN);
        termios::tcflush(self.tty.as_fd(), FlushArg::TCIFLUSH)?;
        termios::tcsetattr(self.tty.as_fd(), SetArg::TCSANOW, &raw)
    }

    fn open(&mut self, request: Request) {
        let Ok(saved) = termios::tcgetattr(self.tty.as_fd()) else {
            self.lost(request.ticket, "cannot read the terminal's mode");
            return;
        };
        if let Err(e) = self.enter_prompt_mode(&saved) {
            self.lost(request.ticket, &format!("cannot prepare the terminal ({e})"));
            return;
        }
        let text = render(&request, self.queue.len()).replace('\n', "\r\n");
        self.current = Some(Open { request, stage: Stage::Choose, input: String::new(), saved, shown_secs: u64::MAX });
        self.write(&text);
        self.redraw_line();
    }

    /// Restores the terminal and ends the open prompt with a line saying how.
    fn close(&mut self, said: &str) {
        if let Some(open) = self.current.take() {
            let _ = termios::tcsetattr(self.tty.as_fd(), SetArg::TCSANOW, &open.saved);
            if said.is_empty() {
                self.write("\r\n");
            } else {
                self.write(&format!("\r\x1b[K  {said}\r\n"));
            }
        }
    }

    fn lost(&mut self, ticket: u64, why: &str) {
        let _ = self.events.send(Event::Lost { ticket, why: why.to_owned() });
    }

    fn answer(&mut self, answer: Answer, said: &str) {
        let Some(ticket) = self.current.as_ref().map(|o| o.request.ticket) else { return };
        self.close(said);
        let _ = self.events.send(Event::Answered { ticket, answer });
    }

    fn write(&mut self, text: &str) {
        let _ = self.tty.write_all(text.as_bytes());
        let _ = self.tty.flush();
    }

    fn redraw_line(&mut self) {
        let Some(open) = &self.current else { return };
        let line = answer_line(&open.request, &open.stage, &open.input, Instant::now());
        self.write(&format!("\r\x1b[K{line}"));
    }

    /// Redraws the time left when the second changes.
    fn tick(&mut self) {
        let Some(open) = self.current.as_mut() else { return };
        let secs = open.request.deadline.saturating_duration_since(Instant::now()).as_secs();
        if secs != open.shown_secs {
            open.shown_secs = secs;
            self.redraw_line();
        }
    }

    fn read_keys(&mut self) {
        let fd = self.tty.as_fd();
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) => return,
        }
        let mut buf = [0u8; 256];
        let n = match self.tty.read(&mut buf) {
            Ok(0) | Err(_) => {
                if let Some(ticket) = self.current.as_ref().map(|o| o.request.ticket) {
                    self.close("");
                    self.lost(ticket, "the terminal cannot be read");
                }
                return;
            }
            Ok(n) => n,
        };
        for &byte in &buf[..n] {
            if self.current.is_none() {
                break;
            }
            self.key(byte);
        }
    }

    fn key(&mut self, byte: u8) {
        match byte {
            // Ctrl-C and Ctrl-D deny.
            0x03 | 0x04 => self.answer(Answer::Deny { reason: None }, "denied (Ctrl-C)"),
            b'\r' | b'\n' => self.submit(),
            0x7f | 0x08 => {
                if let Some(open) = self.current.as_mut() {
                    open.input.pop();
                }
                self.redraw_line();
            }
            0x20..=0x7e => {
                if let Some(open) = self.current.as_mut() {
                    open.input.push(byte as char);
                }
                self.redraw_line();
            }
            _ => {}
        }
    }

    fn submit(&mut self) {
        let Some(open) = self.current.as_mut() else { return };
        let line = std::mem::take(&mut open.input);
        match step(&open.request, &open.stage, &line) {
            Step::Answer(answer) => {
                let said = match &answer {
                    Answer::AllowOnce => "allowed once",
                    Answer::AllowForSession => "allowed for this session",
                    Answer::Deny { .. } if open.request.kind == Kind::Hold => "cancelled",
                    Answer::Deny { .. } => "denied",
                    Answer::Remembered => "remembered and allowed",
                    Answer::Edited(_) => "allowed, edited",
                };
                self.answer(answer, said);
            }
            Step::Say(text) => {
                open.stage = Stage::Choose;
                self.write(&format!("\r\x1b[K  {}\r\n", text.replace('\n', "\r\n  ")));
                self.redraw_line();
            }
            Step::AskReason => {
                open.stage = Stage::Reason;
                self.write("\r\n");
                self.redraw_line();
            }
            Step::ConfirmRemember(text) => {
                open.stage = Stage::ConfirmRemember;
                self.write(&format!("\r\x1b[K{}\r\n", text.replace('\n', "\r\n")));
                self.redraw_line();
            }
            Step::WriteRule => {
                let Remember::Possible { policy, rule } = open.request.remember.clone() else { return };
                match crate::policy::remember::append(&policy, &rule, "Remembered from an approval.") {
                    Ok(()) => self.answer(Answer::Remembered, "remembered in the policy, and allowed"),
                    Err(e) => {
                        if let Some(open) = self.current.as_mut() {
                            open.stage = Stage::Choose;
                        }
                        self.write(&format!("\r\x1b[K  could not write {}: {e}\r\n", policy.display()));
                        self.redraw_line();
                    }
                }
            }
            Step::Edit => self.edit(),
        }
    }

    /// Opens the arguments in `$VISUAL` / `$EDITOR` (default `vi`) on the terminal.
    fn edit(&mut self) {
        let Some(open) = self.current.as_ref() else { return };
        let saved = open.saved.clone();
        let arguments = open.request.call.arguments.clone();
        let _ = termios::tcsetattr(self.tty.as_fd(), SetArg::TCSANOW, &saved);
        self.write("\r\n");
        let result = edit_arguments(&self.tty, &arguments);
        let _ = self.enter_prompt_mode(&saved);
        match result {
            Ok(edited) => self.answer(Answer::Edited(edited), "allowed, with your edits"),
            Err(why) => {
                self.write(&format!("  {}\r\n", visible(&why)));
                self.redraw_line();
            }
        }
    }
}

impl Drop for Terminal {
    /// Ends the thread and waits for it, so the terminal's mode is restored before toolgate
    /// exits, whatever ended the session (end of input, a signal, the server exiting).
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Every way out restores the terminal, a panic included.
        if let Some(open) = &self.current {
            let _ = termios::tcsetattr(self.tty.as_fd(), SetArg::TCSANOW, &open.saved);
        }
    }
}

/// A new folder only this user can open, under a name no one could have made beforehand: the
/// arguments written there and read back after the edit are what runs, so no other user may
/// swap them, or plant a link that makes toolgate write into one of the person's files.
fn private_edit_folder() -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut last = None;
    for _ in 0..8 {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        let dir = std::env::temp_dir().join(format!("toolgate-edit-{:016x}", u64::from_le_bytes(nonce)));
        // `create`, not `create_dir_all`: a folder that already exists is someone else's.
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
}

fn edit_arguments(tty: &File, arguments: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let dir = private_edit_folder().map_err(|e| format!("cannot make a file to edit: {e}"))?;
    let path = dir.join("arguments.json");
    std::fs::write(&path, whole_arguments(arguments) + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let editor = set("VISUAL").or_else(|| set("EDITOR")).unwrap_or_else(|| "vi".into());
    let io = |f: &File| f.try_clone().map(std::process::Stdio::from).map_err(|e| e.to_string());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&path)
        .stdin(io(tty)?)
        .stdout(io(tty)?)
        .stderr(io(tty)?)
        .status()
        .map_err(|e| format!("cannot run the editor {editor}: {e}"))?;
    if !status.success() {
        return Err(format!("the editor exited with {status}; nothing changed"));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read the edited file: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the edited arguments must be a JSON object; try again".into()),
        Err(e) => Err(format!("the edited arguments are not JSON ({e}); try again")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::policy::{Gate, Tier};

    fn request(kind: Kind, arguments: Value) -> Request {
        let gate = if kind == Kind::Hold { Gate::Hold } else { Gate::Ask };
        let rules = vec![("money needs a yes".into(), Some("it moves money".into()))];
        Request {
            ticket: 1,
            kind,
            call: crate::decided::DecidedCall {
                server: "demo".into(),
                tool: "send_payment".into(),
                arguments: arguments.as_object().cloned().unwrap(),
                gate,
                tier: Tier::High,
                matched: crate::decided::DecidedCall::read_back(gate, rules),
                reason: Some("it moves money".into()),
                policy: None,
                confidence: None,
            },
            deadline: Instant::now() + Duration::from_secs(60),
            remember: Remember::Impossible("rule \"money needs a yes\" asks for this call".into()),
        }
    }

    #[test]
    fn the_folder_for_an_edit_is_new_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let (a, b) = (private_edit_folder().unwrap(), private_edit_folder().unwrap());
        assert_ne!(a, b, "a name someone could guess and make first");
        assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o700);
        let _ = (std::fs::remove_dir(&a), std::fs::remove_dir(&b));
    }

    #[test]
    fn prompt_for_an_approval() {
        insta::assert_snapshot!(render(&request(Kind::Approve, json!({"to": "ACME Ltd", "amount": 1200})), 0));
    }

    #[test]
    fn prompt_with_long_arguments_and_others_waiting() {
        let long = "lorem ipsum ".repeat(40);
        insta::assert_snapshot!(render(&request(Kind::Approve, json!({"memo": long, "amount": 5})), 2));
    }

    #[test]
    fn prompt_for_a_hold() {
        insta::assert_snapshot!(render(&request(Kind::Hold, json!({"to": "boss@example.com"})), 1));
    }

    #[test]
    fn answers_each_need_their_key_and_unknown_input_only_hints() {
        let r = request(Kind::Approve, json!({"a": 1}));
        assert_eq!(step(&r, &Stage::Choose, " y "), Step::Answer(Answer::AllowOnce));
        assert_eq!(step(&r, &Stage::Choose, "a"), Step::Answer(Answer::AllowForSession));
        assert_eq!(step(&r, &Stage::Choose, "n"), Step::AskReason);
        assert_eq!(
            step(&r, &Stage::Reason, "  use the test account "),
            Step::Answer(Answer::Deny { reason: Some("use the test account".into()) })
        );
        assert_eq!(step(&r, &Stage::Reason, ""), Step::Answer(Answer::Deny { reason: None }));
        assert_eq!(step(&r, &Stage::Choose, "e"), Step::Edit);
        assert!(matches!(step(&r, &Stage::Choose, "yes"), Step::Say(_)));
        assert!(matches!(step(&r, &Stage::Choose, "r"), Step::Say(s) if s.starts_with("cannot remember this")));
        let hold = request(Kind::Hold, json!({}));
        assert_eq!(step(&hold, &Stage::Choose, "c"), Step::Answer(Answer::Deny { reason: None }));
        assert!(matches!(step(&hold, &Stage::Choose, "y"), Step::Say(_)), "y must not cancel or approve a hold");
    }

    #[test]
    fn remember_asks_to_confirm_then_appends_keeping_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        let original = "# my policy\n[settings]\ndefault_tier = \"high\"   # careful\n";
        std::fs::write(&policy, original).unwrap();
        let mut r = request(Kind::Approve, json!({}));
        let rule = "[[rules]]\nname = \"allow x on demo\"\ntools = [\"x\"]\ntier = \"low\"\n".to_owned();
        r.remember = Remember::Possible { policy: PathBuf::from(&policy), rule: rule.clone() };
        assert!(
            matches!(step(&r, &Stage::Choose, "r"), Step::ConfirmRemember(t) if t.contains("name = \"allow x on demo\""))
        );
        assert_eq!(step(&r, &Stage::ConfirmRemember, "y"), Step::WriteRule);
        crate::policy::remember::append(&policy, &rule, "Remembered from an approval.").unwrap();
        let text = std::fs::read_to_string(&policy).unwrap();
        assert!(text.starts_with(original));
        assert!(text.ends_with(&rule));
        crate::policy::Policy::load(&policy).unwrap();
    }
}
