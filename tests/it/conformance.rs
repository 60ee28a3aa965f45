//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! `tests/node/package.json`) runs its client scenarios against toolgate's HTTP side: the suite
//! starts each scenario's test server and runs `tests/node/conformance/client.mjs URL`, the
//! TypeScript SDK's client over stdio to `toolgate run --url URL`. A scenario passes when the
//! suite's CLI exits 0 and every check it wrote passed. `docs/reference/conformance.md` lists
//! every client scenario and why each of the others fails.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

/// The client scenarios toolgate passes, each with the tool its client calls through the gate
/// (none for `initialize`). The one list to extend as toolgate passes more. The auth/ ones sign
/// in through `tests/python/browser.py`, as toolgate's own sign-in tests do.
const PASSING: [(&str, Option<&str>); 20] = [
    ("initialize", None),
    ("tools_call", Some("add_numbers")),
    ("elicitation-sep1034-client-defaults", Some("test_client_elicitation_defaults")),
    ("sse-retry", Some("test_reconnection")),
    // The metadata names another resource: toolgate must not sign in with it, and does not.
    ("auth/resource-mismatch", None),
    ("auth/metadata-default", Some("test-tool")),
    ("auth/metadata-var1", Some("test-tool")),
    ("auth/metadata-var2", Some("test-tool")),
    ("auth/metadata-var3", Some("test-tool")),
    ("auth/scope-from-www-authenticate", Some("test-tool")),
    ("auth/scope-from-scopes-supported", Some("test-tool")),
    ("auth/scope-omitted-when-undefined", Some("test-tool")),
    ("auth/scope-step-up", Some("test-tool")),
    ("auth/scope-retry-limit", None),
    ("auth/token-endpoint-auth-basic", Some("test-tool")),
    ("auth/token-endpoint-auth-post", Some("test-tool")),
    ("auth/token-endpoint-auth-none", Some("test-tool")),
    ("auth/2025-03-26-oauth-endpoint-fallback", Some("test-tool")),
    ("auth/offline-access-scope", Some("test-tool")),
    ("auth/offline-access-not-supported", Some("test-tool")),
];

/// What one run of the suite's CLI for one scenario gave.
struct Outcome {
    passed: bool,
    /// The suite's checks (`checks.json`).
    checks: Vec<Value>,
    /// The CLI's output, for the failure message.
    output: String,
}

fn cli() -> PathBuf {
    let cli = root().join("tests/node/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    assert!(cli.exists(), "{} is missing: run tests/setup.sh (or .ci/run) first", cli.display());
    cli
}

/// Runs `scenario` through the suite's CLI with toolgate `toolgate` behind the adapter.
fn run_scenario(env: &Env, scenario: &str, toolgate: &Path, audit: &Path) -> Outcome {
    let node = root().join("tests/node");
    let adapter = node.join("conformance/client.mjs");
    // The CLI splits its --command at spaces.
    assert!(!adapter.to_string_lossy().contains(' '), "the adapter's path has a space: {}", adapter.display());
    let results = env.join(format!("results-{}", scenario.replace('/', "_")));
    let mut cmd = env.command("node");
    cmd.current_dir(env.path());
    cmd.arg("--import").arg(node.join("conformance/compat.mjs")).arg(cli());
    cmd.args(["client", "--scenario", scenario, "--timeout", "30000", "-o"]).arg(&results);
    cmd.arg("--command").arg(format!("node {}", adapter.display()));
    cmd.env("TOOLGATE_CONFORMANCE_BIN", toolgate).env("TOOLGATE_CONFORMANCE_AUDIT", audit);
    // The auth/ scenarios' sign-in: the browser of toolgate's own sign-in tests, which follows
    // the authorization URL to toolgate's loopback listener.
    let browser = format!(
        "{} {} {}",
        python().display(),
        root().join("tests/python/browser.py").display(),
        env.join("browser.log").display()
    );
    cmd.env("TOOLGATE_CONFORMANCE_BROWSER", browser);
    let (passed, output) = run_to_end(&mut cmd);
    let checks = find_checks(&results)
        .map(|p| serde_json::from_str::<Vec<Value>>(&std::fs::read_to_string(p).unwrap()).unwrap())
        .unwrap_or_default();
    Outcome { passed, checks, output }
}

/// The `checks.json` the CLI wrote somewhere under `dir` (it adds the scenario and a time).
fn find_checks(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find_checks(&path) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == "checks.json") {
            return Some(path);
        }
    }
    None
}

fn statuses(checks: &[Value], status: &str) -> Vec<String> {
    checks.iter().filter(|c| c["status"] == status).map(|c| c["id"].as_str().unwrap_or("?").to_owned()).collect()
}

#[test]
fn every_client_scenario_toolgate_passes_passes_through_the_gate() {
    let mut failed = Vec::new();
    for (scenario, tool) in PASSING {
        let env = Env::new();
        let audit = env.join("audit.jsonl");
        let out = run_scenario(&env, scenario, Path::new(toolgate()), &audit);
        let failures = [statuses(&out.checks, "FAILURE"), statuses(&out.checks, "WARNING")].concat();
        let successes = statuses(&out.checks, "SUCCESS");
        if !out.passed || !failures.is_empty() || successes.is_empty() {
            failed.push(format!("{scenario}: checks not passed {failures:?}, passed {successes:?}\n{}", out.output));
            continue;
        }
        // The call went through toolgate, and was judged there.
        if let Some(tool) = tool {
            let decided = audit_decisions(&audit);
            if !decided.iter().any(|r| r.to_string().contains(tool)) {
                failed.push(format!("{scenario}: no decision on {tool} in toolgate's audit log: {decided:?}"));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// The harness itself: a client that cannot reach the scenario's server is a failed scenario,
/// so the test above cannot pass by not running anything.
#[test]
fn a_client_that_never_reaches_the_server_fails_its_scenario() {
    let env = Env::new();
    let out = run_scenario(&env, "tools_call", Path::new("/bin/false"), &env.join("audit.jsonl"));
    assert!(!out.passed, "{}", out.output);
    assert_eq!(statuses(&out.checks, "FAILURE"), ["tool-add-numbers"], "{}", out.output);
}
