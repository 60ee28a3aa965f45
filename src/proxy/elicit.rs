//! Asking inside the client: MCP elicitation (protocol 2025-06-18 and 2025-11-25).
//!
//! When the client declared `elicitation` in `initialize`, a call that needs a person makes
//! toolgate send its own `elicitation/create` to the client while it holds the call. Its ids
//! carry a per-process random prefix and are checked against the server's requests in flight,
//! so they can never be confused with the server's own; a response under such an id is
//! toolgate's and never reaches the server. Answers are validated strictly: anything but an
//! accepted, well-formed form denies. A server may not pass its own elicitation off as
//! toolgate's.

use serde_json::{Value, json};

use crate::human::{self, Answer, Kind, Request};
use crate::visible::{self, visible};
use crate::wire::{Id, splice};

/// Argument values longer than this many characters are cut short in the dialog.
const SHORT: usize = 300;

/// The form's decision field.
pub const DECISION: &str = "toolgate_decision";
/// The form's optional reason field.
pub const REASON: &str = "toolgate_reason";

/// Ids for toolgate's own requests to the client.
pub struct Ids {
    prefix: String,
    next: u64,
}

impl Ids {
    pub fn new() -> Self {
        Ids { prefix: format!("toolgate-{:016x}-", random_u64()), next: 1 }
    }

    /// A fresh id, different from every id in `taken` (the server's requests in flight).
    pub fn fresh(&mut self, taken: &std::collections::HashSet<Id>) -> Id {
        loop {
            let id = Id::Str(format!("{}{}", self.prefix, self.next));
            self.next += 1;
            if !taken.contains(&id) {
                return id;
            }
        }
    }

    /// Whether an id is one toolgate issued.
    pub fn is_ours(&self, id: &Id) -> bool {
        matches!(id, Id::Str(s) if s.starts_with(&self.prefix))
    }
}

/// Whether the `initialize` params declare form elicitation.
pub fn client_can_elicit(initialize_params: &Value) -> bool {
    initialize_params.get("capabilities").is_some_and(capabilities_allow_form)
}

/// Whether client capabilities (from `initialize`, or a 2026-07-28 request's `_meta`) include
/// form elicitation.
pub fn capabilities_allow_form(capabilities: &Value) -> bool {
    match capabilities.get("elicitation") {
        // `{}` means form mode (2025-06-18); 2025-11-25 may list modes explicitly.
        Some(Value::Object(modes)) => modes.is_empty() || modes.contains_key("form"),
        _ => false,
    }
}

/// The `elicitation/create` request for a held call, as one line.
pub fn request_line(id: &Id, request: &Request, wait_secs: u64) -> Vec<u8> {
    let msg = json!({"jsonrpc": "2.0", "id": id, "method": "elicitation/create", "params": form(request, wait_secs)});
    let mut line = msg.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// The answer to a 2026-07-28 call that needs a yes: an input-required result whose one input
/// request is toolgate's form, and the state the client must send back with its answer.
pub fn input_required_line(id: &Id, request: &Request, wait_secs: u64, state: &str) -> Vec<u8> {
    let question = json!({"method": "elicitation/create", "params": form(request, wait_secs)});
    let msg = json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {
            "resultType": "input_required",
            "inputRequests": {super::request_state::INPUT_KEY: question},
            "requestState": state,
        },
    });
    let mut line = msg.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// toolgate's question about a call: the params of an `elicitation/create`.
