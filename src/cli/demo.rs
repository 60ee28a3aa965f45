//! `toolgate demo`: the gate at work on a built-in server; and that server, hidden, for the
//! demo to start.

use super::{Error, ExitCode, runtime};

pub fn run() -> Result<ExitCode, Error> {
    let dir = std::env::temp_dir().join(format!("toolgate-demo-{}", std::process::id()));
    let mut stdout = std::io::stdout();
    runtime()?.block_on(crate::demo::run(&mut stdout, dir.join("audit.jsonl"))).map_err(Error::Demo)?;
    Ok(ExitCode::OK)
}

/// The demo's MCP server on stdin/stdout.
pub fn server() -> Result<ExitCode, Error> {
    crate::demo::server::serve(std::io::stdin().lock(), std::io::stdout().lock()).map_err(Error::DemoServer)?;
    Ok(ExitCode::OK)
}
