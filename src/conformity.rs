//! Arguments against the tool's advertised input schema, without coercion.
//!
//! A server reads an argument through its own validator, and a validator coerces: pydantic turns
//! `"true"` into `True`, `"5_000"` into 5000, a JSON string into an object. A call whose
//! arguments already have the types the tool declares leaves a validator nothing to coerce, so
//! toolgate's reading of them is the server's. `[settings] arguments` says what happens to a call
//! whose arguments do not conform (a string where a boolean is declared, a property the schema
//! forbids): `strict` refuses it and tells the model which argument and which type, `ask` asks a
//! person, `off` judges it on every reading alone.
//!
//! Where the schema cannot say how the server reads a call, conformity fails closed in the same
//! way: a tool the server does not list (after toolgate has listed the tools itself), a tool
//! listed twice with different definitions, a schema that refers to another document or that no
//! validator can compile.
//!
//! Validation uses the `jsonschema` crate, with the `regex` crate's linear-time engine for
//! `pattern`s (a server's schema must not be able to stall the gate).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::policy::{Decision, Gate, Tier};

/// What `[settings] arguments` says, under the name this module has always used.
use crate::policy::ArgumentsSetting as Setting;

/// One tool as the server lists it.
#[derive(Debug, Clone)]
enum Listed {
    Tool {
        schema: Arc<Value>,
        validator: Result<Arc<jsonschema::Validator>, String>,
        listing: u64,
    },
    /// Listed twice in one listing with different definitions: which one the server uses is
    /// anyone's guess.
    Twice {
        listing: u64,
    },
}

/// The tools of one server, from its `tools/list` answers (the client's and toolgate's own).
#[derive(Debug, Default)]
pub struct Tools {
    listed: HashMap<String, Listed>,
    /// Which listing the latest answers belong to (a listing starts with a request without a
    /// cursor and may take several pages).
    listing: u64,
    /// A listing ran to its last page since the server last said its tools changed.
    complete: bool,
    /// Compiled validators by the text of their schema: a listing repeated does not compile
    /// again.
    compiled: HashMap<String, Result<Arc<jsonschema::Validator>, String>>,
}

/// How a call's arguments fare against its tool's schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// They conform: the server's validator has nothing to coerce.
    Conforms(Arc<Value>),
    /// They do not: each problem names the argument and what the schema wants.
    Nonconforming(Vec<String>),
    /// The schema cannot say how the server reads the call.
    CannotJudge(String),
    /// The tool is not in what toolgate has seen listed, and no complete listing has been seen
    /// since the tools last changed: list them first.
    Unlisted,
}

