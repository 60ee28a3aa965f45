"""MCP servers built with the official Python SDK (mcp 2.3.0) whose tools leave a file on disk
when, and only when, they act on an argument: the side effect tests/readings_python.rs watches
for. Each tool reads its arguments the way the SDK and pydantic do, so a value like "true",
"5_000" or '{"recursive": true}' means what it means to a real Python server.

Without arguments it is an MCPServer (pydantic models of the tools' signatures). With
`lowlevel` it is the SDK's low-level server, which does what MCPServer never does: it folds the
tool name it is called with, lists one tool twice with two schemas, and runs a tool it never
lists. Paths are relative to the working folder the server is started in.
"""
import os
import sys
import unicodedata
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import anyio
import mcp_types as types
from pydantic import BaseModel, TypeAdapter

from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server


def mark(path: str) -> str:
    """The side effect: a file at `path`."""
    with open(path, "w") as f:
        f.write("done")
    return f"wrote {path}"


def wipe_folder(path: str, recursive: bool) -> str:
    os.makedirs(path, exist_ok=True)
    return mark(os.path.join(path, "wiped-recursive" if recursive else "wiped"))


def paid(to: str, amount: Any) -> str:
    os.makedirs(to, exist_ok=True)
    return mark(os.path.join(to, f"paid-{amount}"))


class Options(BaseModel):
    recursive: bool = False


server = MCPServer("toolgate-readings")


@server.tool()
def wipe(path: str, recursive: bool) -> str:
    """Wipe a folder (writes PATH/wiped-recursive or PATH/wiped)."""
    return wipe_folder(path, recursive)


@server.tool()
def wipe_any(path: str, recursive: Any = False) -> str:
    """Wipe a folder; `recursive` has no declared type and is taken by its truthiness."""
    return wipe_folder(path, bool(recursive))


@server.tool()
def configure(path: str, options: Options) -> str:
    """Wipe a folder with options given as a nested model."""
    return wipe_folder(path, options.recursive)


@server.tool()
def configure_any(path: str, options: Any = None) -> str:
    """Wipe a folder with options of no declared type: a mapping whose `recursive` is truthy."""
    return wipe_folder(path, isinstance(options, dict) and bool(options.get("recursive")))


@server.tool()
def pay(to: str, amount: int) -> str:
    """Pay an integer amount (writes TO/paid-AMOUNT)."""
    return paid(to, amount)


@server.tool()
def pay_float(to: str, amount: float) -> str:
    """Pay an amount read as a float."""
    return paid(to, amount)


@server.tool()
def pay_decimal(to: str, amount: Decimal) -> str:
    """Pay an exact amount."""
    return paid(to, amount)


@server.tool()
def write_marker(path: str) -> str:
    """Write a file, with ~ and $VARIABLES expanded as many Python tools do."""
    return mark(os.path.expandvars(os.path.expanduser(path)))


@server.tool()
def save_url(url: str) -> str:
    """Write the file a file: URL names."""
    return mark(url2pathname(urlparse(url).path))


@server.tool()
def touch_all(paths: list[str]) -> str:
    """Write a file at each path."""
    return "; ".join(mark(p) for p in paths)


@server.tool()
def touch(paths: str | list[str]) -> str:
    """Write a file at a path, or at each of a list of paths."""
    return "; ".join(mark(p) for p in ([paths] if isinstance(paths, str) else paths))


def flag_schema(recursive: dict) -> dict:
    return {
        "type": "object",
        "properties": {"path": {"type": "string"}, "recursive": recursive},
        "required": ["path"],
    }


LOW_LEVEL_TOOLS = [
    types.Tool(name="delete", input_schema={"type": "object", "properties": {"path": {"type": "string"}}}),
    types.Tool(name="wipe", input_schema=flag_schema({"type": "boolean"})),
    types.Tool(name="dup", input_schema=flag_schema({"type": "boolean"})),
    types.Tool(name="dup", input_schema=flag_schema({"type": "string"})),
    types.Tool(name="remote", input_schema=flag_schema({"$ref": "https://example.invalid/flag.json"})),
    # `unlisted` runs but is never listed.
]


async def list_tools(ctx, params) -> types.ListToolsResult:
    return types.ListToolsResult(tools=LOW_LEVEL_TOOLS)


async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    # Tool names are looked up folded: `DELETE` and fullwidth `ｄｅｌｅｔｅ` are `delete`.
    name = unicodedata.normalize("NFKC", params.name).lower()
    args = params.arguments or {}
    if name == "delete":
        os.makedirs(args["path"], exist_ok=True)
        text = mark(os.path.join(args["path"], "deleted"))
    elif name in ("wipe", "dup", "remote", "unlisted"):
        text = wipe_folder(args["path"], TypeAdapter(bool).validate_python(args.get("recursive", False)))
    else:
        text = f"unknown tool {params.name!r}"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


async def run_low_level() -> None:
    low = Server("toolgate-readings-lowlevel", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read, write):
        await low.run(read, write, low.create_initialization_options())


if __name__ == "__main__":
    if sys.argv[1:] == ["lowlevel"]:
        anyio.run(run_low_level)
    else:
        server.run()
