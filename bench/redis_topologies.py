"""One Redis, Sentinel or Cluster: what each costs and gives, measured on this machine with real redis-server
processes (tests/redis_topologies.py), the service under gunicorn and the fake upstream (no model latency):

    .venv/bin/python -m bench.redis_topologies                 # about 5 minutes
    .venv/bin/python -m bench.redis_topologies --seconds 5 --failovers 1

For each of: one Redis; Sentinel (a primary and a replica) with REDIS_WAIT_REPLICAS 0 and 1; Cluster (three
primaries with a replica each) with REDIS_WAIT_REPLICAS 0 and 1:
- chats/s and latency (p50, p99) of one gunicorn instance under `--clients` concurrent clients, each continuing
  its own session; the Redis CPU time per chat on the primaries (INFO cpu), from which the chats/s one primary's
  core could serve: the service, not Redis, is what a 2-core machine runs out of;
- the memory 1,000 conversations of 5 turns take on the primaries (INFO memory, used_memory), on one Redis and on
  the cluster;
- what WAIT 1 adds to a turn's finish script, in the same round trip, with one replica on loopback;
- failover (Sentinel and Cluster, `--failovers` times each): kill -9 of the primary under a steady load, the time
  to the replica's promotion and to the first chat answered again.
The last line is the whole result as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from tests.failover_load import ChatLoad, failover_times  # noqa: E402
from tests.fake_groq import FakeGroq  # noqa: E402
from tests.redis_topologies import (  # noqa: E402
    Cluster,
    Node,
    SentinelSetup,
    redis_cluster,
    redis_sentinel,
    start_node,
    stop_nodes,
)
from tests.server import running_server  # noqa: E402
from tests.support import login_headers, wait_until_serving  # noqa: E402
from tests.topology import cluster_env, sentinel_env  # noqa: E402

ADMIN_PASSWORD = "a-strong-default-password"  # tests/settings.py's default admin
MESSAGE = "Hello! How are you today? Tell me something about Redis Cluster hash tags."
ROOMY = {"MAX_SESSIONS": "100000", "MAX_SESSIONS_PER_ADMIN": "100000", "CHAT_REQUESTS_PER_MINUTE": "0"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput run")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--failovers", type=int, default=3)
    return parser.parse_args()


@contextmanager
def single_redis() -> Iterator[Node]:
    directory = Path(tempfile.mkdtemp(prefix="redis-single-"))
    node = start_node(directory)
    try:
        yield node
    finally:
        stop_nodes([node])


def primaries_of(kind: str, topology: Any) -> list[redis.Redis]:
    if kind == "cluster":
        cluster: Cluster = topology
        return [cluster.admin_client(node) for node in cluster.primaries()]
    if kind == "sentinel":
        setup: SentinelSetup = topology
        return [setup.data_node(setup.current_primary_port()).client(password=setup.password)]
    return [topology.client()]


def redis_cpu(clients: list[redis.Redis]) -> float:
    total = 0.0
    for client in clients:
        cpu = client.info("cpu")
        total += float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return total


def used_memory(clients: list[redis.Redis]) -> int:
    return sum(int(client.info("memory")["used_memory"]) for client in clients)


def throughput(url: str, headers: dict[str, str], clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(number: int) -> None:
        nonlocal errors
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            turn = 0
            while time.monotonic() < stop:
                started = time.perf_counter()
                # 20 turns a session: a continued conversation, as most chats are.
                body = {"session_id": f"bench{number}-{turn // 20}", "message": MESSAGE}
                status = http.post("/chat/", json=body).status_code
                elapsed = time.perf_counter() - started
                turn += 1
                with lock:
                    if status == 200:
                        latencies.append(elapsed)
                    else:
                        errors += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    latencies.sort()
    return {
        "chats": len(latencies),
        "errors": errors,
        "chats_per_s": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def fill(url: str, headers: dict[str, str], conversations: int, turns: int) -> int:
    sent = 0
    lock = threading.Lock()
    numbers = iter(range(conversations))

    def worker() -> None:
        nonlocal sent
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            while True:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                for _ in range(turns):
                    response = http.post("/chat/", json={"session_id": f"memory{number}", "message": MESSAGE})
                    response.raise_for_status()
                    with lock:
                        sent += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent


def measure(kind: str, wait: int, args: argparse.Namespace, memory: bool) -> dict[str, Any]:
    with ExitStack() as stack:
        if kind == "cluster":
            topology: Any = stack.enter_context(redis_cluster())
            env = cluster_env(topology)
        elif kind == "sentinel":
            topology = stack.enter_context(redis_sentinel())
            env = sentinel_env(topology)
        else:
            topology = stack.enter_context(single_redis())
            env = {"TEST_REDIS_URL": f"redis://127.0.0.1:{topology.port}/0", "HISTORY_BACKEND": "redis"}
        env |= {**ROOMY, "REDIS_WAIT_REPLICAS": str(wait), "WEB_CONCURRENCY": "2"}
        log = stack.enter_context(open(os.devnull, "wb"))
        url = stack.enter_context(running_server(log=log, **env))
        headers = login_headers(url, "admin", ADMIN_PASSWORD)
        primaries = primaries_of(kind, topology)
        throughput(url, headers, args.clients, 2)  # warm up: connections, scripts, sessions
        cpu_before = redis_cpu(primaries)
        result = throughput(url, headers, args.clients, args.seconds)
        cpu = redis_cpu(primaries) - cpu_before
        result["primary_cpu_us_per_chat"] = 1e6 * cpu / max(result["chats"], 1)
        result["chats_per_s_per_primary_core"] = 1e6 / max(result["primary_cpu_us_per_chat"], 1e-9)
        if memory:
            before = used_memory(primaries)
            fill(url, headers, args.conversations, args.turns)
            result["memory_bytes_per_1000_conversations"] = (
                (used_memory(primaries) - before) * 1000 // max(args.conversations, 1)
            )
        print(f"{kind:8s} WAIT {wait}: {json.dumps({k: round(v, 1) for k, v in result.items()})}", flush=True)
        return result


# A turn's finish as Redis sees it: two messages appended to a list, a hash updated, both given a TTL.
_FINISH_LIKE = """
redis.call('RPUSH', KEYS[1], ARGV[1], ARGV[2])
redis.call('LTRIM', KEYS[1], -200, -1)
redis.call('HINCRBY', KEYS[2], 'requests', 1)
redis.call('HSET', KEYS[2], 'last_activity', ARGV[3])
redis.call('EXPIRE', KEYS[1], 3600)
redis.call('EXPIRE', KEYS[2], 3600)
return 1
"""


def wait_cost(rounds: int = 3000) -> dict[str, float]:
    """What WAIT 1 adds to a finish-like script in the same round trip, with one replica on loopback: medians of
    interleaved calls with and without it, on one connection."""
    with redis_sentinel() as setup:
        primary = setup.primary.client()
        sha = primary.script_load(_FINISH_LIKE)
        keys, values = ["bench:{s}:messages", "bench:{s}:meta"], [MESSAGE * 2, MESSAGE * 6, "2026-01-01T00:00:00"]
        timings: dict[str, list[float]] = {"without": [], "with": []}
        for number in range(rounds):
            for name in ("without", "with") if number % 2 else ("with", "without"):
                pipe = primary.pipeline(transaction=False)
                pipe.evalsha(sha, 2, *keys, *values)
                if name == "with":
                    pipe.wait(1, 1000)
                started = time.perf_counter()
                result = pipe.execute()
                timings[name].append(time.perf_counter() - started)
                assert name == "without" or result[1] == 1
        without, with_wait = (1e6 * statistics.median(timings[name]) for name in ("without", "with"))
    print(f"WAIT 1 adds {with_wait - without:.0f} us to a finish ({without:.0f} us without, {with_wait:.0f} with)")
    return {"finish_us": without, "finish_with_wait_us": with_wait, "wait_adds_us": with_wait - without}


def failover(kind: str, fake: FakeGroq) -> dict[str, float]:
    fake.configure(latency=0.05)
    try:
        with ExitStack() as stack:
            if kind == "cluster":
                cluster = stack.enter_context(redis_cluster())
                primary = cluster.nodes[0]
                (replica,) = cluster.replicas_of(primary)
                env = cluster_env(cluster, node_index=0)

                def promoted() -> bool:
                    return cluster.role(replica) == "master"
            else:
                setup = stack.enter_context(redis_sentinel())
                primary = setup.primary
                env = sentinel_env(setup)

                def promoted() -> bool:
                    return setup.current_primary_port() == setup.replica.port

            log = stack.enter_context(open(os.devnull, "wb"))
            url = stack.enter_context(running_server(log=log, **env, **ROOMY))
            load = stack.enter_context(ChatLoad(url, [login_headers(url, "admin", ADMIN_PASSWORD)], sessions=8))
            load.wait_for_answers(lambda answers: len(answers) >= 50, 30, "a steady load")
            killed_at = time.monotonic()
            primary.kill()
            wait_until_serving(promoted, 60, "the promotion")
            promoted_at = time.monotonic()
            load.wait_for_answers(
                lambda answers: any(a.at > promoted_at and a.status == 200 for a in answers), 30, "a chat answered"
            )
            load.stop()
            times = failover_times(load.snapshot(), killed_at, promoted_at)
            print(f"{kind:8s} failover: {times.summary()}", flush=True)
            return {
                "kill_to_promotion_s": times.promoted,
                "kill_to_first_answer_s": times.recovered,
                "promotion_to_first_answer_s": times.recovered - times.promoted,
                "chats_refused": times.refused,
            }
    finally:
        fake.configure(latency=0.0)


def main() -> None:
    args = parse_args()
    import django

    django.setup()
    report: dict[str, Any] = {"cpus": os.cpu_count(), "clients": args.clients, "seconds": args.seconds}
    report["wait"] = wait_cost()
    with FakeGroq(port=int(os.environ["TEST_FAKE_GROQ_PORT"])) as fake:
        report["single"] = measure("single", 0, args, memory=True)
        report["sentinel_wait0"] = measure("sentinel", 0, args, memory=False)
        report["sentinel_wait1"] = measure("sentinel", 1, args, memory=False)
        report["cluster_wait0"] = measure("cluster", 0, args, memory=False)
        report["cluster_wait1"] = measure("cluster", 1, args, memory=True)
        for kind in ("sentinel", "cluster"):
            runs = [failover(kind, fake) for _ in range(args.failovers)]
            report[f"{kind}_failover"] = {name: statistics.median(run[name] for run in runs) for name in runs[0]} | {
                "runs": runs
            }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
