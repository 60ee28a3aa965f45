//! "Remember this": the rule that would let calls like an approved one run without asking.
//!
//! Under strictest-wins a new rule can never loosen what another rule asks for, so a rule is
//! only proposed when no rule chose the gate (the default tier or the tool's annotations did);
//! otherwise the person is told which rule to edit.
//!
//! The rule names the server's identity (`identity = "sha256:…"`, `crate::identity`), so that
//! what a person allowed for one program is not allowed for another started under the same name.

use std::path::{Path, PathBuf};

use super::{Basis, Decision, Gate, Policy};

/// Whether "remember" can write a rule for this call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remember {
    /// This rule (TOML text, one `[[rules]]` table) would allow calls like this one, and may
    /// be appended to this policy file.
    Possible { policy: PathBuf, rule: String },
    /// It cannot, and this says why (shown to the person).
    Impossible(String),
}

/// What "remember" can do for a call the policy sent to a human.
pub fn proposal(
    policy: &Policy,
    path: Option<&Path>,
    server: &str,
    identity: Option<&str>,
    tool: &str,
    decision: &Decision,
) -> Remember {
    let Some(path) = path else {
        return Remember::Impossible(
            "the embedded default policy has no file to write to; run with --policy FILE to remember rules".into(),
        );
    };
    if decision.confidence.is_some_and(|c| c.escalated) {
        return Remember::Impossible(
            "the call was asked because the model was not confident enough; a rule cannot change that".into(),
        );
    }
    if decision.basis == Basis::Rules {
        let rules: Vec<String> = decision.deciding_rules().map(|r| format!("{r:?}")).collect();
        if rules.is_empty() {
            return Remember::Impossible(
                "the autonomy level asks for every call; change `autonomy` in the policy".into(),
            );
        }
        return Remember::Impossible(format!(
            "rule {} asks for this call, and a new rule cannot loosen it (the strictest rule wins); edit that rule in {}",
            rules.join(", "),
            path.display()
        ));
    }
    if decision.gate > Gate::Ask || decision.always_ask {
        return Remember::Impossible("this call cannot be allowed by a rule".into());
    }
    let base = format!("allow {tool} on {server}");
    let taken = |n: &str| policy.rules.rules().iter().any(|r| &*r.name == n);
    let name =
        (1..).map(|i| if i == 1 { base.clone() } else { format!("{base} ({i})") }).find(|n| !taken(n)).unwrap_or(base);
    let s = |v: &str| toml::Value::String(v.to_owned()).to_string();
    let literal = |v: &str| s(&escape_glob(v));
    let identity = identity.map(|id| format!("identity = {}\n", s(id))).unwrap_or_default();
    let rule = format!(
        "[[rules]]\nname = {}\nservers = [{}]\n{identity}tools = [{}]\ntier = \"low\"\nexamples = [{{ tool = {}, server = {} }}]\n",
        s(&name),
        literal(server),
        literal(tool),
        s(tool),
        s(server)
    );
    Remember::Possible { policy: path.to_owned(), rule }
}

/// The rule that would have asked before a call that ran and should not have run unasked.
pub fn should_have_asked(server: &str, tool: &str) -> String {
    let s = |v: &str| toml::Value::String(v.to_owned()).to_string();
    format!(
        "[[rules]]\nname = {}\nservers = [{}]\ntools = [{}]\ntier = \"high\"\nreason = \"flagged in review: it should have asked\"\n",
        s(&format!("ask before {tool} on {server}")),
        s(&escape_glob(server)),
        s(&escape_glob(tool)),
    )
}

