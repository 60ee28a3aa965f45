//! The policy file as written: serde structs that refuse unknown keys, with spans kept so that
//! later checks can point at the exact place. Nothing here is used at match time; see
//! `compile.rs` for the step that turns it into rules.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::decision::{Gate, Tier};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub settings: SettingsFile,
    #[serde(default)]
    pub rules: Vec<Spanned<RuleFile>>,
    /// Settings for one server, by its name (`run --name`).
    #[serde(default)]
    pub servers: BTreeMap<String, ServerFile>,
    /// Earned autonomy and pinning.
    #[serde(default)]
    pub trust: TrustSettingsFile,
}

/// `[trust]`: when a tool's record lets its calls skip the question, and what a changed tool does.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSettingsFile {
    pub enabled: Option<bool>,
    /// Approvals needed within `within`, with no denial or edit since.
    pub approvals: Option<usize>,
    pub within: Option<Spanned<String>>,
    /// What a tool whose definition changed does until the change is accepted.
    pub changed_tools: Option<ChangedTools>,
}

/// What a changed tool does until the change is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangedTools {
    /// Its calls need a yes.
    #[default]
    Ask,
    /// It is left out of `tools/list`, and its calls are refused.
    Hide,
}

/// `[servers.NAME]`: what differs for one server.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// This server's autonomy level, in place of `settings.autonomy`.
    pub autonomy: Option<Autonomy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    pub default_tier: Option<Spanned<DefaultTier>>,
    pub approval_timeout: Option<Spanned<String>>,
    pub autonomy: Option<Spanned<Autonomy>>,
    /// A confidence every call must reach (rules can ask for more).
    pub min_confidence: Option<Spanned<f64>>,
    /// What a call without a reported confidence gets when a threshold applies.
    pub missing_confidence: Option<MissingConfidence>,
    /// Whether each pending approval also pops up a desktop notification (default true).
    pub desktop_notifications: Option<bool>,
    /// Argument keys whose values the audit log records as a digest.
    pub audit_secret_keys: Option<Vec<String>>,
    /// The live audit segment is rotated once it is this big (`"64 MiB"`).
    pub audit_rotate_size: Option<Spanned<String>>,
    /// ... or once its first record is this old (`"1d"`).
    pub audit_rotate_age: Option<Spanned<String>>,
    /// Whether rotated segments are compressed (default true).
    pub audit_compress: Option<bool>,
    /// Rotated segments older than this are deleted; without it, none ever is.
    pub audit_retention: Option<Spanned<String>>,
    /// What a call whose arguments do not conform to the tool's input schema gets.
    pub arguments: Option<ArgumentsSetting>,
    /// `toolgate summary` proposes a lower gate for a tool a person approved this many times
    /// in the period, and never denied or edited (default 20).
    pub propose_after_approvals: Option<u64>,
}

/// What `[settings] arguments` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgumentsSetting {
    /// Refuse a call that does not conform, and say why to the model.
    #[default]
    Strict,
    /// A person decides a call that does not conform.
    Ask,
    /// Judge every call on the readings alone.
    Off,
}

/// The tier of a call no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultTier {
    Low,
    Medium,
    High,
    /// Take the tier from the tool's annotations in the latest `tools/list`.
    Annotations,
}

/// How much the human is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Autonomy {
    /// Ask for every call that no rule denies.
    Supervised,
    /// Follow the tiers.
    #[default]
    Standard,
    /// Let high-risk calls run with a notice, except deny and `always_ask` rules.
    Autonomous,
}

/// What a missing confidence counts as, where a threshold applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingConfidence {
    /// Below any threshold: the call escalates to ask.
    #[default]
    Ask,
    /// No opinion: the threshold is not applied.
    Ignore,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub name: Spanned<String>,
    pub tools: Option<Spanned<Vec<Spanned<String>>>>,
    pub servers: Option<Spanned<Vec<Spanned<String>>>>,
    /// The one program (`sha256:…`, `crate::identity`) the rule applies to.
    pub identity: Option<Spanned<String>>,
    pub args: Option<BTreeMap<String, Spanned<ConditionFile>>>,
    pub tier: Option<Tier>,
    pub action: Option<Gate>,
    pub hold: Option<Spanned<String>>,
    pub reason: Option<String>,
    #[serde(default)]
    pub always_ask: bool,
    pub min_confidence: Option<Spanned<f64>>,
    #[serde(default)]
    pub examples: Vec<Spanned<ExampleFile>>,
    #[serde(default)]
    pub counter_examples: Vec<Spanned<ExampleFile>>,
}

/// The tests on one argument, e.g. `{ not_glob = "/home/me/project/**" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionFile {
    pub regex: Option<Spanned<String>>,
    pub not_regex: Option<Spanned<String>>,
    pub glob: Option<Spanned<String>>,
    pub not_glob: Option<Spanned<String>>,
    pub equals: Option<toml::Value>,
    pub one_of: Option<Vec<toml::Value>>,
    pub lt: Option<Spanned<f64>>,
    pub le: Option<Spanned<f64>>,
    pub gt: Option<Spanned<f64>>,
    pub ge: Option<Spanned<f64>>,
    pub exists: Option<bool>,
}

/// A call a rule must (or must not) match, checked when the policy loads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleFile {
    pub tool: String,
    #[serde(default)]
    pub args: toml::Table,
    pub server: Option<String>,
    /// The server's identity (default: the rule's own).
    pub identity: Option<String>,
    pub confidence: Option<f64>,
}
