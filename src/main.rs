//! The `toolgate` binary: parse arguments, set up logging on stderr, run, exit with a code.

use clap::Parser;
use toolgate::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse();
    let default = match (&cli.command, cli.quiet, cli.verbose) {
        (_, true, _) => "error",
        (Command::Demo, _, 0) => "error",
        (Command::Approve(a), _, 0) if !a.json => "warn",
        (_, _, 0) => "info",
        (_, _, 1) => "debug",
        _ => "trace",
    };
    // Stdout carries JSON-RPC only; every diagnostic goes to stderr.
    // Log lines carry names and arguments from the server and the model: shown escaped.
    let colours = cli.color.on_stderr();
    tracing_subscriber::fmt()
        .with_writer(move || toolgate::visible::LogWriter::new(std::io::stderr(), colours))
        .with_env_filter(EnvFilter::try_from_env("TOOLGATE_LOG").unwrap_or_else(|_| EnvFilter::new(default)))
        .with_target(false)
        .without_time()
        .with_ansi(colours)
        .init();
    std::process::exit(toolgate::cli::execute(cli).code());
}