impl Tools {
    /// A page of a `tools/list` answer; `first` when its request had no cursor (a new listing
    /// begins), `last` when the answer has no `nextCursor` (the listing is complete, and tools
    /// it no longer has are gone).
    pub fn learn(&mut self, tools: &[Value], first: bool, last: bool) {
        if first {
            self.listing += 1;
        }
        let listing = self.listing;
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else { continue };
            let schema = tool.get("inputSchema").cloned().unwrap_or(Value::Null);
            let entry = match self.listed.get(name) {
                Some(Listed::Twice { listing: l }) if *l == listing => continue,
                Some(Listed::Tool { schema: seen, listing: l, .. }) if *l == listing => {
                    if crate::wire::canonical::sha256_hex(seen) == crate::wire::canonical::sha256_hex(&schema) {
                        continue;
                    }
                    tracing::warn!(
                        "the server lists the tool `{name}` twice with different input schemas; its calls are refused"
                    );
                    Listed::Twice { listing }
                }
                _ => {
                    let validator = self.compile(&schema);
                    Listed::Tool { schema: Arc::new(schema), validator, listing }
                }
            };
            self.listed.insert(name.to_owned(), entry);
        }
        if last {
            self.listed.retain(|_, l| match l {
                Listed::Tool { listing: l, .. } | Listed::Twice { listing: l } => *l == listing,
            });
            self.complete = true;
        }
    }

    /// The server said its tools changed (`notifications/tools/list_changed`).
    pub fn changed(&mut self) {
        self.complete = false;
    }

    /// Whether no listing has run to its end since the tools last changed: what toolgate
    /// knows of them may be out of date (a tool's schema may have changed), so a call waits for
    /// a fresh listing.
    pub fn stale(&self) -> bool {
        !self.complete
    }

    /// The schema of a tool as listed, if it was listed once.
    pub fn schema(&self, tool: &str) -> Option<&Value> {
        match self.listed.get(tool)? {
            Listed::Tool { schema, .. } => Some(schema),
            Listed::Twice { .. } => None,
        }
    }

    /// Judges a call's arguments against its tool's schema. The arguments are lent to the
    /// validator as a JSON value and given back as they were, without a copy (they may be
    /// large).
    pub fn check(&self, tool: &str, arguments: &mut Map<String, Value>) -> Verdict {
        match self.listed.get(tool) {
            None if self.complete => Verdict::CannotJudge(format!("the server does not list a tool named `{tool}`")),
            None => Verdict::Unlisted,
            Some(Listed::Twice { .. }) => Verdict::CannotJudge(format!(
                "the server lists the tool `{tool}` twice with different input schemas, so which one it applies cannot be known"
            )),
            Some(Listed::Tool { validator: Err(why), .. }) => {
                Verdict::CannotJudge(format!("the input schema of `{tool}` cannot be used: {why}"))
            }
            Some(Listed::Tool { schema, validator: Ok(validator), .. }) => {
                let instance = Value::Object(std::mem::take(arguments));
                let verdict = if validator.is_valid(&instance) {
                    Verdict::Conforms(schema.clone())
                } else {
                    let problems: Vec<String> = validator
                        .iter_errors(&instance)
                        .take(MAX_PROBLEMS)
                        .map(|e| {
                            let at = e.instance_path().to_string();
                            let at = if at.is_empty() { "the arguments".to_owned() } else { format!("argument {at}") };
                            format!("{at}: {}", shortened(&e.to_string()))
                        })
                        .collect();
                    Verdict::Nonconforming(problems)
                };
                if let Value::Object(map) = instance {
                    *arguments = map;
                }
                verdict
            }
        }
    }

    fn compile(&mut self, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let key = schema.to_string();
        if let Some(done) = self.compiled.get(&key) {
            return done.clone();
        }
        let compiled = compile(schema);
        if self.compiled.len() >= MAX_COMPILED {
            self.compiled.clear();
        }
        self.compiled.insert(key, compiled.clone());
        compiled
    }
}

/// Problems named in one refusal, at most.
const MAX_PROBLEMS: usize = 3;
/// Compiled schemas kept, at most.
const MAX_COMPILED: usize = 4096;

/// A validator for an input schema: the linear-time `regex` engine for patterns, and where a
/// pattern needs what only a backtracking engine offers, `fancy-regex` with a step limit. A
/// schema written for draft 4 without saying so (`"exclusiveMinimum": true`) is read as draft 4;
/// and where a `pattern` compiles in neither engine (an ECMAScript-only form), it is left out: a
/// pattern only narrows which strings conform, and never what type a value is read as, so leaving
/// it out can only let more calls conform, never widen a reading.
fn compile(schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err("it is not a JSON Schema object".into());
    }
    let build = |schema: &Value, draft4: bool| {
        let draft = if draft4 { jsonschema::Draft::Draft4 } else { jsonschema::Draft::default() };
        let detected = !draft4;
        let linear = jsonschema::options().with_pattern_options(jsonschema::PatternOptions::regex());
        let linear = if detected { linear } else { linear.with_draft(draft) };
        linear.build(schema).or_else(|_| {
            let backtracking = jsonschema::options()
                .with_pattern_options(jsonschema::PatternOptions::fancy_regex().backtrack_limit(100_000));
            let backtracking = if detected { backtracking } else { backtracking.with_draft(draft) };
            backtracking.build(schema)
        })
    };
    let first = match build(schema, false) {
        Ok(v) => return Ok(Arc::new(v)),
        Err(e) => shortened(&e.to_string()),
    };
    if let Ok(v) = build(schema, true) {
        return Ok(Arc::new(v));
    }
    let mut without = schema.clone();
    strip_patterns(&mut without);
    build(&without, false).or_else(|_| build(&without, true)).map(Arc::new).map_err(|_| first)
}

