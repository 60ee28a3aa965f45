//! The hash chain that makes the audit log tamper-evident.
//!
//! Every record (format `v` 2) begins with its position in the chain, `seq`, and `prev`, the
//! SHA-256 of the line before it (the line's bytes without its newline; 64 zeros for the first
//! line of a log). Editing a line breaks the `prev` of the next one; deleting or reordering
//! lines breaks the `seq` order. Truncating the end leaves a chain that is still whole, so a
//! head record is kept apart, in `FILE.head`: the number of the last line, its hash, and the
//! log's length then. Records written before the chain existed (`v` 1) may precede it; the first
//! chained record then points at the last of them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev` of the first line of a log.
pub const ORIGIN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of one line, as hex (the line without its newline).
pub fn hash(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    crate::hex::encode(&Sha256::digest(line))
}

/// The end of the chain: what the next record must follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The log's length in bytes after the last line.
    pub end: u64,
    /// The last line's `seq` (0 when it has none: an empty log or a v1 record).
    pub seq: u64,
    /// The last line's hash ([`ORIGIN`] for an empty log).
    pub hash: String,
}

impl Tail {
    pub fn empty() -> Tail {
        Tail { end: 0, seq: 0, hash: ORIGIN.to_owned() }
    }
}

/// The fields of a record that the chain uses.
#[derive(Debug, Deserialize)]
pub struct Link {
    #[serde(default)]
    pub v: u32,
    pub seq: Option<u64>,
    pub prev: Option<String>,
    /// `segment` for the record that begins a rotated-to segment (`segments`).
    pub event: Option<String>,
}

/// Reads the last complete line of a log `size` bytes long.
pub fn read_tail(file: &File, size: u64) -> io::Result<Tail> {
    if size == 0 {
        return Ok(Tail::empty());
    }
    // Read backwards until the line before the last newline starts.
    let mut chunk = 4096u64;
    loop {
        let start = size.saturating_sub(chunk);
        let mut buf = vec![0u8; usize::try_from(size - start).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, start)?;
        let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
        match memchr::memrchr(b'\n', body) {
            Some(i) => return Ok(tail_of(&body[i + 1..], size)),
            None if start == 0 => return Ok(tail_of(body, size)),
            None => chunk *= 4,
        }
    }
}

fn tail_of(line: &[u8], end: u64) -> Tail {
    let seq = serde_json::from_slice::<Link>(line).ok().and_then(|l| l.seq).unwrap_or(0);
    Tail { end, seq, hash: hash(line) }
}

/// The head record: where the chain ended after the last write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub v: u32,
    /// The `seq` of the last line.
    pub lines: u64,
    /// Its hash.
    pub hash: String,
    /// The log's length then.
    pub bytes: u64,
}

/// Where a log's head record is kept.
pub fn head_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_owned();
    name.push(".head");
    log.with_file_name(name)
}

/// The head record's size on disk: it is padded with spaces to this, so that each update is
/// one write in place, never a truncation (JSON allows the trailing spaces).
const HEAD_SIZE: usize = 192;

/// Writes the head record in place (the caller holds the log's lock).
pub fn write_head(file: &File, tail: &Tail) -> io::Result<()> {
    let head = Head { v: 2, lines: tail.seq, hash: tail.hash.clone(), bytes: tail.end };
    let mut text = serde_json::to_vec(&head).map_err(io::Error::other)?;
    if text.len() < HEAD_SIZE {
        text.resize(HEAD_SIZE - 1, b' ');
        text.push(b'\n');
        file.write_all_at(&text, 0)
    } else {
        text.push(b'\n');
        file.write_all_at(&text, 0)?;
        file.set_len(text.len() as u64)
    }
}

pub fn read_head(log: &Path) -> io::Result<Option<Head>> {
    match std::fs::read(head_path(log)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_tail_is_the_last_complete_line_however_long() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut f = File::create(&path).unwrap();
        let long = format!("{{\"v\":2,\"seq\":7,\"prev\":\"x\",\"pad\":\"{}\"}}", "a".repeat(20_000));
        write!(f, "{{\"v\":2,\"seq\":6}}\n{long}\n").unwrap();
        let size = f.metadata().unwrap().len();
        let f = File::open(&path).unwrap();
        let tail = read_tail(&f, size).unwrap();
        assert_eq!(tail, Tail { end: size, seq: 7, hash: hash(long.as_bytes()) });
        assert_eq!(read_tail(&f, 0).unwrap(), Tail::empty());
    }
}