/// Appends a rule to a policy file under a comment, keeping everything already there as it
/// was; written whole and renamed over the file, so a running proxy never reads half of it.
pub fn append(policy: &Path, rule: &str, comment: &str) -> std::io::Result<()> {
    let mut text = std::fs::read_to_string(policy)?;
    if !text.ends_with('\n') && !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&format!("\n# {comment}\n"));
    text.push_str(rule);
    let tmp = policy.with_extension(format!("toml.toolgate-{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, policy)
}

/// A glob that matches exactly this name.
pub(crate) fn escape_glob(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::policy::Call;

    fn decide(policy: &Policy, tool: &str) -> Decision {
        let args = Map::new();
        policy.decide(&Call::new("fs", tool, &args))
    }

    #[test]
    fn proposes_an_exact_rule_that_loads_and_allows_the_call() {
        let text = "[settings]\ndefault_tier = \"high\"\n[[rules]]\nname = \"allow odd*tool on fs\"\ntools = [\"x\"]\ntier = \"low\"\n";
        let policy = Policy::from_toml(text, "p.toml").unwrap();
        let decision = decide(&policy, "odd*tool");
        let Remember::Possible { rule, .. } =
            proposal(&policy, Some(Path::new("p.toml")), "fs", None, "odd*tool", &decision)
        else {
            panic!("expected a proposal");
        };
        assert_eq!(
            rule,
            "[[rules]]\nname = \"allow odd*tool on fs (2)\"\nservers = [\"fs\"]\ntools = ['odd\\*tool']\ntier = \"low\"\nexamples = [{ tool = \"odd*tool\", server = \"fs\" }]\n"
        );
        let extended = Policy::from_toml(&format!("{text}{rule}"), "p.toml").unwrap();
        assert_eq!(decide(&extended, "odd*tool").gate, Gate::Allow);
        assert_eq!(decide(&extended, "oddXtool").gate, Gate::Ask);
    }

    #[test]
    fn a_remembered_rule_is_bound_to_the_program_that_was_approved() {
        let text = "[settings]\ndefault_tier = \"high\"\n";
        let policy = Policy::from_toml(text, "p.toml").unwrap();
        let ours = format!("sha256:{}", "a".repeat(64));
        let other = format!("sha256:{}", "b".repeat(64));
        let decision = decide(&policy, "send");
        let Remember::Possible { rule, .. } =
            proposal(&policy, Some(Path::new("p.toml")), "bank", Some(&ours), "send", &decision)
        else {
            panic!("expected a proposal");
        };
        assert!(rule.contains(&format!("identity = \"{ours}\"\n")), "{rule}");
        let extended = Policy::from_toml(&format!("{text}{rule}"), "p.toml").unwrap();
        let args = Map::new();
        let gate =
            |identity: Option<&str>| extended.decide(&Call::new("bank", "send", &args).with_identity(identity)).gate;
        assert_eq!(gate(Some(&ours)), Gate::Allow);
        assert_eq!(gate(Some(&other)), Gate::Ask, "another program under the same name");
        assert_eq!(gate(None), Gate::Ask, "a program not (yet) vouched for");
    }

    #[test]
    fn an_identity_that_is_not_a_digest_is_an_error_with_its_place() {
        let text = "[[rules]]\nname = \"x\"\nidentity = \"bank\"\ntier = \"low\"\n";
        let errors = Policy::from_toml(text, "p.toml").unwrap_err().to_string();
        assert!(errors.contains("p.toml:3:12") && errors.contains("`identity` must be"), "{errors}");
        let typo = "[[rules]]\nname = \"x\"\nidentiy = \"sha256:00\"\ntier = \"low\"\n";
        let errors = Policy::from_toml(typo, "p.toml").unwrap_err().to_string();
        assert!(errors.contains("p.toml:3:1") && errors.contains("unknown field `identiy`"), "{errors}");
    }

    #[test]
    fn refuses_when_a_rule_asked_or_there_is_no_file() {
        let policy =
            Policy::from_toml("[[rules]]\nname = \"money\"\ntools = [\"pay\"]\ntier = \"high\"\n", "p.toml").unwrap();
        let decision = decide(&policy, "pay");
        assert!(matches!(
            proposal(&policy, Some(Path::new("p.toml")), "fs", None, "pay", &decision),
            Remember::Impossible(why) if why.starts_with("rule \"money\" asks for this call")
        ));
        assert!(matches!(proposal(&policy, None, "fs", None, "pay", &decision), Remember::Impossible(_)));
    }
}
