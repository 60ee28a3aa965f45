//! toolgate's own stdin and stdout as async streams, without a thread hop per read.
//!
//! Tokio's `stdin()` reads on a blocking thread pool, which costs a thread handoff per read.
//! MCP clients hand a proxy pipes or socket pairs, which epoll can watch directly, so those are
//! set non-blocking and driven by the reactor. Anything else (a file, a terminal) falls back to
//! Tokio's blocking adapters. The original file flags are restored when the stream is dropped.
//!
//! A pipe or socket the proxy writes to is a [`Destination`] with a [`Direct`] handle: the
//! dispatcher writes what it queued straight into it while the peer's writer task is idle,
//! which spares a hand-over to that task for each message (see `writer.rs`).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::stat::{SFlag, fstat};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// A boxed reader for toolgate's stdin.
pub type Input = Pin<Box<dyn AsyncRead + Send>>;
/// A boxed writer for toolgate's stdout.
pub type Output = Pin<Box<dyn AsyncWrite + Send>>;

/// toolgate's stdin.
pub fn stdin() -> io::Result<Input> {
    match Pollable::new(io::stdin().as_fd())? {
        Some(p) => Ok(Box::pin(p)),
        None => Ok(Box::pin(tokio::io::stdin())),
    }
}

/// toolgate's stdout, for a relay. Only the forwarding writer may hold it.
pub fn stdout() -> io::Result<Output> {
    Ok(Destination::stdout()?.writer)
}

/// Where the proxy writes to one peer: an async writer for whatever must wait, and for a pipe
/// or socket, a handle that writes at once what fits.
pub struct Destination {
    pub writer: Output,
    pub direct: Option<Direct>,
}

impl Destination {
    /// toolgate's stdout. Only the proxy's writer for the client may hold it.
    pub fn stdout() -> io::Result<Self> {
        match Pollable::new(io::stdout().as_fd())? {
            Some(p) => Ok(Destination::pollable(p)),
            None => Ok(Destination::other(tokio::io::stdout())),
        }
    }

    /// The server's stdin, a pipe.
    pub fn pipe(fd: OwnedFd) -> io::Result<Self> {
        match Pollable::new(fd.as_fd())? {
            Some(p) => Ok(Destination::pollable(p)),
            None => Err(io::Error::other("the server's stdin is not a pipe")),
        }
    }

    /// Any other writer (an in-memory stream in the demo and tests): everything is queued.
    pub fn other(writer: impl AsyncWrite + Send + 'static) -> Self {
        Destination { writer: Box::pin(writer), direct: None }
    }

    fn pollable(p: Pollable) -> Self {
        let direct = Direct(p.0.clone());
        Destination { writer: Box::pin(p), direct: Some(direct) }
    }
}

/// Writes to a pipe or socket without waiting.
pub struct Direct(Arc<Registered>);

impl Direct {
    /// Writes what fits now; `WouldBlock` when nothing does.
    pub fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        self.0.fd.try_io(Interest::WRITABLE, |fd| nix::unistd::write(fd, bytes).map_err(io::Error::from))
    }

    /// Writes what fits now of several buffers, in one system call.
    pub fn write_vectored_now(&self, slices: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.fd.try_io(Interest::WRITABLE, |fd| nix::sys::uio::writev(fd, slices).map_err(io::Error::from))
    }
}

/// A pipe or socket driven by the reactor; clones share the descriptor.
struct Pollable(Arc<Registered>);

struct Registered {
    fd: AsyncFd<OwnedFd>,
    original_flags: OFlag,
}

impl Pollable {
    /// `None` when the descriptor is not a pipe or socket.
    fn new(fd: BorrowedFd<'_>) -> io::Result<Option<Self>> {
        let kind = SFlag::from_bits_truncate(fstat(fd)?.st_mode) & SFlag::S_IFMT;
        if kind != SFlag::S_IFIFO && kind != SFlag::S_IFSOCK {
            return Ok(None);
        }
        // A duplicate shares the file description, so its flags are the original's.
        let owned = fd.try_clone_to_owned()?;
        let original_flags = OFlag::from_bits_truncate(fcntl(&owned, FcntlArg::F_GETFL)?);
        fcntl(&owned, FcntlArg::F_SETFL(original_flags | OFlag::O_NONBLOCK))?;
        // SAFETY: the descriptor is an `OwnedFd` the `AsyncFd` owns until it is dropped, so it
        // stays open and names the same file description for the whole registration.
        let fd = unsafe { AsyncFd::register(owned) }?;
        Ok(Some(Pollable(Arc::new(Registered { fd, original_flags }))))
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        // Leave the descriptor as it was found: a shell sharing it expects blocking I/O.
        let _ = fcntl(self.fd.get_ref(), FcntlArg::F_SETFL(self.original_flags));
    }
}

impl AsyncRead for Pollable {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let wanted = unfilled.len();
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), unfilled).map_err(io::Error::from)) {
                Ok(Ok(n)) => {
                    // A short read drained the pipe: forget the readiness now rather than learn
                    // it from one more read that fails with EAGAIN (a syscall per message).
                    // Epoll is edge-triggered, so bytes written after this read wake us again;
                    // Tokio's own pipes and sockets do the same.
                    if n > 0 && n < wanted {
                        guard.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pollable {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
