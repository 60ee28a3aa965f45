//! Policy text to compiled rules. Every problem is collected with its place in the file, and
//! a policy with any problem is refused whole: a rule that silently never matches is the
//! failure users fear most, so nothing here is skipped or guessed.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Map, Value};
use toml::Spanned;

use super::condition::{self, CompareOp, Condition, Test};
use super::decision::{Call, Gate};
use super::error::{PolicyError, PolicyErrors, line_column};
use super::file::{ConditionFile, ExampleFile, PolicyFile, RuleFile};
use super::reading::number::{self, Number};
use super::rule::{self, Rule, RuleParts, RuleSet, Settings};
use super::{Policy, parse_duration, parse_size, version_of};

/// Compiles policy text; `origin` names it in errors.
pub fn compile(text: &str, origin: &str) -> Result<Policy, PolicyErrors> {
    let raw: PolicyFile = toml::from_str(text)
        .map_err(|e| PolicyErrors(vec![PolicyError::at(origin, text, e.span(), e.message().trim_end())]))?;
    let mut c = Compiler { origin, text, errors: Vec::new() };

    let mut settings = Settings::default();
    let s = raw.settings;
    if let Some(t) = s.default_tier {
        settings.default_tier = t.into_inner();
    }
    if let Some(a) = s.autonomy {
        settings.autonomy = a.into_inner();
    }
    if let Some(t) = s.approval_timeout {
        match parse_duration(t.get_ref()) {
            Ok(d) => settings.approval_timeout = d,
            Err(m) => c.error(t.span(), format!("approval_timeout: {m}")),
        }
    }
    settings.min_confidence = s.min_confidence.and_then(|m| c.confidence(&m, "settings: min_confidence"));
    settings.missing_confidence = s.missing_confidence.unwrap_or_default();
    settings.desktop_notifications = s.desktop_notifications.unwrap_or(true);
    settings.audit_secret_keys = s.audit_secret_keys;
    if let Some(size) = s.audit_rotate_size {
        match parse_size(size.get_ref()) {
            Ok(0) => c.error(size.span(), "audit_rotate_size: a segment must be allowed at least one byte".into()),
            Ok(n) => settings.audit_rotation.size = n,
            Err(m) => c.error(size.span(), format!("audit_rotate_size: {m}")),
        }
    }
    settings.audit_rotation.age = s.audit_rotate_age.and_then(|a| c.period(&a, "audit_rotate_age"));
    settings.audit_rotation.compress = s.audit_compress.unwrap_or(true);
    settings.audit_rotation.retention = s.audit_retention.and_then(|r| c.period(&r, "audit_retention"));
    settings.arguments = s.arguments.unwrap_or_default();
    if let Some(n) = s.propose_after_approvals {
        settings.propose_after_approvals = n.max(1);
    }
    let t = raw.trust;
    settings.trust.enabled = t.enabled.unwrap_or(true);
    if let Some(n) = t.approvals {
        settings.trust.approvals = n;
    }
    if let Some(w) = t.within {
        match parse_duration(w.get_ref()) {
            Ok(d) => settings.trust.within = d,
            Err(m) => c.error(w.span(), format!("trust.within: {m}")),
        }
    }
    settings.changed_tools = t.changed_tools.unwrap_or_default();
    settings.server_autonomy =
        raw.servers.iter().filter_map(|(name, server)| server.autonomy.map(|a| (name.clone(), a))).collect();

    let mut rules = Vec::new();
    let mut names: HashMap<String, Range<usize>> = HashMap::new();
    let mut server_sets = HashMap::new();
    for spanned in raw.rules {
        let span = spanned.span();
        let r = spanned.into_inner();
        let name = r.name.get_ref().clone();
        if name.trim().is_empty() {
            c.error(r.name.span(), "a rule needs a non-empty name".into());
        }
        if let Some(first) = names.insert(name.clone(), r.name.span()) {
            let (line, _) = line_column(text, first.start);
            c.error(r.name.span(), format!("a rule named {name:?} already exists (line {line})"));
        }
        if let Some(parts) = c.rule(&name, span, &r) {
            match Rule::new(parts, &mut server_sets) {
                Ok(rule) => {
                    c.examples(&rule, &r);
                    rules.push(rule);
                }
                Err(e) => c.error(r.name.span(), format!("rule {name:?}: {e}")),
            }
        }
    }
    if !c.errors.is_empty() {
        c.errors.sort_by_key(|e| (e.line, e.column));
        return Err(PolicyErrors(c.errors));
    }
    let rules = RuleSet::new(rules).map_err(|e| {
        PolicyErrors(vec![PolicyError::at(origin, text, None, format!("cannot build the tool index: {e}"))])
    })?;
    Ok(Policy { settings, rules, origin: origin.to_owned(), version: version_of(text).into() })
}

struct Compiler<'a> {
    origin: &'a str,
    text: &'a str,
    errors: Vec<PolicyError>,
}

