//! The exit codes of toolgate's own making, in one place below every command that returns one
//! (`run` otherwise exits with the server's status).

/// The status the process exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitCode(i32);

impl ExitCode {
    /// Success.
    pub const OK: ExitCode = ExitCode(0);
    /// A check failed or a runtime error stopped toolgate.
    pub const FAILURE: ExitCode = ExitCode(1);
    /// The command line was not understood.
    pub const USAGE: ExitCode = ExitCode(2);
    /// The policy could not be loaded, so nothing was started.
    pub const POLICY: ExitCode = ExitCode(3);
    /// The server command exists but could not be run.
    pub const CANNOT_RUN: ExitCode = ExitCode(126);
    /// The server command was not found.
    pub const NOT_FOUND: ExitCode = ExitCode(127);
    /// Stopped by SIGINT.
    pub const INTERRUPTED: ExitCode = ExitCode(130);
    /// Stopped by SIGTERM.
    pub const TERMINATED: ExitCode = ExitCode(143);

    /// A status toolgate passes on as it is: the server's, or one the proxy chose.
    pub const fn passed_on(code: i32) -> ExitCode {
        ExitCode(code)
    }

    /// The number the process exits with.
    pub const fn code(self) -> i32 {
        self.0
    }

    /// [`FAILURE`](Self::FAILURE) when `failed`, else [`OK`](Self::OK).
    pub const fn failed_if(failed: bool) -> ExitCode {
        if failed { ExitCode::FAILURE } else { ExitCode::OK }
    }
}
