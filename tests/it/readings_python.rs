//! Every reading a real server takes of an argument, end to end, with the official Python SDK
//! (`mcp==2.3.0`, pydantic). `tests/python/readings_server.py` writes a file only when it acts on
//! an argument, so each class of hole is shown on disk, three ways:
//!
//! 1. the control: the server, called directly, does act on the attack value (`"true"` wipes
//!    recursively, `"5_000"` pays 5000, `~/PROT/x` writes into PROT);
//! 2. through toolgate, with a deny rule for the dangerous value, under `arguments = "strict"` and
//!    under `arguments = "off"` (the readings alone), the call is refused with a reason the model
//!    reads and nothing is written, while a well-typed value the rule does not cover still runs;
//! 3. under `strict` with no rule at all, a call that does not conform to the tool's schema is
//!    refused with a message that names the argument and the type.
//!
//! A failure lists every attack that got through, with the policy setting, the server's answer,
//! the files written and toolgate's audit record.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use serde_json::{Value, json};

fn script() -> PathBuf {
    root().join("tests/python/readings_server.py")
}

/// Which of the script's two servers runs.
#[derive(Debug, Clone, Copy)]
enum Server {
    /// MCPServer: tools from typed Python functions, arguments read by pydantic.
    Models,
    /// The low-level server: it folds tool names, lists `dup` twice, runs `unlisted` unlisted.
    LowLevel,
}

impl Server {
    fn args(self) -> &'static [&'static str] {
        match self {
            Server::Models => &[],
            Server::LowLevel => &["lowlevel"],
        }
    }
}

/// One session's folders: `work` is the server's working folder and its HOME, with `work/PROT` the
/// folder the policies protect and `work/ok` an allowed one whose symlinks lead into PROT; the
/// policy and the audit log lie beside it.
struct Lab {
    env: Env,
    root: PathBuf,
    work: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let env = Env::new();
        let root = env.path().canonicalize().unwrap();
        let work = root.join("work");
        for folder in ["work/PROT/deep", "work/ok", "policy"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, work.join(at)).unwrap();
        link(&format!("{}/PROT", work.display()), "ok/link");
        link("../PROT", "ok/rel");
        link(&format!("{}/PROT/deep", work.display()), "ok/deep");
        link(&format!("{}/PROT/dangling", work.display()), "ok/dangling");
        Lab { env, root, work }
    }

    /// The absolute path of the working folder, for policies and arguments.
    fn w(&self) -> String {
        self.work.display().to_string()
    }

    fn audit(&self) -> PathBuf {
        self.root.join("audit.jsonl")
    }

    /// Every regular file under the working folder (symlinks not followed), relative to it.
    fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    walk(&entry.path(), base, out);
                } else if kind.is_file() {
                    out.push(entry.path().strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.work, &self.work, &mut out);
        out.sort();
        out
    }

    /// The server, started in the working folder with it as HOME (never the real one).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.env.command(program);
        cmd.current_dir(&self.work).env("HOME", &self.work);
        cmd
    }
}

/// A session with the server, directly or through toolgate, speaking MCP over its stdio.
struct Session {
    peer: Peer,
    next: i64,
}

impl Session {
    fn direct(lab: &Lab, server: Server) -> Session {
        let mut cmd = lab.command(python());
        cmd.arg(script()).args(server.args());
        Session::open(Peer::start(cmd), true)
    }

    fn gated(lab: &Lab, server: Server, policy: &str, list: bool) -> Session {
        let policy = policy_file(&lab.root.join("policy"), policy);
        let mut cmd = lab.command(toolgate());
        cmd.args(["run", "--name", "py", "--policy"]).arg(policy).arg("--audit").arg(lab.audit());
        cmd.arg("--").arg(python()).arg(script()).args(server.args());
        Session::open(Peer::start(cmd), list)
    }

    /// Initializes, and lists the tools (as a client does first) when `list`.
    fn open(mut peer: Peer, list: bool) -> Session {
        initialize(&mut peer, "2025-06-18");
        if list {
            let tools = peer.request(1, "tools/list", json!({}));
            assert!(tools["result"]["tools"].is_array(), "{tools}");
        }
        Session { peer, next: 1 }
    }

