//! Asking inside 2026-07-28 clients: a call that needs a yes is answered with an input-required
//! result carrying toolgate's form and a protected `requestState`; the retry with the answer
//! runs the call once, without toolgate's state, and a forged, altered, replayed or expired
//! state never gets a call through. A server's own input requests and state pass untouched, and
//! its follow-up to a call a person approved (with edited arguments, here) is not asked again.

use crate::common::approvers::{answer, event};
use crate::common::*;
use serde_json::{Value, json};

const KEY: &str = "io.toolgate/approval";

struct Setup {
    peer: Peer,
    fake: FakeServer,
}

/// toolgate in front of the fake server (recording what it receives); `echo` needs a yes, asked
/// for at most `timeout`.
fn start(timeout: &str) -> Setup {
    let policy = format!(
        "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"{timeout}\"\n\
         [[rules]]\nname = \"echo needs a yes\"\ntools = [\"echo\"]\ntier = \"high\"\nreason = \"test\"\n"
    );
    let fake = FakeServer::new();
    let peer = Peer::start(fake.toolgate(&policy, &["--name", "test"], &["--record", &fake.record_file()]));
    Setup { peer, fake }
}

fn meta(elicitation: bool) -> Value {
    let mut caps = json!({});
    if elicitation {
        caps["elicitation"] = json!({"form": {}});
    }
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": caps})
}

fn echo(peer: &mut Peer, id: i64, text: &str, extra: Value) -> Value {
    let mut params = json!({"name": "echo", "arguments": {"text": text}, "_meta": meta(true)});
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    peer.request(id, "tools/call", params)
}

fn allow(state: &Value) -> Value {
    json!({"requestState": state, "inputResponses": {KEY: {"action": "accept", "content": {"toolgate_decision": "allow_once"}}}})
}

/// The calls the server received.
fn received_calls(fake: &FakeServer) -> Vec<Value> {
    fake.messages().into_iter().filter(|m| m["method"] == "tools/call").collect()
}

