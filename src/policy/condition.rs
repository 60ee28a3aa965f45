//! Argument conditions: tests on one value of a call's arguments, addressed by JSON pointer.
//!
//! Values are tested after JSON decoding, so `"\u002fetc"` is `/etc`. Path globs see a path with
//! `\` read as `/` and `.` / `..` segments resolved lexically, on every platform, so that
//! `/project/../etc/passwd` is judged as `/etc/passwd`. Every negated test is exactly the
//! negation of its positive test, so a value of an unexpected type never slips past both.

use std::fmt;

use globset::GlobBuilder;
use regex_automata::meta;
use serde::Serialize;
use serde_json::{Map, Value};

/// All tests on one argument; every test must hold.
#[derive(Debug, Clone)]
pub struct Condition {
    /// The pointer as written, e.g. `/path` or `/options/recursive`.
    pub pointer: String,
    tokens: Vec<String>,
    pub tests: Vec<Test>,
}

/// One test on a value.
#[derive(Debug, Clone)]
pub enum Test {
    Regex { regex: Matcher, negate: bool },
    Glob { glob: Matcher, negate: bool },
    Equals(Value),
    OneOf(Vec<Value>),
    Compare { op: CompareOp, bound: f64 },
    Exists(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// A test that did not hold, for `explain`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Miss {
    pub pointer: String,
    /// The test as written, e.g. `glob "/home/**"`.
    pub test: String,
    /// The value found, or `None` when the pointer named nothing.
    pub actual: Option<Value>,
}

impl Condition {
    /// Compiles a condition; `pointer` must be a JSON pointer (`""` or starting with `/`).
    pub fn new(pointer: &str, tests: Vec<Test>) -> Result<Self, String> {
        let tokens = parse_pointer(pointer)?;
        if tests.is_empty() {
            return Err(format!(
                "the condition on {pointer:?} has no test (regex, glob, equals, one_of, lt, exists, ...)"
            ));
        }
        Ok(Condition { pointer: pointer.to_owned(), tokens, tests })
    }

    /// The value the pointer names in the arguments.
    pub fn resolve<'a>(&self, arguments: &'a Map<String, Value>) -> Option<&'a Value> {
        let mut tokens = self.tokens.iter();
        let Some(first) = tokens.next() else {
            return None; // "" names the whole arguments object, which is not a `Value` here.
        };
        let mut value = arguments.get(first.as_str())?;
        for token in tokens {
            value = match value {
                Value::Object(map) => map.get(token.as_str())?,
                Value::Array(items) => items.get(array_index(token)?)?,
                _ => return None,
            };
        }
        Some(value)
    }

    /// Whether every test holds for these arguments.
    pub fn holds(&self, arguments: &Map<String, Value>) -> bool {
        let value = self.resolve(arguments);
        self.tests.iter().all(|t| t.holds(value))
    }

    /// The first test that does not hold, if any.
    pub fn miss(&self, arguments: &Map<String, Value>) -> Option<Miss> {
        let value = self.resolve(arguments);
        self.tests.iter().find(|t| !t.holds(value)).map(|t| Miss {
            pointer: self.pointer.clone(),
            test: t.to_string(),
            actual: value.cloned(),
        })
    }

    /// Whether any test reads the value (and so a missing argument fails it).
    pub fn needs_value(&self) -> bool {
        self.tests.iter().any(|t| !matches!(t, Test::Exists(false)))
    }
}

