//! The wall clock: what the audit log, the review queue, the trust record and the summary call
//! now. (Deadlines inside a session use the monotonic clock, handed to the core with each event.)
//!
//! Tests of debug builds can set it: `TOOLGATE_TEST_CLOCK=FILE` makes now whatever RFC 3339 time
//! FILE holds when it is read, so that a test spreads a week of traffic over days by writing the
//! file, without sleeping. Release builds have no such clock: they read the system's.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now.
pub fn now() -> SystemTime {
    #[cfg(debug_assertions)]
    if let Some(now) = test_clock::now() {
        return now;
    }
    SystemTime::now()
}

/// Now, in milliseconds since the Unix epoch (0 before it, `u64::MAX` far after it).
pub fn now_ms() -> u64 {
    now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(debug_assertions)]
mod test_clock {
    use std::path::PathBuf;
    use std::sync::OnceLock;
    use std::time::SystemTime;

    /// The time the test's clock file holds, when `TOOLGATE_TEST_CLOCK` names one. A file that
    /// cannot be read or holds no time is a broken test: it panics rather than fall back to the
    /// system's clock and let the test pass on the wrong days.
    pub fn now() -> Option<SystemTime> {
        static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
        let file = FILE.get_or_init(|| std::env::var_os("TOOLGATE_TEST_CLOCK").map(PathBuf::from)).as_ref()?;
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("TOOLGATE_TEST_CLOCK: cannot read {}: {e}", file.display()));
        let time = humantime::parse_rfc3339_weak(text.trim())
            .unwrap_or_else(|e| panic!("TOOLGATE_TEST_CLOCK: {} holds {text:?}, not a time: {e}", file.display()));
        Some(time)
    }
}
