//! The channel to `toolgate approve`: every running proxy listens on a local socket in a folder
//! only its user can open, and approvers in any terminal of that user connect to each.
//!
//! The folder is `$XDG_RUNTIME_DIR/toolgate/` (or `/tmp/toolgate-UID/` without one). It must be
//! a real folder, owned by the user and closed to everyone else, or toolgate will not use it.
//! Each proxy's socket is `PID.sock`. Both ends check the other's credentials (`SO_PEERCRED`):
//! a connection from another user is closed unread, even if the folder was opened to them.
//!
//! The protocol is JSON-RPC 2.0, one message per line (docs/reference/approver-protocol.md):
//! the approver sends `subscribe` and gets the proxy's pending approvals, then `offered` and
//! `withdrawn` notifications as they happen; it answers with `answer`, which the proxy takes only
//! from a subscribed connection, for an approval it offered to that connection.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::net::{UnixListener, UnixStream};

use super::{Answer, Kind, Remember, Request};
use crate::decided::DecidedCall;
use crate::policy::{Gate, Tier};

/// The folder every proxy of this user puts its socket in.
pub fn folder() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(runtime) => runtime.join("toolgate"),
        None => std::env::temp_dir().join(format!("toolgate-{}", nix::unistd::geteuid())),
    }
}

/// Creates the folder (owner-only) if it is missing, and checks that it is private: a real
/// folder, not a link, owned by this user, closed to group and others.
pub fn private_folder(path: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))),
    }
    let meta = fs::symlink_metadata(path)?;
    let refuse = |why: &str| Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{}: {why}", path.display())));
    if !meta.is_dir() {
        return refuse("not a folder");
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return refuse("owned by another user");
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return refuse("open to other users (it must be mode 0700)");
    }
    Ok(())
}

/// This process's socket in the folder.
pub fn socket_path(folder: &Path) -> PathBuf {
    socket_path_of(folder, std::process::id())
}

/// The socket of the toolgate with this process id.
pub fn socket_path_of(folder: &Path, pid: u32) -> PathBuf {
    folder.join(format!("{pid}.sock"))
}

/// A proxy's listening socket; the file is removed when it is dropped.
pub struct Listener {
    pub listener: UnixListener,
    pub path: PathBuf,
}

impl Listener {
    /// Binds this process's socket in the private folder.
    pub fn bind() -> io::Result<Listener> {
        let folder = folder();
        private_folder(&folder)?;
        let path = socket_path(&folder);
        // A file of this name is left from an earlier process with our pid, which is gone.
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        Ok(Listener { listener, path })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether the other end of a connection runs as this user.
pub fn same_user(stream: &UnixStream) -> Result<(), String> {
    let ours = nix::unistd::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == ours => Ok(()),
        Ok(cred) => Err(format!("its peer runs as uid {}, not {ours}", cred.uid())),
        Err(e) => Err(format!("cannot read its peer's credentials: {e}")),
    }
}

/// A pending approval as the socket carries it: a [`Request`] and its decided call, with the
/// rules that chose the gate and their reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub ticket: u64,
    /// `approve` (waits for a yes) or `hold` (runs at the deadline unless cancelled).
    pub kind: Kind,
    pub server: String,
    pub tool: String,
    pub arguments: Map<String, Value>,
    pub gate: Gate,
    pub tier: Tier,
    /// The rules that chose the gate.
    pub rules: Vec<RuleReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Milliseconds until the approval ends by itself.
    pub expires_in_ms: u64,
    /// The rule "remember" would add, and to which file; absent when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remember: Option<RememberRule>,
    /// Why "remember" is not possible, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cannot_remember: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleReason {
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RememberRule {
    pub policy: PathBuf,
    pub rule: String,
}

impl Approval {
    pub fn from_request(request: &Request, now: Instant) -> Approval {
        let (remember, cannot_remember) = match &request.remember {
            Remember::Possible { policy, rule } => {
                (Some(RememberRule { policy: policy.clone(), rule: rule.clone() }), None)
            }
            Remember::Impossible(why) => (None, Some(why.clone())),
        };
        let call = &request.call;
        Approval {
            ticket: request.ticket,
            kind: request.kind,
            server: call.server.to_string(),
            tool: call.tool.clone(),
            arguments: call.arguments.clone(),
            gate: call.gate,
            tier: call.tier,
            rules: call.deciding().map(|m| RuleReason { rule: m.rule.clone(), reason: m.reason.clone() }).collect(),
            reason: call.reason.clone(),
            expires_in_ms: u64::try_from(request.deadline.saturating_duration_since(now).as_millis())
                .unwrap_or(u64::MAX),
            remember,
            cannot_remember,
        }
    }

