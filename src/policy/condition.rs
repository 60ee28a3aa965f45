//! Argument conditions: tests on one value of a call's arguments, addressed by JSON pointer, and
//! judged under every reading a server may take of that value (`reading/`).
//!
//! A condition is judged twice over: whether it holds under ANY reading (what a restricting rule
//! needs to match) and whether it holds under EVERY reading (what a rule that lowers the gate
//! needs to apply). Every negated test is exactly the negation of its positive test on each
//! reading, so a value of an unexpected type never slips past both.

use std::cmp::Ordering;
use std::fmt;

use globset::GlobBuilder;
use regex_automata::meta;
use serde::Serialize;
use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;

use super::reading::{self, Context, Number, Reading, Seen};

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
    Glob { glob: PathGlob, negate: bool },
    Equals(Value),
    OneOf(Vec<Value>),
    Compare { op: CompareOp, bound: Number },
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

/// A test's outcome on a call, for `explain`: the value it was judged on and, where it held, the
/// reading it held under.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Miss {
    pub pointer: String,
    /// The test as written, e.g. `glob "/home/**"`.
    pub test: String,
    /// The value found, or `None` when the pointer named nothing.
    pub actual: Option<Value>,
    /// The reading the test held under, when it held and that reading is not the value as sent:
    /// "the number 5000, read from the string \"5_000\" by Python's int()/Decimal(), pydantic".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reading: Option<String>,
}

/// How a condition (or a rule) fares under the readings of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Judged {
    /// It holds under some reading: enough for a rule that restricts.
    pub any: bool,
    /// It holds under every reading: needed for a rule that lowers the gate.
    pub all: bool,
}

impl Judged {
    pub const ALWAYS: Judged = Judged { any: true, all: true };
    pub const NEVER: Judged = Judged { any: false, all: false };

    pub fn and(self, other: Judged) -> Judged {
        Judged { any: self.any && other.any, all: self.all && other.all }
    }
}

/// Which of the two questions a test on one reading answers (they differ only for a glob that
/// ends in `/**`, which may or may not take in the folder itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Any,
    All,
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

    /// The value the pointer names in the arguments as sent.
    pub fn resolve<'a>(&self, arguments: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.tokens.split_first()?;
        let mut value = arguments.get(first.as_str())?;
        for token in rest {
            value = match value {
                Value::Object(map) => map.get(token.as_str())?,
                Value::Array(items) => items.get(array_index(token)?)?,
                _ => return None,
            };
        }
        Some(value)
    }

    /// How the condition fares under every reading of these arguments.
    pub fn judge(&self, arguments: &Map<String, Value>, cx: &Context<'_>) -> Judged {
        let found = reading::resolve(arguments, &self.tokens, cx);
        self.tests.iter().fold(Judged::ALWAYS, |j, t| j.and(t.judge(&found, cx).0))
    }

    /// Each test with the value it saw and, where it held, the reading it held under; `None`
    /// when every test held (for `explain`'s near misses: the first test that never held).
    pub fn report(&self, arguments: &Map<String, Value>, cx: &Context<'_>) -> Vec<(Miss, Judged)> {
        let found = reading::resolve(arguments, &self.tokens, cx);
        let actual = self.resolve(arguments).cloned();
        self.tests
            .iter()
            .map(|t| {
                let (judged, witness) = t.judge(&found, cx);
                let reading = witness.filter(|r| !plain(r)).map(|r| r.describe());
                (Miss { pointer: self.pointer.clone(), test: t.to_string(), actual: actual.clone(), reading }, judged)
            })
            .collect()
    }

    /// The first test that holds under no reading, if any.
    pub fn miss(&self, arguments: &Map<String, Value>, cx: &Context<'_>) -> Option<Miss> {
        self.report(arguments, cx).into_iter().find(|(_, j)| !j.any).map(|(m, _)| m)
    }

    /// Whether any test reads the value (and so a missing argument fails it).
    pub fn needs_value(&self) -> bool {
        self.tests.iter().any(|t| !matches!(t, Test::Exists(false)))
    }
}

