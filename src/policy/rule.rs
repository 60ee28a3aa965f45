//! Compiled rules and the evaluation of a call against them.
//!
//! Every rule's tool globs go into one shared [`GlobSet`], so a call is matched against the
//! whole policy in one pass over its tool name; only the few candidate rules are then checked
//! for server and arguments. Nothing here can fail at match time.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;

use super::condition::{Condition, Miss};
use super::decision::{Basis, Call, ConfidenceCheck, Decision, Gate, Matched, Tier};
use super::file::{Autonomy, DefaultTier, MissingConfidence};

/// The settings a policy runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub default_tier: DefaultTier,
    pub approval_timeout: Duration,
    pub autonomy: Autonomy,
    pub min_confidence: Option<f64>,
    pub missing_confidence: MissingConfidence,
    /// Pop up a desktop notification for each pending approval, when a notifier is present.
    pub desktop_notifications: bool,
    /// Argument keys whose values the audit log records as a digest (`None`: the default list).
    pub audit_secret_keys: Option<Vec<String>>,
    /// Autonomy levels set for single servers (`[servers.NAME]`), by exact name.
    pub server_autonomy: std::collections::HashMap<String, Autonomy>,
    /// The bar a tool's record must pass to skip the question (`[trust]`).
    pub trust: crate::trust::Bar,
    /// What a tool whose definition changed does until the change is accepted.
    pub changed_tools: super::file::ChangedTools,
}

impl Settings {
    /// The autonomy level for calls to this server.
    pub fn autonomy_for(&self, server: &str) -> Autonomy {
        self.server_autonomy.get(server).copied().unwrap_or(self.autonomy)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_tier: DefaultTier::High,
            approval_timeout: Duration::from_secs(60),
            autonomy: Autonomy::Standard,
            min_confidence: None,
            missing_confidence: MissingConfidence::Ask,
            desktop_notifications: true,
            audit_secret_keys: None,
            server_autonomy: std::collections::HashMap::new(),
            trust: crate::trust::Bar::default(),
            changed_tools: super::file::ChangedTools::Ask,
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Arc<str>,
    /// The tool globs as written; `None` matches every tool.
    pub tool_patterns: Option<Vec<String>>,
    tool_globs: Vec<Glob>,
    /// This rule's own tool set, built on first use: deciding uses the shared index instead,
    /// so only `check`, `explain` and examples need it.
    tools: OnceLock<GlobSet>,
    /// The server globs as written; `None` matches every server.
    pub server_patterns: Option<Vec<String>>,
    servers: Option<Arc<GlobSet>>,
    pub conditions: Vec<Condition>,
    pub tier: Option<Tier>,
    /// The gate this rule asks for (its `action`, else its tier's gate, raised to ask by
    /// `always_ask`), or `None` for a rule that only sets `min_confidence`.
    pub gate: Option<Gate>,
    pub hold: Option<Duration>,
    pub reason: Option<Arc<str>>,
    pub always_ask: bool,
    pub min_confidence: Option<f64>,
}

/// The parts of a rule as `compile.rs` reads them.
pub struct RuleParts {
    pub name: String,
    pub tools: Option<Vec<(String, Glob)>>,
    pub servers: Option<Vec<(String, Glob)>>,
    pub conditions: Vec<Condition>,
    pub tier: Option<Tier>,
    pub gate: Option<Gate>,
    pub hold: Option<Duration>,
    pub reason: Option<String>,
    pub always_ask: bool,
    pub min_confidence: Option<f64>,
}

impl Rule {
    /// Compiles a rule; `servers` shares the server sets of rules that name the same servers.
    pub fn new(parts: RuleParts, shared: &mut HashMap<Vec<String>, Arc<GlobSet>>) -> Result<Self, globset::Error> {
        let servers = match &parts.servers {
            None => None,
            Some(gs) => {
                let key: Vec<String> = gs.iter().map(|(p, _)| p.clone()).collect();
                match shared.get(&key) {
                    Some(set) => Some(set.clone()),
                    None => {
                        let mut b = GlobSetBuilder::new();
                        for (_, g) in gs {
                            b.add(g.clone());
                        }
                        let set = Arc::new(b.build()?);
                        shared.insert(key, set.clone());
                        Some(set)
                    }
                }
            }
        };
        Ok(Rule {
            tool_globs: parts.tools.iter().flatten().map(|(_, g)| g.clone()).collect(),
            tools: OnceLock::new(),
            servers,
            tool_patterns: parts.tools.map(|gs| gs.into_iter().map(|(p, _)| p).collect()),
            server_patterns: parts.servers.map(|gs| gs.into_iter().map(|(p, _)| p).collect()),
            name: parts.name.into(),
            conditions: parts.conditions,
            tier: parts.tier,
            gate: parts.gate,
            hold: parts.hold,
            reason: parts.reason.map(Into::into),
            always_ask: parts.always_ask,
            min_confidence: parts.min_confidence,
        })
    }

