//! Byte framing of the stdio transport: one message per `\n`-terminated line.
//!
//! Framing happens on bytes, before any decoding, so that what toolgate calls "a line" is exactly
//! what the peer on the other side will call a line. A line longer than the configured maximum is
//! never cut: it is consumed whole and reported as [`Frame::Oversized`], keeping only a prefix so
//! the caller can still tell the sender which request it refused.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

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
}

/// Reads [`Frame`]s from a byte stream.
pub struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// `max` is the largest accepted line, in bytes, not counting the `\n`.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader { inner: BufReader::with_capacity(READ_BUFFER, inner), max }
    }

    /// The next frame, or `None` at a clean end of stream.
    pub async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        let mut line = Vec::new();
        // Counts bytes of an oversized line once it stopped being stored.
        let mut dropped: Option<usize> = None;
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(match dropped {
                    Some(len) => Some(Frame::Oversized { prefix: line, len }),
                    None if line.is_empty() => None,
                    None => Some(Frame::Unterminated(line)),
                });
            }
            let (chunk, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..=i], true),
                None => (available, false),
            };
            let taken = chunk.len();
            let content = &chunk[..taken - usize::from(done)];
            match dropped.as_mut() {
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
                    dropped = Some(total);
                }
                // The usual case, a whole line in the buffer: one allocation of the right size.
                None if line.is_empty() => line = chunk.to_vec(),
                None => line.extend_from_slice(chunk),
            }
            self.inner.consume(taken);
            if done {
                return Ok(Some(match dropped {
                    Some(len) => Frame::Oversized { prefix: line, len },
                    None => Frame::Line(line),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
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

    #[tokio::test]
    async fn unterminated_tail_is_reported_not_passed_as_a_line() {
        let got = frames(b"one\ntwo", 100).await;
        assert_eq!(got, vec![Frame::Line(b"one\n".to_vec()), Frame::Unterminated(b"two".to_vec())]);
    }
}