/// A reading not worth naming: the value itself, as sent and as shown.
fn plain(r: &Reading<'_>) -> bool {
    matches!(r.how, reading::How::AsSent)
        && r.decoded.is_none()
        && match (&r.seen, r.from.as_deref()) {
            (Seen::Path(p), _) => p.steps.is_empty(),
            // A number written with more digits than the value shown (a double) holds.
            (Seen::Number(n), Some(Value::Number(shown))) => {
                shown.as_f64().is_some_and(|f| Number::from_f64(f).same(n)) || shown.is_i64() || shown.is_u64()
            }
            _ => true,
        }
}

impl Test {
    /// How the test fares under every reading of the found values, and the first reading it
    /// held under.
    fn judge<'v>(&self, found: &'v [reading::Found<'v>], cx: &Context<'_>) -> (Judged, Option<Reading<'v>>) {
        let readings = match self {
            Test::Regex { .. } => reading::texts(found),
            Test::Glob { .. } => reading::paths(found, cx.place),
            Test::Compare { .. } => reading::numbers(found),
            Test::Equals(v) => reading::values(found, &[v]),
            Test::OneOf(vs) => reading::values(found, &vs.iter().collect::<Vec<_>>()),
            Test::Exists(_) => found
                .iter()
                .map(|f| Reading {
                    seen: match (&f.value, f.is_unreadable()) {
                        (_, true) => Seen::Unreadable,
                        (Some(v), false) => Seen::Json(v.clone()),
                        (None, false) => Seen::Missing,
                    },
                    how: reading::How::AsSent,
                    from: None,
                    decoded: f.decoded.clone(),
                })
                .collect(),
        };
        let mut witness = None;
        let mut all = !readings.is_empty();
        for r in &readings {
            let (any_holds, all_holds) = match &r.seen {
                // What toolgate cannot read counts against the call both ways.
                Seen::Unreadable => (true, false),
                seen => (self.holds(seen, Mode::Any), self.holds(seen, Mode::All)),
            };
            if any_holds && witness.is_none() {
                witness = Some(r.clone());
            }
            all &= all_holds;
        }
        (Judged { any: witness.is_some(), all }, witness)
    }

    /// Whether the test holds on one reading.
    ///
    /// A missing value fails every test but `exists = false`, negated ones included: a rule
    /// about an argument does not match a call that lacks it.
    fn holds(&self, seen: &Seen<'_>, mode: Mode) -> bool {
        if let Seen::Missing = seen {
            return matches!(self, Test::Exists(false));
        }
        match self {
            Test::Exists(expected) => *expected,
            Test::Regex { regex, negate } => match seen {
                Seen::Text(t) => regex.is_match(t) != *negate,
                _ => *negate,
            },
            Test::Glob { glob, negate } => match seen {
                Seen::Path(p) => {
                    // `dir/**` may or may not take in `dir` itself: a restricting test counts it,
                    // a test that must hold under every reading does not.
                    let strict = glob.glob.is_match(&p.path);
                    let wide = strict || glob.itself.as_ref().is_some_and(|m| m.is_match(&p.path));
                    match (mode, *negate) {
                        (Mode::Any, false) => wide,
                        (Mode::All, false) => strict,
                        (Mode::Any, true) => !strict,
                        (Mode::All, true) => !wide,
                    }
                }
                _ => *negate,
            },
            Test::Equals(expected) => equal(seen, expected),
            Test::OneOf(choices) => choices.iter().any(|c| equal(seen, c)),
            Test::Compare { op, bound } => match seen {
                Seen::Number(n) => match n.compare(bound) {
                    None => false,
                    Some(o) => match op {
                        CompareOp::Lt => o == Ordering::Less,
                        CompareOp::Le => o != Ordering::Greater,
                        CompareOp::Gt => o == Ordering::Greater,
                        CompareOp::Ge => o != Ordering::Less,
                    },
                },
                _ => false,
            },
        }
    }
}

