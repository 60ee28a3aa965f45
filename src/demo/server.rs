//! The demo's MCP server: a handful of pretend tools, from harmless reads to deletes and
//! payments. Nothing it does touches the machine; every tool only answers with text.
//!
//! It is run as `toolgate demo-server` (a hidden command), so the demo needs only the binary.

use std::io::{self, BufRead, Write};

use serde_json::{Value, json};

/// The demo's tools: name, description, annotations.
pub const TOOLS: &[(&str, &str, bool)] = &[
    ("read_file", "Read a file of the demo project.", true),
    ("list_directory", "List a folder of the demo project.", true),
    ("write_file", "Write a file of the demo project.", false),
    ("send_email", "Send an email.", false),
    ("send_payment", "Pay an amount to an account.", false),
    ("delete_file", "Delete a file of the demo project.", false),
];

/// Serves MCP over the given streams until input ends.
pub fn serve(input: impl BufRead, mut output: impl Write) -> io::Result<()> {
    for line in input.lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let (Some(id), Some(method)) = (msg.get("id"), msg.get("method").and_then(Value::as_str)) else {
            continue; // notifications and responses need no answer
        };
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        let answer = match method {
            "initialize" => json!({"result": {
                "protocolVersion": params.get("protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "toolgate-demo", "version": env!("CARGO_PKG_VERSION")},
            }}),
            "ping" => json!({"result": {}}),
            "tools/list" => {
                json!({"result": {"tools": TOOLS.iter().map(|(name, description, read_only)| json!({
                "name": name,
                "description": description,
                "inputSchema": {"type": "object", "properties": {}, "additionalProperties": true},
                "annotations": {"readOnlyHint": read_only, "openWorldHint": *name == "send_email" || *name == "send_payment"},
            })).collect::<Vec<_>>()}})
            }
            "tools/call" => json!({"result": call(&params)}),
            _ => {
                json!({"error": {"code": -32601, "message": format!("method not found: {method}")}})
            }
        };
        let mut reply = json!({"jsonrpc": "2.0", "id": id});
        if let (Some(reply), Some(answer)) = (reply.as_object_mut(), answer.as_object()) {
            reply.extend(answer.clone());
        }
        serde_json::to_writer(&mut output, &reply)?;
        output.write_all(b"\n")?;
        output.flush()?;
    }
    Ok(())
}

fn call(params: &Value) -> Value {
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    let arg = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
    let text = match params.get("name").and_then(Value::as_str).unwrap_or_default() {
        "read_file" => format!("(contents of {}) buy milk; call the bank", arg("path")),
        "list_directory" => format!("{}: notes/ todo.txt budget.csv", arg("path")),
        "write_file" => format!("wrote {} bytes to {}", arg("content").len(), arg("path")),
        "send_email" => format!("sent to {}", arg("to")),
        "send_payment" => format!("paid {} to {}", args.get("amount").cloned().unwrap_or(json!(0)), arg("to")),
        "delete_file" => format!("deleted {}", arg("path")),
        other => {
            return json!({"content": [{"type": "text", "text": format!("unknown tool {other}")}], "isError": true});
        }
    };
    json!({"content": [{"type": "text", "text": text}]})
}
