"""The deployment page gives a production instance as written, even on a checkout where `make run` wrote its
development `.env`; an instance with DEBUG on says so at start, naming the file that set it."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.local_env import local_env_prepare
from tests.server import running_server
from tests.support import ROOT

_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
_STARTS_THE_SERVICE = re.compile(r"(^|\s)(make run|make dev|\S*gunicorn|\S*manage\.py runserver)(\s|$)")


def _service_starts(page: Path) -> list[dict[str, str]]:
    """The environment of each command in `page`'s code blocks that starts the service: the variables exported
    before it in its block and those given on its line."""
    starts = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", page.read_text(), re.DOTALL):
        exported: dict[str, str] = {}
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["export"]:
                exported.update(word.split("=", 1) for word in words[1:] if _ASSIGNMENT.match(word))
                continue
            given = dict(word.split("=", 1) for word in words if _ASSIGNMENT.match(word))
            if _STARTS_THE_SERVICE.search(" ".join(word for word in words if not _ASSIGNMENT.match(word))):
                starts.append({**exported, **given})
    return starts


def _debug_of(environment: dict[str, str], env_file: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    env.update({k: secrets.token_urlsafe(48) if v == "..." else v for k, v in environment.items()})
    env["ENV_FILE"] = str(env_file)
    code = "from chatbot_project import settings; print(settings.DEBUG)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_every_start_on_the_deployment_page_runs_in_production_mode_beside_make_runs_env(tmp_path):
    env_file = tmp_path / ".env"
    local_env_prepare(env_file)  # what `make run` leaves on a fresh checkout
    starts = _service_starts(ROOT / "docs" / "deployment.md")

    assert starts, "the deployment page starts the service somewhere"
    for environment in starts:
        assert _debug_of(environment, env_file) == "False", environment


@pytest.mark.parametrize("where", ["file", "environment"])
def test_an_instance_with_debug_on_says_so_at_start_naming_what_set_it(tmp_path, monkeypatch, where):
    env_file = tmp_path / ".env"
    local_env_prepare(env_file)
    monkeypatch.delenv("DEBUG", raising=False)
    if where == "environment":
        env_file.write_text(env_file.read_text().replace("DEBUG=true", ""))
        monkeypatch.setenv("DEBUG", "true")
    log = tmp_path / "server.log"

    with (
        log.open("wb") as output,
        running_server(log=output, DJANGO_SETTINGS_MODULE="chatbot_project.settings", ENV_FILE=str(env_file)),
    ):
        pass

    text = log.read_text()
    source = str(env_file) if where == "file" else "the environment"
    assert f"DEBUG is on (set by {source})" in text, text
    assert "not fit for production" in text


def test_an_instance_with_debug_off_says_nothing_about_it(tmp_path):
    log = tmp_path / "server.log"
    with log.open("wb") as output, running_server(log=output):
        pass

    assert "DEBUG is on" not in log.read_text()
