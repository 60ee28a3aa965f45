//! Matching and precedence, compared as whole decisions.

use serde_json::{Map, Value, json};

use super::*;

fn policy(text: &str) -> Policy {
    Policy::from_toml(text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn decide(p: &Policy, server: &str, tool: &str) -> Decision {
    let args = Map::new();
    p.decide(&Call {
        server,
        tool,
        arguments: &args,
        annotations: None,
    })
}

fn errors(text: &str) -> Vec<String> {
    Policy::from_toml(text, "p.toml")
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

const LAYERED: &str = r#"
[settings]
default_tier = "medium"

[[rules]]
name = "reads"
tools = ["read_*"]
tier = "low"

[[rules]]
name = "secrets"
tools = ["read_secret*"]
action = "deny"
reason = "no secrets"

[[rules]]
name = "prod"
servers = ["prod-*"]
tier = "high"
"#;

#[test]
fn strictest_matching_rule_wins_whatever_the_order() {
    let p = policy(LAYERED);
    assert_eq!(
        decide(&p, "dev", "read_secret_key"),
        Decision {
            gate: Gate::Deny,
            tier: Tier::Low,
            basis: Basis::Rules,
            matched: vec![
                Matched {
                    rule: "reads".into(),
                    gate: Gate::Allow,
                    tier: Some(Tier::Low),
                    reason: None
                },
                Matched {
                    rule: "secrets".into(),
                    gate: Gate::Deny,
                    tier: None,
                    reason: Some("no secrets".into())
                },
            ],
            reason: Some("no secrets".into()),
            hold: None,
        }
    );
    assert_eq!(
        decide(&p, "prod-eu", "read_file"),
        Decision {
            gate: Gate::Ask,
            tier: Tier::High,
            basis: Basis::Rules,
            matched: vec![
                Matched {
                    rule: "reads".into(),
                    gate: Gate::Allow,
                    tier: Some(Tier::Low),
                    reason: None
                },
                Matched {
                    rule: "prod".into(),
                    gate: Gate::Ask,
                    tier: Some(Tier::High),
                    reason: None
                },
            ],
            reason: None,
            hold: None,
        }
    );
}

#[test]
fn unmatched_call_gets_the_default_tier() {
    let p = policy(LAYERED);
    assert_eq!(
        decide(&p, "dev", "write_file"),
        Decision {
            gate: Gate::Notify,
            tier: Tier::Medium,
            basis: Basis::DefaultTier,
            matched: vec![],
            reason: None,
            hold: None
        }
    );
}

#[test]
fn tool_names_match_exactly_not_by_prefix_or_case() {
    let p = policy("[[rules]]\nname = \"x\"\ntools = [\"delete\"]\naction = \"deny\"\n");
    assert_eq!(decide(&p, "s", "delete").gate, Gate::Deny);
    for other in ["delete_file", "Delete", "xdelete", " delete"] {
        assert_eq!(decide(&p, "s", other).basis, Basis::DefaultTier, "{other}");
    }
}

#[test]
fn annotations_choose_the_tier_only_when_the_policy_says_so() {
    let p = policy("[settings]\ndefault_tier = \"annotations\"\n");
    let args = Map::new();
    let with = |tool: Value| {
        p.decide(&Call {
            server: "s",
            tool: "t",
            arguments: &args,
            annotations: Some(Annotations::from_tool(&tool)),
        })
    };
    assert_eq!(
        with(json!({"annotations": {"readOnlyHint": true, "openWorldHint": false}})).gate,
        Gate::Allow
    );
    assert_eq!(
        with(json!({"annotations": {"readOnlyHint": true}})).gate,
        Gate::Notify
    );
    assert_eq!(
        with(json!({"annotations": {"destructiveHint": false}})).gate,
        Gate::Ask
    );
    let never_listed = p.decide(&Call {
        server: "s",
        tool: "t",
        arguments: &args,
        annotations: None,
    });
    assert_eq!(
        (never_listed.gate, never_listed.basis),
        (Gate::Ask, Basis::Annotations)
    );
}

#[test]
fn hold_takes_the_longest_hold_of_the_rules_that_hold() {
    let p = policy(
        "[[rules]]\nname = \"a\"\naction = \"hold\"\nhold = \"5s\"\n[[rules]]\nname = \"b\"\naction = \"hold\"\nhold = \"2m\"\n",
    );
    let d = decide(&p, "s", "anything");
    assert_eq!(
        (d.gate, d.hold),
        (Gate::Hold, Some(std::time::Duration::from_secs(120)))
    );
}

#[test]
fn autonomy_levels_move_the_gate_but_never_past_deny() {
    let base = "[[rules]]\nname = \"r\"\ntools = [\"read\"]\ntier = \"low\"\n[[rules]]\nname = \"p\"\ntools = [\"pay\"]\ntier = \"high\"\n[[rules]]\nname = \"d\"\ntools = [\"rm\"]\naction = \"deny\"\n";
    let supervised = policy(&format!("[settings]\nautonomy = \"supervised\"\n{base}"));
    assert_eq!(decide(&supervised, "s", "read").gate, Gate::Ask);
    assert_eq!(decide(&supervised, "s", "rm").gate, Gate::Deny);
    let autonomous = policy(&format!("[settings]\nautonomy = \"autonomous\"\n{base}"));
    assert_eq!(decide(&autonomous, "s", "pay").gate, Gate::Notify);
    assert_eq!(decide(&autonomous, "s", "rm").gate, Gate::Deny);
}

#[test]
fn unknown_key_is_an_error_with_line_and_column() {
    let errs = errors("[[rules]]\nname = \"x\"\ntools = [\"a\"]\nacton = \"deny\"\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("p.toml:4:1: unknown field `acton`"),
        "{}",
        errs[0]
    );
}

#[test]
fn bad_enum_value_names_the_choices() {
    let errs = errors("[[rules]]\nname = \"x\"\ntier = \"hihg\"\n");
    assert!(
        errs[0].starts_with("p.toml:3:8: unknown variant `hihg`, expected one of"),
        "{}",
        errs[0]
    );
}

#[test]
fn semantic_errors_are_all_reported_with_places() {
    let errs = errors(concat!(
        "[settings]\napproval_timeout = \"soon\"\n",
        "[[rules]]\nname = \"a\"\ntools = [\"[x\"]\ntier = \"low\"\n",
        "[[rules]]\nname = \"a\"\ntools = []\naction = \"hold\"\n",
        "[[rules]]\nname = \"c\"\ntools = [\"x\"]\n",
    ));
    assert_eq!(errs.len(), 6, "{errs:#?}");
    assert!(
        errs[0].starts_with("p.toml:2:20: approval_timeout:"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("p.toml:5:10: rule \"a\": bad glob in `tools`"),
        "{}",
        errs[1]
    );
    assert!(
        errs[2].starts_with("p.toml:8:8: a rule named \"a\" already exists (line 4)"),
        "{}",
        errs[2]
    );
    assert!(
        errs[3].contains("has action \"hold\" but no `hold` duration"),
        "{}",
        errs[3]
    );
    assert!(
        errs[4].starts_with("p.toml:9:9: rule \"a\": `tools` is empty"),
        "{}",
        errs[4]
    );
    assert!(
        errs[5].contains("rule \"c\" sets neither `tier` nor `action`"),
        "{}",
        errs[5]
    );
}

#[test]
fn embedded_default_loads_and_denies_deletes() {
    let p = Policy::embedded();
    assert_eq!(decide(&p, "fs", "delete_file").gate, Gate::Deny);
    assert_eq!(decide(&p, "fs", "read_file").gate, Gate::Allow);
    assert_eq!(decide(&p, "fs", "unknown_tool").gate, Gate::Ask);
    assert!(p.version.starts_with("sha256:"));
}
