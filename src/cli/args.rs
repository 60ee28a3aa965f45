//! The command line as clap parses it: raw flags, turned into validated options by each
//! command before anything runs.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// toolgate: a human-in-the-loop gate for AI tool calls.
#[derive(Debug, Parser)]
#[command(name = "toolgate", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Color on stderr: auto (when it is a terminal and NO_COLOR is not set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to color stderr: `NO_COLOR` (any non-empty value) turns `auto` off.
    pub fn on_stderr(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::IsTerminal::is_terminal(&std::io::stderr())
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an MCP server behind the gate, speaking MCP on stdin/stdout.
    #[command(
        after_help = "Example:\n  toolgate run --name fs --policy ~/policy.toml -- npx -y @modelcontextprotocol/server-filesystem ~/project\n\nSee docs/reference/cli.md#toolgate-run and docs/reference/policy.md"
    )]
    Run(RunArgs),
    /// Check policy files: every error with its file, line and column, rules' examples, and
    /// warnings about rules that can never win or globs that match no tool.
    #[command(
        after_help = "Examples:\n  toolgate check policies/default.toml ~/.config/toolgate/policy.toml\n  toolgate check --tools tools.json --server fs policy.toml\n\nSee docs/reference/cli.md#toolgate-check and docs/reference/policy.md"
    )]
    Check(CheckArgs),
    /// Run a server behind the gate like `run`, and write a transcript of the session: every
    /// message both ways with its time, and every decision.
    #[command(
        after_help = "Example:\n  toolgate record --out session.jsonl --name fs -- npx -y @modelcontextprotocol/server-filesystem ~/project\n\nSee docs/reference/cli.md#toolgate-record and docs/reference/policy.md"
    )]
    Record(RecordArgs),
    /// The decisions a policy takes on recorded traffic (a transcript or an audit log), and with
    /// --against, the calls another policy decides differently.
    #[command(
        after_help = "Examples:\n  toolgate replay session.jsonl --policy policy.toml\n  toolgate replay ~/.local/state/toolgate/audit.jsonl --policy old.toml --against new.toml\n\nSee docs/reference/cli.md#toolgate-replay and docs/reference/policy.md"
    )]
    Replay(ReplayArgs),
    /// Run policy test suites: cases of calls and the gate each must get.
    #[command(
        after_help = "Examples:\n  toolgate test policies/*.tests.toml\n  toolgate test --junit report.xml tests/policy/*.toml\n\nSee docs/reference/cli.md#toolgate-test and docs/reference/policy.md"
    )]
    Test(TestArgs),
    /// Show how a policy decides one call: the gate, every rule that matched and why, and the
    /// rules that almost matched.
    #[command(
        after_help = "Example:\n  toolgate explain --policy policy.toml --tool write_file --args '{\"path\":\"/etc/hosts\"}' --server fs\n\nSee docs/reference/cli.md#toolgate-explain and docs/reference/policy.md"
    )]
    Explain(ExplainArgs),
    /// Answer the pending approvals of every running toolgate of this user, from any terminal.
    #[command(
        after_help = "Examples:\n  toolgate approve\n  toolgate approve --json   # events on stdout, answers on stdin, one JSON object per line\n\nSee docs/reference/cli.md#toolgate-approve"
    )]
    Approve(ApproveArgs),
    /// Check the audit log's hash chain, or show its history.
    #[command(subcommand, after_help = "See docs/reference/cli.md#toolgate-audit")]
    Audit(AuditCommand),
    /// Show each tool's trust record and whether it skips the question; accept a changed tool.
    #[command(
        after_help = "Examples:\n  toolgate trust\n  toolgate trust --json\n  toolgate trust accept mail send_email\n\nSee docs/reference/cli.md#toolgate-trust and docs/reference/policy.md"
    )]
    Trust(TrustArgs),
    /// Work through the review queue: calls that ran with a notice, and parked calls waiting
    /// for a yes. Without an action, lists the queue by risk and age.
    #[command(
        after_help = "Examples:\n  toolgate review\n  toolgate review --approve 4 --approve 7\n  toolgate review --reject 5 --reason 'wrong account'\n  toolgate review --flag 3 --write-rule ~/.config/toolgate/policy.toml\n  toolgate review --run 4 -- npx -y @modelcontextprotocol/server-filesystem ~/project\n\nSee docs/reference/cli.md#toolgate-review"
    )]
    Review(ReviewArgs),
    /// What the agents did over a period, what needs your attention, and what you could stop
    /// approving: read from the audit log, the review queue and the trust record.
    #[command(
        after_help = "Examples:\n  toolgate summary\n  toolgate summary --since 30d --server bank\n  toolgate summary --markdown > week.md\n  toolgate summary --write-rule ~/.config/toolgate/policy.toml 1\n\nSee docs/reference/cli.md#toolgate-summary"
    )]
    Summary(SummaryArgs),
    /// Write a starter policy to $XDG_CONFIG_HOME/toolgate/policy.toml, tuned to the servers in
    /// your MCP clients' configurations.
    #[command(
        after_help = "Examples:\n  toolgate init --list-tools\n  toolgate init --print > my-policy.toml\n\nSee docs/reference/cli.md#toolgate-init and docs/reference/policy.md"
    )]
    Init(InitArgs),
    /// Put toolgate in front of every stdio and remote (HTTP) MCP server in a client's
    /// configuration (a backup is kept; wrapping twice changes nothing).
    #[command(
        after_help = "Examples:\n  toolgate wrap --client claude-desktop --dry-run\n  toolgate wrap --client cursor --policy ~/.config/toolgate/policy.toml\n  toolgate wrap --config ./.mcp.json\n\nSee docs/reference/cli.md#toolgate-wrap"
    )]
    Wrap(WrapArgs),
    /// Take toolgate away again: the backup when the file is as `wrap` left it.
    #[command(
        after_help = "Examples:\n  toolgate unwrap --client claude-desktop\n  toolgate unwrap --config ./.mcp.json\n\nSee docs/reference/cli.md#toolgate-unwrap"
    )]
    Unwrap(WrapArgs),
    /// Sign in to a remote MCP server that needs OAuth, and keep its tokens for `run --url`.
    #[command(
        after_help = "Example:\n  toolgate login https://mcp.example.com/mcp\n\nSee docs/reference/cli.md#toolgate-login and docs/guide/remote-servers.md"
    )]
    Login(LoginArgs),
    /// Forget the tokens kept for a remote MCP server.
    #[command(
        after_help = "Example:\n  toolgate logout https://mcp.example.com/mcp\n\nSee docs/reference/cli.md#toolgate-logout"
    )]
    Logout(LoginArgs),
    /// Print a shell completion script: toolgate completions bash > ~/.local/share/bash-completion/completions/toolgate
    #[command(
        after_help = "Examples:\n  toolgate completions bash > ~/.local/share/bash-completion/completions/toolgate\n  toolgate completions zsh > ~/.zfunc/_toolgate\n  toolgate completions fish > ~/.config/fish/completions/toolgate.fish\n\nSee docs/reference/cli.md#toolgate-completions"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): toolgate man > ~/.local/share/man/man1/toolgate.1
    #[command(
        after_help = "Example:\n  toolgate man > ~/.local/share/man/man1/toolgate.1 && man toolgate\n\nSee docs/reference/cli.md#toolgate-man"
    )]
    Man,
    /// See the gate at work: a built-in server behind toolgate, under the embedded default policy.
    #[command(after_help = "Example:\n  toolgate demo\n\nSee docs/reference/cli.md#toolgate-demo")]
    Demo,
    /// The demo's built-in MCP server on stdin/stdout.
    #[command(hide = true)]
    DemoServer,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that no line was edited, deleted, reordered or cut off; report the first problem.
    #[command(
        after_help = "Examples:\n  toolgate audit verify\n  toolgate audit verify ~/.local/state/toolgate/audit.jsonl\n\nSee docs/reference/cli.md#toolgate-audit-verify"
    )]
    Verify {
        /// The log (default: $XDG_STATE_HOME/toolgate/audit.jsonl).
        file: Option<PathBuf>,
    },
    /// Print the history of decisions, each with its outcome.
    #[command(
        after_help = "Examples:\n  toolgate audit show --decided-by human --since 2h\n  toolgate audit show --tool 'write_*' --decision refused --json\n\nSee docs/reference/cli.md#toolgate-audit-show"
    )]
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The log (default: $XDG_STATE_HOME/toolgate/audit.jsonl).
    pub file: Option<PathBuf>,
    /// Only tools matching this glob.
    #[arg(long, value_name = "GLOB")]
    pub tool: Option<String>,
    /// Only servers matching this glob.
    #[arg(long, value_name = "GLOB")]
    pub server: Option<String>,
    /// Only this gate (allow, notify, hold, ask, queue, deny) or verdict (forwarded, refused, dropped).
    #[arg(long, value_name = "DECISION")]
    pub decision: Option<String>,
    /// Only calls settled by: policy, human, timeout, timer, client, toolgate.
    #[arg(long, value_name = "WHO")]
    pub decided_by: Option<String>,
    /// From this time (RFC 3339, like 2026-11-24T10:00:00Z) or this long ago (like 2h).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Up to this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// The matching records as JSON lines, each with its outcome.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Start each server found and ask for its tools, to write rules for them by name and by
    /// the server's annotations (it runs the servers' commands).
    #[arg(long)]
    pub list_tools: bool,
    /// Print the policy instead of writing it.
    #[arg(long)]
    pub print: bool,
    /// Replace a policy file that already exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct WrapArgs {
    /// The client whose configuration to change.
    #[arg(long, value_enum, required_unless_present = "config", conflicts_with = "config")]
    pub client: Option<crate::wrap::Client>,
    /// Any other configuration file with `mcpServers` (or `servers`).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The policy the wrapped servers run under (default: as `run` finds it).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Show what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The transcript to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A transcript (`toolgate record`) or an audit log.
    pub file: PathBuf,
    /// The policy to decide with.
    #[arg(long, value_name = "FILE", required_unless_present = "serve")]
    pub policy: Option<PathBuf>,
    /// Instead: be the recorded server, on stdin/stdout, for running the session again through
    /// toolgate without the original server.
    #[arg(long, conflicts_with_all = ["policy", "against"])]
    pub serve: bool,
    /// Compare with this policy: list the calls whose gate changes; exit 1 if any does.
    #[arg(long, value_name = "FILE")]
    pub against: Option<PathBuf>,
    /// The server's name for a transcript that does not say it.
    #[arg(long, value_name = "NAME", default_value = "server")]
    pub server: String,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Suite files (TOML; see docs/reference/policy.md, "Testing a policy").
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// The start of the period: a duration before now (`7d`, `24h`) or a date or time (RFC 3339,
    /// `2026-11-01`).
    #[arg(long, value_name = "WHEN", default_value = "7d")]
    pub since: String,
    /// The end of the period (default: now).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only servers matching this glob.
    #[arg(long, value_name = "GLOB")]
    pub server: Option<String>,
    /// Print the stable JSON form (see docs/reference/summary-json.md).
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print Markdown, for a pull request or a team chat.
    #[arg(long)]
    pub markdown: bool,
    /// Audit log (default: $XDG_STATE_HOME/toolgate/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// The policy in force, for its rules and settings (default: as `run` finds it).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Append proposal N to the policy POLICY, once the policy with it passes `check`.
    #[arg(long, num_args = 2, value_names = ["POLICY", "N"], conflicts_with_all = ["json", "markdown"])]
    pub write_rule: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Approve a parked call; the proxy that parked it runs it and its result is recorded.
    #[arg(long, value_name = "N")]
    pub approve: Vec<u64>,
    /// Reject a parked call: it never runs.
    #[arg(long, value_name = "N")]
    pub reject: Vec<u64>,
    /// Flag a call that ran as "should have asked", and see the rule that would have.
    #[arg(long, value_name = "N")]
    pub flag: Vec<u64>,
    /// Mark a call that ran as looked at.
    #[arg(long, value_name = "N")]
    pub reviewed: Vec<u64>,
    /// Why (kept with the items decided now).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Add the rules proposed for flagged calls to this policy file.
    #[arg(long, value_name = "POLICY")]
    pub write_rule: Option<PathBuf>,
    /// Run approved item N whose proxy is gone, by starting the server command given after --.
    #[arg(long, value_name = "N", requires = "command")]
    pub run: Option<u64>,
    /// Parked calls nobody approved within this long expire and never run.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = crate::policy::parse_duration)]
    pub expiry: std::time::Duration,
    /// The queue as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// The server command for --run.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(subcommand)]
    pub action: Option<TrustAction>,
    /// The policy whose `[trust]` bar applies (default: as for `run`).
    #[arg(long, value_name = "FILE", global = true)]
    pub policy: Option<PathBuf>,
    /// One JSON object per tool instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TrustAction {
    /// Accept a tool's changed definition: its calls are decided as before, and it starts
    /// earning trust again from nothing.
    Accept {
        /// The server's name (`run --name`).
        server: String,
        /// The tool's name.
        tool: String,
    },
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Events as JSON lines on stdout and answers as JSON lines on stdin (see
    /// docs/reference/approver-protocol.md), instead of prompts on the terminal.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// A server's tools, to find globs that match none of them: a saved `tools/list` response
    /// or result, or a JSON array of tools.
    #[arg(long, value_name = "FILE")]
    pub tools: Option<PathBuf>,
    /// The server those tools belong to (default: every rule is checked against them).
    #[arg(long, value_name = "SERVER", requires = "tools")]
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Policy file (default: as for `run`).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The tool's name.
    #[arg(long, value_name = "NAME")]
    pub tool: String,
    /// The call's arguments, as a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,
    /// The server's name, as `run --name` gives it.
    #[arg(long, value_name = "NAME", default_value = "server")]
    pub server: String,
    /// The server's identity (`sha256:…`, as `toolgate trust` shows it), for rules bound to one
    /// program; without it, such rules do not match.
    #[arg(long, value_name = "ID")]
    pub identity: Option<String>,
    /// The model's reported confidence, 0 to 1.
    #[arg(long, value_name = "N")]
    pub confidence: Option<f64>,
    /// The server's tools (a saved `tools/list` response or result, or an array of tools): the
    /// arguments are checked against the tool's input schema, as `run` checks them.
    #[arg(long, value_name = "FILE")]
    pub tools: Option<PathBuf>,
    /// Print the stable JSON form (see docs/reference/explain-json.md) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Policy file (default: $TOOLGATE_POLICY, then $XDG_CONFIG_HOME/toolgate/policy.toml, then
    /// the embedded default).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The server's name, as rules' `servers` and the audit log see it (default: the command's
    /// file name).
    #[arg(long, value_name = "SERVER")]
    pub name: Option<String>,
    /// Audit log (default: $XDG_STATE_HOME/toolgate/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Also write a transcript of the session to this file (see `toolgate record`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Largest message accepted in either direction; larger ones are refused whole, never cut.
    /// Accepts a plain number of bytes or a KiB/MiB/GiB suffix.
    #[arg(long, value_name = "SIZE", default_value = "128MiB", value_parser = parse_size)]
    pub max_message_bytes: usize,
    /// A remote MCP server's URL, spoken to over Streamable HTTP (or the older HTTP+SSE, when
    /// the server offers only that), instead of a command (see docs/guide/remote-servers.md).
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    pub url: Option<String>,
    /// A header sent with every request to --url, as NAME=VALUE; `${VAR}` in the value is
    /// taken from the environment at start. Values are never shown or logged. Repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE", requires = "url")]
    pub headers: Vec<String>,
    /// A header sent with every request to --url, as NAME=ENVVAR: its value is the environment
    /// variable ENVVAR's, taken whole at start (nothing in it is expanded). Keeps a secret out of
    /// the command line, where other users can read it; `wrap` writes these. Repeatable.
    #[arg(long = "header-env", value_name = "NAME=ENVVAR", requires = "url")]
    pub header_envs: Vec<String>,
    /// The server command and its arguments.
    #[arg(last = true, required_unless_present = "url", value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The remote MCP server's URL, as given to `run --url`.
    #[arg(value_name = "URL")]
    pub url: String,
    /// A header sent with the requests to the server, as NAME=VALUE (as with `run --url`);
    /// values are never shown or logged. Repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
}

/// Parses `1048576`, `512KiB`, `16MiB` or `1GiB`.
///
/// A clap value parser: clap shows any error that displays, so a `String` is all it needs.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    let n: usize = number.parse().map_err(|_| format!("{text:?} is not a size like 16MiB"))?;
    n.checked_mul(scale).filter(|&n| n > 0).ok_or_else(|| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("12MB").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
