//! Compiled rules and the evaluation of a call against them.
//!
//! Every rule's tool globs go into one shared [`GlobSet`], so a call is matched against the
//! whole policy in one pass over its tool name; only the few candidate rules are then checked
//! for server and arguments. Nothing here can fail at match time.
//!
//! A rule is judged under every reading a server may take of the call (`reading/`): its tool
//! name as sent and folded (case and Unicode NFKC, as servers that fold names read it), and its
//! arguments every way `condition.rs` lists. A rule that restricts counts when it matches under
//! some reading; the default tier gives way only to rules that match under every reading. So a
//! reading can only make a decision stricter.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use super::condition::{Condition, Judged, Miss};
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
    /// When the audit log rotates, and what becomes of its old segments.
    pub audit_rotation: AuditRotation,
    /// Autonomy levels set for single servers (`[servers.NAME]`), by exact name.
    pub server_autonomy: std::collections::HashMap<String, Autonomy>,
    /// The bar a tool's record must pass to skip the question (`[trust]`).
    pub trust: TrustBar,
    /// What a tool whose definition changed does until the change is accepted.
    pub changed_tools: super::file::ChangedTools,
    /// What a call whose arguments do not conform to its tool's input schema gets.
    pub arguments: super::file::ArgumentsSetting,
    /// Approvals (and nothing else) that make `toolgate summary` propose a lower gate.
    pub propose_after_approvals: u64,
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
            audit_rotation: AuditRotation::default(),
            server_autonomy: std::collections::HashMap::new(),
            trust: TrustBar::default(),
            changed_tools: super::file::ChangedTools::Ask,
            arguments: super::file::ArgumentsSetting::Strict,
            propose_after_approvals: 20,
        }
    }
}

/// When the audit log's live segment is rotated, and what becomes of the rotated ones
/// (`audit_rotate_size`, `audit_rotate_age`, `audit_compress`, `audit_retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditRotation {
    /// Rotate once the live segment holds this many bytes.
    pub size: u64,
    /// Rotate once the live segment's first record is this old.
    pub age: Option<Duration>,
    /// Compress rotated segments.
    pub compress: bool,
    /// Delete rotated segments whose every record is older than this; never, when `None`.
    pub retention: Option<Duration>,
}

impl AuditRotation {
    /// 64 MiB: about a hundred thousand allowed calls with their outcomes, a segment that
    /// compresses in well under a second and reads back quickly.
    pub const DEFAULT_SIZE: u64 = 64 << 20;
}

impl Default for AuditRotation {
    fn default() -> Self {
        AuditRotation { size: Self::DEFAULT_SIZE, age: None, compress: true, retention: None }
    }
}

/// The bar a tool's trust record must pass to skip the question (`[trust]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustBar {
    pub enabled: bool,
    pub approvals: usize,
    pub within: Duration,
}

impl Default for TrustBar {
    fn default() -> Self {
        TrustBar { enabled: true, approvals: 20, within: Duration::from_secs(30 * 24 * 3600) }
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
    /// The same globs matched without regard to case, for folded names; built on first use.
    tools_folded: OnceLock<GlobSet>,
    /// The server globs as written; `None` matches every server.
    pub server_patterns: Option<Vec<String>>,
    servers: Option<Arc<GlobSet>>,
    /// The one program the rule applies to (`identity = "sha256:…"`); `None`: any.
    pub identity: Option<Arc<str>>,
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
    pub identity: Option<String>,
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
            tools_folded: OnceLock::new(),
            servers,
            tool_patterns: parts.tools.map(|gs| gs.into_iter().map(|(p, _)| p).collect()),
            server_patterns: parts.servers.map(|gs| gs.into_iter().map(|(p, _)| p).collect()),
            name: parts.name.into(),
            identity: parts.identity.map(Into::into),
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

    /// Whether a folded reading of a tool name matches, without regard to case.
    fn matches_folded_tool(&self, folded: &str) -> bool {
        if self.tool_patterns.is_none() {
            return true;
        }
        self.tools_folded
            .get_or_init(|| {
                let mut b = GlobSetBuilder::new();
                for p in self.tool_patterns.iter().flatten() {
                    if let Ok(g) = folded_glob(p) {
                        b.add(g);
                    }
                }
                b.build().unwrap_or_else(|_| GlobSet::empty())
            })
            .is_match(folded)
    }

    /// How the rule's tool globs fare under the readings of a tool name.
    pub fn judge_tool(&self, tool: &ToolName<'_>) -> Judged {
        let exact = self.matches_tool(tool.sent);
        let folded = tool.folded.as_deref().is_some_and(|f| self.matches_folded_tool(f));
        match &tool.folded {
            None => Judged { any: exact, all: exact },
            Some(_) => Judged { any: exact || folded, all: exact && folded },
        }
    }

    pub fn matches_server(&self, server: &str) -> bool {
        self.servers.as_ref().is_none_or(|s| s.is_match(server))
    }

    /// Whether the call's server is the rule's program, when it names one. An unknown identity
    /// is none.
    pub fn matches_identity(&self, identity: Option<&str>) -> bool {
        self.identity.as_deref().is_none_or(|id| identity == Some(id))
    }

    /// How this rule, alone, fares under the readings of a call.
    pub fn judge(&self, call: &Call<'_>) -> Judged {
        if !self.matches_server(call.server) || !self.matches_identity(call.identity) {
            return Judged::NEVER;
        }
        let tool = self.judge_tool(&ToolName::of(call.tool, true));
        self.conditions.iter().fold(tool, |j, c| if j.any { j.and(c.judge(call.arguments, &call.context)) } else { j })
    }

    /// Whether this rule, alone, matches the call: for a rule that lowers the gate (it allows),
    /// under every reading; for any other, under some reading.
    pub fn matches(&self, call: &Call<'_>) -> bool {
        let judged = self.judge(call);
        if self.lowers() { judged.all } else { judged.any }
    }

    /// A rule whose only effect is to let calls through: it applies under every reading only.
    pub fn lowers(&self) -> bool {
        self.gate == Some(Gate::Allow) && !self.always_ask && self.min_confidence.is_none()
    }

    fn matched(&self, judged: Judged) -> Matched {
        Matched {
            rule: self.name.to_string(),
            gate: self.gate,
            tier: self.tier,
            reason: self.reason.as_deref().map(str::to_owned),
            some_readings: !judged.all,
        }
    }
}

/// A tool name as sent, and as a server that folds names reads it (NFKC, lower case), when
/// that differs.
#[derive(Debug, Clone)]
pub struct ToolName<'a> {
    pub sent: &'a str,
    pub folded: Option<String>,
}

