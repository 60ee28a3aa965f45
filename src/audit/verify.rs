//! `toolgate audit verify`: walks the chain and the head record and reports the first thing
//! wrong, naming the line and what happened to it.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;

use super::chain::{self, Head, Link, ORIGIN};

/// What is wrong with a log; line numbers count from 1, as an editor shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The line is not a JSON record at all.
    NotARecord { line: usize },
    /// The line's content changed since it was written.
    Edited { line: usize },
    /// Records are missing before this line.
    Deleted { line: usize, first: u64, last: u64 },
    /// The line is not where it was written.
    Reordered { line: usize, seq: u64, expected: u64 },
    /// The line repeats a record that appeared earlier.
    Repeated { line: usize, seq: u64 },
    /// A record without a place in the chain sits inside it.
    Unchained { line: usize },
    /// The log ends before the head record says it did.
    Truncated { head: u64, last: u64 },
    /// Records follow the one the head record names.
    Unaccounted { after: u64, count: u64 },
    /// Records are chained but the head record is missing or unreadable.
    NoHead { why: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotARecord { line } => write!(f, "line {line}: not a JSON record (edited, or not an audit log)"),
            Problem::Edited { line } => write!(f, "line {line}: edited (its hash no longer matches the chain)"),
            Problem::Deleted { line, first, last } if first == last => {
                write!(f, "line {line}: record {first} before it was deleted")
            }
            Problem::Deleted { line, first, last } => {
                write!(f, "line {line}: records {first} to {last} before it were deleted")
            }
            Problem::Reordered { line, seq, expected } => {
                write!(f, "line {line}: reordered (record {seq} where record {expected} belongs)")
            }
            Problem::Repeated { line, seq } => write!(f, "line {line}: repeats record {seq} (copied in)"),
            Problem::Unchained { line } => {
                write!(f, "line {line}: inserted (a record without a place in the chain)")
            }
            Problem::Truncated { head, last } => {
                write!(f, "truncated: the head record says the log ran to record {head}, but it ends at record {last}")
            }
            Problem::Unaccounted { after, count } => write!(
                f,
                "{count} record(s) after record {after}, where the head record says the log ended (appended by \
                 hand, or a writer stopped between writing a record and its head)"
            ),
            Problem::NoHead { why } => {
                write!(f, "the head record is missing or unreadable ({why}); truncation cannot be ruled out")
            }
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Lines in the file.
    pub lines: usize,
    /// Chained records among them.
    pub chained: u64,
    pub problem: Option<Problem>,
}

/// Checks the log at `path` and its head record.
pub fn verify(path: &Path) -> io::Result<Report> {
    let text = std::fs::read(path)?;
    let lines: Vec<&[u8]> = text.strip_suffix(b"\n").unwrap_or(&text).split(|b| *b == b'\n').collect();
    let lines: Vec<&[u8]> = if text.is_empty() { Vec::new() } else { lines };
    let links: Vec<Option<Link>> = lines.iter().map(|l| serde_json::from_slice::<Link>(l).ok()).collect();
    let found = |problem| Ok(Report { lines: lines.len(), chained: 0, problem: Some(problem) });
    // Where each record sits, for telling a reordering from a deletion.
    let mut positions: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, link) in links.iter().enumerate() {
        if let Some(seq) = link.as_ref().and_then(|l| l.seq) {
            positions.entry(seq).or_default().push(i);
        }
    }
    let mut prev_hash = ORIGIN.to_owned();
    let mut expected: Option<u64> = None;
    for (i, (line, link)) in lines.iter().zip(&links).enumerate() {
        let n = i + 1;
        let Some(link) = link else { return found(Problem::NotARecord { line: n }) };
        let (Some(seq), true) = (link.seq, link.v >= 2) else {
            if expected.is_some() {
                return found(Problem::Unchained { line: n });
            }
            prev_hash = chain::hash(line);
            continue;
        };
        let want = expected.unwrap_or(1);
        if seq != want {
            let seen_before = positions.get(&seq).is_some_and(|p| p.iter().any(|&j| j < i));
            let missing_later =
                (want.min(seq)..want.max(seq)).any(|s| positions.get(&s).is_some_and(|p| p.iter().any(|&j| j > i)));
            return found(if seen_before {
                Problem::Repeated { line: n, seq }
            } else if seq > want && !missing_later {
                Problem::Deleted { line: n, first: want, last: seq - 1 }
            } else {
                Problem::Reordered { line: n, seq, expected: want }
            });
        }
        if link.prev.as_deref() != Some(prev_hash.as_str()) {
            // The line before changed since this one was written (for the first line of a log:
            // lines before it are gone).
            return found(if n == 1 {
                Problem::Deleted { line: 1, first: 0, last: 0 }
            } else {
                Problem::Edited { line: n - 1 }
            });
        }
        prev_hash = chain::hash(line);
        expected = Some(seq + 1);
    }
    let last = expected.map_or(0, |e| e - 1);
    let report = |problem| Ok(Report { lines: lines.len(), chained: last, problem });
    let head: Option<Head> = match chain::read_head(path) {
        Ok(head) => head,
        Err(e) if last > 0 => return report(Some(Problem::NoHead { why: e.to_string() })),
        Err(_) => None,
    };
    let Some(head) = head else {
        return report((last > 0).then(|| Problem::NoHead { why: "no head record".into() }));
    };
    if head.lines > last {
        return report(Some(Problem::Truncated { head: head.lines, last }));
    }
    if head.lines > 0 {
        // Every record from 1 to `last` is in place by now, so record `head.lines` is found.
        let at = positions.get(&head.lines).and_then(|p| p.first().copied()).unwrap_or(0);
        if chain::hash(lines[at]) != head.hash {
            return report(Some(Problem::Edited { line: at + 1 }));
        }
    }
    if head.lines < last {
        return report(Some(Problem::Unaccounted { after: head.lines, count: last - head.lines }));
    }
    report(None)
}