impl Test {
    /// Whether the test holds for a value (`None`: the pointer named nothing).
    ///
    /// A missing value fails every test but `exists = false`, negated ones included: a rule
    /// about an argument does not match a call that lacks it.
    pub fn holds(&self, value: Option<&Value>) -> bool {
        let Some(value) = value else {
            return matches!(self, Test::Exists(false));
        };
        match self {
            Test::Exists(expected) => *expected,
            Test::Regex { regex, negate } => all_texts(value, |s| regex.is_match(s)) != *negate,
            Test::Glob { glob, negate } => all_texts(value, |s| glob.is_match(&normalize_path(s))) != *negate,
            Test::Equals(expected) => same(value, expected),
            Test::OneOf(choices) => choices.iter().any(|c| same(value, c)),
            Test::Compare { op, bound } => number(value).is_some_and(|n| match op {
                CompareOp::Lt => n < *bound,
                CompareOp::Le => n <= *bound,
                CompareOp::Gt => n > *bound,
                CompareOp::Ge => n >= *bound,
            }),
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |negate: &bool| if *negate { "not_" } else { "" };
        match self {
            Test::Regex { regex, negate } => write!(f, "{}regex {:?}", not(negate), regex.source),
            Test::Glob { glob, negate } => write!(f, "{}glob {:?}", not(negate), glob.source),
            Test::Equals(v) => write!(f, "equals {v}"),
            Test::OneOf(vs) => write!(f, "one_of {}", Value::Array(vs.clone())),
            Test::Compare { op, bound } => {
                let op = match op {
                    CompareOp::Lt => "lt",
                    CompareOp::Le => "le",
                    CompareOp::Gt => "gt",
                    CompareOp::Ge => "ge",
                };
                write!(f, "{op} {bound}")
            }
            Test::Exists(e) => write!(f, "exists {e}"),
        }
    }
}

/// A compiled regex or path glob.
///
/// Built on the meta regex engine limited to the PikeVM: arguments are short, so matching speed
/// barely differs, while compiling is about fifteen times faster, which keeps a policy of a
/// thousand rules loading in milliseconds. Every pattern is still compiled (and so checked)
/// when the policy loads.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub source: String,
    re: meta::Regex,
}

impl Matcher {
    /// A regex in the syntax of the `regex` crate, unanchored.
    pub fn regex(pattern: &str) -> Result<Self, String> {
        let re = build(pattern, true)?;
        Ok(Matcher { source: pattern.to_owned(), re })
    }

    /// A path glob: `*` stays within one path segment, `**` crosses segments, `\\` escapes.
    pub fn path_glob(pattern: &str) -> Result<Self, String> {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| e.kind().to_string())?;
        // globset writes a bytes-mode regex; paths are matched as bytes.
        let re = build(glob.regex(), false)?;
        Ok(Matcher { source: pattern.to_owned(), re })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.re.is_match(text.as_bytes())
    }
}

fn build(pattern: &str, utf8: bool) -> Result<meta::Regex, String> {
    let config = meta::Config::new()
        .hybrid(false)
        .dfa(false)
        .onepass(false)
        .backtrack(false)
        .utf8_empty(utf8)
        // Only `is_match` is asked: no capture groups to track, and no prefilter to build
        // (arguments are short; building one costs more at load than it saves per call).
        .which_captures(regex_automata::nfa::thompson::WhichCaptures::None)
        .auto_prefilter(false);
    meta::Builder::new()
        .configure(config)
        .syntax(regex_automata::util::syntax::Config::new().utf8(utf8))
        .build(pattern)
        .map_err(|e| e.syntax_error().map_or_else(|| e.to_string(), ToString::to_string))
}

/// The texts a pattern test sees: a string itself; a number or boolean as its JSON text; an
/// array when every element passes (and it is not empty). Anything else never passes.
fn all_texts(value: &Value, test: impl Fn(&str) -> bool + Copy) -> bool {
    match value {
        Value::String(s) => test(s),
        Value::Number(n) => test(&n.to_string()),
        Value::Bool(b) => test(if *b { "true" } else { "false" }),
        Value::Array(items) => !items.is_empty() && items.iter().all(|v| !v.is_array() && all_texts(v, test)),
        Value::Null | Value::Object(_) => false,
    }
}

/// Equality after decoding; numbers compare by value, so `1` equals `1.0`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// A number, or a string holding one (servers often accept `"5000"` for 5000).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| !n.is_nan()),
        _ => None,
    }
}

/// Reads `\` as `/`, collapses repeated separators and resolves `.` and `..` lexically.
/// A `..` above the root of an absolute path stays at the root; above a relative path it is kept.
pub fn normalize_path(path: &str) -> String {
    let path = path.replace('\\', "/");
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Err("the pointer \"\" names the whole arguments object; name one argument, like \"/path\"".into());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("{pointer:?} is not a JSON pointer: it must start with \"/\", like \"/{pointer}\""))?;
    rest.split('/')
        .map(|t| {
            if t.replace("~0", "").replace("~1", "").contains('~') {
                return Err(format!("{pointer:?}: `~` must be written `~0` (and `/` inside a key `~1`)"));
            }
            Ok(t.replace("~1", "/").replace("~0", "~"))
        })
        .collect()
}

