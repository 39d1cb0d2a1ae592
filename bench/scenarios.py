"""What the benchmark measures, one function per row of its table. Each returns plain numbers for the JSON file."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from bench.http import Connection, HTTPError, Response
from bench.load import LoadResult, run_load
from bench.processes import Fake, Service, cpu_seconds, machine_busy_seconds

MESSAGE = "Hello! Could you tell me, in a few words, what the weather is usually like on the coast in spring?"
MODEL = "openai/gpt-oss-20b"
TURNS_PER_SESSION = 20


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def summary(result: LoadResult) -> dict[str, Any]:
    return {
        "concurrency": result.concurrency,
        "requests": result.completed,
        "seconds": round(result.seconds, 2),
        "rate": round(result.rate, 1),
        "p50_ms": ms(result.p50),
        "p90_ms": ms(result.percentile(90)),
        "p99_ms": ms(result.p99),
        "errors": result.errors,
        "error_kinds": result.error_kinds,
        "reconnects": result.reconnects,
    }


class Target:
    """Where requests go: straight to the fake upstream, or through the service with a token."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.host, self.port, self.headers = "127.0.0.1", port, headers

    async def load(self, step, **kwargs: Any) -> LoadResult:
        return await run_load(self.host, self.port, step, **kwargs)


def direct(fake: Fake) -> tuple[Target, Any]:
    """The fake upstream answering the same message the service would send it."""
    target = Target(fake.port, {"Authorization": "Bearer bench-key"})
    body = {"model": MODEL, "messages": [{"role": "user", "content": MESSAGE}], "temperature": 0.7, "max_tokens": 1024}

    async def step(connection: Connection, worker: int, turn: int) -> Response:
        return await connection.request("POST", "/openai/v1/chat/completions", body, target.headers)

    return target, step


def chat_step(target: Target, *, turns_per_session: int | None, tag: str) -> Any:
    """A chat per call: with turns_per_session None every chat starts a new session; otherwise each worker
    holds its own session for that many turns, then starts the next."""

    async def step(connection: Connection, worker: int, turn: int) -> Response:
        body: dict[str, Any] = {"message": MESSAGE}
        if turns_per_session:
            body["session_id"] = f"{tag}-w{worker}-s{turn // turns_per_session}"
        return await connection.request("POST", "/chat/", body, target.headers)

    return step


async def login(port: int, username: str, password: str) -> str:
    connection = Connection("127.0.0.1", port)
    try:
        response = await connection.request("POST", "/admin/login", {"username": username, "password": password})
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"login failed: {response.status} {response.body[:200]!r}")
    return response.json()["access_token"]


def tag() -> str:
    return uuid.uuid4().hex[:8]


# --- 1. overhead ----------------------------------------------------------------------------------
async def overhead(target: Target, step: Any, *, seconds: float) -> dict[str, Any]:
    rows = {}
    for concurrency in (1, 16):
        result = await target.load(
            step, concurrency=concurrency, max_requests=50_000, max_seconds=seconds, warmup_seconds=1.0
        )
        rows[f"c{concurrency}"] = summary(result)
    return rows


# --- 2. CPU ceiling -------------------------------------------------------------------------------
CPU_KINDS = {"new_session": None, "session_20_turns": TURNS_PER_SESSION}


async def cpu_ceiling(
    target: Target,
    service: Service,
    fake: Fake,
    redis_pid: int | None,
    *,
    concurrency: int,
    seconds: float,
    kinds: tuple[str, ...] = tuple(CPU_KINDS),
) -> dict[str, Any]:
    rows = {}
    for name in kinds:
        turns = CPU_KINDS[name]
        step = chat_step(target, turns_per_session=turns, tag=tag())
        # The CPU each process used while the load ran shows how the two cores were shared.
        await target.load(step, concurrency=concurrency, max_requests=5_000, max_seconds=1.5)
        before = _cpu_readings(service, fake, redis_pid)
        result = await target.load(step, concurrency=concurrency, max_requests=100_000, max_seconds=seconds)
        rows[name] = {**summary(result), "cores_used": _cores_since(before, service, fake, redis_pid)}
    return rows


