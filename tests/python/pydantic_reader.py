"""Reads values as the Python SDK server reads a tool's arguments, for tests/differential.rs.

Each input line is {"type": T, "value": V, "conditions": [...]}; each output line is pydantic's
reading of V as the one argument `v` of a tool whose parameter has type T, through the SDK's own
argument handling (`func_metadata(...).validate_arguments`: its JSON-text pre-parsing, then
pydantic's model validation in lax mode), with whether each condition holds on that reading, or
{"ok": false} when the SDK refuses it (then nothing runs). The first line out is every tool's
input schema, as the SDK lists it.

Conditions are evaluated here, on the reading, as the server's own code would: numbers exactly
(`Decimal`), a path as the file the server opens (`~` expanded, relative to its working folder,
symlinks resolved).
"""
import os
import json
import math
import sys
from decimal import Decimal

from pydantic import BaseModel

from mcp.server.mcpserver.utilities.func_metadata import func_metadata


class Options(BaseModel):
    recursive: bool


def t_bool(v: bool): ...
def t_int(v: int): ...
def t_float(v: float): ...
def t_decimal(v: Decimal): ...
def t_options(v: Options): ...
def t_list(v: list[str]): ...
def t_str(v: str): ...


TOOLS = {name[2:]: func_metadata(fn) for name, fn in list(globals().items()) if name.startswith("t_")}


def encode(value):
    """A reading as JSON that keeps what JSON cannot: exact numbers are strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"number": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"number": "NaN"}
        if math.isinf(value):
            return {"number": "Infinity" if value > 0 else "-Infinity"}
        return {"number": repr(value)}
    if isinstance(value, Decimal):
        if value.is_nan():
            return {"number": "NaN"}
        if value.is_infinite():
            return {"number": "Infinity" if value > 0 else "-Infinity"}
        return {"number": str(value)}
    if isinstance(value, BaseModel):
        return {k: encode(v) for k, v in value.model_dump().items()}
    if isinstance(value, list):
        return [encode(v) for v in value]
    return value


def exact(value):
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, (int, float, Decimal)):
        return Decimal(value)
    return None


def opened(path):
    """The file a server opens for `path`: `~` expanded, relative to its folder, links resolved."""
    try:
        return os.path.realpath(os.path.join(os.getcwd(), os.path.expanduser(path)))
    except ValueError:  # a NUL byte: open() refuses it, nothing is written
        return None


def holds(read, condition):
    op, bound = condition["op"], condition["bound"]
    if "member" in condition:
        read = getattr(read, condition["member"])
    if op == "inside":
        paths = read if isinstance(read, list) else [read]
        files = [opened(p) for p in paths]
        return any(f is not None and (f == bound or f.startswith(bound + "/")) for f in files)
    if isinstance(bound, bool):
        return read is bound
    n, b = exact(read), Decimal(bound)
    if n is None or n.is_nan():
        return False
    return {"gt": n > b, "ge": n >= b, "lt": n < b, "le": n <= b, "eq": n == b}[op]


print(json.dumps({name: meta.arg_model.model_json_schema() for name, meta in TOOLS.items()}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    try:
        read = TOOLS[request["type"]].validate_arguments({"v": request["value"]})["v"]
    except Exception as e:  # the SDK refuses the call: nothing runs
        print(json.dumps({"ok": False, "why": str(e)[:200]}), flush=True)
        continue
    answer = {"ok": True, "value": encode(read), "holds": [holds(read, c) for c in request.get("conditions", [])]}
    print(json.dumps(answer), flush=True)
