"""A Lua script's ARGV as one typed value: a dataclass whose fields the script names in the same order (its line
`local a, b, c = unpack(ARGV)`, or a Lua function's parameters). A last field holding a list is the unnamed rest:
its items follow the named arguments."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

LuaArg = str | int | float


def lua_argv(args: Any) -> list[LuaArg]:
    """The dataclass `args` as ARGV: its fields in order, a list's items in its place, True and False as 1 and 0,
    None as ''."""
    argv: list[LuaArg] = []
    for item in fields(args):
        value = getattr(args, item.name)
        if isinstance(value, list | tuple):
            argv.extend(value)
        elif isinstance(value, bool):
            argv.append(int(value))
        else:
            argv.append("" if value is None else value)
    return argv


def lua_argv_names(cls: type) -> list[str]:
    """The names the script gives its arguments, in order: `cls`'s fields but a list (the unnamed rest)."""
    return [item.name for item in fields(cls) if not str(item.type).startswith("list[")]
