//! Asking inside 2026-07-28 clients: the approval question travels in an input-required result,
//! and the client's retry carries the answer and the `requestState` toolgate gave it.
//!
//! The state is the only thing that ties the retry to the question, and the client (or anything
//! between it and toolgate) could change it, so toolgate protects it: a keyed MAC (HMAC-SHA256
//! with a key drawn at start and never written anywhere) over the server, the tool, a digest of
//! the arguments, an expiry and a nonce. A state is good once: the nonce is remembered from the
//! moment it is issued until it is used or expires.
//!
//! A call that needs a yes may itself be a retry of the server's own input request, carrying the
//! server's `requestState` and `inputResponses`. The client can send back only one state, so
//! toolgate's state carries the server's (under the same MAC) and the retry gets it back.
//!
//! Format: `toolgate.1.<payload>.<mac>`, both parts base64url without padding; the payload is
//! JSON `{"s": server, "t": tool, "d": argument digest (hex), "e": expiry (unix ms), "n": nonce,
//! "c": the server's state and responses the call carried (optional)}`.
//!
//! The sealer reads no clock: [`Sealer::seal`] and [`Sealer::open`] take the current time (unix
//! ms, [`now_ms`] at the proxy's edge), so whether a state has expired is a function of the times
//! given. A state sealed at `t` with a time to live `ttl` opens before `t + ttl` and is expired
//! from `t + ttl` on; with a `ttl` of zero it is expired from the start.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

/// Every toolgate state begins with this; a state that does not is the server's.
pub const PREFIX: &str = "toolgate.1.";

/// The key under which toolgate's question sits in `inputRequests` and its answer in
/// `inputResponses`.
pub const INPUT_KEY: &str = "io.toolgate/approval";

/// Outstanding states kept at most; the oldest are forgotten first (and then refused).
const MAX_OUTSTANDING: usize = 4096;

/// Why a state was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("it is not a state toolgate issued")]
    Malformed,
    #[error("its signature does not match (it was altered or forged)")]
    Forged,
    #[error("it was issued for another call (the tool or its arguments changed)")]
    OtherCall,
    #[error("it expired")]
    Expired,
    #[error("it was already used")]
    Replayed,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    s: String,
    t: String,
    d: String,
    e: u64,
    n: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<Value>,
}

/// Issues and checks toolgate's states for one process.
pub struct Sealer {
    key: [u8; 32],
    /// Nonces issued and not yet used, with their expiry (unix ms).
    outstanding: HashMap<u64, u64>,
    next_nonce: u64,
}

impl Sealer {
    #[expect(clippy::new_without_default, reason = "a new sealer draws a secret key; `default()` would hide that")]
    pub fn new() -> Sealer {
        let mut key = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut key) {
            // Without randomness the key would be guessable; no state can be trusted then.
            tracing::error!("cannot draw a random key ({e}); approvals inside 2026-07-28 clients will be refused");
        }
        let mut start = [0u8; 8];
        let _ = getrandom::fill(&mut start);
        Sealer { key, outstanding: HashMap::new(), next_nonce: u64::from_le_bytes(start) >> 1 }
    }

    fn usable(&self) -> bool {
        self.key != [0u8; 32]
    }

    /// A state for a question about this call, issued at `now` (unix ms) and good for `ttl`
    /// (whole milliseconds), carrying `carried` (what of the server's own the call brought) back
    /// to the retry.
    pub fn seal(
        &mut self,
        server: &str,
        tool: &str,
        arguments: &Map<String, Value>,
        ttl: Duration,
        carried: Option<Value>,
        now: u64,
    ) -> String {
        self.outstanding.retain(|_, expiry| *expiry > now);
        if self.outstanding.len() >= MAX_OUTSTANDING
            && let Some(oldest) = self.outstanding.iter().min_by_key(|(_, e)| **e).map(|(n, _)| *n)
        {
            self.outstanding.remove(&oldest);
        }
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        let expiry = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        self.outstanding.insert(nonce, expiry);
        let payload =
            Payload { s: server.to_owned(), t: tool.to_owned(), d: digest(arguments), e: expiry, n: nonce, c: carried };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap_or_default());
        let mac = URL_SAFE_NO_PAD.encode(self.mac(payload.as_bytes()));
        format!("{PREFIX}{payload}.{mac}")
    }

    /// Checks a state against the call that carries it at `now` (unix ms), and uses it up;
    /// returns what it carried. A state is expired from its expiry on.
    pub fn open(
        &mut self,
        state: &str,
        server: &str,
        tool: &str,
        arguments: &Map<String, Value>,
        now: u64,
    ) -> Result<Option<Value>, Rejected> {
        if !self.usable() {
            return Err(Rejected::Forged);
        }
        let rest = state.strip_prefix(PREFIX).ok_or(Rejected::Malformed)?;
        let (payload_text, mac_text) = rest.split_once('.').ok_or(Rejected::Malformed)?;
        let mac = URL_SAFE_NO_PAD.decode(mac_text).map_err(|_| Rejected::Malformed)?;
        let mut check = self.hmac();
        check.update(payload_text.as_bytes());
        check.verify_slice(&mac).map_err(|_| Rejected::Forged)?;
        let payload = URL_SAFE_NO_PAD.decode(payload_text).map_err(|_| Rejected::Malformed)?;
        let payload: Payload = serde_json::from_slice(&payload).map_err(|_| Rejected::Malformed)?;
        if payload.s != server || payload.t != tool || payload.d != digest(arguments) {
            return Err(Rejected::OtherCall);
        }
        if payload.e <= now {
            self.outstanding.remove(&payload.n);
            return Err(Rejected::Expired);
        }
        self.outstanding.remove(&payload.n).ok_or(Rejected::Replayed)?;
        Ok(payload.c)
    }

    fn hmac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes a key of any length")
    }

    fn mac(&self, bytes: &[u8]) -> Vec<u8> {
        let mut mac = self.hmac();
        mac.update(bytes);
        mac.finalize().into_bytes().to_vec()
    }
}

