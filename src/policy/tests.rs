//! Matching and precedence, compared as whole decisions.

use serde_json::{Map, Value, json};

use super::*;

fn policy(text: &str) -> Policy {
    Policy::from_toml(text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn decide(p: &Policy, server: &str, tool: &str) -> Decision {
    let args = Map::new();
    p.decide(&Call::new(server, tool, &args))
}

fn errors(text: &str) -> Vec<String> {
    Policy::from_toml(text, "p.toml").unwrap_err().0.iter().map(ToString::to_string).collect()
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
                    gate: Some(Gate::Allow),
                    tier: Some(Tier::Low),
                    reason: None,
                    some_readings: false
                },
                Matched {
                    rule: "secrets".into(),
                    gate: Some(Gate::Deny),
                    tier: None,
                    reason: Some("no secrets".into()),
                    some_readings: false,
                },
            ],
            reason: Some("no secrets".into()),
            hold: None,
            always_ask: false,
            confidence: None,
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
                    gate: Some(Gate::Allow),
                    tier: Some(Tier::Low),
                    reason: None,
                    some_readings: false
                },
                Matched {
                    rule: "prod".into(),
                    gate: Some(Gate::Ask),
                    tier: Some(Tier::High),
                    reason: None,
                    some_readings: false
                },
            ],
            reason: None,
            hold: None,
            always_ask: false,
            confidence: None,
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
            hold: None,
            always_ask: false,
            confidence: None,
        }
    );
}

#[test]
fn tool_names_match_exactly_not_by_prefix() {
    let p = policy("[[rules]]\nname = \"x\"\ntools = [\"delete\"]\naction = \"deny\"\n");
    assert_eq!(decide(&p, "s", "delete").gate, Gate::Deny);
    for other in ["delete_file", "xdelete", "de lete"] {
        assert_eq!(decide(&p, "s", other).basis, Basis::DefaultTier, "{other}");
    }
}

#[test]
fn restricting_rules_match_names_a_server_may_fold_and_allow_rules_only_exact_ones() {
    let p = policy(
        "[settings]\ndefault_tier = \"high\"\n\
         [[rules]]\nname = \"no deletes\"\ntools = [\"delete\"]\naction = \"deny\"\n\
         [[rules]]\nname = \"reads\"\ntools = [\"read_file\"]\ntier = \"low\"\n",
    );
    // Upper case, fullwidth letters, and the Kelvin sign all fold to names a server may run.
    for folded in ["Delete", "DELETE", "\u{ff44}\u{ff45}\u{ff4c}\u{ff45}\u{ff54}\u{ff45}"] {
        assert_eq!(decide(&p, "s", folded).gate, Gate::Deny, "{folded}");
    }
    let kill = policy("[[rules]]\nname = \"x\"\ntools = [\"kill_process\"]\naction = \"deny\"\n");
    for folded in ["\u{212a}ill_process", "kill_proce\u{df}", "kill_process ", " kill_process", "kill\u{200b}_process"]
    {
        assert_eq!(decide(&kill, "s", folded).gate, Gate::Deny, "{folded:?}");
    }
    // A glob with capitals reaches a name a server compares without case.
    let camel = policy("[[rules]]\nname = \"x\"\ntools = [\"deleteFile\"]\naction = \"deny\"\n");
    assert_eq!(decide(&camel, "s", "deletefile").gate, Gate::Deny);
    // An allow rule lowers the gate only for the name exactly as written.
    assert_eq!(decide(&p, "s", "read_file").gate, Gate::Allow);
    for folded in ["READ_FILE", "Read_File", "\u{ff52}ead_file"] {
        assert_eq!(decide(&p, "s", folded).gate, Gate::Ask, "{folded}");
    }
}

#[test]
fn annotations_choose_the_tier_only_when_the_policy_says_so() {
    let p = policy("[settings]\ndefault_tier = \"annotations\"\n");
    let args = Map::new();
    let with =
        |tool: Value| p.decide(&Call::new("s", "t", &args).with_annotations(Some(Annotations::from_tool(&tool))));
    assert_eq!(with(json!({"annotations": {"readOnlyHint": true, "openWorldHint": false}})).gate, Gate::Allow);
    assert_eq!(with(json!({"annotations": {"readOnlyHint": true}})).gate, Gate::Notify);
    assert_eq!(with(json!({"annotations": {"destructiveHint": false}})).gate, Gate::Ask);
    let never_listed = p.decide(&Call::new("s", "t", &args));
    assert_eq!((never_listed.gate, never_listed.basis), (Gate::Ask, Basis::Annotations));
}

