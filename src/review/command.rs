//! `toolgate review`: the queue by risk and age, and a person's verdicts on its items.
//!
//! Approving a parked call asks the proxy that parked it (over its socket, see
//! `human::approver_protocol`) to run it; the result is recorded in the item. When that proxy is gone,
//! `--run N -- CMD` starts the server itself and runs the call. Flagging a call that ran as
//! "should have asked" proposes the rule that would have stopped it, and `--write-rule` adds it
//! to the policy.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::visible::{self, visible, visible_lines};

use super::{Item, Queue, QueueFile, Status};
use crate::audit::Outcome;
use crate::clock::now_ms;
use crate::exit::ExitCode;
use crate::human::approver_protocol as protocol;
use crate::mcp_client::{ClientError, Server};

/// Why `toolgate review` stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The queue file could not be changed.
    #[error("{}: {source}", path.display())]
    Update { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Read(#[source] io::Error),
    #[error("cannot add the rule to {}: {source}", policy.display())]
    AddRule { policy: PathBuf, source: io::Error },
    #[error(transparent)]
    Item(#[from] ItemError),
    #[error("item {0} does not hold its call")]
    NoCall(u64),
    #[error("--run needs the server command after --")]
    NoCommand,
    #[error("no audit log location: set XDG_STATE_HOME or HOME")]
    NoAuditLog,
    #[error(transparent)]
    Audit(#[from] crate::audit::Error),
    /// Starting the server or talking to it failed (`--run`).
    #[error(transparent)]
    Server(#[from] ClientError),
    #[error("the terminal failed: {0}")]
    Terminal(#[source] dialoguer::Error),
}

/// Why an item cannot take a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    #[error("no item {0} in the queue")]
    NoItem(u64),
    #[error("{}", format!("cannot be {to:?} now: it is {is:?}").to_lowercase().replace('_', " "))]
    NotNow { to: Status, is: Status },
}

/// What to do, from the command line.
#[derive(Debug, Default)]
pub struct Request {
    pub approve: Vec<u64>,
    pub reject: Vec<u64>,
    pub flag: Vec<u64>,
    /// Mark items to review as looked at.
    pub reviewed: Vec<u64>,
    pub reason: Option<String>,
    /// Append the proposed rules of flagged items to this policy.
    pub write_rule: Option<std::path::PathBuf>,
    /// Run this approved item by starting the server command.
    pub run: Option<(u64, Vec<std::ffi::OsString>)>,
    /// Parked calls expire after this long.
    pub expiry: Duration,
    pub json: bool,
}

/// Carries out `request` and prints what happened; returns the exit code.
pub fn review(file: &QueueFile, request: &Request, out: &mut impl Write) -> Result<ExitCode, Error> {
    let expiry = u64::try_from(request.expiry.as_millis()).unwrap_or(u64::MAX);
    let updating = |source| Error::Update { path: file.path().to_owned(), source };
    let expired = file.update(|q| q.expire(expiry, now_ms())).map_err(updating)?;
    if expired > 0 {
        let _ = writeln!(out, "{expired} parked call(s) expired unapproved; they will never run");
    }
    let mut failed = false;
    let note = |verdict: &str| match &request.reason {
        Some(r) => format!("{verdict} by a person: {r}"),
        None => format!("{verdict} by a person"),
    };
    for (ids, from, to, verdict) in [
        (&request.reject, &[Status::Waiting][..], Status::Rejected, "rejected"),
        (&request.reviewed, &[Status::ToReview][..], Status::Reviewed, "reviewed"),
        (&request.flag, &[Status::ToReview, Status::Reviewed, Status::Ran][..], Status::Flagged, "flagged"),
        (&request.approve, &[Status::Waiting][..], Status::Approved, "approved"),
    ] {
        for &id in ids {
            let changed = file.update(|q| set(q, id, from, to, note(verdict))).map_err(updating)?;
            match changed {
                Ok(item) => {
                    let _ = writeln!(
                        out,
                        "item {id}: {verdict} ({}/{})",
                        visible(&item.call.server),
                        visible(&item.call.tool)
                    );
                    if to == Status::Flagged {
                        flagged(&item, request.write_rule.as_deref(), out)?;
                    }
                    if to == Status::Approved && request.run.is_none() {
                        failed |= !ask_proxy_to_run(&item, out);
                    }
                }
                Err(why) => {
                    failed = true;
                    let _ = writeln!(out, "item {id}: {}", visible(&why.to_string()));
                }
            }
        }
    }
    if let Some((id, command)) = &request.run {
        failed |= !run_with_server(file, *id, command, out)?;
    }
    let nothing_asked = request.approve.is_empty()
        && request.reject.is_empty()
        && request.flag.is_empty()
        && request.reviewed.is_empty()
        && request.run.is_none();
    if nothing_asked {
        let queue = file.read().map_err(Error::Read)?;
        list(&queue, request.json, out);
    }
    Ok(ExitCode::failed_if(failed))
}

/// Moves item `id` from one of `from` to `to`.
fn set(q: &mut Queue, id: u64, from: &[Status], to: Status, note: String) -> Result<Item, ItemError> {
    let item = q.items.get_mut(&id).ok_or(ItemError::NoItem(id))?;
    if !from.contains(&item.status) {
        return Err(ItemError::NotNow { to, is: item.status });
    }
    item.status = to;
    item.note = Some(note);
    item.decided_at = Some(now_ms());
    Ok(item.clone())
}

/// The queue, by risk then age, one item per line.
fn list(queue: &Queue, json: bool, out: &mut impl Write) {
    let mut items: Vec<&Item> = queue.items.values().collect();
    items.sort_by(|a, b| b.risk().cmp(&a.risk()).then(a.at.cmp(&b.at)));
    if items.is_empty() && !json {
        let _ = writeln!(out, "the review queue is empty");
    }
    for item in items {
        if json {
            let _ = writeln!(out, "{}", crate::visible::to_json(item).unwrap_or_default());
            continue;
        }
        let age = humantime::format_duration(Duration::from_secs(now_ms().saturating_sub(item.at) / 1000));
        let status = format!("{:?}", item.status).to_lowercase();
        let args = visible::json(&Value::Object(item.call.arguments.clone()).to_string()).into_owned();
        let short: String = args.chars().take(80).collect();
        let _ = writeln!(
            out,
            "{:>4}  {:<10} {:<6} {}/{}  {short}  ({age} ago{})",
            item.id,
            status,
            item.call.tier.as_str(),
            visible(&item.call.server),
            visible(&item.call.tool),
            item.proxy.map(|p| format!(", toolgate {p}")).unwrap_or_default()
        );
    }
}

/// A flagged call: the rule that would have asked, shown, and written when asked to.
fn flagged(item: &Item, policy: Option<&Path>, out: &mut impl Write) -> Result<(), Error> {
    let rule = crate::policy::remember::should_have_asked(&item.call.server, &item.call.tool);
    let _ = writeln!(out, "this rule would have asked:\n\n{}", visible_lines(&rule));
    if let Some(policy) = policy {
        crate::policy::remember::append(policy, &rule, "Added from a review: this call should have asked.")
            .map_err(|source| Error::AddRule { policy: policy.to_owned(), source })?;
        let _ = writeln!(out, "added to {}", policy.display());
    }
    Ok(())
}

/// Asks the proxy that parked an approved item to run it; false when it could not.
fn ask_proxy_to_run(item: &Item, out: &mut impl Write) -> bool {
    let Some(pid) = item.proxy else { return false };
    let socket = protocol::socket_path_of(&protocol::folder(), pid);
    let ran = (|| -> std::io::Result<Value> {
        let stream = UnixStream::connect(&socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut writer = stream.try_clone()?;
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "run", "params": {"item": item.id}});
        writer.write_all(&protocol::line(&request))?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        serde_json::from_str(&line).map_err(std::io::Error::other)
    })();
    match ran {
        Ok(reply) if reply.get("result").is_some() => {
            let _ = writeln!(out, "item {}: ran: {}", item.id, visible::json(&reply["result"]["result"].to_string()));
            true
        }
        Ok(reply) => {
            let said = visible::json(&reply["error"]["message"].to_string()).into_owned();
            let _ = writeln!(out, "item {}: the proxy did not run it: {said}", item.id);
            false
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "item {}: approved, but its proxy (toolgate {pid}) cannot be reached ({e}); run it with: toolgate review --run {} -- SERVER COMMAND",
                item.id, item.id
            );
            false
        }
    }
}

/// Runs an approved item by starting the server command and speaking MCP to it: initialize,
/// then the call; the result is recorded in the item.
fn run_with_server(
    file: &QueueFile,
    id: u64,
    command: &[std::ffi::OsString],
    out: &mut impl Write,
) -> Result<bool, Error> {
    let queue = file.read().map_err(Error::Read)?;
    let item = queue.items.get(&id).ok_or(ItemError::NoItem(id))?;
    if item.status != Status::Approved {
        let _ = writeln!(out, "item {id} is not approved (it is {:?}); approve it first", item.status);
        return Ok(false);
    }
    let mut params = item.params.clone().ok_or(Error::NoCall(id))?;
    // A proxy that took toolgate's confidence property from the call decided on arguments
    // without it (items parked by older versions kept it in `params`); it is never sent.
    let property = crate::confidence::PROPERTY;
    if !item.call.arguments.contains_key(property)
        && let Some(arguments) = params.get_mut("arguments").and_then(Value::as_object_mut)
    {
        arguments.shift_remove(property);
    }
    let (program, args) = command.split_first().ok_or(Error::NoCommand)?;
    // Recorded before it runs, as every call is.
    let mut audit = crate::audit::AuditLog::open(&crate::paths::default_audit_log().ok_or(Error::NoAuditLog)?);
    let note = format!("review item {id}, approved; run by toolgate review --run");
    let record = crate::audit::DecisionRecord {
        call: &item.call,
        edited_arguments: None,
        request_id: json!(2),
        verdict: crate::audit::Verdict::Forwarded,
        decided_by: crate::audit::DecidedBy::Human,
        channel: Some("review"),
        note: Some(&note),
        waited_ms: 0,
    };
    let call = audit.decision(&record)?;
    let started = std::time::Instant::now();
    let mut command = Command::new(program);
    command.args(args).stderr(Stdio::inherit());
    let mut server = Server::spawn(&mut command)?;
    server.client.initialize("toolgate-review")?;
    let (result, outcome) = match server.client.request("tools/call", params) {
        Ok(result) if result.get("isError") == Some(&Value::Bool(true)) => (result, Outcome::ToolError),
        Ok(result) => (result, Outcome::Ok),
        Err(ClientError::Refused { error, .. }) => (json!({"error": error.object}), Outcome::Error),
        Err(e) => return Err(e.into()),
    };
    let took = started.elapsed();
    drop(server);
    audit.outcome(call, outcome, took);
    file.update(|q| {
        if let Some(item) = q.items.get_mut(&id) {
            item.status = Status::Ran;
            item.result = Some(result.clone());
        }
    })
    .map_err(Error::Read)?;
    let _ = writeln!(out, "item {id}: ran: {}", visible::json(&result.to_string()));
    Ok(true)
}

/// `toolgate review` on a terminal with no action given: pick items (one, or several at once)
/// and what to do with them, until the queue is done or the person quits (Esc or q).
pub fn interactive(file: &QueueFile, expiry: Duration, out: &mut impl Write) -> Result<ExitCode, Error> {
    use dialoguer::console::Term;
    use dialoguer::{MultiSelect, Select};
    let term = Term::stderr();
    let fail = Error::Terminal;
    loop {
        let expiry_ms = u64::try_from(expiry.as_millis()).unwrap_or(u64::MAX);
        file.update(|q| q.expire(expiry_ms, now_ms())).map_err(Error::Read)?;
        let queue = file.read().map_err(Error::Read)?;
        let mut items: Vec<&Item> =
            queue.items.values().filter(|i| matches!(i.status, Status::Waiting | Status::ToReview)).collect();
        items.sort_by(|a, b| b.risk().cmp(&a.risk()).then(a.at.cmp(&b.at)));
        if items.is_empty() {
            let _ = writeln!(out, "nothing left to review");
            return Ok(ExitCode::OK);
        }
        let labels: Vec<String> = items.iter().map(|i| label(i)).collect();
        let mut choices = labels.clone();
        choices.push("several at once…".into());
        choices.push("quit".into());
        let picked = Select::new()
            .with_prompt("review queue (highest risk first; Enter picks, Esc quits)")
            .items(&choices)
            .default(0)
            .interact_on_opt(&term)
            .map_err(fail)?;
        let chosen: Vec<&Item> = match picked {
            None => return Ok(ExitCode::OK),
            Some(n) if n == labels.len() + 1 => return Ok(ExitCode::OK),
            Some(n) if n == labels.len() => {
                let several = MultiSelect::new()
                    .with_prompt("Space marks, Enter takes them")
                    .items(&labels)
                    .interact_on_opt(&term)
                    .map_err(fail)?;
                match several {
                    Some(marked) if !marked.is_empty() => marked.into_iter().map(|i| items[i]).collect(),
                    _ => continue,
                }
            }
            Some(n) => vec![items[n]],
        };
        let parked = chosen.iter().all(|i| i.status == Status::Waiting);
        let actions: &[&str] = if parked {
            &["approve (it runs now)", "reject (it never runs)", "back"]
        } else if chosen.iter().all(|i| i.status == Status::ToReview) {
            &["looks fine", "flag: it should have asked", "back"]
        } else {
            let _ = writeln!(out, "pick parked calls and calls that ran separately");
            continue;
        };
        let Some(action) =
            Select::new().with_prompt("do what?").items(actions).default(0).interact_on_opt(&term).map_err(fail)?
        else {
            continue;
        };
        let ids: Vec<u64> = chosen.iter().map(|i| i.id).collect();
        let mut request = Request { expiry, ..Request::default() };
        match (parked, action) {
            (true, 0) => request.approve = ids,
            (true, 1) => request.reject = ids,
            (false, 0) => request.reviewed = ids,
            (false, 1) => request.flag = ids,
            _ => continue,
        }
        review(file, &request, out)?;
    }
}

fn label(item: &Item) -> String {
    let age = humantime::format_duration(Duration::from_secs(now_ms().saturating_sub(item.at) / 1000));
    let what = if item.status == Status::Waiting { "parked, has not run" } else { "ran" };
    let args = visible::json(&Value::Object(item.call.arguments.clone()).to_string()).into_owned();
    let short: String = args.chars().take(60).collect();
    let (server, tool) = (visible(&item.call.server), visible(&item.call.tool));
    format!("#{} {} {server}/{tool} {short} ({what}, {age} ago)", item.id, item.call.tier.as_str())
}
