//! Messages toolgate writes itself: error replies and the results of calls it did not forward.

use serde_json::{Value, json};

/// A JSON-RPC error response, as one line.
pub fn error(id: &Value, code: i64, message: &str) -> Vec<u8> {
    line(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
}

/// The result of a call toolgate did not forward: a normal tool result with `isError`, so the
/// model reads why and can adapt. 2026-07-28 requests also get `resultType`.
pub fn refused_call(id: &Value, text: &str, stateless_era: bool) -> Vec<u8> {
    let mut result = json!({"content": [{"type": "text", "text": text}], "isError": true});
    if stateless_era {
        result["resultType"] = json!("complete");
    }
    line(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn line(value: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_call_is_a_tool_error_result_under_the_original_id() {
        let line = refused_call(&json!("abc"), "no", true);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","id":"abc","result":{"content":[{"type":"text","text":"no"}],"isError":true,"resultType":"complete"}})
        );
        assert_eq!(line.last(), Some(&b'\n'));
        assert!(!line[..line.len() - 1].contains(&b'\n'));
    }
}
