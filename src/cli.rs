//! The command line: raw flags, turned into validated options before anything runs.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::policy::{Call, EMBEDDED_ORIGIN, Policy, Source, lint};
use crate::proxy::{self, Options, ProxyError};
use crate::{demo, paths, wire};

/// Exit codes of toolgate's own making (`run` otherwise exits with the server's status).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// A check failed or a runtime error stopped toolgate.
    pub const FAILURE: i32 = 1;
    /// The command line was not understood.
    pub const USAGE: i32 = 2;
    /// The policy could not be loaded, so nothing was started.
    pub const POLICY: i32 = 3;
    /// The server command exists but could not be run.
    pub const CANNOT_RUN: i32 = 126;
    /// The server command was not found.
    pub const NOT_FOUND: i32 = 127;
    /// Stopped by SIGINT.
    pub const INTERRUPTED: i32 = 130;
    /// Stopped by SIGTERM.
    pub const TERMINATED: i32 = 143;
}

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
        after_help = "Example:\n  toolgate run --name fs --policy ~/policy.toml -- npx -y @modelcontextprotocol/server-filesystem ~/project"
    )]
    Run(RunArgs),
    /// Check policy files: every error with its file, line and column, rules' examples, and
    /// warnings about rules that can never win or globs that match no tool.
    #[command(
        after_help = "Examples:\n  toolgate check policies/default.toml ~/.config/toolgate/policy.toml\n  toolgate check --tools tools.json --server fs policy.toml"
    )]
    Check(CheckArgs),
    /// Run a server behind the gate like `run`, and write a transcript of the session: every
    /// message both ways with its time, and every decision.
    #[command(
        after_help = "Example:\n  toolgate record --out session.jsonl --name fs -- npx -y @modelcontextprotocol/server-filesystem ~/project"
    )]
    Record(RecordArgs),
    /// The decisions a policy takes on recorded traffic (a transcript or an audit log), and with
    /// --against, the calls another policy decides differently.
    #[command(
        after_help = "Examples:\n  toolgate replay session.jsonl --policy policy.toml\n  toolgate replay ~/.local/state/toolgate/audit.jsonl --policy old.toml --against new.toml"
    )]
    Replay(ReplayArgs),
    /// Run policy test suites: cases of calls and the gate each must get.
    #[command(
        after_help = "Examples:\n  toolgate test policies/*.tests.toml\n  toolgate test --junit report.xml tests/policy/*.toml"
    )]
    Test(TestArgs),
    /// Show how a policy decides one call: the gate, every rule that matched and why, and the
    /// rules that almost matched.
    #[command(
        after_help = "Example:\n  toolgate explain --policy policy.toml --tool write_file --args '{\"path\":\"/etc/hosts\"}' --server fs"
    )]
    Explain(ExplainArgs),
    /// Answer the pending approvals of every running toolgate of this user, from any terminal.
    #[command(
        after_help = "Examples:\n  toolgate approve\n  toolgate approve --json   # events on stdout, answers on stdin, one JSON object per line"
    )]
    Approve(ApproveArgs),
    /// Check the audit log's hash chain, or show its history.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show each tool's trust record and whether it skips the question; accept a changed tool.
    #[command(
        after_help = "Examples:\n  toolgate trust\n  toolgate trust --json\n  toolgate trust accept mail send_email"
    )]
    Trust(TrustArgs),
    /// Work through the review queue: calls that ran with a notice, and parked calls waiting
    /// for a yes. Without an action, lists the queue by risk and age.
    #[command(
        after_help = "Examples:\n  toolgate review\n  toolgate review --approve 4 --approve 7\n  toolgate review --reject 5 --reason 'wrong account'\n  toolgate review --flag 3 --write-rule ~/.config/toolgate/policy.toml\n  toolgate review --run 4 -- npx -y @modelcontextprotocol/server-filesystem ~/project"
    )]
    Review(ReviewArgs),
    /// Write a starter policy to $XDG_CONFIG_HOME/toolgate/policy.toml, tuned to the servers in
    /// your MCP clients' configurations.
    #[command(after_help = "Examples:\n  toolgate init --list-tools\n  toolgate init --print > my-policy.toml")]
    Init(InitArgs),
    /// Put toolgate in front of every stdio MCP server in a client's configuration (a backup is
    /// kept; wrapping twice changes nothing).
    #[command(
        after_help = "Examples:\n  toolgate wrap --client claude-desktop --dry-run\n  toolgate wrap --client cursor --policy ~/.config/toolgate/policy.toml\n  toolgate wrap --config ./.mcp.json"
    )]
    Wrap(WrapArgs),
    /// Take toolgate away again: the backup when the file is as `wrap` left it.
    #[command(
        after_help = "Examples:\n  toolgate unwrap --client claude-desktop\n  toolgate unwrap --config ./.mcp.json"
    )]
    Unwrap(WrapArgs),
    /// Print a shell completion script: toolgate completions bash > ~/.local/share/bash-completion/completions/toolgate
    #[command(
        after_help = "Examples:\n  toolgate completions bash > ~/.local/share/bash-completion/completions/toolgate\n  toolgate completions zsh > ~/.zfunc/_toolgate\n  toolgate completions fish > ~/.config/fish/completions/toolgate.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): toolgate man > ~/.local/share/man/man1/toolgate.1
    #[command(after_help = "Example:\n  toolgate man > ~/.local/share/man/man1/toolgate.1 && man toolgate")]
    Man,
    /// See the gate at work: a built-in server behind toolgate, under the embedded default policy.
    #[command(after_help = "Example:\n  toolgate demo")]
    Demo,
    /// The demo's built-in MCP server on stdin/stdout.
    #[command(hide = true)]
    DemoServer,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that no line was edited, deleted, reordered or cut off; report the first problem.
    #[command(
        after_help = "Examples:\n  toolgate audit verify\n  toolgate audit verify ~/.local/state/toolgate/audit.jsonl"
    )]
    Verify {
        /// The log (default: $XDG_STATE_HOME/toolgate/audit.jsonl).
        file: Option<PathBuf>,
    },
    /// Print the history of decisions, each with its outcome.
    #[command(
        after_help = "Examples:\n  toolgate audit show --decided-by human --since 2h\n  toolgate audit show --tool 'write_*' --decision refused --json"
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
    /// The server command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Parses `1048576`, `512KiB`, `16MiB` or `1GiB`.
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

