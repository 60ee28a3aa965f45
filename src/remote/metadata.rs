//! The request metadata headers of protocol version 2026-07-28's Streamable HTTP: a request
//! whose `params._meta` names a protocol version is POSTed with `MCP-Protocol-Version` (that
//! version), `Mcp-Method`, `Mcp-Name` (the tool's or prompt's name, the resource's URI) and, for
//! a `tools/call`, one `Mcp-Param-{Name}` per argument the tool's input schema marks with
//! `x-mcp-header`. The server checks each against the body and refuses a mismatch; toolgate
//! mirrors them from the very body it judged and forwards, so a gateway that routes on the
//! headers and the server that runs the body read the same call.
//!
//! The annotations come from the server's `tools/list` answers as they pass. A tool whose
//! annotation breaks the specification's rules cannot be called over this transport (the spec
//! has clients drop it from the listing; toolgate keeps the listing as the server sent it, and
//! refuses the call, saying why). A call to a tool no listing has shown yet goes without
//! `Mcp-Param-*` headers: the server refuses it if it needed them, and the client sees why.

use std::collections::HashMap;

use base64::Engine;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The schema annotation naming an `Mcp-Param-*` header.
const ANNOTATION: &str = "x-mcp-header";
/// The largest integer a header may carry (JavaScript's safe range).
const SAFE_INTEGER: i64 = (1 << 53) - 1;

/// What the bridge reads of a message it POSTs.
#[derive(Deserialize)]
pub(super) struct Request<'a> {
    #[serde(default)]
    method: Option<String>,
    #[serde(default, borrow)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default, rename = "_meta")]
    meta: Option<Meta>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default, rename = "io.modelcontextprotocol/protocolVersion")]
    version: Option<Value>,
}

impl<'a> Request<'a> {
    pub(super) fn of(message: &'a [u8]) -> Option<Request<'a>> {
        serde_json::from_slice(message).ok()
    }

    /// The protocol version its `_meta` names: a request of the 2026-07-28 era.
    pub(super) fn modern_version(&self) -> Option<&str> {
        self.params.as_ref()?.meta.as_ref()?.version.as_ref()?.as_str()
    }
}

/// Each listed tool's `Mcp-Param-*` headers, or why its annotations are refused.
#[derive(Default)]
pub(super) struct ParamHeaders {
    tools: HashMap<String, Result<Vec<Annotated>, String>>,
}

/// One annotated argument: the header's name part and the argument's path of `properties` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Annotated {
    token: String,
    path: Vec<String>,
}

impl ParamHeaders {
    /// Reads the tools of a `tools/list` answer (pages add to what earlier pages said).
    pub(super) fn learn(&mut self, answer: &[u8]) {
        #[derive(Deserialize)]
        struct Answer {
            result: Option<Listing>,
        }
        #[derive(Deserialize)]
        struct Listing {
            #[serde(default)]
            tools: Vec<Tool>,
        }
        #[derive(Deserialize)]
        struct Tool {
            name: String,
            #[serde(default, rename = "inputSchema")]
            input_schema: Value,
        }
        let Ok(Answer { result: Some(listing) }) = serde_json::from_slice::<Answer>(answer) else { return };
        for tool in listing.tools {
            let annotated = annotations(&tool.input_schema);
            if let Err(why) = &annotated {
                tracing::warn!("the server's tool `{}` cannot be called over HTTP: {why}", tool.name);
            }
            self.tools.insert(tool.name, annotated);
        }
    }
}

/// The headers a request of the 2026-07-28 era carries, mirrored from its body; `Err` when it
/// must not be sent (a tool whose annotations are refused). Empty for a request of an earlier era.
pub(super) fn headers(request: &Request, known: &ParamHeaders) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let Some(version) = request.modern_version() else { return Ok(Vec::new()) };
    let Some(method) = request.method.as_deref() else { return Ok(Vec::new()) };
    let mut headers = Vec::new();
    let value =
        |text: &str| HeaderValue::from_str(text).map_err(|_| format!("{text:?} cannot be an HTTP header value"));
    headers.push((HeaderName::from_static("mcp-protocol-version"), value(version)?));
    headers.push((HeaderName::from_static("mcp-method"), value(method)?));
    let params = request.params.as_ref();
    let named = match method {
        "tools/call" | "prompts/get" => params.and_then(|p| p.name.as_deref()),
        "resources/read" => params.and_then(|p| p.uri.as_deref()),
        _ => None,
    };
    if let Some(named) = named {
        headers.push((HeaderName::from_static("mcp-name"), encode(named)));
    }
    if method == "tools/call"
        && let Some(tool) = params.and_then(|p| p.name.as_deref())
    {
        match known.tools.get(tool) {
            Some(Err(why)) => return Err(format!("the server's definition of `{tool}` is refused: {why}")),
            Some(Ok(annotated)) if !annotated.is_empty() => {
                let arguments: Value = match params.and_then(|p| p.arguments) {
                    Some(raw) => serde_json::from_str(raw.get()).map_err(|e| format!("its arguments: {e}"))?,
                    None => Value::Null,
                };
                for a in annotated {
                    let Some(text) = rendered(a.path.iter().try_fold(&arguments, |v, key| v.get(key))) else {
                        continue;
                    };
                    let name = HeaderName::try_from(format!("mcp-param-{}", a.token))
                        .map_err(|_| format!("{:?} cannot be an HTTP header name", a.token))?;
                    headers.push((name, encode(&text)));
                }
            }
            _ => {}
        }
    }
    Ok(headers)
}

