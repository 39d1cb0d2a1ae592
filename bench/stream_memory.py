"""A worker's memory per stream held, as a steady state: one worker (Redis history) is warmed by a few rounds of
streams, then holds `--streams` long streams opened at once; its RSS at the peak less the warmed idle, divided by the
streams answered. The held-stream rows of `make bench` divide the growth from before their level instead, so the
allocator's first growth counts in theirs (docs/performance.md, memory per stream).

    python -m bench.stream_memory [--streams 300] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets

from bench import scenarios, streams
from bench.http import Connection
from bench.processes import fake_upstream, service, service_env
from bench.run import RESULTS

WARM_ROUNDS = 3
WARM_STREAMS = 50
HELD_CHUNKS = 60  # 15 s streams at the held rows' 250 ms between chunks
RSS_EVERY = 0.5


async def one_stream(port: int, headers: dict[str, str]) -> int:
    connection = Connection("127.0.0.1", port, timeout=streams.STREAM_TIMEOUT)
    try:
        response = await connection.request("POST", "/chat/", streams.service_body(scenarios.MESSAGE), headers)
    finally:
        connection.close()
    return response.status


async def measure(count: int, extra: dict[str, str]) -> dict[str, float]:
    with fake_upstream() as fake:
        password = secrets.token_urlsafe(18)
        env = service_env(
            fake=fake,
            redis_url="redis://127.0.0.1:6379/14",
            key_prefix=f"bench-{secrets.token_hex(4)}",
            admin_password=password,
            HISTORY_BACKEND="redis",
            WEB_CONCURRENCY="1",
            CHAT_ADMIT_MAX_LOOP_LAG_MS="1000000",  # every stream is taken: memory, not the loop's lag, is measured
            CHAT_MAX_CONCURRENT="100000",
            CHAT_REQUESTS_PER_MINUTE="1000000",
            **extra,
        )
        with service(env, RESULTS / "service-stream-memory.log") as svc:
            headers = {"Authorization": f"Bearer {await scenarios.login(svc.port, 'admin', password)}"}
            fake.set_stream(streams.REPLY, streams.CHUNK_DELAY)
            for _ in range(WARM_ROUNDS):
                await asyncio.gather(*(one_stream(svc.port, headers) for _ in range(WARM_STREAMS)))
            await asyncio.sleep(1)
            idle = peak = svc.workers_rss()
            fake.set_stream(" ".join(["word"] * HELD_CHUNKS), streams.CHUNK_DELAY)
            held = [asyncio.create_task(one_stream(svc.port, headers)) for _ in range(count)]
            while not all(task.done() for task in held):
                await asyncio.sleep(RSS_EVERY)
                peak = max(peak, svc.workers_rss())
            answered = sum(task.result() == 200 for task in held)
    return {
        "streams": count,
        "answered": answered,
        "idle_rss_mib": round(idle / 2**20, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "kib_per_stream": round((peak - idle) / 1024 / max(answered, 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--env", action="append", default=[], help="extra service setting NAME=VALUE")
    args = parser.parse_args()
    streams.open_files_for(args.streams)
    print(asyncio.run(measure(args.streams, dict(item.split("=", 1) for item in args.env))))


if __name__ == "__main__":
    main()
