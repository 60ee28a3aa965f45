//! Earned autonomy and pinning inside a session: the trust record (`crate::trust`) as this
//! proxy sees it, what it does to a decision, and what people's answers add to it.
//!
//! The record is read once and read again only when the file changed and it matters: for a call
//! that would ask a person (has its tool earned trust?) and for a tool that changed (was the
//! change accepted meanwhile?). Calls the policy simply allows cost nothing here.

use std::time::SystemTime;

use serde_json::Value;

use crate::policy::{ChangedTools, Decision, Gate, Settings};
use crate::trust::{self, Answered, Standing, Store, TrustFile};
use crate::wire::splice;

pub(super) struct SessionTrust {
    file: Option<TrustFile>,
    store: Store,
    /// The file's modification time when it was last read.
    stamp: Option<SystemTime>,
}

impl SessionTrust {
    pub fn open(path: Option<std::path::PathBuf>) -> SessionTrust {
        let file = path.map(TrustFile::new);
        if file.is_none() {
            tracing::warn!("no place for the trust record (set XDG_STATE_HOME or HOME): no tool earns trust");
        }
        let mut trust = SessionTrust { file, store: Store::default(), stamp: None };
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

    /// A `tools/list` answer: pins new tools and returns the tools that changed, with what
    /// changed (each change is reported once, to the first proxy that sees it).
    pub fn listed(&mut self, server: &str, tools: &[Value]) -> Vec<(String, String)> {
        let Some(file) = &self.file else { return Vec::new() };
        let updated = file.update(|store| {
            let news: Vec<(String, String)> = tools
                .iter()
                .filter_map(|t| {
                    let name = t.get("name")?.as_str()?.to_owned();
                    store.saw(server, t).map(|change| (name, change))
                })
                .collect();
            (news, store.clone())
        });
        match updated {
            Ok((news, store)) => {
                self.store = store;
                self.stamp = std::fs::metadata(file.path()).and_then(|m| m.modified()).ok();
                news
            }
            Err(e) => {
                tracing::warn!("cannot update the trust record: {e}");
                Vec::new()
            }
        }
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
        let Some(file) = &self.file else { return };
        match file.update(|store| {
            store.answered(server, tool, answer);
            store.clone()
        }) {
            Ok(store) => {
                self.store = store;
                self.stamp = std::fs::metadata(file.path()).and_then(|m| m.modified()).ok();
            }
            Err(e) => tracing::warn!("cannot record the answer in the trust record: {e}"),
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
        if let Some(record) = self.store.tools.get(&key).filter(|r| r.changed()) {
            let change =
                trust::what_changed(record.pinned_tool.as_ref(), record.seen_tool.as_ref().unwrap_or(&Value::Null));
            let accept = format!("`toolgate trust accept {server} {tool}`");
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
        match record.standing(&settings.trust, trust::now_ms()) {
            Standing::Earned(why) => {
                decision.gate = Gate::Notify;
                Some(TrustSays::Earned(format!("earned trust: {why}")))
            }
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
    /// The call asks because the tool lost its trust; this says when and why.
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
