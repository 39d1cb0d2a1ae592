"""Closed-loop load: `concurrency` workers, each sending its next request as soon as the last one answered,
each on its own keep-alive connection. Every run is bounded both in requests and in seconds."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.http import Connection, HTTPError, Response

# A step sends one request for worker `worker` (its `turn`-th) and says whether the answer was a success.
Step = Callable[[Connection, int, int], Awaitable[Response]]


@dataclass
class LoadResult:
    concurrency: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """The p-th percentile latency in seconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(99)


async def run_load(
    host: str,
    port: int,
    step: Step,
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    warmup_seconds: float = 0.0,
    max_per_worker: int | None = None,
    stop: asyncio.Event | None = None,
    ok: Callable[[Response], bool] = lambda r: r.status == 200,
) -> LoadResult:
    """Runs `step` in a closed loop until `max_requests`, `max_seconds` or `stop` is set. Requests that start
    during the warm-up are sent but not counted."""
    result = LoadResult(concurrency=concurrency, seconds=0.0)
    started = time.perf_counter()
    measure_from = started + warmup_seconds
    stop_at = measure_from + max_seconds
    sent = 0

    def note_error(kind: str) -> None:
        result.errors += 1
        result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1

    async def worker(index: int) -> None:
        nonlocal sent
        connection = Connection(host, port)
        turn = 0
        try:
            while sent < max_requests and time.perf_counter() < stop_at and not (stop and stop.is_set()):
                if max_per_worker is not None and turn >= max_per_worker:
                    break
                sent += 1
                begin = time.perf_counter()
                try:
                    response = await step(connection, index, turn)
                except HTTPError as exc:
                    if begin >= measure_from:
                        note_error(f"connection: {exc}"[:80])
                    await asyncio.sleep(0.01)
                    continue
                finally:
                    turn += 1
                end = time.perf_counter()
                if begin < measure_from:
                    continue
                if ok(response):
                    result.latencies.append(end - begin)
                else:
                    note_error(f"HTTP {response.status}")
        finally:
            result.reconnects += connection.reconnects
            connection.close()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - measure_from
    return result
