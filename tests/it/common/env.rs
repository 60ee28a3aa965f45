//! The environment of every process the tests start: toolgate, the Python and Node servers, the
//! rmcp server, a shell. [`Env`] owns a temporary folder and builds each [`Command`] with an
//! environment cleared of the developer's own: no `TOOLGATE_POLICY` or `TOOLGATE_LOG` of theirs,
//! a home, XDG folders and a private runtime folder of the test's own (so a `toolgate approve`
//! the developer runs never sees the tests' proxies, and a test never reads their policy or
//! earns trust in their record). Only [`KEPT`] passes through.
//!
//! No test calls `Command::new` itself; `grep -rn 'Command::new' tests/it` finds this file only.

use std::ffi::OsStr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::root;

/// What a spawned command keeps of the test process's environment: `PATH`, to find `python3`,
/// `node` (the npm servers start with `#!/usr/bin/env node`) and `sh`; and what helps read a
/// failure (`RUST_BACKTRACE`) or measure coverage (`LLVM_PROFILE_FILE`).
pub const KEPT: [&str; 3] = ["PATH", "RUST_BACKTRACE", "LLVM_PROFILE_FILE"];

/// The folders under [`Env::path`] that stand for the user's own, by the variable naming each.
const FOLDERS: [(&str, &str); 7] = [
    ("HOME", "home"),
    ("XDG_CONFIG_HOME", "config"),
    ("XDG_STATE_HOME", "state"),
    ("XDG_DATA_HOME", "data"),
    ("XDG_CACHE_HOME", "cache"),
    ("XDG_RUNTIME_DIR", "run"),
    ("TMPDIR", "tmp"),
];

/// One test's user: a temporary folder holding a home, the XDG folders and a runtime folder
/// (mode 0700, as a login session's), and room for the test's own files. Every process a test
/// starts from one `Env` is the same user: proxies, approvers and `toolgate review` share the
/// state and runtime folders.
pub struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        for (var, folder) in FOLDERS {
            let mode = if var == "XDG_RUNTIME_DIR" { 0o700 } else { 0o755 };
            std::fs::DirBuilder::new().mode(mode).create(dir.path().join(folder)).unwrap();
        }
        Env { dir }
    }

    /// The temporary folder, for the test's own files (policies, audit logs, records).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn home(&self) -> PathBuf {
        self.join("home")
    }

    pub fn config(&self) -> PathBuf {
        self.join("config")
    }

    pub fn state(&self) -> PathBuf {
        self.join("state")
    }

    /// `XDG_RUNTIME_DIR`, where proxies put their approver sockets (in `toolgate/`).
    pub fn runtime(&self) -> PathBuf {
        self.join("run")
    }

    /// `program` in this environment: the test process's own cleared, [`KEPT`] kept, and the
    /// home, XDG and temporary folders pointed here.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear();
        for name in KEPT {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        for (var, folder) in FOLDERS {
            cmd.env(var, self.join(folder));
        }
        cmd
    }

    /// The toolgate binary under test.
    pub fn toolgate(&self) -> Command {
        self.command(toolgate())
    }

    /// The Python of the test venv, with the pinned `mcp` SDK.
    pub fn python(&self) -> Command {
        self.command(python())
    }
}

/// Whether `cmd` was built by [`Env::command`] (its environment names a home).
pub fn built_by_env(cmd: &Command) -> bool {
    cmd.get_envs().any(|(k, v)| k == "HOME" && v.is_some())
}

pub fn toolgate() -> &'static str {
    env!("CARGO_BIN_EXE_toolgate")
}

/// The Python of the test venv, with the pinned `mcp` SDK, which `tests/setup.sh` installs.
pub fn python() -> PathBuf {
    installed(root().join("target/test-deps/venv/bin/python"))
}

/// A pinned npm MCP server's entry point, e.g. `mcp-server-everything`, which `tests/setup.sh`
/// installs.
pub fn node_server(bin: &str) -> PathBuf {
    installed(root().join("tests/node/node_modules/.bin").join(bin))
}

fn installed(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: this test needs the pinned Python and npm MCP software; run tests/setup.sh \
         (or .ci/run) first",
        path.display()
    );
    path
}

/// The rmcp test server (`tests/rmcp-server`, a workspace member), built by this test run: a
/// plain `cargo nextest run` builds the test binaries, not the other members' binaries. Built
/// once per process, by the cargo that builds the tests, into the same target folder (cargo
/// reads `CARGO_TARGET_DIR` itself); a fresh build is a no-op.
pub fn rmcp_server() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_bin("toolgate-test-rmcp-server", "toolgate-test-rmcp-server"))
}

/// Builds `package` and returns the path of its binary `bin`, read from cargo's
/// `compiler-artifact` message. This is the one command with the developer's own environment:
/// it is a build, not a peer under test, and needs their cargo and toolchain settings.
fn build_bin(package: &str, bin: &str) -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["build", "--quiet", "--message-format=json", "-p", package, "--bin", bin])
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {package}: {e}"));
    assert!(out.status.success(), "cargo build -p {package} failed ({})", out.status);
    let executable = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from));
    executable.unwrap_or_else(|| panic!("cargo built {package} but named no executable for {bin}"))
}
