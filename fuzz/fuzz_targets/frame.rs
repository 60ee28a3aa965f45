//! The line framer: whatever the bytes and however they arrive in pieces, the frames account for
//! every byte exactly once, in order; no stored line is longer than the maximum; an oversized
//! line keeps its true length and only a prefix; only the end of the stream is unterminated.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};
use toolgate::wire::frame::OVERSIZED_PREFIX;
use toolgate::wire::{Frame, LineReader};

/// Hands out the input a few bytes per read.
struct Pieces<'a> {
    data: &'a [u8],
    piece: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = self.piece.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&[max, piece], data)) = input.split_first_chunk::<2>() else { return };
    // Small limits reach the oversized path; a large one (5000) crosses the prefix length.
    let max = if max == 255 { 5000 } else { usize::from(max) };
    let reader = Pieces { data, piece: usize::from(piece).max(1) };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let frames = runtime.block_on(async {
        let mut lines = LineReader::new(reader, max);
        let mut frames = Vec::new();
        while let Some(frame) = lines.next().await.unwrap() {
            frames.push(frame);
        }
        frames
    });
    let mut at = 0;
    let last = frames.len().saturating_sub(1);
    for (i, frame) in frames.iter().enumerate() {
        match frame {
            Frame::Line(line) => {
                assert_eq!(line.last(), Some(&b'\n'));
                assert!(line.len() - 1 <= max, "a line over the maximum passed");
                assert!(!line[..line.len() - 1].contains(&b'\n'));
                assert_eq!(&data[at..at + line.len()], &line[..]);
                at += line.len();
            }
            Frame::Oversized { prefix, len } => {
                assert!(*len > max);
                assert_eq!(prefix.len(), (*len).min(OVERSIZED_PREFIX));
                assert_eq!(&data[at..at + prefix.len()], &prefix[..]);
                assert!(!data[at..at + len].contains(&b'\n'));
                if at + len == data.len() {
                    // An oversized tail with no newline: the end of the stream.
                    assert_eq!(i, last);
                    at += len;
                } else {
                    assert_eq!(data[at + len], b'\n');
                    at += len + 1;
                }
            }
            Frame::TooLong { .. } => unreachable!("only a reader made with `reporting_early` reports a line early"),
            Frame::Unterminated(rest) => {
                assert_eq!(i, last, "only the end of the stream is unterminated");
                assert!(!rest.is_empty() && !rest.contains(&b'\n') && rest.len() <= max);
                assert_eq!(&data[at..], &rest[..]);
                at += rest.len();
            }
        }
    }
    assert_eq!(at, data.len(), "every byte is in a frame");
});
