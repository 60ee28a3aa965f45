"""Plays the server side of a recorded transcript (stdlib only): a fake server that needs
none of the original software installed.

usage: replay_server.py TRANSCRIPT.jsonl

Each line received is matched (as JSON) against the next recorded client line; the server
lines recorded after it are then written, byte for byte. A recorded client line that never
arrives (toolgate refused it) is skipped together with the server lines that answered it.
Anything received that matches no recorded line is reported on stderr and ends the replay
with status 2.
"""
import json
import sys

# Messages only: a transcript written by `toolgate record` also has session and decision lines.
entries = [e for e in (json.loads(l) for l in open(sys.argv[1]) if l.strip()) if e.get("dir") in ("c2s", "s2c")]
pos = 0


def emit_until_next_client_line():
    global pos
    while pos < len(entries) and entries[pos]["dir"] == "s2c":
        sys.stdout.write(entries[pos]["line"] + "\n")
        pos += 1
    sys.stdout.flush()


emit_until_next_client_line()  # anything the server said before the first message
for raw in sys.stdin:
    got = json.loads(raw)
    nxt = pos
    while nxt < len(entries) and not (entries[nxt]["dir"] == "c2s" and json.loads(entries[nxt]["line"]) == got):
        nxt += 1
    if nxt == len(entries):
        sys.stderr.write("replay: unexpected client line: " + raw)
        sys.exit(2)
    pos = nxt + 1
    emit_until_next_client_line()
