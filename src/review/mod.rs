//! The review queue: work a person looks at later. Calls whose gate is `notify` run at once and
//! land here "to review"; calls whose gate is `queue` are *parked*: they have not run, and run
//! only when a person approves them, executed by the proxy that parked them.
//!
//! The queue is one JSON file under `$XDG_STATE_HOME/toolgate/`, shared by every proxy
//! (`crate::state_file`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::now_ms;
use crate::decided::DecidedCall;
use crate::policy::{Gate, Tier};

pub mod command;

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It ran (a `notify` call); a person may look at it.
    ToReview,
    /// A person looked and agreed.
    Reviewed,
    /// It ran, and a person says it should have asked.
    Flagged,
    /// Parked: it has not run and waits for a person.
    Waiting,
    /// A person approved a parked call; its proxy runs it.
    Approved,
    /// The approved call ran; its result is recorded.
    Ran,
    /// A person rejected a parked call; it never runs.
    Rejected,
    /// Nobody approved the parked call in time; it never runs.
    Expired,
}

/// One item of the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "Stored", from = "Stored")]
pub struct Item {
    pub id: u64,
    pub status: Status,
    /// The call as decided. The file keeps the rules that chose its gate, without their
    /// reasons, and not the model's confidence.
    pub call: DecidedCall,
    /// When it was queued (unix ms).
    pub at: u64,
    /// The proxy that holds a parked call (its process id), which runs it when approved.
    pub proxy: Option<u32>,
    /// A parked call's `tools/call` params as the server is to get them (as the client sent
    /// them, less toolgate's confidence property), to run it later.
    pub params: Option<Value>,
    /// The result (or error) of a parked call that ran.
    pub result: Option<Value>,
    /// Who decided and why, when a person did.
    pub note: Option<String>,
    pub decided_at: Option<u64>,
}

impl Item {
    /// Higher first: tier, then waiting before done.
    pub fn risk(&self) -> (Tier, bool) {
        (self.call.tier, matches!(self.status, Status::Waiting | Status::ToReview))
    }
}

/// An item as the file holds it: the decided call's fields among the item's own, in the order
/// files have always had, so that every version reads what the others write.
#[derive(Serialize, Deserialize)]
struct Stored {
    id: u64,
    status: Status,
    server: String,
    tool: String,
    arguments: Map<String, Value>,
    gate: Gate,
    tier: Tier,
    /// The rules that chose the gate.
    rules: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proxy: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decided_at: Option<u64>,
    /// The version of the policy that decided it (absent in items queued before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
}

impl From<Item> for Stored {
    fn from(item: Item) -> Stored {
        let Item { id, status, call, at, proxy, params, result, note, decided_at } = item;
        let rules = call.deciding().map(|m| m.rule.clone()).collect();
        let DecidedCall { server, tool, arguments, gate, tier, reason, policy, .. } = call;
        Stored {
            id,
            status,
            server: server.to_string(),
            tool,
            arguments,
            gate,
            tier,
            rules,
            reason,
            at,
            proxy,
            params,
            result,
            note,
            decided_at,
            policy: policy.map(|p| p.to_string()),
        }
    }
}

impl From<Stored> for Item {
    fn from(stored: Stored) -> Item {
        let Stored {
            id,
            status,
            server,
            tool,
            arguments,
            gate,
            tier,
            rules,
            reason,
            at,
            proxy,
            params,
            result,
            note,
            decided_at,
            policy,
        } = stored;
        let matched = DecidedCall::read_back(gate, rules.into_iter().map(|rule| (rule, None)));
        let (server, policy) = (server.into(), policy.map(Into::into));
        let call = DecidedCall { server, tool, arguments, gate, tier, matched, reason, policy, confidence: None };
        Item { id, status, call, at, proxy, params, result, note, decided_at }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    pub v: u32,
    /// The number the next item gets.
    pub next: u64,
    pub items: BTreeMap<u64, Item>,
}

impl Default for Queue {
    fn default() -> Self {
        Queue { v: 1, next: 1, items: BTreeMap::new() }
    }
}

impl Queue {
    /// Adds an item and returns its number.
    pub fn add(&mut self, mut item: Item) -> u64 {
        item.id = self.next;
        self.next += 1;
        let id = item.id;
        self.items.insert(id, item);
        id
    }