/// Runs a parsed command line and returns the process exit code.
pub fn execute(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(args) => runtime().map_or(exit::FAILURE, |rt| rt.block_on(run(args))),
        Command::Check(args) => check(&args),
        Command::Explain(args) => explain(&args),
        Command::Approve(args) => runtime().map_or(exit::FAILURE, |rt| rt.block_on(crate::approve::run(args.json))),
        Command::Audit(AuditCommand::Verify { file }) => audit_verify(file),
        Command::Audit(AuditCommand::Show(args)) => audit_show(args),
        Command::Trust(args) => trust(args),
        Command::Init(args) => init(&args),
        Command::Wrap(args) => wrap(&args, true),
        Command::Unwrap(args) => wrap(&args, false),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "toolgate", &mut std::io::stdout());
            exit::OK
        }
        Command::Man => {
            use clap::CommandFactory;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => exit::OK,
                Err(e) => {
                    tracing::error!("cannot write the man page: {e}");
                    exit::FAILURE
                }
            }
        }
        Command::Test(args) => test(&args),
        Command::Replay(args) => replay(&args),
        Command::Record(mut args) => {
            args.run.record = Some(args.out);
            runtime().map_or(exit::FAILURE, |rt| rt.block_on(run(args.run)))
        }
        Command::Review(args) => review(args),
        Command::Demo => runtime().map_or(exit::FAILURE, |rt| rt.block_on(demo())),
        Command::DemoServer => match demo::server::serve(std::io::stdin().lock(), std::io::stdout().lock()) {
            Ok(()) => exit::OK,
            Err(e) => {
                tracing::error!("demo server: {e}");
                exit::FAILURE
            }
        },
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    // One thread: every event is handled in order on it, with no cross-thread wake-ups.
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            None
        }
    }
}

