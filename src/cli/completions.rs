//! `toolgate completions`: a shell completion script.

use clap::CommandFactory;

use super::{Cli, Error, ExitCode};

pub fn run(shell: clap_complete::Shell) -> Result<ExitCode, Error> {
    clap_complete::generate(shell, &mut Cli::command(), "toolgate", &mut std::io::stdout());
    Ok(ExitCode::OK)
}
