//! Live policy reload. Editors replace a file on save (write a new one, rename it over the old),
//! so the policy's folder is watched rather than the file itself; any event that names the
//! policy file asks for a reload. SIGHUP asks too. The reload itself is the dispatcher's.

use std::path::{Path, PathBuf};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// Watches a policy file while it lives; `changed` is called (on the watcher's thread) each
/// time the file may have changed.
pub struct PolicyWatch {
    _watcher: RecommendedWatcher,
}

impl PolicyWatch {
    /// Starts watching. Failing to watch is not fatal (SIGHUP still reloads); the caller logs it.
    pub fn start(path: &Path, changed: impl Fn() + Send + 'static) -> notify::Result<Self> {
        let name = path.file_name().map(ToOwned::to_owned);
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                Ok(e) => e.paths.iter().any(|p| p.file_name() == name.as_deref()),
                // An error from the watcher: look at the file again rather than miss a change.
                Err(_) => true,
            };
            if relevant {
                changed();
            }
        })?;
        watcher.watch(&folder_of(path), RecursiveMode::NonRecursive)?;
        Ok(PolicyWatch { _watcher: watcher })
    }
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}
