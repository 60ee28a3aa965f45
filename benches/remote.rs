//! What `toolgate run --url` adds to a call over Streamable HTTP: a local HTTP/1.1 MCP server
//! (in this bench, answering each POST with one JSON body, so that the server costs next to
//! nothing), called straight by a minimal keep-alive HTTP client, and through toolgate by a
//! stdio client, one `tools/call` at a time.
//!
//! Run: `cargo bench --bench remote` (`TOOLGATE_BENCH_ROUNDS`, default 3, interleaves the two
//! paths). Prints the median and 99th percentile of each path's round trip and what toolgate
//! adds over the direct client, per round; numbers in docs/reference/performance.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Instant;

const CALLS: usize = 5_000;
const WARM_UP: usize = 200;

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let stream = stream.unwrap();
            std::thread::spawn(move || serve(stream));
        }
    });
    let dir = std::env::temp_dir().join(format!("toolgate-remote-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let policy = dir.join("config/policy.toml");
    std::fs::write(&policy, "[settings]\ndefault_tier = \"low\"\n").unwrap();
    let rounds: usize = std::env::var("TOOLGATE_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    println!("{rounds} round(s) of {CALLS} sequential tools/call round trips (after {WARM_UP} to warm up), µs");
    println!(
        "{:<8} {:>14} {:>14} {:>14} {:>14}",
        "round", "direct median", "direct p99", "toolgate med.", "toolgate p99"
    );
    let mut added = Vec::new();
    for round in 1..=rounds {
        let direct = direct(port);
        let through = through_toolgate(port, &dir, &policy);
        let (d, t) = (stats(direct), stats(through));
        println!("{round:<8} {:>14.1} {:>14.1} {:>14.1} {:>14.1}", d.0, d.1, t.0, t.1);
        added.push(t.0 - d.0);
    }
    added.sort_by(f64::total_cmp);
    println!(
        "toolgate adds {:.1} µs to the median round trip (median of the rounds; {:.1} to {:.1})",
        added[added.len() / 2],
        added[0],
        added[added.len() - 1]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Median and 99th percentile, µs.
fn stats(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn call(id: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hi"}}}}}}"#
    )
}

/// The direct path: a keep-alive HTTP/1.1 client on one connection, as an HTTP MCP client is.
fn direct(port: u16) -> Vec<f64> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..WARM_UP + CALLS {
        let body = call(i);
        let start = Instant::now();
        write!(
            writer,
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json, text/event-stream\r\n\
             Content-Type: application/json\r\nMcp-Session-Id: bench\r\nMCP-Protocol-Version: 2025-06-18\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let (_, answer) = read_message(&mut reader).unwrap();
        assert!(answer.contains("\"result\""), "{answer}");
        if i >= WARM_UP {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    samples
}

/// The same calls as stdio lines to `toolgate run --url`.
fn through_toolgate(port: u16, dir: &std::path::Path, policy: &std::path::Path) -> Vec<f64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["run", "-q", "--policy"])
        .arg(policy)
        .arg("--audit")
        .arg(dir.join("audit.jsonl"))
        .arg("--url")
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .env("HOME", dir)
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_RUNTIME_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut round_trip = |message: &str, line: &mut String| {
        stdin.write_all(message.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
        line.clear();
        assert!(stdout.read_line(line).unwrap() > 0, "toolgate ended");
    };
    round_trip(
        r#"{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#,
        &mut line,
    );
    round_trip(r#"{"jsonrpc":"2.0","id":"list","method":"tools/list"}"#, &mut line);
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..WARM_UP + CALLS {
        let start = Instant::now();
        round_trip(&call(i), &mut line);
        assert!(line.contains("\"result\""), "{line}");
        if i >= WARM_UP {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(stdin);
    child.wait().unwrap();
    samples
}

/// Reads one HTTP/1.1 message's head and its `Content-Length` body.
fn read_message(reader: &mut BufReader<TcpStream>) -> Option<(String, String)> {
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, String::from_utf8(body).ok()?))
}

/// One connection of the bench server: each POST of a request gets one JSON answer, a
/// notification 202; GET (no stream of its own) 405; DELETE 200.
fn serve(stream: TcpStream) {
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some((head, body)) = read_message(&mut reader) {
        let respond = |writer: &mut TcpStream, status: &str, extra: &str, body: &str| {
            let kind = if body.is_empty() { "" } else { "Content-Type: application/json\r\n" };
            write!(writer, "HTTP/1.1 {status}\r\n{kind}{extra}Content-Length: {}\r\n\r\n{body}", body.len()).is_ok()
        };
        let ok = if head.starts_with("GET") {
            respond(&mut writer, "405 Method Not Allowed", "", "")
        } else if head.starts_with("DELETE") {
            respond(&mut writer, "200 OK", "", "")
        } else {
            let message: serde_json::Value = serde_json::from_str(&body).unwrap();
            match (message.get("id"), message["method"].as_str()) {
                (None, _) | (_, None) => respond(&mut writer, "202 Accepted", "", ""),
                (Some(id), Some(method)) => {
                    let result = match method {
                        "initialize" => {
                            serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                            "serverInfo": {"name": "bench", "version": "1"}})
                        }
                        "tools/list" => serde_json::json!({"tools": [{"name": "echo",
                            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}]}),
                        _ => serde_json::json!({"content": [{"type": "text", "text": "hi"}]}),
                    };
                    let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
                    let session = if method == "initialize" { "Mcp-Session-Id: bench\r\n" } else { "" };
                    respond(&mut writer, "200 OK", session, &answer)
                }
            }
        };
        if !ok {
            return;
        }
    }
}