    pub fn matches_tool(&self, tool: &str) -> bool {
        if self.tool_patterns.is_none() {
            return true;
        }
        self.tools
            .get_or_init(|| {
                let mut b = GlobSetBuilder::new();
                for g in &self.tool_globs {
                    b.add(g.clone());
                }
                // The same globs already built into the policy's index, so this cannot fail.
                b.build().unwrap_or_else(|_| GlobSet::empty())
            })
            .is_match(tool)
    }

    pub fn matches_server(&self, server: &str) -> bool {
        self.servers.as_ref().is_none_or(|s| s.is_match(server))
    }

    /// Whether this rule, alone, matches the call.
    pub fn matches(&self, call: &Call<'_>) -> bool {
        self.matches_tool(call.tool)
            && self.matches_server(call.server)
            && self.conditions.iter().all(|c| c.holds(call.arguments))
    }

    fn matched(&self) -> Matched {
        Matched {
            rule: self.name.to_string(),
            gate: self.gate,
            tier: self.tier,
            reason: self.reason.as_deref().map(str::to_owned),
        }
    }
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

/// A rule whose tool matched but that did not match the call, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NearMiss {
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// The server, when the rule's `servers` did not include it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_not_in: Option<Vec<String>>,
    /// The argument tests that did not hold.
    pub failed: Vec<Miss>,
}

impl RuleSet {
    /// Builds the tool index over the rules' own tool globs.
    pub fn new(rules: Vec<Rule>) -> Result<Self, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        let mut glob_owner = Vec::new();
        let mut any_tool = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule.tool_patterns.is_none() {
                any_tool.push(i);
            }
            for g in &rule.tool_globs {
                builder.add(g.clone());
                glob_owner.push(i);
            }
        }
        Ok(RuleSet { rules, tool_globs: builder.build()?, glob_owner, any_tool })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Indices of the rules whose tool globs match, in file order.
    fn candidates(&self, tool: &str) -> Vec<usize> {
        let mut globs = Vec::new();
        self.tool_globs.matches_into(tool, &mut globs);
        let mut candidates = Vec::with_capacity(self.any_tool.len() + globs.len());
        candidates.extend_from_slice(&self.any_tool);
        candidates.extend(globs.into_iter().map(|g| self.glob_owner[g]));
        candidates.sort_unstable();
        candidates.dedup();
        candidates
    }

    /// Decides one call: every matching rule counts, the strictest gate wins.
    pub fn decide(&self, settings: &Settings, call: &Call<'_>) -> Decision {
        let matched: Vec<&Rule> = self
            .candidates(call.tool)
            .into_iter()
            .map(|i| &self.rules[i])
            .filter(|r| r.matches_server(call.server) && r.conditions.iter().all(|c| c.holds(call.arguments)))
            .collect();
        evaluate(settings, call, &matched)
    }

