"""CPU per chat in the service, measured in process: repeatable on a machine that others share.

    .venv/bin/python -m bench.cpu_per_chat                      # 5 rounds x 500 chats per scenario, Redis history
    .venv/bin/python -m bench.cpu_per_chat --chats 1000 --rounds 4 --scenarios new,continued,v1
    .venv/bin/python -m bench.cpu_per_chat --callgrind          # instructions per chat under valgrind (slow)
    .venv/bin/python -m bench.cpu_per_chat --gevent --tracing   # with OpenTelemetry traces exported over OTLP/HTTP
    .venv/bin/python -m bench.cpu_per_chat --profile out.pstats # cProfile of one round
    .venv/bin/python -m bench.cpu_per_chat --budget usd         # the admin with a dollar budget (or tokens)

The service's WSGI application is called directly in this thread, with the environ gunicorn would build (the
production settings: DEBUG off, the request log on, prometheus_client in multiprocess mode); the fake upstream
(tests/fake_groq.py) runs in a process of its own and Redis is the local one (database 14, a key prefix of this
run's own, deleted afterwards). What is measured is the request thread's CPU time (time.thread_time) per chat:
Django, DRF, the token check, the turn pipeline, the Redis client and httpx, but not gunicorn's HTTP parsing nor
the fake's or Redis's CPU. Since only this thread's CPU time counts, other work on the machine moves the figure
much less than it moves a wall-clock rate; medians of several rounds smooth what remains (caches shared with
other processes). `--callgrind` counts instructions instead, which load does not change at all: two runs under
`valgrind --tool=callgrind` that differ only in the number of chats, and their difference divided by the chats.

Scenarios: `new` (a new session per chat, as the benchmark's overhead and CPU-ceiling rows), `continued` (sessions
of 20 turns), `v1` (/v1/chat/completions without a session), `stream` (a streamed `/chat/` reply in a new session:
21 events of content among the upstream's 24, the fake sending them `--chunk-delay` apart, 1 ms by default so that
each arrives on its own, as a slow model's do; under callgrind, 50 ms, since the service then runs some 50 times
slower and pieces 1 ms apart pile up and are read many at once; with `--gevent`, since without it the reply is read
in a helper thread whose CPU time is not counted), `v1-stream` (the same reply streamed by /v1/chat/completions),
`v1-session` (/v1/chat/completions with an X-Session-Id, sessions of 20 turns), `responses` (/v1/responses in
chains of 20 turns by previous_response_id: beside `v1-session`, the Responses API's own cost; the report gives
their ratio), `live` (GET /health/live, the floor of a request). `new-key`, `v1-key`: `new` and `v1` with an API
key instead of a token; `new-key-rules`, `v1-key-rules`: with a key that has models, requests and tokens per minute
and a dollar budget (limits far above what the run uses, so that their work is measured, not refusals).
With `--tracing`, measure with `--gevent` too: the exporter's thread is then a greenlet of this thread, so the CPU
of sending the spans is counted.
Without a token, each request from an address of its own (under ANON_REQUESTS_PER_MINUTE): `openapi`
(/openapi.json, not gzipped), `docs` (/docs), `redoc`, `health` (/health), `root` (/); and `throttled` (/info from
an address over its ANON_REQUESTS_PER_MINUTE, answered 429).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MESSAGE = "Hello! Could you tell me, in a few words, what the weather is usually like on the coast in spring?"
TURNS_PER_SESSION = 20
SCENARIOS = (
    *("new", "continued", "v1", "v1-session", "responses", "stream", "v1-stream", "live"),
    *("new-key", "new-key-rules", "v1-key", "v1-key-rules"),
    *("openapi", "docs", "redoc", "health", "root", "throttled"),
)
STREAM_CHUNK_DELAY = 0.001
ANONYMOUS_PATHS = {"openapi": "/openapi.json", "docs": "/docs", "redoc": "/redoc", "health": "/health", "root": "/"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=500, help="chats per scenario and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=50, help="chats per scenario before the first round")
    parser.add_argument("--scenarios", default="new,continued", help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--backend", default="redis", choices=("redis", "locmem"), help="HISTORY_BACKEND")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--env", action="append", default=[], help="extra service setting NAME=VALUE")
    parser.add_argument(
        "--budget",
        choices=("none", "tokens", "usd"),
        default="none",
        help="give the admin a budget (too large to refuse): every chat then reserves and settles against it",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--gevent", action="store_true", help="patched by gevent as gunicorn.conf.py patches the workers"
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="OpenTelemetry traces on, exported over OTLP/HTTP to a receiver on loopback that discards them",
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of one extra round of each scenario here")
    parser.add_argument("--callgrind", action="store_true", help="count instructions per chat under valgrind")
    parser.add_argument(
        "--chunk-delay",
        type=float,
        default=STREAM_CHUNK_DELAY,
        help="seconds between the pieces of a streamed reply (under callgrind, 0.05 keeps them apart as a slow "
        "model's are; 0.001 lets them pile up, read many at a time)",
    )
    parser.add_argument("--fake-url", help=argparse.SUPPRESS)  # a running fake upstream (the callgrind runs')
    return parser.parse_args(argv)


OTLP_SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""


@contextmanager
def otlp_sink(wanted: bool) -> Iterator[list[str]]:
    """With `wanted`, a receiver of OTLP/HTTP traces in a process of its own, and the OTEL_* settings that export
    to it (the SDK's defaults otherwise: a batch of up to 512 spans every 5 s)."""
    if not wanted:
        yield []
        return
    from bench.processes import free_port, wait_until_up

    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", OTLP_SINK, str(port)])
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", process, "the OTLP receiver")
        yield [f"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{port}", "OTEL_SERVICE_NAME=bench"]
    finally:
        process.terminate()
        process.wait()


@contextmanager
def fake_upstream(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from bench.processes import fake_upstream as start_fake

    with start_fake() as fake:
        yield fake.base_url


def configure(args: argparse.Namespace, fake_url: str) -> str:
    """The environment `make bench` gives the service, then Django set up in this process; returns the key prefix."""
    prefix = f"bench-cpu-{secrets.token_hex(4)}"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "chatbot_project.settings",
            "ENV_FILE": "",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DEFAULT_ADMIN_PASSWORD": secrets.token_urlsafe(18),
            "REDIS_URL": args.redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "GROQ_API_KEY": "bench-key",
            "GROQ_BASE_URL": fake_url,
            "HISTORY_BACKEND": args.backend,
            "LOG_LEVEL": "info",
            "BCRYPT_ROUNDS": "4",
            # One admin drives all the chats: its limits are raised, not turned off, so their work is measured.
            "CHAT_REQUESTS_PER_MINUTE": "100000000",
            "CHAT_MAX_CONCURRENT": "100000",
            # And its sessions, as bench/processes.py raises them: past the default 100 per admin, every new
            # session's turn would evict the oldest, a round trip and 0.4 ms of CPU that the benchmark's rows
            # do not pay.
            "MAX_SESSIONS": "100000",
            "MAX_SESSIONS_PER_ADMIN": "100000",
            **dict(item.split("=", 1) for item in args.env),
        }
    )
    # As under gunicorn.conf.py: prometheus_client in multiprocess mode, set before anything imports it.
    from core.metrics_multiprocess import metrics_dir_prepare

    metrics_dir_prepare()
    import django

    django.setup()
    return prefix


