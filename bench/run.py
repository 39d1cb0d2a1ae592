"""`make bench`: the fake upstream, the service under its production gunicorn config, the floor (bench/floor.py: a
bare view under the same gunicorn worker, workers and threads) and a load generator, all on this machine; prints
the tables and writes bench/results/latest.json and docs/bench.png.

    python -m bench.run [--backends locmem,redis] [--quick] [--env NAME=VALUE ...] [--no-floor] [--profile]

The soak (bench/soak.py: worker memory under an hour of mixed traffic) runs only when asked for:
`--only soak [--soak-minutes 60]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bench import scenarios, soak, streams
from bench.anonymous_flood import FLOODS, anonymous_flood
from bench.processes import (
    ROOT,
    fake_upstream,
    floor,
    floor_env,
    image_env,
    service,
    service_env,
    wait_for_quiet,
)
from bench.report import cpu_name, render_table, write_chart

RESULTS = ROOT / "bench" / "results"
UPSTREAM_DELAY = 0.3
BAD_LOGINS = 200


def note_background(background: dict[str, float], section: str, limit: float, label: str) -> None:
    """Waits for a quiet machine before `section` and records how busy it was, warning when it stayed busy."""
    background[section] = wait_for_quiet(limit)
    if background[section] > limit:
        print(f"  warning: {background[section]} cores busy elsewhere before {label}", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="locmem,redis", help="history backends to measure")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--quick", action="store_true", help="shorter runs, for trying things out")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections: overhead,cpu,inflight,stream,held,memory,burst,flood (all by default), soak",
    )
    parser.add_argument("--soak-minutes", type=float, default=60.0, help="how long the soak runs")
    parser.add_argument("--env", action="append", default=[], help="extra service setting NAME=VALUE")
    parser.add_argument(
        "--image",
        action="store_true",
        help="the service with the Docker image's environment (the Dockerfile's ENV) under the benchmark's settings",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (bench/floor.py's bare view)")
    parser.add_argument("--profile", action="store_true", help="py-spy record the service during the CPU ceiling")
    parser.add_argument(
        "--max-background",
        type=float,
        default=0.3,
        help="before each section, wait (up to 30 s) until at most this many cores are busy elsewhere",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--chart", type=Path, default=ROOT / "docs" / "bench.png")
    return parser.parse_args()


def machine() -> dict[str, Any]:
    # The CPU by family and model as well as by name: these virtual machines all call themselves "AMD EPYC" or
    # "Intel Xeon Processor", for kinds a chat's CPU differs on by three times (a Zen 1 EPYC at 2.0 GHz, say).
    cpuinfo: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        name, _, value = line.partition(":")
        cpuinfo.setdefault(name.strip(), value.strip())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "cores": os.cpu_count(),
        "cpu": cpuinfo.get("model name") or platform.processor(),
        "cpu_family": cpuinfo.get("cpu family", ""),
        "cpu_model": cpuinfo.get("model", ""),
        "cpu_mhz": round(float(cpuinfo.get("cpu MHz") or 0)),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": commit.stdout.strip() or os.environ.get("BENCH_COMMIT", ""),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": "service, fake upstream, load generator and Redis all share these cores",
    }


def gunicorn_settings(env: dict[str, str]) -> dict[str, Any]:
    """The values gunicorn.conf.py resolves to in `env`."""
    code = (
        "import json, runpy; c = runpy.run_path('gunicorn.conf.py'); "
        "print(json.dumps({k: c[k] for k in ('worker_class', 'workers', 'threads', 'keepalive', "
        "'worker_connections', 'timeout', 'max_requests', 'max_requests_jitter', 'backlog') if k in c}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"gunicorn.conf.py failed in the benchmark's environment:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def measure_backend(backend: str, fake, args, sections: set[str], durations: dict[str, float]) -> dict[str, Any]:
    client = redis.Redis.from_url(args.redis_url)
    prefix = f"bench-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    extra = {**(image_env() if args.image else {}), **dict(item.split("=", 1) for item in args.env)}
    env = service_env(
        fake=fake,
        redis_url=args.redis_url,
        key_prefix=prefix,
        admin_password=password,
        HISTORY_BACKEND=backend,
        **extra,
    )
    out: dict[str, Any] = {"gunicorn": gunicorn_settings(env), "settings": {"HISTORY_BACKEND": backend, **extra}}
    redis_pid = int(client.info("server").get("process_id", 0)) or None
    background = out["background_cores_before"] = {}

    def quiet(section: str) -> None:
        note_background(background, section, args.max_background, section)

    log = RESULTS / f"service-{backend}.log"
    log.unlink(missing_ok=True)
    try:
        with service(env, log) as svc:
            out["workers_started"] = len(svc.workers())
            token = await scenarios.login(svc.port, "admin", password)
            target = scenarios.Target(svc.port, {"Authorization": f"Bearer {token}"})
            fake.set_latency(0.0)
            if "overhead" in sections:
                quiet("overhead")
                step = scenarios.chat_step(target, turns_per_session=None, tag=scenarios.tag())
                out["overhead"] = await scenarios.overhead(target, step, seconds=durations["overhead"])
                print(f"  {backend}: overhead done", flush=True)
            if "cpu" in sections:
                quiet("cpu")
                profiler = start_profiler(svc, backend, durations["cpu"]) if args.profile else None
                out["cpu_ceiling"] = await scenarios.cpu_ceiling(
                    target, svc, fake, redis_pid, concurrency=32, seconds=durations["cpu"]
                )
                if profiler:
                    profiler.wait(timeout=120)
                print(f"  {backend}: CPU ceiling done", flush=True)
            if "stream" in sections:
                quiet("stream")
                out["streaming"] = await scenarios.streaming_service(target, count=int(durations["stream"]))
                print(f"  {backend}: streaming done", flush=True)
            if "held" in sections:
                out["held_streams"] = await held_streams_rows(
                    svc.port, target.headers, svc.workers_rss, durations, lambda: quiet("held"), fake
                )
                print(f"  {backend}: held streams done", flush=True)
            if "inflight" in sections:
                # Default settings: what a deployment gets without tuning for the benchmark.
                quiet("inflight")
                out["in_flight"] = await scenarios.in_flight(
                    target, fake, svc, redis_pid, delay=UPSTREAM_DELAY, seconds=durations["inflight"]
                )
                print(f"  {backend}: in flight done", flush=True)
            if "burst" in sections:
                quiet("burst")
                out["login_burst"] = await scenarios.login_burst(
                    target, "admin", bad_logins=BAD_LOGINS, concurrency=8, seconds=durations["burst"]
                )
                print(f"  {backend}: login burst done", flush=True)
        if "memory" in sections:
            # A fresh service and key prefix, so that neither what earlier rows stored nor the login burst's
            # throttle counters count (service_env already has room for every session).
            memory_env = {**env, "REDIS_KEY_PREFIX": f"{prefix}-memory"}
            with service(memory_env, log) as svc:
                quiet("memory")
                token = await scenarios.login(svc.port, "admin", password)
                target = scenarios.Target(svc.port, {"Authorization": f"Bearer {token}"})
                out["memory"] = await scenarios.memory(
                    target, svc, client, f"{prefix}-memory", sessions=int(durations["memory_sessions"])
                )
            print(f"  {backend}: memory done", flush=True)
        if "flood" in sections:
            # A fresh service and key prefix: no earlier section's anonymous requests or throttle counters count.
            with service({**env, "REDIS_KEY_PREFIX": f"{prefix}-flood"}, log) as svc:
                token = await scenarios.login(svc.port, "admin", password)
                target = scenarios.Target(svc.port, {"Authorization": f"Bearer {token}"})
                out["anonymous_flood"] = {}
                for name, rotate, concurrency in FLOODS:
                    quiet("flood")
                    out["anonymous_flood"][name] = await anonymous_flood(
                        target, svc, seconds=durations["flood"], rotate=rotate, concurrency=concurrency
                    )
            print(f"  {backend}: anonymous flood done", flush=True)
        if "soak" in sections:
            # A fresh service and key prefix, with the fake upstream answering after 50 ms as a model would.
            fake.set_latency(0.05)
            with service({**env, "REDIS_KEY_PREFIX": f"{prefix}-soak"}, log) as svc:
                out["soak"] = await soak.soak(
                    svc, password, minutes=args.soak_minutes, rate=25.0, sample_seconds=30.0, redis_client=client
                )
            fake.set_latency(0.0)
            print(f"  {backend}: soak done", flush=True)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()
    return out


async def held_streams_rows(
    port: int, headers: dict[str, str], rss, durations: dict[str, float], quiet, fake
) -> dict[str, Any]:
    """Each level of held streams through the service (or, with `rss` None, straight to the upstream)."""
    fake.set_stream(streams.REPLY, streams.CHUNK_DELAY)
    rows: dict[str, Any] = {}
    try:
        for level in streams.LEVELS:
            quiet()
            if rss is None:
                body, path = streams.direct_body(scenarios.MODEL, scenarios.MESSAGE), "/openai/v1/chat/completions"
                rows[f"s{level}"] = await streams.held_streams(
                    port, path, body, headers, streams=level, seconds=durations["held"]
                )
            else:
                rows[f"s{level}"] = await streams.held_streams(
                    port,
                    "/chat/",
                    streams.service_body(scenarios.MESSAGE),
                    headers,
                    streams=level,
                    seconds=durations["held"],
                    probe_port=port,
                    rss=rss,
                )
    finally:
        fake.set_latency(0.0)
    return rows


async def measure_floor(backend: str, gunicorn: dict[str, Any], fake, args, sections: set[str], durations) -> dict:
    """The floor (bench/floor.py) with the workers and threads `backend`'s service ran with, in the same
    scenarios: overhead, the CPU ceiling with a new session per chat (the floor keeps no sessions), in flight."""
    env = floor_env(fake=fake)
    out: dict[str, Any] = {"gunicorn": gunicorn}
    background = out["background_cores_before"] = {}

    def quiet(section: str) -> None:
        note_background(background, section, args.max_background, f"the floor's {section}")

    log = RESULTS / f"floor-{backend}.log"
    log.unlink(missing_ok=True)
    fake.set_latency(0.0)
    if sections & {"overhead", "cpu", "inflight"}:
        with floor(env, gunicorn, log) as svc:
            out["workers_started"] = len(svc.workers())
            target = scenarios.Target(svc.port, {})
            if "overhead" in sections:
                quiet("overhead")
                step = scenarios.chat_step(target, turns_per_session=None, tag=scenarios.tag())
                out["overhead"] = await scenarios.overhead(target, step, seconds=durations["overhead"])
            if "cpu" in sections:
                quiet("cpu")
                out["cpu_ceiling"] = await scenarios.cpu_ceiling(
                    target, svc, fake, None, concurrency=32, seconds=durations["cpu"], kinds=("new_session",)
                )
            if "inflight" in sections:
                quiet("inflight")
                out["in_flight"] = await scenarios.in_flight(
                    target, fake, svc, None, delay=UPSTREAM_DELAY, seconds=durations["inflight"]
                )
    print(f"  floor with {backend}'s workers: done", flush=True)
    return out


def start_profiler(svc, backend: str, seconds: float) -> subprocess.Popen | None:
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        print("  (py-spy is not installed: no profile)", flush=True)
        return None
    output = RESULTS / f"profile-{backend}.txt"
    command = [
        str(py_spy),
        "record",
        "--pid",
        str(svc.process.pid),
        "--subprocesses",
        # Only the thread holding the GIL: CPU, not threads waiting on sockets or locks. Without pausing the
        # service, so that the profile does not slow what it measures.
        "--gil",
        "--nonblocking",
        "--format",
        "raw",
        "--duration",
        str(int(seconds) + 2),
        "--rate",
        "200",
        "--output",
        str(output),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def main() -> None:
    args = parse_args()
    all_sections = {"overhead", "cpu", "inflight", "stream", "held", "memory", "burst", "flood"}
    sections = set(filter(None, args.only.split(","))) or all_sections
    durations = {
        "overhead": 6.0,
        "cpu": 10.0,
        "inflight": 12.0,
        "stream": 300,
        "held": 20.0,
        "burst": 8.0,
        "memory_sessions": 1000,
        "flood": 10.0,
    }
    if args.quick:
        durations = {
            "overhead": 2.0,
            "cpu": 3.0,
            "inflight": 4.0,
            "stream": 50,
            "held": 6.0,
            "burst": 3.0,
            "memory_sessions": 200,
            "flood": 4.0,
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "upstream_delay_s": UPSTREAM_DELAY, "backends": {}}
    host = results["machine"]
    print(f"Benchmark on {host['cores']} cores ({cpu_name(host)}), shared by all processes.")
    with fake_upstream() as fake:
        results["background_cores_before"] = wait_for_quiet(args.max_background)
        target, step = scenarios.direct(fake)
        if "overhead" in sections:
            results["direct"] = await scenarios.overhead(target, step, seconds=durations["overhead"])
        if "inflight" in sections:
            results["direct_in_flight"] = await scenarios.in_flight(
                target, fake, None, None, delay=UPSTREAM_DELAY, seconds=durations["inflight"], new_step=lambda: step
            )
        if "stream" in sections:
            results["direct_streaming"] = await scenarios.streaming_direct(fake, count=int(durations["stream"]))
        if "held" in sections:
            results["direct_held_streams"] = await held_streams_rows(
                fake.port, {"Authorization": "Bearer bench-key"}, None, durations, lambda: None, fake
            )
        print("  direct to the fake upstream: done", flush=True)
        results["floor"] = {}
        for backend in args.backends.split(","):
            results["backends"][backend] = measured = await measure_backend(backend, fake, args, sections, durations)
            if not args.no_floor and sections & {"overhead", "cpu", "inflight"}:
                results["floor"][backend] = await measure_floor(
                    backend, measured["gunicorn"], fake, args, sections, durations
                )
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    table = render_table(results)
    print()
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    (args.json.with_suffix(".md")).write_text(table + "\n")
    written = write_chart(results, args.chart)
    print(f"\nWrote {args.json}" + (f" and {args.chart}" if written else ""))


if __name__ == "__main__":
    asyncio.run(main())
