"""7. An anonymous flood: an admin's chat p50 alone, then while another process floods the public endpoints without
credentials as fast as the machine lets it (closed loop, FLOODS: so many connections at once), in the same run:

- from one client address, which ANON_REQUESTS_PER_MINUTE soon answers with 429;
- from many client addresses (loopback sources, a new one every SOURCE_REQUESTS requests), each under that limit:
  what the endpoints themselves cost.

The flood runs in a process of its own, so that the chat's measurement does not wait on the flood's event loop.

    python -m bench.anonymous_flood --port PORT --seconds S [--concurrency N] [--many-addresses]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from typing import Any

from bench.http import Connection, HTTPError
from bench.processes import Service
from bench.scenarios import TURNS_PER_SESSION, Target, chat_step, summary, tag

# What anyone may fetch without a token (/health/live, exempt from the limit, is a probe's, not a flood's).
PUBLIC_PATHS = ("/openapi.json", "/docs", "/redoc", "/health", "/info", "/")
ONE_ADDRESS = "127.0.0.2"
# Under ANON_REQUESTS_PER_MINUTE's default (120) for as long as a run lasts.
SOURCE_REQUESTS = 100
# (name, many addresses, connections): the rows of the table.
FLOODS = (("one_address_c8", False, 8), ("one_address_c64", False, 64), ("many_addresses_c64", True, 64))


def address(number: int) -> str:
    """127.1.0.1, 127.1.0.2, ...: loopback addresses, each a client address of its own to the service."""
    return f"127.{1 + number // 65536 % 254}.{number // 256 % 256}.{number % 256}"


async def flood(port: int, *, seconds: float, concurrency: int, rotate: bool) -> dict[str, Any]:
    """Anonymous GETs of PUBLIC_PATHS in turn, `concurrency` at a time, each sent when the last one answered."""
    statuses: Counter[str] = Counter()
    numbers = itertools.count(1)
    stop_at = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        paths = itertools.cycle(PUBLIC_PATHS[index % len(PUBLIC_PATHS) :] + PUBLIC_PATHS[: index % len(PUBLIC_PATHS)])
        connection, sent = Connection("127.0.0.1", port, source=address(next(numbers)) if rotate else ONE_ADDRESS), 0
        try:
            while time.perf_counter() < stop_at:
                if rotate and sent == SOURCE_REQUESTS:
                    connection.close()
                    connection, sent = Connection("127.0.0.1", port, source=address(next(numbers))), 0
                sent += 1
                try:
                    response = await connection.request("GET", next(paths))
                    statuses[str(response.status)] += 1
                except HTTPError as exc:
                    statuses[f"connection: {exc}"[:60]] += 1
                    await asyncio.sleep(0.01)
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    requests = sum(statuses.values())
    return {"requests": requests, "seconds": round(elapsed, 2), "rate": round(requests / elapsed, 1), **statuses}


async def anonymous_flood(
    target: Target, service: Service, *, seconds: float, rotate: bool, concurrency: int
) -> dict[str, Any]:
    """Chat p50 (one admin, one chat at a time, 20-turn sessions) alone, then during the flood; the service's CPU
    per chat alone and per anonymous request during the flood."""
    step = chat_step(target, turns_per_session=TURNS_PER_SESSION, tag=tag())
    cpu_before = service.cpu_seconds()
    alone = await target.load(step, concurrency=1, max_requests=100_000, max_seconds=seconds, warmup_seconds=1.0)
    chat_cpu = (service.cpu_seconds() - cpu_before) / max(alone.completed, 1)

    lead = 1.0  # the flood is at full rate before the chats are measured, and still after
    command = [sys.executable, "-m", "bench.anonymous_flood", "--port", str(target.port)]
    command += ["--seconds", str(seconds + 2 * lead), "--concurrency", str(concurrency)]
    command += ["--many-addresses"] if rotate else []
    flooder = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    await asyncio.sleep(lead)
    cpu_before = service.cpu_seconds()
    during = await target.load(step, concurrency=1, max_requests=100_000, max_seconds=seconds)
    service_cpu = service.cpu_seconds() - cpu_before
    output, _ = await flooder.communicate()
    flooded = json.loads(output)
    anonymous_requests = flooded["rate"] * during.seconds
    anonymous_cpu = (service_cpu - during.completed * chat_cpu) / max(anonymous_requests, 1)
    return {
        "flood": {"addresses": "many" if rotate else "one", "concurrency": concurrency, **flooded},
        "alone": summary(alone),
        "during_flood": summary(during),
        "p50_ratio": round(during.p50 / alone.p50, 2),
        "service_cpu_ms_per_chat": round(chat_cpu * 1000, 2),
        "service_cpu_ms_per_anonymous_request": round(anonymous_cpu * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--many-addresses", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(
        flood(args.port, seconds=args.seconds, concurrency=args.concurrency, rotate=args.many_addresses)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
