"""The processes a benchmark runs: the fake upstream, the service and the floor under gunicorn, with CPU and memory
readings from /proc."""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer at {url} within {seconds:.0f}s") from None
            time.sleep(0.1)


def stop(process: subprocess.Popen, seconds: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """CPU time of `pid` (user + system); with_children adds its live children and the children it reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields after the command: state is [0], utime [11], stime [12], cutime [13], cstime [14].
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
        return ticks / CLOCK_TICKS + sum(cpu_seconds(child) for child in children(pid))
    return ticks / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds every core spent busy since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def wait_for_quiet(max_busy_cores: float = 0.3, max_wait: float = 30.0) -> float:
    """Waits (at most `max_wait` seconds) until the machine is nearly idle, since anything else running shares
    the two cores with the benchmark; returns the busy cores seen last."""
    deadline = time.monotonic() + max_wait
    while True:
        before, started = machine_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        busy = (machine_busy_seconds() - before) / (time.monotonic() - started)
        if busy <= max_busy_cores or time.monotonic() > deadline:
            return round(busy, 2)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Fake:
    process: subprocess.Popen
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/openai/v1"

    def control(self, action: str, body: dict | None = None) -> None:
        response = httpx.post(f"http://127.0.0.1:{self.port}/_fake/{action}", json=body or {}, timeout=10)
        response.raise_for_status()

    def set_latency(self, seconds: float) -> None:
        self.control("reset")
        self.control("config", {"latency": seconds})

    def set_stream(self, reply: str, chunk_delay: float) -> None:
        """Streamed replies of `reply`'s words, one chunk each, `chunk_delay` seconds apart."""
        self.control("reset")
        self.control("config", {"reply": reply, "chunk_delay": chunk_delay})


@contextmanager
def fake_upstream() -> Iterator[Fake]:
    """The tests' fake Groq upstream, standalone, in a process of its own."""
    port = free_port()
    command = [sys.executable, "-m", "tests.fake_groq", "--port", str(port), "--api-key", "bench-key"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/_fake/requests", process, "the fake upstream")
        yield Fake(process, port)
    finally:
        stop(process)


@dataclass
class Service:
    process: subprocess.Popen
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        return children(self.process.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid, with_children=True)

    def workers_rss(self) -> int:
        return sum(rss_bytes(pid) for pid in self.workers())


def image_env() -> dict[str, str]:
    """The environment the Dockerfile's ENV instructions give the image's processes."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def service_env(*, fake: Fake, redis_url: str, key_prefix: str, admin_password: str, **extra: str) -> dict[str, str]:
    """A production environment: DEBUG off, a random SECRET_KEY, a strong default admin password, the fake
    upstream as Groq, and a Redis database and key prefix of the benchmark's own."""
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    return {
        **keep,
        "DJANGO_SETTINGS_MODULE": "chatbot_project.settings",
        "ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DEFAULT_ADMIN_PASSWORD": admin_password,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": key_prefix,
        "GROQ_API_KEY": "bench-key",
        "GROQ_BASE_URL": fake.base_url,
        # One admin drives all the load here: its per-admin limits are raised, not switched off, so their
        # Redis round trips are still measured.
        "CHAT_REQUESTS_PER_MINUTE": "100000000",
        "CHAT_MAX_CONCURRENT": "100000",
        # And its sessions: a thousand streams in new sessions are a thousand sessions locked at once, past the
        # defaults (1,000 in all, 100 per admin), which would answer 503 history_full.
        "MAX_SESSIONS": "100000",
        "MAX_SESSIONS_PER_ADMIN": "100000",
        **extra,
    }


@contextmanager
def service(env: dict[str, str], log_path: Path) -> Iterator[Service]:
    """The service as `make run` starts it: gunicorn with gunicorn.conf.py."""
    with _gunicorn(["-c", "gunicorn.conf.py"], "chatbot_project.wsgi", env, log_path, "the service") as running:
        yield running


def floor_env(*, fake: Fake) -> dict[str, str]:
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    return {**keep, "GROQ_API_KEY": "bench-key", "GROQ_BASE_URL": fake.base_url}


@contextmanager
def floor(env: dict[str, str], gunicorn: dict, log_path: Path) -> Iterator[Service]:
    """bench/floor.py's bare view under the same gunicorn worker class, workers, threads and keep-alive as the
    service (`gunicorn` holds the values gunicorn.conf.py resolved to). --preload configures Django in the master,
    as gunicorn.conf.py does for the service, before the worker reads its settings."""
    options = [
        # Not the gunicorn.conf.py gunicorn would otherwise pick up from the working directory: it sets up the service.
        "--config",
        "/dev/null",
        "--preload",
        "--worker-class",
        str(gunicorn["worker_class"]),
        "--workers",
        str(gunicorn["workers"]),
        "--keep-alive",
        str(gunicorn.get("keepalive", 75)),
        "--worker-connections",
        str(gunicorn.get("worker_connections", 10_000)),
        "--timeout",
        str(gunicorn.get("timeout", 90)),
        "--log-level",
        "warning",
    ]
    if gunicorn.get("threads"):  # a threaded worker class
        options += ["--threads", str(gunicorn["threads"])]
    with _gunicorn(options, "bench.floor:application", env, log_path, "the floor") as running:
        yield running


@contextmanager
def _gunicorn(options: list[str], app: str, env: dict[str, str], log_path: Path, what: str) -> Iterator[Service]:
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn), *options, "--bind", f"127.0.0.1:{port}", app]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health/live", process, f"{what} (log: {log_path})")
        # Every worker must be up before anything is measured: wait until their number holds still.
        deadline, seen, steady_since = time.monotonic() + 30, -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - steady_since < 1.0:
            count = len(children(process.pid))
            if count != seen:
                seen, steady_since = count, time.monotonic()
            time.sleep(0.1)
        yield Service(process, port, env)
    finally:
        stop(process)