async fn run(args: RunArgs) -> i32 {
    let source = Source::locate(args.policy.as_deref());
    let policy = match source.load() {
        Ok(policy) => policy,
        Err(errors) => {
            tracing::error!("the policy has errors; nothing was started:\n{errors}");
            return exit::POLICY;
        }
    };
    if policy.origin == EMBEDDED_ORIGIN {
        tracing::info!("no policy file given or found; using the embedded default policy");
    } else {
        tracing::info!("policy {} ({})", policy.origin, policy.version);
    }
    let Some(audit_path) = args.audit.or_else(paths::default_audit_log) else {
        tracing::error!("no audit log location: set --audit, XDG_STATE_HOME or HOME");
        return exit::FAILURE;
    };
    let server_name = args.name.unwrap_or_else(|| {
        let program = PathBuf::from(&args.command[0]);
        program.file_name().map_or_else(|| "server".into(), |n| n.to_string_lossy().into_owned())
    });
    let options = Options {
        command: args.command,
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
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot use stdin/stdout: {e}");
            return exit::FAILURE;
        }
    };
    // The proxy runs as a task rather than as the `block_on` future: a task woken by another
    // task runs in the same scheduler pass, while waking the `block_on` future makes Tokio's
    // current-thread scheduler poll epoll once more first (a system call per message).
    let proxy = match tokio::spawn(proxy::run(options, input, output)).await {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    match proxy {
        Ok(code) => code,
        Err(ProxyError::Spawn(e)) => {
            tracing::error!("{e}");
            e.exit_code()
        }
        Err(e) => {
            tracing::error!("{e}");
            exit::FAILURE
        }
    }
}

fn check(args: &CheckArgs) -> i32 {
    let listed = match args.tools.as_deref().map(read_tool_names).transpose() {
        Ok(listed) => listed,
        Err(e) => {
            tracing::error!("{e}");
            return exit::USAGE;
        }
    };
    let mut failed = false;
    let mut stdout = std::io::stdout().lock();
    for file in &args.files {
        let policy = match Policy::load(file) {
            Ok(policy) => policy,
            Err(errors) => {
                failed = true;
                let _ = writeln!(stdout, "{errors}");
                continue;
            }
        };
        let mut warnings = lint::shadowed(&policy);
        if let Some(listed) = &listed {
            let server = args.server.as_deref().unwrap_or("");
            warnings.extend(lint::unmatched_tools(&policy, server, listed, args.server.is_none()));
        }
        for w in &warnings {
            let _ = writeln!(stdout, "{}: warning: {}", file.display(), w.message);
        }
        let rules = policy.rules.rules();
        let examples: usize = rules.len();
        let _ = writeln!(
            stdout,
            "{}: ok: {} rules, examples checked, {} warning{} ({})",
            file.display(),
            examples,
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" },
            policy.version
        );
    }
    if failed { exit::FAILURE } else { exit::OK }
}

/// Tool names from a saved `tools/list` response, its result, or an array of tools.
fn read_tool_names(path: &std::path::Path) -> Result<Vec<String>, String> {
    let tools = read_tools(path)?;
    Ok(tools.iter().filter_map(|t| t.get("name").and_then(serde_json::Value::as_str).map(str::to_owned)).collect())
}

/// The tools of a saved `tools/list` response, its result, or an array of tools.
fn read_tools(path: &std::path::Path) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    value
        .pointer("/result/tools")
        .or_else(|| value.get("tools"))
        .or(Some(&value))
        .and_then(serde_json::Value::as_array)
        .cloned()
        .ok_or_else(|| format!("{}: expected a tools/list response, its result, or an array of tools", path.display()))
}

