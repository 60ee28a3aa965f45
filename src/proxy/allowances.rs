//! What a person allowed beyond the call they answered: a tool for the rest of the session,
//! and the server's own follow-up of a call they approved (a 2026-07-28 server that asks the
//! client for more input, whose retry must not be asked about again).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::request_state;

/// Server states remembered at most.
const MAX_CONTINUATIONS: usize = 1024;

#[derive(Default)]
pub(super) struct Allowances {
    /// Tools a person allowed for the rest of the session.
    tools: HashSet<String>,
    /// Server states handed out for more input about calls a person approved: state to the
    /// tool, its argument digest, and when the chance to continue ends.
    continuations: HashMap<String, (String, String, Instant)>,
}

impl Allowances {
    pub fn allow_tool(&mut self, tool: &str) {
        self.tools.insert(tool.to_owned());
    }

    pub fn allows_tool(&self, tool: &str) -> bool {
        self.tools.contains(tool)
    }

    /// The server asked for more input (handing out `state`) about a call a person approved.
    pub fn continues(&mut self, state: String, tool: String, digest: String, ttl: Duration, now: Instant) {
        self.continuations.retain(|_, (_, _, until)| *until > now);
        if self.continuations.len() < MAX_CONTINUATIONS {
            self.continuations.insert(state, (tool, digest, now + ttl));
        }
    }

    /// Whether a call carrying the server's `state` continues an approved call with this tool
    /// and these arguments; a state continues once.
    pub fn continuation(
        &mut self,
        state: &str,
        tool: &str,
        arguments: &serde_json::Map<String, Value>,
        now: Instant,
    ) -> bool {
        let Some((t, digest, until)) = self.continuations.get(state) else { return false };
        let matches = t == tool && *digest == request_state::digest(arguments) && *until > now;
        if matches {
            self.continuations.remove(state);
        }
        matches
    }
}
