//! toolgate on a pseudo-terminal, in the topology production has: JSON-RPC on pipes, and a pty
//! as the controlling terminal where the prompt appears.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};

use super::{Env, PATIENCE, Peer, toolgate};

/// What the terminal has shown, and a way to type into it.
pub struct Screen {
    master: std::fs::File,
    text: Arc<(Mutex<String>, Condvar)>,
    /// Everything shown, escape sequences included.
    raw: Arc<Mutex<String>>,
    /// Every byte written to the terminal, for a terminal emulator to render ([`Screen::seen`]).
    bytes: Arc<Mutex<Vec<u8>>>,
    /// Everything before this offset was already matched by `wait_for`.
    seen: usize,
    /// Written to make the reader thread let go of its copy of the master (see `hang_up`).
    stop_reader: OwnedFd,
    reader: std::thread::JoinHandle<()>,
}

impl Screen {
    /// Waits until `needle` appears after what was matched before; returns the text up to it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let (lock, cond) = &*self.text;
        let mut text = lock.lock().unwrap();
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(i) = text[self.seen..].find(needle) {
                let shown = text[self.seen..self.seen + i + needle.len()].to_owned();
                self.seen += i + needle.len();
                return shown;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "the terminal never showed {needle:?}; it shows:\n{}", &text[self.seen..]);
            text = cond.wait_timeout(text, left).unwrap().0;
        }
    }

    /// Whether the terminal is in its normal line mode (canonical, echoing).
    pub fn canonical(&self) -> bool {
        use std::os::fd::AsFd;
        let mode = nix::sys::termios::tcgetattr(self.master.as_fd()).unwrap();
        let flags = nix::sys::termios::LocalFlags::ICANON | nix::sys::termios::LocalFlags::ECHO;
        mode.local_flags.contains(flags)
    }

    /// Waits until `needle` is shown, then returns everything shown so far with its escape
    /// sequences (colors) kept.
    pub fn raw_until(&mut self, needle: &str) -> String {
        self.wait_for(needle);
        self.raw.lock().unwrap().clone()
    }

    /// Closes the terminal, as when its window is closed: every copy of the master side goes,
    /// so the slave side is hung up (SIGHUP to its session, reads fail).
    pub fn hang_up(self) {
        nix::unistd::write(&self.stop_reader, b"x").unwrap();
        self.reader.join().unwrap();
        drop(self.master);
    }

    /// What a person sees now: every byte written so far, rendered by a terminal emulator
    /// (vt100) on a screen large enough to hold it all.
    pub fn seen(&self) -> Seen {
        let bytes = self.bytes.lock().unwrap().clone();
        let (rows, cols) = (NonZeroU16::new(200).unwrap(), NonZeroU16::new(400).unwrap());
        let mut parser = vt100::Parser::new_with_callbacks(rows, cols, 0, Asked::default());
        parser.process(&bytes);
        let rows = parser.screen().rows(0, cols.get()).collect();
        let cursor = parser.screen().cursor_position().0;
        Seen { rows, cursor, asked: parser.callbacks().clone() }
    }

    /// Types keys, as a person would.
    pub fn type_keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }
}

/// The screen a person sees, rendered from the bytes by a terminal emulator.
pub struct Seen {
    /// Each row of the screen, as shown (trailing blanks trimmed).
    pub rows: Vec<String>,
    /// The row the cursor is on.
    pub cursor: u16,
    /// What the bytes asked of the terminal beyond the screen.
    pub asked: Asked,
}

impl Seen {
    /// The rows that start with `prefix`.
    pub fn rows_starting(&self, prefix: &str) -> Vec<&str> {
        self.rows.iter().map(String::as_str).filter(|r| r.starts_with(prefix)).collect()
    }

    pub fn text(&self) -> String {
        self.rows.join("\n")
    }
}

/// Requests to the terminal that do not show on its screen: a new window title or icon name
/// (OSC 0/1/2), a clipboard write (OSC 52), and any other sequence the emulator would not handle.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    pub titles: Vec<Vec<u8>>,
    pub clipboard: Vec<Vec<u8>>,
    pub other: Vec<String>,
}