fn form(request: &Request, wait_secs: u64) -> Value {
    // The client shows this message to a person: every name, reason and argument escaped
    // (`visible`), and a name that needed it flagged.
    let call = &request.call;
    let args = visible::to_json_pretty(&Value::Object(human::shortened(&call.arguments, SHORT, " in all")))
        .unwrap_or_default();
    let (server, tool) = (visible(&call.server), visible(&call.tool));
    let warnings: String =
        [visible::warning("The server's name", &call.server), visible::warning("The tool's name", &call.tool)]
            .into_iter()
            .flatten()
            .map(|w| format!("{w}\n"))
            .collect();
    let rules: Vec<String> = call
        .deciding()
        .map(|m| match &m.reason {
            Some(r) => format!("rule \"{}\" ({})", visible(&m.rule), visible(r)),
            None => format!("rule \"{}\"", visible(&m.rule)),
        })
        .collect();
    let why = match (&rules[..], &call.reason) {
        ([], Some(reason)) => format!("It stopped because: {}.", visible(reason)),
        ([], None) => format!("It stopped because calls like it are {} risk.", call.tier.as_str()),
        (named, _) => format!("It was stopped by {}.", named.join(", ")),
    };
    let (message, schema) = match request.kind {
        Kind::Approve => (
            format!(
                "toolgate (the approval gate in front of server \"{server}\") asks you:\n\nThe AI wants to call `{tool}` with:\n{args}\n\n{warnings}{why}\nAllow it? Unanswered, it is denied in {wait_secs}s."
            ),
            json!({
                "type": "object",
                "properties": {
                    DECISION: {
                        "type": "string",
                        "title": "Decision",
                        "enum": ["allow_once", "allow_session", "deny"],
                        "enumNames": ["Allow once", format!("Allow `{tool}` for this session"), "Deny"],
                    },
                    REASON: {"type": "string", "title": "Reason (optional; the AI reads it if you deny)"},
                },
                "required": [DECISION],
            }),
        ),
        Kind::Hold => (
            format!(
                "toolgate (the approval gate in front of server \"{server}\") tells you:\n\nThe AI's call to `{tool}` runs in {wait_secs}s unless you cancel it:\n{args}\n\n{warnings}{why}"
            ),
            json!({
                "type": "object",
                "properties": {
                    DECISION: {"type": "string", "title": "Decision", "enum": ["cancel", "run_now"], "enumNames": ["Cancel it", "Run it now"]},
                    REASON: {"type": "string", "title": "Reason (optional; the AI reads it if you cancel)"},
                },
                "required": [DECISION],
            }),
        ),
    };
    json!({"mode": "form", "message": message, "requestedSchema": schema})
}

/// `notifications/cancelled` for one of toolgate's requests.
pub fn cancel_line(id: &Id, reason: &str) -> Vec<u8> {
    let msg =
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": reason}});
    let mut line = msg.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// What a person's answer to toolgate's form means. `Err` is why it counts as a denial
/// decided by toolgate (an error or a malformed answer); `Ok(None)` on a hold means "let the
/// timer run".
pub fn read_answer(kind: Kind, line: &[u8]) -> Result<Option<Answer>, String> {
    let msg: Value = serde_json::from_slice(line).map_err(|e| format!("unreadable answer: {e}"))?;
    if let Some(error) = msg.get("error") {
        return Err(format!("the client answered with an error: {error}"));
    }
    read_result(kind, msg.get("result"))
}

/// What an elicitation result (`{action, content}`) means; as [`read_answer`].
pub fn read_result(kind: Kind, result: Option<&Value>) -> Result<Option<Answer>, String> {
    let result = result.and_then(Value::as_object).ok_or("the answer has no result object")?;
    let content = result.get("content");
    match result.get("action").and_then(Value::as_str) {
        Some("accept") => {}
        Some("decline") | Some("cancel") => {
            return Ok(match kind {
                Kind::Approve => Some(Answer::Deny { reason: None }),
                // Dismissing the notice of a hold is not cancelling the call.
                Kind::Hold => None,
            });
        }
        other => return Err(format!("the answer's action {other:?} is not accept, decline or cancel")),
    }
    let content = content.and_then(Value::as_object).ok_or("an accepted answer has no content object")?;
    if let Some(extra) = content.keys().find(|k| *k != DECISION && *k != REASON) {
        return Err(format!("the answer has an unexpected field {extra:?}"));
    }
    let reason = match content.get(REASON) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => return Err("the answer's reason is not text".into()),
    };
    let decision = content.get(DECISION).and_then(Value::as_str).ok_or("the answer has no decision")?;
    match (kind, decision) {
        (Kind::Approve, "allow_once") => Ok(Some(Answer::AllowOnce)),
        (Kind::Approve, "allow_session") => Ok(Some(Answer::AllowForSession)),
        (Kind::Approve, "deny") | (Kind::Hold, "cancel") => Ok(Some(Answer::Deny { reason })),
        (Kind::Hold, "run_now") => Ok(Some(Answer::AllowOnce)),
        (_, other) => Err(format!("the answer's decision {other:?} is not one of the offered choices")),
    }
}

