//! Writing to a peer. The proxy queues the dispatcher's output on a [`PeerInput`], and when it has no
//! more messages at hand it [flushes](PeerInput::flush) them: if the peer's input is a pipe or
//! socket and its writer task is idle, what is queued is written at once, in one system call, in
//! the dispatcher's own turn (a request or answer then costs no hand-over to another task, and a
//! burst still leaves together). Whatever does not fit (the pipe is full, the peer reads
//! slowly) stays queued, in order, for the peer's writer task, which alone waits for the pipe.
//! Messages are never reordered: both write from the front of the one queue, under its lock.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::Notify;

use super::stdio::{Destination, Direct};
use super::{Outgoing, Peer};
use crate::wire::frame;

/// Queued messages that wake the writer task even before a flush, so that a long burst is
/// written while it is still arriving.
const BATCH: usize = 256;
/// At most this many messages go into one `writev` (the system's limit is 1024 slices).
const SLICES: usize = 1024;

/// The dispatcher's end of one peer's input.
pub(super) struct PeerInput {
    shared: Arc<Shared>,
    direct: Option<Direct>,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Outgoing>,
    /// The writer task holds messages it took from the queue and has not finished writing.
    writing: bool,
    /// A write failed: the peer is gone, and what it is sent from now on is dropped.
    broken: bool,
    /// The dispatcher is done with this peer: the writer finishes the queue and closes it.
    closed: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the state is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PeerInput {
    /// Starts the writer task for `destination`.
    pub fn start(destination: Destination, peer: Peer) -> (Self, tokio::task::JoinHandle<()>) {
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), wake: Notify::new() });
        let task = tokio::spawn(write_loop(destination.writer, shared.clone(), peer));
        (PeerInput { shared, direct: destination.direct }, task)
    }

    /// Queues messages, in order, under one lock. Without a direct handle (or with a long
    /// queue) the writer task is woken now; otherwise they wait for [`PeerInput::flush`].
    pub fn send_all(&self, messages: Vec<Outgoing>) {
        if messages.is_empty() {
            return;
        }
        let mut state = self.shared.state();
        if state.broken {
            return;
        }
        state.queue.extend(messages);
        if (self.direct.is_none() || state.queue.len() >= BATCH) && !state.writing {
            self.shared.wake.notify_one();
        }
    }

    /// Writes what is queued straight into the pipe, as much as fits now, and leaves the rest
    /// to the writer task. Nothing is written here while the writer task holds messages, so
    /// nothing overtakes them.
    pub fn flush(&self) {
        let Some(direct) = &self.direct else { return };
        let mut state = self.shared.state();
        if state.writing || state.queue.is_empty() {
            return;
        }
        let written = if state.queue.len() == 1 {
            let only = &state.queue[0];
            direct.write_now(&only.bytes[only.written..])
        } else {
            let slices: Vec<IoSlice<'_>> =
                state.queue.iter().take(SLICES).map(|m| IoSlice::new(&m.bytes[m.written..])).collect();
            direct.write_vectored_now(&slices)
        };
        // Full, or failing: the writer waits for room, or meets the error and says so.
        let mut n = written.unwrap_or(0);
        while let Some(first) = state.queue.front_mut() {
            let left = first.bytes.len() - first.written;
            if n < left {
                first.written += n;
                break;
            }
            n -= left;
            state.queue.pop_front();
        }
        if !state.queue.is_empty() {
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for PeerInput {
    fn drop(&mut self) {
        self.shared.state().closed = true;
        self.shared.wake.notify_one();
    }
}

/// Owns one peer's input: writes what is queued, flushing when the queue runs dry.
async fn write_loop<W: AsyncWrite + Unpin>(writer: W, shared: Arc<Shared>, peer: Peer) {
    let mut out = BufWriter::with_capacity(frame::OVERSIZED_PREFIX * 16, writer);
    loop {
        let batch = {
            let mut state = shared.state();
            if state.queue.is_empty() {
                state.writing = false;
                if state.closed || state.broken {
                    break;
                }
                None
            } else {
                state.writing = true;
                Some(std::mem::take(&mut state.queue))
            }
        };
        let Some(batch) = batch else {
            shared.wake.notified().await;
            continue;
        };
        if let Err(e) = write_batch(&mut out, batch).await {
            tracing::warn!("cannot write to the {peer}: {e}; dropping what it is sent from now on");
            let mut state = shared.state();
            state.broken = true;
            state.queue.clear();
        }
    }
    let _ = out.shutdown().await;
}

async fn write_batch<W: AsyncWrite + Unpin>(out: &mut BufWriter<W>, batch: VecDeque<Outgoing>) -> io::Result<()> {
    for message in batch {
        out.write_all(&message.bytes[message.written..]).await?;
    }
    out.flush().await
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    use super::*;

    /// Messages written straight into a pipe until it is full (the last of them in part),
    /// then some that queue; then, with the reader draining the pipe, more, which queue behind
    /// those. The reader sees every byte, in the order sent.
    #[tokio::test(flavor = "current_thread")]
    async fn what_does_not_fit_is_written_by_the_writer_from_where_it_stopped() {
        let (theirs, ours) = nix::unistd::pipe().unwrap();
        let mut theirs = std::fs::File::from(theirs);
        let (input, task) = PeerInput::start(Destination::pipe(ours).unwrap(), Peer::Client);
        let (go, told) = std::sync::mpsc::channel();
        let (drained, drained_some) = std::sync::mpsc::channel();
        let (first_read, mut first_line_read) = tokio::sync::oneshot::channel();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; 6];
            theirs.read_exact(&mut got).unwrap();
            first_read.send(()).unwrap();
            // Until told, the socket fills up; then read a little, and say so.
            told.recv().unwrap();
            let mut more = vec![0u8; 8192];
            let n = theirs.read(&mut more).unwrap();
            got.extend_from_slice(&more[..n]);
            drained.send(()).unwrap();
            theirs.read_to_end(&mut got).unwrap();
            got
        });
        // The first message goes through the writer task, as a session's first does: only
        // then has the reactor seen the socket writable.
        input.send_all(vec![Outgoing::new(b"ready\n".to_vec(), None)]);
        input.shared.wake.notify_one();
        (&mut first_line_read).await.unwrap();
        let mut expected = b"ready\n".to_vec();
        let mut send = |n: u32| {
            let line = format!("{n:0width$}\n", width = 1 + (n as usize * 937) % 20_000).into_bytes();
            expected.extend_from_slice(&line);
            input.send_all(vec![Outgoing::new(line, None)]);
        };
        // Far more than a pipe holds, in messages of several sizes.
        for n in 0..100 {
            send(n);
        }
        input.flush();
        assert!(!input.shared.state().queue.is_empty(), "the pipe took everything: the test sent too little");
        // The pipe has room again, and the writer task has not run since: a direct write
        // now would overtake the queue.
        go.send(()).unwrap();
        drained_some.recv().unwrap();
        for n in 100..200 {
            send(n);
        }
        input.flush();
        drop(input);
        task.await.unwrap();
        let got = reader.join().unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes arrived out of order");
    }

    /// While the writer task holds messages it took from the queue, a flush writes nothing, even
    /// when the socket has room: the next message goes out after the writer's.
    #[tokio::test(flavor = "current_thread")]
    async fn a_flush_never_overtakes_what_the_writer_holds() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (input, task) = PeerInput::start(Destination::pipe(ours.into()).unwrap(), Peer::Client);
        let mut theirs = std::io::BufReader::new(theirs);
        input.send_all(vec![Outgoing::new(b"first\n".to_vec(), None)]);
        input.shared.wake.notify_one();
        let (theirs, first) = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut theirs, &mut line).unwrap();
            (theirs, line)
        })
        .await
        .unwrap();
        assert_eq!(first, "first\n");
        // As if the writer task had taken `held` from the queue and were writing it.
        input.shared.state().writing = true;
        input.send_all(vec![Outgoing::new(b"after\n".to_vec(), None)]);
        input.flush();
        assert_eq!(input.shared.state().queue.len(), 1, "the flush wrote past the writer's message");
        // The writer finishes `held` and goes idle; then the queue follows.
        input.direct.as_ref().unwrap().write_now(b"held\n").unwrap();
        input.shared.state().writing = false;
        drop(input);
        task.await.unwrap();
        let mut rest = String::new();
        let mut theirs = theirs;
        theirs.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "held\nafter\n");
    }
}
