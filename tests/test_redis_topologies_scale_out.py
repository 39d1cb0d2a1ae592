"""Two instances of the service (gunicorn, as `make run` starts it) on a real Redis Cluster (REDIS_URL naming a
replica) and on a real Sentinel setup: what one instance does, the other sees, and what they count, they count
together."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from http import HTTPStatus

import httpx
import pytest

from tests.redis_topologies import redis_cluster, redis_sentinel
from tests.server import running_servers, server_env
from tests.support import ROOT
from tests.topology import cluster_env, require_redis_server, sentinel_env

pytestmark = pytest.mark.redis_topology

ADMIN_PASSWORD = "a-strong-default-password"  # tests/settings.py's DEFAULT_ADMIN_PASSWORD: the default admin's
PER_MINUTE = 40


@dataclass
class Instances:
    first: str
    second: str
    env: dict[str, str]

    def both(self) -> tuple[str, str]:
        return self.first, self.second


@pytest.fixture(scope="module", params=["cluster", "sentinel"])
def instances(request) -> Iterator[Instances]:
    require_redis_server()
    with ExitStack() as stack:
        if request.param == "cluster":
            env = cluster_env(stack.enter_context(redis_cluster()))
        else:
            env = sentinel_env(stack.enter_context(redis_sentinel()))
        env |= {"CHAT_REQUESTS_PER_MINUTE": str(PER_MINUTE), "LOGIN_MAX_FAILURES_PER_USERNAME": "5"}
        first, second = stack.enter_context(running_servers(2, **env))
        yield Instances(first, second, env)


def create_admin(instances: Instances, username: str, password: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "createadmin", username, "--password", password],
        cwd=ROOT,
        env=server_env(**instances.env),
        check=True,
        capture_output=True,
        timeout=60,
    )


def log_in(url: str, username: str = "admin", password: str = ADMIN_PASSWORD) -> dict[str, str]:
    response = httpx.post(f"{url}/admin/login", json={"username": username, "password": password}, timeout=30)
    assert response.status_code == HTTPStatus.OK, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def chat(url: str, headers: dict[str, str], message: str, session_id: str) -> httpx.Response:
    return httpx.post(f"{url}/chat/", json={"session_id": session_id, "message": message}, headers=headers, timeout=30)


def test_login_refresh_logout_and_revocation_are_seen_by_both_instances(instances):
    first, second = instances.both()
    tokens = log_in(first)
    assert httpx.get(f"{second}/admin/info", headers=bearer(tokens["access_token"])).status_code == HTTPStatus.OK

    refreshed = httpx.post(f"{second}/admin/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == HTTPStatus.OK, refreshed.text
    access = refreshed.json()["access_token"]
    assert httpx.get(f"{first}/admin/info", headers=bearer(access)).status_code == HTTPStatus.OK

    assert httpx.post(f"{first}/admin/logout", headers=bearer(access)).status_code == HTTPStatus.OK
    for url in (first, second):
        refused = httpx.get(f"{url}/admin/info", headers=bearer(tokens["access_token"]))
        assert (refused.status_code, refused.json()["code"]) == (HTTPStatus.UNAUTHORIZED, "token_revoked")
    again = httpx.post(f"{second}/admin/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == HTTPStatus.UNAUTHORIZED


def test_revoked_logins_and_api_keys_are_refused_by_the_other_instance(instances):
    first, second = instances.both()
    create_admin(instances, "changer", "changer-password-1")
    kept, other = log_in(first, "changer", "changer-password-1"), log_in(first, "changer", "changer-password-1")

    listed = httpx.get(f"{second}/admin/sessions", headers=bearer(kept["access_token"])).json()["sessions"]
    other_id = next(s["id"] for s in listed if not s["current"])
    revoked = httpx.delete(f"{second}/admin/sessions/{other_id}", headers=bearer(kept["access_token"]))
    assert revoked.status_code in (HTTPStatus.OK, HTTPStatus.NO_CONTENT), revoked.text
    assert httpx.get(f"{first}/admin/info", headers=bearer(other["access_token"])).status_code == 401

    created = httpx.post(f"{first}/admin/api-keys", json={"name": "sdk"}, headers=bearer(kept["access_token"]))
    assert created.status_code == HTTPStatus.CREATED, created.text
    key = created.json()
    assert httpx.get(f"{second}/admin/info", headers=bearer(key["key"])).status_code == HTTPStatus.OK
    assert httpx.delete(f"{second}/admin/api-keys/{key['id']}", headers=bearer(kept["access_token"])).is_success
    assert httpx.get(f"{first}/admin/info", headers=bearer(key["key"])).status_code == 401

    # A new password revokes every login of the admin at once (one script in the admin's slot).
    changed = httpx.post(
        f"{second}/admin/change-credentials",
        json={"current_password": "changer-password-1", "new_password": "changer-password-2"},
        headers=bearer(kept["access_token"]),
    )
    assert changed.status_code == HTTPStatus.OK, changed.text
    assert httpx.get(f"{first}/admin/info", headers=bearer(kept["access_token"])).status_code == 401
    log_in(second, "changer", "changer-password-2")


def test_a_conversation_continues_across_instances(instances, fake_groq):
    first, second = instances.both()
    headers = bearer(log_in(first)["access_token"])

    assert chat(first, headers, "My name is Alice.", "continued").status_code == HTTPStatus.OK
    answer = chat(second, headers, "What is my name?", "continued")

    assert answer.status_code == HTTPStatus.OK, answer.text
    sent = [m["content"] for m in fake_groq.chat_requests()[-1]["json"]["messages"]]
    assert sent == ["My name is Alice.", "Echo: My name is Alice.", "What is my name?"]
    assert httpx.get(f"{first}/chat/sessions/continued", headers=headers).json()["message_count"] == 4


def test_16_concurrent_turns_to_one_session_lose_nothing(instances, fake_groq):
    first, second = instances.both()
    headers = bearer(log_in(first)["access_token"])
    fake_groq.configure(latency=0.02)  # turns overlap, so the session lock has work to do
    messages = [f"message {i}" for i in range(16)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda i: chat((first, second)[i % 2], headers, messages[i], "busy"), range(16)))

    assert [a.status_code for a in answers] == [HTTPStatus.OK] * 16, [a.text for a in answers]
    stored = httpx.get(f"{second}/chat/sessions/busy", headers=headers).json()["messages"]
    assert len(stored) == 32
    assert Counter(m["content"] for m in stored if m["role"] == "user") == Counter(messages)
    for question, reply in zip(stored[::2], stored[1::2], strict=True):
        assert reply["content"] == f"Echo: {question['content']}"
    history_lengths = sorted(len(r["json"]["messages"]) for r in fake_groq.chat_requests())
    assert history_lengths == [2 * i + 1 for i in range(16)]


def test_usage_and_chat_limits_count_across_instances(instances):
    first, second = instances.both()
    create_admin(instances, "counted", "counted-password-1")
    headers = bearer(log_in(first, "counted", "counted-password-1")["access_token"])
    while time.time() % 60 > 45:  # the chats below must fall within one minute, the limit's window
        time.sleep(0.5)

    statuses = [chat((first, second)[i % 2], headers, "hi", f"s{i % 3}").status_code for i in range(PER_MINUTE)]
    over = [chat(url, headers, "one more", "s0") for url in (first, second)]

    assert statuses == [HTTPStatus.OK] * PER_MINUTE
    assert [r.status_code for r in over] == [HTTPStatus.TOO_MANY_REQUESTS] * 2
    assert all(r.json()["code"] == "chat_limit_exceeded" for r in over)
    for url in (first, second):
        usage = httpx.get(f"{url}/chat/memory/stats", headers=headers).json()["usage"]
        assert usage["requests"] == PER_MINUTE
        assert usage["total_tokens"] > 0


def test_login_throttles_count_across_instances(instances):
    first, second = instances.both()

    def wrong(url: str) -> int:
        return httpx.post(f"{url}/admin/login", json={"username": "nobody", "password": "wrong-password"}).status_code

    statuses = [wrong((first, second)[i % 2]) for i in range(5)]
    assert statuses == [HTTPStatus.UNAUTHORIZED] * 5
    assert [wrong(first), wrong(second)] == [HTTPStatus.TOO_MANY_REQUESTS] * 2
