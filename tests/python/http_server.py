"""A Streamable HTTP MCP server built with the official Python SDK (mcp 2.3.0), for toolgate's
`run --url` tests.

Usage: http_server.py LOG [--json] [--resumable] [--sse]
       http_server.py LOG --stdio

Binds 127.0.0.1 on a free port and prints the port on its first line of stdout once it listens.
Every HTTP request it gets is logged to LOG as one JSON line: method, the MCP headers and
`X-Test-Token`, and the JSON-RPC method and tool name of a POST. A `tools/call` of the tool
`explode` gets HTTP 500 before the SDK sees it, one of `expire` HTTP 404 (as for a session the
server forgot), one of `refuse` HTTP 400 with a JSON-RPC error of its own. `--json` answers with JSON bodies instead of
SSE streams. `--resumable` keeps the events in memory and gives them ids, so that a stream the
server closes (the tool `polled` closes its own before it answers) can be resumed with
`Last-Event-ID`. `--sse` serves the HTTP+SSE transport of 2024-11-05 instead (GET `/sse` for the
event stream, POSTs to the endpoint it names), as a server that predates Streamable HTTP does.

`--stdio` serves the same tools over stdio instead, as a local server: the tests compare how
toolgate's rules treat one tool served either way.

For the session the TypeScript SDK client plays (`tests/node/session_client.mjs`): `count_up`
reports progress, `summarise` asks the client for a sampling, `ask_name` for an elicitation,
`hang` reports progress once and then waits for a cancellation. A client's
`notifications/roots/list_changed` makes the server ask `roots/list` outside any call (on the
GET stream), write the roots to the file LOG.roots, then say so in a log message.
"""
import asyncio
import json
import os
import socket
import sys
from typing import Annotated

import anyio
import uvicorn
from pydantic import Field

from mcp import types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventMessage, EventStore

server = MCPServer("toolgate-test-http-server")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@server.tool()
def write_marker(path: str) -> str:
    """Write a marker file (the side effect tests watch for)."""
    with open(path, "w") as f:
        f.write("written")
    return "written"


@server.tool()
async def slow(path: str) -> str:
    """Write a marker file saying it started, then take a minute."""
    with open(path, "w") as f:
        f.write("started")
    await anyio.sleep(60)
    return "done"


@server.tool()
def regional(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], text: str) -> str:
    """Echo the text from a region: a 2026-07-28 client sends the region as `Mcp-Param-Region` too."""
    return f"{region}: {text}"


@server.tool()
def explode() -> str:
    """Never reached: the server answers HTTP 500 first."""
    return "not reached"


@server.tool()
def refuse() -> str:
    """Never reached: the server answers HTTP 400 with a JSON-RPC error first."""
    return "not reached"


@server.tool()
def expire() -> str:
    """Never reached: the server answers HTTP 404 first."""
    return "not reached"


@server.tool()
async def polled(text: str, ctx: Context) -> str:
    """Close this call's stream, then answer: the client must resume the stream to read it."""
    await ctx.close_sse_stream()
    await anyio.sleep(0.2)
    return text


@server.tool()
async def count_up(steps: int, ctx: Context) -> str:
    """Report progress at each step."""
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
    return f"counted to {steps}"


@server.tool()
async def summarise(text: str, ctx: Context) -> str:
    """Ask the client's model for a summary (sampling)."""
    result = await ctx.session.create_message(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=text))],
        max_tokens=50,
        related_request_id=ctx.request_id,
    )
    return f"{result.model}: {result.content.text}"


@server.tool()
async def ask_name(ctx: Context) -> str:
    """Ask the user for a name (elicitation)."""
    result = await ctx.session.elicit_form(
        "Who is there?",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        ctx.request_id,
    )
    return f"{result.action}: {json.dumps(result.content, sort_keys=True)}"


@server.tool()
async def hang(ctx: Context) -> str:
    """Report progress once, then wait for a cancellation."""
    await ctx.report_progress(1, 2, "started")
    await anyio.sleep(60)
    return "not cancelled"


ROOTS_TASKS = set()


async def roots_changed(ctx, params) -> None:
    # Asked from a task of its own: the notification's handler must not wait on the client.
    async def ask():
        roots = await ctx.session.list_roots()
        uris = [str(r.uri) for r in roots.roots]
        with open(sys.argv[1] + ".roots", "w") as f:
            f.write("\n".join(uris))
        await ctx.session.send_log_message("info", f"roots: {len(uris)}", logger="roots")

    task = asyncio.get_running_loop().create_task(ask())
    ROOTS_TASKS.add(task)
    task.add_done_callback(ROOTS_TASKS.discard)


server._lowlevel_server.add_notification_handler(
    "notifications/roots/list_changed", types.NotificationParams, roots_changed
)


class MemoryEventStore(EventStore):
    def __init__(self):
        self.events = []

    async def store_event(self, stream_id, message):
        event_id = str(len(self.events) + 1)
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback):
        ids = [e[0] for e in self.events]
        if last_event_id not in ids:
            return None
        at = ids.index(last_event_id)
        stream_id = self.events[at][1]
        for event_id, stream, message in self.events[at + 1:]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


def logging_app(app, log_path):
    async def logged(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        entry = {
            "http": scope["method"],
            "path": scope["path"],
            "session": headers.get("mcp-session-id"),
            "version": headers.get("mcp-protocol-version"),
            "token": headers.get("x-test-token"),
            "last_event_id": headers.get("last-event-id"),
            "mcp_method": headers.get("mcp-method"),
            "mcp_name": headers.get("mcp-name"),
            "mcp_param_region": headers.get("mcp-param-region"),
        }
        try:
            parsed = json.loads(body) if body else {}
            entry["method"] = parsed.get("method")
            entry["tool"] = (parsed.get("params") or {}).get("name")
        except ValueError:
            pass
        with open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if entry.get("tool") == "explode":
            await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"boom"})
            return
        if entry.get("tool") == "refuse":
            # A JSON-RPC error of the server's own, under the request's id, with HTTP 400.
            error = {"jsonrpc": "2.0", "id": parsed["id"], "error": {"code": -32020, "message": "Header mismatch: test"}}
            await send({"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": json.dumps(error).encode()})
            return
        if entry.get("tool") == "expire":
            # What a server answers once it forgot the session.
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await app(scope, replay, send)

    return logged


def main():
    log_path = sys.argv[1]
    if "--stdio" in sys.argv[2:]:
        server.run("stdio")
        return
    json_response = "--json" in sys.argv[2:]
    resumable = "--resumable" in sys.argv[2:]
    if "--sse" in sys.argv[2:]:
        app = server.sse_app()
    else:
        app = server.streamable_http_app(
            json_response=json_response,
            event_store=MemoryEventStore() if resumable else None,
            retry_interval=100 if resumable else None,
        )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(logging_app(app, log_path), log_level="warning", lifespan="on")
    anyio.run(uvicorn.Server(config).serve, [sock])


if __name__ == "__main__":
    main()