    /// Calls a tool with arguments written as JSON text (so numbers keep every digit), and
    /// returns the request id and the answer, with every message that came before it.
    fn call_seeing(&mut self, tool: &str, arguments: &str) -> (i64, Value, Vec<Value>) {
        self.next += 1;
        let id = self.next;
        let name = Value::from(tool);
        let line = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":{name},\"arguments\":{arguments}}}}}\n"
        );
        self.peer.send_raw(line.as_bytes());
        let mut before = Vec::new();
        loop {
            let message = self.peer.recv();
            if message["id"] == id && message.get("method").is_none() {
                return (id, message, before);
            }
            before.push(message);
        }
    }

    fn call(&mut self, tool: &str, arguments: &str) -> (i64, Value) {
        let (id, answer, _) = self.call_seeing(tool, arguments);
        (id, answer)
    }
}

/// What `arguments = "strict"` alone makes of a call, without any rule.
#[derive(Debug, Clone, Copy)]
enum Strict {
    /// The call conforms to the tool's schema: only the readings can stop it.
    Conforms,
    /// The argument at this pointer is not of this type.
    Wrong(&'static str, &'static str),
    /// The schema cannot decide; the refusal says this.
    Cannot(&'static str),
}

/// One call, and the file (relative to the working folder) the server writes when it acts on it.
struct Case {
    tool: &'static str,
    arguments: String,
    writes: String,
    strict: Strict,
}

fn case(tool: &'static str, arguments: Value, writes: &str, strict: Strict) -> Case {
    Case { tool, arguments: arguments.to_string(), writes: writes.to_owned(), strict }
}

/// A case whose arguments must be sent exactly as written (numbers a double cannot hold).
fn raw(tool: &'static str, arguments: &str, writes: &str, strict: Strict) -> Case {
    Case { tool, arguments: arguments.to_owned(), writes: writes.to_owned(), strict }
}

/// A class of hole: the rules that should stop its attacks, and a well-typed call they do not
/// cover.
struct Class {
    server: Server,
    /// `[[rules]]` tables, given the lab (path rules name its folders).
    rules: fn(&Lab) -> String,
    /// The reason every rule of the class gives; a refusal by a rule carries it.
    reason: &'static str,
    attacks: fn(&Lab) -> Vec<Case>,
    benign: fn(&Lab) -> Vec<Case>,
}

/// The text of a call's answer (a result's first content, or an error's message).
fn text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"].as_str().or_else(|| answer["error"]["message"].as_str()).unwrap_or("")
}

/// The text of toolgate's refusal, if the answer is one.
fn refused_by_toolgate<'a>(answer: &'a Value, tool: &str) -> Option<&'a str> {
    let text = text(answer);
    (answer["result"]["isError"] == true && text.starts_with(&format!("toolgate refused this call to `{tool}`")))
        .then_some(text)
}

fn policy(setting: &str, rules: &str) -> String {
    format!("[settings]\ndefault_tier = \"low\"\narguments = \"{setting}\"\ndesktop_notifications = false\n\n{rules}")
}

/// The files a call wrote: those there now that were not `before`.
fn new_files(lab: &Lab, before: &[String]) -> Vec<String> {
    lab.files().into_iter().filter(|f| !before.contains(f)).collect()
}

fn audit_record(lab: &Lab, id: i64) -> String {
    if !lab.audit().exists() {
        return "(no audit log)".into();
    }
    audit_decisions(&lab.audit())
        .into_iter()
        .find(|r| r["request_id"] == id)
        .map_or_else(|| "(no record)".to_owned(), |r| r.to_string())
}