    /// Decides a call and also lists the rules that almost matched it.
    pub fn explain(&self, settings: &Settings, call: &Call<'_>) -> (Decision, Vec<NearMiss>) {
        let mut matched = Vec::new();
        let mut near = Vec::new();
        for i in self.candidates(call.tool) {
            let rule = &self.rules[i];
            let failed: Vec<Miss> = rule.conditions.iter().filter_map(|c| c.miss(call.arguments)).collect();
            let server_ok = rule.matches_server(call.server);
            if server_ok && failed.is_empty() {
                matched.push(rule);
            } else {
                near.push(NearMiss {
                    rule: rule.name.to_string(),
                    gate: rule.gate,
                    server_not_in: (!server_ok).then(|| rule.server_patterns.clone().unwrap_or_default()),
                    failed,
                });
            }
        }
        (evaluate(settings, call, &matched), near)
    }
}

/// The strictest-wins evaluation over the rules that matched.
fn evaluate(settings: &Settings, call: &Call<'_>, matched: &[&Rule]) -> Decision {
    let gated = matched.iter().filter_map(|r| r.gate.map(|g| (r, g)));
    let (mut gate, tier, basis) = match gated.clone().map(|(_, g)| g).max() {
        Some(gate) => {
            let tier = gated.filter_map(|(r, _)| r.tier).max().unwrap_or_else(|| implied_tier(gate));
            (gate, tier, Basis::Rules)
        }
        None => {
            let (tier, basis) = match settings.default_tier {
                DefaultTier::Low => (Tier::Low, Basis::DefaultTier),
                DefaultTier::Medium => (Tier::Medium, Basis::DefaultTier),
                DefaultTier::High => (Tier::High, Basis::DefaultTier),
                DefaultTier::Annotations => (call.annotations.map_or(Tier::High, |a| a.tier()), Basis::Annotations),
            };
            (tier.gate(), tier, basis)
        }
    };
    let always_ask = matched.iter().any(|r| r.always_ask);
    let mut reason = matched.iter().find(|r| r.gate == Some(gate)).and_then(|r| r.reason.as_deref().map(str::to_owned));

    let autonomy = settings.autonomy_for(call.server);
    gate = match autonomy {
        Autonomy::Standard => gate,
        Autonomy::Supervised if gate < Gate::Ask => {
            reason = Some(if settings.server_autonomy.contains_key(call.server) {
                format!("autonomy for server \"{}\" is \"supervised\": every call needs a yes", call.server)
            } else {
                "autonomy is \"supervised\": every call needs a yes".into()
            });
            Gate::Ask
        }
        Autonomy::Supervised => gate,
        // `always_ask` is a ceiling that autonomy cannot lower.
        Autonomy::Autonomous if gate == Gate::Ask && !always_ask => Gate::Notify,
        Autonomy::Autonomous => gate,
    };

    let threshold = matched.iter().filter_map(|r| r.min_confidence).chain(settings.min_confidence).reduce(f64::max);
    let confidence = threshold.map(|threshold| {
        let escalated = match call.confidence {
            Some(reported) => reported < threshold,
            None => settings.missing_confidence == MissingConfidence::Ask,
        };
        ConfidenceCheck { threshold, reported: call.confidence, escalated }
    });
    if let Some(check) = confidence.as_ref().filter(|c| c.escalated && gate < Gate::Ask) {
        gate = Gate::Ask;
        reason = Some(match check.reported {
            Some(c) => format!("the model's confidence {c} is below {}", check.threshold),
            None => format!("the model did not report its confidence, and {} is required", check.threshold),
        });
    }

    Decision {
        gate,
        tier,
        basis,
        reason,
        hold: match gate {
            Gate::Hold => matched.iter().filter(|r| r.gate == Some(Gate::Hold)).filter_map(|r| r.hold).max(),
            _ => None,
        },
        always_ask,
        confidence,
        matched: matched.iter().map(|r| r.matched()).collect(),
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
    GlobBuilder::new(pattern).literal_separator(false).backslash_escape(true).empty_alternates(true).build()
}
