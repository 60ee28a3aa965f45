//! End-to-end cost of toolgate: the real binary in front of a fast server (toolgate's own
//! `demo-server`), compared with talking to that server directly and through a bare byte relay.
//!
//! Run: `cargo bench --bench e2e` (builds the release binary, prints a table; numbers in
//! docs/reference/performance.md). Measures, per path: round-trip latency of an allowed `tools/call` (median and 99th
//! percentile, and what the path adds over direct), the proxy's own CPU time per round trip
//! (from /proc/PID/task/*/schedstat), and pipelined throughput of small requests; for every
//! build of toolgate (this one and the baselines) its resident memory idle (total, anonymous and
//! file-backed) and after the load, and its start-up time to the first `initialize` answer
//! (interleaved with the other builds' and the server's alone), next to the floor of
//! `toolgate --version`.
//!
//! Paths: `direct` (the client talks to the server), `thread relay` (a bare byte relay with one
//! blocking thread per direction), `epoll relay` (a bare byte relay on toolgate's own I/O
//! stack: a current-thread Tokio runtime, stdio driven by epoll, one task per direction) and
//! `toolgate` (`toolgate run` with a one-rule policy and an audit log).
//!
//! The machine is shared and small, so every path is measured `TOOLGATE_BENCH_ROUNDS` times
//! (default 3), interleaved, and the table shows the median of the rounds with the range.
//! `TOOLGATE_BENCH_PING=1` measures `ping` instead of `tools/call`: the proxy without the
//! decision and audit path. `TOOLGATE_BENCH_ONLY=toolgate` measures one path (for profiling:
//! attach `perf record -p` to the `toolgate run` process). `TOOLGATE_BENCH_AUDIT=/dev/null`
//! keeps the audit records but not their file writes. `TOOLGATE_BENCH_BASELINE=PATH[:PATH...]`
//! adds a `baseline` path per binary: other toolgate builds (an older one, or one built with
//! other settings) measured beside this one.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const CALLS: usize = 20_000;
const PIPELINED: usize = 100_000;
const STARTS: usize = 30;

/// What one round measured on one path.
#[derive(Clone, Copy)]
struct Sample {
    median: f64,
    p99: f64,
    /// The proxy's CPU time per round trip, µs (0 for direct).
    cpu: f64,
    throughput: f64,
    /// Pipelined small `tools/call` requests answered per second.
    calls: f64,
}

