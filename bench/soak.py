"""8. A soak: the service as `make run` starts it (gunicorn.conf.py, Redis history, the fake upstream) under mixed
traffic at a moderate, steady rate for `--minutes`, each worker's RSS sampled every `--sample-seconds`. Reports each
worker's RSS at the start (after a warm-up minute), at the end and at its peak, and its growth per hour.

The traffic (KINDS, by weight): chats and streamed chats on a pool of sessions, logins, session lists, exports,
imports (each imported session deleted again), anonymous GETs of the public endpoints and requests with a bad
token. Logins and anonymous requests come from rotating loopback addresses, so that no per-address limit refuses
them; the pool keeps the admin under its session cap.

    python -m bench.soak [--minutes 60] [--rate 25] [--sample-seconds 30] [--json PATH]
    python -m bench.run --backends redis --only soak [--soak-minutes 60]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import secrets
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import redis

from bench.http import Connection, HTTPError
from bench.processes import Service, fake_upstream, rss_bytes, service, service_env
from bench.scenarios import MESSAGE, login

SESSIONS = 80  # chats and streams turn on this many sessions in turn (under the default 100 per admin too)
STREAM_REPLY = " ".join(["word"] * 60)
KINDS = {  # weight of each kind of request in the mix
    "chat": 30,
    "stream": 8,
    "login": 2,
    "list": 10,
    "export": 8,
    "import": 4,
    "anonymous": 30,
    "bad_token": 8,
}
PUBLIC_PATHS = ("/health", "/info", "/openapi.json", "/docs", "/health/live", "/")
MIB = 1024 * 1024


def address(number: int) -> str:
    """127.2.0.1, 127.2.0.2, ...: a loopback source address per number."""
    return f"127.{2 + number // 65536 % 250}.{number // 256 % 256}.{number % 256}"


class Traffic:
    def __init__(self, port: int, password: str, token: str) -> None:
        self.port, self.password = port, password
        self.headers = {"Authorization": f"Bearer {token}"}
        self.statuses: dict[str, Counter[str]] = defaultdict(Counter)
        self.turns = itertools.count()
        self.addresses = itertools.count(1)
        self.tag = secrets.token_hex(3)

    def session_id(self) -> str:
        return f"soak-{self.tag}-{next(self.turns) % SESSIONS}"

    async def one(self, kind: str, connection: Connection) -> int:
        if kind == "chat":
            body = {"message": MESSAGE, "session_id": self.session_id()}
            return (await connection.request("POST", "/chat/", body, self.headers)).status
        if kind == "stream":
            body = {"message": MESSAGE, "session_id": self.session_id(), "stream": True}
            return (await connection.request("POST", "/chat/", body, self.headers)).status
        if kind == "list":
            return (await connection.request("GET", "/chat/sessions", None, self.headers)).status
        if kind == "export":
            path = f"/chat/sessions/soak-{self.tag}-{random.randrange(SESSIONS)}/export"
            return (await connection.request("GET", path, None, self.headers)).status
        if kind == "import":
            return await self.import_and_delete(connection)
        # The rest come from an address of their own, as other clients would.
        source = Connection("127.0.0.1", self.port, source=address(next(self.addresses)))
        try:
            if kind == "login":
                body = {"username": "admin", "password": self.password}
                return (await source.request("POST", "/admin/login", body)).status
            if kind == "bad_token":
                bad = {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"}
                return (await source.request("GET", "/chat/sessions", None, bad)).status
            return (await source.request("GET", random.choice(PUBLIC_PATHS))).status
        finally:
            source.close()

    async def import_and_delete(self, connection: Connection) -> int:
        session_id = f"soak-{self.tag}-import-{secrets.token_hex(4)}"
        messages = []
        for number in range(6):
            messages += [
                {"role": "user", "content": f"{MESSAGE} ({number})"},
                {"role": "assistant", "content": STREAM_REPLY},
            ]
        document = {"format": "chatbot-session/1", "session_id": session_id, "messages": messages}
        status = (await connection.request("POST", "/chat/sessions/import", document, self.headers)).status
        if status < 300:
            await connection.request("DELETE", f"/chat/sessions/{session_id}", None, self.headers)
        return status

    async def run(self, *, rate: float, seconds: float) -> None:
        """Open loop: a request of a kind drawn by KINDS' weights every 1/rate seconds, whatever the answers take."""
        kinds, weights = list(KINDS), list(KINDS.values())
        idle: list[Connection] = []
        pending: set[asyncio.Task] = set()

        async def send(kind: str) -> None:
            connection = idle.pop() if idle else Connection("127.0.0.1", self.port, timeout=60)
            try:
                status = await self.one(kind, connection)
                self.statuses[kind][str(status)] += 1
            except HTTPError as exc:
                self.statuses[kind][f"connection: {exc}"[:60]] += 1
                connection.close()
                return
            idle.append(connection)

        started = time.perf_counter()
        for number in itertools.count():
            due = started + number / rate
            if due - started >= seconds:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(send(random.choices(kinds, weights)[0]))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        for connection in idle:
            connection.close()


