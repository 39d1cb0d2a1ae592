"""Bad configuration stops startup with a message that names the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

from devtools.local_env import local_env_prepare
from tests.support import GOOD_SETTINGS, ROOT, manage_check


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
        ("MAX_SESSIONS_PER_ADMIN", "0"),
        ("MAX_SESSIONS_PER_ADMIN", "1001"),  # more than MAX_CACHE_SIZE
        ("MAX_STORED_RESPONSES", "0"),
        ("MAX_STORED_RESPONSES", "10001"),
        ("DEBUG", "maybe"),
        ("HISTORY_BACKEND", "memcached"),
        ("LLM_PROVIDER", "openai"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "1.5"),
        ("REDIS_TIMEOUT_SECONDS", "nan"),
        ("GROQ_BASE_URL", "api.groq.com/openai/v1"),
        ("GROQ_BASE_URL", "ftp://api.groq.com"),
        ("MAX_REQUEST_MESSAGES", "0"),
        ("MAX_REQUEST_CHARS", "100"),  # below MAX_MESSAGE_CHARS
    ],
)
def test_a_bad_value_stops_startup_naming_the_variable(name, value):
    result = manage_check(**{name: value})

    assert result.returncode != 0
    assert name in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"REDIS_CLUSTER": "true", "REDIS_URL": "redis://127.0.0.1:7000/3"}, "REDIS_CLUSTER"),
        ({"REDIS_CLUSTER": "true", "REDIS_SENTINELS": "127.0.0.1:26379"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "127.0.0.1:26379"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINELS": "127.0.0.1", "REDIS_SENTINEL_MASTER": "chatbot"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "127.0.0.1:0", "REDIS_SENTINEL_MASTER": "chatbot"}, "REDIS_SENTINELS"),
        ({"REDIS_KEY_PREFIX": "chat{bot}"}, "REDIS_KEY_PREFIX"),
        ({"REDIS_WAIT_REPLICAS": "-1"}, "REDIS_WAIT_REPLICAS"),
    ],
)
def test_a_bad_redis_topology_stops_startup_naming_the_variable(overrides, named):
    result = manage_check(**overrides)

    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("secret", ["", "short-secret"])
def test_production_refuses_a_missing_or_short_secret_key(secret):
    result = manage_check(SECRET_KEY=secret)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_runs_without_a_secret_key():
    result = manage_check(DEBUG="true", SECRET_KEY="")
    assert result.returncode == 0, result.stderr


def gunicorn_worker_and_chat_cap(**overrides: str) -> str:
    """The worker class gunicorn.conf.py gives, and MAX_CHATS_IN_FLIGHT, in a fresh process."""
    code = (
        "import runpy; from django.conf import settings; "
        "print(runpy.run_path('gunicorn.conf.py')['worker_class'], settings.MAX_CHATS_IN_FLIGHT, "
        "settings.LLM_MAX_CONNECTIONS)"
    )
    names = {"DEBUG", "MAX_CHATS_IN_FLIGHT", "CHATS_MEMORY_MIB", "LLM_MAX_CONNECTIONS"}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(GOOD_SETTINGS, **overrides)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "655 671"),  # 64 MiB at 100 KiB a chat; a pooled upstream connection for each, and 16 more
        ({"CHATS_MEMORY_MIB": "1024"}, "10485 10501"),
        ({"MAX_CHATS_IN_FLIGHT": "40"}, "40 56"),
        ({"MAX_CHATS_IN_FLIGHT": "40", "LLM_MAX_CONNECTIONS": "8"}, "40 8"),
    ],
)
def test_chats_in_flight_follow_the_memory_given_to_them(overrides, expected):
    assert gunicorn_worker_and_chat_cap(**overrides) == f"server.worker.GuardedGeventWorker {expected}"


def test_a_copy_of_env_example_runs_once_make_run_fills_in_its_secret_key(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text())

    assert local_env_prepare(env_file) is not None
    result = manage_check(ENV_FILE=str(env_file), SECRET_KEY=None, DEBUG=None)

    assert result.returncode == 0, result.stderr
    assert local_env_prepare(env_file) is None  # a filled-in key is kept


def test_make_run_writes_a_local_env_when_there_is_none(tmp_path):
    env_file = tmp_path / ".env"

    local_env_prepare(env_file)

    assert "DEBUG=true" in env_file.read_text()
    assert manage_check(ENV_FILE=str(env_file), SECRET_KEY=None, DEBUG=None).returncode == 0


def test_the_redis_pool_has_a_connection_for_every_chat_and_stream_relay():
    from core.redis_store import redis_client

    pool = redis_client().connection_pool
    assert pool.max_connections >= 2 * django_settings.MAX_CHATS_IN_FLIGHT


def test_the_redis_pool_reconnects_once_and_never_retries_a_timeout():
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from core.redis_store import redis_client

    retry = redis_client().connection_pool.connection_kwargs["retry"]
    assert retry.get_retries() == 1
    assert RedisConnectionError in retry._supported_errors
    assert RedisTimeoutError not in retry._supported_errors


def test_a_server_started_from_wsgi_alone_refuses_a_weak_secret_key():
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    env.update(GOOD_SETTINGS, SECRET_KEY="short-secret")
    result = subprocess.run(
        [sys.executable, "-c", "import chatbot_project.wsgi"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode != 0
    assert "SECRET_KEY must be at least 32 characters long" in result.stderr
