//! Policies: TOML rules that decide which gate a `tools/call` meets.
//!
//! `file.rs` is the text as written, `rule.rs` the compiled form that decides, `decision.rs` the
//! outcome, `error.rs` the errors that point into the file. [`Policy`] ties them together.

pub mod decision;
pub mod error;
pub mod file;
pub mod rule;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use decision::{Annotations, Basis, Call, Decision, Gate, Matched, Tier};
pub use error::{PolicyError, PolicyErrors};
pub use file::{Autonomy, DefaultTier};
pub use rule::{Rule, RuleSet, Settings};

/// The policy used when no file is given or found.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../policies/default.toml");

/// The name the embedded default carries in messages.
pub const EMBEDDED_ORIGIN: &str = "<embedded default policy>";

/// A loaded, compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub settings: Settings,
    pub rules: RuleSet,
    /// Where it came from: a path, or [`EMBEDDED_ORIGIN`].
    pub origin: String,
    /// `sha256:` and the first 16 hex digits of the file's bytes; audit records carry it.
    pub version: String,
}

impl Policy {
    /// Decides one call.
    pub fn decide(&self, call: &Call<'_>) -> Decision {
        self.rules.decide(&self.settings, call)
    }

    /// The embedded default policy.
    pub fn embedded() -> Self {
        match Policy::from_toml(EMBEDDED_DEFAULT, EMBEDDED_ORIGIN) {
            Ok(policy) => policy,
            // The embedded text is checked by a unit test; this cannot happen in a built binary.
            Err(e) => panic!("the embedded default policy does not load: {e}"),
        }
    }

