//! A small MCP server built with the Rust SDK (rmcp) whose tool parameters deny unknown fields:
//! its schemas say `additionalProperties: false` and rmcp rejects any extra argument. Every
//! arguments object a tool receives is appended as a JSON line to `$RECORD` when it is set.

use rmcp::handler::server::ServerHandler;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{ServiceExt, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Note {
    /// The note's title.
    title: String,
    /// The note's text.
    body: String,
}

#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Echo {
    text: String,
}

fn record<T: Serialize>(args: &T) {
    if let Some(path) = std::env::var_os("RECORD") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("record file");
        writeln!(f, "{}", serde_json::to_string(args).expect("json")).expect("record");
    }
}

#[derive(Clone)]
struct Strict {
    #[expect(dead_code, reason = "rmcp's tool_handler routes through its own copy of the router")]
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Strict {
    fn new() -> Self {
        Strict { tool_router: Self::tool_router() }
    }

    #[tool(description = "Write a note")]
    async fn write_note(&self, Parameters(note): Parameters<Note>) -> String {
        record(&note);
        format!("noted: {}", note.title)
    }

    #[tool(description = "Echo the text")]
    async fn echo(&self, Parameters(echo): Parameters<Echo>) -> String {
        record(&echo);
        echo.text
    }
}

#[tool_handler]
impl ServerHandler for Strict {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let service = Strict::new().serve(rmcp::transport::io::stdio()).await.expect("serve");
    service.waiting().await.expect("wait");
}