/// An argument's text in its header: a string as it is, an integer in decimal, a boolean as
/// `true`/`false`; absent or null: no header. (Other values break the annotated type, which
/// only primitive types may carry: no header, and the server refuses the call.)
fn rendered(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => n.as_i64().filter(|i| i.abs() <= SAFE_INTEGER).map(|i| i.to_string()),
        _ => None,
    }
}

/// A header value as the specification encodes it: as it is when it is plain visible ASCII
/// without leading or trailing white space, else `=?base64?…?=` of its UTF-8 (so is a plain
/// value that looks like that form).
fn encode(text: &str) -> HeaderValue {
    let padded = text.starts_with([' ', '\t']) || text.ends_with([' ', '\t']);
    let sentinel = text.starts_with("=?base64?") && text.ends_with("?=");
    let plain = text.bytes().all(|b| (0x20..=0x7e).contains(&b)) && !padded && !sentinel;
    let text = if plain {
        text.to_owned()
    } else {
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(text))
    };
    HeaderValue::from_str(&text).expect("visible ASCII")
}

/// The annotated arguments of an input schema, checked against the specification's rules: a
/// token of RFC 9110 field-name characters, unique regardless of case, on a property of type
/// string, integer or boolean that is reached from the root through `properties` alone.
fn annotations(schema: &Value) -> Result<Vec<Annotated>, String> {
    let mut found = Vec::new();
    walk(schema, Some(Vec::new()), &mut found)?;
    let mut seen = std::collections::HashSet::new();
    for a in &found {
        if !seen.insert(a.token.to_ascii_lowercase()) {
            return Err(format!("two arguments are marked {ANNOTATION} {:?}", a.token));
        }
    }
    Ok(found)
}

