//! Earned autonomy and pinning inside a session: the trust record (`crate::trust`) as this
//! proxy sees it, what it does to a decision, and what people's answers add to it.
//!
//! The record is read once and read again only when the file changed and it matters: for a call
//! that would ask a person (has its tool earned trust?) and for a tool that changed (was the
//! change accepted meanwhile?). Calls the policy simply allows cost nothing here.
//!
//! Trust is bound to what earned it: this session's server must be the program the record's
//! answers came from (`crate::identity`), and this session's own `tools/list` must have shown
//! the tool with its pinned definition. Until then, its calls are decided as the policy says.

use std::collections::HashMap;
use std::time::SystemTime;

use serde_json::Value;

use crate::identity::Identity;
use crate::policy::{ChangedTools, Decision, Gate, Settings};
use crate::trust::{self, Answered, Standing, Store, TrustFile};
use crate::wire::splice;

/// The server's identity: hashed on a thread of its own while the session starts, so that the
/// first messages do not wait for it; the first judgement that needs it waits for the hash
/// (for a large program, some milliseconds), once.
pub(super) struct ServerIdentity {
    hashing: Option<std::thread::JoinHandle<Identity>>,
    known: Option<Identity>,
}

impl ServerIdentity {
    /// Starts hashing the program that `command` runs.
    pub fn hash(command: Vec<std::ffi::OsString>) -> std::io::Result<ServerIdentity> {
        let thread = std::thread::Builder::new().name("identity".into()).spawn(move || {
            let started = std::time::Instant::now();
            let identity = Identity::of(&command);
            tracing::debug!(
                "server identity {} ({} and {} file(s) hashed in {} ms)",
                identity.id,
                identity.program.path,
                identity.files.len(),
                started.elapsed().as_millis()
            );
            identity
        })?;
        Ok(ServerIdentity { hashing: Some(thread), known: None })
    }

    /// An identity already known (a remote server's URL; the core's tests).
    pub fn known(identity: Identity) -> ServerIdentity {
        ServerIdentity { hashing: None, known: Some(identity) }
    }

