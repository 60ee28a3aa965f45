//! JSON-RPC envelopes: what kind of message a checked line is, and the parts toolgate routes on.
//!
//! Only the envelope is decoded here (`jsonrpc`, `id`, `method`, and where `params` sits in the
//! line). The bytes themselves are never rewritten: a message that passes is forwarded exactly as
//! it arrived. `tools/call` parameters get their own strict decoding in [`CallToolParams`].

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Visitor};
use serde_json::{Map, Value};

use super::strict::{self, Violation};

/// A JSON-RPC request id, as MCP allows it: a string or an integer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    Int(i64),
    Str(String),
}

impl Id {
    /// The id as a JSON value, for replies under it.
    pub fn to_value(&self) -> Value {
        match self {
            Id::Int(n) => Value::from(*n),
            Id::Str(s) => Value::from(s.as_str()),
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Int(n) => write!(f, "{n}"),
            Id::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Id::Int(n) => s.serialize_i64(*n),
            Id::Str(v) => s.serialize_str(v),
        }
    }
}

/// What a message is, by the JSON-RPC rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Request {
        id: Id,
        method: String,
    },
    Notification {
        method: String,
    },
    /// A result or an error. `id` is absent only on an error the sender could not attribute.
    Response {
        id: Option<Id>,
        is_error: bool,
    },
}

/// A line that passed the strict check, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub kind: Kind,
    /// Where the `params` value sits in the line, if it has one.
    pub params: Option<Range<usize>>,
}

impl Envelope {
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            Kind::Request { method, .. } | Kind::Notification { method } => Some(method),
            Kind::Response { .. } => None,
        }
    }
}

/// Why a line was refused, with what the sender should be told.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// JSON-RPC error code: -32700 (not one JSON value) or -32600 (not an acceptable message).
    pub code: i64,
    pub reason: String,
}

impl From<Violation> for Refusal {
    fn from(v: Violation) -> Self {
        Refusal { code: v.code(), reason: v.to_string() }
    }
}

impl Refusal {
    fn invalid(reason: impl Into<String>) -> Self {
        Refusal { code: -32600, reason: reason.into() }
    }
}

/// Checks a line strictly and classifies it, in one pass over the line.
pub fn parse(line: &[u8], max_depth: usize) -> Result<Envelope, Refusal> {
    let (text, members) = strict::check_members(line, max_depth)?;
    let raw = RawEnvelope::from_members(&members)
        .map_err(|e| Refusal::invalid(format!("the message is not a JSON-RPC envelope: {e}")))?;
    if raw.jsonrpc.as_deref() != Some("2.0") {
        return Err(Refusal::invalid("the message lacks \"jsonrpc\": \"2.0\""));
    }
    let params = raw.params.map(|p| {
        let start = p.as_ptr() as usize - text.as_ptr() as usize;
        start..start + p.len()
    });
    let kind = match (raw.method, raw.result, raw.error) {
        (Some(method), None, None) => match raw.id {
            IdField::Absent => Kind::Notification { method: method.into_owned() },
            IdField::Valid(id) => Kind::Request { id, method: method.into_owned() },
            IdField::Null | IdField::Invalid => {
                return Err(Refusal::invalid("the request id must be a string or an integer"));
            }
        },
        (Some(_), _, _) => {
            return Err(Refusal::invalid("a message cannot carry both a method and a result or error"));
        }
        (None, Some(_), Some(_)) => {
            return Err(Refusal::invalid("a response cannot carry both a result and an error"));
        }
        (None, None, None) => {
            return Err(Refusal::invalid("the message has neither a method nor a result or error"));
        }
        (None, result, _) => match raw.id {
            IdField::Valid(id) => Kind::Response { id: Some(id), is_error: result.is_none() },
            IdField::Absent | IdField::Null if result.is_none() => Kind::Response { id: None, is_error: true },
            _ => {
                return Err(Refusal::invalid("the response id must be a string or an integer"));
            }
        },
    };
    Ok(Envelope { kind, params })
}

/// The envelope's members, decoded.
struct RawEnvelope<'a> {
    jsonrpc: Option<Cow<'a, str>>,
    id: IdField,
    method: Option<Cow<'a, str>>,
    params: Option<&'a str>,
    result: Option<&'a str>,
    error: Option<&'a str>,
}

