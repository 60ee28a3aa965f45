//! Differential test of readings: generated values in many forms (coercible scalars, numbers in
//! every lax spelling, JSON text, paths with `.`, `..`, `\`, `~`, newlines, symlinks and Unicode)
//! are read by the real pydantic, through the pinned Python SDK's own argument handling
//! (`tests/python/pydantic_reader.py`), and judged by toolgate. Python evaluates each condition
//! on its own reading (exactly: `Decimal`, `os.path.realpath`). The properties:
//!
//! - whenever pydantic's reading satisfies a condition, a deny rule with that condition refuses
//!   the call, both with `arguments = "off"` (the readings alone) and `"strict"` (where a call
//!   that does not conform is refused anyway);
//! - whenever toolgate lets an allow rule with that condition lower the gate, pydantic's reading
//!   satisfies the condition.
//!
//! The values come from a deterministic generator (a fixed seed), so a run is repeatable; a
//! counterexample is printed with the reading on each side.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use crate::common::{Env, root};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};
use toolgate::conformity::{Tools, Verdict};
use toolgate::policy::reading::Context;
use toolgate::policy::reading::path::{self, Place};
use toolgate::policy::{Call, Gate, Policy};

/// The Python SDK reading values, one request at a time.
struct Pydantic {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    schemas: Value,
}

