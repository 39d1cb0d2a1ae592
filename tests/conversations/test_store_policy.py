"""The history stores are given the chat limits and the usage totals as policy; they do not import them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HISTORY = Path(__file__).resolve().parents[2] / "conversations" / "history"


@pytest.mark.parametrize("module", sorted(p.name for p in HISTORY.glob("*.py")))
def test_a_history_module_imports_no_policy(module):
    tree = ast.parse((HISTORY / module).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not imported & {"conversations.limits", "conversations.usage", "conversations.stores"}