class Wsgi:
    """Calls the WSGI application as gunicorn does: an environ per request, the body as wsgi.input, the answer
    iterated and closed."""

    def __init__(self) -> None:
        from core.tracing import traced_wsgi, tracing_requested, tracing_start
        from core.wsgi_handler import wsgi_application

        # As chatbot_project/wsgi.py does (which also checks the configuration, as a server start would).
        if tracing_requested():
            tracing_start()
        self.app = traced_wsgi(wsgi_application())
        self.base = {
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": "gunicorn",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "40000",
            "HTTP_HOST": "127.0.0.1:8000",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": None,
        }
        self.headers: dict[str, str] = {}
        self.admin_id = ""

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        anonymous_from: str = "",
        headers: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """`anonymous_from`: send no token, from this client address; `headers`: instead of the login's. `extra`: more
        of the environ (headers)."""
        data = b"" if body is None else json.dumps(body).encode()
        environ = {
            **self.base,
            **({"REMOTE_ADDR": anonymous_from} if anonymous_from else headers or self.headers),
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "CONTENT_LENGTH": str(len(data)),
            "wsgi.input": io.BytesIO(data),
            **(extra or {}),
        }
        if body is not None:
            environ["CONTENT_TYPE"] = "application/json"
        status: list[str] = []

        def start_response(line: str, headers: list, exc_info: Any = None) -> None:
            status.append(line)

        result = self.app(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        return int(status[0].split(" ", 1)[0]), content


def login(wsgi: Wsgi, budget: str = "none") -> None:
    from decimal import Decimal

    from accounts.budgets import Budget, BudgetOwner, budget_set
    from accounts.services import admin_create

    password = secrets.token_urlsafe(18)
    username = f"bench-{secrets.token_hex(3)}"
    admin = admin_create(username=username, password=password)
    if budget != "none":
        amount = Budget(10**12, "month") if budget == "tokens" else Budget(None, "month", Decimal(10**6))
        budget_set(BudgetOwner("admin", admin.id), amount)
    wsgi.admin_id = admin.id
    status, body = wsgi.request("POST", "/admin/login", {"username": username, "password": password})
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body[:300]!r}")
    wsgi.headers = {"HTTP_AUTHORIZATION": f"Bearer {json.loads(body)['access_token']}"}