impl Pydantic {
    fn start(env: &Env, cwd: &Path, home: &Path) -> Pydantic {
        let mut child = env
            .python()
            .arg(root().join("tests/python/pydantic_reader.py"))
            .current_dir(cwd)
            .env("HOME", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let schemas = serde_json::from_str(&line).unwrap();
        Pydantic { child, stdin, stdout, schemas }
    }

    /// pydantic's reading of `value` as a `ty` argument, and which `conditions` hold on it;
    /// `None` when the SDK refuses the call (then nothing runs).
    fn read(&mut self, ty: &str, value: &Value, conditions: &[Value]) -> Option<(Value, Vec<bool>)> {
        let request = json!({"type": ty, "value": value, "conditions": conditions});
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if answer["ok"] != true {
            return None;
        }
        let holds = answer["holds"].as_array().unwrap().iter().map(|h| h == true).collect();
        Some((answer["value"].clone(), holds))
    }
}

impl Drop for Pydantic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test server's place: its working folder and home, and this machine's disk.
struct Server {
    cwd: String,
    home: String,
}

impl Place for Server {
    fn bases(&self) -> Vec<String> {
        vec![self.cwd.clone()]
    }
    fn var(&self, name: &str) -> Vec<String> {
        if name == "HOME" { vec![self.home.clone()] } else { Vec::new() }
    }
    fn home_of(&self, user: &str) -> Option<String> {
        path::home_of(user)
    }
    fn on_disk(&self, absolute: &str) -> Vec<String> {
        path::resolve(absolute, Path::new("/"), &[std::process::id()])
    }
}

/// Makes one value of a kind.
type Generator = Box<dyn Fn(&mut TestRunner, &Folders) -> Value>;

/// One kind of argument: pydantic's type, and the conditions generated for a value of it.
struct Kind {
    ty: &'static str,
    values: Generator,
    conditions: fn(&Folders) -> Vec<(String, Value)>,
}

/// The folders the paths are about.
struct Folders {
    root: String,
}

fn pick<T: Clone>(runner: &mut TestRunner, items: &[T]) -> T {
    let i = (0..items.len()).new_tree(runner).unwrap().current();
    items[i].clone()
}

fn number_in(runner: &mut TestRunner, range: std::ops::Range<i64>) -> i64 {
    range.new_tree(runner).unwrap().current()
}

/// A boolean in one of the forms a model might send.
fn boolean(runner: &mut TestRunner) -> Value {
    let forms = [
        json!(true),
        json!(false),
        json!(1),
        json!(0),
        json!(2),
        json!(1.0),
        json!(0.0),
        json!(0.5),
        json!("true"),
        json!("True"),
        json!("TRUE"),
        json!("false"),
        json!("yes"),
        json!("no"),
        json!("y"),
        json!("n"),
        json!("on"),
        json!("off"),
        json!("t"),
        json!("f"),
        json!("1"),
        json!("0"),
        json!(" yes "),
        json!(""),
        json!("maybe"),
        json!(null),
        json!([]),
        json!([true]),
        json!({}),
    ];
    pick(runner, &forms)
}

/// A number in one of the lax forms a server family reads.
fn number(runner: &mut TestRunner) -> Value {
    let bases = [
        "0",
        "1",
        "999",
        "1000",
        "1001",
        "5000",
        "9007199254740992",
        "9007199254740993",
        "123456789012345678901234567890",
    ];
    let mut digits = pick(runner, &bases).to_owned();
    if number_in(runner, 0..4) == 0 {
        digits = number_in(runner, 0..100_000).to_string();
    }
    let fraction = pick(runner, &["", ".0", ".5", ".00000000000000001", ".999", "."]);
    let text = format!("{digits}{fraction}");
    let form = number_in(runner, 0..16);
    match form {
        0 => serde_json::from_str(&text).unwrap_or(json!(text)),
        1 => json!(text),
        2 => json!(underscored(&digits)),
        3 => json!(format!(
            "{}{text}{}",
            pick(runner, &[" ", "\t", "\u{a0}", "\u{1c}", "\u{feff}", "\n"]),
            pick(runner, &[" ", "", "\u{2003}"])
        )),
        4 => json!(format!("+{text}")),
        5 => json!(format!("-{text}")),
        6 => json!(exponent(&digits)),
        7 => json!(unicode_digits(&digits, pick(runner, &[0x660u32, 0xff10, 0x966, 0x1d7ce]))),
        8 => json!(format!("0x{:x}", digits.parse::<u64>().unwrap_or(5000))),
        9 => json!(format!("{text} EUR")),
        10 => json!(pick(runner, &["inf", "Infinity", "-inf", "nan", "NaN", "1e400", "-1e400"])),
        11 => pick(runner, &[json!(true), json!(false)]),
        12 => json!([serde_json::from_str::<Value>(&digits).unwrap_or(json!(5000))]),
        13 => json!(format!("{digits}__0")),
        14 => json!(format!("_{digits}")),
        _ => json!(format!("{digits}e0")),
    }
}

fn underscored(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}

fn exponent(digits: &str) -> String {
    let trimmed = digits.trim_end_matches('0');
    if trimmed.is_empty() {
        return "0e5".into();
    }
    format!("{trimmed}e{}", digits.len() - trimmed.len())
}

fn unicode_digits(digits: &str, zero: u32) -> String {
    digits.chars().map(|c| char::from_u32(zero + c.to_digit(10).unwrap_or(0)).unwrap_or(c)).collect()
}

/// A path, relative or absolute, with the pieces servers read differently.
fn a_path(runner: &mut TestRunner, f: &Folders) -> String {
    let segments = [
        "PROT",
        "ok",
        ".",
        "..",
        "sub",
        "x",
        "x\n",
        "a\\..\\..",
        "link",
        "deep",
        "Cafe\u{301}",
        "Caf\u{e9}",
        "",
        "y.txt",
    ];
    let n = number_in(runner, 1..6);
    let mut parts: Vec<String> = Vec::new();
    for _ in 0..n {
        parts.push(pick(runner, &segments).to_owned());
    }
    let prefix = pick(runner, &["", "./", "~/", "/", "ROOT/", "ROOT/ok/", "ROOT/PROT/"]).replace("ROOT", &f.root);
    format!("{prefix}{}", parts.join("/"))
}

fn kinds() -> Vec<Kind> {
    let numbers = |_: &Folders| -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for bound in ["0", "1", "1000", "5000", "9007199254740992", "1e30"] {
            for op in ["gt", "ge", "lt", "le"] {
                out.push((format!("{{ {op} = {bound} }}"), json!({"op": op, "bound": bound})));
            }
            if !bound.contains('e') {
                out.push((format!("{{ equals = {bound} }}"), json!({"op": "eq", "bound": bound})));
            }
        }
        out
    };
    let inside = |f: &Folders| {
        vec![(
            format!("{{ glob = \"{}/PROT/**\" }}", f.root),
            json!({"op": "inside", "bound": format!("{}/PROT", f.root)}),
        )]
    };
    vec![
        Kind {
            ty: "bool",
            values: Box::new(|r, _| boolean(r)),
            conditions: |_| {
                vec![
                    ("{ equals = true }".into(), json!({"op": "eq", "bound": true})),
                    ("{ equals = false }".into(), json!({"op": "eq", "bound": false})),
                ]
            },
        },
        Kind { ty: "int", values: Box::new(|r, _| number(r)), conditions: numbers },
        Kind { ty: "float", values: Box::new(|r, _| number(r)), conditions: numbers },
        Kind { ty: "decimal", values: Box::new(|r, _| number(r)), conditions: numbers },
        Kind {
            ty: "options",
            values: Box::new(|r, _| {
                let options = json!({"recursive": boolean(r)});
                match number_in(r, 0..3) {
                    0 => options,
                    1 => json!(options.to_string()),
                    _ => json!(format!(" {} ", options.to_string().replace(':', ": "))),
                }
            }),
            conditions: |_| {
                vec![("{ equals = true }".into(), json!({"op": "eq", "bound": true, "member": "recursive"}))]
            },
        },
        Kind {
            ty: "list",
            values: Box::new(|r, f| {
                let n = number_in(r, 1..4);
                let paths: Vec<Value> = (0..n).map(|_| json!(a_path(r, f))).collect();
                if number_in(r, 0..2) == 0 { Value::Array(paths) } else { json!(Value::Array(paths).to_string()) }
            }),
            conditions: inside,
        },
        Kind { ty: "str", values: Box::new(|r, f| json!(a_path(r, f))), conditions: inside },
    ]
}

