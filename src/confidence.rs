//! Confidence reporting. When the policy uses confidence, every tool the server lists gains one
//! optional number property in its input schema, asking the model how sure it is; on each call
//! toolgate reads that property and removes it, so the server never sees it.

use serde_json::{Map, Value, json};

use crate::wire::splice;

/// The property added to every tool's input schema.
pub const PROPERTY: &str = "toolgate_confidence";

const DESCRIPTION: &str = "Your confidence, from 0 to 1, that this call is correct and is what the user \
intends. Report it honestly: a low value makes toolgate ask the user before the call runs. \
toolgate removes this value before the tool sees the call.";

/// Adds the property to each tool of a `tools/list` response. Returns the new line and the
/// tools that already have a property of that name (they are left alone, and so are their
/// calls); `None` when the line is not a tools/list result toolgate can rewrite. Only the
/// properties objects change; every other byte of the answer is kept (see `wire::splice`).
pub fn inject(line: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    let text = body(line)?;
    let result = splice::member(text, "result")?;
    let tools = splice::member(result, "tools")?;
    let property = json!({"type": "number", "minimum": 0, "maximum": 1, "description": DESCRIPTION}).to_string();
    let mut native = Vec::new();
    let mut listed = Vec::new();
    for tool in splice::items(tools)? {
        match with_property(tool, &property) {
            Added(rewritten) => listed.push(rewritten),
            Native => {
                let name = splice::member(tool, "name").and_then(|n| serde_json::from_str::<String>(n).ok());
                native.extend(name);
                listed.push(tool.to_owned());
            }
            Untouched => listed.push(tool.to_owned()),
        }
    }
    let result = splice::set_member(result, "tools", Some(&format!("[{}]", listed.join(","))))?;
    Some((line_of(splice::set_member(text, "result", Some(&result))?), native))
}

enum Injected {
    Added(String),
    /// The tool's own schema has a property of that name.
    Native,
    /// No object schema to add to.
    Untouched,
}
use Injected::{Added, Native, Untouched};

fn with_property(tool: &str, property: &str) -> Injected {
    let Some(schema) = splice::member(tool, "inputSchema") else { return Untouched };
    let properties = splice::member(schema, "properties").unwrap_or("{}");
    if splice::member(properties, PROPERTY).is_some() {
        return Native;
    }
    let rewritten = splice::set_member(properties, PROPERTY, Some(property))
        .and_then(|p| splice::set_member(schema, "properties", Some(&p)))
        .and_then(|s| splice::set_member(tool, "inputSchema", Some(&s)));
    rewritten.map_or(Untouched, Added)
}

/// Whether a tool of a `tools/list` answer has a property of that name in its own schema: its
/// calls are then left alone.
pub fn is_the_tools_own(tool: &Value) -> bool {
    tool.pointer("/inputSchema/properties").and_then(Value::as_object).is_some_and(|p| p.contains_key(PROPERTY))
}

/// Removes the property from a call's arguments. Returns whether it was there and the
/// confidence it reported, if that was a number from 0 to 1.
pub fn take(arguments: &mut Map<String, Value>) -> (bool, Option<f64>) {
    match arguments.shift_remove(PROPERTY) {
        None => (false, None),
        Some(value) => {
            let reported = value.as_f64().filter(|c| (0.0..=1.0).contains(c));
            if reported.is_none() {
                tracing::warn!(
                    "the model reported {PROPERTY} = {value}, not a number from 0 to 1; counted as not reported"
                );
            }
            (true, reported)
        }
    }
}

/// The `tools/call` line without toolgate's property in its arguments; every other byte of
/// the arguments is kept as the client wrote it.
pub fn strip_call(line: &[u8]) -> Option<Vec<u8>> {
    let text = body(line)?;
    let params = splice::member(text, "params")?;
    let arguments = splice::set_member(splice::member(params, "arguments")?, PROPERTY, None)?;
    let params = splice::set_member(params, "arguments", Some(&arguments))?;
    Some(line_of(splice::set_member(text, "params", Some(&params))?))
}

/// The `tools/call` line with its arguments replaced (a person edited them); the rest of the
/// line is kept as it was.
pub fn rewrite_call(line: &[u8], arguments: &Map<String, Value>) -> Option<Vec<u8>> {
    let text = body(line)?;
    let arguments = serde_json::to_string(arguments).ok()?;
    let params = splice::set_member(splice::member(text, "params")?, "arguments", Some(&arguments))?;
    Some(line_of(splice::set_member(text, "params", Some(&params))?))
}

fn body(line: &[u8]) -> Option<&str> {
    std::str::from_utf8(line).ok().map(|s| s.trim_end_matches(['\n', '\r']))
}

fn line_of(text: String) -> Vec<u8> {
    let mut out = text.into_bytes();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injects_an_optional_number_and_keeps_the_rest_in_order() {
        let line = br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"a","inputSchema":{"type":"object","properties":{"x":{"type":"string"}},"required":["x"],"additionalProperties":false}},{"name":"b","inputSchema":{"type":"object","properties":{"toolgate_confidence":{"type":"string"}}}}]}}"#;
        let (out, native) = inject(line).unwrap();
        assert_eq!(native, vec!["b"]);
        let v: Value = serde_json::from_slice(&out).unwrap();
        let a = &v["result"]["tools"][0]["inputSchema"];
        assert_eq!(a["properties"][PROPERTY]["type"], "number");
        assert_eq!(a["required"], json!(["x"]));
        assert_eq!(v["result"]["tools"][1]["inputSchema"]["properties"][PROPERTY]["type"], "string");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"a","inputSchema":{"type":"object","properties":{"x":{"type":"string"},"toolgate_confidence":"#));
    }

    #[test]
    fn numbers_the_client_or_server_wrote_are_never_rewritten() {
        let call = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"w\",\"arguments\":{\"big\":18446744073709551616,\"e\":1e2,\"p\":0.10000000000000000001,\"toolgate_confidence\":0.9}}}\r\n";
        assert_eq!(
            String::from_utf8(strip_call(call).unwrap()).unwrap(),
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"w\",\"arguments\":{\"big\":18446744073709551616,\"e\":1e2,\"p\":0.10000000000000000001}}}\n"
        );
        let list = br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a","inputSchema":{"type":"object","properties":{"n":{"type":"integer","maximum":1e3}}}}],"nextCursor":null}}"#;
        let (out, _) = inject(list).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""maximum":1e3"#) && text.contains(r#""nextCursor":null"#), "{text}");
    }

    #[test]
    fn takes_the_value_out_and_rewrites_the_call() {
        let mut args = json!({"path": "/a", PROPERTY: 0.4}).as_object().cloned().unwrap();
        assert_eq!(take(&mut args), (true, Some(0.4)));
        assert_eq!(Value::Object(args.clone()), json!({"path": "/a"}));
        let mut bad = json!({PROPERTY: "sure"}).as_object().cloned().unwrap();
        assert_eq!(take(&mut bad), (true, None));
        let line = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"w","arguments":{"path":"/a","toolgate_confidence":0.4},"_meta":{"progressToken":1}}}"#;
        let out = rewrite_call(line, &args).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"w\",\"arguments\":{\"path\":\"/a\"},\"_meta\":{\"progressToken\":1}}}\n"
        );
    }
}
