//! Paths as the official filesystem server reads them (`@modelcontextprotocol/server-filesystem`,
//! pinned in tests/node), end to end. A temporary folder `root` is the server's allowed folder,
//! `root/PROT` is protected by deny rules on `<root>/PROT/**` and `root/ok` is not. For every way of
//! naming a place inside `PROT`:
//!
//! 1. asked directly (no toolgate), the server really writes inside `PROT` (checked on disk), so
//!    the value is an attack on this server and not a guess;
//! 2. through toolgate the same call is refused with the rule's reason, the audit log says so, and
//!    nothing in `PROT` changed;
//! 3. in the same session a write to `root/ok` still lands, so the gate is not refusing everything.
//!
//! What server-filesystem 2026.8.31 does with a path (dist/lib.js `validatePath`, path-utils.js,
//! roots-utils.js, index.js), which decides the values below:
//! - `~` and `~/…` become `os.homedir()` (the server's `HOME`); `~user` is left alone;
//! - an absolute path goes through Node's `path.resolve`: `.` and `..` lexically, `\` an ordinary
//!   character, a newline an ordinary character (the check trims whitespace and quotes, the
//!   write does not, so `PROT/x\n` writes a file named `x\n`); a NUL is refused;
//! - a relative path is resolved against each allowed folder in turn (the first whose result lies
//!   inside an allowed folder wins), never against the working folder while there are any;
//! - the allowed folders are the command-line arguments, each with `~` expanded, resolved against
//!   the working folder and trimmed; or, once a client that declares `roots` answers `roots/list`
//!   with at least one usable folder, those roots instead (`file://` URIs as Node's URL parser
//!   reads them, symlinks resolved); an answer with no usable folder leaves them as they were;
//! - an existing path is replaced by its `fs.realpath` (every symlink followed; a `move_file`
//!   source that is a symlink to a folder moves the folder itself); for a new one, each existing
//!   component is matched by name or else by Unicode NFC equivalence and then `realpath`ed, and the
//!   rest is appended, so a write through a symlink to a folder lands in the folder;
//! - `..` after a symlink is resolved lexically before any of that (see
//!   `dot_dot_after_a_symlink_is_lexical_to_server_filesystem`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::{Value, json};

/// The deny rules a move into PROT and out of it meet (see [`deny_policy`]).
const INTO: &str = "moves into PROT";
const OUT_OF: &str = "moves out of PROT";

/// `é` as one code point (NFC) and as `e` with a combining acute accent (NFD).
const CAFE_NFC: &str = "Caf\u{e9}";
const CAFE_NFD: &str = "Cafe\u{301}";

/// A temporary folder laid out for one server:
///
/// ```text
/// TOP/root/PROT/secret.txt     "secret"
/// TOP/root/PROT/sub/
/// TOP/root/ok/a.txt            "a"
/// TOP/root/ok/dir/
/// TOP/root/ok/link  -> TOP/root/PROT
/// TOP/root/ok/deep  -> TOP/root/PROT/sub
/// TOP/root/ok/flink -> TOP/root/PROT/secret.txt
/// TOP/other/   a folder given to the server where the client's roots are to replace it
/// TOP/home/    HOME, unless a test sets it elsewhere (never the real one)
/// TOP/policy/  the policy (the audit log is TOP/audit.jsonl, out of the watched folder)
/// ```
struct Layout {
    env: Env,
    top: PathBuf,
    root: PathBuf,
    /// The protected folders: each gets deny rules on `<folder>/**`.
    protected: Vec<PathBuf>,
}

impl Layout {
    fn new(root_name: &str) -> Layout {
        let env = Env::new();
        let top = env.path().canonicalize().unwrap();
        let root = top.join(root_name);
        for folder in ["PROT/sub", "ok/dir"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        for folder in ["other", "home", "policy"] {
            std::fs::create_dir_all(top.join(folder)).unwrap();
        }
        std::fs::write(root.join("PROT/secret.txt"), "secret").unwrap();
        std::fs::write(root.join("ok/a.txt"), "a").unwrap();
        std::os::unix::fs::symlink(root.join("PROT"), root.join("ok/link")).unwrap();
        std::os::unix::fs::symlink(root.join("PROT/sub"), root.join("ok/deep")).unwrap();
        std::os::unix::fs::symlink(root.join("PROT/secret.txt"), root.join("ok/flink")).unwrap();
        let protected = vec![root.join("PROT")];
        Layout { env, top, root, protected }
    }

    /// `<root>/rel`, joined as text (so that `rel` may hold `..`, `\` or a newline as it is).
    fn at(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root.to_str().unwrap())
    }

    fn audit(&self) -> PathBuf {
        self.top.join("audit.jsonl")
    }

