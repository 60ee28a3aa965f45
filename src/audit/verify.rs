//! `toolgate audit verify`: walks the chain through every segment, oldest first, and the head
//! record, and reports the first thing wrong, naming the segment, the line and what happened to
//! it. The log is read as a stream: months of segments need no more memory than one line.

use std::fmt;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::chain::{self, Head, Link, ORIGIN};
use super::segments::{self, Segment};

/// What is wrong with a log; line numbers count from 1, as an editor shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The line is not a JSON record at all.
    NotARecord { line: usize },
    /// The line's content changed since it was written.
    Edited { line: usize },
    /// Records are missing before this line.
    Deleted { line: usize, first: u64, last: u64 },
    /// A whole segment is missing before this one (its first record says one came before).
    SegmentMissing { first: u64, last: u64 },
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
            Problem::SegmentMissing { first, last } => write!(
                f,
                "line 1: records {first} to {last} before it are missing: the segment that held them was removed"
            ),
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
    /// Segments read: the rotated ones kept, and the live file.
    pub segments: usize,
    /// Lines in them.
    pub lines: usize,
    /// Chained records among them.
    pub chained: u64,
    /// The first record checked, when the log no longer begins at record 1: its oldest segments
    /// were deleted (by `audit_retention`, or by hand: the chain cannot tell), so the link from
    /// this record to the one before it cannot be checked.
    pub from: Option<u64>,
    /// What is wrong, and in which segment.
    pub problem: Option<(PathBuf, Problem)>,
}

impl Report {
    /// The problem as a person reads it: prefixed with its segment's file name when that is
    /// not the live file (which the caller names already).
    pub fn problem_text(&self, live: &Path) -> Option<String> {
        let (file, problem) = self.problem.as_ref()?;
        Some(match file.file_name() {
            Some(name) if file != live => format!("{}: {problem}", name.to_string_lossy()),
            _ => problem.to_string(),
        })
    }
}

/// Where a line is: its segment (an index into the list) and its line in it.
type Place = (usize, usize);

