"""A client built with the official Python SDK (mcp 2.3.0) whose user answers toolgate's
approval question in a given way. It calls `write_marker` and prints, as JSON, the result (or
the error) and the questions its elicitation callback saw.

usage: approving_client.py MODE BEHAVIOUR MARKER -- COMMAND ARGS...
  MODE       legacy (initialize, 2025-11-25) or auto (2026-07-28 when the server offers it)
  BEHAVIOUR  approve | session | deny | decline | cancel | garbage | error | none | server-asks
             (session calls twice, the second time to MARKER.2; none declares no elicitation;
             server-asks approves `confirmed_write`, which asks its own question, answered yes)
"""
import json
import os
import sys

import anyio
import mcp_types as types

from mcp import Client, StdioServerParameters

mode, behaviour, marker = sys.argv[1], sys.argv[2], sys.argv[3]
command = sys.argv[sys.argv.index("--") + 1:]
seen = []


async def elicitation(context, params):
    seen.append({"message": params.message, "fields": sorted(params.requested_schema["properties"])})
    if "sure" in params.requested_schema["properties"]:
        return types.ElicitResult(action="accept", content={"sure": True})
    if behaviour in ("approve", "session", "server-asks"):
        decision = "allow_session" if behaviour == "session" else "allow_once"
        return types.ElicitResult(action="accept", content={"toolgate_decision": decision})
    if behaviour == "deny":
        return types.ElicitResult(action="accept", content={"toolgate_decision": "deny", "toolgate_reason": "not today"})
    if behaviour in ("decline", "cancel"):
        return types.ElicitResult(action=behaviour)
    if behaviour == "garbage":
        return types.ElicitResult(action="accept", content={"toolgate_decision": "sure, why not"})
    if behaviour == "error":
        return types.ErrorData(code=-32000, message="the user closed the window")
    raise AssertionError(behaviour)


async def call(client, path):
    tool = "confirmed_write" if behaviour == "server-asks" else "write_marker"
    try:
        result = await client.call_tool(tool, {"path": path})
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)
    except Exception as e:
        return f"error: {type(e).__name__}: {e}"


async def main():
    # The SDK hands the server only a short list of variables (HOME, PATH, ...) unless told:
    # toolgate must see the test's own XDG folders, not the user's trust record and queue.
    server = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    callback = None if behaviour == "none" else elicitation
    out = {}
    async with Client(server, mode=mode, elicitation_callback=callback, read_timeout_seconds=30) as client:
        out["first"] = await call(client, marker)
        if behaviour == "session":
            out["second"] = await call(client, marker + ".2")
    out["seen"] = seen
    print(json.dumps(out))


anyio.run(main)
