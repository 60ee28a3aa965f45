//! `toolgate test`: policy test suites in TOML. Each suite names its policy and lists cases (a
//! call and the gate it must get); the output reads like a test runner's, with the rule that
//! decided each failing case, and a JUnit XML report for CI systems.
//!
//! ```toml
//! policy = "../policies/filesystem.toml"   # relative to the suite file
//! server = "fs"                            # default server for the cases
//!
//! [[case]]
//! name = "writing /etc is refused"
//! tool = "write_file"
//! arguments = { path = "/etc/hosts" }
//! expect = "deny"                          # allow | notify | hold | ask | queue | deny
//! # server = "...", annotations = { readOnlyHint = true, openWorldHint = false }, confidence = 0.4
//!
//! [[recording]]                            # a transcript or audit log, relative to the suite
//! file = "../fixtures/server-filesystem.jsonl"
//! expect = ["allow", "deny", "ask", "ask"] # the gate of each recorded call, in order
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::policy::{Annotations, Call, Gate, Policy};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    policy: PathBuf,
    #[serde(default)]
    server: Option<String>,
    #[serde(default, rename = "case")]
    cases: Vec<toml::Spanned<CaseFile>>,
    #[serde(default, rename = "recording")]
    recordings: Vec<toml::Spanned<RecordingFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingFile {
    file: PathBuf,
    #[serde(default)]
    server: Option<String>,
    expect: Vec<Gate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    name: Option<String>,
    tool: String,
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    arguments: Map<String, Value>,
    #[serde(default)]
    annotations: Option<AnnotationsFile>,
    #[serde(default)]
    confidence: Option<f64>,
    expect: Gate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AnnotationsFile {
    #[serde(default)]
    read_only_hint: bool,
    #[serde(default = "yes")]
    open_world_hint: bool,
}

fn yes() -> bool {
    true
}

/// One case's result.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub suite: String,
    pub name: String,
    /// `file:line` of the case.
    pub place: String,
    pub expected: Gate,
    pub got: Gate,
    /// What decided: the rules, or the default tier, and the reason.
    pub why: String,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.expected == self.got
    }
}

/// Why a suite could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Toml { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{}: its policy does not load:\n{source}", path.display())]
    Policy { path: PathBuf, source: crate::policy::PolicyErrors },
    #[error("{}:{line}: {source}", path.display())]
    Recording { path: PathBuf, line: usize, source: crate::replay::Error },
    #[error("{}:{line}: {} has {calls} calls, but `expect` lists {gates} gates", path.display(), recording.display())]
    Count { path: PathBuf, line: usize, recording: PathBuf, calls: usize, gates: usize },
}

/// Runs one suite file; `Err` when it cannot be read or its policy does not load.
pub fn run(path: &Path) -> Result<Vec<CaseResult>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let suite: SuiteFile = toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| crate::policy::error::line_column(&text, s.start)).unwrap_or((1, 1));
        Error::Toml { path: path.to_owned(), line: at.0, column: at.1, message: e.message().trim_end().to_owned() }
    })?;
    let policy_path = path.parent().unwrap_or(Path::new(".")).join(&suite.policy);
    let policy = Policy::load(&policy_path).map_err(|source| Error::Policy { path: path.to_owned(), source })?;
    let default_server = suite.server.clone().unwrap_or_else(|| "server".into());
    let name = path.display().to_string();
    let mut results = Vec::new();
    for spanned in &suite.recordings {
        let line = crate::policy::error::line_column(&text, spanned.span().start).0;
        let recording = spanned.get_ref();
        let file = path.parent().unwrap_or(Path::new(".")).join(&recording.file);
        let server = recording.server.clone().unwrap_or_else(|| default_server.clone());
        let calls = crate::replay::calls(&file, &server).map_err(|source| Error::Recording {
            path: path.to_owned(),
            line,
            source,
        })?;
        if calls.len() != recording.expect.len() {
            return Err(Error::Count {
                path: path.to_owned(),
                line,
                recording: recording.file.clone(),
                calls: calls.len(),
                gates: recording.expect.len(),
            });
        }
        for (call, expected) in calls.iter().zip(&recording.expect) {
            let decision = crate::replay::decide(&policy, call);
            results.push(CaseResult {
                suite: name.clone(),
                name: format!("{} line {}: {}", recording.file.display(), call.line, call.tool),
                place: format!("{}:{line}", path.display()),
                expected: *expected,
                got: decision.gate,
                why: why(&decision),
            });
        }
    }
    results.extend(suite.cases.into_iter().enumerate().map(|(i, spanned)| {
        let line = crate::policy::error::line_column(&text, spanned.span().start).0;
        let case = spanned.into_inner();
        let server = case.server.clone().unwrap_or_else(|| default_server.clone());
        let annotations = case
            .annotations
            .as_ref()
            .map(|a| Annotations { read_only: a.read_only_hint, open_world: a.open_world_hint });
        let decision = policy.decide(
            &Call::new(&server, &case.tool, &case.arguments)
                .with_annotations(annotations)
                .with_confidence(case.confidence),
        );
        let why = why(&decision);
        CaseResult {
            suite: name.clone(),
            name: case.name.unwrap_or_else(|| format!("case {}: {}", i + 1, case.tool)),
            place: format!("{}:{line}", path.display()),
            expected: case.expect,
            got: decision.gate,
            why,
        }
    }));
    Ok(results)
}

/// What decided, in words: the rules, or the default tier or annotations, and the reason.
fn why(decision: &crate::policy::Decision) -> String {
    let rules: Vec<String> = decision.deciding_rules().map(|r| format!("{r:?}")).collect();
    let mut why = match rules.len() {
        0 => match decision.basis {
            crate::policy::Basis::Annotations => "the tool's annotations (no rule chose the gate)".to_owned(),
            _ => format!("the default tier, {} (no rule chose the gate)", decision.tier.as_str()),
        },
        1 => format!("rule {}", rules[0]),
        _ => format!("rules {}", rules.join(", ")),
    };
    if let Some(reason) = &decision.reason {
        why.push_str(&format!(": {reason}"));
    }
    why
}

/// The results as JUnit XML.
pub fn junit(results: &[CaseResult], errors: &[Error]) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let failed = results.iter().filter(|r| !r.passed()).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"toolgate\" tests=\"{}\" failures=\"{failed}\" errors=\"{}\">\n",
        results.len(),
        errors.len()
    );
    let mut suites: Vec<&str> = results.iter().map(|r| r.suite.as_str()).collect();
    suites.dedup();
    for suite in suites {
        let cases: Vec<&CaseResult> = results.iter().filter(|r| r.suite == suite).collect();
        let failures = cases.iter().filter(|r| !r.passed()).count();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
            esc(suite),
            cases.len()
        ));
        for case in cases {
            out.push_str(&format!("    <testcase classname=\"{}\" name=\"{}\"", esc(suite), esc(&case.name)));
            if case.passed() {
                out.push_str("/>\n");
            } else {
                out.push_str(&format!(
                    ">\n      <failure message=\"expected {}, got {}\">{}: {}</failure>\n    </testcase>\n",
                    case.expected.as_str(),
                    case.got.as_str(),
                    esc(&case.place),
                    esc(&case.why)
                ));
            }
        }
        out.push_str("  </testsuite>\n");
    }
    for error in errors {
        out.push_str(&format!(
            "  <testsuite name=\"error\" tests=\"1\" errors=\"1\">\n    <testcase name=\"load\">\n      <error message=\"{}\"/>\n    </testcase>\n  </testsuite>\n",
            esc(&error.to_string())
        ));
    }
    out.push_str("</testsuites>\n");
    out
}
