//! The test environment itself ([`Env`]): a command the tests start sees the folders of its own
//! test user and nothing of the developer's environment: not their policy (`TOOLGATE_POLICY`,
//! `~/.config/toolgate`), their runtime folder (where their `toolgate approve` listens) nor
//! their state.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use crate::common::env::KEPT;
use crate::common::*;

/// The variables `env` (the program) prints, by name.
fn seen_by(env: &Env) -> BTreeMap<String, String> {
    let (ok, printed) = run_to_end(&mut env.command("env"));
    assert!(ok, "{printed}");
    printed.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

#[test]
fn a_spawned_command_sees_its_own_folders_and_nothing_of_the_developers_environment() {
    // Setting the test process's own environment is sound only where no other thread reads it:
    // nextest runs each test in a process of its own; `cargo test` runs them on threads of one.
    if std::env::var_os("NEXTEST_EXECUTION_MODE").is_none_or(|mode| mode != "process-per-test") {
        eprintln!("skipped: this test sets its process's environment, which needs nextest's process per test");
        return;
    }
    // SAFETY: this process runs this one test; no other thread reads the environment.
    unsafe {
        std::env::set_var("TOOLGATE_POLICY", "/nonexistent/broken-policy.toml");
        std::env::set_var("TOOLGATE_LOG", "trace");
        std::env::set_var("XDG_RUNTIME_DIR", "/nonexistent/developers-run");
        std::env::set_var("XDG_CONFIG_HOME", "/nonexistent/developers-config");
        std::env::set_var("HOME", "/nonexistent/developers-home");
    }
    let env = Env::new();
    let seen = seen_by(&env);
    let path = |p: std::path::PathBuf| p.display().to_string();
    let folders = [
        ("HOME", path(env.home())),
        ("XDG_CONFIG_HOME", path(env.config())),
        ("XDG_STATE_HOME", path(env.state())),
        ("XDG_DATA_HOME", path(env.join("data"))),
        ("XDG_CACHE_HOME", path(env.join("cache"))),
        ("XDG_RUNTIME_DIR", path(env.runtime())),
        ("TMPDIR", path(env.join("tmp"))),
    ];
    for (var, folder) in &folders {
        assert_eq!(seen.get(*var), Some(folder), "{var}: {seen:?}");
    }
    let others: Vec<&String> =
        seen.keys().filter(|k| !KEPT.contains(&k.as_str()) && !folders.iter().any(|(v, _)| v == k)).collect();
    assert!(others.is_empty(), "passed through: {others:?}");

    // toolgate loads no policy of the developer's: with theirs, this would fail to load it.
    let (ok, out) = run_to_end(env.toolgate().args(["explain", "--tool", "read_file", "--json"]));
    assert!(ok, "{out}");
}

#[test]
fn each_test_user_has_private_folders_of_its_own() {
    let (first, second) = (Env::new(), Env::new());
    assert_ne!(seen_by(&first)["XDG_STATE_HOME"], seen_by(&second)["XDG_STATE_HOME"]);
    let mode = std::fs::metadata(first.runtime()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "a runtime folder is the user's alone, as a login session's is");
}