impl<'a> RawEnvelope<'a> {
    /// Decodes the members the strict check found. A present `null` stays present: `"result":
    /// null` is a result, not a missing one.
    fn from_members(m: &strict::Members<'a>) -> Result<Self, serde_json::Error> {
        let string = |raw: Option<&'a str>| -> Result<Option<Cow<'a, str>>, serde_json::Error> {
            raw.map(|raw| plain_string(raw).map_or_else(|| serde_json::from_str(raw), |s| Ok(Cow::Borrowed(s))))
                .transpose()
        };
        Ok(RawEnvelope {
            jsonrpc: string(m.jsonrpc)?,
            id: match m.id {
                Some(raw) => plain_id(raw).map_or_else(|| serde_json::from_str(raw), Ok)?,
                None => IdField::Absent,
            },
            method: string(m.method)?,
            params: m.params,
            result: m.result,
            error: m.error,
        })
    }
}

/// A string as written in a checked line, when it has no escapes: its text between the quotes,
/// which is what it decodes to (the strict check refused control characters already). `None`
/// for anything else, which serde_json decodes.
fn plain_string(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

/// The ids most messages carry, read without serde_json: a plain string, or an integer of at
/// most 18 digits (which an `i64` holds). `None` for anything else, `-0` included (serde_json
/// reads it as a float, which is no valid id), which serde_json decodes.
fn plain_id(raw: &str) -> Option<IdField> {
    if let Some(s) = plain_string(raw) {
        return Some(IdField::Valid(Id::Str(s.to_owned())));
    }
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = raw.parse().ok()?;
    (n != 0 || digits.len() == raw.len()).then_some(IdField::Valid(Id::Int(n)))
}

/// The `id` member as written, so that `null`, `19.0` or `true` can be told from absence.
#[derive(Default)]
enum IdField {
    #[default]
    Absent,
    Null,
    Valid(Id),
    Invalid,
}

impl<'de> Deserialize<'de> for IdField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a request id")
            }
            fn visit_i64<E>(self, v: i64) -> Result<IdField, E> {
                Ok(IdField::Valid(Id::Int(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<IdField, E> {
                Ok(i64::try_from(v).map_or(IdField::Invalid, |v| IdField::Valid(Id::Int(v))))
            }
            fn visit_f64<E>(self, _: f64) -> Result<IdField, E> {
                Ok(IdField::Invalid)
            }
            fn visit_str<E>(self, v: &str) -> Result<IdField, E> {
                Ok(IdField::Valid(Id::Str(v.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<IdField, E> {
                Ok(IdField::Invalid)
            }
            fn visit_unit<E>(self) -> Result<IdField, E> {
                Ok(IdField::Null)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<IdField, A::Error> {
                while a.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(IdField::Invalid)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<IdField, A::Error> {
                while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(IdField::Invalid)
            }
        }
        d.deserialize_any(V)
    }
}

/// The parameters of a `tools/call` request, decoded after the strict check.
#[derive(Debug, Clone, PartialEq)]
pub struct CallToolParams {
    pub name: String,
    /// The arguments object (absent and `null` both read as empty).
    pub arguments: Map<String, Value>,
    /// Where the arguments are written in the params text, so that numbers a double cannot
    /// hold are read exactly.
    pub arguments_at: Option<Range<usize>>,
    /// `_meta`, when present.
    pub meta: Option<Map<String, Value>>,
    /// `requestState`, when present (a 2026-07-28 retry after an input-required result).
    pub request_state: Option<Value>,
    /// `inputResponses`, when present (the answers that retry carries).
    pub input_responses: Option<Value>,
}

/// The `_meta` key with which 2026-07-28 requests declare the client's capabilities.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// The `_meta` key with which 2026-07-28 requests name their protocol version.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

impl CallToolParams {
    /// Decodes `tools/call` params; an `Err` is the reason for a -32602 reply.
    pub fn parse(params: Option<&str>) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Raw<'a> {
            name: Option<Value>,
            #[serde(default, borrow)]
            arguments: Option<&'a serde_json::value::RawValue>,
            #[serde(default, rename = "_meta")]
            meta: Option<Value>,
            #[serde(default, rename = "requestState")]
            request_state: Option<Value>,
            #[serde(default, rename = "inputResponses")]
            input_responses: Option<Value>,
        }
        let params = params.ok_or("tools/call needs params")?;
        let raw: Raw = serde_json::from_str(params).map_err(|e| format!("tools/call params are not an object: {e}"))?;
        let name = match raw.name {
            Some(Value::String(name)) => name,
            _ => return Err("tools/call params need a string \"name\"".into()),
        };
        let arguments_at = raw.arguments.map(|r| {
            let start = r.get().as_ptr() as usize - params.as_ptr() as usize;
            start..start + r.get().len()
        });
        let arguments = match raw.arguments.map(|r| serde_json::from_str::<Value>(r.get())).transpose() {
            Err(e) => return Err(format!("tools/call \"arguments\" cannot be read: {e}")),
            Ok(None | Some(Value::Null)) => Map::new(),
            Ok(Some(Value::Object(map))) => map,
            Ok(Some(_)) => return Err("tools/call \"arguments\" must be an object".into()),
        };
        let meta = match raw.meta {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => return Err("tools/call \"_meta\" must be an object".into()),
        };
        Ok(CallToolParams {
            name,
            arguments,
            arguments_at,
            meta,
            request_state: raw.request_state,
            input_responses: raw.input_responses,
        })
    }

    /// True when the request is of the 2026-07-28 kind (its version travels in `_meta`).
    pub fn is_stateless_era(&self) -> bool {
        self.meta.as_ref().is_some_and(|m| m.contains_key(META_PROTOCOL_VERSION))
    }

    /// The client capabilities a 2026-07-28 request declares in `_meta`.
    pub fn client_capabilities(&self) -> Option<&Value> {
        self.meta.as_ref()?.get(META_CLIENT_CAPABILITIES)
    }

    pub fn progress_token(&self) -> Option<&Value> {
        self.meta.as_ref()?.get("progressToken")
    }
}

/// An id read leniently from a refused line.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadableId {
    pub id: Value,
    /// True when the object also had a `method` (a request), false for a response.
    pub is_request: bool,
}

/// The ids of a refused line, read leniently, so the sender of a bad request (or the client
/// waiting on a bad response) can still be told. A value read here only addresses an error
/// reply; it is never used to decide anything.
pub fn readable_ids(line: &[u8]) -> Vec<ReadableId> {
    let text = String::from_utf8_lossy(line).replace(['\r', '\u{feff}'], " ");
    let id_of = |v: &Value| match v.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => {
            Some(ReadableId { id: id.clone(), is_request: v.get("method").is_some() })
        }
        _ => None,
    };
    // Values one after another (a lone CR turned two messages into one line); stop at the
    // first that does not parse.
    let mut ids = Vec::new();
    for value in serde_json::Deserializer::from_str(text.trim()).into_iter::<Value>() {
        match value {
            Ok(v @ Value::Object(_)) => ids.extend(id_of(&v)),
            Ok(Value::Array(items)) => ids.extend(items.iter().filter_map(id_of)),
            Ok(_) | Err(_) => break,
        }
    }
    ids
}

impl Id {
    /// The id a JSON value names, if it is one MCP allows.
    pub fn from_value(value: &Value) -> Option<Id> {
        match value {
            Value::String(s) => Some(Id::Str(s.clone())),
            Value::Number(n) if n.is_i64() => n.as_i64().map(Id::Int),
            _ => None,
        }
    }
}

/// Finds the top-level `"id"` near the start of an oversized line, without parsing the rest.
pub fn sniff_id(prefix: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(prefix);
    // A tiny scanner: track depth, skip strings, and stop at the first `"id":` at depth 1.
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let end = string_end(bytes, i)?;
                if depth == 1 && &text[i..=end] == "\"id\"" {
                    let rest = text[end + 1..].trim_start().strip_prefix(':')?.trim_start();
                    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
                    return match values.next() {
                        Some(Ok(v @ (Value::String(_) | Value::Number(_)))) => Some(v),
                        _ => None,
                    };
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the quote that closes the string opening at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kind(line: &str) -> Result<Kind, Refusal> {
        parse(line.as_bytes(), 64).map(|e| e.kind)
    }

    /// The ids and strings read without serde_json read as serde_json reads them, and what
    /// they cannot read is left to it.
    #[test]
    fn plain_ids_and_strings_read_as_serde_json_reads_them() {
        let id = |field: IdField| match field {
            IdField::Absent => "absent".to_string(),
            IdField::Null => "null".to_string(),
            IdField::Valid(id) => format!("{id:?}"),
            IdField::Invalid => "invalid".to_string(),
        };
        for raw in ["0", "7", "-7", "42", "123456789012345678", "-123456789012345678", r#""""#, r#""a b/é""#] {
            let plain = plain_id(raw).unwrap_or_else(|| panic!("{raw} is left to serde_json"));
            assert_eq!(id(plain), id(serde_json::from_str(raw).unwrap()), "{raw}");
        }
        for raw in ["-0", "1234567890123456789", "1.0", "1e3", "true", "null", "[1]", r#""a\"b""#, r#""\u0041""#] {
            assert!(plain_id(raw).is_none(), "{raw} is read without serde_json");
        }
        assert_eq!(plain_string(r#""2.0""#), Some("2.0"));
        assert_eq!(plain_string(r#""tools\/call""#), None);
        assert_eq!(plain_string("2"), None);
        // And so do whole messages.
        assert_eq!(kind(r#"{"jsonrpc":"2.0","id":-0,"method":"ping"}"#).map_err(|r| r.code), Err(-32600));
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":"\u0031","method":"tools\/call"}"#).unwrap(),
            Kind::Request { id: Id::Str("1".into()), method: "tools/call".into() }
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2\u002e0","id":3,"method":"ping"}"#).unwrap(),
            kind(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#).unwrap()
        );
    }

    #[test]
    fn classifies_requests_notifications_and_responses() {
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#),
            Ok(Kind::Request { id: Id::Int(0), method: "initialize".into() })
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Kind::Notification { method: "notifications/initialized".into() })
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":"a","result":null}"#),
            Ok(Kind::Response { id: Some(Id::Str("a".into())), is_error: false })
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x","data":{}}}"#),
            Ok(Kind::Response { id: None, is_error: true })
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":-7,"method":"x/unknown"}"#),
            Ok(Kind::Request { id: Id::Int(-7), method: "x/unknown".into() })
        );
    }

    #[test]
    fn method_is_compared_after_decoding_escapes() {
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":1,"method":"tools\u002fcall","params":{"name":"x"}}"#),
            Ok(Kind::Request { id: Id::Int(1), method: "tools/call".into() })
        );
    }

    #[test]
    fn float_bool_null_and_huge_ids_are_refused_on_requests() {
        for id in ["19.0", "1e3", "true", "null", "[1]", "{}", "18446744073709551615"] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call"}}"#);
            assert_eq!(kind(&line).map_err(|r| r.code), Err(-32600), "id {id}");
        }
    }

    #[test]
    fn envelopes_that_are_neither_request_nor_response_are_refused() {
        for line in [
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
        ] {
            assert_eq!(kind(line).map_err(|r| r.code), Err(-32600), "{line}");
        }
    }

    #[test]
    fn params_range_points_at_the_params_text() {
        let line = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#;
        let env = parse(line.as_bytes(), 64).unwrap();
        assert_eq!(&line[env.params.unwrap()], r#"{"name":"x"}"#);
    }

    #[test]
    fn call_params_are_decoded_strictly() {
        let p =
            CallToolParams::parse(Some(r#"{"name":"rm","arguments":{"p":1},"_meta":{"progressToken":3}}"#)).unwrap();
        assert_eq!(p.name, "rm");
        assert_eq!(p.progress_token(), Some(&Value::from(3)));
        assert!(CallToolParams::parse(Some(r#"{"name":3}"#)).is_err());
        assert!(CallToolParams::parse(Some(r#"{"name":"a","arguments":[1]}"#)).is_err());
        assert!(CallToolParams::parse(None).is_err());
    }

    #[test]
    fn readable_ids_come_from_refused_requests_responses_and_batches() {
        let ids = |line: &[u8]| readable_ids(line).into_iter().map(|r| (r.id, r.is_request)).collect::<Vec<_>>();
        assert_eq!(ids(br#"{"id":19.0,"method":"tools/call"}"#), vec![(json!(19.0), true)]);
        assert_eq!(
            ids(br#"[{"id":1,"method":"a"},{"method":"n"},{"id":"x","method":"b"}]"#),
            vec![(json!(1), true), (json!("x"), true)]
        );
        assert_eq!(ids(br#"{"id":1,"result":{},"result":{}}"#), vec![(json!(1), false)]);
        assert!(ids(b"{\"id\":1,\"method\":").is_empty());
        assert_eq!(
            ids(b"{\"id\":4,\"method\":\"ping\"}\r{\"id\":5,\"method\":\"tools/call\"}"),
            vec![(json!(4), true), (json!(5), true)]
        );
    }

    #[test]
    fn sniffs_the_top_level_id_from_a_prefix() {
        let prefix = br#"{"jsonrpc":"2.0","params":{"id":"inner","x":"aaaa"#;
        assert_eq!(sniff_id(prefix), None);
        let prefix = br#"{"jsonrpc":"2.0","params":{"id":"inner"},"id":42,"method":"tools/call","x":"aaaa"#;
        assert_eq!(sniff_id(prefix), Some(json!(42)));
    }
}