impl<'a> ToolName<'a> {
    /// The readings of a name. A plain lower-case ASCII name folds to itself, so it is read as
    /// folded only when some glob is not plain lower case (`deleteFile` reaches `deletefile` on a
    /// server that compares names without case).
    pub fn of(sent: &'a str, globs_have_case: bool) -> ToolName<'a> {
        let plain = sent.bytes().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase());
        if plain && !globs_have_case {
            return ToolName { sent, folded: None };
        }
        ToolName { sent, folded: Some(fold(sent)) }
    }
}

/// A name as a server that folds names reads it: characters Unicode ignores by default dropped
/// (zero-width spaces, joiners, soft hyphens, variation selectors), whitespace around it trimmed,
/// NFKC, full lower case (`ß` is `ss`).
fn fold(name: &str) -> String {
    let ignorable = |c: &char| matches!(*c as u32, 0xAD | 0x34F | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0xFE00..=0xFE0F | 0xFEFF);
    let kept: String = name.chars().filter(|c| !ignorable(c)).collect();
    let lower = kept.trim().nfkc().collect::<String>().to_lowercase().replace('ß', "ss");
    lower.nfkc().collect()
}

/// A tool glob that matches folded names: case-insensitive, its own text folded the same way.
fn folded_glob(pattern: &str) -> Result<Glob, globset::Error> {
    let folded: String = pattern.nfkc().collect::<String>().to_lowercase();
    GlobBuilder::new(&folded)
        .literal_separator(false)
        .backslash_escape(true)
        .empty_alternates(true)
        .case_insensitive(true)
        .build()
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
    /// Every tool glob again, folded and case-insensitive, for names that fold to another;
    /// `folded_owner[i]` is the rule of glob `i`.
    folded_globs: GlobSet,
    folded_owner: Vec<usize>,
    /// Some tool glob is not plain lower-case ASCII: every name is also read folded.
    globs_have_case: bool,
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
    /// The rule's program, when the call's server is not it (or is not known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_not: Option<String>,
    /// The argument tests that did not hold.
    pub failed: Vec<Miss>,
}

