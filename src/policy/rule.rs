//! Compiled rules and the evaluation of a call against them.
//!
//! Compilation turns every glob into one shared [`GlobSet`] over all rules' tool patterns, so a
//! call is matched against the whole policy in one pass over its tool name, then only the few
//! candidate rules are checked further. Nothing here can fail at match time.

use std::time::Duration;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::decision::{Basis, Call, Decision, Gate, Matched, Tier};
use super::file::{Autonomy, DefaultTier};

/// The settings a policy runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub default_tier: DefaultTier,
    pub approval_timeout: Duration,
    pub autonomy: Autonomy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_tier: DefaultTier::High,
            approval_timeout: Duration::from_secs(60),
            autonomy: Autonomy::Standard,
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// `None` matches every server.
    pub servers: Option<GlobSet>,
    pub tier: Option<Tier>,
    /// The gate this rule asks for: its `action`, or its tier's gate.
    pub gate: Gate,
    pub hold: Option<Duration>,
    pub reason: Option<String>,
}

/// All rules, indexed by tool pattern.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Every tool glob of every rule; `glob_owner[i]` is the rule of glob `i`.
    tool_globs: GlobSet,
    glob_owner: Vec<usize>,
    /// Rules without `tools`, which are candidates for every call.
    any_tool: Vec<usize>,
}

impl RuleSet {
    /// Builds the index. `tools[i]` holds rule `i`'s tool globs, or `None` for every tool.
    pub fn new(rules: Vec<Rule>, tools: Vec<Option<Vec<Glob>>>) -> Result<Self, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        let mut glob_owner = Vec::new();
        let mut any_tool = Vec::new();
        for (i, globs) in tools.into_iter().enumerate() {
            match globs {
                None => any_tool.push(i),
                Some(globs) => {
                    for g in globs {
                        builder.add(g);
                        glob_owner.push(i);
                    }
                }
            }
        }
        Ok(RuleSet {
            rules,
            tool_globs: builder.build()?,
            glob_owner,
            any_tool,
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Decides one call: every matching rule counts, the strictest gate wins.
    pub fn decide(&self, settings: &Settings, call: &Call<'_>) -> Decision {
        let mut candidates: Vec<usize> = self.any_tool.clone();
        for g in self.tool_globs.matches(call.tool) {
            candidates.push(self.glob_owner[g]);
        }
        candidates.sort_unstable();
        candidates.dedup();

        let matched: Vec<&Rule> = candidates
            .into_iter()
            .map(|i| &self.rules[i])
            .filter(|r| r.servers.as_ref().is_none_or(|s| s.is_match(call.server)))
            .collect();

        let (gate, tier, basis) = match matched.iter().map(|r| r.gate).max() {
            Some(gate) => {
                let tier = matched
                    .iter()
                    .filter_map(|r| r.tier)
                    .max()
                    .unwrap_or_else(|| implied_tier(gate));
                (gate, tier, Basis::Rules)
            }
            None => {
                let (tier, basis) = match settings.default_tier {
                    DefaultTier::Low => (Tier::Low, Basis::DefaultTier),
                    DefaultTier::Medium => (Tier::Medium, Basis::DefaultTier),
                    DefaultTier::High => (Tier::High, Basis::DefaultTier),
                    DefaultTier::Annotations => (
                        call.annotations.map_or(Tier::High, |a| a.tier()),
                        Basis::Annotations,
                    ),
                };
                (tier.gate(), tier, basis)
            }
        };
        let gate = match settings.autonomy {
            Autonomy::Standard => gate,
            // Every call a rule does not deny or park needs a yes.
            Autonomy::Supervised => gate.max(Gate::Ask),
            Autonomy::Autonomous if gate == Gate::Ask => Gate::Notify,
            Autonomy::Autonomous => gate,
        };
        let deciding = matched.iter().find(|r| r.gate == gate);
        Decision {
            gate,
            tier,
            basis,
            reason: deciding.and_then(|r| r.reason.clone()),
            hold: match gate {
                Gate::Hold => matched
                    .iter()
                    .filter(|r| r.gate == Gate::Hold)
                    .filter_map(|r| r.hold)
                    .max(),
                _ => None,
            },
            matched: matched
                .iter()
                .map(|r| Matched {
                    rule: r.name.clone(),
                    gate: r.gate,
                    tier: r.tier,
                    reason: r.reason.clone(),
                })
                .collect(),
        }
    }
}

/// The tier recorded for a rule that set only an action.
fn implied_tier(gate: Gate) -> Tier {
    match gate {
        Gate::Allow => Tier::Low,
        Gate::Notify => Tier::Medium,
        Gate::Hold | Gate::Ask | Gate::Queue | Gate::Deny => Tier::High,
    }
}

/// Compiles a name glob (tools, servers): `*` and `?` match any character, `[...]` classes work,
/// and a backslash escapes on every platform.
pub fn name_glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
}
