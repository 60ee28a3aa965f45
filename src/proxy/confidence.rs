//! Confidence reporting. When the policy uses confidence, every tool the server lists gains one
//! optional number property in its input schema, asking the model how sure it is; on each call
//! toolgate reads that property and removes it, so the server never sees it.

use serde_json::{Map, Value, json};

/// The property added to every tool's input schema.
pub const PROPERTY: &str = "toolgate_confidence";

const DESCRIPTION: &str = "Your confidence, from 0 to 1, that this call is correct and is what the user \
intends. Report it honestly: a low value makes toolgate ask the user before the call runs. \
toolgate removes this value before the tool sees the call.";

/// Adds the property to each tool of a `tools/list` response. Returns the new line and the
/// tools that already have a property of that name (they are left alone, and so are their
/// calls); `None` when the line is not a tools/list result toolgate can rewrite.
pub fn inject(line: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    let mut message: Value = serde_json::from_slice(line).ok()?;
    let tools = message.pointer_mut("/result/tools")?.as_array_mut()?;
    let mut native = Vec::new();
    for tool in tools.iter_mut() {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let Some(schema) = tool.get_mut("inputSchema").and_then(Value::as_object_mut) else { continue };
        let properties = schema.entry("properties").or_insert_with(|| json!({}));
        let Some(properties) = properties.as_object_mut() else { continue };
        if properties.contains_key(PROPERTY) {
            native.push(name);
            continue;
        }
        properties.insert(
            PROPERTY.to_owned(),
            json!({"type": "number", "minimum": 0, "maximum": 1, "description": DESCRIPTION}),
        );
    }
    let mut out = serde_json::to_vec(&message).ok()?;
    out.push(b'\n');
    Some((out, native))
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

/// The `tools/call` line with its arguments replaced.
pub fn rewrite_call(line: &[u8], arguments: &Map<String, Value>) -> Option<Vec<u8>> {
    let mut message: Value = serde_json::from_slice(line).ok()?;
    *message.pointer_mut("/params")?.as_object_mut()?.entry("arguments").or_insert(Value::Null) =
        Value::Object(arguments.clone());
    let mut out = serde_json::to_vec(&message).ok()?;
    out.push(b'\n');
    Some(out)
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
