"""Every management command, and the server's start, ends a failure of what it needs (Redis down, REDIS_URL not a
Redis URL) with one message that names the variable and the server and says what to do: a non-zero exit, no
traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.management import get_commands

from tests.server import server_command
from tests.support import GOOD_SETTINGS, ROOT, free_port

# Arguments that get each command past its argument parsing to its first Redis command.
COMMAND_ARGS = {
    "changeadminpassword": ["alice", "--password", "a-new-long-password"],
    "createadmin": ["carol", "--password", "a-new-long-password"],
    "createapikey": ["alice"],
    "deleteadmin": ["alice"],
    "ensureadmin": [],
    "listadmins": [],
    "listapikeys": [],
    "resetadmin": ["--generate"],
    "revokeapikey": ["0123456789abcdef"],
    "revoketokens": ["--all"],
    "setbudget": ["alice", "--tokens", "1000", "--period", "day"],
    "upgraderediskeys": [],
    "auditlog": [],
    "usage": [],
    "setlimits": ["alice", "--rpm", "10"],
    "updateapikey": ["0123456789abcdef", "--rpm", "10"],
}
# Commands that need no Redis: nothing of theirs can fail for it.
WITHOUT_REDIS = {"checkllm"}
OUR_APPS = {"accounts", "conversations", "llm_provider", "system", "core", "chatbot_project"}


def env_with(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "REDIS_URL", "TEST_REDIS_URL"}}
    return {**env, **GOOD_SETTINGS, "DEFAULT_ADMIN_PASSWORD": "a-strong-default-password", **overrides}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env_with(**env), capture_output=True, text=True, timeout=60
    )


def assert_one_message(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    output = result.stderr + result.stdout
    assert result.returncode != 0, output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) <= 5, output
    for text in expected:
        assert text in output, output


def test_every_command_of_the_service_is_covered():
    ours = {name for name, app in get_commands().items() if app.split(".")[0] in OUR_APPS}
    assert ours == set(COMMAND_ARGS) | WITHOUT_REDIS


@pytest.mark.parametrize("command", sorted(COMMAND_ARGS))
def test_a_command_with_redis_down_names_redis_url_and_how_to_start_one(command):
    url = f"redis://127.0.0.1:{free_port()}/0"

    result = manage(command, *COMMAND_ARGS[command], REDIS_URL=url)

    assert_one_message(result, f"Redis is not reachable at {url} (REDIS_URL)", "redis-server")


@pytest.mark.parametrize("command", ["listadmins", "createapikey", "ensureadmin"])
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:6379/0", "it must start with redis://, rediss:// or unix://"),
        ("redis://127.0.0.1:port/0", "Port could not be cast to integer value"),
    ],
)
def test_a_command_with_redis_url_not_a_redis_url_says_so(command, url, why):
    result = manage(command, *COMMAND_ARGS[command], REDIS_URL=url)

    assert_one_message(result, f"REDIS_URL={url} is not a Redis URL: {why}")


def test_a_password_in_redis_url_is_never_shown():
    url = f"redis://user:s3cret-pass@127.0.0.1:{free_port()}/0"

    result = manage("listadmins", REDIS_URL=url)

    assert_one_message(result, "(REDIS_URL)", "user:***@127.0.0.1")
    assert "s3cret-pass" not in result.stderr + result.stdout


def test_a_bad_setting_is_still_one_message():
    assert_one_message(manage("listadmins", TEMPERATURE="hot"), "TEMPERATURE")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:6379/0", "REDIS_URL=http://127.0.0.1:6379/0 is not a Redis URL"),
        ("redis://127.0.0.1:{port}/0", "Redis is not reachable at redis://127.0.0.1:{port}/0 (REDIS_URL)"),
    ],
)
def test_the_server_start_ends_with_one_message(url, expected):
    port = str(free_port())
    env = env_with(REDIS_URL=url.format(port=port))

    result = subprocess.run(server_command(0), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    output = result.stderr + result.stdout
    assert result.returncode != 0
    assert "Traceback" not in output
    assert expected.format(port=port) in output
