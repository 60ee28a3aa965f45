//! `toolgate man`: the man page, in roff.

use clap::CommandFactory;

use super::{Cli, Error, ExitCode};

pub fn run() -> Result<ExitCode, Error> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()).map_err(Error::Man)?;
    Ok(ExitCode::OK)
}
