//! Micro-benchmarks: framing, strict parsing and envelopes of small and large messages,
//! `tools/call` params, policy decisions against 10 / 100 / 1,000 rules, policy loading, and
//! the two audit records every allowed call costs.
//!
//! Run: `cargo bench --bench decide` (all), or a group: `cargo bench --bench decide -- decide/`.
//! Numbers are in docs/reference/performance.md.
//!
//! Extending: a new kind of rule goes into [`rule`] (every generated policy gets it, and the
//! load benchmark with it); a new kind of call goes into [`CASES`] (it is decided against every
//! policy size). Every case states how many rules it must match, so a policy change that makes
//! a case match nothing (and so measure nothing) fails the benchmark run instead of speeding
//! it up.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use toolgate::policy::{Call, Policy};
use toolgate::wire::{CallToolParams, LineReader, envelope, strict};

const SMALL: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/home/me/project/src/main.rs"},"_meta":{"progressToken":7}}}"#;
const DEPTH: usize = toolgate::wire::DEFAULT_MAX_DEPTH;
const MAX_LINE: usize = toolgate::wire::DEFAULT_MAX_MESSAGE_BYTES;
const SIZES: [usize; 3] = [10, 100, 1000];

/// A 1 MiB tool result: one long text, as a file read returns it.
fn large() -> String {
    let text = "x".repeat(1 << 20);
    json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}}).to_string()
}

/// A 1 MiB tool result of many small objects: the worst case for the duplicate-key check.
fn large_structured() -> String {
    let rows: Vec<Value> = (0..18_000)
        .map(|i| json!({"name": format!("file_{i}.rs"), "size": i * 31, "kind": "file", "mode": 420}))
        .collect();
    let text = json!({"jsonrpc": "2.0", "id": 1, "result": {"structuredContent": {"entries": rows}}}).to_string();
    assert!((1 << 20..5 << 18).contains(&text.len()), "{}", text.len());
    text
}

/// Rule `i` of a generated policy: tool globs, server globs, argument regexes and path globs,
/// none of which match the calls in [`CASES`]. Add new kinds of conditions here.
fn rule(i: usize) -> String {
    format!(
        "[[rules]]\nname = \"rule {i}\"\ntools = [\"tool_{i}_*\", \"other_{i}\"]\nservers = [\"srv-{}*\"]\n\
         args = {{ \"/path\" = {{ glob = \"/data/{i}/**\" }}, \"/to\" = {{ not_regex = \"@corp{i}\\\\.example$\" }} }}\n\
         tier = \"{}\"\n",
        i % 7,
        ["low", "medium", "high"][i % 3]
    )
}

/// A policy of `n` generated rules, then the few rules the benchmarked calls meet.
pub fn policy(n: usize) -> String {
    let mut text = String::from("[settings]\ndefault_tier = \"high\"\n");
    for i in 0..n {
        text.push_str(&rule(i));
    }
    text.push_str(
        "[[rules]]\nname = \"reads\"\ntools = [\"read_*\"]\ntier = \"low\"\n\
         [[rules]]\nname = \"outside\"\ntools = [\"read_file\"]\nargs = { \"/path\" = { not_glob = \"/home/me/project/**\" } }\ntier = \"high\"\n\
         [[rules]]\nname = \"secrets\"\ntools = [\"read_*\"]\nargs = { \"/path\" = { regex = '(^|/)\\.(env|ssh)' } }\naction = \"deny\"\n",
    );
    text
}

/// A call to decide: label, server, tool, arguments, and how many rules it must match.
struct Case {
    label: &'static str,
    server: &'static str,
    tool: &'static str,
    arguments: fn() -> Value,
    matches: usize,
}