fn refused_because(response: &Value, why: &str) {
    assert_eq!(response["result"]["isError"], true, "{response}");
    assert_eq!(response["result"]["resultType"], "complete", "{response}");
    let text = response["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains(why), "{text}");
}

#[test]
fn the_question_comes_back_as_input_required_and_the_answer_runs_the_call_once() {
    let mut s = start("30s");
    let first = echo(&mut s.peer, 1, "hello", json!({}));
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    let question = &result["inputRequests"][KEY];
    assert_eq!(question["method"], "elicitation/create");
    assert!(question["params"]["message"].as_str().unwrap().starts_with("toolgate"));
    assert!(question["params"]["message"].as_str().unwrap().contains("echo"));
    assert!(question["params"]["requestedSchema"]["properties"]["toolgate_decision"].is_object());
    let state = &result["requestState"];
    assert!(state.as_str().unwrap().starts_with("toolgate.1."));
    assert!(received_calls(&s.fake).is_empty(), "nothing reaches the server before the answer");

    let mut retry = allow(state);
    retry["inputResponses"]["server-key"] = json!({"action": "accept", "content": {"x": 1}});
    let ran = echo(&mut s.peer, 2, "hello", retry);
    assert_eq!(ran["result"]["content"][0]["text"], "{\"text\": \"hello\"}", "{ran}");
    let calls = received_calls(&s.fake);
    assert_eq!(calls.len(), 1);
    let params = &calls[0]["params"];
    assert!(params.get("requestState").is_none(), "toolgate's state never reaches the server: {params}");
    assert_eq!(params["inputResponses"], json!({"server-key": {"action": "accept", "content": {"x": 1}}}));
    let audit = audit_decisions(&s.fake.audit());
    assert_eq!((audit[0]["verdict"].as_str(), audit[0]["channel"].as_str()), (Some("asked"), Some("elicitation")));
    assert_eq!((audit[1]["decided_by"].as_str(), audit[1]["channel"].as_str()), (Some("human"), Some("elicitation")));

    // The same state again is a replay.
    refused_because(&echo(&mut s.peer, 3, "hello", allow(state)), "already used");
    assert_eq!(received_calls(&s.fake).len(), 1);
}

#[test]
fn altered_forged_and_expired_states_never_get_a_call_through() {
    let mut s = start("30s");
    let state = echo(&mut s.peer, 1, "hello", json!({}))["result"]["requestState"].clone();
    // Other arguments under the same state.
    refused_because(&echo(&mut s.peer, 2, "rm -rf /", allow(&state)), "another call");
    // A state edited by hand.
    let mut edited = state.as_str().unwrap().to_owned();
    edited.insert(12, 'A');
    refused_because(&echo(&mut s.peer, 3, "hello", allow(&json!(edited))), "not valid");
    // A made-up state.
    refused_because(&echo(&mut s.peer, 4, "hello", allow(&json!("toolgate.1.e30.AAAA"))), "not valid");
    // Declined, cancelled or unreadable answers deny.
    for (id, response) in [
        (5, json!({"action": "decline"})),
        (7, json!({"action": "cancel"})),
        (9, json!({"action": "accept", "content": {"toolgate_decision": "yes please"}})),
        (11, json!("garbage")),
    ] {
        let state = echo(&mut s.peer, id, "hello", json!({}))["result"]["requestState"].clone();
        let answer = json!({"requestState": state, "inputResponses": {KEY: response}});
        let refused = echo(&mut s.peer, id + 1, "hello", answer);
        assert_eq!(refused["result"]["isError"], true, "{refused}");
    }
    assert!(received_calls(&s.fake).is_empty());

    // With no time to answer, the state is expired from the moment it is issued: the retry is
    // refused however soon it comes.
    let mut s = start("0s");
    let state = echo(&mut s.peer, 1, "hello", json!({}))["result"]["requestState"].clone();
    assert!(state.as_str().is_some_and(|s| s.starts_with("toolgate.1.")), "a question was asked: {state}");
    refused_because(&echo(&mut s.peer, 2, "hello", allow(&state)), "expired");
    assert!(received_calls(&s.fake).is_empty());
}

/// A state's payload and MAC, each decoded (`toolgate.1.<payload>.<mac>`, base64url).
fn parts(state: &str) -> (Value, Vec<u8>) {
    use base64::Engine;
    let (payload, mac) = state.strip_prefix("toolgate.1.").unwrap().split_once('.').unwrap();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(mac).unwrap();
    (serde_json::from_slice(&payload).unwrap(), mac)
}

fn sealed(payload: &Value, mac: &[u8]) -> Value {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    json!(format!("toolgate.1.{}.{}", b64.encode(payload.to_string()), b64.encode(mac)))
}

#[test]
fn a_well_formed_state_with_a_wrong_mac_is_refused_and_the_call_never_runs() {
    use base64::Engine;
    // Each forgery below decodes as toolgate's own state would and names this very call,
    // unexpired and unused: only its MAC is wrong.
    let mut s = start("30s");
    let state = echo(&mut s.peer, 1, "hello", json!({}))["result"]["requestState"].clone();
    let (payload, mut mac) = parts(state.as_str().unwrap());
    assert_eq!((payload["s"].as_str(), payload["t"].as_str(), mac.len()), (Some("test"), Some("echo"), 32));
    // The genuine payload, byte for byte, under a MAC with one bit flipped.
    mac[0] ^= 1;
    let genuine_payload = state.as_str().unwrap().rsplit_once('.').unwrap().0;
    let flipped = format!("{genuine_payload}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac));
    refused_because(&echo(&mut s.peer, 2, "hello", allow(&json!(flipped))), "signature does not match");
    mac[0] ^= 1;
    // A payload with its expiry pushed back, under the genuine MAC.
    let mut later = payload.clone();
    later["e"] = json!(payload["e"].as_u64().unwrap() + 3_600_000);
    refused_because(&echo(&mut s.peer, 3, "hello", allow(&sealed(&later, &mac))), "signature does not match");
    assert!(received_calls(&s.fake).is_empty(), "no forgery reached the server");
    let audit = audit_decisions(&s.fake.audit());
    let notes: Vec<&str> = audit[1..].iter().map(|d| d["note"].as_str().unwrap()).collect();
    assert_eq!(notes, ["requestState rejected: its signature does not match (it was altered or forged)"; 2]);

    // The genuine state, still unused, runs the call: the forgeries differed from it only in
    // what the MAC protects.
    assert_eq!(echo(&mut s.peer, 4, "hello", allow(&state))["result"]["content"][0]["text"], "{\"text\": \"hello\"}");
    assert_eq!(received_calls(&s.fake).len(), 1);

    // A state issued with no time to answer, its expiry pushed back under the genuine MAC.
    let mut s = start("0s");
    let state = echo(&mut s.peer, 1, "hello", json!({}))["result"]["requestState"].clone();
    let (mut payload, mac) = parts(state.as_str().unwrap());
    payload["e"] = json!(payload["e"].as_u64().unwrap() + 3_600_000);
    refused_because(&echo(&mut s.peer, 2, "hello", allow(&sealed(&payload, &mac))), "signature does not match");
    assert!(received_calls(&s.fake).is_empty());
}

#[test]
fn a_client_without_elicitation_is_refused_at_once_and_a_servers_own_state_passes_untouched() {
    let mut s = start("30s");
    let params = json!({"name": "echo", "arguments": {"text": "hi"}, "_meta": meta(false)});
    let refused = s.peer.request(1, "tools/call", params);
    refused_because(&refused, "toolgate approve");

    // A state that is not toolgate's is the server's: the call is decided as usual (here:
    // asked), and the server's state and answers come back to it with the approved retry.
    let server_answer = json!({"server-key": {"action": "accept", "content": {"x": 1}}});
    let theirs =
        echo(&mut s.peer, 2, "hello", json!({"requestState": "server-state-1", "inputResponses": server_answer}));
    let ours = theirs["result"]["requestState"].clone();
    assert!(ours.as_str().unwrap().starts_with("toolgate.1."), "{theirs}");
    assert_eq!(echo(&mut s.peer, 3, "hello", allow(&ours))["result"]["content"][0]["text"], "{\"text\": \"hello\"}");
    let calls = received_calls(&s.fake);
    assert_eq!(calls[0]["params"]["requestState"], "server-state-1");
    assert_eq!(calls[0]["params"]["inputResponses"], server_answer);
    let allowed_low = s.peer.request(
        4,
        "tools/call",
        json!({"name": "big", "arguments": {}, "requestState": "server-state-2", "inputResponses": {"k": {"action": "decline"}}, "_meta": meta(true)}),
    );
    assert!(allowed_low.get("result").is_some() || allowed_low.get("error").is_some());
    let calls = received_calls(&s.fake);
    let last = &calls.last().unwrap()["params"];
    assert_eq!(last["requestState"], "server-state-2");
    assert_eq!(last["inputResponses"], json!({"k": {"action": "decline"}}));
}

#[test]
fn the_servers_follow_up_continues_the_edited_call_that_ran_and_not_the_original() {
    let policy = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"30s\"\ndesktop_notifications = false\n\
         [[rules]]\nname = \"confirm needs a yes\"\ntools = [\"confirm\"]\ntier = \"high\"\n";
    let fake = FakeServer::new();
    let mut peer = Peer::start(fake.toolgate(policy, &["--name", "fake"], &["--record", &fake.record_file()]));
    // A live approver: the 2026-07-28 call is held and offered there, where it can be edited.
    let mut approver = fake.env.approver();
    event(&approver, "connected");
    let confirm = |peer: &mut Peer, id: i64, text: &str, extra: Value| {
        let mut params = json!({"name": "confirm", "arguments": {"text": text}, "_meta": meta(true)});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}));
    };

    confirm(&mut peer, 1, "original", json!({}));
    let offered = event(&approver, "offered");
    assert_eq!(offered["approval"]["arguments"], json!({"text": "original"}));
    let edit = json!({"proxy": offered["proxy"], "ticket": offered["approval"]["ticket"], "decision": "edit",
        "arguments": {"text": "edited"}});
    approver.send(&edit);
    // The edited call ran, and the server asks the client for more input about it.
    let asked = peer.response(&json!(1));
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
    let state = asked["result"]["requestState"].clone();
    assert!(state.as_str().unwrap().starts_with("fake-state-"), "{state}");
    let retry = json!({"requestState": state, "inputResponses": {"sure": {"action": "accept", "content": {}}}});

    // The client's retry with the original arguments did not run: it is asked about again.
    confirm(&mut peer, 2, "original", retry.clone());
    let again = event(&approver, "offered");
    assert_eq!(again["approval"]["arguments"], json!({"text": "original"}));
    answer(&mut approver, &again, "deny", Some("not the original"));
    let refused = peer.response(&json!(2));
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    // The retry with the edited arguments, which ran, continues without asking again.
    confirm(&mut peer, 3, "edited", retry);
    let ran = peer.response(&json!(3));
    assert_eq!(ran["result"]["content"][0]["text"], "{\"text\": \"edited\"}", "{ran}");

    let calls: Vec<Value> = received_calls(&fake).iter().map(|c| c["params"]["arguments"].clone()).collect();
    assert_eq!(calls, [json!({"text": "edited"}), json!({"text": "edited"})], "the original never reached the server");
    peer.close_stdin();
    peer.wait();
    let decisions = audit_decisions(&fake.audit());
    let seen: Vec<(&str, &str)> =
        decisions.iter().map(|d| (d["verdict"].as_str().unwrap(), d["note"].as_str().unwrap_or_default())).collect();
    assert_eq!(
        seen,
        [
            ("forwarded", "the person edited the arguments"),
            ("refused", "not the original"),
            ("forwarded", "continues a call a person approved (the server asked the client for more input)"),
        ]
    );
    assert_eq!(decisions[0]["edited_arguments"], json!({"text": "edited"}));
}