fn explain(args: &ExplainArgs) -> i32 {
    let arguments = match serde_json::from_str::<serde_json::Value>(&args.args) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) => {
            tracing::error!("--args must be a JSON object, like '{{\"path\": \"/tmp/x\"}}'");
            return exit::USAGE;
        }
        Err(e) => {
            tracing::error!("--args is not JSON: {e}");
            return exit::USAGE;
        }
    };
    if let Some(c) = args.confidence.filter(|c| !(0.0..=1.0).contains(c)) {
        tracing::error!("--confidence {c} is not between 0 and 1");
        return exit::USAGE;
    }
    let policy = match Source::locate(args.policy.as_deref()).load() {
        Ok(policy) => policy,
        Err(errors) => {
            tracing::error!("the policy has errors:\n{errors}");
            return exit::POLICY;
        }
    };
    // With the server's tools, the arguments are checked against the tool's schema as `run` does.
    let mut arguments = arguments;
    let verdict = match args.tools.as_deref().map(read_tools).transpose() {
        Ok(None) => None,
        Ok(Some(tools)) => {
            let mut listed = crate::conformity::Tools::default();
            listed.learn(&tools, true, true);
            Some(listed.check(&args.tool, &mut arguments))
        }
        Err(e) => {
            tracing::error!("{e}");
            return exit::USAGE;
        }
    };
    let schema = match &verdict {
        Some(crate::conformity::Verdict::Conforms(schema)) => Some(schema.clone()),
        _ => None,
    };
    // Paths are read as if the server ran here: this folder, this home, this disk.
    let place = crate::policy::reading::Local;
    let context =
        crate::policy::reading::Context { schema: schema.as_deref(), text: Some(args.args.as_str()), place: &place };
    let call = Call::new(&args.server, &args.tool, &arguments)
        .with_identity(args.identity.as_deref())
        .with_confidence(args.confidence)
        .with_context(context);
    let mut explanation = crate::explain::explain(&policy, &call);
    if let Some(verdict) = &verdict {
        let setting = policy.settings.arguments;
        crate::conformity::apply(setting, verdict, &args.tool, &mut explanation.decision);
        explanation.arguments = Some(crate::explain::ArgumentsCheck::of(setting, verdict));
    }
    let text = if args.json {
        crate::visible::to_json_pretty(&explanation).unwrap_or_default() + "\n"
    } else {
        crate::explain::render(&explanation)
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    exit::OK
}

fn init(args: &InitArgs) -> i32 {
    let mut servers = crate::init::find_servers();
    if args.list_tools {
        for server in &mut servers {
            server.tools = crate::init::list_tools(server, std::time::Duration::from_secs(20));
            match &server.tools {
                Some(tools) => tracing::info!("{}: {} tools", server.name, tools.len()),
                None => tracing::warn!("{}: its tools could not be listed; it gets general rules", server.name),
            }
        }
    }
    let text = crate::init::policy(&servers);
    if let Err(errors) = Policy::from_toml(&text, "the starter policy") {
        tracing::error!("the starter policy does not load (a bug in toolgate):\n{errors}");
        return exit::FAILURE;
    }
    let mut stdout = std::io::stdout().lock();
    if args.print {
        let _ = stdout.write_all(text.as_bytes());
        return exit::OK;
    }
    let Some(path) = crate::init::default_path() else {
        tracing::error!("no place for the policy: set XDG_CONFIG_HOME or HOME (or use --print)");
        return exit::USAGE;
    };
    if path.exists() && !args.force {
        tracing::error!("{} exists; --force replaces it, --print shows the new one", path.display());
        return exit::FAILURE;
    }
    let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, &text));
    match written {
        Ok(()) => {
            let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
            let _ = writeln!(
                stdout,
                "wrote {} ({} servers: {}); toolgate run uses it from now on",
                path.display(),
                servers.len(),
                if names.is_empty() { "none found".to_owned() } else { names.join(", ") }
            );
            exit::OK
        }
        Err(e) => {
            tracing::error!("cannot write {}: {e}", path.display());
            exit::FAILURE
        }
    }
}

fn wrap(args: &WrapArgs, wrapping: bool) -> i32 {
    let path = match (&args.config, args.client) {
        (Some(path), _) => path.clone(),
        (None, Some(client)) => match crate::wrap::config_path(client) {
            Some(path) => path,
            None => {
                tracing::error!("cannot find the client's configuration: HOME is not set");
                return exit::USAGE;
            }
        },
        (None, None) => return exit::USAGE,
    };
    let policy = args.policy.as_deref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()));
    let mut stdout = std::io::stdout().lock();
    let done = if wrapping {
        crate::wrap::wrap(&path, policy.as_deref(), args.dry_run, &mut stdout)
    } else {
        crate::wrap::unwrap(&path, args.dry_run, &mut stdout)
    };
    match done {
        Ok(_) => exit::OK,
        Err(e) => {
            tracing::error!("{e}");
            exit::FAILURE
        }
    }
}