const CASES: &[Case] = &[
    Case {
        label: "read inside the project",
        server: "srv-3",
        tool: "read_file",
        arguments: || json!({"path": "/home/me/project/src/main.rs"}),
        matches: 1,
    },
    Case {
        label: "read of a secret outside",
        server: "srv-3",
        tool: "read_file",
        arguments: || json!({"path": "/home/me/.ssh/id_ed25519"}),
        matches: 3,
    },
    Case { label: "tool no rule names", server: "fs", tool: "launch_rocket", arguments: || json!({}), matches: 0 },
];

fn framing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut g = c.benchmark_group("frame");
    // 1,000 small lines in one stream, as a pipelined client sends them.
    let stream: Vec<u8> = (0..1000).flat_map(|_| SMALL.bytes().chain([b'\n'])).collect();
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000 small lines", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut reader = LineReader::new(black_box(&stream[..]), MAX_LINE);
                while let Some(frame) = reader.next().await.unwrap() {
                    black_box(frame);
                }
            })
        })
    });
    let big = [large().into_bytes(), vec![b'\n']].concat();
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("1 MiB line", |b| {
        b.iter(|| rt.block_on(async { LineReader::new(black_box(&big[..]), MAX_LINE).next().await.unwrap() }))
    });
    g.finish();
}

fn parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    let small = [SMALL.as_bytes(), b"\n"].concat();
    let big = large().into_bytes();
    let structured = large_structured().into_bytes();
    for (name, line) in
        [("small tools/call", &small), ("1 MiB text result", &big), ("1 MiB structured result", &structured)]
    {
        g.throughput(Throughput::Bytes(line.len() as u64));
        g.bench_with_input(BenchmarkId::new("strict check", name), line, |b, line| {
            b.iter(|| strict::check(black_box(line), DEPTH).unwrap().len())
        });
        g.bench_with_input(BenchmarkId::new("strict check + envelope", name), line, |b, line| {
            b.iter(|| envelope::parse(black_box(line), DEPTH).unwrap())
        });
    }
    let env = envelope::parse(&small, DEPTH).unwrap();
    let params = &SMALL[env.params.clone().unwrap()];
    g.throughput(Throughput::Elements(1));
    g.bench_function("tools/call params", |b| b.iter(|| CallToolParams::parse(Some(black_box(params))).unwrap()));
    g.finish();
}

fn deciding(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    for n in SIZES {
        let policy = Policy::from_toml(&policy(n), "bench.toml").unwrap();
        for case in CASES {
            let arguments: Map<String, Value> = (case.arguments)().as_object().cloned().unwrap();
            let call = Call::new(case.server, case.tool, &arguments);
            let matched = policy.decide(&call).matched.len();
            assert_eq!(matched, case.matches, "{}: the policy no longer matches as the case expects", case.label);
            g.bench_with_input(BenchmarkId::new(case.label, format!("{n} rules")), &call, |b, call| {
                b.iter(|| policy.decide(black_box(call)))
            });
        }
    }
    g.finish();
}

fn loading(c: &mut Criterion) {
    let mut g = c.benchmark_group("load");
    g.sample_size(20);
    for n in SIZES {
        let text = policy(n);
        g.bench_with_input(BenchmarkId::new("policy", format!("{n} rules")), &text, |b, text| {
            // The previous policy is dropped outside the timing: loading is what is measured.
            b.iter_with_large_drop(|| Policy::from_toml(black_box(text), "bench.toml").unwrap())
        });
    }
    g.finish();
}

