//! Large messages: the strict check (and envelope) of an object with 100k and 1M keys and of a
//! 64 MiB and a 127 MiB string, each next to serde_json's own parse of the same bytes into a
//! `Value` and into `IgnoredAny` (a walk that keeps nothing); and the whole `tools/call` round
//! trip of such messages through the release binary, next to the same server without toolgate.
//!
//! Run: `cargo bench --bench large` (on a 2-core machine,
//! `CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 cargo bench --bench large`
//! builds in a sane time). Numbers are in docs/reference/performance.md. A group: `-- parse/` or `-- round-trip/`.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use toolgate::wire::{envelope, strict};

const DEPTH: usize = toolgate::wire::DEFAULT_MAX_DEPTH;

/// A `tools/call` to `write_file` whose arguments are a path and `keys` more keys.
fn many_keys(keys: usize) -> Vec<u8> {
    let mut line = String::from(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"notes/a.txt""#,
    );
    for i in 0..keys {
        line.push_str(&format!(r#","key_{i:07}":{i}"#));
    }
    line.push_str("}}}\n");
    line.into_bytes()
}

/// A `tools/call` to `write_file` whose `content` is a string of `len` bytes.
fn long_string(len: usize) -> Vec<u8> {
    let mut line = String::with_capacity(len + 200);
    line.push_str(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"notes/a.txt","content":""#,
    );
    line.extend(std::iter::repeat_n('x', len));
    line.push_str("\"}}}\n");
    line.into_bytes()
}

fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let messages = vec![
        ("100k keys", many_keys(100_000)),
        ("1M keys", many_keys(1_000_000)),
        ("64 MiB string", long_string(64 << 20)),
        ("127 MiB string", long_string(127 << 20)),
    ];
    for (_, line) in &messages {
        assert!(line.len() < toolgate::wire::DEFAULT_MAX_MESSAGE_BYTES, "{}", line.len());
    }
    messages
}

fn parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    for (name, line) in messages() {
        g.throughput(Throughput::Bytes(line.len() as u64));
        g.bench_with_input(BenchmarkId::new("strict check", name), &line, |b, line| {
            b.iter(|| strict::check(black_box(line), DEPTH).unwrap().len())
        });
        g.bench_with_input(BenchmarkId::new("strict check + envelope", name), &line, |b, line| {
            b.iter(|| envelope::parse(black_box(line), DEPTH).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("serde_json Value", name), &line, |b, line| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(line)).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("serde_json IgnoredAny", name), &line, |b, line| {
            b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(line)).unwrap())
        });
    }
    g.finish();
}

/// A process spoken to over its stdin and stdout.
struct Proc {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    line: String,
}

impl Proc {
    fn start(cmd: &[String]) -> Proc {
        let mut child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut p = Proc { child, stdin, out, line: String::new() };
        p.round_trip(b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"0\"}}}\n");
        p
    }

    /// Sends one line and reads the answer (the answers here are small, so the whole line is
    /// written before any is read).
    fn round_trip(&mut self, line: &[u8]) -> &str {
        self.stdin.write_all(line).unwrap();
        self.stdin.flush().unwrap();
        self.line.clear();
        self.out.read_line(&mut self.line).unwrap();
        assert!(!self.line.is_empty(), "the process ended");
        &self.line
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn round_trip(c: &mut Criterion) {
    let exe = env!("CARGO_BIN_EXE_toolgate");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let policy = config.join("policy.toml");
    // Writes outside the project ask: every call is read for its path (and allowed).
    std::fs::write(
        &policy,
        "[settings]\ndefault_tier = \"low\"\n[[rules]]\nname = \"outside\"\ntools = [\"write_file\"]\n\
         args = { \"/path\" = { glob = \"/etc/**\" } }\ntier = \"high\"\n",
    )
    .unwrap();
    let server = vec![exe.to_owned(), "demo-server".to_owned()];
    let toolgate: Vec<String> = [
        vec![exe.into(), "run".into(), "-q".into(), "--policy".into(), policy.display().to_string()],
        vec!["--audit".into(), dir.path().join("audit.jsonl").display().to_string(), "--".into()],
        server.clone(),
    ]
    .concat();
    let mut g = c.benchmark_group("round-trip");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    for (name, line) in messages() {
        g.throughput(Throughput::Bytes(line.len() as u64));
        for (path, cmd) in [("direct", &server), ("toolgate", &toolgate)] {
            let mut proc = Proc::start(cmd);
            assert!(proc.round_trip(&line).contains("wrote"), "{path}, {name}: {}", proc.line);
            g.bench_with_input(BenchmarkId::new(path, name), &line, |b, line| {
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        proc.round_trip(line);
                    }
                    t.elapsed()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, parsing, round_trip);
criterion_main!(benches);