fn replay(args: &ReplayArgs) -> i32 {
    if args.serve {
        let mut stdout = std::io::stdout().lock();
        return match crate::replay::serve(&args.file, std::io::stdin().lock(), &mut stdout) {
            Ok(()) => exit::OK,
            Err(e) => {
                tracing::error!("replay: {e}");
                2
            }
        };
    }
    let Some(policy) = &args.policy else { return exit::USAGE };
    let load = |path: &std::path::Path| {
        Policy::load(path).map_err(|errors| {
            tracing::error!("the policy has errors:\n{errors}");
            exit::POLICY
        })
    };
    let calls = match crate::replay::calls(&args.file, &args.server) {
        Ok(calls) => calls,
        Err(e) => {
            tracing::error!("{e}");
            return exit::FAILURE;
        }
    };
    let a = match load(policy) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut stdout = std::io::stdout().lock();
    match &args.against {
        None => {
            crate::replay::show(&calls, &a, &mut stdout);
            exit::OK
        }
        Some(against) => {
            let b = match load(against) {
                Ok(p) => p,
                Err(code) => return code,
            };
            if crate::replay::compare(&calls, &a, &b, &mut stdout) > 0 { exit::FAILURE } else { exit::OK }
        }
    }
}

fn test(args: &TestArgs) -> i32 {
    let mut stdout = std::io::stdout().lock();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for file in &args.files {
        match crate::suite::run(file) {
            Ok(r) => results.extend(r),
            Err(e) => {
                let _ = writeln!(stdout, "error: {e}");
                errors.push(e);
            }
        }
    }
    for r in results.iter().filter(|r| !r.passed()) {
        let _ = writeln!(
            stdout,
            "FAIL {}: {}: expected {}, got {} ({})",
            r.place,
            r.name,
            r.expected.as_str(),
            r.got.as_str(),
            r.why
        );
    }
    let failed = results.iter().filter(|r| !r.passed()).count();
    let _ = writeln!(
        stdout,
        "{} passed, {failed} failed{}",
        results.len() - failed,
        if errors.is_empty() { String::new() } else { format!(", {} suite(s) could not run", errors.len()) }
    );
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, crate::suite::junit(&results, &errors))
    {
        tracing::error!("cannot write {}: {e}", path.display());
        return exit::FAILURE;
    }
    if failed > 0 || !errors.is_empty() { exit::FAILURE } else { exit::OK }
}

fn review(args: ReviewArgs) -> i32 {
    let Some(path) = crate::review::default_path() else {
        tracing::error!("no place for the review queue: set XDG_STATE_HOME or HOME");
        return exit::USAGE;
    };
    let request = crate::review::command::Request {
        approve: args.approve,
        reject: args.reject,
        flag: args.flag,
        reviewed: args.reviewed,
        reason: args.reason,
        write_rule: args.write_rule,
        run: args.run.map(|n| (n, args.command)),
        expiry: args.expiry,
        json: args.json,
    };
    let file = crate::review::QueueFile::new(path);
    let nothing_asked = request.approve.is_empty()
        && request.reject.is_empty()
        && request.flag.is_empty()
        && request.reviewed.is_empty()
        && request.run.is_none();
    let on_terminal =
        std::io::IsTerminal::is_terminal(&std::io::stdin()) && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = if nothing_asked && !request.json && on_terminal {
        crate::review::command::interactive(&file, request.expiry, &mut std::io::stdout().lock())
    } else {
        crate::review::command::review(&file, &request, &mut std::io::stdout().lock())
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e}");
            exit::FAILURE
        }
    }
}

fn trust(args: TrustArgs) -> i32 {
    use crate::trust::TrustFile;
    let Some(path) = crate::trust::default_path() else {
        tracing::error!("no place for the trust record: set XDG_STATE_HOME or HOME");
        return exit::USAGE;
    };
    let file = TrustFile::new(path);
    let mut stdout = std::io::stdout().lock();
    if let Some(TrustAction::Accept { server, tool }) = &args.action {
        return match file.update(|store| store.accept(server, tool)) {
            Ok(Ok(())) => {
                let _ = writeln!(
                    stdout,
                    "accepted the new definition of {}/{}; it earns trust again from nothing",
                    crate::visible::visible(server),
                    crate::visible::visible(tool)
                );
                exit::OK
            }
            Ok(Err(why)) => {
                tracing::error!("{why}");
                exit::FAILURE
            }
            Err(e) => {
                tracing::error!("cannot update {}: {e}", file.path().display());
                exit::FAILURE
            }
        };
    }
    let policy = match Source::locate(args.policy.as_deref()).load() {
        Ok(policy) => policy,
        Err(errors) => {
            tracing::error!("the policy has errors:\n{errors}");
            return exit::POLICY;
        }
    };
    let store = match file.read() {
        Ok(store) => store,
        Err(e) => {
            tracing::error!("cannot read {}: {e}", file.path().display());
            return exit::FAILURE;
        }
    };
    let bar = &policy.settings.trust;
    let now = crate::trust::now_ms();
    if store.tools.is_empty() && !args.json {
        let _ = writeln!(stdout, "no tools recorded yet in {}", file.path().display());
    }
    if !args.json {
        for (server, identity) in &store.servers {
            let _ = writeln!(
                stdout,
                "{}: trust bound to {} ({})",
                crate::visible::visible(server),
                identity.id,
                crate::visible::visible(&identity.command_line())
            );
        }
    }
    for (key, record) in &store.tools {
        let line = if args.json {
            let mut json = crate::trust::describe_json(key, record, bar, now);
            let bound = store.servers.iter().find(|(server, _)| key.starts_with(&crate::trust::key(server, "")));
            json["identity"] = bound.map_or(serde_json::Value::Null, |(_, id)| serde_json::Value::from(id.id.clone()));
            crate::visible::to_json(&json).unwrap_or_default()
        } else {
            crate::trust::describe(key, record, bar, now)
        };
        let _ = writeln!(stdout, "{line}");
    }
    exit::OK
}

