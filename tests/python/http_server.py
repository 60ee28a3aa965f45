"""A Streamable HTTP MCP server built with the official Python SDK (mcp 2.3.0), for toolgate's
`run --url` tests.

Usage: http_server.py LOG [--json] [--resumable] [--sse]

Binds 127.0.0.1 on a free port and prints the port on its first line of stdout once it listens.
Every HTTP request it gets is logged to LOG as one JSON line: method, the MCP headers and
`X-Test-Token`, and the JSON-RPC method and tool name of a POST. A `tools/call` of the tool
`explode` gets HTTP 500 before the SDK sees it, one of `expire` HTTP 404 (as for a session the
server forgot), one of `refuse` HTTP 400 with a JSON-RPC error of its own. `--json` answers with JSON bodies instead of
SSE streams. `--resumable` keeps the events in memory and gives them ids, so that a stream the
server closes (the tool `polled` closes its own before it answers) can be resumed with
`Last-Event-ID`. `--sse` serves the HTTP+SSE transport of 2024-11-05 instead (GET `/sse` for the
event stream, POSTs to the endpoint it names), as a server that predates Streamable HTTP does.
"""
import json
import socket
import sys
from typing import Annotated

import anyio
import uvicorn
from pydantic import Field

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
