//! The conventions people expect of a command-line tool: shell completions, a man page,
//! `--version`, `--help` with examples on every command, and color that follows `--color` and
//! `NO_COLOR` (checked on a real pseudo-terminal, where `auto` would color).

use crate::common::pty::command_on_pty;
use crate::common::*;

fn stdout_of(args: &[&str]) -> String {
    let out = Env::new().toolgate().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_for_each_shell_know_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("approve") && script.contains("review") && script.contains("policy"), "{shell}");
    }
}

#[test]
fn the_man_page_and_version_are_there() {
    let man = stdout_of(&["man"]);
    assert!(man.contains(".TH toolgate 1") && man.contains("human\\-in\\-the\\-loop"), "{man}");
    assert_eq!(stdout_of(&["--version"]), format!("toolgate {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn every_command_has_help_with_examples() {
    for command in [
        "run",
        "check",
        "explain",
        "approve",
        "review",
        "trust",
        "test",
        "record",
        "replay",
        "completions",
        "man",
        "demo",
    ] {
        let help = stdout_of(&[command, "--help"]);
        assert!(help.contains("Example"), "`toolgate {command} --help` has no example:\n{help}");
    }
}

/// `toolgate explain` with a missing policy, run on a pty: what the terminal shows (an error
/// logged on stderr, whose level is colored when color is on).
fn check_on_a_terminal(color: Option<&str>, no_color: bool) -> String {
    let env = Env::new();
    let mut cmd = env.toolgate();
    cmd.args(["explain", "--tool", "x", "--policy", "/nonexistent/policy.toml"]);
    if let Some(c) = color {
        cmd.args(["--color", c]);
    }
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let (mut child, mut screen) = command_on_pty(cmd);
    assert!(!child.wait().unwrap().success());
    screen.raw_until("/nonexistent/policy.toml")
}

#[test]
fn color_follows_the_terminal_no_color_and_the_flag() {
    let escape = "\u{1b}[";
    assert!(check_on_a_terminal(None, false).contains(escape), "auto colors a terminal");
    assert!(!check_on_a_terminal(None, true).contains(escape), "NO_COLOR turns auto off");
    assert!(!check_on_a_terminal(Some("never"), false).contains(escape));
    assert!(check_on_a_terminal(Some("always"), true).contains(escape), "--color always wins over NO_COLOR");
}
