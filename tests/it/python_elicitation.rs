//! toolgate's own question inside a real client: the official Python SDK client (`mcp==2.3.0`,
//! legacy mode) declares elicitation, so toolgate holds a high-risk `write_marker` and asks
//! through `elicitation/create`. Only an approval writes the marker; a denial, a decline, a
//! cancel, a garbage answer and an error each refuse with a reason the model reads; the audit
//! says who decided on which channel. A client that declares no elicitation (legacy or
//! 2026-07-28) and has no terminal is refused at once and told how to be asked.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};

const POLICY: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"20s\"\ndesktop_notifications = false\n\
[[rules]]\nname = \"writes need a yes\"\ntools = [\"write_marker\"]\ntier = \"high\"\nreason = \"it writes a file\"\n";

/// Longer than the approval timeout plus the client's read timeout: past it, the run is stuck.
const STUCK: Duration = Duration::from_secs(90);

struct Outcome {
    out: Value,
    marker: PathBuf,
    audit: PathBuf,
    _env: Env,
}

/// Runs `elicit_client.py MODE BEHAVIOUR MARKER` through toolgate in front of the SDK's own
/// server, in a new session: neither the client nor toolgate has a controlling terminal, so
/// toolgate cannot ask on the terminal of whoever runs the tests.
fn run(mode: &str, behaviour: &str) -> Outcome {
    let env = Env::new();
    let policy = policy_file(env.path(), POLICY);
    let marker = env.join("marker");
    let audit = env.join("audit.jsonl");
    let (stdout, stderr) = (env.join("stdout"), env.join("stderr"));
    let args = [mode.as_ref(), behaviour.as_ref(), marker.as_os_str()];
    let mut client = sdk_client_through_toolgate(&env, "elicit_client.py", &args, &policy, &audit)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).unwrap())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let status = exited(&mut client, &stderr);
    let printed = std::fs::read_to_string(&stdout).unwrap();
    let errors = std::fs::read_to_string(&stderr).unwrap();
    assert!(status.success(), "{mode} {behaviour}: the client failed ({status}): {errors}\n{printed}");
    let out = serde_json::from_str(printed.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {printed}\n{errors}"));
    Outcome { out, marker, audit, _env: env }
}

