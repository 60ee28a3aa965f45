"""A small MCP server built with the official Python SDK (mcp 2.3.0), for toolgate's tests."""
import os

import anyio
import mcp_types as types
from pydantic import BaseModel

from typing import Annotated

from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve

server = MCPServer("toolgate-test-sdk-server")


@server.tool(description=os.environ.get("ECHO_DESCRIPTION", "Echo the text back."))
def echo(text: str) -> str:
    return text


@server.tool()
async def count(n: int, ctx: Context) -> str:
    """Count to n, reporting progress."""
    for i in range(n):
        await ctx.report_progress(i + 1, n, f"step {i + 1}")
    return f"counted to {n}"


class Name(BaseModel):
    name: str


@server.tool()
async def ask_name(ctx: Context) -> str:
    """Ask the user for their name."""
    answer = await ctx.elicit("What is your name?", Name)
    return f"{answer.action}: {answer.data.name if answer.action == 'accept' else '-'}"


@server.tool()
async def summarize(text: str, ctx: Context) -> str:
    """Ask the client's model to summarize."""
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=text))
    result = await ctx.session.create_message(messages=[message], max_tokens=10)
    return f"model said: {result.content.text}"


class Confirm(BaseModel):
    sure: bool


def ask_sure(path: str):
    return Elicit(f"Really write {path}?", Confirm)


@server.tool()
def confirmed_write(path: str, confirm: Annotated[Confirm, Resolve(ask_sure)]) -> str:
    """Write a marker file after the server's own question to the user (its own elicitation)."""
    if not confirm.sure:
        return "not written"
    with open(path, "w") as f:
        f.write("written")
    return "written"


@server.tool()
def write_marker(path: str) -> str:
    """Write a marker file (the side effect tests watch for)."""
    with open(path, "w") as f:
        f.write("written")
    return "written"


@server.tool()
async def slow() -> str:
    """Take a minute."""
    await anyio.sleep(60)
    return "done"


if __name__ == "__main__":
    server.run()
