"""`make run`, `make dev` and `make test` on a fresh machine: when no Redis answers at the default address
(127.0.0.1:6379), start one there (Debian's redis-server, installed with apt-get where this runs as root) that keeps
its data in the project's `.redis/` across restarts. Any other address is never started: a REDIS_URL with a
mistyped port must not quietly get an empty Redis of its own.

Run as `python -m devtools.local_redis [REDIS_URL]`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis
from dotenv import dotenv_values

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PORT = 6379
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
DATA_DIR = Path(__file__).resolve().parent.parent / ".redis"


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


def local_redis_ensure(url: str, *, managed_port: int = DEFAULT_PORT, data_dir: Path = DATA_DIR) -> str | None:
    """Starts a Redis for `url` when it names this machine's `managed_port` and nothing answers there; says what
    it did, or None. Exits with a message when `url` names another local port where nothing answers."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or parts.hostname not in LOCAL_HOSTS or _answers(url):
        return None
    port = parts.port or DEFAULT_PORT
    if port != managed_port:
        sys.exit(
            f"No Redis answers at {parts.hostname}:{port} (REDIS_URL). A local Redis is started only at the default "
            f"address, 127.0.0.1:{managed_port}: start yours at {port}, or fix the port in REDIS_URL."
        )
    server = _redis_server()
    if server is None:
        sys.exit(
            f"No Redis answers at {parts.hostname}:{port} and redis-server is not installed: install "
            "it (apt-get install redis-server, brew install redis) or set REDIS_URL."
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        server, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port),
        # An append-only file in the project, so that admins, keys and conversations outlive a restart.
        "--dir", str(data_dir), "--appendonly", "yes", "--save", "",
        "--logfile", str(data_dir / "redis.log"), "--pidfile", str(data_dir / f"redis-{port}.pid"),
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not _answers(url):
        if time.monotonic() > deadline:
            sys.exit(f"Started redis-server on port {port}, but it does not answer (see {data_dir / 'redis.log'}).")
        time.sleep(0.05)
    return (
        f"Started a local Redis on 127.0.0.1:{port} for this service; it keeps its data in {data_dir}. "
        f"Stop it with: redis-cli -p {port} shutdown"
    )


if __name__ == "__main__":
    done = local_redis_ensure(sys.argv[1] if len(sys.argv) > 1 else redis_url_in_use())
    if done:
        print(done)
