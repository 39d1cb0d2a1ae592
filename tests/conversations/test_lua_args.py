"""Each turn script names its arguments in the order of the dataclass its caller builds them from."""

from __future__ import annotations

import re

import pytest

from conversations.history.redis_scripts import (
    _BEGIN,
    _FINISH,
    _RELEASE,
    RESERVE_SCRIPT,
    BeginArgs,
    FinishArgs,
    ReleaseArgs,
    ReserveArgs,
)
from conversations.limits import TAKE_SLOT_LUA, SlotArgs
from core.lua_args import lua_argv, lua_argv_names


def names_in(lua: str, pattern: str) -> list[str]:
    found = re.search(pattern, lua, re.DOTALL)
    assert found, pattern
    return [name.strip() for name in found.group(1).split(",")]


@pytest.mark.parametrize(
    ("lua", "args"),
    [(_BEGIN, BeginArgs), (_FINISH, FinishArgs), (RESERVE_SCRIPT, ReserveArgs), (_RELEASE, ReleaseArgs)],
)
def test_a_turn_script_names_its_arguments_in_their_dataclass_order(lua, args):
    assert names_in(lua, r"local ([\w,\s]+?) = unpack\(ARGV") == lua_argv_names(args)


def test_the_slot_function_names_its_arguments_in_their_dataclass_order():
    parameters = names_in(TAKE_SLOT_LUA, r"local function take_slot\(([\w,\s]+)\)")
    assert parameters == ["rate_key", "active_key", *lua_argv_names(SlotArgs)]
    # The begin script takes them first, under the same names.
    assert lua_argv_names(BeginArgs)[: len(parameters) - 2] == lua_argv_names(SlotArgs)


def test_the_finish_script_takes_the_messages_after_its_named_arguments():
    named = len(lua_argv_names(FinishArgs))
    assert f"unpack(ARGV, 1, {named})" in _FINISH and f"for i = {named} + 1, #ARGV" in _FINISH
    args = FinishArgs(*range(named), messages=["a", "b"])
    assert lua_argv(args)[named:] == ["a", "b"]