/// Visits every schema position under `schema`; `path` is its chain of `properties` keys from
/// the root, `None` once any other keyword was crossed. Values of instance-data keywords
/// (`const`, `default`, `enum`, `examples`) are data, not schemas, and are not entered.
fn walk(schema: &Value, path: Option<Vec<String>>, found: &mut Vec<Annotated>) -> Result<(), String> {
    let Value::Object(object) = schema else {
        if let Value::Array(items) = schema {
            for item in items {
                walk(item, None, found)?;
            }
        }
        return Ok(());
    };
    if let Some(token) = object.get(ANNOTATION) {
        let token = token.as_str().ok_or_else(|| format!("an {ANNOTATION} that is not a string: {token}"))?;
        let Some(path) = path.as_ref().filter(|p| !p.is_empty()) else {
            return Err(format!("{ANNOTATION} {token:?} is not on a property reached through `properties` alone"));
        };
        if token.is_empty() || !token.bytes().all(is_tchar) {
            return Err(format!("{ANNOTATION} {token:?} is not an HTTP field-name token"));
        }
        match object.get("type").and_then(Value::as_str) {
            Some("string" | "integer" | "boolean") => {}
            other => {
                return Err(format!(
                    "{ANNOTATION} {token:?} is on a property of type {}, not string, integer or boolean",
                    other.map_or_else(|| "unstated".to_owned(), |t| format!("{t:?}"))
                ));
            }
        }
        found.push(Annotated { token: token.to_owned(), path: path.clone() });
    }
    for (key, value) in object {
        match key.as_str() {
            "properties" => {
                if let Value::Object(properties) = value {
                    for (name, property) in properties {
                        let inner = path.as_ref().map(|p| p.iter().cloned().chain([name.clone()]).collect());
                        walk(property, inner, found)?;
                    }
                }
            }
            "const" | "default" | "enum" | "examples" | ANNOTATION => {}
            _ => walk(value, None, found)?,
        }
    }
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn headers_of(message: Value, known: &ParamHeaders) -> Result<Vec<(String, String)>, String> {
        let bytes = message.to_string().into_bytes();
        let request = Request::of(&bytes).unwrap();
        Ok(headers(&request, known)?
            .into_iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect())
    }

    fn meta() -> Value {
        json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}})
    }

    fn listed(tools: Value) -> ParamHeaders {
        let mut known = ParamHeaders::default();
        known.learn(json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}).to_string().as_bytes());
        known
    }

    #[test]
    fn a_request_of_an_earlier_era_gets_no_headers() {
        let call =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}});
        assert_eq!(headers_of(call, &ParamHeaders::default()).unwrap(), []);
    }

    #[test]
    fn version_method_and_name_are_mirrored_from_the_body() {
        let call =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "_meta": meta()}});
        assert_eq!(
            headers_of(call, &ParamHeaders::default()).unwrap(),
            [
                ("mcp-protocol-version".into(), "2026-07-28".into()),
                ("mcp-method".into(), "tools/call".into()),
                ("mcp-name".into(), "echo".into())
            ]
        );
        let read = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "file:///a b", "_meta": meta()}});
        assert!(
            headers_of(read, &ParamHeaders::default()).unwrap().contains(&("mcp-name".into(), "file:///a b".into()))
        );
        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta()}});
        assert_eq!(headers_of(list, &ParamHeaders::default()).unwrap().len(), 2);
    }

    #[test]
    fn values_outside_plain_ascii_are_base64_encoded_as_the_spec_shows() {
        for (text, encoded) in [
            ("us-west1", "us-west1"),
            ("Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="),
            (" padded ", "=?base64?IHBhZGRlZCA=?="),
            ("line1\nline2", "=?base64?bGluZTEKbGluZTI=?="),
            ("=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="),
        ] {
            assert_eq!(encode(text).to_str().unwrap(), encoded, "{text:?}");
        }
    }

    #[test]
    fn annotated_arguments_become_mcp_param_headers() {
        let known = listed(json!([{"name": "sql", "inputSchema": {"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "limit": {"type": "integer", "x-mcp-header": "Limit"},
            "dry": {"type": "boolean", "x-mcp-header": "Dry"},
            "where": {"type": "object", "properties": {"tenant": {"type": "string", "x-mcp-header": "Tenant"}}},
            "absent": {"type": "string", "x-mcp-header": "Absent"},
            "query": {"type": "string"}
        }}}]));
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sql", "_meta": meta(),
            "arguments": {"region": "eu 1 ", "limit": 42, "dry": false, "where": {"tenant": "acme"}, "query": "SELECT"}}});
        let headers = headers_of(call, &known).unwrap();
        for expected in [
            ("mcp-param-region", "=?base64?ZXUgMSA=?="),
            ("mcp-param-limit", "42"),
            ("mcp-param-dry", "false"),
            ("mcp-param-tenant", "acme"),
        ] {
            assert!(headers.contains(&(expected.0.into(), expected.1.into())), "{expected:?} in {headers:?}");
        }
        assert!(!headers.iter().any(|(n, _)| n == "mcp-param-absent"), "{headers:?}");
    }

    #[test]
    fn a_tool_whose_annotations_break_the_rules_is_not_called() {
        for (schema, why) in [
            (json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}), "of type \"number\""),
            (json!({"properties": {"a": {"type": "string", "x-mcp-header": "A B"}}}), "field-name token"),
            (json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}), "field-name token"),
            (
                json!({"properties": {"a": {"type": "string", "x-mcp-header": "X"}, "b": {"type": "string", "x-mcp-header": "x"}}}),
                "two arguments",
            ),
            (
                json!({"properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "A"}}}}),
                "through `properties` alone",
            ),
            (
                json!({"oneOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]}),
                "through `properties` alone",
            ),
            (json!({"$defs": {"d": {"type": "string", "x-mcp-header": "A"}}}), "through `properties` alone"),
            (json!({"type": "string", "x-mcp-header": "Root"}), "through `properties` alone"),
        ] {
            let known = listed(json!([{"name": "t", "inputSchema": schema}]));
            let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "_meta": meta(), "arguments": {}}});
            let err = headers_of(call, &known).unwrap_err();
            assert!(err.contains(why), "{schema}: {err}");
        }
    }

    #[test]
    fn data_that_looks_like_an_annotation_is_not_one() {
        let known = listed(json!([{"name": "t", "inputSchema": {"properties": {
            "a": {"type": "object", "default": {"x-mcp-header": "A"}, "examples": [{"x-mcp-header": "B"}]}
        }}}]));
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "_meta": meta(), "arguments": {"a": {}}}});
        assert_eq!(headers_of(call, &known).unwrap().len(), 3);
    }
}