impl Compiler<'_> {
    fn error(&mut self, span: Range<usize>, message: String) {
        self.errors.push(PolicyError::at(self.origin, self.text, Some(span), message));
    }

    /// A duration that must not be zero (a segment rotated, or deleted, as soon as it is written).
    fn period(&mut self, value: &Spanned<String>, what: &str) -> Option<std::time::Duration> {
        match parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.error(value.span(), format!("{what}: must be longer than zero"));
                None
            }
            Ok(d) => Some(d),
            Err(m) => {
                self.error(value.span(), format!("{what}: {m}"));
                None
            }
        }
    }

    fn confidence(&mut self, value: &Spanned<f64>, what: &str) -> Option<f64> {
        let v = *value.get_ref();
        if (0.0..=1.0).contains(&v) {
            Some(v)
        } else {
            self.error(value.span(), format!("{what}: {v} is not a confidence between 0 and 1"));
            None
        }
    }

    /// Compiles one rule's parts; `None` when it had errors (already recorded).
    fn rule(&mut self, name: &str, span: Range<usize>, r: &RuleFile) -> Option<RuleParts> {
        let before = self.errors.len();
        let min_confidence =
            r.min_confidence.as_ref().and_then(|m| self.confidence(m, &format!("rule {name:?}: min_confidence")));
        let gate = match (r.action, r.tier) {
            (Some(action), _) => Some(action),
            (None, Some(tier)) => Some(tier.gate()),
            (None, None) if r.always_ask => Some(Gate::Ask),
            (None, None) if min_confidence.is_some() => None,
            (None, None) => {
                self.error(span.clone(), format!("rule {name:?} sets none of `tier`, `action`, `always_ask` or `min_confidence`, so it would do nothing"));
                None
            }
        };
        let gate = match gate {
            Some(g) if r.always_ask && g < Gate::Ask => Some(Gate::Ask),
            g => g,
        };
        let hold = match (&r.hold, gate) {
            (Some(h), Some(Gate::Hold)) => match parse_duration(h.get_ref()) {
                Ok(d) => Some(d),
                Err(m) => {
                    self.error(h.span(), format!("rule {name:?}: hold: {m}"));
                    None
                }
            },
            (Some(h), _) => {
                self.error(h.span(), format!("rule {name:?} sets `hold` but its action is not \"hold\""));
                None
            }
            (None, Some(Gate::Hold)) => {
                self.error(
                    span.clone(),
                    format!("rule {name:?} has action \"hold\" but no `hold` duration, like hold = \"30s\""),
                );
                None
            }
            (None, _) => None,
        };
        let tools = self.globs(name, &r.tools, "tools");
        let servers = self.globs(name, &r.servers, "servers");
        let identity = r.identity.as_ref().and_then(|id| {
            let text = id.get_ref();
            let hex = text.strip_prefix("sha256:").unwrap_or_default();
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                Some(text.clone())
            } else {
                self.error(
                    id.span(),
                    format!("rule {name:?}: `identity` must be a server identity like \"sha256:\" and 64 lower-case hex digits, as `toolgate trust` shows it"),
                );
                None
            }
        });
        let mut conditions = Vec::new();
        for (pointer, cond) in r.args.iter().flatten() {
            if let Some(c) = self.condition(name, pointer, cond) {
                conditions.push(c);
            }
        }
        if self.errors.len() > before {
            return None;
        }
        let parts = RuleParts {
            name: name.to_owned(),
            tools,
            servers,
            identity,
            conditions,
            tier: r.tier,
            gate,
            hold,
            reason: r.reason.clone(),
            always_ask: r.always_ask,
            min_confidence,
        };
        Some(parts)
    }

    fn globs(
        &mut self,
        name: &str,
        list: &Option<Spanned<Vec<Spanned<String>>>>,
        what: &str,
    ) -> Option<Vec<(String, globset::Glob)>> {
        let list = list.as_ref()?;
        if list.get_ref().is_empty() {
            let every = if what == "tools" { "tool" } else { "server" };
            self.error(
                list.span(),
                format!(
                    "rule {name:?}: `{what}` is empty, so the rule could never match; remove it to match every {every}"
                ),
            );
        }
        let mut out = Vec::new();
        for p in list.get_ref() {
            match rule::name_glob(p.get_ref()) {
                Ok(g) => out.push((p.get_ref().clone(), g)),
                Err(e) => self.error(p.span(), format!("rule {name:?}: bad glob in `{what}`: {}", e.kind())),
            }
        }
        Some(out)
    }

    fn condition(&mut self, name: &str, pointer: &str, cond: &Spanned<ConditionFile>) -> Option<Condition> {
        let span = cond.span();
        let f = cond.get_ref();
        let before = self.errors.len();
        let mut tests = Vec::new();
        for (pattern, negate) in [(&f.regex, false), (&f.not_regex, true)] {
            if let Some(p) = pattern {
                match condition::Matcher::regex(p.get_ref()) {
                    Ok(regex) => tests.push(Test::Regex { regex, negate }),
                    Err(e) => self.error(
                        p.span(),
                        format!("rule {name:?}: args {pointer:?}: bad regex: {}", first_line(&e.to_string())),
                    ),
                }
            }
        }
        for (pattern, negate) in [(&f.glob, false), (&f.not_glob, true)] {
            if let Some(p) = pattern {
                match condition::PathGlob::new(p.get_ref()) {
                    Ok(glob) => tests.push(Test::Glob { glob, negate }),
                    Err(e) => self.error(p.span(), format!("rule {name:?}: args {pointer:?}: bad glob: {e}")),
                }
            }
        }
        if let Some(v) = &f.equals {
            tests.push(Test::Equals(json(v)));
        }
        if let Some(vs) = &f.one_of {
            if vs.is_empty() {
                self.error(
                    span.clone(),
                    format!("rule {name:?}: args {pointer:?}: `one_of` is empty, so it could never match"),
                );
            }
            tests.push(Test::OneOf(vs.iter().map(json).collect()));
        }
        for (bound, op) in
            [(&f.lt, CompareOp::Lt), (&f.le, CompareOp::Le), (&f.gt, CompareOp::Gt), (&f.ge, CompareOp::Ge)]
        {
            let Some(bound) = bound else { continue };
            // The bound exactly as written: `gt = 9007199254740993` is not rounded to a double.
            let written = self.text.get(bound.span()).and_then(number::toml_literal);
            let bound_number = written.unwrap_or_else(|| Number::from_f64(*bound.get_ref()));
            if bound_number.is_nan() {
                self.error(
                    bound.span(),
                    format!("rule {name:?}: args {pointer:?}: a bound cannot be nan: no value compares to it"),
                );
                continue;
            }
            tests.push(Test::Compare { op, bound: bound_number });
        }
        if let Some(e) = f.exists {
            tests.push(Test::Exists(e));
        }
        if f.exists == Some(false) && tests.len() > 1 {
            self.error(
                span.clone(),
                format!("rule {name:?}: args {pointer:?}: `exists = false` cannot be combined with tests on the value"),
            );
        }
        if self.errors.len() > before {
            return None;
        }
        match Condition::new(pointer, tests) {
            Ok(c) => Some(c),
            Err(m) => {
                self.error(span, format!("rule {name:?}: args: {m}"));
                None
            }
        }
    }

    /// Runs a rule's `examples` (must match) and `counter_examples` (must not).
    fn examples(&mut self, rule: &Rule, r: &RuleFile) {
        for (list, must_match) in [(&r.examples, true), (&r.counter_examples, false)] {
            for example in list {
                let e: &ExampleFile = example.get_ref();
                let arguments: Map<String, Value> = match json(&toml::Value::Table(e.args.clone())) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                let server = e.server.as_deref().or_else(|| literal(rule.server_patterns.as_deref())).unwrap_or("any");
                let identity = e.identity.as_deref().or(rule.identity.as_deref());
                let call = Call::new(server, &e.tool, &arguments).with_confidence(e.confidence).with_identity(identity);
                if rule.matches(&call) != must_match {
                    let (kind, verb) =
                        if must_match { ("example", "does not match it") } else { ("counter-example", "matches it") };
                    let detail = if must_match { why_not(rule, &call) } else { String::new() };
                    self.error(
                        example.span(),
                        format!(
                            "rule {:?}: {kind} `{}` {} {verb}{detail}",
                            rule.name,
                            e.tool,
                            Value::Object(arguments.clone())
                        ),
                    );
                }
            }
        }
    }
}