    /// Reads and compiles a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            PolicyErrors(vec![PolicyError {
                origin: origin.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read the policy: {e}"),
            }])
        })?;
        Policy::from_toml(&text, &origin)
    }

    /// Compiles policy text; `origin` names it in errors. Every problem is reported, not just
    /// the first.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, PolicyErrors> {
        let raw: file::PolicyFile = toml::from_str(text).map_err(|e| {
            PolicyErrors(vec![PolicyError::at(
                origin,
                text,
                e.span(),
                e.message().trim_end(),
            )])
        })?;
        let mut errors = Vec::new();
        let err = |span, message: String| PolicyError::at(origin, text, Some(span), message);

        let mut settings = Settings::default();
        if let Some(t) = raw.settings.default_tier {
            settings.default_tier = t.into_inner();
        }
        if let Some(a) = raw.settings.autonomy {
            settings.autonomy = a.into_inner();
        }
        if let Some(t) = raw.settings.approval_timeout {
            match parse_duration(t.get_ref()) {
                Ok(d) => settings.approval_timeout = d,
                Err(m) => errors.push(err(t.span(), format!("approval_timeout: {m}"))),
            }
        }

        let mut rules = Vec::new();
        let mut tool_globs = Vec::new();
        let mut names = std::collections::HashMap::new();
        for spanned in raw.rules {
            let span = spanned.span();
            let r = spanned.into_inner();
            let name = r.name.get_ref().clone();
            if name.trim().is_empty() {
                errors.push(err(r.name.span(), "a rule needs a non-empty name".into()));
            }
            if let Some(first) = names.insert(name.clone(), r.name.span()) {
                let (line, _) = error::line_column(text, first.start);
                errors.push(err(
                    r.name.span(),
                    format!("a rule named {name:?} already exists (line {line})"),
                ));
            }
            let gate = match (r.action, r.tier) {
                (Some(action), _) => action,
                (None, Some(tier)) => tier.gate(),
                (None, None) => {
                    errors.push(err(
                        span.clone(),
                        format!("rule {name:?} sets neither `tier` nor `action`"),
                    ));
                    continue;
                }
            };
            let hold = match (&r.hold, gate) {
                (Some(h), Gate::Hold) => match parse_duration(h.get_ref()) {
                    Ok(d) => Some(d),
                    Err(m) => {
                        errors.push(err(h.span(), format!("rule {name:?}: hold: {m}")));
                        None
                    }
                },
                (Some(h), _) => {
                    errors.push(err(
                        h.span(),
                        format!("rule {name:?} sets `hold` but its action is not \"hold\""),
                    ));
                    None
                }
                (None, Gate::Hold) => {
                    errors.push(err(
                        span.clone(),
                        format!("rule {name:?} has action \"hold\" but no `hold` duration"),
                    ));
                    None
                }
                (None, _) => None,
            };
            let globs = |list: &Option<toml::Spanned<Vec<toml::Spanned<String>>>>,
                         what: &str,
                         errors: &mut Vec<PolicyError>| {
                let list = list.as_ref()?;
                if list.get_ref().is_empty() {
                    errors.push(err(list.span(), format!("rule {name:?}: `{what}` is empty, so the rule could never match; remove it to match every {}", &what[..what.len() - 1])));
                }
                Some(
                    list.get_ref()
                        .iter()
                        .filter_map(|p| match rule::name_glob(p.get_ref()) {
                            Ok(g) => Some(g),
                            Err(e) => {
                                errors.push(err(
                                    p.span(),
                                    format!("rule {name:?}: bad glob in `{what}`: {}", e.kind()),
                                ));
                                None
                            }
                        })
                        .collect::<Vec<_>>(),
                )
            };
            let tools = globs(&r.tools, "tools", &mut errors);
            let servers = globs(&r.servers, "servers", &mut errors).map(|gs| {
                let mut b = globset::GlobSetBuilder::new();
                gs.into_iter().for_each(|g| {
                    b.add(g);
                });
                b.build()
            });
            let servers = match servers.transpose() {
                Ok(s) => s,
                Err(e) => {
                    errors.push(err(span.clone(), format!("rule {name:?}: servers: {e}")));
                    None
                }
            };
            rules.push(Rule {
                name,
                servers,
                tier: r.tier,
                gate,
                hold,
                reason: r.reason,
            });
            tool_globs.push(tools);
        }
        if !errors.is_empty() {
            return Err(PolicyErrors(errors));
        }
        let rules = RuleSet::new(rules, tool_globs).map_err(|e| {
            PolicyErrors(vec![PolicyError::at(
                origin,
                text,
                None,
                format!("cannot build the tool index: {e}"),
            )])
        })?;
        Ok(Policy {
            settings,
            rules,
            origin: origin.to_owned(),
            version: version_of(text),
        })
    }
}

/// `sha256:` and 16 hex digits of the text.
pub fn version_of(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Parses a duration such as `90s`, `5m` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"30s\" or \"5m\" ({e})"))
}

/// Where a policy comes from, in order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--policy FILE`.
    Flag(PathBuf),
    /// `$TOOLGATE_POLICY`.
    Env(PathBuf),
    /// `$XDG_CONFIG_HOME/toolgate/policy.toml`, when it exists.
    Xdg(PathBuf),
    /// Nothing given and nothing found.
    Embedded,
}

impl Source {
    /// Finds the policy to use: the flag, then the environment, then the XDG file, then the
    /// embedded default.
    pub fn locate(flag: Option<&Path>) -> Self {
        if let Some(path) = flag {
            return Source::Flag(path.to_owned());
        }
        if let Some(path) = std::env::var_os("TOOLGATE_POLICY").filter(|v| !v.is_empty()) {
            return Source::Env(PathBuf::from(path));
        }
        match crate::paths::config_dir().map(|d| d.join("policy.toml")) {
            Some(path) if path.exists() => Source::Xdg(path),
            _ => Source::Embedded,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::Flag(p) | Source::Env(p) | Source::Xdg(p) => Some(p),
            Source::Embedded => None,
        }
    }

    pub fn load(&self) -> Result<Policy, PolicyErrors> {
        match self.path() {
            Some(path) => Policy::load(path),
            None => Ok(Policy::embedded()),
        }
    }
}

#[cfg(test)]
mod tests;
