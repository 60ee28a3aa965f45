//! The MCP server toolgate launches: started in its own process group, tied to toolgate's life,
//! and stopped in escalating steps.

use std::ffi::OsString;
use std::io;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Why the server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("no server command given (put it after `--`)")]
    Empty,
    #[error("cannot start the server `{program}`: {source}")]
    Io { program: String, source: io::Error },
}

impl SpawnError {
    /// The shell's conventions: 127 when the command is not found, 126 when it cannot run.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::Empty => 2,
            SpawnError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => 127,
            SpawnError::Io { .. } => 126,
        }
    }
}

/// A running server with its stdio pipes taken out.
pub struct Server {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    pgid: Pid,
}

impl Server {
    /// Starts `command` with piped stdin and stdout; its stderr is toolgate's.
    pub fn spawn(command: &[OsString]) -> Result<Self, SpawnError> {
        let (program, args) = command.split_first().ok_or(SpawnError::Empty)?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own group, so that stopping it reaches the processes it starts (npx, uv, ...)
            // and so that a terminal's Ctrl-C reaches toolgate, which then stops it in order.
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: only signal(2), which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // toolgate ignores these (a background terminal read, a file over its size
                // limit then fail instead of stopping it); ignored signals survive exec, and the
                // server should get the defaults.
                for sig in [Signal::SIGTTIN, Signal::SIGTTOU, Signal::SIGXFSZ] {
                    nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl)?;
                }
                Ok(())
            });
        }
        #[cfg(target_os = "linux")]
        {
            let parent = nix::unistd::getpid();
            // SAFETY: only async-signal-safe calls (prctl, getppid) run between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    // If toolgate dies, even by SIGKILL, the server is killed too.
                    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                    if nix::unistd::getppid() != parent {
                        return Err(io::Error::other("toolgate exited while starting the server"));
                    }
                    Ok(())
                });
            }
        }
        let mut child =
            cmd.spawn().map_err(|source| SpawnError::Io { program: program.to_string_lossy().into_owned(), source })?;
        let pid = child.id().map(|id| Pid::from_raw(id as i32)).unwrap_or(Pid::from_raw(0));
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(SpawnError::Io {
                program: program.to_string_lossy().into_owned(),
                source: io::Error::other("the server's pipes were not created"),
            });
        };
        Ok(Server { child, stdin, stdout, pgid: pid })
    }

    /// The parts the proxy drives separately.
    pub fn into_parts(self) -> (Child, ChildStdin, ChildStdout, Group) {
        (self.child, self.stdin, self.stdout, Group(self.pgid))
    }
}

/// The server's process group.
#[derive(Debug, Clone, Copy)]
pub struct Group(Pid);

impl Group {
    /// Sends a signal to every process in the group; a group that is gone is not an error.
    pub fn signal(self, signal: Signal) {
        if self.0.as_raw() > 0 {
            let _ = killpg(self.0, signal);
        }
    }
}

/// The exit code toolgate reports for the server's status: its code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}