/// Why a rule does not match a call, for an example that should.
fn why_not(rule: &Rule, call: &Call<'_>) -> String {
    if !rule.matches_tool(call.tool) {
        return format!(": the tool is not in {:?}", rule.tool_patterns.clone().unwrap_or_default());
    }
    if !rule.matches_server(call.server) {
        return format!(
            ": the server {:?} is not in {:?}",
            call.server,
            rule.server_patterns.clone().unwrap_or_default()
        );
    }
    if !rule.matches_identity(call.identity) {
        return format!(": the server's identity is not {}", rule.identity.as_deref().unwrap_or_default());
    }
    match rule.conditions.iter().find_map(|c| c.miss(call.arguments, &call.context)) {
        Some(m) => format!(
            ": {} {} fails for {}",
            m.pointer,
            m.test,
            m.actual.map_or("a missing argument".to_owned(), |v| v.to_string())
        ),
        None => String::new(),
    }
}

/// The only server a rule names, when it names exactly one literal server.
fn literal(patterns: Option<&[String]>) -> Option<&str> {
    match patterns {
        Some([one]) if !one.contains(['*', '?', '[', '{', '\\']) => Some(one),
        _ => None,
    }
}

fn json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn first_line(s: &str) -> String {
    s.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(s).trim().to_owned()
}
