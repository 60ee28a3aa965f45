//! The core of the proxy, without I/O: one [`Dispatcher`] owns the session and its life (the
//! client and server coming and going, signals, the deadlines), takes one [`Event`] at a time
//! with the time it happened, and says what is to be done in an [`Output`]: lines for each peer,
//! signals for the server, whether to close the server's input. It reads no clock, spawns
//! nothing and writes to no pipe; `super::run` does that around it, and the tests drive it with
//! a clock of their own (`tests.rs`).
//!
//! A `tools/call` goes `route` (which peer, which method) → `gate` (judge it, carry out its
//! gate, or say where it waits) → `held` (when a person must answer) → `gate::settle` (stage
//! its audit record and what carries it out in the session's outbox) → [`Dispatcher::flush`]
//! (write the records, hand over the lines).

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::route::Router;
use super::session::Lines;
use super::{Inbound, Outgoing, Peer, approver_socket, child};

/// After the client closes its side, how long the server gets to exit before SIGTERM.
pub(super) const EOF_GRACE: Duration = Duration::from_millis(1000);
/// After SIGTERM, how long before SIGKILL.
pub(super) const TERM_GRACE: Duration = Duration::from_millis(500);
/// After the server exits, how long its output is still drained (a grandchild may hold it).
pub(super) const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// How long the policy folder must be quiet after a change before the policy is reloaded
/// (editors write a file in several steps).
pub(super) const RELOAD_SETTLE: Duration = Duration::from_millis(50);
/// How soon after a record the audit log's outcomes and head record are written when nothing
/// else is (see `AuditLog::flush`).
pub(super) const HEAD_FLUSH: Duration = Duration::from_millis(20);

/// Something that happened to the proxy.
pub(super) enum Event {
    /// A checked line from a peer.
    Line(Peer, Inbound),
    /// The peer closed its output (or it could no longer be read): nothing more comes from it.
    Closed(Peer),
    /// The server process ended.
    Exited(ExitStatus),
    Interrupt,
    Terminate,
    Hangup,
    /// A person answered, on the terminal or in the client's dialog.
    Human(crate::human::Event),
    /// A `toolgate approve` connection said something.
    Approver(approver_socket::FromApprover),
    /// The policy file may have changed.
    PolicyEdited,
    /// Time passed: whatever was due by now is done.
    Tick,
}

/// What the dispatcher asks its surroundings to do, in order.
#[derive(Default)]
pub(super) struct Output {
    pub to_client: Vec<Outgoing>,
    pub to_server: Vec<Outgoing>,
    /// Signals for the server's process group, after the lines.
    pub signals: Vec<Signal>,
    /// Close the server's input once its lines are written.
    pub close_server_input: bool,
}

pub(super) struct Dispatcher {
    router: Router,
    /// The policy's file, reloaded on SIGHUP and after edits (`None`: the embedded default).
    policy_path: Option<PathBuf>,
    reload_at: Option<Instant>,
    client_open: bool,
    server_open: bool,
    /// How the server ended, once it has.
    status: Option<ExitStatus>,
    /// The exit code of the signal that stopped toolgate, if one did.
    stopped_by: Option<i32>,
    /// The next step in stopping the server, once stopping has begun.
    escalation: Option<(Instant, Signal)>,
    /// Until when the server's output is still read after it exited.
    drain_until: Option<Instant>,
    head_flush_at: Option<Instant>,
    signals: Vec<Signal>,
    /// The server's input was closed and the writers have not been told yet.
    closing_server_input: bool,
}

impl Dispatcher {
    pub fn new(router: Router, policy_path: Option<PathBuf>) -> Dispatcher {
        Dispatcher {
            router,
            policy_path,
            reload_at: None,
            client_open: true,
            server_open: true,
            status: None,
            stopped_by: None,
            escalation: None,
            drain_until: None,
            head_flush_at: None,
            signals: Vec::new(),
            closing_server_input: false,
        }
    }

    /// The proxy goes on until the server has exited and its output is read (or given up on).
    pub fn running(&self) -> bool {
        self.server_open || self.status.is_none()
    }

    /// Whether lines are still read from either peer.
    pub fn reading(&self) -> bool {
        self.client_open || self.server_open
    }

    /// The earliest moment something is due: [`Event::Tick`] then.
    pub fn next_deadline(&self) -> Option<Instant> {
        let draining = self.drain_until.filter(|_| self.server_open);
        [self.escalation.map(|(at, _)| at), self.router.next_wakeup(), self.reload_at, self.head_flush_at, draining]
            .into_iter()
            .flatten()
            .min()
    }

