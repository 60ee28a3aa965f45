//! The policy file as written: serde structs that refuse unknown keys, with spans kept so that
//! later checks can point at the exact place. Nothing here is used at match time; see `rule.rs`.

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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    pub default_tier: Option<Spanned<DefaultTier>>,
    pub approval_timeout: Option<Spanned<String>>,
    pub autonomy: Option<Spanned<Autonomy>>,
}

/// The tier of a call no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub name: Spanned<String>,
    pub tools: Option<Spanned<Vec<Spanned<String>>>>,
    pub servers: Option<Spanned<Vec<Spanned<String>>>>,
    pub tier: Option<Tier>,
    pub action: Option<Gate>,
    pub hold: Option<Spanned<String>>,
    pub reason: Option<String>,
}
