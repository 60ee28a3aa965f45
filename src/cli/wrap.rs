//! `toolgate wrap` and `toolgate unwrap`: toolgate in front of a client's stdio and remote
//! servers, and taken away again.

use super::{Error, ExitCode, WrapArgs};

pub fn wrap(args: &WrapArgs) -> Result<ExitCode, Error> {
    let Some(path) = config(args)? else { return Ok(ExitCode::USAGE) };
    let policy = args.policy.as_deref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()));
    crate::wrap::wrap(&path, policy.as_deref(), args.dry_run, &mut std::io::stdout().lock())?;
    Ok(ExitCode::OK)
}

pub fn unwrap(args: &WrapArgs) -> Result<ExitCode, Error> {
    let Some(path) = config(args)? else { return Ok(ExitCode::USAGE) };
    crate::wrap::unwrap(&path, args.dry_run, &mut std::io::stdout().lock())?;
    Ok(ExitCode::OK)
}

/// The configuration file to change; none when clap let neither `--config` nor `--client` through.
fn config(args: &WrapArgs) -> Result<Option<std::path::PathBuf>, Error> {
    match (&args.config, args.client) {
        (Some(path), _) => Ok(Some(path.clone())),
        (None, Some(client)) => crate::wrap::config_path(client).map(Some).ok_or(Error::NoHome),
        (None, None) => Ok(None),
    }
}