/// toolgate's gate for a call of tool `t` with argument `v`, under a policy with one rule.
fn gate(policy: &Policy, tools: Option<&Tools>, value: &Value, place: &Server) -> Gate {
    let mut arguments = Map::new();
    arguments.insert("v".into(), value.clone());
    let text = Value::Object(arguments.clone()).to_string();
    let verdict = tools.map(|t| t.check("t", &mut arguments));
    let schema = match &verdict {
        Some(Verdict::Conforms(schema)) => Some(schema.clone()),
        _ => None,
    };
    let context = Context { schema: schema.as_deref(), text: Some(&text), place };
    let mut decision = policy.decide(&Call::new("s", "t", &arguments).with_context(context));
    if let Some(verdict) = &verdict {
        toolgate::conformity::apply(policy.settings.arguments, verdict, "t", &mut decision);
    }
    decision.gate
}

#[test]
fn whenever_pydantic_reads_a_value_that_a_rule_restricts_toolgate_is_at_least_as_strict() {
    let env = Env::new();
    std::fs::create_dir(env.join("place")).unwrap();
    let root = env.join("place").canonicalize().unwrap();
    for folder in ["PROT/sub", "ok", "Caf\u{e9}"] {
        std::fs::create_dir_all(root.join(folder)).unwrap();
    }
    std::os::unix::fs::symlink(root.join("PROT"), root.join("ok/link")).unwrap();
    std::os::unix::fs::symlink(root.join("PROT/sub"), root.join("ok/deep")).unwrap();
    std::os::unix::fs::symlink(root.join("PROT"), root.join("link")).unwrap();
    // HOME is the root too: `~/PROT/x` is inside PROT.
    let folders = Folders { root: root.to_string_lossy().into_owned() };
    let place = Server { cwd: folders.root.clone(), home: folders.root.clone() };
    let mut pydantic = Pydantic::start(&env, &root, &root);

    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let mut checked = 0;
    let mut held = 0;
    let mut failures: Vec<String> = Vec::new();
    for kind in kinds() {
        let schema = pydantic.schemas[kind.ty].clone();
        let mut tools = Tools::default();
        tools.learn(&[json!({"name": "t", "inputSchema": schema})], true, true);
        let conditions = (kind.conditions)(&folders);
        let pointer = if kind.ty == "options" { "/v/recursive" } else { "/v" };
        let policies: Vec<(Policy, Policy, Policy)> = conditions
            .iter()
            .map(|(toml, _)| {
                let deny = |setting: &str| {
                    Policy::from_toml(
                        &format!(
                            "[settings]\ndefault_tier = \"low\"\narguments = \"{setting}\"\n\
                             [[rules]]\nname = \"c\"\nargs = {{ \"{pointer}\" = {toml} }}\naction = \"deny\"\n"
                        ),
                        "p.toml",
                    )
                    .unwrap()
                };
                let allow = Policy::from_toml(
                    &format!(
                        "[settings]\ndefault_tier = \"high\"\narguments = \"off\"\n\
                         [[rules]]\nname = \"c\"\nargs = {{ \"{pointer}\" = {toml} }}\ntier = \"low\"\n"
                    ),
                    "p.toml",
                )
                .unwrap();
                (deny("off"), deny("strict"), allow)
            })
            .collect();
        let python_conditions: Vec<Value> = conditions.iter().map(|(_, c)| c.clone()).collect();
        for _ in 0..1500 {
            let value = (kind.values)(&mut runner, &folders);
            let Some((reading, holds)) = pydantic.read(kind.ty, &value, &python_conditions) else { continue };
            checked += 1;
            for (((toml, _), (off, strict, allow)), holds) in conditions.iter().zip(&policies).zip(holds) {
                let (off_gate, strict_gate, allow_gate) = (
                    gate(off, None, &value, &place),
                    gate(strict, Some(&tools), &value, &place),
                    gate(allow, None, &value, &place),
                );
                held += usize::from(holds);
                let wrong = if holds && off_gate != Gate::Deny {
                    Some(format!("pydantic's reading holds, but with arguments = \"off\" toolgate says {off_gate:?}"))
                } else if holds && strict_gate != Gate::Deny {
                    Some(format!(
                        "pydantic's reading holds, but with arguments = \"strict\" toolgate says {strict_gate:?}"
                    ))
                } else if !holds && allow_gate == Gate::Allow {
                    Some("pydantic's reading does not hold, but toolgate lets an allow rule apply".to_owned())
                } else {
                    None
                };
                if let Some(wrong) = wrong {
                    failures
                        .push(format!("{} {pointer} = {toml} on {value} (pydantic read {reading}): {wrong}", kind.ty));
                }
            }
        }
    }
    eprintln!("{checked} values pydantic accepted; {held} condition checks pydantic's reading satisfied");
    assert!(checked > 1000 && held > 500, "the generator must exercise the properties: {checked} values, {held} held");
    assert!(failures.is_empty(), "{} counterexamples:\n{}", failures.len(), failures.join("\n"));
}