impl RuleSet {
    /// Builds the tool index over the rules' own tool globs.
    pub fn new(rules: Vec<Rule>) -> Result<Self, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        let mut folded = GlobSetBuilder::new();
        let mut glob_owner = Vec::new();
        let mut folded_owner = Vec::new();
        let mut any_tool = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule.tool_patterns.is_none() {
                any_tool.push(i);
            }
            for g in &rule.tool_globs {
                builder.add(g.clone());
                glob_owner.push(i);
            }
            for p in rule.tool_patterns.iter().flatten() {
                folded.add(folded_glob(p)?);
                folded_owner.push(i);
            }
        }
        let globs_have_case = rules
            .iter()
            .flat_map(|r| r.tool_patterns.iter().flatten())
            .any(|p| p.bytes().any(|b| !b.is_ascii() || b.is_ascii_uppercase()));
        Ok(RuleSet {
            rules,
            tool_globs: builder.build()?,
            glob_owner,
            any_tool,
            folded_globs: folded.build()?,
            folded_owner,
            globs_have_case,
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Indices of the rules whose tool globs match some reading of the name, in file order.
    fn candidates(&self, tool: &ToolName<'_>) -> Vec<usize> {
        let mut globs = Vec::new();
        self.tool_globs.matches_into(tool.sent, &mut globs);
        let mut candidates = Vec::with_capacity(self.any_tool.len() + globs.len());
        candidates.extend_from_slice(&self.any_tool);
        candidates.extend(globs.iter().map(|g| self.glob_owner[*g]));
        if let Some(folded) = &tool.folded {
            self.folded_globs.matches_into(folded, &mut globs);
            candidates.extend(globs.into_iter().map(|g| self.folded_owner[g]));
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
    }

    /// Decides one call: every matching rule counts, the strictest gate wins.
    pub fn decide(&self, settings: &Settings, call: &Call<'_>) -> Decision {
        let tool = ToolName::of(call.tool, self.globs_have_case);
        let matched: Vec<(&Rule, Judged)> = self
            .candidates(&tool)
            .into_iter()
            .map(|i| &self.rules[i])
            .filter(|r| r.matches_server(call.server) && r.matches_identity(call.identity))
            .filter_map(|r| {
                let judged = r.conditions.iter().fold(r.judge_tool(&tool), |j, c| {
                    if j.any { j.and(c.judge(call.arguments, &call.context)) } else { j }
                });
                judged.any.then_some((r, judged))
            })
            .collect();
        evaluate(settings, call, &matched)
    }

    /// Decides a call and also lists the rules that almost matched it.
    pub fn explain(&self, settings: &Settings, call: &Call<'_>) -> (Decision, Vec<NearMiss>) {
        let tool = ToolName::of(call.tool, self.globs_have_case);
        let mut matched = Vec::new();
        let mut near = Vec::new();
        for i in self.candidates(&tool) {
            let rule = &self.rules[i];
            let server_ok = rule.matches_server(call.server);
            let identity_ok = rule.matches_identity(call.identity);
            let judged = rule.judge(call);
            if server_ok && identity_ok && judged.any {
                matched.push((rule, judged));
            } else {
                let failed: Vec<Miss> =
                    rule.conditions.iter().filter_map(|c| c.miss(call.arguments, &call.context)).collect();
                near.push(NearMiss {
                    rule: rule.name.to_string(),
                    gate: rule.gate,
                    server_not_in: (!server_ok).then(|| rule.server_patterns.clone().unwrap_or_default()),
                    identity_not: (!identity_ok).then(|| rule.identity.as_deref().unwrap_or_default().to_owned()),
                    failed,
                });
            }
        }
        (evaluate(settings, call, &matched), near)
    }
}

/// The strictest-wins evaluation over the rules that matched under some reading.
///
/// A call's gate is the strictest gate of those rules; and unless some rule with a gate matched
/// under every reading, the default tier's gate counts too. So a rule that lowers the gate below
/// the default (an allow rule, or a notify rule where the default is high) does so only when it
/// holds however the server reads the call.
fn evaluate(settings: &Settings, call: &Call<'_>, matched: &[(&Rule, Judged)]) -> Decision {
    let gated = matched.iter().filter_map(|(r, _)| r.gate.map(|g| (*r, g)));
    let surely_decided = matched.iter().any(|(r, j)| j.all && r.gate.is_some());
    let default = || match settings.default_tier {
        DefaultTier::Low => (Tier::Low, Basis::DefaultTier),
        DefaultTier::Medium => (Tier::Medium, Basis::DefaultTier),
        DefaultTier::High => (Tier::High, Basis::DefaultTier),
        DefaultTier::Annotations => (call.annotations.map_or(Tier::High, |a| a.tier()), Basis::Annotations),
    };
    let by_rules = gated.clone().map(|(_, g)| g).max().map(|gate| {
        let tier = gated.clone().filter_map(|(r, _)| r.tier).max().unwrap_or_else(|| implied_tier(gate));
        (gate, tier)
    });
    let (mut gate, tier, basis) = match (by_rules, surely_decided) {
        (Some((gate, tier)), true) => (gate, tier, Basis::Rules),
        (by_rules, _) => {
            let (default_tier, basis) = default();
            match by_rules {
                Some((gate, tier)) if gate >= default_tier.gate() => (gate, tier.max(default_tier), Basis::Rules),
                Some((_, tier)) => (default_tier.gate(), tier.max(default_tier), basis),
                None => (default_tier.gate(), default_tier, basis),
            }
        }
    };
    let matched: Vec<(&Rule, Judged)> = matched.to_vec();
    let rules = || matched.iter().map(|(r, _)| *r);
    let always_ask = rules().any(|r| r.always_ask);
    let mut reason = rules().find(|r| r.gate == Some(gate)).and_then(|r| r.reason.as_deref().map(str::to_owned));

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

    let threshold = rules().filter_map(|r| r.min_confidence).chain(settings.min_confidence).reduce(f64::max);
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
            Gate::Hold => rules().filter(|r| r.gate == Some(Gate::Hold)).filter_map(|r| r.hold).max(),
            _ => None,
        },
        always_ask,
        confidence,
        matched: matched.iter().map(|(r, j)| r.matched(*j)).collect(),
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
