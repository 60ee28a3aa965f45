"""The project's own fake MCP server (stdlib only), with behaviours chosen by argv flags:

  --record FILE      append every raw line received (as a JSON string) to FILE
  --ignore-eof       keep running after stdin closes
  --ignore-term      ignore SIGTERM (records "TERM" to --signals FILE when it arrives)
  --signals FILE     where to note the signals received
  --crash-after N    exit with status 3 after N messages, without answering the Nth
  --garbage          answer every "garbage" call with a non-JSON line, then a real answer
  --partial          on stdin EOF, write half a line and exit
  --big N            the "big" tool answers with a text of N bytes
  --pid FILE         write the process id to FILE at start
  --batch N          hold "echo" and "badreply" answers until N calls wait, then answer them all,
                     newest first
  --pages N          answer tools/list in N pages (one tool a page, then the rest), with nextCursor
  --list-error       answer tools/list with an error
  --hold-list        hold tools/list answers until the next ping, then answer both
  --tool NAME        also list a tool named NAME (any characters, controls included); a call to
                     it is answered with its arguments as JSON text

It answers initialize, ping, tools/list, tools/call (echo, slow, big, garbage, badreply, confirm,
change) and echoes unknown methods back as an error naming them. "change" sends
notifications/tools/list_changed, then answers; from then on tools/list also lists "added". "confirm" asks the client for more
input the 2026-07-28 way (an input-required result with a requestState of its own) and, on the
retry that brings inputResponses, echoes its arguments. The "slow" tool, and a request whose method
is "slow", are never answered.
"""
import json
import os
import signal
import sys
import time

args = sys.argv[1:]


def flag(name):
    return name in args


def value(name, default=None):
    return args[args.index(name) + 1] if name in args else default


record = value("--record")
signals_file = value("--signals")
crash_after = int(value("--crash-after", "0"))
big = int(value("--big", "0"))
batch = int(value("--batch", "0"))
pages = int(value("--pages", "0"))
held_lists = []
added = []
held = []
if value("--pid"):
    with open(value("--pid"), "w") as f:
        f.write(str(os.getpid()))


def note_signal(name):
    if signals_file:
        with open(signals_file, "a") as f:
            f.write(name + "\n")


def on_term(signum, frame):
    note_signal("TERM")
    if not flag("--ignore-term"):
        sys.exit(0)


signal.signal(signal.SIGTERM, on_term)

out = sys.stdout.buffer


def send(msg):
    out.write(json.dumps(msg).encode() + b"\n")
    out.flush()


def result(id, res):
    send({"jsonrpc": "2.0", "id": id, "result": res})


def answer_call(id, name, arguments):
    if name == "badreply":
        # A reply to this very request that duplicates a key: toolgate must refuse it and
        # tell the client instead of leaving it waiting.
        out.write(('{"jsonrpc":"2.0","id":%s,"result":{},"result":{}}\n' % json.dumps(id)).encode())
        out.flush()
    else:
        result(id, {"content": [{"type": "text", "text": json.dumps(arguments)}]})


count = 0
stdin = sys.stdin.buffer
while True:
    raw = stdin.readline()
    if not raw:
        break
    if record:
        with open(record, "a") as f:
            f.write(json.dumps(raw.decode("utf-8", "replace")) + "\n")
    count += 1
    if crash_after and count >= crash_after:
        os._exit(3)
    try:
        msg = json.loads(raw)
    except ValueError:
        continue
    method, id = msg.get("method"), msg.get("id")
    if method is None or id is None:
        continue
    if method == "initialize":
        result(id, {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                    "serverInfo": {"name": "fake", "version": "0"}})
    elif method == "ping":
        result(id, {})
        for list_id, answer in held_lists:
            result(list_id, answer)
        held_lists.clear()
    elif method == "slow":
        pass
    elif method == "tools/list":
        names = ["echo", "slow", "big", "garbage", "badreply", "write_marker", "confirm", "change"] + added
        if value("--tool"):
            names.append(value("--tool"))
        tools = [{"name": n, "inputSchema": {"type": "object"}} for n in names]
        if pages:
            start = int((msg.get("params") or {}).get("cursor") or 0)
            last = start + 1 >= pages
            page = tools[start:] if last else tools[start:start + 1]
            answer = {"tools": page} if last else {"tools": page, "nextCursor": str(start + 1)}
        else:
            answer = {"tools": tools}
        if flag("--list-error"):
            send({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no tools here"}})
        elif flag("--hold-list"):
            held_lists.append((id, answer))
        else:
            result(id, answer)
    elif method == "tools/call":
        name = msg["params"]["name"]
        arguments = msg["params"].get("arguments") or {}
        if name in ("echo", "badreply") and batch:
            held.append((id, name, arguments))
            if len(held) == batch:
                for id, name, arguments in reversed(held):
                    answer_call(id, name, arguments)
                held.clear()
        elif name in ("echo", "badreply"):
            answer_call(id, name, arguments)
        elif name == value("--tool"):
            result(id, {"content": [{"type": "text", "text": json.dumps(arguments)}]})
        elif name == "confirm" and "inputResponses" not in msg["params"]:
            question = {"method": "elicitation/create",
                        "params": {"message": "Sure?", "requestedSchema": {"type": "object", "properties": {}}}}
            result(id, {"resultType": "input_required", "inputRequests": {"sure": question},
                        "requestState": "fake-state-%d" % count})
        elif name == "confirm":
            result(id, {"resultType": "complete", "content": [{"type": "text", "text": json.dumps(arguments)}]})
        elif name == "write_marker":
            with open(arguments["path"], "w") as f:
                f.write("written")
            result(id, {"content": [{"type": "text", "text": "written"}]})
        elif name == "big":
            result(id, {"content": [{"type": "text", "text": "x" * big}]})
        elif name in ("change", "added"):
            if name == "change" and "added" not in added:
                added.append("added")
                send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
            result(id, {"content": [{"type": "text", "text": name}]})
        elif name == "garbage":
            out.write(b"this is not json\n")
            out.flush()
            result(id, {"content": [{"type": "text", "text": "after garbage"}]})
        # "slow" is never answered
    else:
        send({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "unknown method " + method}})

if flag("--partial"):
    out.write(b'{"jsonrpc":"2.0","id":99,"res')
    out.flush()
    os._exit(0)
while flag("--ignore-eof"):
    time.sleep(0.05)
