//! The command line: each subcommand in its own file, returning an exit code or an [`Error`]
//! that knows its own; [`execute`] is the one place an error is printed.

mod approve;
mod args;
mod audit;
mod check;
mod completions;
mod demo;
mod error;
mod explain;
mod init;
mod login;
mod man;
mod replay;
mod review;
mod run;
mod summary;
mod test;
mod trust;
mod wrap;

pub use args::*;
pub use error::Error;

pub use crate::exit::ExitCode;

/// Runs a parsed command line and returns the status the process exits with.
pub fn execute(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Record(args) => run::record(args),
        Command::Check(args) => check::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Approve(args) => runtime().and_then(|rt| Ok(rt.block_on(approve::run(args.json))?)),
        Command::Audit(AuditCommand::Verify { file }) => audit::verify(file),
        Command::Audit(AuditCommand::Show(args)) => audit::show(args),
        Command::Trust(args) => trust::run(args),
        Command::Init(args) => init::run(&args),
        Command::Wrap(args) => wrap::wrap(&args),
        Command::Unwrap(args) => wrap::unwrap(&args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
        Command::Completions { shell } => completions::run(shell),
        Command::Man => man::run(),
        Command::Test(args) => test::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Review(args) => review::run(args),
        Command::Summary(args) => summary::run(args),
        Command::Demo => demo::run(),
        Command::DemoServer => demo::server(),
    };
    result.unwrap_or_else(|e| {
        tracing::error!("{e}");
        e.exit_code()
    })
}

/// The async runtime a command runs on.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    // One thread: every event is handled in order on it, with no cross-thread wake-ups.
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Error::Runtime)
}