/// Checks the log whose live file is `path`: every segment in order, the links between them,
/// and the head record.
pub fn verify(path: &Path) -> io::Result<Report> {
    let segments = segments::list(path)?;
    let mut report = Report::empty(segments.len());
    // The place of the last line read, and its line number.
    let mut prev: Option<(Place, usize)> = None;
    let mut from: Option<u64> = None;
    let head = chain::read_head(path);
    let head_seq = head.as_ref().ok().and_then(|h| h.as_ref()).map(|h| h.lines);
    let mut head_line_hash = None;
    let mut prev_hash = ORIGIN.to_owned();
    let mut expected: Option<u64> = None;
    let mut problem: Option<(Place, Problem)> = None;
    let mut si = 0;
    segments::read_segments(&segments, |segment, n, line| {
        // Which segment: looked up once, at its first line.
        if n == 1 {
            si = segments.iter().position(|s| s == segment).unwrap_or(0);
        }
        report.lines += 1;
        let here = (si, n);
        let found = |p| -> io::Result<ControlFlow<(Place, Problem)>> { Ok(ControlFlow::Break((here, p))) };
        let Ok(link) = serde_json::from_slice::<Link>(line) else {
            problem = Some((here, Problem::NotARecord { line: n }));
            return Ok(ControlFlow::Break(()));
        };
        let step: ControlFlow<(Place, Problem)> = (|| {
            let (Some(seq), true) = (link.seq, link.v >= 2) else {
                if expected.is_some() {
                    return found(Problem::Unchained { line: n });
                }
                prev_hash = chain::hash(line);
                return Ok(ControlFlow::Continue(()));
            };
            // The oldest segment kept may begin after record 1, with the record that began it,
            // when the segments before it were deleted.
            let resumes = expected.is_none() && prev.is_none() && seq > 1 && link.event.as_deref() == Some("segment");
            if resumes {
                from = Some(seq);
            }
            let want = expected.unwrap_or(if resumes { seq } else { 1 });
            if seq != want {
                let first = from.unwrap_or(1);
                let seen_before = (first..want).contains(&seq);
                let missing_later = appears_later(&segments, here, want.min(seq)..want.max(seq))?;
                return found(if seen_before {
                    Problem::Repeated { line: n, seq }
                } else if seq > want && !missing_later && n == 1 && link.event.as_deref() == Some("segment") {
                    Problem::SegmentMissing { first: want, last: seq - 1 }
                } else if seq > want && !missing_later {
                    Problem::Deleted { line: n, first: want, last: seq - 1 }
                } else {
                    Problem::Reordered { line: n, seq, expected: want }
                });
            }
            if !resumes && link.prev.as_deref() != Some(prev_hash.as_str()) {
                // The line before changed since this one was written (for the first line of a
                // log: lines before it are gone).
                return Ok(ControlFlow::Break(match prev {
                    Some((place, line)) => (place, Problem::Edited { line }),
                    None => (here, Problem::Deleted { line: 1, first: 0, last: 0 }),
                }));
            }
            Ok(ControlFlow::Continue(()))
        })()?;
        if let ControlFlow::Break(p) = step {
            problem = Some(p);
            return Ok(ControlFlow::Break(()));
        }
        let hash = chain::hash(line);
        if let Some(seq) = link.seq.filter(|_| link.v >= 2) {
            expected = Some(seq + 1);
            report.chained += 1;
            if Some(seq) == head_seq {
                head_line_hash = Some((here, hash.clone()));
            }
        }
        prev_hash = hash;
        prev = Some((here, n));
        Ok(ControlFlow::Continue(()))
    })?;
    report.from = from;
    let file = |si: usize| segments.get(si).map_or_else(|| path.to_owned(), |s| s.path.clone());
    if let Some(((si, _), p)) = problem {
        report.problem = Some((file(si), p));
        return Ok(report);
    }
    let last = expected.map_or(0, |e| e - 1);
    let live = |p| Some((path.to_owned(), p));
    let head: Option<Head> = match head {
        Ok(head) => head,
        Err(e) if last > 0 => {
            report.problem = live(Problem::NoHead { why: e.to_string() });
            return Ok(report);
        }
        Err(_) => None,
    };
    let Some(head) = head else {
        report.problem = (last > 0).then(|| (path.to_owned(), Problem::NoHead { why: "no head record".into() }));
        return Ok(report);
    };
    if head.lines > last {
        report.problem = live(Problem::Truncated { head: head.lines, last });
        return Ok(report);
    }
    if head.lines > 0
        && let Some(((si, n), hash)) = head_line_hash
        && hash != head.hash
    {
        report.problem = Some((file(si), Problem::Edited { line: n }));
        return Ok(report);
    }
    if head.lines < last {
        report.problem = live(Problem::Unaccounted { after: head.lines, count: last - head.lines });
    }
    Ok(report)
}

impl Report {
    fn empty(segments: usize) -> Report {
        Report { segments, lines: 0, chained: 0, from: None, problem: None }
    }
}

/// Whether a record numbered in `seqs` appears after `here` (asked only when a record is out of
/// place: it tells a reordering from a deletion).
fn appears_later(segments: &[Segment], here: Place, seqs: std::ops::Range<u64>) -> io::Result<bool> {
    let mut found = false;
    let rest = segments.get(here.0..).unwrap_or_default();
    segments::read_segments(rest, |segment, n, line| {
        if segment == &segments[here.0] && n <= here.1 {
            return Ok(ControlFlow::Continue(()));
        }
        let seq = serde_json::from_slice::<Link>(line).ok().and_then(|l| l.seq);
        found = seq.is_some_and(|s| seqs.contains(&s));
        Ok(if found { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    Ok(found)
}
