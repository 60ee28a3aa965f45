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
use super::session::Session;
use crate::wire::{Envelope, Id};

/// How long the server has to answer one page of toolgate's listing.
const PAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Pages followed at most in one listing (a server that always hands out another cursor must
/// not hold calls forever).
const MAX_PAGES: u32 = 100;

/// A call waiting for the listing, as it arrived.
pub(super) struct Unlisted {
    pub id: Id,
    pub env: Envelope,
    pub inbound: Inbound,
    /// The `_meta` it carried.
    pub meta: Option<Map<String, Value>>,
}

/// A page of the server's answer to toolgate's listing.
pub(super) struct Page {
    pub tools: Vec<Value>,
    /// It is the first page.
    pub first: bool,
    /// The cursor to the next page, if there is one.
    pub cursor: Option<String>,
    /// Pages before it.
    pages: u32,
}

/// toolgate's listing in flight, and the calls waiting for it.
#[derive(Default)]
pub(super) struct Listing {
    next: u64,
    /// The page requested, when it must be answered, and how many pages came before it.
    in_flight: Option<(Id, Instant, u32)>,
    waiting: Vec<Unlisted>,
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

    /// Holds a call until toolgate has listed the server's tools, starting the listing if none
    /// is in flight.
    pub fn wait(&mut self, session: &mut Session, call: Unlisted) {
        let starts = self.in_flight.is_none();
        if starts {
            // Only the protocol's own keys: toolgate's request speaks for no one else.
            self.meta = call.meta.as_ref().map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with("io.modelcontextprotocol/"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            });
        }
        self.waiting.push(call);
        if starts {
            tracing::info!(
                "a call came before the server's tools were listed; toolgate lists them to check its arguments"
            );
            self.request_page(session, None, 0);
        }
    }

    fn request_page(&mut self, session: &mut Session, cursor: Option<&str>, pages: u32) {
        let id = loop {
            self.next += 1;
            let id = Id::Str(format!("toolgate-list-{}", self.next));
            if !session.pending.contains_key(&id) {
                break id;
            }
        };
        let mut params = Map::new();
        if let Some(cursor) = cursor {
            params.insert("cursor".into(), Value::from(cursor));
        }
        if let Some(meta) = self.meta.as_ref().filter(|m| !m.is_empty()) {
            params.insert("_meta".into(), Value::Object(meta.clone()));
        }
        let message = json!({"jsonrpc": "2.0", "id": id.to_value(), "method": "tools/list", "params": params});
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        if let Some(recorder) = &mut session.recorder {
            recorder.message("c2s", &line, false);
        }
        self.in_flight = Some((id, session.now + PAGE_TIMEOUT, pages));
        session.send_server(line);
    }

    /// The server answered the page in flight: its tools, or why the listing failed. `None`
    /// when no page was in flight.
    pub fn answered(&mut self, line: &[u8]) -> Option<Result<Page, String>> {
        let (_, _, pages) = self.in_flight.take()?;
        let message: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
        let Some(result) = message.get("result") else {
            return Some(Err(match message.get("error") {
                Some(e) => format!("it answered toolgate's tools/list with an error: {e}"),
                None => "its answer to toolgate's tools/list could not be read".to_owned(),
            }));
        };
        let tools: Vec<Value> = result.get("tools").and_then(Value::as_array).cloned().unwrap_or_default();
        let cursor = result.get("nextCursor").and_then(Value::as_str).map(str::to_owned);
        Some(Ok(Page { tools, first: pages == 0, cursor, pages }))
    }

    /// After a page is learned: asks for the next one, or says the listing is over (`Some`,
    /// with why it failed, if it did).
    pub fn go_on(&mut self, session: &mut Session, page: Page) -> Option<Option<String>> {
        match page.cursor {
            Some(cursor) if page.pages + 1 < MAX_PAGES => {
                self.request_page(session, Some(&cursor), page.pages + 1);
                None
            }
            Some(_) => Some(Some(format!("its tools/list went on for more than {MAX_PAGES} pages"))),
            None => Some(None),
        }
    }

    /// Why the listing failed, if the page in flight was not answered by `now`.
    pub fn timed_out(&mut self, now: Instant) -> Option<String> {
        if self.deadline().is_none_or(|at| at > now) {
            return None;
        }
        self.in_flight = None;
        Some(format!("it did not answer toolgate's tools/list within {}s", PAGE_TIMEOUT.as_secs()))
    }

    /// The client withdrew a call that waits for the listing: it is handed back, to be recorded
    /// and dropped, unanswered; the server never sees it.
    pub fn cancelled(&mut self, request: &Id) -> Option<Unlisted> {
        let at = self.waiting.iter().position(|w| w.id == *request)?;
        Some(self.waiting.remove(at))
    }

    /// The session is ending: the calls that wait for the listing are handed back to be
    /// refused. A page in flight stays toolgate's, so that its answer never reaches the client.
    pub fn abandon(&mut self) -> Vec<Unlisted> {
        std::mem::take(&mut self.waiting)
    }

    /// The listing is over: the calls that waited for it, to be decided now (where it failed,
    /// what their tools are cannot be known, and `[settings] arguments` says what that means).
    pub fn finish(&mut self, failure: Option<&str>) -> Vec<Unlisted> {
        if let Some(why) = failure {
            tracing::warn!("the server's tools could not be listed: {why}");
        }
        std::mem::take(&mut self.waiting)
    }
}
