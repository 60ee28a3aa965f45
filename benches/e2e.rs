//! End-to-end cost of toolgate: the real binary in front of a fast server (toolgate's own
//! `demo-server`), compared with talking to that server directly and through a bare byte relay.
//!
//! Run: `cargo bench --bench e2e` (prints a table; numbers in the README). Measures, per path:
//! round-trip latency of an allowed `tools/call` (median and 99th percentile, and what the path
//! adds over direct), pipelined throughput of small requests, and for toolgate its resident
//! memory idle and after the load, and its start-up time to the first `initialize` answer.
//! `TOOLGATE_BENCH_PING=1` measures `ping` instead of `tools/call`: the proxy without the
//! decision and audit path.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const CALLS: usize = 20_000;
const PIPELINED: usize = 100_000;
const STARTS: usize = 30;

fn main() {
    if std::env::var_os("TOOLGATE_BENCH_RELAY").is_some() {
        relay();
        return;
    }
    let exe = env!("CARGO_BIN_EXE_toolgate");
    let dir = std::env::temp_dir().join(format!("toolgate-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The policy in a folder of its own, as under ~/.config: toolgate watches the policy's
    // folder, and audit writes beside it would wake the watcher on every call.
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let policy = dir.join("config").join("policy.toml");
    std::fs::write(
        &policy,
        "[settings]\ndefault_tier = \"high\"\n[[rules]]\nname = \"reads\"\ntools = [\"read_*\"]\ntier = \"low\"\n",
    )
    .unwrap();
    let audit = dir.join("audit.jsonl");
    let me = std::env::current_exe().unwrap();
    let paths: Vec<(&str, Vec<String>, bool)> = vec![
        ("direct", vec![exe.into(), "demo-server".into()], false),
        ("byte relay", vec![me.display().to_string(), exe.into(), "demo-server".into()], true),
        (
            "toolgate",
            vec![
                exe.into(),
                "run".into(),
                "-q".into(),
                "--policy".into(),
                policy.display().to_string(),
                "--audit".into(),
                audit.display().to_string(),
                "--".into(),
                exe.into(),
                "demo-server".into(),
            ],
            false,
        ),
    ];
    println!(
        "{:<12} {:>12} {:>12} {:>14} {:>14} {:>16}",
        "path", "median µs", "p99 µs", "+median µs", "+p99 µs", "pipelined msg/s"
    );
    let mut base = (0.0, 0.0);
    for (name, cmd, is_relay) in &paths {
        let mut p = Proc::start(cmd, *is_relay);
        p.initialize();
        let (median, p99) = p.latency();
        if *name == "direct" {
            base = (median, p99);
        }
        let idle_rss = rss(p.child.id(), "VmRSS");
        let throughput = p.pipelined();
        println!(
            "{name:<12} {median:>12.1} {p99:>12.1} {:>14.1} {:>14.1} {throughput:>16.0}",
            median - base.0,
            p99 - base.1
        );
        if *name == "toolgate" {
            println!(
                "toolgate resident memory: idle {} kB, after the load (peak) {} kB",
                idle_rss,
                rss(p.child.id(), "VmHWM")
            );
        }
        p.finish();
    }
    let mut starts: Vec<f64> = (0..STARTS)
        .map(|_| {
            let t = Instant::now();
            let mut p = Proc::start(&paths[2].1, false);
            p.initialize();
            let took = t.elapsed().as_secs_f64() * 1e3;
            p.finish();
            took
        })
        .collect();
    starts.sort_by(f64::total_cmp);
    let mut direct_starts: Vec<f64> = (0..STARTS)
        .map(|_| {
            let t = Instant::now();
            let mut p = Proc::start(&paths[0].1, false);
            p.initialize();
            let took = t.elapsed().as_secs_f64() * 1e3;
            p.finish();
            took
        })
        .collect();
    direct_starts.sort_by(f64::total_cmp);
    println!(
        "start-up to the first initialize answer: toolgate {:.2} ms median, the server alone {:.2} ms",
        starts[STARTS / 2],
        direct_starts[STARTS / 2]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

struct Proc {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<std::process::ChildStdout>,
    line: String,
}

impl Proc {
    fn start(cmd: &[String], relay: bool) -> Proc {
        let mut c = Command::new(&cmd[0]);
        c.args(&cmd[1..]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        if relay {
            c.env("TOOLGATE_BENCH_RELAY", "1");
        }
        let mut child = c.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, stdin, out, line: String::new() }
    }

    fn send(&mut self, text: &str) {
        self.stdin.write_all(text.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn read(&mut self) {
        self.line.clear();
        self.out.read_line(&mut self.line).unwrap();
        assert!(!self.line.is_empty(), "the process ended");
    }

    fn initialize(&mut self) {
        self.send("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"0\"}}}\n");
        self.read();
    }

    /// Sequential round trips of an allowed tools/call; (median, p99) in microseconds.
    fn latency(&mut self) -> (f64, f64) {
        let call = if std::env::var_os("TOOLGATE_BENCH_PING").is_some() {
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n"
        } else {
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"read_file\",\"arguments\":{\"path\":\"notes/todo.txt\"}}}\n"
        };
        for _ in 0..1000 {
            self.send(call);
            self.read();
        }
        let mut times: Vec<f64> = (0..CALLS)
            .map(|_| {
                let t = Instant::now();
                self.send(call);
                self.read();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        assert!(self.line.contains("buy milk") || call.contains("ping"), "the call was not allowed: {}", self.line);
        times.sort_by(f64::total_cmp);
        (times[CALLS / 2], times[CALLS * 99 / 100])
    }

    /// Small requests written without waiting; answered requests per second.
    fn pipelined(&mut self) -> f64 {
        let mut batch = String::new();
        for i in 0..PIPELINED {
            batch.push_str(&format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"ping\"}}\n"));
        }
        let mut stdin = self.stdin.try_clone_writer();
        let t = Instant::now();
        let writer = std::thread::spawn(move || stdin.write_all(batch.as_bytes()).unwrap());
        for _ in 0..PIPELINED {
            self.read();
        }
        let took = t.elapsed();
        writer.join().unwrap();
        PIPELINED as f64 / took.as_secs_f64()
    }

    fn finish(mut self) {
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait CloneWriter {
    fn try_clone_writer(&self) -> std::fs::File;
}

impl CloneWriter for ChildStdin {
    fn try_clone_writer(&self) -> std::fs::File {
        use std::os::fd::AsFd;
        std::fs::File::from(self.as_fd().try_clone_to_owned().unwrap())
    }
}

/// A field of /proc/PID/status, in kB.
fn rss(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The bare byte relay: copies bytes both ways between its stdio and a child, nothing else.
fn relay() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut child =
        Command::new(&args[0]).args(&args[1..]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = child.stdout.take().unwrap();
    let up = std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 65536];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_child.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 65536];
    loop {
        match from_child.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stdout.write_all(&buf[..n]).and_then(|()| stdout.flush()).is_err() {
                    break;
                }
            }
        }
    }
    let _ = up.join();
    let _ = child.wait();
}