/// Whether a reading is the expected value: JSON values equal (numbers exactly), or a number
/// read from the value equal to an expected number.
fn equal(seen: &Seen<'_>, expected: &Value) -> bool {
    match seen {
        Seen::Json(v) => reading::json_equal(v, expected),
        Seen::Number(n) => reading::number_of(expected).is_some_and(|e| n.same(&e)),
        _ => false,
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |negate: &bool| if *negate { "not_" } else { "" };
        match self {
            Test::Regex { regex, negate } => write!(f, "{}regex {:?}", not(negate), regex.source),
            Test::Glob { glob, negate } => write!(f, "{}glob {:?}", not(negate), glob.glob.source),
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

/// A path glob, and for one that ends in `/**` the folder itself.
#[derive(Debug, Clone)]
pub struct PathGlob {
    pub glob: Matcher,
    pub itself: Option<Matcher>,
}

impl PathGlob {
    /// `*` stays within one path segment (and takes any other character, a newline too), `**`
    /// crosses segments, `\\` escapes.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let glob = Matcher::path_glob(pattern)?;
        let itself = match pattern.strip_suffix("/**") {
            Some(folder) if !folder.is_empty() && !folder.ends_with('\\') => Some(Matcher::path_glob(folder)?),
            _ => None,
        };
        Ok(PathGlob { glob, itself })
    }
}

impl Matcher {
    /// A regex in the syntax of the `regex` crate, unanchored.
    pub fn regex(pattern: &str) -> Result<Self, String> {
        let re = build(pattern, true)?;
        Ok(Matcher { source: pattern.to_owned(), re })
    }

    /// A path glob: `*` stays within one path segment, `**` crosses segments, `\\` escapes.
    /// Any character but `/` is matched by `*`, `?` and `**`, a newline included: a file name may
    /// hold one. A pattern with non-ASCII text also matches in its NFC and NFD forms, so that how
    /// the policy's editor stored `é` does not matter.
    pub fn path_glob(pattern: &str) -> Result<Self, String> {
        let mut forms = vec![pattern.to_owned()];
        if !pattern.is_ascii() {
            for form in [pattern.nfc().collect::<String>(), pattern.nfd().collect()] {
                if !forms.contains(&form) {
                    forms.push(form);
                }
            }
        }
        let mut regexes = Vec::new();
        for form in &forms {
            let glob = GlobBuilder::new(form)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| e.kind().to_string())?;
            // globset writes a bytes-mode regex; paths are matched as bytes. `(?s)` lets its `.`
            // (from `**`) take a newline, as its `[^/]` (from `*`) already does.
            regexes.push(format!("(?s:{})", glob.regex()));
        }
        let re = build(&regexes.join("|"), false)?;
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
    use crate::policy::reading::number::decimal_literal;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn glob(p: &str, negate: bool) -> Test {
        Test::Glob { glob: PathGlob::new(p).unwrap(), negate }
    }

    fn judge(test: Test, value: Value) -> Judged {
        Condition::new("/v", vec![test]).unwrap().judge(&args(json!({ "v": value })), &Context::lexical())
    }

    fn cmp(op: CompareOp, bound: &str) -> Test {
        Test::Compare { op, bound: decimal_literal(bound).unwrap() }
    }

    #[test]
    fn paths_are_judged_as_posix_paths_and_with_backslashes_as_separators() {
        let inside = glob("/srv/PROT/**", false);
        assert_eq!(judge(inside.clone(), json!("/srv/PROT/src/main.rs")), Judged::ALWAYS);
        assert_eq!(judge(inside.clone(), json!("/srv/PROT/../secrets")), Judged::NEVER);
        assert_eq!(judge(inside.clone(), json!("/srv/PROT2/x")), Judged::NEVER);
        // On Linux this is a file named `x\..\..\elsewhere.sh` inside PROT; a Windows-minded
        // server reads it outside. Inside under one reading: a restricting rule matches.
        assert_eq!(judge(inside.clone(), json!("/srv/PROT/x\\..\\..\\elsewhere.sh")), Judged { any: true, all: false });
        // A newline is part of a file name.
        assert_eq!(judge(inside.clone(), json!("/srv/PROT/x\n")), Judged::ALWAYS);
        // The folder itself is inside for a restricting rule only.
        assert_eq!(judge(inside, json!("/srv/PROT")), Judged { any: true, all: false });
        // A pattern in NFD (or out of canonical order) matches names in NFC, and back.
        let cafe = glob("/srv/Cafe\u{301}/**", false);
        assert_eq!(judge(cafe, json!("/srv/Caf\u{e9}/x")), Judged::ALWAYS);
    }

    #[test]
    fn star_stays_in_one_segment_and_double_star_crosses() {
        assert_eq!(judge(glob("/tmp/*.txt", false), json!("/tmp/a.txt")), Judged::ALWAYS);
        assert_eq!(judge(glob("/tmp/*.txt", false), json!("/tmp/sub/a.txt")), Judged::NEVER);
        assert_eq!(judge(glob("/tmp/**/*.txt", false), json!("/tmp/sub/a.txt")), Judged::ALWAYS);
    }

    #[test]
    fn negated_tests_are_exact_negations_on_each_reading() {
        for value in [json!("/etc/x"), json!(["/tmp/a", "/etc/x"]), json!(5), json!({"p": 1}), json!(null), json!([])] {
            let pos = judge(glob("/tmp/**", false), value.clone());
            let neg = judge(glob("/tmp/**", true), value.clone());
            // Under one reading exactly one holds: a value can never escape both.
            assert!(pos.any || neg.any, "{value}");
            assert!(!(pos.all && neg.all), "{value}");
        }
    }

    #[test]
    fn arrays_pass_a_pattern_for_any_element_or_for_all_of_them() {
        let under_tmp = glob("/tmp/**", false);
        assert_eq!(judge(under_tmp.clone(), json!(["/tmp/a", "/tmp/b"])), Judged::ALWAYS);
        assert_eq!(judge(under_tmp.clone(), json!(["/tmp/a", "/etc/passwd"])), Judged { any: true, all: false });
        assert_eq!(judge(under_tmp, json!([])), Judged::NEVER);
        assert_eq!(judge(glob("/tmp/**", true), json!(["/tmp/a", "/etc/passwd"])), Judged { any: true, all: false });
    }

    #[test]
    fn arrays_are_read_through_nested_elements_joined_as_a_command_line_and_compared_element_by_element() {
        let rm = Test::Regex { regex: Matcher::regex(r"\brm\s+-(rf|fr)\b").unwrap(), negate: false };
        assert!(judge(rm, json!(["rm", "-rf", "/"])).any, "an argument vector a server runs");
        assert!(judge(glob("/etc/**", false), json!([["/etc/passwd"]])).any, "nested arrays");
        assert_eq!(judge(cmp(CompareOp::Gt, "1000"), json!([1, 5000])), Judged { any: true, all: false });
        assert_eq!(judge(cmp(CompareOp::Lt, "1000"), json!([1, 5])), Judged::ALWAYS);
    }

    #[test]
    fn what_would_make_a_decision_slow_is_unreadable_and_restricting_tests_hold_for_it() {
        let padded = format!("/srv/ok/{}x", "./".repeat(10_000));
        assert_eq!(judge(glob("/srv/PROT/**", false), json!(padded)), Judged { any: true, all: false });
        let many: Vec<String> = (0..5000).map(|i| format!("/srv/ok/{i}")).collect();
        assert_eq!(judge(glob("/srv/PROT/**", false), json!(many)), Judged { any: true, all: false });
        let start = std::time::Instant::now();
        let deep = format!("/{}", "a/".repeat(7000));
        let _ = judge(glob("/srv/PROT/**", false), json!([deep.clone(), deep]));
        // Not a timing assertion: a hang guard for a walk that once took minutes.
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn whitespace_a_validator_strips_is_read_stripped() {
        assert_eq!(judge(glob("/srv/PROT/**", false), json!(" /srv/PROT/x\t")), Judged { any: true, all: false });
        let secret = Test::Regex { regex: Matcher::regex("^/etc/").unwrap(), negate: false };
        assert!(judge(secret, json!("  /etc/passwd")).any);
    }

    #[test]
    fn missing_argument_fails_every_test_but_exists_false() {
        let c = Condition::new("/to", vec![Test::Regex { regex: Matcher::regex("x").unwrap(), negate: true }]).unwrap();
        assert_eq!(c.judge(&args(json!({})), &Context::lexical()), Judged::NEVER);
        let absent = Condition::new("/to", vec![Test::Exists(false)]).unwrap();
        assert_eq!(absent.judge(&args(json!({})), &Context::lexical()), Judged::ALWAYS);
        assert_eq!(absent.judge(&args(json!({"to": null})), &Context::lexical()), Judged::NEVER);
        // Present only inside JSON text: present under one reading, absent under the other.
        let deep = Condition::new("/o/x", vec![Test::Exists(true)]).unwrap();
        assert_eq!(
            deep.judge(&args(json!({"o": "{\"x\": 1}"})), &Context::lexical()),
            Judged { any: true, all: false }
        );
    }

    #[test]
    fn pointers_reach_into_objects_arrays_and_json_text() {
        let c = Condition::new("/a~1b/list/1/x~0y", vec![Test::Equals(json!(true))]).unwrap();
        assert!(c.judge(&args(json!({"a/b": {"list": [{}, {"x~y": true}]}})), &Context::lexical()).all);
        assert!(Condition::new("path", vec![Test::Exists(true)]).is_err());
        assert!(Condition::new("/a~2", vec![Test::Exists(true)]).is_err());
        let recursive = Condition::new("/options/recursive", vec![Test::Equals(json!(true))]).unwrap();
        let sent_as_text = args(json!({"options": "{\"recursive\": true}"}));
        assert!(recursive.judge(&sent_as_text, &Context::lexical()).any);
    }

    #[test]
    fn booleans_are_read_as_pydantic_and_javascript_read_them() {
        for value in [json!("true"), json!(1), json!("yes"), json!("on"), json!(1.0), json!("False ")] {
            assert!(judge(Test::Equals(json!(true)), value.clone()).any, "{value}");
        }
        assert_eq!(judge(Test::Equals(json!(true)), json!(true)), Judged::ALWAYS);
        // Declared a boolean and sent one: nothing else is read into it.
        let schema = json!({"type": "object", "properties": {"v": {"type": "integer"}}});
        let cx = Context { schema: Some(&schema), ..Context::lexical() };
        let c = Condition::new("/v", vec![Test::Equals(json!(true))]).unwrap();
        assert_eq!(c.judge(&args(json!({"v": 1})), &cx), Judged::NEVER, "an integer 1 declared an integer is 1");
    }

    #[test]
    fn numbers_compare_exactly_in_every_lax_form() {
        let gt = cmp(CompareOp::Gt, "1000");
        for value in [
            json!(1200),
            json!("5000"),
            json!("5e3"),
            json!("5_000"),
            json!(" +5000 "),
            json!("5000.0"),
            json!("٥٠٠٠"),
            json!("0x1388"),
            json!("5000 EUR"),
            json!([5000]),
            json!("1000.00000000000000001"),
        ] {
            assert!(judge(gt.clone(), value.clone()).any, "{value}");
        }
        assert_eq!(judge(gt.clone(), json!("lots")), Judged::NEVER);
        assert_eq!(judge(gt, json!(true)), Judged::NEVER);
        let big = cmp(CompareOp::Gt, "9007199254740992");
        // Exactly, it is greater; JavaScript reads it as the double 9007199254740992.
        assert_eq!(judge(big, json!(9007199254740993u64)), Judged { any: true, all: false });
        assert!(judge(cmp(CompareOp::Ge, "1"), json!(true)).any, "pydantic's int reads true as 1");
        assert!(judge(Test::Equals(json!(1)), json!(1.0)).all);
        assert!(judge(Test::OneOf(vec![json!(3), json!(2)]), json!(2.0)).all);
        // A server that reads 2.0 as the string "2" does not hold it one of "a" and 2.
        assert_eq!(judge(Test::OneOf(vec![json!("a"), json!(2)]), json!(2.0)), Judged { any: true, all: false });
        assert!(judge(Test::Equals(json!(5000)), json!("5_000")).any);
        // Under every reading only when every family agrees.
        assert_eq!(judge(cmp(CompareOp::Lt, "100"), json!("50")), Judged::ALWAYS);
        assert_eq!(
            judge(cmp(CompareOp::Lt, "100"), json!("5e3")),
            Judged { any: true, all: false },
            "parseInt reads 5"
        );
    }

    #[test]
    fn report_names_the_failing_test_and_the_reading_that_held() {
        let c = Condition::new("/path", vec![glob("/home/**", false)]).unwrap();
        assert_eq!(
            c.miss(&args(json!({"path": "/etc/x"})), &Context::lexical()),
            Some(Miss {
                pointer: "/path".into(),
                test: "glob \"/home/**\"".into(),
                actual: Some(json!("/etc/x")),
                reading: None
            })
        );
        let c = Condition::new("/amount", vec![cmp(CompareOp::Gt, "1000")]).unwrap();
        let (report, judged) = c.report(&args(json!({"amount": "5_000"})), &Context::lexical()).remove(0);
        assert!(judged.any);
        let reading = report.reading.unwrap();
        assert!(reading.starts_with("the number 5000, read from the string \"5_000\" by Python"), "{reading}");
    }
}
