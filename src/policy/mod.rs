//! Policies: TOML rules that decide which gate a `tools/call` meets.
//!
//! `file.rs` is the text as written, `rule.rs` the compiled form that decides, `decision.rs` the
//! outcome, `error.rs` the errors that point into the file. [`Policy`] ties them together.

mod compile;
pub mod condition;
pub mod decision;
pub mod error;
pub mod file;
pub mod lint;
pub mod reading;
pub mod remember;
pub mod rule;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use decision::{Annotations, Basis, Call, ConfidenceCheck, Decision, Gate, Matched, Tier};
pub use error::{PolicyError, PolicyErrors};
pub use file::{ArgumentsSetting, Autonomy, ChangedTools, DefaultTier, MissingConfidence};
pub use rule::{AuditRotation, NearMiss, Rule, RuleSet, Settings, TrustBar};

/// The policy used when no file is given or found.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../policies/default.toml");

/// The name the embedded default carries in messages.
pub const EMBEDDED_ORIGIN: &str = "<embedded default policy>";

/// A loaded, compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub settings: Settings,
    pub rules: RuleSet,
    /// Where it came from: a path, or [`EMBEDDED_ORIGIN`].
    pub origin: String,
    /// `sha256:` and the first 16 hex digits of the file's bytes; audit records carry it.
    pub version: Arc<str>,
}

impl Policy {
    /// Decides one call.
    pub fn decide(&self, call: &Call<'_>) -> Decision {
        self.rules.decide(&self.settings, call)
    }

    /// The embedded default policy.
    pub fn embedded() -> Self {
        match Policy::from_toml(EMBEDDED_DEFAULT, EMBEDDED_ORIGIN) {
            Ok(policy) => policy,
            // The embedded text is checked by a unit test; this cannot happen in a built binary.
            Err(e) => panic!("the embedded default policy does not load: {e}"),
        }
    }

    /// Reads and compiles a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            PolicyErrors(vec![PolicyError {
                origin: origin.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read the policy: {e}"),
            }])
        })?;
        Policy::from_toml(&text, &origin)
    }

    /// Compiles policy text; `origin` names it in errors. Every problem is reported, not just
    /// the first.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, PolicyErrors> {
        compile::compile(text, origin)
    }

    /// Decides a call and lists the rules that almost matched it.
    pub fn explain(&self, call: &Call<'_>) -> (Decision, Vec<NearMiss>) {
        self.rules.explain(&self.settings, call)
    }

    /// Whether any rule or setting uses the model's confidence.
    pub fn uses_confidence(&self) -> bool {
        self.settings.min_confidence.is_some() || self.rules.rules().iter().any(|r| r.min_confidence.is_some())
    }
}

/// `sha256:` and 16 hex digits of the text.
pub fn version_of(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Parses a duration such as `90s`, `5m` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration like \"30s\" or \"5m\" ({e})"))
}

/// A size in bytes as a person writes it: `"64 MiB"`, `"500 KB"`, `"1GiB"`, `"4096"` (bytes).
/// Binary (`KiB`, `MiB`, `GiB`) and decimal (`KB`, `MB`, `GB`) units, any case, with or without
/// a space; a bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size like \"64 MiB\" or \"500 KB\"");
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    number.checked_mul(unit).ok_or_else(bad)
}

/// Where a policy comes from, in order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--policy FILE`.
    Flag(PathBuf),
    /// `$TOOLGATE_POLICY`.
    Env(PathBuf),
    /// `$XDG_CONFIG_HOME/toolgate/policy.toml`, when it exists.
    Xdg(PathBuf),
    /// Nothing given and nothing found.
    Embedded,
}

impl Source {
    /// Finds the policy to use: the flag, then the environment, then the XDG file, then the
    /// embedded default.
    pub fn locate(flag: Option<&Path>) -> Self {
        if let Some(path) = flag {
            return Source::Flag(path.to_owned());
        }
        if let Some(path) = std::env::var_os("TOOLGATE_POLICY").filter(|v| !v.is_empty()) {
            return Source::Env(PathBuf::from(path));
        }
        match crate::paths::config_dir().map(|d| d.join("policy.toml")) {
            Some(path) if path.exists() => Source::Xdg(path),
            _ => Source::Embedded,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::Flag(p) | Source::Env(p) | Source::Xdg(p) => Some(p),
            Source::Embedded => None,
        }
    }

    pub fn load(&self) -> Result<Policy, PolicyErrors> {
        match self.path() {
            Some(path) => Policy::load(path),
            None => Ok(Policy::embedded()),
        }
    }
}

#[cfg(test)]
mod tests;
