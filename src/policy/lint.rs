//! Warnings about policies that load but do not do what their author meant: rules that can
//! never win, and tool globs that match nothing the server offers.

use globset::GlobSet;

use super::Policy;
use super::rule::{Rule, name_glob};

/// A warning about a policy that loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: String,
    pub message: String,
}

/// Rules that can never decide a call: a stricter rule without argument conditions matches
/// every call they match.
pub fn shadowed(policy: &Policy) -> Vec<Warning> {
    let rules = policy.rules.rules();
    let mut out = Vec::new();
    for a in rules {
        let Some(gate_a) = a.gate else { continue };
        if let Some(b) =
            rules.iter().find(|b| b.gate.is_some_and(|g| g > gate_a) && b.conditions.is_empty() && covers(b, a))
        {
            out.push(Warning {
                rule: a.name.to_string(),
                message: format!(
                    "rule {:?} ({}) can never win: rule {:?} ({}) matches every call it matches and is stricter",
                    a.name,
                    gate_a.as_str(),
                    b.name,
                    b.gate.map_or("", |g| g.as_str()),
                ),
            });
        }
    }
    out
}

/// Whether `b` matches at least every tool and server `a` matches (judged on the patterns).
fn covers(b: &Rule, a: &Rule) -> bool {
    patterns_cover(b.tool_patterns.as_deref(), a.tool_patterns.as_deref())
        && patterns_cover(b.server_patterns.as_deref(), a.server_patterns.as_deref())
}

fn patterns_cover(wide: Option<&[String]>, narrow: Option<&[String]>) -> bool {
    let Some(wide) = wide else { return true };
    let Some(narrow) = narrow else { return wide.iter().any(|w| w == "*") };
    let set = glob_set(wide);
    narrow.iter().all(|n| {
        wide.iter().any(|w| w == n || w == "*")
            || (!n.contains(['*', '?', '[', '{', '\\']) && set.as_ref().is_some_and(|s| s.is_match(n)))
            || wide.iter().any(|w| {
                // `read_*` covers `read_file*`: a prefix glob covers any pattern with that prefix.
                w.strip_suffix('*').is_some_and(|p| !p.contains(['*', '?', '[', '{', '\\']) && n.starts_with(p))
            })
    })
}

fn glob_set(patterns: &[String]) -> Option<GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        b.add(name_glob(p).ok()?);
    }
    b.build().ok()
}

/// Rules that name tools (and apply to `server`) whose globs match none of the listed tools.
/// Rules that do not name `server` in `servers` are only checked when `all_rules` is set: a
/// policy shared by several servers legitimately has rules for tools this one lacks.
pub fn unmatched_tools(policy: &Policy, server: &str, listed: &[String], all_rules: bool) -> Vec<Warning> {
    let mut out = Vec::new();
    for rule in policy.rules.rules() {
        let Some(patterns) = &rule.tool_patterns else { continue };
        let scoped = rule.server_patterns.is_some() && rule.matches_server(server);
        if !(scoped || all_rules && rule.matches_server(server)) {
            continue;
        }
        for pattern in patterns {
            let Ok(glob) = name_glob(pattern) else { continue };
            let matcher = glob.compile_matcher();
            if !listed.iter().any(|t| matcher.is_match(t)) {
                out.push(Warning {
                    rule: rule.name.to_string(),
                    message: format!(
                        "rule {:?}: tools glob {pattern:?} matches none of the tools server {server:?} lists",
                        rule.name
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::from_toml(text, "p.toml").unwrap()
    }

    #[test]
    fn a_wider_stricter_rule_shadows_a_narrower_one() {
        let p = policy(concat!(
            "[[rules]]\nname = \"reads\"\ntools = [\"read_file\", \"read_dir*\"]\ntier = \"low\"\n",
            "[[rules]]\nname = \"all reads held\"\ntools = [\"read_*\"]\naction = \"hold\"\nhold = \"1s\"\n",
            "[[rules]]\nname = \"conditional deny\"\ntools = [\"*\"]\nargs = { \"/x\" = { exists = true } }\naction = \"deny\"\n",
        ));
        let w = shadowed(&p);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            w[0].message,
            "rule \"reads\" (allow) can never win: rule \"all reads held\" (hold) matches every call it matches and is stricter"
        );
    }

    #[test]
    fn server_scoped_rules_do_not_shadow_unscoped_ones() {
        let p = policy(concat!(
            "[[rules]]\nname = \"reads\"\ntools = [\"read_*\"]\ntier = \"low\"\n",
            "[[rules]]\nname = \"prod\"\nservers = [\"prod\"]\naction = \"deny\"\n",
        ));
        assert!(shadowed(&p).is_empty());
    }

    #[test]
    fn globs_matching_no_listed_tool_are_reported_for_rules_scoped_to_the_server() {
        let p = policy(concat!(
            "[[rules]]\nname = \"fs writes\"\nservers = [\"fs\"]\ntools = [\"write_file\", \"wirte_file\"]\ntier = \"high\"\n",
            "[[rules]]\nname = \"generic\"\ntools = [\"delete_*\"]\naction = \"deny\"\n",
        ));
        let listed = vec!["write_file".to_owned(), "read_file".to_owned()];
        let w = unmatched_tools(&p, "fs", &listed, false);
        assert_eq!(
            w.iter().map(|w| w.message.as_str()).collect::<Vec<_>>(),
            vec!["rule \"fs writes\": tools glob \"wirte_file\" matches none of the tools server \"fs\" lists"]
        );
        assert_eq!(unmatched_tools(&p, "fs", &listed, true).len(), 2);
        assert!(unmatched_tools(&p, "other", &listed, false).is_empty());
    }
}
