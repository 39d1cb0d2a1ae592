"""Slow and idle clients against the service as `make run` starts it, while a fresh `GET /health/live`
is timed every 50 ms; for 1 worker with locmem history and 2 workers with Redis history.

    .venv/bin/python -m bench.slow_clients [--seconds 30] [--backends locmem,redis] [--worker-class gthread]

For `--seconds`, 2,000 connections are held and re-opened when the server closes them: 1,000 sending their
headers a line every 10 s, 900 sending nothing, 100 sending `Connection: close` and keeping their side open;
beside them 100 slow readers, each asking for 4.7 MB (three pipelined 1.5 MB files, more than the kernel
buffers on loopback) and reading 4 KiB a second. `--worker-class gthread` measures gunicorn's own worker."""

from __future__ import annotations

import argparse
import asyncio
import resource
import secrets
import socket
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import redis

from bench.processes import fake_upstream, service, service_env, wait_for_quiet

PASSWORD = "a-strong-bench-password"
REDIS_URL = "redis://127.0.0.1:6379/14"
HOST = "127.0.0.1"
BIG_FILE = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
ATTACKERS = {"slow_headers": 1000, "idle": 900, "never_close": 100, "slow_reader": 100}
RAMP_SECONDS = 2.0  # attackers start spread over this, so the listen backlog is not what refuses them
PROBE_EVERY = 0.05
PROBE_TIMEOUT = 10.0

Reader, Writer = asyncio.StreamReader, asyncio.StreamWriter


def request(path: str, *headers: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", f"Host: {HOST}", *headers, "", ""]).encode()


def left(ends: float) -> float:
    return max(0.0, ends - time.monotonic())


async def gave_up_within(reader: Reader, seconds: float) -> bool:
    """Whether the server answered or closed within `seconds`: either way it is done with this connection."""
    try:
        await asyncio.wait_for(reader.read(65536), seconds)
    except TimeoutError:
        return False
    return True


async def slow_headers(reader: Reader, writer: Writer, ends: float) -> None:
    writer.write(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    while not await gave_up_within(reader, min(10.0, left(ends))) and left(ends):
        writer.write(b"X-Slow: 1\r\n")


async def idle(reader: Reader, writer: Writer, ends: float) -> None:
    await gave_up_within(reader, left(ends))


async def never_close(reader: Reader, writer: Writer, ends: float) -> None:
    writer.write(request("/health/live", "Connection: close"))
    while left(ends) and await asyncio.wait_for(reader.read(65536), left(ends)):
        pass
    await asyncio.sleep(min(5.0, left(ends)))  # the server has closed its side; this one stays open a while


async def slow_reader(reader: Reader, writer: Writer, ends: float) -> None:
    writer.write(request(BIG_FILE) * 3)
    while left(ends) and await asyncio.wait_for(reader.read(4096), left(ends)):
        await asyncio.sleep(min(1.0, left(ends)))


BEHAVIOURS: dict[str, Callable[[Reader, Writer, float], Awaitable[None]]] = {
    "slow_headers": slow_headers,
    "idle": idle,
    "never_close": never_close,
    "slow_reader": slow_reader,
}


async def connect(port: int, kind: str) -> tuple[Reader, Writer]:
    sock = socket.socket()
    sock.setblocking(False)
    if kind == "slow_reader":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=4096)


async def attacker(port: int, kind: str, start_in: float, ends: float, opened: Counter[str]) -> None:
    """One attacker of `kind`, re-opening its connection whenever the server closes it, until `ends`."""
    await asyncio.sleep(start_in)
    while left(ends):
        try:
            reader, writer = await asyncio.wait_for(connect(port, kind), min(10.0, left(ends)))
        except OSError:  # refused or timed out: the backlog is full
            await asyncio.sleep(min(0.5, left(ends)))
            continue
        opened[kind] += 1
        try:
            await BEHAVIOURS[kind](reader, writer, ends)
        except OSError:
            pass  # reset, or a wait ran out at the end
        finally:
            writer.close()
        await asyncio.sleep(min(0.1, left(ends)))  # a server closing at once must not make this spin


async def attack_for(port: int, seconds: float) -> dict[str, int]:
    ends = time.monotonic() + seconds
    kinds = [kind for kind, count in ATTACKERS.items() for _ in range(count)]
    opened: Counter[str] = Counter()
    ramp = [RAMP_SECONDS * i / len(kinds) for i in range(len(kinds))]
    await asyncio.gather(*(attacker(port, kind, delay, ends, opened) for kind, delay in zip(kinds, ramp, strict=True)))
    return dict(opened)


def attack(port: int, seconds: float) -> dict[str, int]:
    """In a process of its own, so that the probe's timings are not the attackers' event loop's."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 2,200 connections
    return asyncio.run(attack_for(port, seconds))


def live_seconds(port: int) -> float:
    """A fresh connection's time to a whole `GET /health/live` answer; PROBE_TIMEOUT when it got none."""
    started = time.monotonic()
    try:
        with socket.create_connection((HOST, port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(request("/health/live"))
            data = b""
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < content_length(data):
                chunk = sock.recv(65536)
                if not chunk:
                    return PROBE_TIMEOUT
                data += chunk
    except OSError:
        return PROBE_TIMEOUT
    return time.monotonic() - started


def content_length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def probe(port: int, seconds: float) -> list[float]:
    samples: list[float] = []
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        samples.append(live_seconds(port))
        time.sleep(PROBE_EVERY)
    return samples


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def measure(backend: str, seconds: float, worker_class: str) -> str:
    prefix = f"bench-slow-{secrets.token_hex(4)}"
    extra = {"HISTORY_BACKEND": backend}
    if worker_class:
        extra["GUNICORN_CMD_ARGS"] = f"--worker-class {worker_class}"
    try:
        with fake_upstream() as fake:
            env = service_env(fake=fake, redis_url=REDIS_URL, key_prefix=prefix, admin_password=PASSWORD, **extra)
            with service(env, Path(f"bench/results/service-slow-{backend}.log")) as app:
                workers = len(app.workers())
                background = wait_for_quiet()
                with ProcessPoolExecutor(max_workers=1) as pool:
                    attackers = pool.submit(attack, app.port, seconds)
                    samples = probe(app.port, seconds)
                    opened = attackers.result(timeout=seconds + 60)
    finally:
        db = redis.Redis.from_url(REDIS_URL)
        keys = list(db.scan_iter(match=f"{prefix}:*"))
        if keys:
            db.delete(*keys)
    failed = sum(1 for s in samples if s >= PROBE_TIMEOUT)
    return (
        f"{backend}, {workers} worker(s), {worker_class or 'gunicorn.conf.py worker'}: GET /health/live "
        f"p50 {statistics.median(samples) * 1000:.0f} ms, p99 {percentile(samples, 99) * 1000:.0f} ms, "
        f"max {max(samples) * 1000:.0f} ms over {len(samples)} probes ({failed} unanswered in "
        f"{PROBE_TIMEOUT:.0f} s); connections opened {sum(opened.values())} {opened}; "
        f"background load {background} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backends", default="locmem,redis")
    parser.add_argument("--worker-class", default="", help="e.g. gthread, to measure gunicorn's own worker")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        print(measure(backend, args.seconds, args.worker_class), flush=True)


if __name__ == "__main__":
    main()