/// Waits for the client to exit; past [`STUCK`], kills its session (client, toolgate, server).
fn exited(client: &mut std::process::Child, stderr: &Path) -> ExitStatus {
    let deadline = Instant::now() + STUCK;
    loop {
        if let Some(status) = client.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let session = nix::unistd::Pid::from_raw(client.id() as i32);
            let _ = nix::sys::signal::killpg(session, nix::sys::signal::Signal::SIGKILL);
            let _ = client.kill();
            let _ = client.wait();
            panic!("the client did not exit within {STUCK:?}: {}", std::fs::read_to_string(stderr).unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The questions the client's elicitation callback saw.
fn questions(o: &Outcome) -> &Vec<Value> {
    o.out["asked"].as_array().unwrap()
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text: {result}"))
}

/// The audit's one decision record.
fn decision(o: &Outcome) -> Value {
    let mut records = audit_decisions(&o.audit);
    assert_eq!(records.len(), 1, "{records:?}");
    records.remove(0)
}

fn who(record: &Value) -> (&str, &str, Option<&str>) {
    (record["verdict"].as_str().unwrap(), record["decided_by"].as_str().unwrap(), record["channel"].as_str())
}

/// A legacy-mode call the person was asked about and that did not run; its refusal text.
fn refused(behaviour: &str) -> Outcome {
    let o = run("legacy", behaviour);
    assert_eq!(o.out["protocol"], "2025-11-25", "{}", o.out);
    assert!(!o.marker.exists(), "{behaviour}: the call ran");
    assert_eq!(o.out["first"]["isError"], true, "{behaviour}: {}", o.out);
    assert_eq!(questions(&o).len(), 1, "{behaviour}: asked once: {}", o.out);
    o
}

#[test]
fn an_approval_in_the_client_runs_the_call() {
    let o = run("legacy", "approve");
    assert_eq!(o.out["protocol"], "2025-11-25", "legacy mode initializes: {}", o.out);
    assert_eq!(o.out["first"]["isError"], false, "{}", o.out);
    assert_eq!(text(&o.out["first"]), "written");
    assert!(o.marker.exists(), "approved, yet the call did not run");

    let asked = questions(&o);
    assert_eq!(asked.len(), 1, "{asked:?}");
    let message = asked[0]["message"].as_str().unwrap();
    assert!(message.starts_with("toolgate (the approval gate in front of server \"sdk\") asks you:"), "{message}");
    assert!(message.contains("`write_marker`") && message.contains(o.marker.to_str().unwrap()), "{message}");
    assert!(message.contains("rule \"writes need a yes\" (it writes a file)"), "{message}");
    let schema = &asked[0]["requestedSchema"];
    let choices = &schema["properties"]["toolgate_decision"]["enum"];
    for choice in ["allow_once", "allow_session", "deny"] {
        assert!(choices.as_array().unwrap().contains(&json!(choice)), "{choice} is not offered: {schema}");
    }
    assert_eq!(schema["properties"]["toolgate_reason"]["type"], "string", "{schema}");
    assert_eq!(schema["required"], json!(["toolgate_decision"]), "the reason is optional: {schema}");

    let record = decision(&o);
    assert_eq!(who(&record), ("forwarded", "human", Some("elicitation")), "{record}");
}

#[test]
fn allow_for_the_session_runs_a_second_call_unasked() {
    let o = run("legacy", "session");
    assert_eq!(o.out["first"]["isError"], false, "{}", o.out);
    assert_eq!(o.out["second"]["isError"], false, "{}", o.out);
    let second = PathBuf::from(format!("{}.2", o.marker.display()));
    assert!(o.marker.exists() && second.exists(), "both calls ran: {}", o.out);
    assert_eq!(questions(&o).len(), 1, "the second call is not asked again: {}", o.out);
    let records = audit_decisions(&o.audit);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(who(&records[0]), ("forwarded", "human", Some("elicitation")), "{}", records[0]);
    assert_eq!(who(&records[1]), ("forwarded", "human", Some("session")), "{}", records[1]);
}

#[test]
fn a_denial_refuses_and_its_reason_reaches_the_model() {
    let o = refused("deny");
    assert_eq!(
        text(&o.out["first"]),
        "The user declined this call to `write_marker`, so it was not run. They said: not today"
    );
    let record = decision(&o);
    assert_eq!(who(&record), ("refused", "human", Some("elicitation")), "{record}");
    assert_eq!(record["note"], "not today");
}

#[test]
fn a_decline_refuses() {
    let o = refused("decline");
    assert_eq!(text(&o.out["first"]), "The user declined this call to `write_marker`, so it was not run.");
    let record = decision(&o);
    assert_eq!(who(&record), ("refused", "human", Some("elicitation")), "{record}");
}

#[test]
fn a_cancel_refuses() {
    let o = refused("cancel");
    assert_eq!(text(&o.out["first"]), "The user declined this call to `write_marker`, so it was not run.");
    let record = decision(&o);
    assert_eq!(who(&record), ("refused", "human", Some("elicitation")), "{record}");
}

const UNREADABLE: &str = "toolgate asked the user about this call to `write_marker`, but the answer could not be read, so the call was not run.";

#[test]
fn an_answer_that_is_not_a_choice_refuses() {
    let o = refused("garbage");
    assert_eq!(text(&o.out["first"]), UNREADABLE);
    let record = decision(&o);
    assert_eq!(who(&record), ("refused", "toolgate", Some("elicitation")), "{record}");
    assert!(record["note"].as_str().unwrap().contains("sure, why not"), "{record}");
}

#[test]
fn an_error_from_the_callback_refuses() {
    let o = refused("error");
    assert_eq!(text(&o.out["first"]), UNREADABLE);
    let record = decision(&o);
    assert_eq!(who(&record), ("refused", "toolgate", Some("elicitation")), "{record}");
    // The SDK sends the callback's ErrorData back as a JSON-RPC error response.
    assert!(record["note"].as_str().unwrap().contains("the dialog could not be shown"), "{record}");
}

/// No elicitation, no terminal, no `toolgate approve`: refused at once, never asked, and told
/// how the user could be asked next time.
fn refused_at_once_without_elicitation(mode: &str, protocol: &str) {
    let o = run(mode, "none");
    assert_eq!(o.out["protocol"], protocol, "{}", o.out);
    assert!(!o.marker.exists(), "{mode}: the call ran");
    assert!(questions(&o).is_empty(), "{mode}: {}", o.out);
    assert_eq!(o.out["first"]["isError"], true, "{mode}: {}", o.out);
    let said = text(&o.out["first"]);
    assert!(said.starts_with("toolgate stopped this call to `write_marker`: it needs a human's approval"), "{said}");
    assert!(
        said.contains("No person could be asked:") && said.contains("the client did not offer elicitation"),
        "{said}"
    );
    assert!(said.contains("no controlling terminal") && said.contains("no `toolgate approve` is running"), "{said}");
    for how in ["run `toolgate approve`", "use a client that supports MCP elicitation", "in a terminal you are using"] {
        assert!(said.contains(how), "{mode}: does not say `{how}`: {said}");
    }
    let record = decision(&o);
    assert_eq!(who(&record), ("refused", "toolgate", None), "{record}");
    let note = record["note"].as_str().unwrap();
    assert!(note.starts_with("needs a human, and no approval channel is available"), "{record}");
    // At once: not after the approval timeout.
    assert!(record["waited_ms"].as_u64().unwrap() < 20_000, "{record}");
}

#[test]
fn legacy_mode_without_elicitation_is_refused_at_once() {
    refused_at_once_without_elicitation("legacy", "2025-11-25");
}

#[test]
fn auto_mode_without_elicitation_is_refused_at_once() {
    refused_at_once_without_elicitation("auto", "2026-07-28");
}
