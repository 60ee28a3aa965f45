//! `toolgate explain`: why a policy decides a call the way it does, for people and for scripts.
//!
//! The JSON form is a stable contract (docs/reference/explain-json.md): fields are only ever
//! added.

use std::fmt::Write;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::visible::{json, visible};

use crate::policy::condition::Miss;
use crate::policy::{Call, Decision, NearMiss, Policy};

/// Format version of the JSON form.
pub const JSON_VERSION: u32 = 1;

/// Everything `explain` reports about one call.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub version: u32,
    pub policy: PolicyRef,
    pub call: CallRef,
    pub decision: Decision,
    /// Each rule that matched, with the patterns and tests that made it match.
    pub matched: Vec<MatchedRule>,
    /// Rules whose tool glob matched but whose server or argument tests did not.
    pub near_misses: Vec<NearMiss>,
    /// The arguments against the tool's input schema, when `--tools` gave the server's tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<ArgumentsCheck>,
}

/// How the call's arguments fare against the tool's input schema (`[settings] arguments`).
#[derive(Debug, Serialize)]
pub struct ArgumentsCheck {
    /// `strict`, `ask` or `off`.
    pub setting: crate::policy::ArgumentsSetting,
    /// `conforms`, `does_not_conform` or `cannot_judge`.
    pub verdict: &'static str,
    /// What does not conform, or why it cannot be judged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl ArgumentsCheck {
    pub fn of(setting: crate::policy::ArgumentsSetting, verdict: &crate::conformity::Verdict) -> ArgumentsCheck {
        use crate::conformity::Verdict;
        let (verdict, problems) = match verdict {
            Verdict::Conforms(_) => ("conforms", Vec::new()),
            Verdict::Nonconforming(problems) => ("does_not_conform", problems.clone()),
            Verdict::CannotJudge(why) => ("cannot_judge", vec![why.clone()]),
            Verdict::Unlisted => ("cannot_judge", vec!["the tool is not in the tools given".to_owned()]),
        };
        ArgumentsCheck { setting, verdict, problems }
    }
}

