"""Server time of the console's pages, in-process (Django's test client against the real Redis), for an admin
with 1,000 stored sessions of 10 messages, 90 days of usage (3 models, 5 keys), 5 keys with budgets and 2,000
audit log entries.

    .venv/bin/python -m bench.console_pages [--backend redis|locmem] [--times 30]

Prints, per page, the median CPU time of this process and the median wall time of a request. BENCH_PROFILE=<page
name> (e.g. "usage, 90 days") prints that page's cProfile over 10 requests too, sorted by BENCH_SORT (cumulative)."""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time
from datetime import UTC, datetime, timedelta

PASSWORD = "a-strong-bench-password"
MODELS = ("openai/gpt-oss-20b", "llama-3.1-8b-instant", "llama-3.3-70b-versatile")


def configure(args: argparse.Namespace) -> str:
    prefix = f"bench-console-{secrets.token_hex(4)}"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "chatbot_project.settings",
            "ENV_FILE": "",
            "DEBUG": "false",
            "SECURE_COOKIES": "false",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DEFAULT_ADMIN_PASSWORD": secrets.token_urlsafe(18),
            "REDIS_URL": args.redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "GROQ_API_KEY": "bench-key",
            "HISTORY_BACKEND": args.backend,
            "BCRYPT_ROUNDS": "4",
            "ALLOWED_HOSTS": "testserver",
            "LOG_LEVEL": "warning",
            "MAX_SESSIONS": "100000",
            "CHAT_REQUESTS_PER_MINUTE": "100000000",
            "MAX_SESSIONS_PER_ADMIN": "10000",
        }
    )
    import django

    django.setup()
    return prefix


def seed(admin) -> None:
    from accounts.audit import audit_record
    from accounts.budgets import Budget
    from accounts.services import api_key_create
    from conversations.services import session_import
    from conversations.usage_history import day_key
    from core.redis_store import redis_client

    admin_id = admin.id
    for n in range(1000):
        messages = [
            {"role": "user" if m % 2 == 0 else "assistant", "content": f"message {m} of session {n}, " * 8}
            for m in range(10)
        ]
        session_import(admin=admin, document={"format": "chatbot-session/1", "messages": messages})
    keys = [api_key_create(admin_id=admin_id, name=f"key {k}", budget=Budget(10**9, "month"))[0].id for k in range(5)]
    today = datetime.now(UTC).date()
    pipe = redis_client().pipeline(transaction=False)
    for back in range(90):
        key = day_key(admin_id, today - timedelta(days=back))
        for key_id in ("", *keys):
            for model in MODELS:
                for counter, value in (("requests", 40), ("input_tokens", 30_000), ("output_tokens", 9_000)):
                    pipe.hincrby(key, f"{counter}\t{key_id}\t{model}", value)
                pipe.hincrby(key, f"cost_micros\t{key_id}\t{model}", 12_345)
    pipe.execute()

    for n in range(2000):
        audit_record("api_key.changed", as_admin=(admin_id, admin.username), target=f"{n:016x}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["redis", "locmem"], default="redis")
    parser.add_argument("--times", type=int, default=30)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    prefix = configure(args)

    from django.test import Client

    from accounts.services import admin_create
    from conversations.selectors import session_list
    from core.redis_store import redis_client

    try:
        admin = admin_create(username="bench", password=PASSWORD)
        seed(admin)
        browser = Client()
        signed = browser.post("/console/sign-in", {"username": "bench", "password": PASSWORD})
        assert signed.status_code == 302, signed.status_code
        session_id = session_list(admin_id=admin.id, limit=1)[0].session_id
        today = datetime.now(UTC).date()
        pages = {
            "chat": "/console/",
            "a session": f"/console/chat/{session_id}",
            "API keys": "/console/keys",
            "usage, 30 days": "/console/usage",
            "usage, 90 days": f"/console/usage?since={today - timedelta(days=89)}&until={today}",
            "audit log": "/console/audit",
            "audit log, one action": "/console/audit?action=login.succeeded",
            "status": "/console/status",
        }
        for name, url in pages.items():
            cpu, wall = [], []
            for _ in range(args.times):
                started_cpu, started = time.process_time(), time.perf_counter()
                response = browser.get(url)
                cpu.append((time.process_time() - started_cpu) * 1000)
                wall.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (url, response.status_code)
            if os.environ.get("BENCH_PROFILE") == name:
                import cProfile
                import pstats

                profiler = cProfile.Profile(time.process_time)
                for _ in range(10):  # one request's profile is mostly the machine's noise
                    profiler.runcall(browser.get, url)
                pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(25)
            print(f"{name:24} CPU {statistics.median(cpu):6.1f} ms  wall {statistics.median(wall):6.1f} ms (median)")
    finally:
        db = redis_client()
        keys = list(db.scan_iter(match=f"{prefix}:*"))
        if keys:
            db.delete(*keys)


if __name__ == "__main__":
    main()
