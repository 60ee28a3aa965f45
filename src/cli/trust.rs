//! `toolgate trust`: each tool's trust record and standing; accepting a changed tool.

use std::io::Write;

use super::{Error, ExitCode, TrustAction, TrustArgs};
use crate::policy::Source;
use crate::trust::TrustFile;
use crate::visible::visible;

pub fn run(args: TrustArgs) -> Result<ExitCode, Error> {
    let path = crate::trust::default_path().ok_or(Error::NoStateDir("the trust record"))?;
    let file = TrustFile::new(path);
    let mut stdout = std::io::stdout().lock();
    if let Some(TrustAction::Accept { server, tool }) = &args.action {
        file.update(|store| store.accept(server, tool)).map_err(|source| Error::File {
            verb: "update",
            path: file.path().to_owned(),
            source,
        })??;
        let _ = writeln!(
            stdout,
            "accepted the new definition of {}/{}; it earns trust again from nothing",
            visible(server),
            visible(tool)
        );
        return Ok(ExitCode::OK);
    }
    let policy = Source::locate(args.policy.as_deref())
        .load()
        .map_err(|errors| Error::Policy { errors, nothing_started: false })?;
    let store = file.read().map_err(|source| Error::File { verb: "read", path: file.path().to_owned(), source })?;
    let bar = &policy.settings.trust;
    let now = crate::clock::now_ms();
    if store.tools.is_empty() && !args.json {
        let _ = writeln!(stdout, "no tools recorded yet in {}", file.path().display());
    }
    if !args.json {
        for (server, identity) in &store.servers {
            let _ = writeln!(
                stdout,
                "{}: trust bound to {} ({})",
                visible(server),
                identity.id,
                visible(&identity.command_line())
            );
        }
    }
    for (key, record) in &store.tools {
        let line = if args.json {
            let mut json = crate::trust::describe_json(key, record, bar, now);
            let bound = store.servers.iter().find(|(server, _)| key.starts_with(&crate::trust::key(server, "")));
            json["identity"] = bound.map_or(serde_json::Value::Null, |(_, id)| serde_json::Value::from(id.id.clone()));
            crate::visible::to_json(&json).unwrap_or_default()
        } else {
            crate::trust::describe(key, record, bar, now)
        };
        let _ = writeln!(stdout, "{line}");
    }
    Ok(ExitCode::OK)
}
