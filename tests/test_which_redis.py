"""A command run in another shell than the server's names the Redis it used and where its address came from, so
that "No admin named ..." in the wrong Redis is not taken for a missing admin."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import GOOD_SETTINGS, ROOT


def _manage(*args: str, **overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    env.update(GOOD_SETTINGS, **overrides)
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_command_that_finds_no_admin_names_the_redis_it_looked_in(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"REDIS_URL={os.environ['REDIS_URL']}\n")

    result = _manage("createapikey", "nobody", ENV_FILE=str(env_file), REDIS_URL=None)

    assert result.returncode != 0
    assert f"No admin named 'nobody' in the Redis at {os.environ['REDIS_URL']}" in result.stderr
    assert f"(REDIS_URL from {env_file})" in result.stderr
    assert f"key prefix {os.environ['REDIS_KEY_PREFIX']!r}" in result.stderr
    assert "Traceback" not in result.stderr


def test_listadmins_names_the_redis_it_lists(alice):
    result = _manage("listadmins")

    assert result.returncode == 0, result.stderr
    assert f"Admins in the Redis at {os.environ['REDIS_URL']} (REDIS_URL from the environment)" in result.stderr
    assert "alice" in result.stdout