def api_key(admin_id: str, *, with_rules: bool) -> str:
    """A key of the admin: without rules, or with models, requests and tokens per minute and a dollar budget."""
    from decimal import Decimal

    from accounts.budgets import Budget, BudgetOwner, budget_set
    from accounts.key_rules import KeyRules
    from accounts.services import api_key_create

    if not with_rules:
        return api_key_create(admin_id=admin_id)[1]
    rules = KeyRules(models=("openai/gpt-oss-20b",), requests_per_minute=10**9, tokens_per_minute=10**12)
    key, raw = api_key_create(admin_id=admin_id, rules=rules)
    budget_set(BudgetOwner("key", key.id, admin_id), Budget(None, "month", usd=Decimal(10**9)))
    return raw


def scenario_step(wsgi: Wsgi, name: str, chunk_delay: float = STREAM_CHUNK_DELAY) -> Callable[[int], None]:
    tag = secrets.token_hex(4)

    def expect(status: int, body: bytes, wanted: int = 200) -> None:
        if status != wanted:
            raise RuntimeError(f"{name}: {status} {body[:300]!r}")

    def address(i: int) -> str:
        return f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"

    if name == "new":
        return lambda i: expect(*wsgi.request("POST", "/chat/", {"message": MESSAGE}))
    if name in ("new-key", "new-key-rules", "v1-key", "v1-key-rules"):
        key = {"HTTP_AUTHORIZATION": f"Bearer {api_key(wsgi.admin_id, with_rules=name.endswith('-rules'))}"}
        if name.startswith("new"):
            return lambda i: expect(*wsgi.request("POST", "/chat/", {"message": MESSAGE}, headers=key))
        body = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": MESSAGE}]}
        return lambda i: expect(*wsgi.request("POST", "/v1/chat/completions", body, headers=key))
    if name == "continued":
        return lambda i: expect(
            *wsgi.request("POST", "/chat/", {"message": MESSAGE, "session_id": f"{tag}-{i // TURNS_PER_SESSION}"})
        )
    if name == "v1":
        body = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": MESSAGE}]}
        return lambda i: expect(*wsgi.request("POST", "/v1/chat/completions", body))
    if name == "v1-session":
        body = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": MESSAGE}]}
        return lambda i: expect(
            *wsgi.request(
                "POST", "/v1/chat/completions", body, extra={"HTTP_X_SESSION_ID": f"{tag}-{i // TURNS_PER_SESSION}"}
            )
        )
    if name == "responses":
        previous: list[str | None] = [None]

        def respond(i: int) -> None:
            chained = previous[0] if i % TURNS_PER_SESSION else None  # chains of as many turns as `v1-session`'s
            body = {"model": "openai/gpt-oss-20b", "input": MESSAGE, "previous_response_id": chained}
            status, answer = wsgi.request("POST", "/v1/responses", body)
            expect(status, answer)
            previous[0] = json.loads(answer)["id"]

        return respond
    if name in ("stream", "v1-stream"):
        import httpx
        from django.conf import settings

        fake_root = settings.GROQ_BASE_URL.removesuffix("/openai/v1")
        httpx.post(f"{fake_root}/_fake/config", json={"chunk_delay": chunk_delay}, timeout=10).raise_for_status()

        def streamed(i: int) -> None:
            status, body = wsgi.request("POST", "/chat/", {"message": MESSAGE, "stream": True})
            expect(status if b"event: done" in body else 502, body)

        def v1_streamed(i: int) -> None:
            chunks = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": MESSAGE}], "stream": True}
            status, body = wsgi.request("POST", "/v1/chat/completions", chunks)
            expect(status if body.endswith(b"data: [DONE]\n\n") else 502, body)

        return streamed if name == "stream" else v1_streamed
    if name == "live":
        return lambda i: expect(*wsgi.request("GET", "/health/live"))
    if name in ANONYMOUS_PATHS:
        return lambda i: expect(*wsgi.request("GET", ANONYMOUS_PATHS[name], anonymous_from=address(i)))
    if name == "throttled":
        from django.conf import settings

        limit = settings.ANON_REQUESTS_PER_MINUTE
        # The warm-up takes the address over its limit.
        return lambda i: expect(
            *wsgi.request("GET", "/info", anonymous_from="192.0.2.1"), wanted=200 if i < limit else 429
        )
    raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")