/// The schema without its `pattern` keywords, at any depth.
fn strip_patterns(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("pattern").is_some_and(Value::is_string) {
                map.shift_remove("pattern");
            }
            map.values_mut().for_each(strip_patterns);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_patterns),
        _ => {}
    }
}

/// A message cut to a length a model and a log line can take, from its middle: a validator's
/// message quotes the value first and says what the schema wants last, and the end must stay.
fn shortened(text: &str) -> String {
    const HEAD: usize = 80;
    const TAIL: usize = 120;
    let count = text.chars().count();
    if count <= HEAD + TAIL {
        return text.to_owned();
    }
    let head: String = text.chars().take(HEAD).collect();
    let tail: String = text.chars().skip(count - TAIL).collect();
    format!("{head}…{tail}")
}

/// What `[settings] arguments` makes of a decision whose call does not conform (or cannot be
/// judged): `strict` refuses it (unless a rule already denies it), `ask` raises it to ask, and no
/// earned trust or "allow for the session" may lower that. Returns why, when it changed the
/// decision.
pub fn apply(setting: Setting, verdict: &Verdict, tool: &str, decision: &mut Decision) -> Option<String> {
    if matches!(verdict, Verdict::Conforms(_)) {
        return None;
    }
    let why = refusal(tool, verdict);
    match setting {
        Setting::Strict if decision.gate != Gate::Deny => {
            decision.gate = Gate::Deny;
            decision.reason = Some(why.clone());
            Some(why)
        }
        Setting::Ask if decision.gate < Gate::Ask => {
            decision.gate = Gate::Ask;
            decision.tier = decision.tier.max(Tier::High);
            decision.reason = Some(format!("{why}; a person decides"));
            decision.always_ask = true;
            Some(why)
        }
        Setting::Strict | Setting::Ask | Setting::Off => None,
    }
}

