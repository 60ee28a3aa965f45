//! Micro-benchmarks: framing and strict parsing, tools/call params, and policy decisions.
//!
//! Run: `cargo bench --bench decide` (numbers in the README).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use toolgate::policy::{Call, Policy};
use toolgate::wire::{CallToolParams, envelope};

const SMALL: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/home/me/project/src/main.rs"},"_meta":{"progressToken":7}}}"#;

fn large() -> String {
    let text = "x".repeat(1 << 20);
    json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}}).to_string()
}

/// A policy of `n` rules: tool globs, server globs, argument regexes and path globs.
pub fn policy(n: usize) -> String {
    let mut text = String::from("[settings]\ndefault_tier = \"high\"\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[rules]]\nname = \"rule {i}\"\ntools = [\"tool_{i}_*\", \"other_{i}\"]\nservers = [\"srv-{}*\"]\n\
             args = {{ \"/path\" = {{ glob = \"/data/{i}/**\" }}, \"/to\" = {{ not_regex = \"@corp{i}\\\\.example$\" }} }}\n\
             tier = \"{}\"\n",
            i % 7,
            ["low", "medium", "high"][i % 3]
        ));
    }
    // The rules that match the benchmarked call, at the end of the file.
    text.push_str(
        "[[rules]]\nname = \"reads\"\ntools = [\"read_*\"]\ntier = \"low\"\n\
         [[rules]]\nname = \"outside\"\ntools = [\"read_file\"]\nargs = { \"/path\" = { not_glob = \"/home/me/project/**\" } }\ntier = \"high\"\n\
         [[rules]]\nname = \"secrets\"\ntools = [\"read_*\"]\nargs = { \"/path\" = { regex = '(^|/)\\.(env|ssh)' } }\naction = \"deny\"\n",
    );
    text
}

fn parsing(c: &mut Criterion) {
    let mut line = SMALL.as_bytes().to_vec();
    line.push(b'\n');
    c.bench_function("parse/small tools/call envelope", |b| b.iter(|| envelope::parse(black_box(&line), 64)));
    let env = envelope::parse(&line, 64).unwrap();
    let params = &SMALL[env.params.clone().unwrap()];
    c.bench_function("parse/tools/call params", |b| b.iter(|| CallToolParams::parse(Some(black_box(params)))));
    let big = large().into_bytes();
    c.bench_function("parse/1 MiB result envelope", |b| b.iter(|| envelope::parse(black_box(&big), 64)));
}

fn deciding(c: &mut Criterion) {
    let args: Map<String, Value> = json!({"path": "/home/me/project/src/main.rs"}).as_object().cloned().unwrap();
    for n in [10, 100, 1000] {
        let p = Policy::from_toml(&policy(n), "bench.toml").unwrap();
        let call = Call { server: "srv-3", tool: "read_file", arguments: &args, annotations: None, confidence: None };
        assert_eq!(p.decide(&call).matched.len(), 1);
        c.bench_function(&format!("decide/{n} rules"), |b| b.iter(|| p.decide(black_box(&call))));
    }
    let text = policy(1000);
    c.bench_function("load/1000-rule policy", |b| {
        b.iter(|| Policy::from_toml(black_box(&text), "bench.toml").unwrap())
    });
}

criterion_group!(benches, parsing, deciding);
criterion_main!(benches);
