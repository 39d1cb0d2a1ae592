"""Starts the service under gunicorn with the production config, as `make run` does, for tests that need a
second process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

import httpx

from tests.support import ROOT, free_port

SERVICE_APP = "chatbot_project.wsgi"


def server_command(port: int, app: str = SERVICE_APP) -> list[str]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return [str(gunicorn), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", app]


def server_env(**overrides: str) -> dict[str, str]:
    # The tests' environment (tests/settings.py's defaults among it: a longer Redis timeout, no loop-lag refusals).
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **overrides}


@contextmanager
def _launched(
    log: IO[bytes] | None, env: dict[str, str], app: str = SERVICE_APP
) -> Iterator[tuple[subprocess.Popen[bytes], str, IO[bytes]]]:
    """A server process that is starting, its URL and the file its output goes to (`log`, or a temporary file: a pipe
    that nobody reads stalls the server once its request log has filled the pipe's 64 KiB); stopped on leaving."""
    port = free_port()
    with ExitStack() as stack:
        output = log or stack.enter_context(tempfile.NamedTemporaryFile(prefix="server-", suffix=".log"))
        process = subprocess.Popen(
            server_command(port, app), cwd=ROOT, env=server_env(**env), stdout=output, stderr=subprocess.STDOUT
        )
        try:
            yield process, f"http://127.0.0.1:{port}", output
        finally:
            # gunicorn's quick shutdown: its graceful one (SIGTERM) waits for idle keep-alive connections that a
            # test's clients left open, up to graceful_timeout.
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_until_live(process: subprocess.Popen[bytes], url: str, output: IO[bytes]) -> None:
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {Path(output.name).read_bytes().decode()}")
        try:
            httpx.get(f"{url}/health/live", timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def running_server(log: IO[bytes] | None = None, app: str = SERVICE_APP, **env: str) -> Iterator[str]:
    """`log`: a file that receives what the server writes (its output is otherwise read only if it fails to start);
    `app`: the WSGI application gunicorn serves, the service's unless a test wraps it."""
    with _launched(log, env, app) as (process, url, output):
        _wait_until_live(process, url, output)
        yield url


@contextmanager
def running_servers(count: int, **env: str) -> Iterator[list[str]]:
    """`count` instances of the same settings, started at once rather than one after the other."""
    with ExitStack() as stack:
        launched = [stack.enter_context(_launched(None, env)) for _ in range(count)]
        for process, url, output in launched:
            _wait_until_live(process, url, output)
        yield [url for _, url, _ in launched]


def concurrent_chats(
    urls: list[str], headers: dict[str, str], max_tokens: int, count: int = 50
) -> list[httpx.Response]:
    """`count` /v1/chat/completions requests at once, shared in turn among the servers at `urls`."""
    body = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}

    def one(i: int) -> httpx.Response:
        return httpx.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))
