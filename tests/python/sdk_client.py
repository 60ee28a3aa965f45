"""A client built with the official Python SDK (mcp 2.3.0) that runs one whole session against
a server command and prints what it saw as JSON.

usage: sdk_client.py MODE [--deny-check PATH] -- COMMAND ARGS...
"""
import json
import os
import sys

import anyio
import mcp_types as types

from mcp import Client, StdioServerParameters


def dump(result):
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def attempt(call):
    """The result, or the error, of one call: either way the same with and without toolgate."""
    try:
        return dump(await call)
    except Exception as e:
        return f"error: {type(e).__name__}: {e}"


async def main():
    argv = sys.argv[1:]
    mode = argv[0]
    marker = argv[argv.index("--deny-check") + 1] if "--deny-check" in argv else None
    command = argv[argv.index("--") + 1:]

    async def sampling(context, params):
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="a short summary"),
            model="fake-model", stop_reason="endTurn")

    async def elicitation(context, params):
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    # The SDK hands the server only a short list of variables (HOME, PATH, ...) unless told:
    # toolgate must see the test's own XDG folders, not the user's trust record and queue.
    server = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    out = {}
    async with Client(server, mode=mode, sampling_callback=sampling, elicitation_callback=elicitation,
                      read_timeout_seconds=30) as client:
        if marker:
            out["write_marker"] = dump(await client.call_tool("write_marker", {"path": marker}))
            print(json.dumps(out, sort_keys=True))
            return
        out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        out["protocol"] = client.session.protocol_version if hasattr(client.session, "protocol_version") else None
        out["echo"] = await attempt(client.call_tool("echo", {"text": "hello"}))
        progress = []

        async def on_progress(value, total, message):
            progress.append([value, total, message])

        out["count"] = await attempt(client.call_tool("count", {"n": 3}, progress_callback=on_progress))
        out["progress"] = progress
        out["ask_name"] = await attempt(client.call_tool("ask_name", {}))
        out["summarize"] = await attempt(client.call_tool("summarize", {"text": "a long story"}))
        with anyio.move_on_after(1) as scope:
            await client.call_tool("slow", {})
        out["slow_cancelled"] = scope.cancelled_caught
        out["after_cancel"] = await attempt(client.call_tool("echo", {"text": "still here"}))
    print(json.dumps(out, sort_keys=True))


anyio.run(main)