#[derive(Debug, Serialize)]
pub struct PolicyRef {
    pub origin: String,
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct CallRef {
    pub server: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub tool: String,
    pub arguments: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct MatchedRule {
    pub rule: String,
    /// The rule's `tools` globs, or `None` when it applies to every tool.
    pub tools: Option<Vec<String>>,
    pub servers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The argument tests, each with the value it held for.
    pub conditions: Vec<Miss>,
}

/// Explains one call.
pub fn explain(policy: &Policy, call: &Call<'_>) -> Explanation {
    let (decision, near_misses) = policy.explain(call);
    let matched = decision
        .matched
        .iter()
        .filter_map(|m| policy.rules.rules().iter().find(|r| *r.name == *m.rule))
        .map(|r| MatchedRule {
            rule: r.name.to_string(),
            tools: r.tool_patterns.clone(),
            servers: r.server_patterns.clone(),
            identity: r.identity.as_deref().map(str::to_owned),
            conditions: r
                .conditions
                .iter()
                .flat_map(|c| c.report(call.arguments, &call.context).into_iter().map(|(miss, _)| miss))
                .collect(),
        })
        .collect();
    Explanation {
        version: JSON_VERSION,
        policy: PolicyRef { origin: policy.origin.clone(), version: policy.version.to_string() },
        call: CallRef {
            server: call.server.to_owned(),
            identity: call.identity.map(str::to_owned),
            tool: call.tool.to_owned(),
            arguments: call.arguments.clone(),
            confidence: call.confidence,
        },
        decision,
        matched,
        near_misses,
        arguments: None,
    }
}

/// The explanation as text for a person.
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    let d = &e.decision;
    // Names, reasons and arguments are shown escaped (`visible`): `explain` is run on calls
    // copied from a log, whose text came from a server or a model.
    let _ = writeln!(out, "call      {} on server {:?}", visible(&e.call.tool), e.call.server);
    let _ = writeln!(out, "arguments {}", json(&Value::Object(e.call.arguments.clone()).to_string()));
    if let Some(c) = e.call.confidence {
        let _ = writeln!(out, "confidence {c}");
    }
    let _ = writeln!(out);
    let basis = match d.basis {
        crate::policy::Basis::Rules => "by the rules below".to_owned(),
        crate::policy::Basis::DefaultTier => "no rule chose a gate: default_tier".to_owned(),
        crate::policy::Basis::Annotations => "no rule chose a gate: tier from the tool's annotations".to_owned(),
    };
    let _ = writeln!(out, "decision  {} (tier {}), {basis}", d.gate.as_str(), d.tier.as_str());
    if let Some(reason) = &d.reason {
        let _ = writeln!(out, "reason    {}", visible(reason));
    }
    if let Some(hold) = d.hold {
        let _ = writeln!(out, "hold      {}", humantime::format_duration(hold));
    }
    if d.always_ask {
        let _ = writeln!(out, "always_ask: no autonomy level or earned trust can lower this");
    }
    if let Some(c) = &d.confidence {
        let reported = c.reported.map_or("not reported".to_owned(), |r| r.to_string());
        let effect = if c.escalated { "escalated to ask" } else { "met" };
        let _ = writeln!(out, "confidence threshold {} (reported: {reported}): {effect}", c.threshold);
    }

    let _ = writeln!(out, "\nmatched:");
    if e.matched.is_empty() {
        let _ = writeln!(out, "  (no rule)");
    }
    for (m, rule) in d.matched.iter().zip(&e.matched) {
        let gate = m.gate.map_or("min_confidence only".to_owned(), |g| g.as_str().to_owned());
        let _ = write!(out, "  {:?} -> {gate}", m.rule);
        if let Some(reason) = &m.reason {
            let _ = write!(out, ": {}", visible(reason));
        }
        let _ = writeln!(out);
        let tools = rule.tools.as_ref().map_or("every tool".to_owned(), |t| format!("tools {t:?}"));
        let servers = rule.servers.as_ref().map_or(String::new(), |s| format!(", servers {s:?}"));
        let identity = rule.identity.as_ref().map_or(String::new(), |i| format!(", identity {i}"));
        let _ = writeln!(out, "      {tools}{servers}{identity}");
        if m.some_readings {
            let _ =
                writeln!(out, "      (under some readings of the call, not all: it can only make the gate stricter)");
        }
        for c in &rule.conditions {
            let _ = writeln!(out, "      {} {} holds for {}", c.pointer, c.test, shown(&c.actual));
            if let Some(reading) = &c.reading {
                let _ = writeln!(out, "        matched as {}", visible(&reading.to_string()));
            }
        }
    }
    if !e.near_misses.is_empty() {
        let _ = writeln!(out, "\nalmost matched (the tool matched, something else did not):");
        for n in &e.near_misses {
            let gate = n.gate.map_or("min_confidence only".to_owned(), |g| g.as_str().to_owned());
            let _ = writeln!(out, "  {:?} -> {gate}", n.rule);
            if let Some(servers) = &n.server_not_in {
                let _ = writeln!(out, "      server {:?} is not in {servers:?}", e.call.server);
            }
            if let Some(identity) = &n.identity_not {
                let is = e.call.identity.as_deref().unwrap_or("not given (--identity)");
                let _ = writeln!(out, "      the server's identity is not {identity} (it is {is})");
            }
            for f in &n.failed {
                let _ = writeln!(out, "      {} {} fails for {}", f.pointer, f.test, shown(&f.actual));
            }
        }
    }
    if let Some(a) = &e.arguments {
        let setting = serde_json::to_value(a.setting).unwrap_or_default();
        let _ = writeln!(out, "\narguments {} (arguments = {setting})", a.verdict.replace('_', " "));
        for p in &a.problems {
            let _ = writeln!(out, "          {}", visible(&p.to_string()));
        }
    }
    let _ = writeln!(out, "\npolicy    {} ({})", e.policy.origin, e.policy.version);
    out
}

fn shown(v: &Option<Value>) -> String {
    match v {
        Some(v) => json(&v.to_string()).into_owned(),
        None => "a missing argument".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const POLICY: &str = r#"
[settings]
default_tier = "medium"

[[rules]]
name = "reads are safe"
tools = ["read_*"]
tier = "low"

[[rules]]
name = "writes outside the project"
tools = ["write_file", "edit_file"]
args = { "/path" = { not_glob = "/home/me/project/**" } }
tier = "high"
reason = "writes outside the project"

[[rules]]
name = "prod is read-only"
servers = ["prod-*"]
tools = ["write_*"]
action = "deny"
reason = "production"

[[rules]]
name = "careful writes"
tools = ["write_*"]
min_confidence = 0.8
"#;

    fn explained(tool: &str, args: Value, confidence: Option<f64>) -> Explanation {
        let policy = Policy::from_toml(POLICY, "policy.toml").unwrap();
        let args = args.as_object().cloned().unwrap();
        explain(&policy, &Call::new("fs", tool, &args).with_confidence(confidence))
    }

    #[test]
    fn explain_text_for_a_held_write() {
        insta::assert_snapshot!(render(&explained("write_file", json!({"path": "/etc/hosts"}), Some(0.9))));
    }

    #[test]
    fn explain_text_for_a_write_inside_the_project_with_low_confidence() {
        insta::assert_snapshot!(render(&explained("write_file", json!({"path": "/home/me/project/a.rs"}), Some(0.5))));
    }

    #[test]
    fn explain_text_when_no_rule_matches() {
        insta::assert_snapshot!(render(&explained("fetch", json!({"url": "https://example.com"}), None)));
    }

    #[test]
    fn explain_json_is_stable() {
        let e = explained("write_file", json!({"path": "/etc/hosts"}), Some(0.9));
        insta::assert_snapshot!(serde_json::to_string_pretty(&e).unwrap());
    }
}
