//! Where toolgate keeps things, following the XDG base directory conventions.

use std::path::PathBuf;

fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    let base = std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(fallback)))?;
    Some(base.join("toolgate"))
}

/// `$XDG_CONFIG_HOME/toolgate` (default `~/.config/toolgate`): the user's policy.
pub fn config_dir() -> Option<PathBuf> {
    xdg("XDG_CONFIG_HOME", ".config")
}

/// `$XDG_STATE_HOME/toolgate` (default `~/.local/state/toolgate`): audit log, queue, trust.
pub fn state_dir() -> Option<PathBuf> {
    xdg("XDG_STATE_HOME", ".local/state")
}

/// The default audit log.
pub fn default_audit_log() -> Option<PathBuf> {
    state_dir().map(|d| d.join("audit.jsonl"))
}