    /// Marks parked calls older than `expiry` as expired; returns how many.
    pub fn expire(&mut self, expiry_ms: u64, now: u64) -> usize {
        let mut n = 0;
        for item in self.items.values_mut() {
            if matches!(item.status, Status::Waiting | Status::Approved) && now.saturating_sub(item.at) > expiry_ms {
                item.status = Status::Expired;
                item.decided_at = Some(now);
                n += 1;
            }
        }
        n
    }
}

/// The queue on disk.
pub type QueueFile = crate::state_file::StateFile<Queue>;

/// `$XDG_STATE_HOME/toolgate/queue.json`.
pub fn default_path() -> Option<PathBuf> {
    crate::paths::state_dir().map(|d| d.join("queue.json"))
}

/// A new item for a call, not yet numbered.
pub fn item(status: Status, call: DecidedCall) -> Item {
    Item { id: 0, status, call, at: now_ms(), proxy: None, params: None, result: None, note: None, decided_at: None }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::{Basis, Decision, Matched};

    /// A queue file as toolgate writes it: one item with every field, and one queued before the
    /// policy's version was kept.
    const FILE: &str = r#"{
  "v": 1,
  "next": 3,
  "items": {
    "1": {
      "id": 1,
      "status": "ran",
      "server": "fs",
      "tool": "write_file",
      "arguments": {
        "path": "/etc/hosts"
      },
      "gate": "queue",
      "tier": "high",
      "rules": [
        "park writes"
      ],
      "reason": "writes outside the project",
      "at": 1700000000000,
      "proxy": 4242,
      "params": {
        "name": "write_file",
        "arguments": {
          "path": "/etc/hosts"
        }
      },
      "result": {
        "content": []
      },
      "note": "approved by a person",
      "decided_at": 1700000001000,
      "policy": "sha256:6d7f9cc82f44ddcb"
    },
    "2": {
      "id": 2,
      "status": "to_review",
      "server": "fs",
      "tool": "read_file",
      "arguments": {},
      "gate": "notify",
      "tier": "medium",
      "rules": [],
      "at": 1700000000000
    }
  }
}
"#;

    /// The queue's bytes, pinned: every proxy and `toolgate review` shares the file, and files
    /// written by older versions must load and be written back as they were.
    #[test]
    fn a_queue_file_is_written_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.json");
        std::fs::write(&path, FILE).unwrap();
        let file = QueueFile::new(path.clone());
        let tools = file.update(|q| q.items.values().map(|i| i.call.tool.clone()).collect::<Vec<_>>()).unwrap();
        assert_eq!(tools, ["write_file", "read_file"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
    }

    #[test]
    fn a_new_item_lists_the_rules_that_chose_its_gate() {
        let matched = |rule: &str, gate: Gate, reason: Option<&str>| Matched {
            rule: rule.into(),
            gate: Some(gate),
            tier: None,
            reason: reason.map(str::to_owned),
            some_readings: false,
        };
        let decision = Decision {
            gate: Gate::Queue,
            tier: Tier::High,
            basis: Basis::Rules,
            matched: vec![
                matched("notes writes", Gate::Notify, None),
                matched("park writes", Gate::Queue, Some("writes outside the project")),
            ],
            reason: Some("writes outside the project".into()),
            hold: None,
            always_ask: false,
            confidence: None,
        };
        let arguments = json!({"path": "/etc/hosts"}).as_object().cloned().unwrap();
        let call = DecidedCall::new(
            "fs".into(),
            "write_file",
            arguments,
            decision,
            "sha256:6d7f9cc82f44ddcb".into(),
            Some(0.5),
        );
        let mut item = item(Status::Waiting, call);
        item.at = 1700000000000;
        assert_eq!(
            serde_json::to_string(&item).unwrap(),
            r#"{"id":0,"status":"waiting","server":"fs","tool":"write_file","arguments":{"path":"/etc/hosts"},"gate":"queue","tier":"high","rules":["park writes"],"reason":"writes outside the project","at":1700000000000,"policy":"sha256:6d7f9cc82f44ddcb"}"#
        );
    }
}
