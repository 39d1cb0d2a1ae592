"""Streamed chats held open by the thousand: `streams` clients, each streaming one long reply after another (the fake
upstream sends 20 chunks 250 ms apart, so a reply takes 5 s), started evenly over one reply's length so that they
arrive as a steady load. Measured over a window once every client is streaming: answered chats per second, refusals
(503 `server_busy`, how fast they came and whether they carried Retry-After), errors, `GET /health/live` latency
from a prober on fresh connections, and the workers' memory at the peak less idle."""

from __future__ import annotations

import asyncio
import json
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.http import Connection, HTTPError

CHUNKS = 20
CHUNK_DELAY = 0.25
STREAM_SECONDS = CHUNKS * CHUNK_DELAY
LEVELS = (1000, 4000)
REPLY = " ".join(f"word{i}" for i in range(CHUNKS))
PROBE_EVERY = 0.1
RSS_EVERY = 0.5
# A stream longer than this is an error (a hang), not a slow answer.
STREAM_TIMEOUT = 60.0
# What one client allows per request: a request, its answer, the retry after a refusal.
RETRY_AFTER_CAP = 5.0


def open_files_for(clients: int) -> None:
    """Raises this process's open-file limit so that `clients` connections (and the prober's) fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = clients + 1024
    if soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        if limit < wanted:
            print(f"  warning: only {limit} open files allowed for {clients} streams", flush=True)


@dataclass
class Held:
    streams: int
    window: float
    answered: int = 0
    refused: int = 0
    refused_without_retry_after: int = 0
    refusal_seconds: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    stream_seconds: list[float] = field(default_factory=list)
    probes: list[float] = field(default_factory=list)
    probe_errors: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind[:80]] = self.error_kinds.get(kind[:80], 0) + 1


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


async def held_streams(
    port: int,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    streams: int,
    seconds: float,
    probe_port: int | None = None,
    rss: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """`streams` clients for a ramp of one reply's length, one more reply's length to settle, then `seconds` measured;
    the clients then finish the reply they are on (bounded by STREAM_TIMEOUT)."""
    open_files_for(streams)
    result = Held(streams=streams, window=seconds)
    started = time.monotonic()
    measure_from = started + 2 * STREAM_SECONDS
    measure_to = measure_from + seconds
    idle_rss = rss() if rss else 0
    peak_rss = idle_rss
    peak_in_flight_at_rss = 0

    async def client(index: int) -> None:
        await asyncio.sleep(STREAM_SECONDS * index / streams)
        connection = Connection("127.0.0.1", port, timeout=STREAM_TIMEOUT)
        try:
            while time.monotonic() < measure_to:
                begin = time.monotonic()
                result.in_flight += 1
                result.peak_in_flight = max(result.peak_in_flight, result.in_flight)
                try:
                    response = await connection.request("POST", path, body, headers)
                except HTTPError as exc:
                    if measure_from <= begin:
                        result.error(f"connection: {exc}")
                    await asyncio.sleep(0.5)
                    continue
                finally:
                    result.in_flight -= 1
                end = time.monotonic()
                counted = measure_from <= end <= measure_to
                if response.status == 200 and b"[DONE]" not in response.body and b"event: done" not in response.body:
                    if counted:
                        result.error("stream without its end")
                elif response.status == 200:
                    if counted:
                        result.answered += 1
                        result.stream_seconds.append(end - begin)
                elif response.status == 503 and b"server_busy" in response.body:
                    retry_after = response.headers.get("retry-after")
                    if counted:
                        result.refused += 1
                        result.refusal_seconds.append(end - begin)
                        result.refused_without_retry_after += retry_after is None
                    # As a client honouring Retry-After would, with jitter so that the refused do not return at once.
                    wait = min(RETRY_AFTER_CAP, float(retry_after or 1))
                    await asyncio.sleep(wait * random.uniform(0.5, 1.5))
                elif counted:
                    result.error(f"HTTP {response.status} {error_code(response.body)}".rstrip())
        finally:
            connection.close()

    async def prober() -> None:
        """bench/prober.py in a process of its own over the window: this process's event loop is busy with the
        streams, and would delay the probes it measures."""
        await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.prober",
            "--port",
            str(probe_port),
            "--seconds",
            str(seconds),
            "--every",
            str(PROBE_EVERY),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
        for sample in json.loads(out or b"[]"):
            if sample is None:
                result.probe_errors += 1
            else:
                result.probes.append(sample)

    async def memory() -> None:
        nonlocal peak_rss, peak_in_flight_at_rss
        while rss is not None and time.monotonic() < measure_to:
            await asyncio.sleep(RSS_EVERY)
            if time.monotonic() >= measure_from:
                now = rss()
                if now > peak_rss:
                    peak_rss, peak_in_flight_at_rss = now, result.in_flight

    tasks = [*(client(i) for i in range(streams)), memory()]
    if probe_port is not None:
        tasks.append(prober())
    await asyncio.gather(*tasks)
    out: dict[str, Any] = {
        "streams": streams,
        "seconds": seconds,
        "rate": round(result.answered / seconds, 1),
        "answered": result.answered,
        "stream_p50_ms": ms(percentile(result.stream_seconds, 50)),
        "stream_p99_ms": ms(percentile(result.stream_seconds, 99)),
        "refused": result.refused,
        "refused_without_retry_after": result.refused_without_retry_after,
        "refusal_p50_ms": ms(percentile(result.refusal_seconds, 50)),
        "refusal_p99_ms": ms(percentile(result.refusal_seconds, 99)),
        "errors": result.errors,
        "error_kinds": result.error_kinds,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    if probe_port is not None:
        out.update(
            health_probes=len(result.probes),
            health_p50_ms=ms(percentile(result.probes, 50)),
            health_p99_ms=ms(percentile(result.probes, 99)),
            health_errors=result.probe_errors,
        )
    if rss is not None:
        # Streams the service held: by Little's law, the rate of answered streams times how long one took (on
        # cores too busy a 5 s reply takes longer, and the service holds more of them than the rate over 5 s says);
        # never more than the clients' requests in flight at the peak.
        lasted = statistics.fmean(result.stream_seconds) if result.stream_seconds else STREAM_SECONDS
        held = min(peak_in_flight_at_rss or streams, round(result.answered / seconds * lasted) or 1)
        out.update(
            idle_rss_mib=round(idle_rss / 2**20, 1),
            peak_rss_mib=round(peak_rss / 2**20, 1),
            held_streams=held,
            kib_per_stream=round((peak_rss - idle_rss) / 1024 / max(held, 1), 1),
        )
    return out


def error_code(body: bytes) -> str:
    """The service's error code in an error body (`code`, or OpenAI's `error.code`), or "" when there is none."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    nested = parsed.get("error")
    return str(parsed.get("code") or (nested.get("code") if isinstance(nested, dict) else "") or "")


def direct_body(model: str, message: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": message}], "stream": True}


def service_body(message: str) -> dict[str, Any]:
    return {"message": message, "stream": True}
