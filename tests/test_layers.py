"""The import arrows docs/architecture.md draws, for the packages outside the apps: the server and the local
tools import no app, and core imports none either."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = {"accounts", "conversations", "llm_provider", "system"}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("files", "ruled_out"),
    [
        (["gunicorn.conf.py"], APPS),
        (["server/*.py"], APPS | {"chatbot_project", "devtools"}),
        (["devtools/*.py"], APPS | {"chatbot_project", "core", "server"}),
        (["core/*.py"], APPS | {"chatbot_project", "server", "devtools"}),
    ],
)
def test_a_package_imports_nothing_the_architecture_rules_out(files, ruled_out):
    paths = [path for pattern in files for path in sorted(ROOT.glob(pattern))]
    assert paths
    for path in paths:
        assert not imported_packages(path) & ruled_out, path.relative_to(ROOT)