/// A 2026-07-28 retry as the server must see it: toolgate's `requestState` and its entry in
/// `inputResponses` removed, and what the original call carried for the server (`carried`:
/// its `requestState` and `inputResponses`) put back. The rest of the line keeps its bytes.
pub fn restore_servers_input(line: &[u8], carried: Option<&Value>) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(line).ok()?.trim_end_matches(['\n', '\r']);
    let params = splice::member(text, "params")?;
    let state = carried.and_then(|c| c.get("requestState")).map(Value::to_string);
    let mut params = splice::set_member(params, "requestState", state.as_deref())?;
    let mut responses = match splice::member(&params, "inputResponses") {
        Some(raw) => serde_json::from_str::<serde_json::Map<String, Value>>(raw).ok()?,
        None => serde_json::Map::new(),
    };
    responses.remove(super::request_state::INPUT_KEY);
    if let Some(Value::Object(theirs)) = carried.and_then(|c| c.get("inputResponses")) {
        for (k, v) in theirs {
            responses.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let responses = (!responses.is_empty()).then(|| Value::Object(responses).to_string());
    params = splice::set_member(&params, "inputResponses", responses.as_deref())?;
    let mut out = splice::set_member(text, "params", Some(&params))?.into_bytes();
    out.push(b'\n');
    Some(out)
}

/// Whether a server's own `elicitation/create` presents itself as toolgate's.
pub fn impersonates_toolgate(params: &Value) -> bool {
    let message = params.get("message").and_then(Value::as_str).unwrap_or_default();
    // Read as a person sees it: hidden characters (a zero-width space before the name) draw nothing.
    let seen: String = message.chars().filter(|&c| !crate::visible::is_hidden(c)).collect();
    let names_toolgate = seen.trim_start().to_lowercase().starts_with("toolgate");
    let uses_our_fields = params
        .pointer("/requestedSchema/properties")
        .and_then(Value::as_object)
        .is_some_and(|p| p.keys().any(|k| k.to_lowercase().starts_with("toolgate")));
    names_toolgate || uses_our_fields
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        if f.read_exact(&mut bytes).is_ok() {
            return u64::from_le_bytes(bytes);
        }
    }
    // No /dev/urandom: the process id and the clock still make the prefix unpredictable enough
    // for ids, which are also checked against the server's requests in flight.
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(kind: Kind, result: Value) -> Result<Option<Answer>, String> {
        read_answer(kind, json!({"jsonrpc": "2.0", "id": "x", "result": result}).to_string().as_bytes())
    }

    #[test]
    fn the_question_shows_hostile_names_arguments_and_reasons_escaped_and_flags_the_names() {
        let request = Request {
            ticket: 1,
            kind: Kind::Approve,
            call: crate::decided::DecidedCall {
                server: "bank\u{202e}".into(),
                tool: "pay\r\x1b[2Kread".into(),
                arguments: json!({"to": "ACME\u{9b}2J\u{200b}"}).as_object().cloned().unwrap(),
                gate: crate::policy::Gate::Ask,
                tier: crate::policy::Tier::High,
                matched: crate::decided::DecidedCall::read_back(
                    crate::policy::Gate::Ask,
                    vec![("r\u{2066}".into(), Some("why\x1b]0;t\x07".into()))],
                ),
                reason: None,
                policy: None,
                confidence: None,
            },
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(60),
            remember: crate::policy::remember::Remember::Impossible("no".into()),
        };
        let form = form(&request, 60);
        let message = form["message"].as_str().unwrap();
        let raw: Vec<char> = message.chars().filter(|&c| visible::is_hidden(c) && c != '\n').collect();
        assert!(raw.is_empty(), "raw controls {raw:?} in: {message}");
        for shown in [
            "server \"bank\\u{202e}\"",
            "`pay\\u{d}\\u{1b}[2Kread`",
            "\"ACME\\u009b2J\\u200b\"",
            "rule \"r\\u{2066}\" (why\\u{1b}]0;t\\u{7})",
            "The server's name contains hidden or control characters",
            "The tool's name contains hidden or control characters",
        ] {
            assert!(message.contains(shown), "{shown} missing from: {message}");
        }
        let choice = form.pointer("/requestedSchema/properties/toolgate_decision/enumNames/1").unwrap();
        assert_eq!(choice, "Allow `pay\\u{d}\\u{1b}[2Kread` for this session");
    }

    #[test]
    fn accepted_answers_map_to_choices() {
        let accept = |c: Value| answer(Kind::Approve, json!({"action": "accept", "content": c}));
        assert_eq!(accept(json!({DECISION: "allow_once"})), Ok(Some(Answer::AllowOnce)));
        assert_eq!(accept(json!({DECISION: "allow_session", REASON: ""})), Ok(Some(Answer::AllowForSession)));
        assert_eq!(
            accept(json!({DECISION: "deny", REASON: " use the staging db "})),
            Ok(Some(Answer::Deny { reason: Some("use the staging db".into()) }))
        );
    }

    #[test]
    fn decline_cancel_errors_and_garbage_all_deny() {
        assert_eq!(answer(Kind::Approve, json!({"action": "decline"})), Ok(Some(Answer::Deny { reason: None })));
        assert_eq!(answer(Kind::Approve, json!({"action": "cancel"})), Ok(Some(Answer::Deny { reason: None })));
        for bad in [
            json!({"action": "accept"}),
            json!({"action": "accept", "content": {DECISION: "yes"}}),
            json!({"action": "accept", "content": {DECISION: "allow_once", "extra": 1}}),
            json!({"action": "accept", "content": {DECISION: "allow_once", REASON: 5}}),
            json!({"action": "maybe"}),
            json!("accept"),
        ] {
            assert!(answer(Kind::Approve, bad.clone()).is_err(), "{bad}");
        }
        let error = json!({"jsonrpc": "2.0", "id": "x", "error": {"code": -1, "message": "no"}}).to_string();
        assert!(read_answer(Kind::Approve, error.as_bytes()).is_err());
        assert!(read_answer(Kind::Approve, b"not json").is_err());
    }

    #[test]
    fn holds_cancel_only_on_an_explicit_cancel() {
        assert_eq!(answer(Kind::Hold, json!({"action": "decline"})), Ok(None));
        assert_eq!(
            answer(Kind::Hold, json!({"action": "accept", "content": {DECISION: "cancel"}})),
            Ok(Some(Answer::Deny { reason: None }))
        );
        assert!(answer(Kind::Hold, json!({"action": "accept", "content": {DECISION: "allow_once"}})).is_err());
    }

    #[test]
    fn ids_are_ours_and_avoid_the_servers() {
        let mut ids = Ids::new();
        let first = ids.fresh(&Default::default());
        assert!(ids.is_ours(&first));
        let mut taken = std::collections::HashSet::new();
        taken.insert(Id::Str(format!("{}2", ids.prefix)));
        assert_eq!(ids.fresh(&taken), Id::Str(format!("{}3", ids.prefix)));
        assert!(!ids.is_ours(&Id::Str("toolgate-1".into())));
        assert!(!ids.is_ours(&Id::Int(1)));
    }

    #[test]
    fn impersonation_is_recognised() {
        assert!(impersonates_toolgate(&json!({"message": "  Toolgate asks: allow?"})));
        // Characters drawn as nothing do not hide the name from the check.
        assert!(impersonates_toolgate(&json!({"message": "\u{200b}toolgate asks: allow?"})));
        assert!(impersonates_toolgate(&json!({"message": "\u{2060} \u{fe0f}toolgate asks"})));
        assert!(impersonates_toolgate(
            &json!({"message": "hi", "requestedSchema": {"properties": {"toolgate_decision": {}}}})
        ));
        assert!(!impersonates_toolgate(
            &json!({"message": "Your name?", "requestedSchema": {"properties": {"name": {}}}})
        ));
    }

    #[test]
    fn clients_declare_form_elicitation_in_either_shape() {
        assert!(client_can_elicit(&json!({"capabilities": {"elicitation": {}}})));
        assert!(client_can_elicit(&json!({"capabilities": {"elicitation": {"form": {}, "url": {}}}})));
        assert!(!client_can_elicit(&json!({"capabilities": {"elicitation": {"url": {}}}})));
        assert!(!client_can_elicit(&json!({"capabilities": {}})));
    }
}
