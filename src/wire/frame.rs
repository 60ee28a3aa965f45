//! Byte framing of the stdio transport: one message per `\n`-terminated line.
//!
//! Framing happens on bytes, before any decoding, so that what toolgate calls "a line" is exactly
//! what the peer on the other side will call a line. A line longer than the configured maximum is
//! never cut: it is consumed whole and reported as [`Frame::Oversized`], keeping only a prefix so
//! the caller can still tell the sender which request it refused. A reader made with
//! [`LineReader::reporting_early`] reports such a line as soon as it passes the maximum instead
//! ([`Frame::TooLong`]), and skips the rest of it on the next read: for a peer that waits for an
//! answer before it sends more, and should hear at once that this line will not be read.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncBufRead, AsyncRead, BufReader};

/// How much of an oversized line is kept, to find its `id` for the error reply.
pub const OVERSIZED_PREFIX: usize = 4096;

/// Size of the read buffer: large enough that small messages arrive in one read.
const READ_BUFFER: usize = 64 * 1024;

/// One unit read off a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, including its terminating `\n`.
    Line(Vec<u8>),
    /// A line longer than the maximum; it was consumed and dropped.
    Oversized {
        /// The first bytes of the line (at most [`OVERSIZED_PREFIX`]).
        prefix: Vec<u8>,
        /// Its full length in bytes, without the `\n`.
        len: usize,
    },
    /// Bytes at end of stream that were never terminated by `\n`.
    Unterminated(Vec<u8>),
    /// A line that is longer than the maximum, reported before its end was read (only by a
    /// reader made with [`LineReader::reporting_early`]): the next read skips the rest of it, up
    /// to and including its `\n`, without storing it.
    TooLong {
        /// The first bytes of the line ([`OVERSIZED_PREFIX`], or all there were when the line
        /// ended first).
        prefix: Vec<u8>,
        /// How many bytes of it were read so far (more than the maximum).
        seen: usize,
    },
}

