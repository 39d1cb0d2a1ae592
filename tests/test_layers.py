"""The import arrows docs/architecture.md draws, for the packages outside the apps: the server and the local
tools import no app, and core imports none either; and for the console, which reads and changes only through the
apps' services and selectors (with their serializers and the chat views' streaming helpers), never a store,
Redis or the upstream's client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = {"accounts", "conversations", "llm_provider", "system"}
# What the console may import of an app: its use cases and reads, and how the API parses and renders them.
CONSOLE_MAY_USE = {"services", "selectors", "serializers", "export_serializers", "views", "exceptions", "models"}
CONSOLE_MAY_USE |= {"session_ids"}  # the pattern of a session id, for the URLs


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from accounts import services` imports the module accounts.services.
            names.update(f"{node.module}.{alias.name}" if node.module in APPS else node.module for alias in node.names)
    return names


def imported_packages(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


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


def test_the_console_uses_the_apps_only_through_their_services_and_selectors():
    paths = sorted((ROOT / "console").rglob("*.py"))
    assert paths
    for path in paths:
        where = path.relative_to(ROOT)
        modules = imported_modules(path)
        assert not {name.split(".")[0] for name in modules} & {"redis", "httpx", "httpcore", "chatbot_project"}, where
        assert not {name for name in modules if name.startswith(("core.redis", "core.store"))}, where
        for name in modules:
            parts = name.split(".")
            if parts[0] in APPS:
                assert len(parts) == 2 and parts[1] in CONSOLE_MAY_USE, (where, name)
