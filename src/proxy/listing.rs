//! toolgate's own `tools/list`. A call's arguments are judged against the schema its tool was
//! listed with (`conformity.rs`). A client that calls a tool before listing the tools (or after
//! the server said they changed) has not let toolgate see that schema, so toolgate asks the
//! server itself, every page, while the call waits; then the call is decided. The answers are
//! toolgate's and never reach the client; they teach toolgate the tools as a client's listing
//! does (schemas, annotations, pinning).
//!
//! The request ids are `toolgate-list-N`, numbered per session (and never one the client has in
//! flight), so that a recorded session replays the same way.

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::Inbound;
use super::gate;
use super::session::Session;
use crate::wire::{Envelope, Id};

/// How long the server has to answer one page of toolgate's listing.
const PAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Pages followed at most in one listing (a server that always hands out another cursor must
/// not hold calls forever).
const MAX_PAGES: u32 = 100;

/// A call waiting for the listing.
struct Waiting {
    id: Id,
    env: Envelope,
    inbound: Inbound,
}

/// toolgate's listing in flight, and the calls waiting for it.
#[derive(Default)]
pub(super) struct Listing {
    next: u64,
    /// The page requested, when it must be answered, and how many pages came before it.
    in_flight: Option<(Id, Instant, u32)>,
    waiting: Vec<Waiting>,
    /// The `_meta` a 2026-07-28 call carried (its protocol version and client capabilities),
    /// which toolgate's own request must carry too.
    meta: Option<Map<String, Value>>,
}

impl Listing {
    /// Whether a response from the server answers toolgate's listing.
    pub fn is_ours(&self, id: &Id) -> bool {
        self.in_flight.as_ref().is_some_and(|(ours, _, _)| ours == id)
    }

    /// When the page in flight must have been answered.
    pub fn deadline(&self) -> Option<Instant> {
        self.in_flight.as_ref().map(|(_, at, _)| *at)
    }
}

/// Holds a call until toolgate has listed the server's tools, starting the listing if none is
/// in flight.
pub(super) fn wait(session: &mut Session, id: Id, env: Envelope, inbound: Inbound, meta: Option<&Map<String, Value>>) {
    session.listing.waiting.push(Waiting { id, env, inbound });
    if session.listing.in_flight.is_none() {
        session.listing.meta = meta.map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("io.modelcontextprotocol/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        tracing::info!("a call came before the server's tools were listed; toolgate lists them to check its arguments");
        request_page(session, None, 0);
    }
}

fn request_page(session: &mut Session, cursor: Option<&str>, pages: u32) {
    let id = loop {
        session.listing.next += 1;
        let id = Id::Str(format!("toolgate-list-{}", session.listing.next));
        if !session.pending.contains_key(&id) {
            break id;
        }
    };
    let mut params = Map::new();
    if let Some(cursor) = cursor {
        params.insert("cursor".into(), Value::from(cursor));
    }
    if let Some(meta) = session.listing.meta.as_ref().filter(|m| !m.is_empty()) {
        params.insert("_meta".into(), Value::Object(meta.clone()));
    }
    let message = json!({"jsonrpc": "2.0", "id": id.to_value(), "method": "tools/list", "params": params});
    let mut line = message.to_string().into_bytes();
    line.push(b'\n');
    if let Some(recorder) = &mut session.recorder {
        recorder.message("c2s", &line, false);
    }
    session.listing.in_flight = Some((id, session.now + PAGE_TIMEOUT, pages));
    session.send_server(line);
}

/// The server answered a page of toolgate's listing.
pub(super) fn answered(session: &mut Session, line: &[u8]) {
    let Some((_, _, pages)) = session.listing.in_flight.take() else { return };
    let message: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
    let Some(result) = message.get("result") else {
        let why = match message.get("error") {
            Some(e) => format!("it answered toolgate's tools/list with an error: {e}"),
            None => "its answer to toolgate's tools/list could not be read".to_owned(),
        };
        return finish(session, Some(why));
    };
    let tools: Vec<Value> = result.get("tools").and_then(Value::as_array).cloned().unwrap_or_default();
    let cursor = result.get("nextCursor").and_then(Value::as_str).map(str::to_owned);
    session.learn_tools(&tools, pages == 0, cursor.is_none());
    match cursor {
        Some(cursor) if pages + 1 < MAX_PAGES => request_page(session, Some(&cursor), pages + 1),
        Some(_) => finish(session, Some(format!("its tools/list went on for more than {MAX_PAGES} pages"))),
        None => finish(session, None),
    }
}

/// The page in flight was not answered in time.
pub(super) fn timed_out(session: &mut Session) {
    if session.listing.deadline().is_some_and(|at| at <= session.now) {
        session.listing.in_flight = None;
        let why = format!("it did not answer toolgate's tools/list within {}s", PAGE_TIMEOUT.as_secs());
        finish(session, Some(why));
    }
}

/// The client withdrew a call that waits for the listing: it is recorded and dropped, unanswered,
/// and the server never sees it.
pub(super) fn cancelled(session: &mut Session, request: &Id) -> bool {
    let Some(at) = session.listing.waiting.iter().position(|w| w.id == *request) else { return false };
    let Waiting { id, env, inbound } = session.listing.waiting.remove(at);
    gate::withdrawn_while_listing(session, id, env, inbound);
    true
}

/// The listing is over: the waiting calls are decided now (where it failed, what their tools
/// are cannot be known, and `[settings] arguments` says what that means).
fn finish(session: &mut Session, failure: Option<String>) {
    if let Some(why) = &failure {
        tracing::warn!("the server's tools could not be listed: {why}");
    }
    for Waiting { id, env, inbound } in std::mem::take(&mut session.listing.waiting) {
        gate::call_listed(session, id, env, inbound, failure.clone());
    }
}