/// Reads [`Frame`]s from a byte stream. What a line read so far is kept here, not in the
/// future that reads it: a read that stops halfway (one branch of a `select!`) loses nothing.
pub struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
    /// Report a line as [`Frame::TooLong`] once it passes `max`, rather than when it ends.
    early: bool,
    /// The rest of a line reported as [`Frame::TooLong`] is still to be skipped.
    skipping: bool,
    /// The line read so far (of an oversized line, its prefix).
    line: Vec<u8>,
    /// Counts bytes of an oversized line once it stopped being stored.
    dropped: Option<usize>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// `max` is the largest accepted line, in bytes, not counting the `\n`.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner: BufReader::with_capacity(READ_BUFFER, inner),
            max,
            early: false,
            skipping: false,
            line: Vec::new(),
            dropped: None,
        }
    }

    /// A reader that reports a line longer than `max` as soon as it has its prefix
    /// ([`Frame::TooLong`]), and then skips the rest of it.
    pub fn reporting_early(inner: R, max: usize) -> Self {
        LineReader { early: true, ..LineReader::new(inner, max) }
    }

    /// The next frame, or `None` at a clean end of stream.
    pub async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Consumes the rest of a line reported too long; `false` when the stream ended first.
    fn poll_skip_rest(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<bool>> {
        loop {
            let available = ready!(Pin::new(&mut self.inner).poll_fill_buf(cx))?;
            if available.is_empty() {
                self.skipping = false;
                return Poll::Ready(Ok(false));
            }
            let (taken, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            Pin::new(&mut self.inner).consume(taken);
            if done {
                self.skipping = false;
                return Poll::Ready(Ok(true));
            }
        }
    }

    /// Polls for the next frame, or `None` at a clean end of stream.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<Option<Frame>>> {
        if self.skipping && !ready!(self.poll_skip_rest(cx))? {
            // The line was reported already: its missing `\n` changes nothing.
            return Poll::Ready(Ok(None));
        }
        loop {
            let available = ready!(Pin::new(&mut self.inner).poll_fill_buf(cx))?;
            if available.is_empty() {
                let line = std::mem::take(&mut self.line);
                return Poll::Ready(Ok(match self.dropped.take() {
                    Some(len) => Some(Frame::Oversized { prefix: line, len }),
                    None if line.is_empty() => None,
                    None => Some(Frame::Unterminated(line)),
                }));
            }
            let (chunk, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..=i], true),
                None => (available, false),
            };
            let taken = chunk.len();
            let content = &chunk[..taken - usize::from(done)];
            let line = &mut self.line;
            match self.dropped.as_mut() {
                // Keep filling the prefix: the line's `id` may come after the bytes read so far.
                Some(len) => {
                    *len += content.len();
                    let keep = OVERSIZED_PREFIX.saturating_sub(line.len()).min(content.len());
                    line.extend_from_slice(&content[..keep]);
                }
                None if line.len() + content.len() > self.max => {
                    let total = line.len() + content.len();
                    let keep = OVERSIZED_PREFIX.saturating_sub(line.len()).min(content.len());
                    line.extend_from_slice(&content[..keep]);
                    line.truncate(OVERSIZED_PREFIX);
                    line.shrink_to_fit();
                    self.dropped = Some(total);
                }
                // The usual case, a whole line in the buffer: one allocation of the right size.
                None if line.is_empty() => *line = chunk.to_vec(),
                None => line.extend_from_slice(chunk),
            }
            Pin::new(&mut self.inner).consume(taken);
            if done {
                let line = std::mem::take(&mut self.line);
                return Poll::Ready(Ok(Some(match self.dropped.take() {
                    Some(len) => Frame::Oversized { prefix: line, len },
                    None => Frame::Line(line),
                })));
            }
            if let (true, Some(seen)) = (self.early, self.dropped)
                && self.line.len() >= OVERSIZED_PREFIX
            {
                self.skipping = true;
                self.dropped = None;
                return Poll::Ready(Ok(Some(Frame::TooLong { prefix: std::mem::take(&mut self.line), seen })));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<Frame> {
        let mut reader = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(frame) = reader.next().await.unwrap() {
            out.push(frame);
        }
        out
    }

    #[tokio::test]
    async fn splits_on_newline_only() {
        let got = frames(b"{\"a\":1}\n{\"b\":\r2}\r\n", 100).await;
        assert_eq!(got, vec![Frame::Line(b"{\"a\":1}\n".to_vec()), Frame::Line(b"{\"b\":\r2}\r\n".to_vec())]);
    }

    #[tokio::test]
    async fn line_of_exactly_max_passes_and_one_more_is_refused() {
        let mut input = vec![b'x'; 10];
        input.push(b'\n');
        input.extend(vec![b'y'; 11]);
        input.push(b'\n');
        input.extend(b"ok\n");
        let got = frames(&input, 10).await;
        assert_eq!(got[0], Frame::Line([vec![b'x'; 10], vec![b'\n']].concat()));
        assert_eq!(got[1], Frame::Oversized { prefix: vec![b'y'; 11], len: 11 });
        assert_eq!(got[2], Frame::Line(b"ok\n".to_vec()));
    }

    #[tokio::test]
    async fn oversized_line_spanning_many_reads_keeps_a_prefix_and_its_length() {
        let big = READ_BUFFER * 3 + 17;
        let mut input = vec![b'z'; big];
        input.push(b'\n');
        input.extend(b"next\n");
        let got = frames(&input, 1000).await;
        assert_eq!(got[0], Frame::Oversized { prefix: vec![b'z'; OVERSIZED_PREFIX], len: big });
        assert_eq!(got[1], Frame::Line(b"next\n".to_vec()));
    }

    /// Hands out its bytes a few per read, as a slow pipe does.
    struct Pieces(&'static [u8], usize);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.1.min(self.0.len()).min(buf.remaining());
            buf.put_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Found by the `frame` fuzz target: with a limit below the prefix length and the line
    /// arriving in pieces, the prefix stopped at the piece that crossed the limit, so an `id`
    /// after it was lost and the refusal could not name its request.
    #[tokio::test]
    async fn an_oversized_line_arriving_in_pieces_keeps_a_whole_prefix() {
        let line: &'static [u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{},\"id\":42}\nok\n";
        let mut reader = LineReader::new(Pieces(line, 7), 20);
        let len = line.len() - 4;
        assert_eq!(reader.next().await.unwrap(), Some(Frame::Oversized { prefix: line[..len].to_vec(), len }));
        assert_eq!(reader.next().await.unwrap(), Some(Frame::Line(b"ok\n".to_vec())));
    }

    /// On a paused clock, which moves only when every task waits: a reader that waits for the
    /// end of the line fails at once instead of hanging.
    #[tokio::test(start_paused = true)]
    async fn reporting_early_tells_of_a_long_line_before_its_end_and_skips_the_rest() {
        let (mut client, server) = tokio::io::duplex(READ_BUFFER);
        let mut reader = LineReader::reporting_early(server, 10_000);
        let head = [&b"{\"id\":5,\"x\":\""[..], &vec![b'z'; 20_000]].concat();
        client.write_all(&head).await.unwrap();
        // The line has not ended: the frame comes all the same.
        let early = tokio::time::timeout(std::time::Duration::from_secs(60), reader.next()).await;
        let Ok(Ok(Some(Frame::TooLong { prefix, seen }))) = early else { panic!("not reported early: {early:?}") };
        assert_eq!((prefix.as_slice(), seen), (&head[..OVERSIZED_PREFIX], head.len()));
        // The rest is skipped as it comes, however much of it there is, and lines after it are read.
        let tail = vec![b'z'; READ_BUFFER * 3];
        let writer = tokio::spawn(async move {
            client.write_all(&tail).await.unwrap();
            client.write_all(b"\"}\nnext\n").await.unwrap();
            client
        });
        assert_eq!(reader.next().await.unwrap(), Some(Frame::Line(b"next\n".to_vec())));
        drop(writer.await.unwrap());
        assert_eq!(reader.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn reporting_early_keeps_a_whole_prefix_and_reports_a_short_long_line_when_it_ends() {
        // A limit below the prefix: reported once the prefix is full.
        let line: &'static [u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{},\"id\":42}\nok\n";
        let mut reader = LineReader::reporting_early(Pieces(line, 7), 20);
        let len = line.len() - 4;
        assert_eq!(reader.next().await.unwrap(), Some(Frame::Oversized { prefix: line[..len].to_vec(), len }));
        assert_eq!(reader.next().await.unwrap(), Some(Frame::Line(b"ok\n".to_vec())));
        // A line that ends without its `\n` while it is skipped ends the stream.
        let mut input = vec![b'y'; OVERSIZED_PREFIX * 2];
        let mut reader = LineReader::reporting_early(&input[..], 10);
        assert!(matches!(reader.next().await.unwrap(), Some(Frame::TooLong { .. })));
        assert_eq!(reader.next().await.unwrap(), None);
        input.extend(b"\nok\n");
        assert_eq!(frames(&input, 10).await.len(), 2, "the usual reader reports it once, whole");
    }

    #[tokio::test]
    async fn unterminated_tail_is_reported_not_passed_as_a_line() {
        let got = frames(b"one\ntwo", 100).await;
        assert_eq!(got, vec![Frame::Line(b"one\n".to_vec()), Frame::Unterminated(b"two".to_vec())]);
    }
}
