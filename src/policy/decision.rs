//! The outcome of deciding a call: which gate it meets, at which tier, and which rules said so.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::reading::Context;

/// What happens to a call, ordered from most to least permissive. When several rules match,
/// the strictest (greatest) gate wins, so adding a rule can never loosen the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gate {
    /// Run at once; logged for audit.
    Allow,
    /// Run at once; the human is told and the call is queued for review.
    Notify,
    /// Wait a set time during which the human can cancel; then run.
    Hold,
    /// Wait for a human's explicit yes.
    Ask,
    /// Park the call for a later review; it does not run now.
    Queue,
    /// Refuse.
    Deny,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Allow => "allow",
            Gate::Notify => "notify",
            Gate::Hold => "hold",
            Gate::Ask => "ask",
            Gate::Queue => "queue",
            Gate::Deny => "deny",
        }
    }
}

/// Risk tier. Each tier has a default gate; a rule's `action` can override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Low,
    Medium,
    High,
}

impl Tier {
    /// The gate a tier implies when no `action` says otherwise.
    pub fn gate(self) -> Gate {
        match self {
            Tier::Low => Gate::Allow,
            Tier::Medium => Gate::Notify,
            Tier::High => Gate::Ask,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Low => "low",
            Tier::Medium => "medium",
            Tier::High => "high",
        }
    }
}

/// The hints a server gave about a tool in `tools/list`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Annotations {
    pub read_only: bool,
    pub open_world: bool,
}

impl Annotations {
    /// Reads `annotations` from one tool of a `tools/list` result, with the spec's defaults
    /// (`readOnlyHint` false, `openWorldHint` true) for missing hints.
    pub fn from_tool(tool: &Value) -> Self {
        let hint = |key: &str, default: bool| {
            tool.get("annotations").and_then(|a| a.get(key)).and_then(Value::as_bool).unwrap_or(default)
        };
        Annotations { read_only: hint("readOnlyHint", false), open_world: hint("openWorldHint", true) }
    }

    /// The tier these hints suggest: read-only and closed-world is low, read-only and
    /// open-world is medium, anything else high.
    pub fn tier(self) -> Tier {
        match (self.read_only, self.open_world) {
            (true, false) => Tier::Low,
            (true, true) => Tier::Medium,
            (false, _) => Tier::High,
        }
    }
}

/// A call as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub server: &'a str,
    /// The program the server is (`sha256:…`), when it is known and vouched for: a proxy gives
    /// it once its session's `tools/list` showed the tool with its pinned definition.
    pub identity: Option<&'a str>,
    pub tool: &'a str,
    pub arguments: &'a Map<String, Value>,
    /// The tool's hints from the latest `tools/list`, if it was listed.
    pub annotations: Option<Annotations>,
    /// The confidence (0 to 1) the model reported for this call, if it did.
    pub confidence: Option<f64>,
    /// What the readings of the arguments know: the tool's schema, the arguments' text, and
    /// where the server stands (see `reading/`).
    pub context: Context<'a>,
}

impl<'a> Call<'a> {
    /// A call judged on its values alone (no schema, no server): `with_*` adds the rest.
    pub fn new(server: &'a str, tool: &'a str, arguments: &'a Map<String, Value>) -> Call<'a> {
        Call {
            server,
            identity: None,
            tool,
            arguments,
            annotations: None,
            confidence: None,
            context: Context::lexical(),
        }
    }

    pub fn with_identity(self, identity: Option<&'a str>) -> Call<'a> {
        Call { identity, ..self }
    }

    pub fn with_confidence(self, confidence: Option<f64>) -> Call<'a> {
        Call { confidence, ..self }
    }

    pub fn with_annotations(self, annotations: Option<Annotations>) -> Call<'a> {
        Call { annotations, ..self }
    }

    pub fn with_context(self, context: Context<'a>) -> Call<'a> {
        Call { context, ..self }
    }
}

/// One rule that matched a call, and what it asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matched {
    pub rule: String,
    /// `None` for a rule that only sets `min_confidence`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// It matched under some readings of the call, not all: it can make the decision stricter,
    /// never looser.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub some_readings: bool,
}

/// Where the winning gate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// At least one rule matched.
    Rules,
    /// No rule matched; `default_tier` decided.
    DefaultTier,
    /// No rule matched; the tool's annotations decided (`default_tier = "annotations"`).
    Annotations,
}

/// The policy's verdict on one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub gate: Gate,
    pub tier: Tier,
    pub basis: Basis,
    /// Every rule that matched, in file order.
    pub matched: Vec<Matched>,
    /// The reason of the first matching rule that asked for the winning gate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long a `hold` gate waits.
    #[serde(skip_serializing_if = "Option::is_none", with = "humantime_serde_opt")]
    pub hold: Option<Duration>,
    /// A matching rule says `always_ask`: no autonomy level or earned trust may lower the gate.
    pub always_ask: bool,
    /// The confidence threshold that applied, if any, and whether it escalated the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<ConfidenceCheck>,
}

/// A confidence threshold applied to a call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ConfidenceCheck {
    pub threshold: f64,
    pub reported: Option<f64>,
    /// The call was raised to ask because of it.
    pub escalated: bool,
}

impl Decision {
    /// The names of the rules that asked for the winning gate.
    pub fn deciding_rules(&self) -> impl Iterator<Item = &str> {
        self.matched.iter().filter(move |m| m.gate == Some(self.gate)).map(|m| m.rule.as_str())
    }
}

mod humantime_serde_opt {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}