    /// The request to show locally under `ticket`, ending `expires_in_ms` after `now`.
    pub fn to_request(&self, ticket: u64, now: Instant) -> Request {
        let remember = match (&self.remember, &self.cannot_remember) {
            (Some(r), _) => Remember::Possible { policy: r.policy.clone(), rule: r.rule.clone() },
            (None, why) => Remember::Impossible(why.clone().unwrap_or_else(|| "the proxy did not say".to_owned())),
        };
        let rules = self.rules.iter().map(|r| (r.rule.clone(), r.reason.clone()));
        Request {
            ticket,
            kind: self.kind,
            call: DecidedCall {
                server: self.server.as_str().into(),
                tool: self.tool.clone(),
                arguments: self.arguments.clone(),
                gate: self.gate,
                tier: self.tier,
                matched: DecidedCall::read_back(self.gate, rules),
                reason: self.reason.clone(),
                policy: None,
                confidence: None,
            },
            deadline: now + Duration::from_millis(self.expires_in_ms),
            remember,
        }
    }
}

/// An answer as the socket carries it: `decision` is `allow_once`, `allow_session`,
/// `remembered` (the approver wrote the proposed rule), `deny` (with an optional `reason`), or
/// `edit` (with the `arguments` to run instead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerParams {
    pub ticket: u64,
    pub decision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Map<String, Value>>,
}

impl AnswerParams {
    pub fn new(ticket: u64, answer: &Answer) -> AnswerParams {
        let (decision, reason, arguments) = match answer {
            Answer::AllowOnce => ("allow_once", None, None),
            Answer::AllowForSession => ("allow_session", None, None),
            Answer::Remembered => ("remembered", None, None),
            Answer::Deny { reason } => ("deny", reason.clone(), None),
            Answer::Edited(arguments) => ("edit", None, Some(arguments.clone())),
        };
        AnswerParams { ticket, decision: decision.to_owned(), reason, arguments }
    }

    /// The answer, or why these params are not one.
    pub fn answer(&self) -> Result<Answer, String> {
        match (self.decision.as_str(), &self.reason, &self.arguments) {
            ("allow_once", None, None) => Ok(Answer::AllowOnce),
            ("allow_session", None, None) => Ok(Answer::AllowForSession),
            ("remembered", None, None) => Ok(Answer::Remembered),
            ("deny", reason, None) => Ok(Answer::Deny { reason: reason.clone().filter(|r| !r.trim().is_empty()) }),
            ("edit", None, Some(arguments)) => Ok(Answer::Edited(arguments.clone())),
            ("edit", _, None) => Err("`edit` needs `arguments`".to_owned()),
            ("allow_once" | "allow_session" | "remembered" | "deny" | "edit", _, _) => Err(format!(
                "`{}` takes no other field but `ticket`{}",
                self.decision,
                match self.decision.as_str() {
                    "deny" => " and `reason`",
                    "edit" => " and `arguments`",
                    _ => "",
                }
            )),
            (other, _, _) => Err(format!(
                "unknown decision `{other}` (expected allow_once, allow_session, remembered, deny or edit)"
            )),
        }
    }
}

