//! toolgate asking a person about a call to its own demo server: the payment the tests' policies
//! ask about and, when toolgate asks inside the client (`elicitation/create`), its question and
//! the client's answer.

use serde_json::{Value, json};

use super::Peer;

/// The demo server's `send_payment` of 1200 to ACME, sent without waiting for its answer.
pub fn pay(peer: &mut Peer, id: i64) {
    peer.send_call(id, "send_payment", json!({"to": "ACME", "amount": 1200}));
}

/// The next message, which must be toolgate's elicitation.
pub fn question(peer: &Peer) -> Value {
    let msg = peer.recv();
    assert_eq!(msg["method"], "elicitation/create", "{msg}");
    msg
}

/// Answers `question` with this `result`.
pub fn answer(peer: &mut Peer, question: &Value, result: Value) {
    peer.send(&json!({"jsonrpc": "2.0", "id": question["id"], "result": result}));
}

/// The result that accepts a question with this `toolgate_decision`.
pub fn accept(decision: &str) -> Value {
    json!({"action": "accept", "content": {"toolgate_decision": decision}})
}