fn array_index(token: &str) -> Option<usize> {
    if token.len() > 1 && token.starts_with('0') {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn glob(p: &str, negate: bool) -> Test {
        Test::Glob { glob: Matcher::path_glob(p).unwrap(), negate }
    }

    #[test]
    fn paths_are_normalized_before_globbing() {
        assert_eq!(normalize_path("/home/me/project/../../../etc/passwd"), "/etc/passwd");
        assert_eq!(normalize_path("/home//me/./x"), "/home/me/x");
        assert_eq!(normalize_path("C:\\Users\\me\\..\\x"), "C:/Users/x");
        assert_eq!(normalize_path("../x"), "../x");
        assert_eq!(normalize_path("a/../.."), "..");
        let inside = glob("/home/me/project/**", false);
        assert!(inside.holds(Some(&json!("/home/me/project/src/main.rs"))));
        assert!(!inside.holds(Some(&json!("/home/me/project/../secrets"))));
        assert!(!inside.holds(Some(&json!("/home/me/project2/x"))));
    }

    #[test]
    fn star_stays_in_one_segment_and_double_star_crosses() {
        let one = glob("/tmp/*.txt", false);
        assert!(one.holds(Some(&json!("/tmp/a.txt"))));
        assert!(!one.holds(Some(&json!("/tmp/sub/a.txt"))));
        assert!(glob("/tmp/**/*.txt", false).holds(Some(&json!("/tmp/sub/a.txt"))));
    }

    #[test]
    fn negated_tests_are_exact_negations_for_present_values() {
        for value in [json!("/etc/x"), json!(["/tmp/a", "/etc/x"]), json!(5), json!({"p": 1}), json!(null), json!([])] {
            let pos = glob("/tmp/**", false).holds(Some(&value));
            let neg = glob("/tmp/**", true).holds(Some(&value));
            assert_ne!(pos, neg, "{value}");
        }
    }

    #[test]
    fn arrays_pass_a_pattern_only_when_every_element_does() {
        let under_tmp = glob("/tmp/**", false);
        assert!(under_tmp.holds(Some(&json!(["/tmp/a", "/tmp/b"]))));
        assert!(!under_tmp.holds(Some(&json!(["/tmp/a", "/etc/passwd"]))));
        assert!(glob("/tmp/**", true).holds(Some(&json!(["/tmp/a", "/etc/passwd"]))));
    }

    #[test]
    fn missing_argument_fails_every_test_but_exists_false() {
        let c = Condition::new("/to", vec![Test::Regex { regex: Matcher::regex("x").unwrap(), negate: true }]).unwrap();
        assert!(!c.holds(&args(json!({}))));
        let absent = Condition::new("/to", vec![Test::Exists(false)]).unwrap();
        assert!(absent.holds(&args(json!({}))));
        assert!(!absent.holds(&args(json!({"to": null}))));
    }

    #[test]
    fn pointers_reach_into_objects_and_arrays_with_escapes() {
        let c = Condition::new("/a~1b/list/1/x~0y", vec![Test::Equals(json!(true))]).unwrap();
        assert!(c.holds(&args(json!({"a/b": {"list": [{}, {"x~y": true}]}}))));
        assert!(Condition::new("path", vec![Test::Exists(true)]).is_err());
        assert!(Condition::new("/a~2", vec![Test::Exists(true)]).is_err());
    }

    #[test]
    fn numbers_compare_by_value_including_numeric_strings() {
        let gt = Test::Compare { op: CompareOp::Gt, bound: 1000.0 };
        assert!(gt.holds(Some(&json!(1200))));
        assert!(gt.holds(Some(&json!("5000"))));
        assert!(gt.holds(Some(&json!("5e3"))));
        assert!(!gt.holds(Some(&json!("lots"))));
        assert!(Test::Equals(json!(1)).holds(Some(&json!(1.0))));
        assert!(Test::OneOf(vec![json!("a"), json!(2)]).holds(Some(&json!(2.0))));
    }

    #[test]
    fn miss_names_the_failing_test_and_the_value() {
        let c = Condition::new("/path", vec![glob("/home/**", false)]).unwrap();
        assert_eq!(
            c.miss(&args(json!({"path": "/etc/x"}))),
            Some(Miss { pointer: "/path".into(), test: "glob \"/home/**\"".into(), actual: Some(json!("/etc/x")) })
        );
    }
}