/// Runs a class: the control, then toolgate under `strict` and `off`, then `strict` alone.
fn run(class: &Class) {
    let lab = Lab::new();
    let mut direct = Session::direct(&lab, class.server);
    for case in (class.attacks)(&lab).iter().chain(&(class.benign)(&lab)) {
        let (_, answer) = direct.call(case.tool, &case.arguments);
        assert!(
            lab.work.join(&case.writes).exists(),
            "control: the server did not act on {} {} (it should have written {:?}); it answered {answer}; files: {:?}",
            case.tool,
            case.arguments,
            case.writes,
            lab.files()
        );
    }
    drop(direct);

    let mut holes = String::new();
    for setting in ["strict", "off"] {
        let lab = Lab::new();
        let policy = policy(setting, &(class.rules)(&lab));
        let mut gated = Session::gated(&lab, class.server, &policy, true);
        for case in (class.attacks)(&lab) {
            let before = lab.files();
            let (id, answer) = gated.call(case.tool, &case.arguments);
            let files = new_files(&lab, &before);
            let refused = refused_by_toolgate(&answer, case.tool);
            // Under `off` only a rule can refuse, so the refusal must be the rule's.
            let why_ok = refused.is_some_and(|t| setting == "strict" || t.contains(class.reason));
            if !why_ok || !files.is_empty() {
                let _ = writeln!(
                    holes,
                    "- {} {} with arguments = {setting:?}: answered {answer}; files written {files:?}; audit {}",
                    case.tool,
                    case.arguments,
                    audit_record(&lab, id)
                );
            }
        }
        for case in (class.benign)(&lab) {
            let (_, answer) = gated.call(case.tool, &case.arguments);
            assert!(
                lab.work.join(&case.writes).exists(),
                "{setting}: the well-typed call {} {} did not run: {answer}",
                case.tool,
                case.arguments
            );
        }
    }

    // `strict` alone, with no rule: what does not conform is refused, naming the argument.
    let lab = Lab::new();
    let attacks: Vec<Case> =
        (class.attacks)(&lab).into_iter().filter(|c| !matches!(c.strict, Strict::Conforms)).collect();
    let mut unnamed = String::new();
    if !attacks.is_empty() {
        let mut gated = Session::gated(&lab, class.server, &policy("strict", ""), true);
        for case in attacks {
            let before = lab.files();
            let (id, answer) = gated.call(case.tool, &case.arguments);
            let said = refused_by_toolgate(&answer, case.tool).unwrap_or("");
            let named = match case.strict {
                Strict::Wrong(pointer, ty) => {
                    said.contains(&format!("argument {pointer}: "))
                        && said.contains(&format!("is not of type \"{ty}\""))
                }
                Strict::Cannot(why) => said.contains(why),
                Strict::Conforms => unreachable!(),
            };
            let files = new_files(&lab, &before);
            if !named || !files.is_empty() {
                let _ = writeln!(
                    unnamed,
                    "- {} {} (expected {:?}): answered {answer}; files written {files:?}; audit {}",
                    case.tool,
                    case.arguments,
                    case.strict,
                    audit_record(&lab, id)
                );
            }
        }
    }

    assert!(
        holes.is_empty() && unnamed.is_empty(),
        "attacks that got through toolgate, or were not refused for the rule's reason:\n{holes}\n\
         calls that arguments = \"strict\" alone let through, or refused without naming the argument \
         and its type:\n{unnamed}"
    );
}

fn deny(name: &str, tools: &str, args: &str, reason: &str) -> String {
    format!(
        "[[rules]]\nname = \"{name}\"\ntools = {tools}\nargs = {args}\naction = \"deny\"\nreason = \"{reason}\"\n\n"
    )
}

const WIPE: &str = "recursive wipes are not allowed";

#[test]
fn booleans_the_server_reads_as_true_are_judged_as_true() {
    use Strict::*;
    run(&Class {
        server: Server::Models,
        rules: |_| deny("no recursive wipes", "[\"wipe\"]", "{ \"/recursive\" = { equals = true } }", WIPE),
        reason: WIPE,
        attacks: |_| {
            let wrong = Wrong("/recursive", "boolean");
            vec![
                case("wipe", json!({"path": "b0", "recursive": true}), "b0/wiped-recursive", Conforms),
                case("wipe", json!({"path": "b1", "recursive": "true"}), "b1/wiped-recursive", wrong),
                case("wipe", json!({"path": "b2", "recursive": 1}), "b2/wiped-recursive", wrong),
                case("wipe", json!({"path": "b3", "recursive": "yes"}), "b3/wiped-recursive", wrong),
                case("wipe", json!({"path": "b4", "recursive": "on"}), "b4/wiped-recursive", wrong),
                case("wipe", json!({"path": "b5", "recursive": "TRUE"}), "b5/wiped-recursive", wrong),
                case("wipe", json!({"path": "b6", "recursive": "t"}), "b6/wiped-recursive", wrong),
                case("wipe", json!({"path": "b7", "recursive": "1"}), "b7/wiped-recursive", wrong),
                case("wipe", json!({"path": "b8", "recursive": 1.0}), "b8/wiped-recursive", wrong),
            ]
        },
        benign: |_| vec![case("wipe", json!({"path": "fine", "recursive": false}), "fine/wiped", Conforms)],
    });
}