def rss_summary(samples: list[dict[str, Any]], warmup_seconds: float) -> dict[str, Any]:
    """Per worker pid: RSS after the warm-up, at the end and at the peak, and the growth per hour in between."""
    by_pid: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for sample in samples:
        for pid, rss in sample["workers"].items():
            by_pid[pid].append((sample["t"], rss))
    out = {}
    for pid, series in by_pid.items():
        settled = [point for point in series if point[0] >= warmup_seconds] or series
        (t0, start), (t1, end) = settled[0], settled[-1]
        hours = max(t1 - t0, 1.0) / 3600
        out[pid] = {
            "start_mib": round(start / MIB, 1),
            "end_mib": round(end / MIB, 1),
            "peak_mib": round(max(rss for _, rss in series) / MIB, 1),
            "growth_mib_per_hour": round((end - start) / MIB / hours, 1),
            "from_s": round(t0),
            "to_s": round(t1),
        }
    return out


async def soak(
    svc: Service,
    password: str,
    *,
    minutes: float,
    rate: float,
    sample_seconds: float,
    redis_client: redis.Redis | None = None,
    progress: Path | None = None,
) -> dict[str, Any]:
    token = await login(svc.port, "admin", password)
    traffic = Traffic(svc.port, password, token)
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    seconds = minutes * 60
    warmup = min(60.0, seconds / 4)

    def result() -> dict[str, Any]:
        return {
            "minutes": minutes,
            "rate": rate,
            "mix": KINDS,
            "warmup_s": warmup,
            "requests": {kind: dict(counts) for kind, counts in traffic.statuses.items()},
            "rss": rss_summary(samples, warmup),
            "samples": samples,
        }

    async def sampler() -> None:
        logged_in = time.monotonic()
        while True:
            if time.monotonic() - logged_in > 600:  # a fresh access token long before the last one expires
                traffic.headers = {"Authorization": f"Bearer {await login(svc.port, 'admin', password)}"}
                logged_in = time.monotonic()
            sample: dict[str, Any] = {
                "t": round(time.monotonic() - started, 1),
                "workers": {str(pid): rss_bytes(pid) for pid in svc.workers()},
                "requests": sum(sum(c.values()) for c in traffic.statuses.values()),
            }
            if redis_client is not None:
                sample["redis_used_bytes"] = int(redis_client.info("memory")["used_memory"])
            samples.append(sample)
            if progress is not None:
                progress.write_text(json.dumps(result(), indent=1) + "\n")
            await asyncio.sleep(sample_seconds)

    sampling = asyncio.create_task(sampler())
    try:
        await traffic.run(rate=rate, seconds=seconds)
    finally:
        sampling.cancel()
    samples.append(
        {
            "t": round(time.monotonic() - started, 1),
            "workers": {str(pid): rss_bytes(pid) for pid in svc.workers()},
            "requests": sum(sum(c.values()) for c in traffic.statuses.values()),
        }
    )
    return result()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=25.0, help="requests a second, all kinds together")
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--json", type=Path, default=Path("bench/results/soak.json"))
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    prefix, password = f"bench-soak-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    try:
        with fake_upstream() as fake:
            fake.set_latency(0.05)
            env = service_env(
                fake=fake, redis_url=args.redis_url, key_prefix=prefix, admin_password=password, HISTORY_BACKEND="redis"
            )
            with service(env, args.json.with_suffix(".log")) as svc:
                out = await soak(
                    svc,
                    password,
                    minutes=args.minutes,
                    rate=args.rate,
                    sample_seconds=args.sample_seconds,
                    redis_client=client,
                    progress=args.json,
                )
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"requests": out["requests"], "rss": out["rss"]}, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
