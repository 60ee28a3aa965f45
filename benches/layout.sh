#!/usr/bin/env bash
# Writes layout.ld, the order in which the linker places the code of `toolgate run` (build.rs,
# docs/reference/performance.md): `benches/layout.sh`, from the repository's root. It builds the
# binary as `cargo build --release` and as `cargo bench` do, without the layout, in
# target/layout (valgrind names no function outside `.text`, and the layout adds a `.text.hot`),
# and runs each under callgrind in front of a small server whose tools have schemas as real
# servers' do, under the bench's one-rule policy and under the embedded default policy, each
# with and without 200 rounds of messages (an allowed call before any listing, a listing, a
# ping, a line the strict check refuses, and under the default policy a denied call). It lists
# every function that ran: first those the messages ran (the proxy's working set), then those
# only start-up and shut-down ran. Each is named exactly (both builds' symbols), then again
# without its hash, which keeps the order when a rebuild changes the hashes (another toolchain,
# other dependency versions) at the price of also pulling in the other instances of a generic
# function. Rerun it when the hot path changes. Needs valgrind and python3; the proxy runs with
# a home of its own in a temporary folder.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
TOOLGATE_NO_LAYOUT=1 cargo build --release --locked --target-dir target/layout
cp target/layout/release/toolgate "$work/release"
# `cargo bench` builds the binary again with the features the benches' dependencies add to
# Tokio, which changes the hashes of its symbols and of toolgate's own: both builds are named.
TOOLGATE_NO_LAYOUT=1 cargo bench --no-run --locked --target-dir target/layout --bench e2e
cp target/layout/release/toolgate "$work/bench"
printf '[settings]\ndefault_tier = "high"\n[[rules]]\nname = "reads"\ntools = ["read_*"]\ntier = "low"\n' >"$work/bench.toml"
# The server: tools with schemas as real servers list them (the demo server's take anything).
cat >"$work/server.py" <<'PY'
import json, sys
schema = {"type": "object", "properties": {"path": {"type": "string", "description": "A file."}},
          "required": ["path"], "additionalProperties": False}
tools = [{"name": name, "description": "A tool.", "inputSchema": schema,
          "annotations": {"readOnlyHint": name.startswith("read")}} for name in ("read_file", "delete_file")]
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message or "method" not in message:
        continue
    result = {"content": [{"type": "text", "text": "buy milk"}]}
    if message["method"] == "initialize":
        result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "s", "version": "1"}}
    elif message["method"] == "tools/list":
        result = {"tools": tools}
    elif message["method"] == "ping":
        result = {}
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
PY
profile() {
    python3 - "$work/$1" "$work" "$2" "$3" <<'PY'
import json, os, subprocess, sys
exe, work, policy, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
# A home of its own: no user policy, no trust record or review queue of the user's.
env = dict(os.environ, HOME=work, XDG_CONFIG_HOME=f"{work}/config", XDG_STATE_HOME=f"{work}/state")
cmd = ["valgrind", "--tool=callgrind", "--demangle=no", "--compress-strings=no", "--compress-pos=no",
       f"--callgrind-out-file={exe}.{policy}.{n}", exe, "run", "-q", "--audit", f"{work}/audit.jsonl"]
cmd += ["--policy", f"{work}/bench.toml"] if policy == "bench" else []
p = subprocess.Popen(cmd + ["--", sys.executable, f"{work}/server.py"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, env=env)
def send(line):
    p.stdin.write(line + b"\n"); p.stdin.flush()
def round_trip(line):
    send(line)
    assert p.stdout.readline(), "no answer"
def message(**fields):
    return json.dumps({"jsonrpc": "2.0", **fields}).encode()
round_trip(message(id=0, method="initialize", params={"protocolVersion": "2025-06-18", "capabilities": {},
                                                       "clientInfo": {"name": "layout", "version": "1"}}))
send(message(method="notifications/initialized"))
for i in range(1, n + 1):
    # The first call comes before the client listed the tools: toolgate lists them itself.
    round_trip(message(id=i, method="tools/call", params={"name": "read_file", "arguments": {"path": "notes/todo.txt"}}))
    round_trip(message(id=f"list-{i}", method="tools/list"))
    if policy == "default":  # denied by the rule "never delete" (under the bench's policy it would ask)
        round_trip(message(id=f"d-{i}", method="tools/call", params={"name": "delete_file", "arguments": {"path": "x"}}))
    round_trip(message(id=f"p-{i}", method="ping"))
    # A key twice: the strict check refuses the line, and toolgate answers it.
    round_trip(b'{"jsonrpc":"2.0","id":"x-%d","method":"ping","params":{"a":1,"a":2}}' % i)
p.stdin.close(); p.wait()
PY
}
for build in release bench; do
    for policy in bench default; do
        profile "$build" "$policy" 0
        profile "$build" "$policy" 200
    done
done
python3 - "$work" >layout.ld <<'PY'
import collections, re, subprocess, sys
work = sys.argv[1]
def costs(path, exe):
    """Instructions each function of the binary ran, by its mangled name."""
    cost, ob, fn, after_call = collections.Counter(), None, None, False
    for line in open(path, errors="replace"):
        if line.startswith("ob="):
            ob = line[3:].strip()
        elif line.startswith("fn="):
            fn = re.sub(r"'\d+$", "", line[3:].strip()) if ob == exe else None
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if not after_call and fn:
                cost[fn] += int(line.split()[1])
            after_call = False
    return cost
working, starting, defined = collections.Counter(), collections.Counter(), set()
for build in ("release", "bench"):
    exe = f"{work}/{build}"
    symbols = subprocess.run(["nm", "--defined-only", exe], capture_output=True, text=True, check=True).stdout
    named = {f[2] for f in (line.split() for line in symbols.split("\n")) if len(f) == 3 and f[1] in "tTwW"}
    defined |= named
    for policy in ("bench", "default"):
        quiet, busy = costs(f"{exe}.{policy}.0", exe), costs(f"{exe}.{policy}.200", exe)
        for name, cost in busy.items():
            if name in named:
                (working if cost != quiet.get(name, 0) else starting)[name] += cost
# The SHA-256 compression the CPU runs with its SHA instructions, which valgrind cannot run.
hardware = sorted(n for n in defined if "x86_sha" in n)
working_first = [n for n, _ in working.most_common()] + hardware
starting_next = [n for n, _ in starting.most_common() if n not in working]
def without_hash(name):
    name = re.sub(r"17h[0-9a-f]{16}E$", "17h*", name)  # legacy mangling ends with a hash
    return re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", name)     # v0 mangling names crates by a hash
print("/* Generated by benches/layout.sh: the order of the code of `toolgate run` (build.rs). The")
print("   functions messages run come first, then those only start-up and shut-down run; each")
print("   first as `cargo build --release` and `cargo bench` name it, then without its hash. The")
print("   rest of the code follows in the linker's own order. */")
print("SECTIONS {")
print("  .text.hot : {")
seen = set()
for group in (working_first, [without_hash(n) for n in working_first],
              starting_next, [without_hash(n) for n in starting_next]):
    for p in group:
        if p not in seen:
            seen.add(p)
            print(f"    *(.text.{p} .text.unlikely.{p})")
print("  }")
print("} INSERT BEFORE .text;")
PY
echo "layout.ld: $(grep -c '^    \*' layout.ld) patterns" >&2
