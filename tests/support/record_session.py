"""Records a transcript of a real MCP server session (stdlib only).

usage: record_session.py SCRIPT.json OUT.jsonl -- SERVER COMMAND...

SCRIPT.json is a list of client messages. Each is sent in turn; for a request the recorder
waits for its response (answering any server request on the way with a canned result), so the
transcript is sequential and replays deterministically. OUT.jsonl gets one line per message:
{"dir": "c2s" | "s2c", "line": "<the exact line, without its newline>"} (format: fixtures/README.md).
"""
import json
import subprocess
import sys
import threading
import queue

script_path, out_path = sys.argv[1], sys.argv[2]
command = sys.argv[sys.argv.index("--") + 1:]
messages = json.load(open(script_path))
server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
lines = queue.Queue()
threading.Thread(target=lambda: [lines.put(l) for l in iter(server.stdout.readline, b"")], daemon=True).start()
out = open(out_path, "w")

CANNED = {
    "roots/list": {"roots": []},
    "sampling/createMessage": {"role": "assistant", "content": {"type": "text", "text": "canned"}, "model": "fake", "stopReason": "endTurn"},
    "elicitation/create": {"action": "decline"},
}


def record(direction, raw):
    out.write(json.dumps({"dir": direction, "line": raw.decode().rstrip("\n")}) + "\n")


def send(msg):
    raw = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
    record("c2s", raw)
    server.stdin.write(raw)
    server.stdin.flush()


for msg in messages:
    send(msg)
    if "id" not in msg:
        continue
    while True:
        raw = lines.get(timeout=30)
        record("s2c", raw)
        got = json.loads(raw)
        if "method" in got and "id" in got:
            send({"jsonrpc": "2.0", "id": got["id"], "result": CANNED.get(got["method"], {})})
        elif got.get("id") == msg["id"] and "method" not in got:
            break
server.stdin.close()
server.wait(timeout=10)
