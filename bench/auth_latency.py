"""Login and authenticated-request latency through the service as `make run` starts it (bcrypt cost 12).

    .venv/bin/python -m bench.auth_latency

Prints medians: a good login, a wrong password, an unknown username (which should cost the same), a request
with a valid token, and /health/live as the floor of any request."""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from bench.processes import fake_upstream, service, service_env

PASSWORD = "a-strong-bench-password"
REDIS_URL = "redis://127.0.0.1:6379/14"


def median_ms(call: Callable[[], httpx.Response], times: int) -> tuple[httpx.Response, float]:
    samples, response = [], None
    for _ in range(times):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
    assert response is not None
    return response, statistics.median(samples)


def main() -> None:
    prefix = f"bench-auth-{secrets.token_hex(4)}"
    # Throttling would turn the repeated wrong passwords into 429s: raise it for this measurement only.
    extra = {"LOGIN_MAX_FAILURES_PER_USERNAME": "100000", "LOGIN_MAX_FAILURES_PER_IP": "100000", "BCRYPT_ROUNDS": "12"}
    try:
        with fake_upstream() as fake:
            env = service_env(fake=fake, redis_url=REDIS_URL, key_prefix=prefix, admin_password=PASSWORD, **extra)
            with service(env, Path("bench/results/service-auth.log")) as app, httpx.Client(base_url=app.url) as client:

                def login(username: str, password: str) -> Callable[[], httpx.Response]:
                    return lambda: client.post("/admin/login", json={"username": username, "password": password})

                good, good_ms = median_ms(login("admin", PASSWORD), 15)
                _, wrong_ms = median_ms(login("admin", "wrong-password"), 15)
                _, unknown_ms = median_ms(login("nobody", "wrong-password"), 15)
                headers = {"Authorization": f"Bearer {good.json()['access_token']}"}
                _, info_ms = median_ms(lambda: client.get("/admin/info", headers=headers), 300)
                _, live_ms = median_ms(lambda: client.get("/health/live"), 300)
    finally:
        db = redis.Redis.from_url(REDIS_URL)
        keys = list(db.scan_iter(match=f"{prefix}:*"))
        if keys:
            db.delete(*keys)
    print(f"login {good_ms:.0f} ms, wrong password {wrong_ms:.0f} ms, unknown username {unknown_ms:.0f} ms (p50)")
    print(f"GET /admin/info with a token {info_ms:.2f} ms, GET /health/live {live_ms:.2f} ms (p50)")


if __name__ == "__main__":
    main()
