"""Bad configuration stops startup with a message that names the variable."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD = {"SECRET_KEY": secrets.token_urlsafe(48), "DEBUG": "false", "ENV_FILE": "", "DJANGO_SETTINGS_MODULE": "chatbot_project.settings"}


def manage_check(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    env.update(GOOD)
    env.update(overrides)
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_good_settings_pass():
    result = manage_check()
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TEMPERATURE", "abc"),
        ("TEMPERATURE", "2.5"),
        ("MEMORY_TTL_SECONDS", "-5"),
        ("MAX_TOKENS", "lots"),
        ("MAX_CACHE_SIZE", "0"),
        ("DEBUG", "maybe"),
        ("HISTORY_BACKEND", "memcached"),
        ("LLM_PROVIDER", "openai"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "1.5"),
        ("REDIS_TIMEOUT_SECONDS", "nan"),
        ("MAX_REQUEST_MESSAGES", "0"),
        ("MAX_REQUEST_CHARS", "100"),  # below MAX_MESSAGE_CHARS
    ],
)
def test_a_bad_value_stops_startup_naming_the_variable(name, value):
    result = manage_check(**{name: value})

    assert result.returncode != 0
    assert name in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("secret", ["", "short-secret"])
def test_production_refuses_a_missing_or_short_secret_key(secret):
    result = manage_check(SECRET_KEY=secret)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_runs_without_a_secret_key():
    result = manage_check(DEBUG="true", SECRET_KEY="")
    assert result.returncode == 0, result.stderr
