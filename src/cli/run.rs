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
        Some(url) => Upstream::Remote(target(url, &args.headers, &args.header_envs, |var| std::env::var(var).ok())?),
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

/// The remote server of `--url`, its `--header NAME=VALUE`s and its `--header-env NAME=ENVVAR`s.
///
/// A `--header-env` is handed to [`Target::parse`] as `NAME=${ENVVAR}`: that expansion takes the
/// variable's value whole and never looks into it again, so what the client put in the variable
/// (having done its own `${...}` interpolation) is what is sent.
fn target(
    url: &str,
    headers: &[String],
    header_envs: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Target, FlagError> {
    let mut all = headers.to_vec();
    for given in header_envs {
        // A name and a variable's name, no secret: safe to repeat in errors.
        let (header, var) = given.split_once('=').ok_or_else(|| FlagError::HeaderEnvForm(given.clone()))?;
        let (header, var) = (header.trim(), var.trim());
        let well_formed = var.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if header.is_empty() || var.is_empty() {
            return Err(FlagError::HeaderEnvForm(given.clone()));
        }
        if !well_formed {
            return Err(FlagError::HeaderEnvName { header: header.to_owned(), var: var.to_owned() });
        }
        if env(var).is_none() {
            return Err(FlagError::HeaderEnvUnset { header: header.to_owned(), var: var.to_owned() });
        }
        all.push(format!("{header}=${{{var}}}"));
    }
    Ok(Target::parse(url, &all, env)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "TOOLGATE_HEADER_AUTHORIZATION" => Some("Bearer s3cret ${NOT_A_VAR}".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn parse(header_envs: &[&str]) -> Result<Target, FlagError> {
        let given: Vec<String> = header_envs.iter().map(|s| s.to_string()).collect();
        target("https://mcp.example.com/mcp", &["X-Plain=1".into()], &given, env)
    }

    #[test]
    fn header_env_takes_the_variable_whole_and_never_shows_it() {
        let t = parse(&["Authorization=TOOLGATE_HEADER_AUTHORIZATION", "X-Empty=EMPTY"]).unwrap();
        assert_eq!(t.headers["authorization"], "Bearer s3cret ${NOT_A_VAR}", "the value is not expanded again");
        assert_eq!(t.headers["x-empty"], "");
        assert_eq!(t.headers["x-plain"], "1", "--header still works beside it");
        assert!(!format!("{t:?}").contains("s3cret"), "{t:?}");
    }

    #[test]
    fn bad_header_env_flags_are_named() {
        let error = |given: &str| parse(&[given]).unwrap_err().to_string();
        assert_eq!(
            error("Authorization=MISSING"),
            "--header-env Authorization: the environment variable MISSING is not set (or not UTF-8)"
        );
        assert_eq!(
            error("Authorization"),
            "--header-env must be NAME=ENVVAR, like Authorization=MY_TOKEN, not \"Authorization\""
        );
        assert!(error("=EMPTY").starts_with("--header-env must be NAME=ENVVAR"));
        assert_eq!(error("X=${EMPTY}"), "--header-env X: \"${EMPTY}\" is not an environment variable name");
        assert!(error("Accept=EMPTY").contains("toolgate sets this header itself"));
        assert!(error("bad name=EMPTY").contains("not a valid header name"));
    }
}