/// One JSON-RPC message as a line.
pub fn line(message: &Value) -> Vec<u8> {
    let mut bytes = message.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_malformed_ones_are_refused() {
        let mut args = Map::new();
        args.insert("to".into(), Value::from("x"));
        for answer in [
            Answer::AllowOnce,
            Answer::AllowForSession,
            Answer::Remembered,
            Answer::Deny { reason: Some("no".into()) },
            Answer::Deny { reason: None },
            Answer::Edited(args),
        ] {
            assert_eq!(AnswerParams::new(7, &answer).answer(), Ok(answer));
        }
        let bad = |decision: &str, reason: Option<&str>| AnswerParams {
            ticket: 1,
            decision: decision.into(),
            reason: reason.map(str::to_owned),
            arguments: None,
        };
        assert!(bad("yes", None).answer().is_err());
        assert!(bad("edit", None).answer().is_err());
        assert!(bad("allow_once", Some("because")).answer().is_err());
        assert!(serde_json::from_str::<AnswerParams>(r#"{"ticket":1,"decision":"deny","extra":1}"#).is_err());
    }

    /// An approval's bytes, pinned: `toolgate approve` and other front ends read them
    /// (docs/reference/approver-protocol.md). It lists the rules that chose the gate; what a
    /// front end reads back shows the same.
    #[test]
    fn an_approval_keeps_its_bytes_and_reads_back_as_it_was_sent() {
        let now = Instant::now();
        let matched = |rule: &str, gate: Gate, reason: Option<&str>| crate::policy::Matched {
            rule: rule.into(),
            gate: Some(gate),
            tier: Some(Tier::High),
            reason: reason.map(str::to_owned),
            some_readings: false,
        };
        let asked = Request {
            ticket: 3,
            kind: Kind::Approve,
            call: DecidedCall {
                server: "fs".into(),
                tool: "write_file".into(),
                arguments: serde_json::json!({"path": "/etc/hosts"}).as_object().cloned().unwrap(),
                gate: Gate::Ask,
                tier: Tier::High,
                matched: vec![
                    matched("notes writes", Gate::Notify, Some("it writes")),
                    matched("writes outside the project", Gate::Ask, Some("writes outside the project")),
                    matched("asks writes", Gate::Ask, None),
                ],
                reason: Some("writes outside the project".into()),
                policy: Some("sha256:6d7f9cc82f44ddcb".into()),
                confidence: Some(0.5),
            },
            deadline: now + Duration::from_millis(1500),
            remember: Remember::Possible {
                policy: "/home/me/policy.toml".into(),
                rule: "[[rules]]\nname = \"x\"\n".into(),
            },
        };
        let held = Request {
            ticket: 4,
            kind: Kind::Hold,
            call: DecidedCall {
                server: "fs".into(),
                tool: "t".into(),
                arguments: Map::new(),
                gate: Gate::Hold,
                tier: Tier::Medium,
                matched: vec![],
                reason: None,
                policy: Some("sha256:6d7f9cc82f44ddcb".into()),
                confidence: None,
            },
            deadline: now,
            remember: Remember::Impossible("no policy file".into()),
        };
        for (request, bytes) in [
            (
                &asked,
                r#"{"ticket":3,"kind":"approve","server":"fs","tool":"write_file","arguments":{"path":"/etc/hosts"},"gate":"ask","tier":"high","rules":[{"rule":"writes outside the project","reason":"writes outside the project"},{"rule":"asks writes"}],"reason":"writes outside the project","expires_in_ms":1500,"remember":{"policy":"/home/me/policy.toml","rule":"[[rules]]\nname = \"x\"\n"}}"#,
            ),
            (
                &held,
                r#"{"ticket":4,"kind":"hold","server":"fs","tool":"t","arguments":{},"gate":"hold","tier":"medium","rules":[],"expires_in_ms":0,"cannot_remember":"no policy file"}"#,
            ),
        ] {
            let sent = serde_json::to_string(&Approval::from_request(request, now)).unwrap();
            assert_eq!(sent, bytes);
            let read: Approval = serde_json::from_str(&sent).unwrap();
            let shown = read.to_request(request.ticket, now);
            assert_eq!(
                (shown.kind, shown.deadline, &shown.remember),
                (request.kind, request.deadline, &request.remember)
            );
            assert_eq!(serde_json::to_string(&Approval::from_request(&shown, now)).unwrap(), bytes);
        }
    }

    #[test]
    fn a_folder_open_to_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("toolgate");
        private_folder(&folder).unwrap();
        assert_eq!(fs::metadata(&folder).unwrap().permissions().mode() & 0o777, 0o700);
        fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).unwrap();
        let err = private_folder(&folder).unwrap_err();
        assert!(err.to_string().contains("open to other users"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&folder, &link).unwrap();
        fs::set_permissions(&folder, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(private_folder(&link).unwrap_err().to_string().contains("not a folder"));
    }
}
