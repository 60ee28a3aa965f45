//! `toolgate summary`: the period's record read back to the person (see `crate::summary`).

use std::io::Write;

use super::audit::{glob, parse_time};
use super::error::FlagError;
use super::{Error, ExitCode, SummaryArgs};
use crate::policy::Source;
use crate::summary::{self, Sources};
use crate::{paths, review, trust};

pub fn run(args: SummaryArgs) -> Result<ExitCode, Error> {
    let audit = args.audit.or_else(paths::default_audit_log).ok_or(Error::NoAuditLog)?;
    let since = parse_time(args.since, "since")?;
    let until = args.until.map(|t| parse_time(t, "until")).transpose()?.unwrap_or_else(crate::clock::now);
    let server = glob(args.server, "server")?;
    let source = Source::locate(args.policy.as_deref());
    let policy = source.load().map_err(|errors| Error::Policy { errors, nothing_started: false })?;
    let queue = review::default_path().and_then(|p| review::QueueFile::new(p).read().ok());
    let trust = trust::default_path().and_then(|p| trust::TrustFile::new(p).read().ok());
    let log = summary::read_log(&audit, since, until).map_err(|source| Error::File {
        verb: "read",
        path: audit.clone(),
        source,
    })?;
    let chain = match crate::audit::verify::verify(&audit) {
        Ok(report) => report.problem_text(&audit).unwrap_or_else(|| "ok".to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "ok".to_owned(),
        Err(e) => format!("cannot be read: {e}"),
    };
    let summary = summary::summarize(
        &Sources {
            queue: queue.as_ref(),
            trust: trust.as_ref(),
            policy: Some((&policy, source.path().map(ToOwned::to_owned))),
            since,
            until,
            server: server.as_ref(),
            propose_after: policy.settings.propose_after_approvals,
            now_ms: crate::clock::now_ms(),
        },
        &log,
        chain,
    );
    let mut out = std::io::stdout().lock();
    if let Some(write) = args.write_rule {
        let [policy_file, n] = <[String; 2]>::try_from(write).map_err(|_| FlagError::WriteRule)?;
        let n: usize = n.parse().map_err(|_| FlagError::WriteRule)?;
        let path = std::path::PathBuf::from(policy_file);
        let rule = summary::write_rule(&summary, n, &path)?;
        let _ = writeln!(out, "added proposal {n} to {}:\n\n{}", path.display(), crate::visible::visible_lines(&rule));
        return Ok(ExitCode::OK);
    }
    let text = if args.json {
        crate::visible::to_json_pretty(&summary).unwrap_or_default() + "\n"
    } else if args.markdown {
        summary::render::markdown(&summary)
    } else {
        summary::render::text(&summary)
    };
    let _ = out.write_all(text.as_bytes());
    Ok(ExitCode::OK)
}