/// What the model reads when its call is refused because its arguments do not conform.
pub fn refusal(tool: &str, verdict: &Verdict) -> String {
    match verdict {
        Verdict::Nonconforming(problems) => format!(
            "the arguments do not match the input schema of `{tool}` ({}). Send each argument with the type the \
             schema declares (a JSON boolean, number, object or array, not text that spells one) and call again",
            problems.join("; ")
        ),
        Verdict::CannotJudge(why) => format!("its arguments cannot be checked against the tool's input schema: {why}"),
        Verdict::Unlisted => format!("the server has not listed the tool `{tool}`"),
        Verdict::Conforms(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn tools() -> Tools {
        let mut t = Tools::default();
        t.learn(
            &[json!({"name": "delete_tree", "inputSchema": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "options": {"$ref": "#/$defs/Options"}},
                "required": ["path"],
                "additionalProperties": false,
                "$defs": {"Options": {"type": "object", "properties": {"recursive": {"type": "boolean"}}}}
            }})],
            true,
            true,
        );
        t
    }

    #[test]
    fn conforming_arguments_pass_and_others_name_the_argument_and_the_type() {
        let t = tools();
        assert!(matches!(
            t.check("delete_tree", &mut args(json!({"path": "/x", "options": {"recursive": true}}))),
            Verdict::Conforms(_)
        ));
        let Verdict::Nonconforming(problems) =
            t.check("delete_tree", &mut args(json!({"path": "/x", "options": {"recursive": "true"}})))
        else {
            panic!()
        };
        assert!(
            problems[0].starts_with("argument /options/recursive: \"true\" is not of type \"boolean\""),
            "{problems:?}"
        );
        let Verdict::Nonconforming(problems) =
            t.check("delete_tree", &mut args(json!({"path": "/x", "options": "{\"recursive\": true}"})))
        else {
            panic!()
        };
        assert!(problems[0].starts_with("argument /options:"), "{problems:?}");
        assert!(matches!(
            t.check("delete_tree", &mut args(json!({"path": "/x", "force": true}))),
            Verdict::Nonconforming(_)
        ));
        // However long the value, what the schema wants is still said.
        let long = format!("{{\"recursive\": true, \"size\": 1{}}}", "0".repeat(400));
        let Verdict::Nonconforming(problems) =
            t.check("delete_tree", &mut args(json!({"path": "/x", "options": long})))
        else {
            panic!()
        };
        assert!(problems[0].ends_with("is not of type \"object\"") && problems[0].len() < 300, "{problems:?}");
    }

    #[test]
    fn what_the_schema_cannot_decide_fails_closed() {
        let mut t = Tools::default();
        assert_eq!(t.check("anything", &mut Map::new()), Verdict::Unlisted);
        t.learn(
            &[
                json!({"name": "pay", "inputSchema": {"type": "object", "properties": {"amount": {"type": "integer"}}}}),
                json!({"name": "pay", "inputSchema": {"type": "object"}}),
                json!({"name": "remote", "inputSchema": {"$ref": "https://example.com/schema.json"}}),
                json!({"name": "same", "inputSchema": {"type": "object"}}),
                json!({"name": "same", "inputSchema": {"type": "object"}}),
            ],
            true,
            true,
        );
        assert!(matches!(t.check("pay", &mut Map::new()), Verdict::CannotJudge(w) if w.contains("twice")));
        assert!(matches!(t.check("remote", &mut Map::new()), Verdict::CannotJudge(_)));
        assert!(matches!(t.check("never", &mut Map::new()), Verdict::CannotJudge(w) if w.contains("does not list")));
        assert!(
            matches!(t.check("same", &mut Map::new()), Verdict::Conforms(_)),
            "the same definition twice is one tool"
        );
        // After the server says its tools changed, an unknown tool means: list again.
        t.changed();
        assert_eq!(t.check("never", &mut Map::new()), Verdict::Unlisted);
    }

    #[test]
    fn schemas_validators_disagree_on_are_still_judged() {
        let mut t = Tools::default();
        t.learn(
            &[
                json!({"name": "old", "inputSchema": {"type": "object", "properties": {"n": {"type": "number", "minimum": 0, "exclusiveMinimum": true}}}}),
                json!({"name": "ecma", "inputSchema": {"type": "object", "properties": {"s": {"type": "string", "pattern": "^[^]*$"}}}}),
            ],
            true,
            true,
        );
        // Draft 4 without saying so, and a pattern only ECMAScript compiles: judged, not refused.
        assert!(matches!(t.check("old", &mut args(json!({"n": 1}))), Verdict::Conforms(_)));
        assert!(matches!(t.check("old", &mut args(json!({"n": "1"}))), Verdict::Nonconforming(_)));
        assert!(matches!(t.check("ecma", &mut args(json!({"s": "x"}))), Verdict::Conforms(_)));
        assert!(matches!(t.check("ecma", &mut args(json!({"s": 5}))), Verdict::Nonconforming(_)));
    }

    #[test]
    fn a_listing_in_pages_is_complete_at_its_last_page_and_drops_tools_no_longer_listed() {
        let mut t = Tools::default();
        let tool = |name: &str| json!({"name": name, "inputSchema": {"type": "object"}});
        t.learn(&[tool("a")], true, false);
        assert_eq!(t.check("b", &mut Map::new()), Verdict::Unlisted);
        t.learn(&[tool("b")], false, true);
        assert!(matches!(t.check("b", &mut Map::new()), Verdict::Conforms(_)));
        t.learn(&[tool("b")], true, true);
        assert!(matches!(t.check("a", &mut Map::new()), Verdict::CannotJudge(_)), "a is gone");
    }
}