impl vt100::Callbacks for Asked {
    fn set_window_title(&mut self, _: &mut vt100::Screen, title: &[u8]) {
        self.titles.push(title.to_vec());
    }
    fn set_window_icon_name(&mut self, _: &mut vt100::Screen, name: &[u8]) {
        self.titles.push(name.to_vec());
    }
    fn copy_to_clipboard(&mut self, _: &mut vt100::Screen, _ty: &[u8], data: &[u8]) {
        self.clipboard.push(data.to_vec());
    }
    fn unhandled_osc(&mut self, _: &mut vt100::Screen, params: &[&[u8]]) {
        self.other.push(format!("OSC {params:?}"));
    }
}

/// How toolgate sits on the terminal.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In the terminal's foreground process group (it can prompt).
    Foreground,
    /// In a background process group of the terminal (it must not prompt, nor hang).
    Background,
}

/// `toolgate run` in front of its demo server, on a fresh pty.
pub fn toolgate_on_pty(env: &Env, policy: &Path, audit: &Path, place: Place, vars: &[(&str, &str)]) -> (Peer, Screen) {
    toolgate_before_on_pty(env, policy, audit, place, vars, &[toolgate(), "demo-server"])
}

/// `toolgate run --name demo` in front of `server`, on a fresh pty.
pub fn toolgate_before_on_pty(
    env: &Env,
    policy: &Path,
    audit: &Path,
    place: Place,
    vars: &[(&str, &str)],
    server: &[&str],
) -> (Peer, Screen) {
    let pty = open_pty();
    let slave: OwnedFd = pty.slave;
    let slave_fd = slave.as_raw_fd();
    let mut cmd = match place {
        Place::Foreground => env.toolgate(),
        // A session leader cannot leave its process group, so a job-control shell owns the
        // terminal and runs toolgate as a background job (its own, non-foreground group).
        Place::Background => {
            let mut sh = env.command("sh");
            sh.args(["-c", "set -m; \"$0\" \"$@\" <&0 & wait $!", toolgate()]);
            sh
        }
    };
    cmd.arg("run").arg("--policy").arg(policy).arg("--audit").arg(audit).arg("--name").arg("demo");
    cmd.arg("--").args(server);
    cmd.envs(vars.iter().copied());
    // SAFETY: setsid, ioctl and setpgid are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::setsid() < 0 || libc::ioctl(slave_fd, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let peer = Peer::start(cmd);
    drop(slave);
    (peer, screen_of(pty.master))
}

/// A command run whole on a fresh pty (stdin, stdout and stderr, as a person runs it); its
/// screen, and the child.
pub fn command_on_pty(mut cmd: Command) -> (std::process::Child, Screen) {
    assert!(super::env::built_by_env(&cmd), "{cmd:?}: build commands with Env::command");
    let pty = open_pty();
    let slave: OwnedFd = pty.slave;
    let slave_fd = slave.as_raw_fd();
    cmd.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave.try_clone().unwrap());
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::setsid() < 0 || libc::ioctl(slave_fd, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(slave);
    (child, screen_of(pty.master))
}

/// A fresh pty whose master side is the test's alone (not inherited by the child), so that
/// closing it really closes the terminal. The child keeps the slave side open, as a program
/// started in a terminal does.
fn open_pty() -> nix::pty::OpenptyResult {
    let pty = nix::pty::openpty(None, None).unwrap();
    nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).unwrap();
    pty
}

fn screen_of(master: OwnedFd) -> Screen {
    let master = std::fs::File::from(master);
    let mut copy = master.try_clone().unwrap();
    let text = Arc::new((Mutex::new(String::new()), Condvar::new()));
    let shared = text.clone();
    let raw = Arc::new(Mutex::new(String::new()));
    let raw_shared = raw.clone();
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let bytes_shared = bytes.clone();
    let (stop_rx, stop_reader) = nix::unistd::pipe().unwrap();
    let reader = std::thread::spawn(move || {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let mut buf = [0u8; 4096];
        loop {
            let mut fds =
                [PollFd::new(copy.as_fd(), PollFlags::POLLIN), PollFd::new(stop_rx.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::NONE).is_err() || fds[1].any().unwrap_or(true) {
                break;
            }
            let Ok(n) = copy.read(&mut buf) else { break };
            if n == 0 {
                break;
            }
            bytes_shared.lock().unwrap().extend_from_slice(&buf[..n]);
            let chunk = String::from_utf8_lossy(&buf[..n]);
            raw_shared.lock().unwrap().push_str(&chunk);
            let (lock, cond) = &*shared;
            lock.lock().unwrap().push_str(&strip_ansi(&chunk));
            cond.notify_all();
        }
    });
    Screen { master, text, raw, bytes, seen: 0, stop_reader, reader }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}
