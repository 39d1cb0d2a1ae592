"""`make run`, `make dev` and `make test` on a fresh machine: when no Redis answers at the local address the
service will use, start one (Debian's redis-server, installed with apt-get where this runs as root), keeping
nothing on disk. A REDIS_URL pointing anywhere but this machine is never touched.

Run as `python -m devtools.local_redis [REDIS_URL]`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from urllib.parse import urlsplit

import redis
from dotenv import dotenv_values

DEFAULT_URL = "redis://127.0.0.1:6379/0"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def redis_url_in_use() -> str:
    """REDIS_URL as the service will read it: the environment, else .env, else the default."""
    return os.environ.get("REDIS_URL") or dotenv_values(".env").get("REDIS_URL") or DEFAULT_URL


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("No redis-server here: installing Debian's (apt-get install redis-server)...", flush=True)
        quiet = {"stdout": subprocess.DEVNULL, "check": True}
        subprocess.run(["apt-get", "update", "-qq"], **quiet)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], env=env, **quiet)
        found = shutil.which("redis-server")
    return found


def local_redis_ensure(url: str) -> str | None:
    """Starts a Redis for `url` when it is local and nothing answers there; says what it did, or None."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or parts.hostname not in LOCAL_HOSTS or _answers(url):
        return None
    server = _redis_server()
    if server is None:
        sys.exit(
            f"No Redis answers at {parts.hostname}:{parts.port or 6379} and redis-server is not installed: install "
            "it (apt-get install redis-server, brew install redis) or set REDIS_URL."
        )
    port = str(parts.port or 6379)
    command = [server, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not _answers(url):
        if time.monotonic() > deadline:
            sys.exit(f"Started redis-server on port {port}, but it does not answer.")
        time.sleep(0.05)
    return f"Started a local Redis on 127.0.0.1:{port} for this service; it keeps nothing on disk."


if __name__ == "__main__":
    done = local_redis_ensure(sys.argv[1] if len(sys.argv) > 1 else redis_url_in_use())
    if done:
        print(done)