def run_round(step: Callable[[int], None], chats: int, start: int) -> tuple[float, float]:
    """CPU and wall seconds of this thread for `chats` chats (under gevent, its event loop's too)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for i in range(start, start + chats):
        step(i)
    return time.thread_time() - cpu, time.perf_counter() - wall


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """The request log writes a line per chat to stderr, as in production (the writing is part of the cost); here
    it goes to /dev/null rather than to the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def measure(args: argparse.Namespace, fake_url: str) -> dict[str, Any]:
    prefix = configure(args, fake_url)
    from core.redis_store import redis_client

    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    results: dict[str, Any] = {}
    try:
        with quiet_stderr():
            wsgi = Wsgi()
            login(wsgi, args.budget)
            steps = {name: scenario_step(wsgi, name, args.chunk_delay) for name in names}
            done = dict.fromkeys(names, 0)
            for name in names:
                run_round(steps[name], args.warmup, 0)
                done[name] = args.warmup
            cpu: dict[str, list[float]] = {name: [] for name in names}
            wall: dict[str, list[float]] = {name: [] for name in names}
            # Rounds interleave the scenarios, so that a busy moment of the machine touches them alike.
            for _ in range(args.rounds):
                for name in names:
                    used, took = run_round(steps[name], args.chats, done[name])
                    done[name] += args.chats
                    cpu[name].append(used / args.chats * 1000)
                    wall[name].append(took / args.chats * 1000)
            if args.profile:
                import cProfile

                profiler = cProfile.Profile(time.thread_time)  # CPU, not time spent waiting
                for name in names:
                    profiler.runcall(run_round, steps[name], args.chats, done[name])
                profiler.dump_stats(args.profile)
    finally:
        from core.tracing import tracing_stop

        tracing_stop()  # the spans still in a batch are sent before the receiver goes
        client = redis_client()
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for at in range(0, len(keys), 1000):
            client.delete(*keys[at : at + 1000])
    for name in names:
        results[name] = {
            "cpu_ms_per_chat_median": round(statistics.median(cpu[name]), 3),
            "cpu_ms_per_chat_rounds": [round(v, 3) for v in cpu[name]],
            "wall_ms_per_chat_median": round(statistics.median(wall[name]), 3),
        }
    return results


