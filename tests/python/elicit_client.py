"""A client built with the official Python SDK (mcp 2.3.0) whose elicitation callback answers
toolgate's own question in a given way. It calls `write_marker` and prints one JSON object: the
call's result (or the error it raised) and every question the callback saw.

usage: elicit_client.py MODE BEHAVIOUR MARKER_PATH -- COMMAND ARGS...
  MODE       legacy (initialize, 2025-11-25) or auto (2026-07-28 when the server offers it)
  BEHAVIOUR  approve   accept, toolgate_decision allow_once
             session   accept, allow_session; then write MARKER_PATH.2 as well, unasked
             deny      accept, toolgate_decision deny, toolgate_reason "not today"
             decline   action decline
             cancel    action cancel
             garbage   accept with a decision toolgate never offered
             error     the callback returns an ErrorData
             none      no elicitation callback, so the client declares no elicitation

output: {"protocol": NEGOTIATED VERSION, "first": RESULT, "second": RESULT (session only),
         "asked": [{"message", "requestedSchema"}, ...]}
where RESULT is the CallToolResult (by alias, without nulls) or "error: TYPE: TEXT".
"""
import json
import os
import sys

import anyio
import mcp_types as types

from mcp import Client, StdioServerParameters

BEHAVIOURS = ("approve", "session", "deny", "decline", "cancel", "garbage", "error", "none")

mode, behaviour, marker = sys.argv[1], sys.argv[2], sys.argv[3]
command = sys.argv[sys.argv.index("--") + 1:]
if mode not in ("legacy", "auto") or behaviour not in BEHAVIOURS or not command:
    sys.exit(__doc__)

asked = []


async def answer(context, params):
    """The person's answer to toolgate's question."""
    asked.append({"message": params.message, "requestedSchema": params.requested_schema})
    if behaviour == "approve":
        return types.ElicitResult(action="accept", content={"toolgate_decision": "allow_once"})
    if behaviour == "session":
        return types.ElicitResult(action="accept", content={"toolgate_decision": "allow_session"})
    if behaviour == "deny":
        return types.ElicitResult(action="accept", content={"toolgate_decision": "deny", "toolgate_reason": "not today"})
    if behaviour in ("decline", "cancel"):
        return types.ElicitResult(action=behaviour)
    if behaviour == "garbage":
        return types.ElicitResult(action="accept", content={"toolgate_decision": "sure, why not"})
    if behaviour == "error":
        return types.ErrorData(code=-32000, message="the dialog could not be shown")
    raise AssertionError(behaviour)


async def write(client, path):
    try:
        result = await client.call_tool("write_marker", {"path": path})
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)
    except Exception as e:
        return f"error: {type(e).__name__}: {e}"


async def main():
    # The SDK hands the server only a short list of variables (HOME, PATH, ...) unless told:
    # toolgate must see the test's own XDG folders, not the user's trust record and queue.
    server = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    callback = None if behaviour == "none" else answer
    out = {}
    async with Client(server, mode=mode, elicitation_callback=callback, read_timeout_seconds=30) as client:
        out["protocol"] = client.protocol_version
        out["first"] = await write(client, marker)
        if behaviour == "session":
            out["second"] = await write(client, marker + ".2")
    out["asked"] = asked
    print(json.dumps(out, sort_keys=True))


anyio.run(main)