    /// Everything inside the protected folders, symlinks not followed.
    fn snapshot(&self) -> BTreeMap<PathBuf, Entry> {
        let mut out = BTreeMap::new();
        for folder in &self.protected {
            walk(folder, &mut out);
        }
        out
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Missing,
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

fn walk(path: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let entry = match std::fs::symlink_metadata(path) {
        Err(_) => Entry::Missing,
        Ok(meta) if meta.file_type().is_symlink() => Entry::Link(std::fs::read_link(path).unwrap()),
        Ok(meta) if meta.is_dir() => {
            for child in std::fs::read_dir(path).unwrap() {
                walk(&child.unwrap().path(), out);
            }
            Entry::Dir
        }
        Ok(_) => Entry::File(std::fs::read(path).unwrap()),
    };
    out.insert(path.to_owned(), entry);
}

/// A glob that matches `folder/**`, the folder's name taken literally.
fn glob_below(folder: &Path) -> String {
    let mut glob = String::new();
    for c in folder.to_str().unwrap().chars() {
        if "*?[]{}\\".contains(c) {
            glob.push('\\');
        }
        glob.push(c);
    }
    glob.push_str("/**");
    glob
}

/// A TOML basic string (JSON's escapes are TOML's).
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn folder_name(folder: &Path) -> &str {
    folder.file_name().unwrap().to_str().unwrap()
}

/// `default_tier = "low"` and, for each protected folder, a deny rule on writes into it
/// (`/path`), on moves into it (`/destination`) and on moves out of it (`/source`).
fn deny_policy(layout: &Layout) -> String {
    let mut text = "[settings]\ndefault_tier = \"low\"\ndesktop_notifications = false\n".to_owned();
    for folder in &layout.protected {
        let name = folder_name(folder);
        let glob = toml_string(&glob_below(folder));
        let reason = toml_string(&format!("{name} is protected"));
        for (rule, tools, pointer) in [
            (format!("writes in {name}"), r#"["write_file", "create_directory", "edit_file"]"#, "/path"),
            (format!("moves into {name}"), r#"["move_file"]"#, "/destination"),
            (format!("moves out of {name}"), r#"["move_file"]"#, "/source"),
        ] {
            text.push_str(&format!(
                "\n[[rules]]\nname = {}\ntools = {tools}\nargs = {{ \"{pointer}\" = {{ glob = {glob} }} }}\n\
                 action = \"deny\"\nreason = {reason}\n",
                toml_string(&rule)
            ));
        }
    }
    text
}

/// `default_tier = "high"` (a call no rule lowers needs a person, and none can be asked), and an
/// allow rule for writes inside `<root>/ok`.
fn allow_policy(layout: &Layout) -> String {
    format!(
        "[settings]\ndefault_tier = \"high\"\ndesktop_notifications = false\n\n[[rules]]\nname = \"writes in ok\"\n\
         tools = [\"write_file\"]\nargs = {{ \"/path\" = {{ glob = {} }} }}\naction = \"allow\"\n",
        toml_string(&glob_below(&layout.root.join("ok")))
    )
}

/// Something made from the layout of one run (each run has its own temporary folder).
type FromLayout<T> = Box<dyn Fn(&Layout) -> T>;

/// How the server is started: its folders, working folder, HOME, and the client's roots.
struct Setup {
    what: String,
    /// The name of the root folder inside the temporary folder.
    root_name: &'static str,
    /// Changes to the standard layout this setup needs.
    prepare: fn(&mut Layout),
    /// The server's command-line arguments.
    args: FromLayout<Vec<String>>,
    /// The working folder of toolgate, and so of the server (or of the server run directly).
    cwd: FromLayout<PathBuf>,
    home: FromLayout<PathBuf>,
    /// The client's answers to the server's `roots/list` requests, in turn; with any, the client
    /// declares the `roots` capability, waits until the server serves the root of the first,
    /// and then tells the server its roots changed once for each further answer.
    roots: Vec<FromLayout<Value>>,
}

impl Setup {
    /// `mcp-server-filesystem <root>`, started in `/` with a HOME of its own.
    fn plain() -> Setup {
        Setup {
            what: "mcp-server-filesystem <root>, working folder /".into(),
            root_name: "root",
            prepare: |_| {},
            args: Box::new(|l| vec![l.root.to_str().unwrap().to_owned()]),
            cwd: Box::new(|_| PathBuf::from("/")),
            home: Box::new(|l| l.top.join("home")),
            roots: Vec::new(),
        }
    }

    /// The server started with `<top>/other`, the client answering `roots/list` with `uri`
    /// (`{root}` and `{top}` replaced).
    fn with_root_uri(uri: &'static str) -> Setup {
        Setup {
            what: format!("mcp-server-filesystem <top>/other, client root {uri:?}"),
            args: Box::new(|l| vec![l.top.join("other").to_str().unwrap().to_owned()]),
            roots: vec![answer(move |l| json!([{ "uri": root_uri(uri, l), "name": "project" }]))],
            ..Setup::plain()
        }
    }
}

/// One answer to `roots/list`: its `roots`.
fn answer(roots: impl Fn(&Layout) -> Value + 'static) -> FromLayout<Value> {
    Box::new(roots)
}

fn root_uri(pattern: &str, l: &Layout) -> String {
    pattern.replace("{root}", l.root.to_str().unwrap()).replace("{top}", l.top.to_str().unwrap())
}

/// What the server does with an attack when asked directly: this exists on disk after it.
enum Landing {
    Exists(&'static str),
    Holds(&'static str, &'static str),
}

impl Landing {
    fn on(&self, layout: &Layout) -> bool {
        match self {
            Landing::Exists(rel) => std::fs::symlink_metadata(layout.at(rel)).is_ok(),
            Landing::Holds(rel, text) => std::fs::read_to_string(layout.at(rel)).is_ok_and(|t| t == *text),
        }
    }

    fn describe(&self) -> String {
        match self {
            Landing::Exists(rel) => format!("<root>/{rel:?} exists"),
            Landing::Holds(rel, text) => format!("<root>/{rel:?} holds {text:?}"),
        }
    }
}

/// How toolgate is to refuse a call.
enum Refusal {
    /// The deny rule of this name, for its reason.
    Rule(String),
    /// No rule lets it run, and no person can be asked.
    NoPerson,
}

/// One call, the place it lands when the server is asked directly, and how toolgate refuses it.
struct Attack {
    what: String,
    tool: &'static str,
    arguments: FromLayout<Value>,
    lands: Landing,
    refusal: Refusal,
    /// Changes to the standard layout this call needs.
    prepare: fn(&mut Layout),
}

impl Attack {
    fn write(what: &str, path: impl Fn(&Layout) -> String + 'static, lands: Landing) -> Attack {
        Attack {
            what: what.to_owned(),
            tool: "write_file",
            arguments: Box::new(move |l| json!({"path": path(l), "content": "pwned"})),
            lands,
            refusal: Refusal::Rule("writes in PROT".into()),
            prepare: |_| {},
        }
    }

    fn create_directory(what: &str, path: impl Fn(&Layout) -> String + 'static, lands: Landing) -> Attack {
        Attack {
            tool: "create_directory",
            arguments: Box::new(move |l| json!({"path": path(l)})),
            ..Attack::write(what, |_| String::new(), lands)
        }
    }

    fn edit(what: &str, path: impl Fn(&Layout) -> String + 'static, lands: Landing) -> Attack {
        Attack {
            tool: "edit_file",
            arguments: Box::new(
                move |l| json!({"path": path(l), "edits": [{"oldText": "secret", "newText": "pwned"}]}),
            ),
            ..Attack::write(what, |_| String::new(), lands)
        }
    }

    fn move_file(
        what: &str,
        source: impl Fn(&Layout) -> String + 'static,
        destination: impl Fn(&Layout) -> String + 'static,
        lands: Landing,
        rule: &str,
    ) -> Attack {
        Attack {
            tool: "move_file",
            arguments: Box::new(move |l| json!({"source": source(l), "destination": destination(l)})),
            refusal: Refusal::Rule(rule.to_owned()),
            ..Attack::write(what, |_| String::new(), lands)
        }
    }

    fn prepared(self, prepare: fn(&mut Layout)) -> Attack {
        Attack { prepare, ..self }
    }

    fn refused_as(self, refusal: Refusal) -> Attack {
        Attack { refusal, ..self }
    }
}

/// A path argument: `<root>/rel`, joined as text (see [`Layout::at`]).
fn at(rel: &'static str) -> impl Fn(&Layout) -> String + 'static {
    move |l| l.at(rel)
}

/// A path argument as it is written (relative, or with `~`), whatever the layout.
fn given(path: &'static str) -> impl Fn(&Layout) -> String + 'static {
    move |_| path.to_owned()
}

/// A client over a server's stdio (toolgate's, or the server's own), answering the server's
/// `roots/list` requests.
struct Client {
    peer: Peer,
    roots: Vec<Value>,
    /// How many `roots/list` requests were answered.
    answered: usize,
    next_id: i64,
}

impl Client {
    /// Starts the server as `setup` says, directly (`policy` `None`) or through toolgate, and
    /// initializes the session; with roots, waits until the server serves the client's.
    fn start(layout: &Layout, setup: &Setup, policy: Option<&str>) -> Client {
        let server = node_server("mcp-server-filesystem");
        let mut cmd = match policy {
            None => layout.env.command(&server),
            Some(text) => {
                let policy = policy_file(&layout.top.join("policy"), text);
                let mut cmd = layout.env.toolgate();
                cmd.arg("run").arg("--policy").arg(policy).arg("--audit").arg(layout.audit());
                cmd.args(["--name", "fs", "--"]).arg(&server);
                cmd
            }
        };
        cmd.args((setup.args)(layout)).current_dir((setup.cwd)(layout)).env("HOME", (setup.home)(layout));
        let roots: Vec<Value> = setup.roots.iter().map(|r| r(layout)).collect();
        let capabilities = if roots.is_empty() { json!({}) } else { json!({"roots": {"listChanged": true}}) };
        let mut client = Client { peer: Peer::start(cmd), roots, answered: 0, next_id: 1 };
        let init = client.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": capabilities, "clientInfo": {"name": "readings", "version": "0"}}),
        );
        assert!(init.get("result").is_some(), "{}: initialize failed: {init}", setup.what);
        client.peer.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        if !client.roots.is_empty() {
            let root = layout.root.to_str().unwrap().to_owned();
            eventually("the server serves the client's root", || client.allowed().contains(&root));
            while client.answered < client.roots.len() {
                client.peer.send(&json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}));
                let before = client.answered;
                while client.answered == before {
                    let message = client.peer.recv();
                    client.answer_server(&message);
                }
            }
        }
        client
    }

    /// Answers a request from the server; `false` for any other message.
    fn answer_server(&mut self, message: &Value) -> bool {
        let (Some(method), Some(id)) = (message["method"].as_str(), message.get("id")) else { return false };
        let answer = if method == "roots/list" {
            let roots = self.roots.get(self.answered).or(self.roots.last()).cloned().unwrap_or(json!([]));
            self.answered += 1;
            json!({"jsonrpc": "2.0", "id": id, "result": {"roots": roots}})
        } else {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "not offered"}})
        };
        self.peer.send(&answer);
        true
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self.peer.recv();
            if !self.answer_server(&message) && message["id"] == id {
                return message;
            }
        }
    }

    /// Calls a tool; returns the request id and the whole response.
    fn call(&mut self, tool: &str, arguments: Value) -> (i64, Value) {
        let id = self.next_id;
        (id, self.request("tools/call", json!({"name": tool, "arguments": arguments})))
    }

    /// The folders the server says it serves.
    fn allowed(&mut self) -> Vec<String> {
        let (_, answer) = self.call("list_allowed_directories", json!({}));
        let text = answer["result"]["content"][0]["text"].as_str().unwrap_or_default();
        text.lines().skip(1).map(str::to_owned).collect()
    }

    fn finish(mut self) {
        self.peer.close_stdin();
        self.peer.wait();
    }
}

fn text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"].as_str().unwrap_or_default()
}