def callgrind(args: argparse.Namespace) -> dict[str, Any]:
    """Instructions per chat: the same program under callgrind with `few` and then `many` chats per scenario; the
    difference excludes startup, the login and the warm-up."""
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    few, many = 20, 20 + args.chats
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    results: dict[str, Any] = {}
    with fake_upstream(None) as fake_url, tempfile.TemporaryDirectory() as tmp:
        for name in names:
            counts = []
            for chats in (few, many):
                out = Path(tmp) / f"{name}-{chats}.out"
                command = [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={out}",
                    sys.executable,
                    "-m",
                    "bench.cpu_per_chat",
                    f"--fake-url={fake_url}",
                    f"--chats={chats}",
                    "--rounds=1",
                    "--warmup=20",
                    f"--scenarios={name}",
                    f"--chunk-delay={args.chunk_delay}",
                    f"--backend={args.backend}",
                    *([f"--budget={args.budget}"] if args.budget != "none" else []),
                    *(["--gevent"] if args.gevent else []),
                    *(["--tracing"] if args.tracing else []),
                    f"--redis-url={args.redis_url}",
                    *(f"--env={item}" for item in args.env),
                ]
                env = {**os.environ, "PYTHONHASHSEED": "0"}
                ran = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
                if ran.returncode != 0:
                    raise SystemExit(f"{name} under callgrind failed:\n{ran.stdout[-2000:]}{ran.stderr[-3000:]}")
                counts.append(_callgrind_total(out))
            results[name] = {"instructions_per_chat": round((counts[1] - counts[0]) / (many - few))}
    return results


def _callgrind_total(path: Path) -> int:
    for line in path.read_text().splitlines():
        match = re.match(r"(?:summary|totals):\s+(\d+)", line)
        if match:
            return int(match.group(1))
    raise RuntimeError(f"no totals in {path}")


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    if args.gevent:
        from core.cooperative import gevent_patch_all

        gevent_patch_all()
    if args.callgrind and not args.fake_url:
        results = callgrind(args)
        command = f"--callgrind --chats {args.chats}" + (" --tracing" if args.tracing else "")
        command += f" --chunk-delay {args.chunk_delay}" if args.chunk_delay != STREAM_CHUNK_DELAY else ""
    else:
        with fake_upstream(args.fake_url) as fake_url, otlp_sink(args.tracing) as tracing_env:
            args.env += tracing_env
            results = measure(args, fake_url)
        command = f"--chats {args.chats} --rounds {args.rounds}" + (" --tracing" if args.tracing else "")
    if args.fake_url:  # an inner callgrind run: its totals are all that counts
        return
    report = {
        "command": f"python -m bench.cpu_per_chat {command} --scenarios {args.scenarios} --backend {args.backend}"
        + (" --gevent" if args.gevent else ""),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "results": results,
    }
    if "responses" in results and "v1-session" in results:
        measured = (
            "cpu_ms_per_chat_median" if "cpu_ms_per_chat_median" in results["responses"] else "instructions_per_chat"
        )
        ratio = results["responses"][measured] / results["v1-session"][measured]
        results["responses"]["vs_v1_session"] = round(ratio, 3)
    for name, row in results.items():
        print(f"{name:10s} " + "  ".join(f"{key}={value}" for key, value in row.items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
