#!/usr/bin/env bash
# User-space instructions toolgate spends per round trip, counted by callgrind (deterministic, so
# a change can be judged on a noisy machine): `benches/instructions.sh [TOOLGATE] [call|ping]`.
# Runs the proxy under valgrind in front of its demo server twice, with 0 and with 2,000 round
# trips, and prints the difference per round trip. Needs valgrind and python3. SHA-256 runs in
# valgrind's software path (about 37k of a call's count); the real CPU uses its SHA instructions.
set -euo pipefail
exe=$(realpath "${1:-target/release/toolgate}")
method=${2:-call}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '[settings]\ndefault_tier = "high"\n[[rules]]\nname = "reads"\ntools = ["read_*"]\ntier = "low"\n' >"$work/policy.toml"
count() {
    python3 - "$exe" "$1" "$method" "$work" <<'PY'
import json, subprocess, sys
exe, n, method, work = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.{n}", exe, "run", "-q",
       "--policy", f"{work}/policy.toml", "--audit", f"{work}/audit.{n}.jsonl", "--", exe, "demo-server"]
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
def round_trip(msg):
    p.stdin.write((json.dumps(msg) + "\n").encode()); p.stdin.flush()
    assert p.stdout.readline(), "no answer"
round_trip({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
            "capabilities": {}, "clientInfo": {"name": "instructions", "version": "1"}}})
# The answer to a listing waits for the server's identity, hashed on a thread of its own: both
# runs count the whole hash, which the difference then leaves out.
round_trip({"jsonrpc": "2.0", "id": "list", "method": "tools/list"})
for i in range(1, n + 1):
    if method == "ping":
        round_trip({"jsonrpc": "2.0", "id": i, "method": "ping"})
    else:
        round_trip({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": "read_file", "arguments": {"path": "notes/todo.txt"}}})
p.stdin.close(); p.wait()
PY
    grep -h '^summary:' "$work/cg.$1" | awk '{print $2}'
}
none=$(count 0)
many=$(count 2000)
echo "$method: $(( (many - none) / 2000 )) instructions per round trip ($exe)"
