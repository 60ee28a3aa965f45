//! `toolgate audit verify` and `toolgate audit show`: the audit log's hash chain and history.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use super::error::FlagError;
use super::{Error, ExitCode, ShowArgs};
use crate::paths;

/// The log given, or the default one.
fn audit_file(file: Option<PathBuf>) -> Result<PathBuf, Error> {
    file.or_else(paths::default_audit_log).ok_or(Error::NoAuditLog)
}

pub fn verify(file: Option<PathBuf>) -> Result<ExitCode, Error> {
    let path = audit_file(file)?;
    let report = match crate::audit::verify::verify(&path) {
        Ok(report) => report,
        Err(source) => return Err(Error::File { verb: "read", path, source }),
    };
    let mut stdout = std::io::stdout().lock();
    match report.problem_text(&path) {
        None => {
            let segments = match report.segments {
                0 | 1 => String::new(),
                n => format!("{n} segments, "),
            };
            let _ = writeln!(
                stdout,
                "{}: ok: {segments}{} lines, {} chained records, the head record matches",
                path.display(),
                report.lines,
                report.chained
            );
            if let Some(from) = report.from {
                let _ = writeln!(
                    stdout,
                    "the log begins at record {from}: the segments before it are no longer kept (removed by \
                     audit_retention, or by hand), so its link to them cannot be checked"
                );
            }
            Ok(ExitCode::OK)
        }
        Some(problem) => {
            let _ = writeln!(stdout, "{}: {problem}", path.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn show(args: ShowArgs) -> Result<ExitCode, Error> {
    let path = audit_file(args.file)?;
    let filter = crate::audit::show::Filter {
        tool: glob(args.tool, "tool")?,
        server: glob(args.server, "server")?,
        decision: args.decision,
        decided_by: args.decided_by,
        since: args.since.map(|t| parse_time(t, "since")).transpose()?,
        until: args.until.map(|t| parse_time(t, "until")).transpose()?,
    };
    // Buffered: a line per write made `audit show` over a million records spend most of its
    // time in system calls.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let shown = crate::audit::show::show(&path, &filter, args.json, &mut out).and_then(|_| out.flush());
    match shown {
        Ok(()) => Ok(ExitCode::OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::OK),
        Err(source) => Err(Error::File { verb: "read", path, source }),
    }
}

pub(super) fn glob(pattern: Option<String>, flag: &'static str) -> Result<Option<globset::GlobMatcher>, FlagError> {
    pattern
        .map(|pattern| match globset::Glob::new(&pattern) {
            Ok(glob) => Ok(glob.compile_matcher()),
            Err(source) => Err(FlagError::Glob { flag, pattern, source }),
        })
        .transpose()
}

/// A time given as RFC 3339 or as a duration before now.
pub(super) fn parse_time(text: String, flag: &'static str) -> Result<SystemTime, FlagError> {
    if let Ok(time) = humantime::parse_rfc3339_weak(&text) {
        return Ok(time);
    }
    // A date alone is its first moment, UTC.
    if let Ok(time) = humantime::parse_rfc3339_weak(&format!("{text}T00:00:00Z")) {
        return Ok(time);
    }
    match humantime::parse_duration(&text) {
        Ok(ago) => Ok(crate::clock::now() - ago),
        Err(_) => Err(FlagError::Time { flag, text }),
    }
}