/// The audit records of one allowed call, written to a real file as `toolgate run` does.
fn auditing(c: &mut Criterion) {
    use toolgate::audit::{AuditLog, DecidedBy, DecisionRecord, Outcome, Verdict};
    use toolgate::decided::DecidedCall;
    use toolgate::policy::{Gate, Matched, Tier};
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(&dir.path().join("audit.jsonl"));
    let arguments: Map<String, Value> = json!({"path": "notes/todo.txt"}).as_object().cloned().unwrap();
    let call = DecidedCall {
        server: "demo-server".into(),
        tool: "read_file".into(),
        arguments,
        gate: Gate::Allow,
        tier: Tier::Low,
        matched: vec![Matched {
            rule: "reads".into(),
            gate: None,
            tier: Some(Tier::Low),
            reason: None,
            some_readings: false,
        }],
        reason: None,
        policy: Some("sha256:0123456789abcdef".into()),
        confidence: None,
    };
    let record = DecisionRecord {
        call: &call,
        edited_arguments: None,
        request_id: json!(1),
        verdict: Verdict::Forwarded,
        decided_by: DecidedBy::Policy,
        channel: None,
        note: None,
        waited_ms: 0,
    };
    let mut g = c.benchmark_group("audit");
    g.bench_function("decision record", |b| b.iter(|| log.decision(black_box(&record)).unwrap()));
    g.bench_function("outcome record", |b| {
        b.iter(|| log.outcome(black_box(1), Outcome::Ok, std::time::Duration::from_micros(15)))
    });
    g.finish();
}

/// A call's arguments against its tool's input schema (`[settings] arguments`), as the Python SDK
/// lists a tool with a nested model, and the decision on the readings that schema leaves.
fn conforming(c: &mut Criterion) {
    use toolgate::conformity::{Tools, Verdict};
    use toolgate::policy::reading::{Context, Local};
    let mut g = c.benchmark_group("conformity");
    let schema = json!({
        "type": "object",
        "properties": {
            "path": {"title": "Path", "type": "string"},
            "options": {"$ref": "#/$defs/Options"},
            "amount": {"anyOf": [{"type": "number"}, {"type": "string"}], "title": "Amount"}
        },
        "required": ["path", "options"],
        "$defs": {"Options": {"type": "object", "properties": {"recursive": {"type": "boolean"}, "depth": {"type": "integer"}}}}
    });
    let mut tools = Tools::default();
    tools.learn(&[json!({"name": "wipe", "inputSchema": schema})], true, true);
    let mut arguments: Map<String, Value> =
        json!({"path": "/home/me/project/build", "options": {"recursive": true, "depth": 3}, "amount": 12.5})
            .as_object()
            .cloned()
            .unwrap();
    assert!(matches!(tools.check("wipe", &mut arguments), Verdict::Conforms(_)));
    g.bench_function("check a small call", |b| b.iter(|| tools.check(black_box("wipe"), &mut arguments)));
    let mut wrong: Map<String, Value> =
        json!({"path": "/x", "options": "{\"recursive\": \"yes\"}"}).as_object().cloned().unwrap();
    g.bench_function("check a call that does not conform", |b| b.iter(|| tools.check(black_box("wipe"), &mut wrong)));
    let policy = Policy::from_toml(
        "[[rules]]\nname = \"no recursive wipes\"\ntools = [\"wipe\"]\nargs = { \"/options/recursive\" = { equals = true } }\naction = \"deny\"\n\
         [[rules]]\nname = \"project\"\ntools = [\"wipe\"]\nargs = { \"/path\" = { not_glob = \"/home/me/project/**\" } }\ntier = \"high\"\n\
         [[rules]]\nname = \"big\"\ntools = [\"wipe\"]\nargs = { \"/amount\" = { gt = 1000 } }\naction = \"queue\"\n",
        "bench.toml",
    )
    .unwrap();
    let text = Value::Object(arguments.clone()).to_string();
    let Verdict::Conforms(listed) = tools.check("wipe", &mut arguments) else { unreachable!() };
    for (label, schema) in [("decide with the schema", Some(&*listed)), ("decide without a schema", None)] {
        let cx = Context { schema, text: Some(&text), place: &Local };
        let call = Call::new("fs", "wipe", &arguments).with_context(cx);
        g.bench_function(label, |b| b.iter(|| policy.decide(black_box(&call))));
    }
    g.finish();
}

criterion_group!(benches, framing, parsing, deciding, loading, auditing, conforming);
criterion_main!(benches);