fn main() {
    match std::env::var("TOOLGATE_BENCH_RELAY").as_deref() {
        Ok("thread") => return thread_relay(),
        Ok("epoll") => return epoll_relay(),
        Ok("server") => return fast_server(),
        _ => {}
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
    // `TOOLGATE_BENCH_AUDIT=/dev/null` takes the audit log's file writes out (for diagnosis).
    let audit = std::env::var_os("TOOLGATE_BENCH_AUDIT").map_or_else(|| dir.join("audit.jsonl"), Into::into);
    let me = std::env::current_exe().unwrap().display().to_string();
    // The server: by default this bench binary as a server that answers as fast as a pipe
    // allows (so that the proxy, not the server, is what is measured); `TOOLGATE_BENCH_SERVER=demo`
    // uses toolgate's demo server instead.
    let server = || match std::env::var("TOOLGATE_BENCH_SERVER").as_deref() {
        Ok("demo") => vec![exe.to_string(), "demo-server".to_string()],
        _ => vec!["env".to_string(), "TOOLGATE_BENCH_RELAY=server".to_string(), me.clone()],
    };
    let relayed = |how: &'static str| (Some(how), [vec![me.clone()], server()].concat());
    let toolgate_cmd: Vec<String> = [
        vec![exe.into(), "run".into(), "-q".into(), "--policy".into(), policy.display().to_string()],
        vec!["--audit".into(), audit.display().to_string(), "--".into()],
        server(),
    ]
    .concat();
    let mut paths: Vec<(String, Option<&'static str>, Vec<String>)> = vec![
        ("direct".into(), None, server()),
        ("thread relay".into(), relayed("thread").0, relayed("thread").1),
        ("epoll relay".into(), relayed("epoll").0, relayed("epoll").1),
        ("toolgate".into(), None, toolgate_cmd.clone()),
    ];
    // `TOOLGATE_BENCH_BASELINE=PATH` adds another build of toolgate (say, main's) in front of
    // the same server, measured in the same rounds: on a noisy machine, a change is judged
    // against its baseline side by side rather than against yesterday's table.
    let baselines = std::env::var("TOOLGATE_BENCH_BASELINE").unwrap_or_default();
    let baselines: Vec<&str> = baselines.split(':').filter(|b| !b.is_empty()).collect();
    for (n, baseline) in baselines.iter().enumerate() {
        let name = if baselines.len() == 1 { "baseline".to_string() } else { format!("baseline {}", n + 1) };
        let mut cmd = toolgate_cmd.clone();
        cmd[0] = baseline.to_string();
        // A log of its own: each build continues only the chain it writes.
        if audit.starts_with(&dir) {
            let own = format!("{}.baseline{n}", audit.display());
            cmd.iter_mut().filter(|a| *a == &audit.display().to_string()).for_each(|a| *a = own.clone());
        }
        if baselines.len() > 1 {
            println!("{name}: {baseline}");
        }
        paths.push((name, None, cmd));
    }
    let only = std::env::var("TOOLGATE_BENCH_ONLY").ok();
    let rounds: usize = std::env::var("TOOLGATE_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); paths.len()];
    // Per path (toolgate's builds only): resident memory idle (total, anonymous, file-backed) and peak.
    let mut memory: Vec<Vec<Memory>> = vec![Vec::new(); paths.len()];
    for _ in 0..rounds {
        for (i, (name, relay, cmd)) in paths.iter().enumerate() {
            if only.as_deref().is_some_and(|o| o != *name) {
                continue;
            }
            let mut p = Proc::start(cmd, *relay);
            p.initialize();
            let cpu_before = cpu_ns(p.child.id());
            let (median, p99) = p.latency();
            let cpu =
                if *name == "direct" { 0.0 } else { (cpu_ns(p.child.id()) - cpu_before) as f64 / 1e3 / CALLS as f64 };
            let idle = [rss(p.child.id(), "VmRSS"), rss(p.child.id(), "RssAnon"), rss(p.child.id(), "RssFile")];
            let throughput = p.pipelined(false);
            let calls = p.pipelined(true);
            if is_toolgate(name) {
                memory[i].push(Memory { idle, peak: rss(p.child.id(), "VmHWM") });
            }
            samples[i].push(Sample { median, p99, cpu, throughput, calls });
            p.finish();
        }
    }
    let call = if ping() { "ping" } else { "tools/call" };
    println!(
        "{rounds} round(s) of {CALLS} sequential {call} round trips, {PIPELINED} pipelined pings and as many pipelined \
         tools/call per path;"
    );
    println!("each cell: median of the rounds [min-max]. +median and +p99 are over direct in the same round.");
    println!(
        "{:<13} {:>22} {:>22} {:>22} {:>22} {:>18} {:>26} {:>26}",
        "path",
        "median µs",
        "p99 µs",
        "+median µs",
        "+p99 µs",
        "proxy CPU µs/call",
        "pipelined pings/s",
        "pipelined calls/s"
    );
    let direct = samples[0].clone();
    for (i, (name, _, _)) in paths.iter().enumerate() {
        let s = &samples[i];
        if s.is_empty() {
            continue;
        }
        let added = |f: fn(&Sample) -> f64| -> Vec<f64> { s.iter().zip(&direct).map(|(a, b)| f(a) - f(b)).collect() };
        let (plus_median, plus_p99) = if direct.len() == s.len() {
            (cell(&added(|x| x.median), 1), cell(&added(|x| x.p99), 1))
        } else {
            ("-".into(), "-".into())
        };
        println!(
            "{name:<13} {:>22} {:>22} {:>22} {:>22} {:>18} {:>26} {:>26}",
            cell(&s.iter().map(|x| x.median).collect::<Vec<_>>(), 1),
            cell(&s.iter().map(|x| x.p99).collect::<Vec<_>>(), 1),
            plus_median,
            plus_p99,
            cell(&s.iter().map(|x| x.cpu).collect::<Vec<_>>(), 1),
            cell(&s.iter().map(|x| x.throughput).collect::<Vec<_>>(), 0),
            cell(&s.iter().map(|x| x.calls).collect::<Vec<_>>(), 0),
        );
    }
    // The target compares added latencies; the paths of one round ran close together, so the
    // ratio is taken per round (the machine's load moves every path of a round alike).
    let added = |i: usize| -> Vec<f64> { samples[i].iter().zip(&direct).map(|(a, b)| a.median - b.median).collect() };
    if direct.len() == rounds {
        for (i, (name, relay, _)) in paths.iter().enumerate() {
            if relay.is_some() || name == "direct" || samples[i].len() != rounds {
                continue;
            }
            let ratio = |relay: usize| -> String {
                let ratios: Vec<f64> = added(i).iter().zip(added(relay)).map(|(a, r)| a / r).collect();
                cell(&ratios, 2)
            };
            println!(
                "{name}: +median over the relays' +median, per round: thread relay {}x, epoll relay {}x",
                ratio(1),
                ratio(2)
            );
            let share = |relay: usize| -> String {
                let shares: Vec<f64> =
                    samples[i].iter().zip(&samples[relay]).map(|(a, r)| 100.0 * a.calls / r.calls).collect();
                cell(&shares, 0)
            };
            println!(
                "{name}: pipelined calls as a share of the relays', per round: thread relay {}%, epoll relay {}%",
                share(1),
                share(2)
            );
        }
    }
    for (i, (name, _, _)) in paths.iter().enumerate() {
        let m = &memory[i];
        if m.is_empty() {
            continue;
        }
        let kb = |f: &dyn Fn(&Memory) -> u64| cell(&m.iter().map(|x| f(x) as f64).collect::<Vec<_>>(), 0);
        println!(
            "{name}: resident memory idle {} kB (anonymous {} kB, file-backed {} kB), after the load (peak) {} kB",
            kb(&|x| x.idle[0]),
            kb(&|x| x.idle[1]),
            kb(&|x| x.idle[2]),
            kb(&|x| x.peak)
        );
    }
    // Start-up: every build of toolgate and the server alone, interleaved start by start, so
    // that they meet the machine's load alike.
    let starting: Vec<(String, Vec<String>)> = paths
        .iter()
        .filter(|(name, _, _)| is_toolgate(name) || name == "direct")
        .filter(|(name, _, _)| only.as_deref().is_none_or(|o| o == name || name == "direct"))
        .map(|(name, _, cmd)| (name.clone(), cmd.clone()))
        .collect();
    if starting.len() > 1 {
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); starting.len() + 1];
        for _ in 0..STARTS {
            for (i, (_, cmd)) in starting.iter().enumerate() {
                let t = Instant::now();
                let mut p = Proc::start(cmd, None);
                p.initialize();
                times[i].push(t.elapsed().as_secs_f64() * 1e3);
                p.finish();
            }
            let t = Instant::now();
            let status = Command::new(exe).arg("--version").stdout(Stdio::null()).status().unwrap();
            assert!(status.success());
            times[starting.len()].push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!("start-up to the first initialize answer, median of {STARTS} [min-max], interleaved:");
        for (i, (name, _)) in starting.iter().enumerate() {
            let name = if name == "direct" { "the server alone" } else { name };
            println!("  {name}: {} ms", cell(&times[i], 2));
        }
        println!("  `toolgate --version`: {} ms", cell(&times[starting.len()], 2));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A path that runs a build of toolgate (this one or a baseline).
fn is_toolgate(name: &str) -> bool {
    name == "toolgate" || name.starts_with("baseline")
}

/// Resident memory of a toolgate process, in kB: idle after the sequential round trips (total,
/// anonymous, file-backed) and its peak after the pipelined load.
#[derive(Clone, Copy)]
struct Memory {
    idle: [u64; 3],
    peak: u64,
}

fn ping() -> bool {
    std::env::var_os("TOOLGATE_BENCH_PING").is_some()
}

/// `median [min-max]` of a few numbers.
fn cell(values: &[f64], decimals: usize) -> String {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => "-".into(),
        1 => format!("{:.*}", decimals, v[0]),
        n => format!("{:.*} [{:.*}-{:.*}]", decimals, v[n / 2], decimals, v[0], decimals, v[n - 1]),
    }
}

/// CPU time of every thread of a process so far, in ns (/proc/PID/task/*/schedstat).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

struct Proc {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<std::process::ChildStdout>,
    line: String,
}

impl Proc {
    /// `relay` names the relay this bench binary should act as, when it is the first command.
    fn start(cmd: &[String], relay: Option<&str>) -> Proc {
        let mut c = Command::new(&cmd[0]);
        c.args(&cmd[1..]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        if let Some(how) = relay {
            c.env("TOOLGATE_BENCH_RELAY", how);
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
        let call = if ping() {
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

    /// Small requests (pings, or allowed `tools/call`) written without waiting; answered
    /// requests per second.
    fn pipelined(&mut self, calls: bool) -> f64 {
        let mut batch = String::new();
        for i in 0..PIPELINED {
            if calls {
                batch.push_str(&format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"tools/call\",\"params\":{{\"name\":\"read_file\",\"arguments\":{{\"path\":\"notes/todo.txt\"}}}}}}\n"
                ));
            } else {
                batch.push_str(&format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"ping\"}}\n"));
            }
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

/// The server command a relay was given (cargo adds `--bench` to a bench's arguments).
fn relay_target() -> Vec<String> {
    std::env::args().skip(1).filter(|a| a != "--bench").collect()
}

/// A server as fast as its pipes: answers every request of a burst, then writes the answers in
/// one go. It knows `initialize`, `tools/list` (one tool, `read_file`), `ping` and `tools/call`,
/// and finds a request's id by a plain scan, which is enough for the bench's own messages.
fn fast_server() {
    let stdin = std::io::stdin();
    let mut input = std::io::BufReader::with_capacity(1 << 16, stdin.lock());
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let has = |what: &[u8]| line.windows(what.len()).any(|w| w == what);
        let Some(id) = request_id(&line) else { continue };
        let result: &[u8] = if has(b"\"tools/call\"") {
            br#"{"content":[{"type":"text","text":"buy milk"}]}"#
        } else if has(b"\"initialize\"") {
            br#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"bench","version":"0"}}"#
        } else if has(b"\"tools/list\"") {
            br#"{"tools":[{"name":"read_file","description":"Read a file.","inputSchema":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}]}"#
        } else {
            b"{}"
        };
        let written = out
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":")
            .and_then(|()| out.write_all(id))
            .and_then(|()| out.write_all(b",\"result\":"))
            .and_then(|()| out.write_all(result))
            .and_then(|()| out.write_all(b"}\n"));
        // Answers leave once no more requests are at hand.
        if written.is_err() || (input.buffer().is_empty() && out.flush().is_err()) {
            break;
        }
    }
}

/// The id of a request the bench wrote (`"id":` then a number or a string without commas);
/// `None` for a notification or a response.
fn request_id(line: &[u8]) -> Option<&[u8]> {
    if !line.windows(9).any(|w| w == b"\"method\":") {
        return None;
    }
    let at = line.windows(5).position(|w| w == b"\"id\":")? + 5;
    let len = line[at..].iter().position(|&b| b == b',' || b == b'}')?;
    Some(&line[at..at + len])
}

/// A bare byte relay with a blocking thread per direction: copies bytes both ways between its
/// stdio and a child, nothing else.
fn thread_relay() {
    let args = relay_target();
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

/// A bare byte relay on toolgate's own I/O stack: a current-thread Tokio runtime, toolgate's
/// epoll-driven stdio, Tokio's child pipes, one task per direction copying bytes as they come.
fn epoll_relay() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let args = relay_target();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let mut child = tokio::process::Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut to_child = child.stdin.take().unwrap();
        let mut from_child = child.stdout.take().unwrap();
        let mut stdin = toolgate::proxy::stdio::stdin().unwrap();
        let mut stdout = toolgate::proxy::stdio::stdout().unwrap();
        let up = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n @ 1..) = stdin.read(&mut buf).await {
                if to_child.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = vec![0u8; 65536];
        while let Ok(n @ 1..) = from_child.read(&mut buf).await {
            if stdout.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = up.await;
        let _ = child.wait().await;
    });
}