    fn get(&mut self) -> &Identity {
        if let Some(thread) = self.hashing.take() {
            // Hashing reads files and never panics on what it reads; if it did, that is a bug.
            self.known = Some(thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        self.known.as_ref().expect("an identity is hashed or known")
    }
}

pub(super) struct SessionTrust {
    file: Option<TrustFile>,
    store: Store,
    /// The file's modification time when it was last read.
    stamp: Option<SystemTime>,
    /// The program this session's server is.
    identity: ServerIdentity,
    /// Each tool's definition as this session's latest `tools/list` showed it; emptied when the
    /// server says its tools changed.
    shown: HashMap<String, (String, Value)>,
}

impl SessionTrust {
    pub fn open(path: Option<std::path::PathBuf>, identity: ServerIdentity) -> SessionTrust {
        let file = path.map(TrustFile::new);
        if file.is_none() {
            tracing::warn!("no place for the trust record (set XDG_STATE_HOME or HOME): no tool earns trust");
        }
        let mut trust = SessionTrust { file, store: Store::default(), stamp: None, identity, shown: HashMap::new() };
        trust.refresh();
        trust
    }

    fn refresh(&mut self) {
        let Some(file) = &self.file else { return };
        let stamp = std::fs::metadata(file.path()).and_then(|m| m.modified()).ok();
        if stamp.is_some() && stamp == self.stamp {
            return;
        }
        match file.read() {
            Ok(store) => {
                self.store = store;
                self.stamp = stamp;
            }
            Err(e) => tracing::warn!("cannot read the trust record: {e}"),
        }
    }

    /// The program this session's server is.
    pub fn identity(&mut self) -> &Identity {
        self.identity.get()
    }

    /// A page of a `tools/list` answer (`first`: a new listing begins): binds the record of
    /// `server` to this session's program, pins new tools, and returns why the program's trust
    /// was reset (when it was) and the tools that changed, with what changed (each change is
    /// reported once, to the first proxy that sees it).
    pub fn listed(&mut self, server: &str, tools: &[Value], first: bool) -> (Option<String>, Vec<(String, String)>) {
        if first {
            self.shown.clear();
        }
        for tool in tools {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                self.shown.insert(name.to_owned(), (trust::definition(tool), tool.clone()));
            }
        }
        let identity = self.identity.get().clone();
        let learn = move |store: &mut Store| {
            let reset = store.bind(server, &identity);
            let news: Vec<(String, String)> = tools
                .iter()
                .filter_map(|t| {
                    let name = t.get("name")?.as_str()?.to_owned();
                    store.saw(server, t).map(|change| (name, change))
                })
                .collect();
            (reset, news)
        };
        // With no place for the record, pins last as long as the session.
        if self.file.is_none() {
            return learn(&mut self.store);
        }
        self.change("update the trust record", learn).unwrap_or_default()
    }

    /// The server said its tools changed: what this session's listing showed no longer vouches
    /// for any tool until the tools are listed again.
    pub fn tools_changed(&mut self) {
        self.shown.clear();
    }

    /// Whether this session's latest `tools/list` showed `tool` with its pinned definition.
    pub fn shows_pinned(&self, server: &str, tool: &str) -> bool {
        let pinned = self.store.tools.get(&trust::key(server, tool)).and_then(|r| r.pinned.as_deref());
        pinned.is_some() && self.shown.get(tool).map(|(d, _)| d.as_str()) == pinned
    }

    /// This session's program, for rules bound to one (`identity = "sha256:…"`), when this
    /// session's listing showed `tool` with its pinned definition; `None` before that.
    pub fn vouched(&mut self, server: &str, tool: &str) -> Option<&str> {
        if !self.shows_pinned(server, tool) {
            return None;
        }
        Some(self.identity.get().id.as_str())
    }

    /// Tools of this server whose definition changed and is not accepted.
    pub fn changed_tools(&self, server: &str) -> Vec<String> {
        let prefix = trust::key(server, "");
        self.store
            .tools
            .iter()
            .filter(|(k, r)| k.starts_with(&prefix) && r.changed())
            .map(|(k, _)| k[prefix.len()..].to_owned())
            .collect()
    }

    /// A person answered a call to this tool.
    pub fn answered(&mut self, server: &str, tool: &str, answer: Answered) {
        let identity = self.identity.get().clone();
        self.change("record the answer in the trust record", |store| {
            // Answers count for the program that was asked about.
            if let Some(why) = store.bind(server, &identity) {
                tracing::warn!("{}; its earned trust starts from nothing", crate::visible::visible(&why));
            }
            store.answered(server, tool, answer);
        });
    }

    /// Changes the record on disk, under its lock, and keeps what it became as this session's
    /// copy. `None` when there is no place for the record, or when it cannot be written (said on
    /// stderr: "cannot `what`").
    fn change<R>(&mut self, what: &str, change: impl FnOnce(&mut Store) -> R) -> Option<R> {
        let file = self.file.as_ref()?;
        match file.update(|store| (change(store), store.clone())) {
            Ok((out, store)) => {
                self.store = store;
                self.stamp = std::fs::metadata(file.path()).and_then(|m| m.modified()).ok();
                Some(out)
            }
            Err(e) => {
                tracing::warn!("cannot {what}: {e}");
                None
            }
        }
    }

    /// What trust does to a decision: a changed tool needs a yes (or is refused, when changed
    /// tools are hidden); a tool that earned trust has its ask lowered to notify, unless a rule
    /// says `always_ask`. Says why, when trust lowered the gate or a lost trust keeps it.
    pub fn adjust(
        &mut self,
        settings: &Settings,
        server: &str,
        tool: &str,
        decision: &mut Decision,
    ) -> Option<TrustSays> {
        let key = trust::key(server, tool);
        if self.store.tools.get(&key).is_some_and(trust::Record::changed) {
            self.refresh();
        }
        // Changed: since the last listing of any proxy, or in what this session's listing showed
        // (another proxy's server may show the pinned definition while this one does not).
        let changed = self.store.tools.get(&key).and_then(|record| {
            let shown = self.shown.get(tool).filter(|(d, _)| record.pinned.as_ref().is_some_and(|p| p != d));
            match shown {
                Some((_, tool)) => Some(trust::what_changed(record.pinned_tool.as_ref(), tool)),
                None if record.changed() => Some(trust::what_changed(
                    record.pinned_tool.as_ref(),
                    record.seen_tool.as_ref().unwrap_or(&Value::Null),
                )),
                None => None,
            }
        });
        if let Some(change) = changed {
            let accept = format!(
                "`toolgate trust accept {} {}`",
                crate::visible::shell_word(server),
                crate::visible::shell_word(tool)
            );
            let (gate, reason) = match settings.changed_tools {
                ChangedTools::Ask => (
                    Gate::Ask,
                    format!(
                        "`{tool}` changed since it was trusted ({change}); it needs a yes until the change is accepted with {accept}"
                    ),
                ),
                ChangedTools::Hide => (
                    Gate::Deny,
                    format!(
                        "`{tool}` changed since it was trusted ({change}), so it is hidden until the change is accepted with {accept}"
                    ),
                ),
            };
            if decision.gate < gate {
                decision.gate = gate;
                decision.reason = Some(reason);
            }
            return None;
        }
        if decision.gate != Gate::Ask || decision.always_ask || !settings.trust.enabled {
            return None;
        }
        self.refresh();
        let record = self.store.tools.get(&key)?;
        match record.standing(&settings.trust, crate::clock::now_ms()) {
            Standing::Earned(why) => match self.store.bound(server) {
                Some(bound) if bound.id != self.identity.get().id => Some(TrustSays::Lost(format!(
                    "not trusted: a different program runs as `{server}` ({}) than the one that earned trust ({}): {}",
                    self.identity.known.as_ref().map(Identity::short).unwrap_or_default(),
                    bound.short(),
                    self.identity.known.as_ref().map(|i| i.differences(bound)).unwrap_or_default()
                ))),
                None => Some(TrustSays::Lost(format!(
                    "not trusted: the record does not say which program earned the trust of `{server}`"
                ))),
                Some(_) if !self.shows_pinned(server, tool) => Some(TrustSays::Lost(format!(
                    "not trusted yet: this session's tools/list has not shown `{tool}` with its pinned definition"
                ))),
                Some(_) => {
                    decision.gate = Gate::Notify;
                    Some(TrustSays::Earned(format!("earned trust: {why}")))
                }
            },
            Standing::NotYet(why) if record.reset.is_some() => Some(TrustSays::Lost(format!("not trusted: {why}"))),
            Standing::NotYet(_) | Standing::Changed => None,
        }
    }
}

/// What trust said about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TrustSays {
    /// It lowered the gate from ask to notify, for this reason.
    Earned(String),
    /// The call asks because the tool lost its trust, or it does not apply to this session
    /// (another program, or a listing that has not shown the pinned tool); this says why.
    Lost(String),
}

/// A `tools/list` answer without the named tools; every other byte kept.
pub(super) fn without_tools(line: &[u8], hidden: &[String]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(line).ok()?.trim_end_matches(['\n', '\r']);
    let result = splice::member(text, "result")?;
    let tools = splice::member(result, "tools")?;
    // A set, not the list: a listing of many tools against many hidden ones stays linear.
    let hidden: std::collections::HashSet<&str> = hidden.iter().map(String::as_str).collect();
    let kept: Vec<&str> = splice::items(tools)?
        .into_iter()
        .filter(|item| {
            let name = serde_json::from_str::<Value>(item)
                .ok()
                .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_owned));
            !name.is_some_and(|n| hidden.contains(n.as_str()))
        })
        .collect();
    let tools = format!("[{}]", kept.join(","));
    let result = splice::set_member(result, "tools", Some(&tools))?;
    let mut out = splice::set_member(text, "result", Some(&result))?.into_bytes();
    out.push(b'\n');
    Some(out)
}