fn audit_file(file: Option<PathBuf>) -> Result<PathBuf, i32> {
    file.or_else(paths::default_audit_log).ok_or_else(|| {
        tracing::error!("no audit log given, and no default location: set XDG_STATE_HOME or HOME");
        exit::USAGE
    })
}

fn audit_verify(file: Option<PathBuf>) -> i32 {
    let path = match audit_file(file) {
        Ok(path) => path,
        Err(code) => return code,
    };
    let mut stdout = std::io::stdout().lock();
    match crate::audit::verify::verify(&path) {
        Ok(report) => match report.problem {
            None => {
                let _ = writeln!(
                    stdout,
                    "{}: ok: {} lines, {} chained records, the head record matches",
                    path.display(),
                    report.lines,
                    report.chained
                );
                exit::OK
            }
            Some(problem) => {
                let _ = writeln!(stdout, "{}: {problem}", path.display());
                exit::FAILURE
            }
        },
        Err(e) => {
            tracing::error!("cannot read {}: {e}", path.display());
            exit::FAILURE
        }
    }
}

fn audit_show(args: ShowArgs) -> i32 {
    let path = match audit_file(args.file.clone()) {
        Ok(path) => path,
        Err(code) => return code,
    };
    let glob = |pattern: &Option<String>, what: &str| -> Result<Option<globset::GlobMatcher>, String> {
        pattern
            .as_deref()
            .map(|p| globset::Glob::new(p).map(|g| g.compile_matcher()).map_err(|e| format!("--{what} {p:?}: {e}")))
            .transpose()
    };
    let filter = (|| {
        Ok::<_, String>(crate::audit::show::Filter {
            tool: glob(&args.tool, "tool")?,
            server: glob(&args.server, "server")?,
            decision: args.decision.clone(),
            decided_by: args.decided_by.clone(),
            since: args.since.as_deref().map(|t| parse_time(t, "since")).transpose()?,
            until: args.until.as_deref().map(|t| parse_time(t, "until")).transpose()?,
        })
    })();
    let filter = match filter {
        Ok(filter) => filter,
        Err(e) => {
            tracing::error!("{e}");
            return exit::USAGE;
        }
    };
    match crate::audit::show::show(&path, &filter, args.json, &mut std::io::stdout().lock()) {
        Ok(_) => exit::OK,
        Err(e) => {
            tracing::error!("cannot read {}: {e}", path.display());
            exit::FAILURE
        }
    }
}

/// A time given as RFC 3339 or as a duration before now.
fn parse_time(text: &str, flag: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    match humantime::parse_duration(text) {
        Ok(ago) => Ok(std::time::SystemTime::now() - ago),
        Err(_) => Err(format!("--{flag} {text:?}: not a time like 2026-11-24T10:00:00Z or a duration like 2h")),
    }
}

async fn demo() -> i32 {
    let dir = std::env::temp_dir().join(format!("toolgate-demo-{}", std::process::id()));
    let mut stdout = std::io::stdout();
    match demo::run(&mut stdout, dir.join("audit.jsonl")).await {
        Ok(_) => exit::OK,
        Err(e) => {
            tracing::error!("the demo failed: {e}");
            exit::FAILURE
        }
    }
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