/// Whether a `requestState` is toolgate's (it may still be forged; [`Sealer::open`] decides).
pub fn is_toolgates(state: &str) -> bool {
    state.starts_with(PREFIX)
}

/// The current time as the sealer counts it (unix ms), read at the proxy's edge.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A digest of the arguments that does not depend on the order of their keys.
pub fn digest(arguments: &Map<String, Value>) -> String {
    crate::wire::canonical::sha256_hex(&Value::Object(arguments.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A moment to seal at (unix ms); the tests choose every time they pass.
    const T: u64 = 1_795_479_600_000;
    const MINUTE: Duration = Duration::from_secs(60);

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_state_opens_once_for_its_own_call() {
        let mut sealer = Sealer::new();
        let a = args(json!({"to": "ACME", "amount": 1200}));
        let state = sealer.seal("bank", "pay", &a, MINUTE, None, T);
        assert!(is_toolgates(&state));
        let reordered = args(json!({"amount": 1200, "to": "ACME"}));
        assert_eq!(sealer.open(&state, "bank", "pay", &reordered, T), Ok(None));
        let carried = json!({"requestState": "theirs"});
        let state2 = sealer.seal("bank", "pay", &a, MINUTE, Some(carried.clone()), T);
        assert_eq!(sealer.open(&state2, "bank", "pay", &a, T + 1), Ok(Some(carried)));
        assert_eq!(sealer.open(&state, "bank", "pay", &a, T + 2), Err(Rejected::Replayed));
    }

    #[test]
    fn changed_calls_and_forged_states_are_rejected() {
        let mut sealer = Sealer::new();
        let a = args(json!({"to": "ACME", "amount": 1200}));
        let state = sealer.seal("bank", "pay", &a, MINUTE, None, T);
        let more = args(json!({"to": "ACME", "amount": 120000}));
        assert_eq!(sealer.open(&state, "bank", "pay", &more, T), Err(Rejected::OtherCall));
        assert_eq!(sealer.open(&state, "bank", "refund", &a, T), Err(Rejected::OtherCall));
        assert_eq!(sealer.open(&state, "other-bank", "pay", &a, T), Err(Rejected::OtherCall));

        // A payload rewritten to match other arguments no longer matches its MAC.
        let (_, mac) = state.rsplit_once('.').unwrap();
        let forged_payload =
            Payload { s: "bank".into(), t: "pay".into(), d: digest(&more), e: u64::MAX, n: 1, c: None };
        let forged = format!("{PREFIX}{}.{mac}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_payload).unwrap()));
        assert_eq!(sealer.open(&forged, "bank", "pay", &more, T), Err(Rejected::Forged));
        // Another process's key signs states this one does not accept.
        let other = Sealer::new().seal("bank", "pay", &a, MINUTE, None, T);
        assert_eq!(sealer.open(&other, "bank", "pay", &a, T), Err(Rejected::Forged));
        assert_eq!(sealer.open("toolgate.1.garbage", "bank", "pay", &a, T), Err(Rejected::Malformed));
        // The first state is still good after all that.
        assert_eq!(sealer.open(&state, "bank", "pay", &a, T), Ok(None));
    }

    #[test]
    fn a_state_that_decodes_and_names_its_call_is_refused_for_its_mac_alone() {
        let mut sealer = Sealer::new();
        let a = args(json!({"to": "ACME", "amount": 1200}));
        let state = sealer.seal("bank", "pay", &a, MINUTE, None, T);
        let (payload, mac) = state.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        let mut mac = URL_SAFE_NO_PAD.decode(mac).unwrap();
        mac[0] ^= 1;
        let flipped = format!("{PREFIX}{payload}.{}", URL_SAFE_NO_PAD.encode(&mac));
        // Everything but the MAC is the genuine state's: it decodes, and names this call.
        let decoded: Payload = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!((decoded.s.as_str(), decoded.t.as_str(), decoded.d), ("bank", "pay", digest(&a)));
        assert_eq!(mac.len(), 32);
        assert_eq!(sealer.open(&flipped, "bank", "pay", &a, T), Err(Rejected::Forged));
        // The same payload sealed under another key is no better.
        let mut other = <Hmac<Sha256> as KeyInit>::new_from_slice(&[7; 32]).unwrap();
        other.update(payload.as_bytes());
        let resealed = format!("{PREFIX}{payload}.{}", URL_SAFE_NO_PAD.encode(other.finalize().into_bytes()));
        assert_eq!(sealer.open(&resealed, "bank", "pay", &a, T), Err(Rejected::Forged));
        // Neither used the state up.
        assert_eq!(sealer.open(&state, "bank", "pay", &a, T), Ok(None));
    }

    #[test]
    fn a_state_opens_until_the_millisecond_before_its_expiry_and_never_from_its_expiry_on() {
        let mut sealer = Sealer::new();
        let a = args(json!({"to": "ACME", "amount": 1200}));
        let expiry = T + 60_000;
        let last_chance = sealer.seal("bank", "pay", &a, MINUTE, None, T);
        assert_eq!(sealer.open(&last_chance, "bank", "pay", &a, expiry - 1), Ok(None));
        let too_late = sealer.seal("bank", "pay", &a, MINUTE, None, T);
        assert_eq!(sealer.open(&too_late, "bank", "pay", &a, expiry), Err(Rejected::Expired));
        // Once refused as expired it stays refused, even presented at an earlier time.
        assert_eq!(sealer.open(&too_late, "bank", "pay", &a, T), Err(Rejected::Replayed));
        let much_later = sealer.seal("bank", "pay", &a, MINUTE, None, T);
        assert_eq!(sealer.open(&much_later, "bank", "pay", &a, u64::MAX), Err(Rejected::Expired));
    }

    #[test]
    fn a_state_with_no_time_to_live_is_expired_from_the_moment_it_is_sealed() {
        let mut sealer = Sealer::new();
        let a = args(json!({"to": "ACME", "amount": 1200}));
        let state = sealer.seal("bank", "pay", &a, Duration::ZERO, None, T);
        assert_eq!(sealer.open(&state, "bank", "pay", &a, T), Err(Rejected::Expired));
        // A time to live under a millisecond counts as none.
        let state = sealer.seal("bank", "pay", &a, Duration::from_micros(999), None, T);
        assert_eq!(sealer.open(&state, "bank", "pay", &a, T), Err(Rejected::Expired));
    }

    #[test]
    fn expired_states_are_forgotten_when_the_next_one_is_sealed() {
        let mut sealer = Sealer::new();
        let a = args(json!({"to": "ACME", "amount": 1200}));
        sealer.seal("bank", "pay", &a, MINUTE, None, T);
        sealer.seal("bank", "pay", &a, MINUTE * 2, None, T);
        assert_eq!(sealer.outstanding.len(), 2);
        sealer.seal("bank", "pay", &a, MINUTE, None, T + 60_000);
        assert_eq!(sealer.outstanding.len(), 2, "the first state expired at T + 60 s and is forgotten");
    }
}