fn succeeded(answer: &Value) -> bool {
    answer.get("result").is_some() && answer["result"]["isError"] != json!(true)
}

/// The audit log's decision on the request `id`.
fn decision(layout: &Layout, id: i64) -> Value {
    if !layout.audit().exists() {
        return Value::Null;
    }
    audit_decisions(&layout.audit()).into_iter().rev().find(|r| r["request_id"] == id).unwrap_or(Value::Null)
}

/// The parts of a decision record a failure message needs.
fn summary(record: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["tool", "arguments", "gate", "tier", "rules", "reason", "verdict", "decided_by", "note"] {
        if let Some(value) = record.get(key) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    Value::Object(out)
}

/// `<top>/rootlink` -> `<root>`.
fn root_link(layout: &mut Layout) {
    std::os::unix::fs::symlink(&layout.root, layout.top.join("rootlink")).unwrap();
}

/// The benign twin of the attacks: a write into `<root>/ok`, which must run through toolgate.
fn ok_write(what: &str, path: impl Fn(&Layout) -> String + 'static, lands: &'static str) -> Attack {
    Attack::write(what, path, Landing::Holds(lands, "pwned"))
}

/// For each setup and attack: the control (the server alone writes into the protected folder),
/// then toolgate (refused, nothing changed, the benign writes still land). Every failure is
/// collected, so one run names every value that got through.
fn refused_through_toolgate(setups: &[Setup], attacks: &[Attack], benign: &[Attack], policy: fn(&Layout) -> String) {
    let mut failures = Vec::new();
    for setup in setups {
        for attack in attacks {
            if let Err(why) = attack_once(setup, attack, benign, policy) {
                failures.push(format!("[{}] {} ({}): {why}", setup.what, attack.what, attack.tool));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n\n{}",
        failures.len(),
        setups.len() * attacks.len(),
        failures.join("\n\n")
    );
}

/// One attack made on a layout of its own.
struct Try {
    layout: Layout,
    /// What the protected folders held before the server started.
    before: BTreeMap<PathBuf, Entry>,
    client: Client,
    id: i64,
    arguments: Value,
    answer: Value,
}

impl Try {
    /// Lays out a fresh folder as `setup` and `attack` need it, starts the server on it (through
    /// toolgate under `policy`, or directly without one) and makes the attack's call.
    fn run(setup: &Setup, attack: &Attack, policy: Option<fn(&Layout) -> String>) -> Try {
        let mut layout = Layout::new(setup.root_name);
        (setup.prepare)(&mut layout);
        (attack.prepare)(&mut layout);
        let before = layout.snapshot();
        let policy = policy.map(|policy| policy(&layout));
        let mut client = Client::start(&layout, setup, policy.as_deref());
        let arguments = (attack.arguments)(&layout);
        let (id, answer) = client.call(attack.tool, arguments.clone());
        Try { layout, before, client, id, arguments, answer }
    }
}

fn attack_once(setup: &Setup, attack: &Attack, benign: &[Attack], policy: fn(&Layout) -> String) -> Result<(), String> {
    // 1. The server alone writes where the protected folder is.
    let Try { layout, before, client: server, arguments, answer, .. } = Try::run(setup, attack, None);
    server.finish();
    if !succeeded(&answer) || !attack.lands.on(&layout) || layout.snapshot() == before {
        return Err(format!(
            "CONTROL: asked directly, the server did not write into the protected folder \
             (expected {}); arguments {arguments}; it answered {answer}",
            attack.lands.describe()
        ));
    }

    // 2. Through toolgate it is refused and nothing changes.
    let Try { layout, before, client: mut gate, id, arguments, answer } = Try::run(setup, attack, Some(policy));
    let record = decision(&layout, id);
    let after = layout.snapshot();
    let landed = attack.lands.on(&layout);
    if landed || after != before {
        return Err(format!(
            "GOT THROUGH TOOLGATE: arguments {arguments}; {} after the call: {landed}; protected folder \
             changed: {}; toolgate answered {answer}; audit record {}",
            attack.lands.describe(),
            after != before,
            summary(&record)
        ));
    }
    let said = text(&answer);
    let (gate_was, by, says) = match &attack.refusal {
        Refusal::Rule(rule) => ("deny", "policy", [format!("(rule {rule:?})"), "is protected".to_owned()]),
        Refusal::NoPerson => {
            ("ask", "toolgate", ["needs a human's approval".to_owned(), "No person could be asked".to_owned()])
        }
    };
    let rules_ok = match &attack.refusal {
        Refusal::Rule(rule) => record["rules"] == json!([rule]),
        Refusal::NoPerson => true,
    };
    if answer["result"]["isError"] != json!(true)
        || !said.starts_with("toolgate ")
        || !says.iter().all(|s| said.contains(s.as_str()))
        || record["gate"] != gate_was
        || record["verdict"] != "refused"
        || record["decided_by"] != by
        || !rules_ok
    {
        return Err(format!(
            "not refused as expected (gate {gate_was}, by {by}, saying {says:?}): arguments {arguments}; \
             toolgate answered {answer}; audit record {}",
            summary(&record)
        ));
    }

    // 3. Writes into `ok` still run.
    for write in benign {
        let arguments = (write.arguments)(&layout);
        let (id, answer) = gate.call(write.tool, arguments.clone());
        if !succeeded(&answer) || !write.lands.on(&layout) {
            return Err(format!(
                "the benign call {} did not run through toolgate ({} expected): arguments {arguments}; \
                 toolgate answered {answer}; audit record {}",
                write.what,
                write.lands.describe(),
                summary(&decision(&layout, id))
            ));
        }
    }
    gate.finish();
    Ok(())
}

fn plain_ok_write() -> Vec<Attack> {
    vec![ok_write("a write into ok", at("ok/fine.txt"), "ok/fine.txt")]
}

#[test]
fn a_newline_in_a_path_is_refused() {
    let attacks = [
        Attack::write("a newline at the end of the name", at("PROT/x\n"), Landing::Exists("PROT/x\n")),
        Attack::write("a newline at the start of the name", at("PROT/\nx"), Landing::Exists("PROT/\nx")),
        Attack::write("CR LF at the end", at("PROT/x\r\n"), Landing::Exists("PROT/x\r\n")),
        Attack::write("a newline segment that .. takes back", at("ok\n/../PROT/y"), Landing::Exists("PROT/y")),
        Attack::write("a name that is only a newline", at("PROT/sub/\n"), Landing::Exists("PROT/sub/\n")),
    ];
    let benign = [ok_write("a newline in ok", at("ok/x\n"), "ok/x\n")];
    refused_through_toolgate(&[Setup::plain()], &attacks, &benign, deny_policy);
}

#[test]
fn backslash_segments_are_refused() {
    // On Linux `\` is part of a name: these are files inside PROT, whatever `\..` looks like.
    let attacks = [
        Attack::write(
            "backslash dot-dot segments",
            at("PROT/x\\..\\..\\elsewhere.sh"),
            Landing::Exists("PROT/x\\..\\..\\elsewhere.sh"),
        ),
        Attack::write("a name made of backslash dot-dots", at("PROT/..\\..\\y"), Landing::Exists("PROT/..\\..\\y")),
        Attack::write(
            "backslashes that would climb out of a subfolder",
            at("PROT/sub/z\\..\\..\\..\\ok\\z"),
            Landing::Exists("PROT/sub/z\\..\\..\\..\\ok\\z"),
        ),
    ];
    let benign = [ok_write("a backslash in ok", at("ok/y\\z"), "ok/y\\z")];
    refused_through_toolgate(&[Setup::plain()], &attacks, &benign, deny_policy);
}

fn relative_attacks() -> Vec<Attack> {
    vec![
        Attack::write("PROT/x", given("PROT/x"), Landing::Exists("PROT/x")),
        Attack::write("./PROT/y", given("./PROT/y"), Landing::Exists("PROT/y")),
        Attack::write("ok/../PROT/z", given("ok/../PROT/z"), Landing::Exists("PROT/z")),
        Attack::write("ok/link/w through the symlink", given("ok/link/w"), Landing::Exists("PROT/w")),
        Attack::create_directory("PROT/new", given("PROT/new"), Landing::Exists("PROT/new")),
    ]
}

fn relative_ok_writes() -> Vec<Attack> {
    let mut benign = plain_ok_write();
    benign.push(ok_write("a relative write into ok", given("ok/relative.txt"), "ok/relative.txt"));
    benign
}

#[test]
fn a_path_relative_to_the_allowed_folder_is_refused() {
    // toolgate (and so the server) works in `/` or in the root's parent, never in the root: a
    // relative path means the root only because the server resolves it against its folder.
    let relative_arg = Setup {
        what: "mcp-server-filesystem root, working folder <top>".into(),
        args: Box::new(|_| vec!["root".into()]),
        cwd: Box::new(|l| l.top.clone()),
        ..Setup::plain()
    };
    let linked_arg = Setup {
        what: "mcp-server-filesystem <top>/rootlink (-> <root>), working folder /".into(),
        prepare: root_link,
        args: Box::new(|l| vec![l.top.join("rootlink").to_str().unwrap().to_owned()]),
        ..Setup::plain()
    };
    let setups = [Setup::plain(), relative_arg, linked_arg];
    refused_through_toolgate(&setups, &relative_attacks(), &relative_ok_writes(), deny_policy);
}

#[test]
fn a_path_relative_to_a_tilde_folder_on_the_command_line_is_refused() {
    // A client's configuration passes arguments without a shell, so `~` reaches the server, which
    // expands it with its HOME: `"args": ["~"]` serves the home folder.
    let tilde = Setup {
        what: "mcp-server-filesystem ~ with HOME=<root>, working folder /".into(),
        args: Box::new(|_| vec!["~".into()]),
        home: Box::new(|l| l.root.clone()),
        ..Setup::plain()
    };
    let tilde_slash = Setup {
        what: "mcp-server-filesystem ~/root with HOME=<top>, working folder /".into(),
        args: Box::new(|_| vec!["~/root".into()]),
        home: Box::new(|l| l.top.clone()),
        ..Setup::plain()
    };
    refused_through_toolgate(&[tilde, tilde_slash], &relative_attacks(), &relative_ok_writes(), deny_policy);
}

#[test]
fn a_path_relative_to_a_command_line_folder_with_trailing_whitespace_is_refused() {
    // server-filesystem trims whitespace (and a trailing quote) from the folders it is given.
    let spaced = Setup {
        what: "mcp-server-filesystem '<root> ' (a trailing space), working folder /".into(),
        args: Box::new(|l| vec![format!("{} ", l.root.to_str().unwrap())]),
        ..Setup::plain()
    };
    let newline = Setup {
        what: "mcp-server-filesystem '<root>\\n' (a trailing newline), working folder /".into(),
        args: Box::new(|l| vec![format!("{}\n", l.root.to_str().unwrap())]),
        ..Setup::plain()
    };
    refused_through_toolgate(&[spaced, newline], &relative_attacks(), &relative_ok_writes(), deny_policy);
}

#[test]
fn a_path_relative_to_a_command_line_folder_named_like_an_option_is_refused() {
    // server-filesystem has no options: every argument is a folder, `-served` too.
    let dashed = Setup {
        what: "mcp-server-filesystem -served, working folder <top>".into(),
        root_name: "-served",
        args: Box::new(|_| vec!["-served".into()]),
        cwd: Box::new(|l| l.top.clone()),
        ..Setup::plain()
    };
    refused_through_toolgate(&[dashed], &relative_attacks(), &relative_ok_writes(), deny_policy);
}

#[test]
fn a_tilde_path_is_read_with_the_servers_home() {
    // HOME is toolgate's, which the server inherits; it is the root here, never the real home.
    let home_is_root =
        Setup { what: "HOME=<root>, working folder /".into(), home: Box::new(|l| l.root.clone()), ..Setup::plain() };
    let attacks = [
        Attack::write("~/PROT/x", given("~/PROT/x"), Landing::Exists("PROT/x")),
        Attack::write("~/ok/../PROT/y", given("~/ok/../PROT/y"), Landing::Exists("PROT/y")),
        Attack::write("~/ok/link/z through the symlink", given("~/ok/link/z"), Landing::Exists("PROT/z")),
        Attack::create_directory("~/PROT/new", given("~/PROT/new"), Landing::Exists("PROT/new")),
        Attack::move_file(
            "~/ok/a.txt to ~/PROT/a.txt",
            given("~/ok/a.txt"),
            given("~/PROT/a.txt"),
            Landing::Exists("PROT/a.txt"),
            INTO,
        ),
    ];
    let mut benign = plain_ok_write();
    benign.push(ok_write("~/ok/home.txt", given("~/ok/home.txt"), "ok/home.txt"));
    refused_through_toolgate(&[home_is_root], &attacks, &benign, deny_policy);
}

/// Writes through the layout's symlinks, each landing in PROT.
fn writes_through_symlinks() -> Vec<Attack> {
    vec![
        Attack::write("ok/link/x, link -> PROT", at("ok/link/x"), Landing::Exists("PROT/x")),
        Attack::write("ok/deep/y, deep -> PROT/sub", at("ok/deep/y"), Landing::Exists("PROT/sub/y")),
        Attack::write("ok/flink, flink -> PROT/secret.txt", at("ok/flink"), Landing::Holds("PROT/secret.txt", "pwned")),
    ]
}

#[test]
fn symlinks_into_the_protected_folder_are_refused() {
    let mut attacks = writes_through_symlinks();
    attacks.extend([
        Attack::edit("ok/flink, flink -> PROT/secret.txt", at("ok/flink"), Landing::Holds("PROT/secret.txt", "pwned")),
        Attack::create_directory("ok/link/new", at("ok/link/new"), Landing::Exists("PROT/new")),
        Attack::write("ok/./link//x2", at("ok/./link//x2"), Landing::Exists("PROT/x2")),
        // A symlink source is moved as what it resolves to: the file leaves PROT.
        Attack::move_file(
            "ok/flink (-> PROT/secret.txt) to ok/stolen",
            at("ok/flink"),
            at("ok/stolen"),
            Landing::Holds("ok/stolen", "secret"),
            OUT_OF,
        ),
    ]);
    refused_through_toolgate(&[Setup::plain()], &attacks, &plain_ok_write(), deny_policy);
}

#[test]
fn dot_dot_after_a_symlink_is_lexical_to_server_filesystem() {
    // Not an attack on this server: Node's path.resolve takes `deep/..` back before the disk is
    // looked at, so `ok/deep/../y` (deep -> PROT/sub) writes `ok/y`, not `PROT/y` as the kernel
    // would. Should the server start resolving `..` after symlinks physically, this fails, and
    // the value belongs with the attacks above.
    let layout = Layout::new("root");
    let before = layout.snapshot();
    let mut server = Client::start(&layout, &Setup::plain(), None);
    let (_, answer) = server.call("write_file", json!({"path": layout.at("ok/deep/../y"), "content": "here"}));
    server.finish();
    assert!(succeeded(&answer), "{answer}");
    assert_eq!(std::fs::read_to_string(layout.root.join("ok/y")).unwrap(), "here");
    assert!(!layout.root.join("PROT/y").exists() && !layout.root.join("PROT/sub/y").exists());
    assert_eq!(layout.snapshot(), before);
}

/// The protected folder `<root>/Café`, its name in NFC on disk and in the policy.
fn cafe_in_nfc(layout: &mut Layout) {
    let cafe = layout.root.join(CAFE_NFC);
    std::fs::create_dir(&cafe).unwrap();
    layout.protected.push(cafe);
}

#[test]
fn unicode_equivalent_names_are_refused() {
    // server-filesystem matches an existing name by NFC: `Cafe\u{301}` (NFD) opens `Café` (NFC).
    let attacks = [
        Attack::write("<root>/Cafe\\u{301}/x", |l| l.at(&format!("{CAFE_NFD}/x")), Landing::Exists("Caf\u{e9}/x")),
        Attack::write("Cafe\\u{301}/y, relative", |_| format!("{CAFE_NFD}/y"), Landing::Exists("Caf\u{e9}/y")),
        Attack::write(
            "<root>/ok/../Cafe\\u{301}/z",
            |l| l.at(&format!("ok/../{CAFE_NFD}/z")),
            Landing::Exists("Caf\u{e9}/z"),
        ),
        Attack::create_directory(
            "<root>/Cafe\\u{301}/new",
            |l| l.at(&format!("{CAFE_NFD}/new")),
            Landing::Exists("Caf\u{e9}/new"),
        ),
        Attack::move_file(
            "ok/a.txt to <root>/Cafe\\u{301}/a.txt",
            at("ok/a.txt"),
            |l| l.at(&format!("{CAFE_NFD}/a.txt")),
            Landing::Exists("Caf\u{e9}/a.txt"),
            INTO,
        ),
    ]
    .map(|a| {
        let Refusal::Rule(rule) = &a.refusal else { unreachable!("every value here is denied") };
        let rule = rule.replace("PROT", CAFE_NFC);
        a.refused_as(Refusal::Rule(rule)).prepared(cafe_in_nfc)
    });
    let benign = [ok_write("an NFD name in ok", |l| l.at(&format!("ok/{CAFE_NFD}")), "ok/Cafe\u{301}")];
    refused_through_toolgate(&[Setup::plain()], &attacks, &benign, deny_policy);
}

/// `<root>/ñ` (NFC) holding `li\u{301}nk` (NFD) -> `<root>/PROT`: names a Linux tool and a macOS
/// one may well have made side by side.
fn symlink_behind_mixed_forms(layout: &mut Layout) {
    let folder = layout.root.join("\u{f1}");
    std::fs::create_dir(&folder).unwrap();
    std::os::unix::fs::symlink(layout.root.join("PROT"), folder.join("li\u{301}nk")).unwrap();
}

#[test]
fn a_symlink_behind_names_in_mixed_unicode_forms_is_refused() {
    // The server matches each name by NFC on its own, then follows the symlink; a reading that
    // puts the whole path in one form finds `ñ` or `línk` on disk, never both.
    let attacks = [
        Attack::write("<root>/ñ/línk/x, all NFC", at("\u{f1}/l\u{ed}nk/x"), Landing::Exists("PROT/x")),
        Attack::write("<root>/ñ/línk/y, all NFD", at("n\u{303}/li\u{301}nk/y"), Landing::Exists("PROT/y")),
        Attack::write("ñ/línk/z, relative, all NFC", given("\u{f1}/l\u{ed}nk/z"), Landing::Exists("PROT/z")),
    ]
    .map(|a| a.prepared(symlink_behind_mixed_forms));
    refused_through_toolgate(&[Setup::plain()], &attacks, &plain_ok_write(), deny_policy);
}

fn root_attacks() -> Vec<Attack> {
    vec![
        Attack::write("PROT/x", given("PROT/x"), Landing::Exists("PROT/x")),
        Attack::write("ok/../PROT/y", given("ok/../PROT/y"), Landing::Exists("PROT/y")),
        Attack::create_directory("PROT/new", given("PROT/new"), Landing::Exists("PROT/new")),
    ]
}

#[test]
fn a_path_relative_to_the_clients_root_is_refused() {
    // The client declares `roots`; server-filesystem asks for them after initialization and serves
    // them in place of its command-line folder (`<top>/other`), so `PROT/x` is `<root>/PROT/x`.
    let mut setups = ["file://{root}", "file://localhost{root}", "file://{top}/r%6Fot", "file://{top}/other/../root"]
        .map(Setup::with_root_uri)
        .into_iter()
        .collect::<Vec<_>>();
    setups.push(Setup { prepare: root_link, ..Setup::with_root_uri("file://{top}/rootlink") });
    refused_through_toolgate(&setups, &root_attacks(), &relative_ok_writes(), deny_policy);
}

#[test]
fn a_path_relative_to_a_root_uri_as_node_parses_it_is_refused() {
    // Node's URL parser (WHATWG) lower-cases the host and drops `localhost`, ignores the query
    // and the fragment, reads `\` as `/` in a file: URL and removes tabs and newlines; each of
    // these roots is `<root>` to the server.
    let setups = [
        "file://LOCALHOST{root}",
        "file://{root}?project=1",
        "file://{root}#top",
        "file://{top}\\root",
        "file://{top}/ro\tot",
        "file://{top}/ro\not",
    ]
    .map(Setup::with_root_uri);
    refused_through_toolgate(&setups, &root_attacks(), &relative_ok_writes(), deny_policy);
}

#[test]
fn a_root_answer_the_server_ignores_does_not_hide_the_root_it_serves() {
    // server-filesystem keeps the folders it serves when the client's new roots have no folder it
    // can use (none at all, or none that exists): the first root stays the base of relative paths.
    let setups = [
        ("no roots", json!([])),
        ("a root that does not exist", json!([{"uri": "file:///nonexistent/toolgate-test-root"}])),
    ]
    .map(|(what, later)| Setup {
        what: format!("client root file://<root>, then {what}"),
        roots: vec![
            answer(|l| json!([{"uri": format!("file://{}", l.root.display())}])),
            answer(move |_| later.clone()),
        ],
        ..Setup::with_root_uri("file://{root}")
    });
    refused_through_toolgate(&setups, &root_attacks(), &relative_ok_writes(), deny_policy);
}

/// The protected folder not made yet: creating it is what is refused.
fn without_prot(layout: &mut Layout) {
    std::fs::remove_dir_all(layout.root.join("PROT")).unwrap();
}

#[test]
fn the_protected_folder_itself_is_refused() {
    // A deny on `<root>/PROT/**` takes in `<root>/PROT`: making it, moving something to its
    // place, and moving it away.
    let mut attacks = Vec::from(
        [
            Attack::create_directory("<root>/PROT", at("PROT"), Landing::Exists("PROT")),
            Attack::create_directory("<root>/PROT/", at("PROT/"), Landing::Exists("PROT")),
            Attack::create_directory("<root>/ok/../PROT", at("ok/../PROT"), Landing::Exists("PROT")),
            Attack::create_directory("PROT, relative", given("PROT"), Landing::Exists("PROT")),
            Attack::move_file("ok/dir to <root>/PROT", at("ok/dir"), at("PROT"), Landing::Exists("PROT"), INTO),
        ]
        .map(|a| a.prepared(without_prot)),
    );
    // The server moves what a symlink source resolves to: the folder itself.
    attacks.extend([("<root>/PROT", "PROT"), ("<root>/PROT/", "PROT/"), ("ok/link (-> PROT)", "ok/link")].map(
        |(what, source)| {
            let lands = Landing::Exists("ok/moved/secret.txt");
            Attack::move_file(&format!("{what} to ok/moved"), at(source), at("ok/moved"), lands, OUT_OF)
        },
    ));
    refused_through_toolgate(&[Setup::plain()], &attacks, &plain_ok_write(), deny_policy);
}

#[test]
fn move_file_into_the_protected_folder_is_refused() {
    // What moves where, and where the server puts it.
    let mut attacks = Vec::from(
        [
            ("ok/a.txt to PROT/a.txt", "ok/a.txt", "PROT/a.txt", "PROT/a.txt"),
            ("ok/a.txt to ok/link/b.txt", "ok/a.txt", "ok/link/b.txt", "PROT/b.txt"),
            ("ok/dir to PROT/dir", "ok/dir", "PROT/dir", "PROT/dir"),
            ("ok/a.txt to PROT/x\\n", "ok/a.txt", "PROT/x\n", "PROT/x\n"),
        ]
        .map(|(what, source, destination, lands)| {
            Attack::move_file(what, at(source), at(destination), Landing::Exists(lands), INTO)
        }),
    );
    attacks.push(Attack::move_file(
        "ok/a.txt to PROT/c.txt, relative",
        given("ok/a.txt"),
        given("PROT/c.txt"),
        Landing::Exists("PROT/c.txt"),
        INTO,
    ));
    let benign = [Attack::move_file(
        "ok/a.txt to ok/b.txt",
        at("ok/a.txt"),
        at("ok/b.txt"),
        Landing::Holds("ok/b.txt", "a"),
        INTO,
    )];
    refused_through_toolgate(&[Setup::plain()], &attacks, &benign, deny_policy);
}

#[test]
fn an_allow_rule_applies_only_under_every_reading() {
    // `default_tier = "high"` and an allow rule on `<root>/ok/**`: a write that is inside `ok` as
    // written but inside PROT on the server's disk is not allowed, so it needs a person, and with
    // none to ask it is refused.
    let mut attacks = writes_through_symlinks();
    attacks.push(Attack::write(
        "ok/link/\\n, a newline name through the symlink",
        at("ok/link/\n"),
        Landing::Exists("PROT/\n"),
    ));
    let attacks: Vec<Attack> = attacks.into_iter().map(|a| a.refused_as(Refusal::NoPerson)).collect();
    let benign = [
        ok_write("ok/a2.txt", at("ok/a2.txt"), "ok/a2.txt"),
        ok_write("ok/a.txt, overwritten", at("ok/a.txt"), "ok/a.txt"),
    ];
    refused_through_toolgate(&[Setup::plain()], &attacks, &benign, allow_policy);
}
