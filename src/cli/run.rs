//! `toolgate run` and `toolgate record`: a server behind the gate, speaking MCP on
//! stdin/stdout.

use std::path::PathBuf;

use super::error::FlagError;
use super::{Error, ExitCode, RecordArgs, RunArgs, runtime};
use crate::policy::{EMBEDDED_ORIGIN, Source};
use crate::proxy::{self, Options, Upstream};
use crate::remote::Target;
use crate::{paths, wire};

pub fn run(args: RunArgs) -> Result<ExitCode, Error> {
    if args.url.is_some() {
        // HTTPS uses rustls with the ring provider (see Cargo.toml); installed once, before
        // any TLS connection is made. (A second install fails harmlessly.)
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    runtime()?.block_on(serve(args))
}

/// `run`, with a transcript of the session written to `--out`.
pub fn record(mut args: RecordArgs) -> Result<ExitCode, Error> {
    args.run.record = Some(args.out);
    run(args.run)
}

async fn serve(args: RunArgs) -> Result<ExitCode, Error> {
    let source = Source::locate(args.policy.as_deref());
    let policy = source.load().map_err(|errors| Error::Policy { errors, nothing_started: true })?;
    if policy.origin == EMBEDDED_ORIGIN {
        tracing::info!("no policy file given or found; using the embedded default policy");
    } else {
        tracing::info!("policy {} ({})", policy.origin, policy.version);
    }
    let audit_path = args.audit.or_else(paths::default_audit_log).ok_or(Error::NoAuditLocation)?;
    let server = match &args.url {
        Some(url) => {
            Upstream::Remote(Target::parse(url, &args.headers, |var| std::env::var(var).ok()).map_err(FlagError::from)?)
        }
        None => Upstream::Command(args.command),
    };
    let server_name = args.name.unwrap_or_else(|| match &server {
        // A remote server is named by its host by default.
        Upstream::Remote(target) => target.url.host_str().unwrap_or("server").to_owned(),
        Upstream::Command(command) => {
            let program = PathBuf::from(&command[0]);
            program.file_name().map_or_else(|| "server".into(), |n| n.to_string_lossy().into_owned())
        }
    });
    let options = Options {
        server,
        server_name,
        policy,
        policy_path: source.path().map(ToOwned::to_owned),
        audit_path,
        trust_path: crate::trust::default_path(),
        queue_path: crate::review::default_path(),
        record: args.record,
        max_message_bytes: args.max_message_bytes,
        max_depth: wire::DEFAULT_MAX_DEPTH,
    };
    let (input, output) = match (proxy::stdio::stdin(), proxy::stdio::Destination::stdout()) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => return Err(Error::Stdio(e)),
    };
    // The proxy runs as a task rather than as the `block_on` future: a task woken by another
    // task runs in the same scheduler pass, while waking the `block_on` future makes Tokio's
    // current-thread scheduler poll epoll once more first (a system call per message).
    match tokio::spawn(proxy::run(options, input, output)).await {
        Ok(result) => Ok(ExitCode::passed_on(result?)),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