    /// Handles one event that happened at `now`.
    pub fn handle(&mut self, event: Event, now: Instant) {
        self.router.session.now = now;
        match event {
            Event::Line(Peer::Client, inbound) => self.router.on_client(inbound),
            Event::Line(Peer::Server, inbound) => self.router.on_server(inbound),
            Event::Closed(Peer::Client) => {
                tracing::debug!("client closed its side; closing the server's stdin");
                self.client_open = false;
                self.router.abandon_held("the client closed its side");
                self.close_server_input();
                self.escalation.get_or_insert((now + EOF_GRACE, Signal::SIGTERM));
            }
            Event::Closed(Peer::Server) => self.server_open = false,
            Event::Exited(exited) => {
                if self.client_open && self.stopped_by.is_none() {
                    tracing::error!(
                        "the MCP server ended ({exited}) while its client was still connected; \
                         requests still waiting get an error and toolgate exits"
                    );
                    self.router.abandon_held(&format!("the MCP server ended ({exited})"));
                } else {
                    tracing::debug!("server exited: {exited}");
                }
                self.status = Some(exited);
                self.escalation = None;
                self.drain_until = Some(now + DRAIN_GRACE);
            }
            Event::Interrupt => self.stop(130, now),
            Event::Terminate => self.stop(143, now),
            Event::Hangup => match &self.policy_path {
                Some(path) => self.router.reload(&path.clone()),
                None => tracing::info!("SIGHUP: the embedded default policy has no file to reload"),
            },
            Event::Human(event) => self.router.on_human(event),
            Event::Approver(news) => self.router.on_approver(news),
            Event::PolicyEdited => self.reload_at = Some(now + RELOAD_SETTLE),
            Event::Tick => self.tick(now),
        }
    }

    /// Does what is due by `now`.
    fn tick(&mut self, now: Instant) {
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if due(self.escalation.map(|(at, _)| at))
            && let Some((_, signal)) = self.escalation.take()
        {
            tracing::debug!("server still running; sending {signal}");
            self.signals.push(signal);
            if signal == Signal::SIGTERM {
                self.escalation = Some((now + TERM_GRACE, Signal::SIGKILL));
            }
        }
        if due(self.router.next_wakeup()) {
            self.router.on_timer();
        }
        if due(self.reload_at) {
            self.reload_at = None;
            if let Some(path) = self.policy_path.clone() {
                self.router.reload(&path);
            }
        }
        if due(self.head_flush_at) {
            self.head_flush_at = None;
            self.router.session.audit.flush();
        }
        if due(self.drain_until.filter(|_| self.server_open)) {
            tracing::debug!("server output still open after it exited; no longer waiting for it");
            self.server_open = false;
        }
    }

    /// Begins stopping on a signal: the server gets SIGTERM now and SIGKILL a little later.
    fn stop(&mut self, code: i32, now: Instant) {
        tracing::info!("stopping on signal; stopping the server");
        self.stopped_by.get_or_insert(code);
        self.router.abandon_held("toolgate was stopped by a signal");
        self.close_server_input();
        self.signals.push(Signal::SIGTERM);
        self.escalation = Some((now + TERM_GRACE, Signal::SIGKILL));
    }

    fn close_server_input(&mut self) {
        if self.router.session.server_input_open() {
            self.router.session.close_server_input();
            self.closing_server_input = true;
        }
    }

    /// Writes the audit records staged so far and returns what is to be done: the messages
    /// that waited on them, in order, and the signals and closing that followed them.
    pub fn flush(&mut self, now: Instant) -> Output {
        self.router.session.now = now;
        let Lines { to_client, to_server } = self.router.session.flush();
        // After the flush: it learns which records failed, and what depended on them.
        self.router.apply_effects();
        if self.head_flush_at.is_none() && self.router.session.audit.behind() {
            self.head_flush_at = Some(now + HEAD_FLUSH);
        }
        Output {
            to_client,
            to_server,
            signals: std::mem::take(&mut self.signals),
            close_server_input: std::mem::take(&mut self.closing_server_input),
        }
    }

    /// Ends the session once the server is gone: every request it never answered gets an error.
    /// Returns the last output and toolgate's exit code.
    pub fn finish(mut self, now: Instant) -> (Output, i32) {
        let code = match self.status {
            Some(status) => child::exit_code(status),
            None => 1,
        };
        self.router.session.now = now;
        self.router.fail_pending(code);
        let mut output = self.flush(now);
        self.router.session.audit.flush();
        output.close_server_input = true;
        (output, self.stopped_by.unwrap_or(code))
    }
}

#[cfg(test)]
#[path = "dispatcher_tests.rs"]
mod tests;
