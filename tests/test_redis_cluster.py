"""The service on a real Redis Cluster (three primaries with a replica each, tests/redis_topologies.py), reached
through one node named by REDIS_URL (a replica). A command whose keys span slots is refused by the cluster
(CROSSSLOT) or by redis-py before it is sent, so every flow here fails if any of its operations does. The suites
that use Redis run on the same cluster with `--redis-topologies=cluster` (tests/conftest.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import pytest
from django.core.management import call_command
from redis.commands.core import Script
from redis.crc import key_slot
from rest_framework.test import APIClient

from accounts.budgets import Budget, BudgetOwner, budget_set
from accounts.services import admin_create
from conversations.history import HistoryFull, message
from conversations.history.redis_store import RedisHistoryStore
from conversations.limits import AdminSlot, chat_limits, turn_hold_seconds
from conversations.usage import admin_usage_totals, usage_key
from core.redis_store import redis_client
from tests.redis_topologies import Cluster
from tests.support import ALICE_PASSWORD, chat, login
from tests.topology import Topologies

pytestmark = pytest.mark.redis_topology("cluster")


@pytest.fixture
def cluster(redis_topologies: Topologies) -> Cluster:
    return redis_topologies.cluster()


def slots(keys: list[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


@pytest.mark.parametrize("session_id", ["s1", "with:colons", "{braces}", "x" * 100])
def test_each_turn_script_keeps_its_keys_in_the_admins_slot(session_id):
    store = RedisHistoryStore(limits=chat_limits, usage=admin_usage_totals)
    slot = AdminSlot("0123456789abcdef")
    admin_slot = slots([usage_key(slot.admin_id)])

    for keys in (
        store.begin_keys(slot, session_id),
        store.finish_keys(slot, session_id),
        store.release_keys(slot, session_id),
    ):
        assert slots(keys) == admin_slot, keys


def test_the_client_is_a_cluster_client_found_through_a_replica(cluster):
    client = redis_client()
    assert len(client.get_primaries()) == 3
    assert cluster.role(cluster.nodes[3]) == "slave"


def test_a_conversation_with_a_new_and_a_continued_session(api, fake_groq):
    admin_create(username="alice", password=ALICE_PASSWORD)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {login(api, 'alice', ALICE_PASSWORD)['access_token']}")

    assert chat(api, "My name is Alice.", "s1").status_code == HTTPStatus.OK
    answer = chat(api, "What is my name?", "s1")

    assert answer.status_code == HTTPStatus.OK, answer.content
    assert answer.json()["session_usage"]["requests"] == 2
    listing = api.get("/chat/sessions").json()
    assert [s["session_id"] for s in listing["sessions"]] == ["s1"]
    assert api.get("/chat/sessions/s1").json()["message_count"] == 4


def test_max_sessions_holds_while_admins_on_every_primary_start_sessions_at_once(settings):
    settings.MAX_SESSIONS, settings.MAX_SESSIONS_PER_ADMIN = 10, 10
    admins = [admin_create(username=f"admin{number}", password=ALICE_PASSWORD) for number in range(6)]
    store = RedisHistoryStore(limits=chat_limits, usage=admin_usage_totals)

    def start_session(number: int) -> bool:
        admin = admins[number % len(admins)]
        try:
            with store.session_turn(admin.id, f"s{number}", hold_seconds=turn_hold_seconds()) as turn:
                turn.finish([message("user", "hi")], {"requests": 1})
        except HistoryFull:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        started = list(pool.map(start_session, range(40)))

    stored = list(redis_client().scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:*:conv:*:meta"))
    assert sum(started) == len(stored) == store.count() == 10
    assert len({redis_client().get_node_from_key(key).name for key in stored}) > 1  # on several primaries


@pytest.fixture
def script_calls(monkeypatch) -> list[tuple[str, list[str]]]:
    """Every Lua script this process runs, by its first line and its keys; each call goes on to run the script."""
    calls: list[tuple[str, list[str]]] = []
    real = Script.__call__

    def recording(self, keys=(), args=(), client=None):
        first_line = next(line for line in self.script.splitlines() if line.strip())
        calls.append((first_line.strip(), [k if isinstance(k, str) else k.decode() for k in keys]))
        return real(self, keys=keys, args=args, client=client)

    monkeypatch.setattr(Script, "__call__", recording)
    return calls


def test_every_script_a_request_runs_keeps_its_keys_in_one_slot(script_calls, api, fake_groq, settings):
    settings.REDIS_WAIT_REPLICAS = 0  # a replicated write runs its script as EVALSHA in a pipeline, unrecorded
    admin = admin_create(username="alice", password=ALICE_PASSWORD)
    budget_set(BudgetOwner("admin", admin.id), Budget(1_000_000, "day"))
    tokens = login(api, "alice", ALICE_PASSWORD)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert api.post("/admin/refresh", {"refresh_token": tokens["refresh_token"]}, format="json").status_code == 200
    assert chat(api, "first", "s1").status_code == HTTPStatus.OK  # a new session
    streamed = chat(api, "again", "s1", stream=True)  # continued, streamed: the turn ends with the stream
    assert streamed.status_code == HTTPStatus.OK
    assert b"done" in b"".join(streamed.streaming_content)
    once = api.post("/chat/", {"session_id": "s1", "message": "once"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert once.status_code == HTTPStatus.OK
    assert api.post("/chat/sessions/s1/regenerate", {}, format="json").status_code == HTTPStatus.OK
    key = api.post("/admin/api-keys", {"budget": {"tokens": 100_000, "period": "day"}}, format="json").json()
    with_key = APIClient(HTTP_AUTHORIZATION=f"Bearer {key['key']}")
    body = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}]}
    assert with_key.post("/v1/chat/completions", body, format="json").status_code == HTTPStatus.OK
    assert api.delete(f"/admin/api-keys/{key['id']}").status_code in (HTTPStatus.OK, HTTPStatus.NO_CONTENT)
    for _ in range(3):
        APIClient().post("/admin/login", {"username": "alice", "password": "wrong-password"}, format="json")
    login(APIClient(), "alice", ALICE_PASSWORD)
    change = {"current_password": ALICE_PASSWORD, "new_password": "alice-password-2"}
    assert api.post("/admin/change-credentials", change, format="json").status_code == HTTPStatus.OK
    call_command("deleteadmin", "alice", "--force")

    for script, keys in script_calls:
        assert len(slots(keys)) == 1, (script, keys)
    assert len({script for script, _ in script_calls}) >= 10, sorted({script for script, _ in script_calls})