const PAY: &str = "payments over the limit are not allowed";

#[test]
fn numbers_the_server_reads_from_strings_are_compared_as_it_reads_them() {
    use Strict::*;
    run(&Class {
        server: Server::Models,
        rules: |_| deny("no big payments", "[\"pay*\"]", "{ \"/amount\" = { gt = 1000 } }", PAY),
        reason: PAY,
        attacks: |_| {
            let int = Wrong("/amount", "integer");
            let float = Wrong("/amount", "number");
            vec![
                case("pay", json!({"to": "n0", "amount": 5000}), "n0/paid-5000", Conforms),
                raw("pay", r#"{"to": "ne", "amount": 5e3}"#, "ne/paid-5000", Conforms),
                case("pay", json!({"to": "n1", "amount": "5_000"}), "n1/paid-5000", int),
                case("pay", json!({"to": "n2", "amount": " 5000 "}), "n2/paid-5000", int),
                case("pay", json!({"to": "n3", "amount": "+5000"}), "n3/paid-5000", int),
                case("pay", json!({"to": "n4", "amount": "5000.0"}), "n4/paid-5000", int),
                case("pay_float", json!({"to": "n5", "amount": "5e3"}), "n5/paid-5000.0", float),
                case("pay_float", json!({"to": "n6", "amount": "inf"}), "n6/paid-inf", float),
                case("pay_float", json!({"to": "n7", "amount": "5_000.5"}), "n7/paid-5000.5", float),
                // pydantic's Decimal reads every Unicode digit; its schema allows a string.
                case("pay_decimal", json!({"to": "n8", "amount": "٥٠٠٠"}), "n8/paid-5000", Conforms),
                case("pay_decimal", json!({"to": "n9", "amount": "５０００"}), "n9/paid-5000", Conforms),
                case("pay_decimal", json!({"to": "n10", "amount": " 5e3 "}), "n10/paid-5E+3", Conforms),
            ]
        },
        benign: |_| {
            vec![
                case("pay", json!({"to": "small", "amount": 10}), "small/paid-10", Conforms),
                case("pay_decimal", json!({"to": "exact", "amount": "10.5"}), "exact/paid-10.5", Conforms),
            ]
        },
    });
}

#[test]
fn a_boolean_the_server_reads_as_a_number_is_compared_as_one() {
    // pydantic's int takes `true` as 1.
    run(&Class {
        server: Server::Models,
        rules: |_| deny("nothing but zero", "[\"pay\"]", "{ \"/amount\" = { ge = 1 } }", PAY),
        reason: PAY,
        attacks: |_| {
            vec![case("pay", json!({"to": "t", "amount": true}), "t/paid-1", Strict::Wrong("/amount", "integer"))]
        },
        benign: |_| vec![case("pay", json!({"to": "zero", "amount": 0}), "zero/paid-0", Strict::Conforms)],
    });
}

/// The reason of rules in classes that mix kinds of rule.
const FORBIDDEN: &str = "the policy forbids this";

/// 400 digits: Python's int reads them; a double cannot hold them.
fn long_integer() -> String {
    format!("1{}", "0".repeat(400))
}

#[test]
fn objects_and_arrays_sent_as_json_text_are_judged_decoded() {
    use Strict::*;
    run(&Class {
        server: Server::Models,
        rules: |lab| {
            deny("no recursive wipes", "[\"configure\"]", "{ \"/options/recursive\" = { equals = true } }", FORBIDDEN)
                + &deny(
                    "PROT is protected",
                    "[\"touch_all\"]",
                    &format!("{{ \"/paths\" = {{ glob = \"{}/PROT/**\" }} }}", lab.w()),
                    FORBIDDEN,
                )
        },
        reason: FORBIDDEN,
        attacks: |_| {
            let object = Wrong("/options", "object");
            let options = |path: &str, text: String| {
                case("configure", json!({"path": path, "options": text}), &format!("{path}/wiped-recursive"), object)
            };
            vec![
                options("j1", r#"{"recursive": true}"#.into()),
                options("j2", r#" {"recursive": "yes"}"#.into()),
                options("j3", r#"{"recursive": false, "recursive": true}"#.into()),
                options("j4", r#"{"recursive": true, "size": NaN}"#.into()),
                // JSON text Python's json module reads and serde_json does not: a lone surrogate
                // escape, a number beyond a double's range.
                options("j5", r#"{"recursive": true, "note": "\ud800"}"#.into()),
                options("j6", r#"{"recursive": true, "size": 1e400}"#.into()),
                options("j7", format!(r#"{{"recursive": true, "size": {}}}"#, long_integer())),
                case("touch_all", json!({"paths": r#"["ok/a", "PROT/b"]"#}), "PROT/b", Wrong("/paths", "array")),
            ]
        },
        benign: |_| {
            vec![
                case("configure", json!({"path": "fine", "options": {"recursive": false}}), "fine/wiped", Conforms),
                case("touch_all", json!({"paths": ["ok/c"]}), "ok/c", Conforms),
            ]
        },
    });
}

const PROT: &str = "PROT is protected";

#[test]
fn paths_are_judged_where_the_server_opens_them() {
    run(&Class {
        server: Server::Models,
        rules: |lab| {
            let inside = format!("{{ glob = \"{}/PROT/**\" }}", lab.w());
            deny("PROT is protected", "[\"write_marker\"]", &format!("{{ \"/path\" = {inside} }}"), PROT)
                + &deny("PROT is protected by URL too", "[\"save_url\"]", &format!("{{ \"/url\" = {inside} }}"), PROT)
        },
        reason: PROT,
        attacks: |lab| {
            let w = lab.w();
            let write =
                |path: &str, writes: &str| case("write_marker", json!({"path": path}), writes, Strict::Conforms);
            let url = |url: String, writes: &str| case("save_url", json!({"url": url}), writes, Strict::Conforms);
            vec![
                // Relative to the server's working folder (toolgate's too, here; the server's is read).
                write("PROT/a", "PROT/a"),
                // HOME is the working folder: os.path.expanduser and expandvars read it.
                write("~/PROT/b", "PROT/b"),
                write("$HOME/PROT/c", "PROT/c"),
                write("${HOME}/PROT/d", "PROT/d"),
                // Symlinks from the allowed folder: absolute, relative, to a file not yet there.
                write("ok/link/e", "PROT/e"),
                write(&format!("{w}/ok/rel/f"), "PROT/f"),
                write("ok/dangling", "PROT/dangling"),
                // `..` after a symlink climbs from its target: ok/deep/.. is PROT.
                write("ok/deep/../g", "PROT/g"),
                write("/proc/self/cwd/../work/PROT/g2", "PROT/g2"),
                // /proc/self is the server.
                write("/proc/self/cwd/PROT/h", "PROT/h"),
                write(&format!("/proc/self/root{w}/PROT/i"), "PROT/i"),
                // A newline in the name; backslashes Linux writes literally, inside PROT.
                write("PROT/j\n", "PROT/j\n"),
                write(r"PROT/k\..\..\elsewhere.sh", r"PROT/k\..\..\elsewhere.sh"),
                // file: URLs, decoded as urlparse and url2pathname read them.
                url(format!("file://localhost{w}/PROT%2Fl"), "PROT/l"),
                url("file:PROT/m".into(), "PROT/m"),
                url(format!("file://{w}/PROT/n#top"), "PROT/n"),
                // urlparse ignores what toolgate may not: the host (url2pathname never sees it),
                // spaces before the scheme, and tabs and newlines anywhere.
                url(format!("file://elsewhere{w}/PROT/o"), "PROT/o"),
                url(format!(" file://{w}/PROT/p"), "PROT/p"),
                url(format!("file://{w}/PR\tOT/q"), "PROT/q"),
            ]
        },
        benign: |lab| {
            vec![
                case("write_marker", json!({"path": "ok/fine"}), "ok/fine", Strict::Conforms),
                case(
                    "save_url",
                    json!({"url": format!("file://{}/ok/fine-url", lab.w())}),
                    "ok/fine-url",
                    Strict::Conforms,
                ),
            ]
        },
    });
}

#[test]
fn numbers_are_compared_exactly_as_the_server_reads_them() {
    use Strict::*;
    run(&Class {
        server: Server::Models,
        rules: |_| {
            deny("no big payments", "[\"pay\"]", "{ \"/amount\" = { gt = 9007199254740992 } }", PAY)
                + &deny("no decimal payments over 1000", "[\"pay_decimal\"]", "{ \"/amount\" = { gt = 1000 } }", PAY)
                + &deny(
                    "no float payments from 2^53 + 4",
                    "[\"pay_float\"]",
                    "{ \"/amount\" = { ge = 9007199254740996 } }",
                    PAY,
                )
        },
        reason: PAY,
        attacks: |_| {
            vec![
                // 2^53 + 3 is below the bound, but a float reads it as 2^53 + 4.
                raw("pay_float", r#"{"to": "x0", "amount": 9007199254740995}"#, "x0/paid-9007199254740996.0", Conforms),
                // 2^53 + 1: a double reads it as 2^53, Python's int exactly.
                raw("pay", r#"{"to": "x1", "amount": 9007199254740993}"#, "x1/paid-9007199254740993", Conforms),
                raw("pay", r#"{"to": "x2", "amount": 18446744073709551617}"#, "x2/paid-18446744073709551617", Conforms),
                case(
                    "pay_decimal",
                    json!({"to": "x3", "amount": "1000.00000000000000001"}),
                    "x3/paid-1000.00000000000000001",
                    Conforms,
                ),
            ]
        },
        benign: |_| {
            vec![
                raw("pay", r#"{"to": "edge", "amount": 9007199254740992}"#, "edge/paid-9007199254740992", Conforms),
                case("pay_decimal", json!({"to": "at", "amount": "1000"}), "at/paid-1000", Conforms),
                raw(
                    "pay_float",
                    r#"{"to": "below", "amount": 9007199254740993}"#,
                    "below/paid-9007199254740992.0",
                    Conforms,
                ),
            ]
        },
    });
}

const DELETE: &str = "deleting is not allowed";

#[test]
fn tool_names_the_server_folds_are_matched_folded() {
    run(&Class {
        server: Server::LowLevel,
        rules: |_| {
            "[[rules]]\nname = \"no deletes\"\ntools = [\"delete\"]\naction = \"deny\"\nreason = \"deleting is not allowed\"\n".into()
        },
        reason: DELETE,
        attacks: |_| {
            let unlisted = Strict::Cannot("the server does not list a tool named");
            vec![
                case("delete", json!({"path": "d0"}), "d0/deleted", Strict::Conforms),
                case("DELETE", json!({"path": "d1"}), "d1/deleted", unlisted),
                case("Delete", json!({"path": "d2"}), "d2/deleted", unlisted),
                case("ｄｅｌｅｔｅ", json!({"path": "d3"}), "d3/deleted", unlisted),
                case("ＤＥＬＥＴＥ", json!({"path": "d4"}), "d4/deleted", unlisted),
            ]
        },
        benign: |_| vec![case("wipe", json!({"path": "fine", "recursive": false}), "fine/wiped", Strict::Conforms)],
    });
}

#[test]
fn where_the_schema_cannot_decide_the_readings_do() {
    use Strict::*;
    run(&Class {
        server: Server::Models,
        rules: |lab| {
            deny("no decimal payments over 1000", "[\"pay_decimal\"]", "{ \"/amount\" = { gt = 1000 } }", FORBIDDEN)
                + &deny("no recursive wipes", "[\"wipe_any\"]", "{ \"/recursive\" = { equals = true } }", FORBIDDEN)
                + &deny(
                    "no recursive options",
                    "[\"configure\", \"configure_any\"]",
                    "{ \"/options/recursive\" = { equals = true } }",
                    FORBIDDEN,
                )
                + &deny(
                    "PROT is protected",
                    "[\"touch\"]",
                    &format!("{{ \"/paths\" = {{ glob = \"{}/PROT/**\" }} }}", lab.w()),
                    FORBIDDEN,
                )
        },
        reason: FORBIDDEN,
        attacks: |_| {
            let any = |path: &str, recursive: Value| {
                case(
                    "wipe_any",
                    json!({"path": path, "recursive": recursive}),
                    &format!("{path}/wiped-recursive"),
                    Conforms,
                )
            };
            let options = |tool: &'static str, path: &str, options: Value, strict: Strict| {
                case(tool, json!({"path": path, "options": options}), &format!("{path}/wiped-recursive"), strict)
            };
            vec![
                // Decimal: pydantic lists it as a number or a string, so a string conforms.
                case("pay_decimal", json!({"to": "s1", "amount": "5_000"}), "s1/paid-5000", Conforms),
                case("pay_decimal", json!({"to": "s2", "amount": "٥٠٠٠"}), "s2/paid-5000", Conforms),
                // Any: the server takes the value's truthiness; everything conforms.
                any("a1", json!("false")),
                any("a2", json!("0")),
                any("a3", json!(1)),
                any("a4", json!(0.5)),
                any("a5", json!([0])),
                any("a6", json!({"a": 1})),
                // Any holding options: the SDK decodes JSON text for it, and it conforms.
                options("configure_any", "o1", json!(r#"{"recursive": true}"#), Conforms),
                options("configure_any", "o2", json!({"recursive": "false"}), Conforms),
                options("configure_any", "o3", json!(r#"{"recursive": true, "note": "\ud800"}"#), Conforms),
                options("configure_any", "o4", json!(r#"{"recursive": true, "size": 1e400}"#), Conforms),
                // str | list[str]: a list conforms, and so does JSON text of one.
                case("touch", json!({"paths": ["ok/a", "PROT/b"]}), "PROT/b", Conforms),
                case("touch", json!({"paths": r#"["ok/c", "PROT/d"]"#}), "PROT/d", Conforms),
                case("touch", json!({"paths": r#"["PROT/e", "\ud800"]"#}), "PROT/e", Conforms),
                // A nested model behind $ref: its boolean is found through the reference.
                options("configure", "r1", json!({"recursive": true}), Conforms),
                options("configure", "r2", json!({"recursive": "yes"}), Wrong("/options/recursive", "boolean")),
                options("configure", "r3", json!({"recursive": 1}), Wrong("/options/recursive", "boolean")),
            ]
        },
        benign: |_| {
            vec![
                case("pay_decimal", json!({"to": "small", "amount": "10"}), "small/paid-10", Conforms),
                case("wipe_any", json!({"path": "any", "recursive": false}), "any/wiped", Conforms),
                case("configure_any", json!({"path": "opt", "options": {"recursive": false}}), "opt/wiped", Conforms),
                case("touch", json!({"paths": "ok/f"}), "ok/f", Conforms),
                case("configure", json!({"path": "ref", "options": {"recursive": false}}), "ref/wiped", Conforms),
            ]
        },
    });
}

#[test]
fn tools_listed_twice_with_an_unusable_schema_or_never_are_judged_on_every_reading() {
    run(&Class {
        server: Server::LowLevel,
        rules: |_| {
            deny(
                "no recursive wipes",
                "[\"dup\", \"remote\", \"unlisted\"]",
                "{ \"/recursive\" = { equals = true } }",
                WIPE,
            )
        },
        reason: WIPE,
        attacks: |_| {
            let twice = Strict::Cannot("the server lists the tool `dup` twice with different input schemas");
            vec![
                case("dup", json!({"path": "u1", "recursive": true}), "u1/wiped-recursive", twice),
                case("dup", json!({"path": "u2", "recursive": "yes"}), "u2/wiped-recursive", twice),
                case(
                    "remote",
                    json!({"path": "u3", "recursive": "on"}),
                    "u3/wiped-recursive",
                    Strict::Cannot("the input schema of `remote` cannot be used"),
                ),
                case(
                    "unlisted",
                    json!({"path": "u4", "recursive": 1}),
                    "u4/wiped-recursive",
                    Strict::Cannot("the server does not list a tool named `unlisted`"),
                ),
            ]
        },
        benign: |_| vec![case("wipe", json!({"path": "fine", "recursive": false}), "fine/wiped", Strict::Conforms)],
    });
}

#[test]
fn a_call_before_any_listing_is_judged_with_the_schema_toolgate_lists_itself() {
    let rule = deny("no recursive wipes", "[\"wipe\"]", "{ \"/recursive\" = { equals = true } }", WIPE);
    for (setting, rules, why) in [
        // Only the schema toolgate listed can name the argument and its type.
        ("strict", "", "argument /recursive: \"true\" is not of type \"boolean\""),
        ("strict", rule.as_str(), WIPE),
        ("off", rule.as_str(), WIPE),
    ] {
        let lab = Lab::new();
        let mut gated = Session::gated(&lab, Server::Models, &policy(setting, rules), false);
        let (id, answer, before) = gated.call_seeing("wipe", r#"{"path": "early", "recursive": "true"}"#);
        let refusal =
            refused_by_toolgate(&answer, "wipe").unwrap_or_else(|| panic!("{setting}: not refused: {answer}"));
        assert!(refusal.contains(why), "{setting} {rules:?}: {refusal}");
        assert_eq!(lab.files(), Vec::<String>::new(), "{setting}: the early call ran");
        let (_, answer, between) = gated.call_seeing("wipe", r#"{"path": "fine", "recursive": false}"#);
        assert_eq!(text(&answer), "wrote fine/wiped", "{setting}: the well-typed call did not run: {answer}");
        // toolgate's own tools/list is answered to toolgate, never to the client.
        for message in before.iter().chain(&between) {
            let ours = message["id"].as_str().is_some_and(|i| i.starts_with("toolgate-list-"));
            assert!(!ours && message["result"].get("tools").is_none(), "{setting}: the client saw {message}");
        }
        let audit = audit_decisions(&lab.audit());
        let record = audit.iter().find(|r| r["request_id"] == id).unwrap_or_else(|| panic!("no record: {audit:?}"));
        assert_eq!((record["tool"].as_str(), record["verdict"].as_str()), (Some("wipe"), Some("refused")), "{record}");
        assert_eq!(record["arguments"], json!({"path": "early", "recursive": "true"}));
    }
}

#[test]
fn explain_names_the_reading_a_condition_matched_under() {
    let env = Env::new();
    let policy = policy_file(
        env.path(),
        &policy("strict", &deny("no big payments", "[\"pay\"]", "{ \"/amount\" = { gt = 1000 } }", PAY)),
    );
    let explain = |json: bool| {
        let mut cmd = env.toolgate();
        cmd.arg("explain").args(json.then_some("--json")).arg("--policy").arg(&policy);
        let out = cmd.args(["--tool", "pay", "--args", r#"{"amount":"5_000"}"#]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let expected = r#"the number 5000, read from the string "5_000" by Python's int()/Decimal(), pydantic"#;
    let report: Value = serde_json::from_str(&explain(true)).unwrap();
    assert_eq!(report["decision"]["gate"], "deny", "{report}");
    let condition = &report["matched"][0]["conditions"][0];
    assert_eq!((condition["pointer"].as_str(), condition["actual"].as_str()), (Some("/amount"), Some("5_000")));
    let reading = condition["reading"].as_str().unwrap_or_else(|| panic!("no reading: {condition}"));
    assert!(reading.starts_with(r#"the number 5000, read from the string "5_000" by "#), "{reading}");
    let text = explain(false);
    assert!(text.contains(r#"matched as the number 5000, read from the string "5_000""#), "{text}");
    // pay's amount is an int: the parser that reads "5_000" as 5000 is Python's int() (pydantic).
    assert_eq!(reading, expected, "the reading names the wrong parser");
    assert!(text.contains(&format!("matched as {expected}")), "{text}");
}
