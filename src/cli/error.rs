//! Why a command failed, and the exit code each failure maps to.

use std::io;
use std::path::PathBuf;

use crate::exit::ExitCode;
use crate::policy::PolicyErrors;
use crate::proxy::ProxyError;

/// A command's failure: printed once by [`super::execute`], then the process exits with
/// [`Error::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),
    /// A policy did not load.
    #[error("the policy has errors{}:\n{errors}", if *.nothing_started { "; nothing was started" } else { "" })]
    Policy { errors: PolicyErrors, nothing_started: bool },
    /// The policy `init` writes does not load.
    #[error("the starter policy does not load (a bug in toolgate):\n{0}")]
    StarterPolicy(PolicyErrors),
    #[error("cannot {verb} {}: {source}", path.display())]
    File {
        verb: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Neither `XDG_STATE_HOME` nor `HOME` is set, so this has no place.
    #[error("no place for {0}: set XDG_STATE_HOME or HOME")]
    NoStateDir(&'static str),
    #[error("no audit log given, and no default location: set XDG_STATE_HOME or HOME")]
    NoAuditLog,
    /// As [`Error::NoAuditLog`], for a proxy about to start.
    #[error("no audit log location: set --audit, XDG_STATE_HOME or HOME")]
    NoAuditLocation,
    #[error("no place for the policy: set XDG_CONFIG_HOME or HOME (or use --print)")]
    NoConfigDir,
    #[error("cannot find the client's configuration: HOME is not set")]
    NoHome,
    #[error("{} exists; --force replaces it, --print shows the new one", .0.display())]
    PolicyExists(PathBuf),
    #[error("cannot use stdin/stdout: {0}")]
    Stdio(#[source] io::Error),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// A flag's value does not make sense.
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error(transparent)]
    Tools(#[from] ToolsError),
    #[error(transparent)]
    Approve(#[from] super::approve::Error),
    #[error(transparent)]
    Review(#[from] crate::review::command::Error),
    #[error(transparent)]
    Accept(#[from] crate::trust::AcceptError),
    #[error(transparent)]
    Wrap(#[from] crate::wrap::Error),
    #[error(transparent)]
    WriteRule(#[from] crate::summary::WriteError),
    #[error(transparent)]
    Replay(#[from] crate::replay::Error),
    /// `replay --serve` could not play the transcript.
    #[error("replay: {0}")]
    Serve(#[source] crate::replay::Error),
    #[error("cannot write the man page: {0}")]
    Man(#[source] io::Error),
    #[error(transparent)]
    Auth(#[from] crate::remote::auth::AuthError),
    #[error("--header Authorization is set: toolgate sends that header and does not sign in")]
    OwnAuthorization,
    #[error("the demo failed: {0}")]
    Demo(#[source] ProxyError),
    #[error("demo server: {0}")]
    DemoServer(#[source] io::Error),
}

impl Error {
    /// The status the process exits with after this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Policy { .. } => ExitCode::POLICY,
            Error::NoStateDir(_)
            | Error::NoAuditLog
            | Error::NoConfigDir
            | Error::NoHome
            | Error::Flag(_)
            | Error::Tools(_)
            | Error::OwnAuthorization
            | Error::Serve(_) => ExitCode::USAGE,
            Error::Proxy(ProxyError::Spawn(e)) => ExitCode::passed_on(e.exit_code()),
            Error::Approve(e) => e.exit_code(),
            Error::Runtime(_)
            | Error::StarterPolicy(_)
            | Error::File { .. }
            | Error::NoAuditLocation
            | Error::PolicyExists(_)
            | Error::Stdio(_)
            | Error::Proxy(_)
            | Error::Review(_)
            | Error::Accept(_)
            | Error::Wrap(_)
            | Error::WriteRule(_)
            | Error::Replay(_)
            | Error::Man(_)
            | Error::Demo(_)
            | Error::Auth(_)
            | Error::DemoServer(_) => ExitCode::FAILURE,
        }
    }
}

/// A flag whose value is not what it must be.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// `run --url` or a `--header` is not usable.
    #[error(transparent)]
    Remote(#[from] crate::remote::TargetError),
    #[error("--header-env must be NAME=ENVVAR, like Authorization=MY_TOKEN, not {0:?}")]
    HeaderEnvForm(String),
    #[error("--header-env {header}: {var:?} is not an environment variable name")]
    HeaderEnvName { header: String, var: String },
    #[error("--header-env {header}: the environment variable {var} is not set (or not UTF-8)")]
    HeaderEnvUnset { header: String, var: String },
    #[error("--args must be a JSON object, like '{{\"path\": \"/tmp/x\"}}'")]
    ArgsNotAnObject,
    #[error("--args is not JSON: {0}")]
    ArgsNotJson(#[source] serde_json::Error),
    #[error("--confidence {0} is not between 0 and 1")]
    Confidence(f64),
    #[error("--{flag} {pattern:?}: {source}")]
    Glob {
        flag: &'static str,
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("--{flag} {text:?}: not a time like 2026-11-24T10:00:00Z, a date like 2026-11-24, or a duration like 2h")]
    Time { flag: &'static str, text: String },
    #[error("--write-rule takes a policy file and a proposal's number, like --write-rule policy.toml 1")]
    WriteRule,
}

/// A file of a server's tools (`--tools`) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not JSON: {source}", path.display())]
    NotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: expected a tools/list response, its result, or an array of tools", .0.display())]
    NotTools(PathBuf),
}
