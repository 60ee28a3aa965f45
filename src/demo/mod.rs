//! `toolgate demo`: toolgate in front of a built-in server, under the embedded default policy,
//! driven by a short scripted client that shows each call and what the gate made of it.

pub mod server;

use std::io::{self, Write};
use std::path::PathBuf;

use serde_json::{Map, Value, json};
use tokio::io::BufReader;

use crate::mcp_client::{AsyncClient, ClientError};
use crate::policy::{Call, Gate, Policy};
use crate::proxy::{self, Options, ProxyError, Upstream};
use crate::visible::visible;
use crate::wire;

/// The calls the demo makes, in order: (tool, arguments).
pub fn script() -> Vec<(&'static str, Value)> {
    vec![
        ("read_file", json!({"path": "notes/todo.txt"})),
        ("list_directory", json!({"path": "notes"})),
        ("write_file", json!({"path": "notes/todo.txt", "content": "buy milk; call the bank; water plants"})),
        ("send_email", json!({"to": "boss@example.com", "subject": "done", "body": "All done."})),
        ("send_payment", json!({"to": "ACME Ltd", "amount": 1200})),
        ("delete_file", json!({"path": "notes/budget.csv"})),
    ]
}

/// Runs the demo, writing what happens to `out`. Returns the proxy's exit code.
pub async fn run(out: &mut (dyn Write + Send), audit_path: PathBuf) -> Result<i32, ProxyError> {
    let exe = std::env::current_exe()?;
    let policy = Policy::embedded();
    let shown = policy.clone();
    let (client_side, proxy_side) = tokio::io::duplex(1 << 20);
    let (proxy_in, proxy_out) = tokio::io::split(proxy_side);
    let options = Options {
        server: Upstream::Command(vec![exe.into_os_string(), "demo-server".into()]),
        server_name: "demo".into(),
        policy,
        policy_path: None,
        audit_path: audit_path.clone(),
        // The demo's answers must not count toward the trust of the user's own tools.
        trust_path: Some(audit_path.with_file_name("trust.json")),
        queue_path: Some(audit_path.with_file_name("queue.json")),
        record: None,
        max_message_bytes: wire::DEFAULT_MAX_MESSAGE_BYTES,
        max_depth: wire::DEFAULT_MAX_DEPTH,
    };
    let proxy = tokio::spawn(proxy::run(options, proxy_in, proxy::stdio::Destination::other(proxy_out)));

    let (from_proxy, to_proxy) = tokio::io::split(client_side);
    let mut client = AsyncClient::new(BufReader::new(from_proxy), to_proxy);

    writeln!(out, "toolgate demo: a pretend server behind the gate, under the embedded default policy.")?;
    match crate::human::terminal::available() {
        Ok(()) => {
            writeln!(out, "Calls that need you are asked right here: read the prompt, then type a key and Enter.\n")?
        }
        Err(why) => writeln!(
            out,
            "No terminal to ask you on ({why}), so calls that need a person are refused: toolgate fails closed.\n"
        )?,
    }
    client.initialize("toolgate-demo-client").await.map_err(io::Error::other)?;
    let listed = client.request("tools/list", json!({})).await.map_err(io::Error::other)?;
    let names: Vec<&str> =
        listed["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    let names: Vec<_> = names.into_iter().map(visible).collect();
    writeln!(out, "The server offers: {}\n", names.join(", "))?;

    for (tool, arguments) in script() {
        let args: Map<String, Value> = arguments.as_object().cloned().unwrap_or_default();
        let decision = shown.decide(&Call::new("demo", tool, &args));
        writeln!(out, "→ {tool} {arguments}")?;
        let rules: Vec<&str> = decision.deciding_rules().collect();
        let why = if rules.is_empty() {
            "no rule matched: default tier".to_owned()
        } else {
            format!("rule {:?}", rules.join(", "))
        };
        writeln!(out, "  gate: {} (tier {}, {why})", decision.gate.as_str(), decision.tier.as_str())?;
        // A refusal as a JSON-RPC error is not run either; the model reads its message.
        let called = match client.request("tools/call", json!({"name": tool, "arguments": arguments})).await {
            Ok(result) => Ok(result),
            Err(ClientError::Refused { error, .. }) => Err(error),
            Err(e) => return Err(io::Error::other(e).into()),
        };
        let (ran, text) = match &called {
            Ok(result) => {
                (result["isError"] != json!(true), result["content"][0]["text"].as_str().unwrap_or("(no text)"))
            }
            Err(error) => (false, error.message.as_str()),
        };
        let text = visible(text);
        match (ran, decision.gate) {
            (true, Gate::Notify) => writeln!(out, "  ran, and the human was told: {text}\n")?,
            (true, _) => writeln!(out, "  ran: {text}\n")?,
            (false, _) => writeln!(out, "  not run. The model reads: {text}\n")?,
        }
    }
    // End of input tells the proxy the session is over; it stops the server and returns.
    client.close().await?;
    let code = proxy.await.map_err(std::io::Error::other)??;
    writeln!(out, "The audit trail of this session (toolgate audit show {}):", audit_path.display())?;
    crate::audit::show::show(&audit_path, &crate::audit::show::Filter::default(), false, out)?;
    let chain = crate::audit::verify::verify(&audit_path)?;
    match chain.problem_text(&audit_path) {
        None => writeln!(out, "Its hash chain is whole: {} records (toolgate audit verify).\n", chain.chained)?,
        Some(problem) => writeln!(out, "Its hash chain is broken: {problem}\n")?,
    }
    writeln!(out, "What people's answers taught toolgate (toolgate trust):")?;
    let trust = crate::trust::TrustFile::new(audit_path.with_file_name("trust.json")).read()?;
    let now = crate::clock::now_ms();
    for (key, record) in &trust.tools {
        writeln!(out, "  {}", crate::trust::describe(key, record, &shown.settings.trust, now))?;
    }
    writeln!(
        out,
        "\nTools earn trust from approvals ({} within {}) and lose it on a denial or an edit.",
        shown.settings.trust.approvals,
        humantime::format_duration(shown.settings.trust.within)
    )?;
    Ok(code)
}