#[test]
fn hold_takes_the_longest_hold_of_the_rules_that_hold() {
    let p = policy(
        "[[rules]]\nname = \"a\"\naction = \"hold\"\nhold = \"5s\"\n[[rules]]\nname = \"b\"\naction = \"hold\"\nhold = \"2m\"\n",
    );
    let d = decide(&p, "s", "anything");
    assert_eq!((d.gate, d.hold), (Gate::Hold, Some(std::time::Duration::from_secs(120))));
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
fn a_server_can_have_its_own_autonomy_level() {
    let p = policy(
        "[settings]\nautonomy = \"autonomous\"\n[servers.bank]\nautonomy = \"supervised\"\n[servers.notes]\n\
         [[rules]]\nname = \"r\"\ntools = [\"read\"]\ntier = \"low\"\n[[rules]]\nname = \"p\"\ntools = [\"pay\"]\ntier = \"high\"\n",
    );
    assert_eq!(decide(&p, "fs", "pay").gate, Gate::Notify, "the global level elsewhere");
    assert_eq!(decide(&p, "notes", "pay").gate, Gate::Notify, "a server table without autonomy keeps the global level");
    let bank = decide(&p, "bank", "read");
    assert_eq!(bank.gate, Gate::Ask);
    assert_eq!(bank.reason.as_deref(), Some("autonomy for server \"bank\" is \"supervised\": every call needs a yes"));
    assert_eq!(decide(&p, "bank", "pay").gate, Gate::Ask);
    let errs = errors("[servers.bank]\nautonomy = \"yolo\"\n");
    assert!(errs[0].starts_with("p.toml:2:12:"), "{errs:?}");
}

#[test]
fn unknown_key_is_an_error_with_line_and_column() {
    let errs = errors("[[rules]]\nname = \"x\"\ntools = [\"a\"]\nacton = \"deny\"\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("p.toml:4:1: unknown field `acton`"), "{}", errs[0]);
}

#[test]
fn bad_enum_value_names_the_choices() {
    let errs = errors("[[rules]]\nname = \"x\"\ntier = \"hihg\"\n");
    assert!(errs[0].starts_with("p.toml:3:8: unknown variant `hihg`, expected one of"), "{}", errs[0]);
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
    assert!(errs.iter().any(|e| e.starts_with("p.toml:2:20: approval_timeout:")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("p.toml:5:10: rule \"a\": bad glob in `tools`")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("p.toml:8:8: a rule named \"a\" already exists (line 4)")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("has action \"hold\" but no `hold` duration")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("p.toml:9:9: rule \"a\": `tools` is empty")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("rule \"c\" sets none of `tier`, `action`")), "{errs:#?}");
}

#[test]
fn audit_rotation_settings_compile_with_defaults_and_bad_values_name_their_place() {
    let p = Policy::from_toml("", "p.toml").unwrap();
    assert_eq!(p.settings.audit_rotation, crate::policy::AuditRotation::default());
    assert_eq!(p.settings.audit_rotation.size, 64 << 20);
    assert_eq!((p.settings.audit_rotation.compress, p.settings.audit_rotation.retention), (true, None));
    let p = Policy::from_toml(
        "[settings]\naudit_rotate_size = \"2 KiB\"\naudit_rotate_age = \"1d\"\naudit_compress = false\naudit_retention = \"90d\"\n",
        "p.toml",
    )
    .unwrap();
    let day = std::time::Duration::from_secs(86_400);
    assert_eq!(
        p.settings.audit_rotation,
        crate::policy::AuditRotation { size: 2048, age: Some(day), compress: false, retention: Some(90 * day) }
    );
    let errs = errors(concat!(
        "[settings]\n",
        "audit_rotate_size = \"64 MiBs\"\n",
        "audit_rotate_age = \"daily\"\n",
        "audit_retention = \"0s\"\n",
    ));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("p.toml:2:21: audit_rotate_size: \"64 MiBs\" is not a size"), "{errs:#?}");
    assert!(errs[1].starts_with("p.toml:3:20: audit_rotate_age: \"daily\" is not a duration"), "{errs:#?}");
    assert!(errs[2].starts_with("p.toml:4:19: audit_retention: must be longer than zero"), "{errs:#?}");
    assert!(errors("[settings]\naudit_rotate_size = \"0\"\n")[0].starts_with("p.toml:2:21: audit_rotate_size:"));
}

#[test]
fn sizes_read_as_people_write_them() {
    use crate::policy::parse_size;
    assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
    assert_eq!(parse_size("500KB"), Ok(500_000));
    assert_eq!(parse_size("1 gib"), Ok(1 << 30));
    assert_eq!(parse_size("4096"), Ok(4096));
    for bad in ["", "MiB", "1.5 MiB", "-1", "12 parsecs", "99999999999 GiB"] {
        assert!(parse_size(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn embedded_default_loads_and_denies_deletes() {
    let p = Policy::embedded();
    assert_eq!(decide(&p, "fs", "delete_file").gate, Gate::Deny);
    assert_eq!(decide(&p, "fs", "read_file").gate, Gate::Allow);
    assert_eq!(decide(&p, "fs", "unknown_tool").gate, Gate::Ask);
    assert!(p.version.starts_with("sha256:"));
}

fn decide_with(p: &Policy, tool: &str, arguments: Value, confidence: Option<f64>) -> Decision {
    let args = arguments.as_object().cloned().unwrap();
    p.decide(&Call::new("fs", tool, &args).with_confidence(confidence))
}

const PROJECT: &str = r#"
[settings]
default_tier = "low"

[[rules]]
name = "writes outside the project"
tools = ["write_file", "edit_file"]
args = { "/path" = { not_glob = "/home/me/project/**" } }
tier = "high"
reason = "writes outside the project"
examples = [{ tool = "write_file", args = { path = "/etc/hosts" } }]
counter_examples = [{ tool = "write_file", args = { path = "/home/me/project/src/a.rs" } }]

[[rules]]
name = "mail leaves the company"
tools = ["send_email"]
args = { "/to" = { not_regex = "@example\\.com$" } }
action = "hold"
hold = "5m"

[[rules]]
name = "big payments"
tools = ["pay"]
args = { "/amount" = { gt = 1000 }, "/currency" = { one_of = ["EUR", "USD"] } }
action = "deny"

[[rules]]
name = "force push"
tools = ["git_push"]
args = { "/force" = { equals = true } }
always_ask = true
"#;

#[test]
fn argument_conditions_decide_after_decoding_and_normalizing() {
    let p = policy(PROJECT);
    assert_eq!(decide_with(&p, "write_file", json!({"path": "/home/me/project/a"}), None).gate, Gate::Allow);
    assert_eq!(
        decide_with(&p, "write_file", json!({"path": "/home/me/project/../../../etc/passwd"}), None).gate,
        Gate::Ask
    );
    assert_eq!(
        decide_with(&p, "edit_file", json!({"path": "/tmp/x"}), None).reason.as_deref(),
        Some("writes outside the project")
    );
    // A rule about an argument does not match a call without it.
    assert_eq!(decide_with(&p, "write_file", json!({}), None).gate, Gate::Allow);
    let mail = decide_with(&p, "send_email", json!({"to": "eve@evil.test"}), None);
    assert_eq!((mail.gate, mail.hold), (Gate::Hold, Some(std::time::Duration::from_secs(300))));
    assert_eq!(decide_with(&p, "send_email", json!({"to": "bob@example.com"}), None).gate, Gate::Allow);
    assert_eq!(decide_with(&p, "pay", json!({"amount": "5000", "currency": "EUR"}), None).gate, Gate::Deny);
    assert_eq!(decide_with(&p, "pay", json!({"amount": 5000, "currency": "GBP"}), None).gate, Gate::Allow);
    assert_eq!(decide_with(&p, "pay", json!({"amount": 50, "currency": "EUR"}), None).gate, Gate::Allow);
}

#[test]
fn always_ask_is_a_ceiling_autonomy_cannot_lower() {
    let p = policy(&PROJECT.replace("default_tier = \"low\"", "default_tier = \"low\"\nautonomy = \"autonomous\""));
    let d = decide_with(&p, "git_push", json!({"force": true}), None);
    assert_eq!((d.gate, d.always_ask), (Gate::Ask, true));
    assert_eq!(decide_with(&p, "write_file", json!({"path": "/etc/x"}), None).gate, Gate::Notify);
}

#[test]
fn low_confidence_escalates_to_ask_but_never_loosens() {
    let text = r#"
[settings]
default_tier = "low"
min_confidence = 0.5
missing_confidence = "ignore"

[[rules]]
name = "payments need certainty"
tools = ["pay"]
min_confidence = 0.9

[[rules]]
name = "no deletes"
tools = ["rm"]
action = "deny"
"#;
    let p = policy(text);
    let d = decide_with(&p, "pay", json!({}), Some(0.8));
    assert_eq!(
        (d.gate, d.basis, d.confidence),
        (Gate::Ask, Basis::DefaultTier, Some(ConfidenceCheck { threshold: 0.9, reported: Some(0.8), escalated: true }))
    );
    assert_eq!(d.reason.as_deref(), Some("the model's confidence 0.8 is below 0.9"));
    assert_eq!(decide_with(&p, "pay", json!({}), Some(0.95)).gate, Gate::Allow);
    assert_eq!(decide_with(&p, "read", json!({}), Some(0.6)).gate, Gate::Allow);
    assert_eq!(decide_with(&p, "read", json!({}), Some(0.4)).gate, Gate::Ask);
    assert_eq!(decide_with(&p, "read", json!({}), None).gate, Gate::Allow);
    assert_eq!(decide_with(&p, "rm", json!({}), Some(0.1)).gate, Gate::Deny);
    let strict = policy(&text.replace("missing_confidence = \"ignore\"", "missing_confidence = \"ask\""));
    assert_eq!(decide_with(&strict, "read", json!({}), None).gate, Gate::Ask);
}

#[test]
fn examples_that_fail_refuse_the_load_and_say_why() {
    let errs = errors(concat!(
        "[[rules]]\nname = \"outside\"\ntools = [\"write_file\"]\n",
        "args = { \"/path\" = { not_glob = \"/proj/**\" } }\ntier = \"high\"\n",
        "examples = [{ tool = \"write_file\", args = { path = \"/proj/a\" } }]\n",
        "counter_examples = [{ tool = \"write_file\", args = { path = \"/etc/a\" } }]\n",
    ));
    assert_eq!(
        errs,
        vec![
            "p.toml:6:13: rule \"outside\": example `write_file` {\"path\":\"/proj/a\"} does not match it: /path not_glob \"/proj/**\" fails for \"/proj/a\"",
            "p.toml:7:21: rule \"outside\": counter-example `write_file` {\"path\":\"/etc/a\"} matches it",
        ]
    );
}

#[test]
fn bad_patterns_and_pointers_fail_at_load_with_places() {
    let errs = errors(concat!(
        "[[rules]]\nname = \"r\"\ntools = [\"t\"]\ntier = \"high\"\n",
        "args = { \"/a\" = { regex = \"(unclosed\" }, \"b\" = { exists = true }, \"/c\" = { glob = \"[z-a]\" }, \"/d\" = {} }\n",
    ));
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("p.toml:5:27: rule \"r\": args \"/a\": bad regex:")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("p.toml:5:83: rule \"r\": args \"/c\": bad glob")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("args: the condition on \"/d\" has no test")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("\"b\" is not a JSON pointer: it must start with \"/\"")), "{errs:#?}");
}

#[test]
fn explain_lists_near_misses_with_the_failing_test() {
    let p = policy(PROJECT);
    let args = json!({"path": "/home/me/project/ok"}).as_object().cloned().unwrap();
    let (decision, near) = p.explain(&Call::new("fs", "write_file", &args));
    assert_eq!(decision.gate, Gate::Allow);
    assert_eq!(
        near,
        vec![NearMiss {
            rule: "writes outside the project".into(),
            gate: Some(Gate::Ask),
            server_not_in: None,
            identity_not: None,
            failed: vec![condition::Miss {
                pointer: "/path".into(),
                test: "not_glob \"/home/me/project/**\"".into(),
                actual: Some(json!("/home/me/project/ok")),
                reading: None,
            }],
        }]
    );
}

#[test]
fn error_messages_read_well() {
    let text = r#"[settings]
default_tier = "hgh"
"#;
    let broken_syntax = Policy::from_toml(text, "policy.toml").unwrap_err().to_string();
    let text = r#"[settings]
approval_timeout = "a minute"
min_confidence = 1.5

[[rules]]
name = "writes"
tools = ["write_*", "[oops"]
args = { "path" = { glob = "/home/**" }, "/mode" = { regex = "(" }, "/size" = { exists = false, gt = 3 } }
tier = "high"
hold = "5m"

[[rules]]
name = "writes"
action = "hold"
reason = "same name, no duration"

[[rules]]
name = "quiet"
tools = ["x"]
"#;
    let semantic = Policy::from_toml(text, "policy.toml").unwrap_err().to_string();
    let text = "[[rules]]\nname = \"x\"\ntools = [\"a\"]\nacton = \"deny\"\n";
    let unknown = Policy::from_toml(text, "policy.toml").unwrap_err().to_string();
    insta::assert_snapshot!(format!("{broken_syntax}\n---\n{semantic}\n---\n{unknown}"));
}
