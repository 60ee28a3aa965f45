//! A desktop notification for each pending approval, so a person away from the terminal knows
//! a call waits: `notify-send` on Linux, `osascript` on macOS, when present. It only tells; the
//! answer comes through a channel (terminal, client dialog, `toolgate approve`). Off with
//! `desktop_notifications = false` in the policy's `[settings]`.

use std::process::Stdio;

use super::{Kind, Request};
use crate::visible::visible;

/// Pops up a notification for `request`, if a notifier is installed. Never blocks, never
/// touches toolgate's stdin or stdout (they carry JSON-RPC).
pub fn notify(request: &Request) {
    let (title, body) = texts(request);
    show(title, body);
}

/// Pops up a notification that a call ran under `notify` (`notice`: the line the terminal
/// shows, already escaped).
pub fn ran(server: &str, tool: &str, notice: &str) {
    show(format!("toolgate: {} ran {}", visible(server), visible(tool)), visible(notice).into_owned());
}

fn show(title: String, body: String) {
    let mut command = if cfg!(target_os = "macos") {
        let script =
            format!("display notification {} with title {}", applescript_text(&body), applescript_text(&title));
        let mut c = tokio::process::Command::new("osascript");
        c.arg("-e").arg(script);
        c
    } else {
        let mut c = tokio::process::Command::new("notify-send");
        c.arg("--app-name=toolgate").arg(title).arg(body);
        c
    };
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(false);
    match command.spawn() {
        Ok(mut child) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        // No notifier installed: nothing to say, the other channels still ask.
        Err(e) => tracing::debug!("no desktop notification: {e}"),
    }
}

/// The notification's title and body. Names and reasons are shown escaped, as on every
/// channel (`visible`).
fn texts(request: &Request) -> (String, String) {
    let (server, tool) = (visible(&request.call.server), visible(&request.call.tool));
    let title = match request.kind {
        Kind::Approve => format!("toolgate: {server} wants to run {tool}"),
        Kind::Hold => format!("toolgate: {server} will run {tool} unless you cancel"),
    };
    let body = match &request.call.reason {
        Some(reason) => {
            format!("{}. Answer in your terminal, your client, or `toolgate approve`.", visible(reason))
        }
        None => "Answer in your terminal, your client, or `toolgate approve`.".to_owned(),
    };
    (title, body)
}

/// A string literal for AppleScript.
fn applescript_text(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::policy::remember::Remember;
    use crate::policy::{Gate, Tier};

    #[test]
    fn a_notification_shows_hostile_names_and_reasons_escaped() {
        let request = Request {
            ticket: 1,
            kind: Kind::Approve,
            call: crate::decided::DecidedCall {
                server: "bank\u{202e}".into(),
                tool: "pay\r\x1b[2Kread".into(),
                arguments: serde_json::Map::new(),
                gate: Gate::Ask,
                tier: Tier::High,
                matched: crate::decided::DecidedCall::read_back(Gate::Ask, Vec::new()),
                reason: Some("it moves money\u{200b}\u{9b}".into()),
                policy: None,
                confidence: None,
            },
            deadline: Instant::now() + Duration::from_secs(60),
            remember: Remember::Impossible("no".into()),
        };
        let (title, body) = texts(&request);
        assert_eq!(title, "toolgate: bank\\u{202e} wants to run pay\\u{d}\\u{1b}[2Kread");
        assert!(body.starts_with("it moves money\\u{200b}\\u{9b}. Answer"), "{body}");
    }
}
