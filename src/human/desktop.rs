//! A desktop notification for each pending approval, so a person away from the terminal knows
//! a call waits: `notify-send` on Linux, `osascript` on macOS, when present. It only tells; the
//! answer comes through a channel (terminal, client dialog, `toolgate approve`). Off with
//! `desktop_notifications = false` in the policy's `[settings]`.

use std::process::Stdio;

use super::{Kind, Request};

/// Pops up a notification for `request`, if a notifier is installed. Never blocks, never
/// touches toolgate's stdin or stdout (they carry JSON-RPC).
pub fn notify(request: &Request) {
    let title = match request.kind {
        Kind::Approve => format!("toolgate: {} wants to run {}", request.server, request.tool),
        Kind::Hold => format!("toolgate: {} will run {} unless you cancel", request.server, request.tool),
    };
    let body = match &request.reason {
        Some(reason) => format!("{reason}. Answer in your terminal, your client, or `toolgate approve`."),
        None => "Answer in your terminal, your client, or `toolgate approve`.".to_owned(),
    };
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

/// A string literal for AppleScript.
fn applescript_text(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
