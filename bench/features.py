"""What each conversation feature adds to a chat's CPU, measured as bench/cpu_per_chat.py measures (the request
thread's CPU time, in process, Redis history, the fake upstream in a process of its own), all in one run:

    .venv/bin/python -m bench.features                   # 5 rounds x 300 requests per scenario
    .venv/bin/python -m bench.features --chats 200 --rounds 3

Scenarios, each against `chat` (a message to a session of 20 turns) in the same run:
- `idempotent`: the same chat with a new Idempotency-Key each time (claim, then keep the answer);
- `budget`: the admin has a token budget (reserve before the call, settle after);
- `summary`: HISTORY_SUMMARY on with HISTORY_MAX_MESSAGES=4, so that every turn folds the oldest exchange into
  the summary: one more upstream call per chat;
- `regenerate`: POST /chat/sessions/{id}/regenerate on a session of 2 turns;
- `export`, `import`: one session of 20 messages out, and in under a new id.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

from bench.cpu_per_chat import MESSAGE, ROOT, Wsgi, configure, fake_upstream, login, quiet_stderr, run_round

SCENARIOS = ("chat", "idempotent", "budget", "summary", "regenerate", "export", "import")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=300, help="requests per scenario and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    return parser.parse_args()


def steps(wsgi: Wsgi) -> dict[str, Callable[[int], None]]:
    from django.test import override_settings

    def expect(status: int, body: bytes, wanted: int = 200) -> bytes:
        if status != wanted:
            raise RuntimeError(f"{status} {body[:300]!r}")
        return body

    def chat(session: str, headers: dict[str, str] | None = None) -> bytes:
        saved = dict(wsgi.headers)
        wsgi.headers.update(headers or {})
        try:
            return expect(*wsgi.request("POST", "/chat/", {"message": MESSAGE, "session_id": session}))
        finally:
            wsgi.headers = saved

    def plain(i: int) -> None:
        chat(f"plain-{i // 20}")

    def idempotent(i: int) -> None:
        chat(f"idem-{i // 20}", {"HTTP_IDEMPOTENCY_KEY": f"key-{i}"})

    def budget(i: int) -> None:  # the admin has a budget while this scenario runs (_run)
        chat(f"budget-{i // 20}")

    def summary(i: int) -> None:
        with override_settings(HISTORY_SUMMARY=True, HISTORY_MAX_MESSAGES=4):
            chat(f"summary-{i // 20}")

    def regenerate(i: int) -> None:
        session = f"redo-{i // 20}"
        if i % 20 == 0:
            chat(session)
            chat(session)
        expect(*wsgi.request("POST", f"/chat/sessions/{session}/regenerate", {}))

    for _ in range(10):
        chat("exported")
    document = json.loads(expect(*wsgi.request("GET", "/chat/sessions/exported/export")))

    def export(i: int) -> None:
        expect(*wsgi.request("GET", "/chat/sessions/exported/export"))

    def import_(i: int) -> None:
        body = {**document, "session_id": f"imported-{i}"}
        expect(*wsgi.request("POST", "/chat/sessions/import", body), wanted=201)

    return {
        "chat": plain,
        "idempotent": idempotent,
        "budget": budget,
        "summary": summary,
        "regenerate": regenerate,
        "export": export,
        "import": import_,
    }


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    with fake_upstream(None) as fake_url:
        room = ["MAX_SESSIONS=100000", "MAX_SESSIONS_PER_ADMIN=100000"]
        options = argparse.Namespace(redis_url=args.redis_url, backend="redis", env=room)
        prefix = configure(options, fake_url)
        from core.redis_store import redis_client

        try:
            with quiet_stderr():
                wsgi = Wsgi()
                login(wsgi)
                admin_id = _admin_id(wsgi)
                runs = steps(wsgi)
                cpu: dict[str, list[float]] = {name: [] for name in SCENARIOS}
                done = dict.fromkeys(SCENARIOS, 0)
                for name in SCENARIOS:
                    _run(name, runs[name], args.warmup, 0, admin_id)
                    done[name] = args.warmup
                for _ in range(args.rounds):
                    for name in SCENARIOS:
                        used = _run(name, runs[name], args.chats, done[name], admin_id)
                        done[name] += args.chats
                        cpu[name].append(used / args.chats * 1000)
        finally:
            client = redis_client()
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for at in range(0, len(keys), 1000):
                client.delete(*keys[at : at + 1000])
    base = statistics.median(cpu["chat"])
    report: dict[str, Any] = {}
    for name in SCENARIOS:
        median = statistics.median(cpu[name])
        report[name] = {"cpu_ms_median": round(median, 3), "vs_chat_ms": round(median - base, 3)}
        print(f"{name:11s} {median:7.3f} ms CPU per request   {median - base:+7.3f} ms against a chat")
    print(json.dumps({"command": f"python -m bench.features --chats {args.chats} --rounds {args.rounds}", **report}))


def _run(name: str, step: Callable[[int], None], count: int, start: int, admin_id: str) -> float:
    """A round of one scenario; the budget scenario's admin has a budget only while its round runs."""
    from accounts.budgets import Budget, BudgetOwner, budget_set

    owner = BudgetOwner("admin", admin_id)
    if name == "budget":
        budget_set(owner, Budget(10**12, "month"))
    try:
        used, _ = run_round(step, count, start)
    finally:
        if name == "budget":
            budget_set(owner, None)
    return used


def _admin_id(wsgi: Wsgi) -> str:
    _, body = wsgi.request("GET", "/admin/info")
    return json.loads(body)["id"]


if __name__ == "__main__":
    main()