def _cpu_readings(service: Service | None, fake: Fake, redis_pid: int | None) -> dict[str, float]:
    readings = {
        "fake_upstream": cpu_seconds(fake.process.pid),
        "load_generator": time.process_time(),
        "machine": machine_busy_seconds(),
        "at": time.perf_counter(),
    }
    if service:
        readings["service"] = service.cpu_seconds()
    if redis_pid:
        readings["redis"] = cpu_seconds(redis_pid)
    return readings


def _cores_since(
    before: dict[str, float], service: Service | None, fake: Fake, redis_pid: int | None
) -> dict[str, float]:
    """The cores each process kept busy since `before`, and the machine's other work ("other", close to 0 on a
    quiet machine) and its total ("machine")."""
    after = _cpu_readings(service, fake, redis_pid)
    seconds = after.pop("at") - before["at"]
    cores = {k: round((after[k] - before[k]) / seconds, 2) for k in after}
    cores["other"] = round(cores["machine"] - sum(v for k, v in cores.items() if k != "machine"), 2)
    return cores


# --- 3. in flight ---------------------------------------------------------------------------------
IN_FLIGHT_LEVELS = (128, 256)


async def in_flight(
    target: Target,
    fake: Fake,
    service: Service | None,
    redis_pid: int | None,
    *,
    delay: float,
    seconds: float,
    levels: tuple[int, ...] = IN_FLIGHT_LEVELS,
    new_step: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Each level's chats/s against Little's limit (`concurrency / delay`), each level a fresh `new_step()` (by
    default chats, each worker in sessions of its own of TURNS_PER_SESSION turns). `service` None: the load goes
    straight to the fake, the share of the limit that the load generator and the fake reach on their own."""

    def in_sessions() -> Any:
        return chat_step(target, turns_per_session=TURNS_PER_SESSION, tag=tag())

    step_for_level = new_step or in_sessions
    warmup = 2.0

    async def readings_after_warmup() -> dict[str, float]:
        await asyncio.sleep(warmup)
        return _cpu_readings(service, fake, redis_pid)

    fake.set_latency(delay)
    rows = {}
    try:
        for concurrency in levels:
            step = step_for_level()
            # The CPU each process used, from the end of the warm-up on the same connections: a row short of its
            # limit with every core of the machine busy is bound by CPU, not by how the service waits.
            before = asyncio.create_task(readings_after_warmup())
            result = await target.load(
                step, concurrency=concurrency, max_requests=100_000, max_seconds=seconds, warmup_seconds=warmup
            )
            limit = concurrency / delay
            rows[f"c{concurrency}"] = {
                **summary(result),
                "limit": round(limit, 1),
                "share_of_limit": round(result.rate / limit, 3),
                "p99_over_delay": round(result.p99 / delay, 2),
                "cores_used": _cores_since(await before, service, fake, redis_pid),
            }
    finally:
        fake.set_latency(0.0)
    return rows


# --- 4. streaming ---------------------------------------------------------------------------------
async def first_event(port: int, path: str, body: dict, headers: dict, marker: bytes, count: int) -> dict[str, Any]:
    connection = Connection("127.0.0.1", port)
    times: list[float] = []
    errors = 0
    try:
        for i in range(count + 20):
            try:
                seconds, status, _ = await connection.first_event(path, body, headers, marker)
            except HTTPError:
                errors += 1
                connection.close()
                continue
            if status != 200:
                errors += 1
            elif i >= 20:  # the first ones warm up
                times.append(seconds)
    finally:
        connection.close()
    result = LoadResult(concurrency=1, seconds=0.0, latencies=times)
    return {"requests": len(times), "p50_ms": ms(result.p50), "p99_ms": ms(result.p99), "errors": errors}


async def streaming_direct(fake: Fake, *, count: int) -> dict[str, Any]:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": MESSAGE}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": "Bearer bench-key"}
    # The fake's first event carries the role; the content follows in the same instant.
    return await first_event(fake.port, "/openai/v1/chat/completions", body, headers, b"data:", count)


async def streaming_service(target: Target, *, count: int) -> dict[str, Any]:
    body = {"message": MESSAGE, "stream": True}
    return await first_event(target.port, "/chat/", body, target.headers, b"event: delta", count)


# --- 5. memory ------------------------------------------------------------------------------------
def redis_bytes(client: redis.Redis, pattern: str) -> int:
    total = 0
    for key in client.scan_iter(match=pattern, count=1000):
        total += client.memory_usage(key, samples=0) or 0
    return total


async def memory(target: Target, service: Service, client: redis.Redis, prefix: str, *, sessions: int) -> dict:
    """Service RSS (all workers) and Redis memory before and after `sessions` new sessions of 20 messages."""
    warm = chat_step(target, turns_per_session=10, tag=tag())
    await target.load(warm, concurrency=16, max_requests=800, max_seconds=30)
    await asyncio.sleep(0.5)
    rss_before, redis_before = service.workers_rss(), redis_bytes(client, f"{prefix}:*")
    step = chat_step(target, turns_per_session=10, tag=tag())
    workers = 20
    result = await target.load(
        step, concurrency=workers, max_requests=sessions * 10, max_per_worker=sessions // workers * 10, max_seconds=180
    )
    await asyncio.sleep(0.5)
    rss_after, redis_after = service.workers_rss(), redis_bytes(client, f"{prefix}:*")
    created = (result.completed // 10) or 1
    per_thousand = 1000 / created
    return {
        "sessions": created,
        "messages_per_session": 20,
        "message_chars": len(MESSAGE),
        "errors": result.errors,
        "service_rss_mib_per_1000": round((rss_after - rss_before) * per_thousand / 2**20, 2),
        "redis_mib_per_1000": round((redis_after - redis_before) * per_thousand / 2**20, 2),
    }


# --- 6. chat during a burst of bad logins ---------------------------------------------------------
async def login_burst(
    target: Target, admin_username: str, *, bad_logins: int, concurrency: int, seconds: float
) -> dict[str, Any]:
    """Chat latency alone, then while `bad_logins` wrong logins arrive at once (half a wrong password for an
    existing admin, half unknown usernames)."""
    step = chat_step(target, turns_per_session=TURNS_PER_SESSION, tag=tag())
    normal = await target.load(
        step, concurrency=concurrency, max_requests=50_000, max_seconds=seconds, warmup_seconds=1
    )

    statuses: dict[str, int] = {}
    burst_done = asyncio.Event()

    async def bad_login(i: int) -> None:
        username = admin_username if i % 2 == 0 else f"nobody-{i}"
        connection = Connection("127.0.0.1", target.port, timeout=120)
        try:
            response = await connection.request(
                "POST", "/admin/login", {"username": username, "password": f"wrong-{i}"}
            )
            key = str(response.status)
        except HTTPError as exc:
            key = f"connection: {exc}"[:60]
        finally:
            connection.close()
        statuses[key] = statuses.get(key, 0) + 1

    async def burst() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(bad_login(i) for i in range(bad_logins)))
        burst_done.set()
        return time.perf_counter() - started

    chat_task = asyncio.create_task(
        run_load(
            target.host,
            target.port,
            step,
            concurrency=concurrency,
            max_requests=50_000,
            max_seconds=120,
            stop=burst_done,
        )
    )
    burst_seconds = await burst()
    during = await chat_task
    return {
        "chat_concurrency": concurrency,
        "normal": summary(normal),
        "during_burst": summary(during),
        "burst_seconds": round(burst_seconds, 2),
        "login_statuses": statuses,
        "p50_ratio": round(during.p50 / normal.p50, 2),
    }
