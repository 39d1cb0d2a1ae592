"""How many Redis round trips a chat costs. Besides the token's login-session check, a turn's own Redis
work is one round trip to begin it (admin slot, session lock, admission, history read) and one to finish it
(stored turn, usage, indexes, releases): three in all with the Redis history."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus

import pytest
from redis.connection import AbstractConnection
from rest_framework.test import APIClient

from accounts.budgets import Budget, BudgetOwner, budget_set
from conversations.history.redis_keys import store_index_key
from conversations.usage import usage_key
from conversations.usage_history import usage_report
from core.redis_store import redis_client
from tests.support import chat


@pytest.fixture
def round_trips(monkeypatch) -> list[bytes]:
    sent: list[bytes] = []
    real = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return real(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


# With REDIS_WAIT_REPLICAS, whether the primary has replicas to wait for is asked (ROLE) once a second at most,
# not per chat: those are not counted.
_ROLE = b"*1\r\n$4\r\nROLE\r\n"


def counted(round_trips: list[bytes], send) -> int:
    round_trips.clear()
    response = send()
    assert response.status_code == HTTPStatus.OK, response.content
    packed = (b"".join(command) if isinstance(command, list) else command for command in round_trips)
    return sum(1 for command in packed if not command.startswith(_ROLE))


def stateless(client):
    return client.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}]},
        format="json",
    )


def test_round_trips_per_chat(history_backend, alice_client, round_trips, settings):
    chat(alice_client, "warm up", "warm")  # connections opened, scripts loaded
    counts = {
        "new session": counted(round_trips, lambda: chat(alice_client, "hi", "s1")),
        "continued session": counted(round_trips, lambda: chat(alice_client, "again", "s1")),
        "stateless": counted(round_trips, lambda: stateless(alice_client)),
    }
    # The token's login session, the turn's begin, the turn's finish; on Redis Cluster a new session's place in the
    # store-wide index (another slot) takes one more.
    new_session = 4 if history_backend == "redis" and settings.REDIS_CLUSTER else 3
    assert counts == {"new session": new_session, "continued session": 3, "stateless": 3}


def test_a_session_evicted_for_a_new_one_costs_one_more(alice, alice_client, round_trips, settings):
    settings.HISTORY_BACKEND = "redis"
    settings.MAX_SESSIONS_PER_ADMIN = 1
    chat(alice_client, "hi", "s1")
    # On Redis Cluster that round trip also moves the store-wide index's places (evicted out, new in): sent at
    # once to that index's node too, when it is another.
    nodes = 1
    if settings.REDIS_CLUSTER:
        client = redis_client()
        nodes = len({client.get_node_from_key(key).name for key in (usage_key(alice.id), store_index_key())})

    # Its keys are named only once the finish script has chosen it, so they are deleted in a round trip of their own.
    assert counted(round_trips, lambda: chat(alice_client, "hi", "s2")) == 3 + nodes
    assert alice_client.get("/chat/sessions/s1").status_code == HTTPStatus.NOT_FOUND


def respond(client, text: str, previous: str | None = None, conversation: str | None = None):
    body = {"model": "openai/gpt-oss-20b", "input": text, "previous_response_id": previous}
    if conversation:
        body["conversation"] = conversation
    return client.post("/v1/responses", body, format="json")


def test_a_response_costs_the_round_trips_of_a_chat(history_backend, alice_client, round_trips, settings):
    """The stored response (its record beside the chain's session) is read by the turn's begin and written by its
    finish; a conversation's record is read by the begin too."""
    chat(alice_client, "warm up", "warm")
    first = respond(alice_client, "warm up").json()["id"]
    conversation = alice_client.post("/v1/conversations", {}, format="json").json()["id"]
    chats = {
        "new": counted(round_trips, lambda: chat(alice_client, "hi", "s1")),
        "continued": counted(round_trips, lambda: chat(alice_client, "again", "s1")),
    }
    responses = {
        "new": counted(round_trips, lambda: respond(alice_client, "hi")),
        "continued": counted(round_trips, lambda: respond(alice_client, "again", first)),
    }
    in_conversation = counted(round_trips, lambda: respond(alice_client, "hi", conversation=conversation))

    assert responses == chats
    assert in_conversation == chats["new"]  # the conversation's first turn
    assert chats["continued"] == 3


def test_a_key_with_models_limits_and_a_budget_costs_one_more(alice, alice_client, round_trips, settings):
    """Its rules are read with the key; its budget's and its limits' reservations are one round trip, settled in
    the turn's finish."""
    from accounts.key_rules import KeyRules
    from accounts.services import api_key_create

    settings.HISTORY_BACKEND = "redis"
    plain = api_key_create(admin_id=alice.id)[1]
    key, ruled = api_key_create(
        admin_id=alice.id,
        rules=KeyRules(models=("openai/gpt-oss-20b",), requests_per_minute=1000, tokens_per_minute=10**9),
    )
    budget_set(BudgetOwner("key", key.id, alice.id), Budget(10**9, "day", Decimal(1000)))  # tokens and dollars
    clients = {
        name: APIClient(HTTP_AUTHORIZATION=f"Bearer {raw}") for name, raw in (("plain", plain), ("ruled", ruled))
    }
    for name, client in clients.items():
        stateless(client)  # scripts loaded
        chat(client, "warm up", name)

    counts = {
        (name, kind): counted(round_trips, send)
        for name, client in clients.items()
        for kind, send in (
            ("stateless", lambda c=client: stateless(c)),
            ("session", lambda c=client, session=name: chat(c, "hi", session)),
        )
    }

    assert counts[("ruled", "stateless")] == counts[("plain", "stateless")] + 1
    assert counts[("ruled", "session")] == counts[("plain", "session")] + 1


@pytest.mark.parametrize(
    "budget", [Budget(10**9, "day"), Budget(None, "day", Decimal(1000)), Budget(10**9, "day", Decimal(1000))]
)
def test_a_budget_costs_one_round_trip_in_tokens_or_dollars_and_the_usage_of_the_day_none(
    alice, alice_client, round_trips, budget
):
    """Reserving; the settling and the usage of the day ride in the turn's finish, whatever the budget."""
    chat(alice_client, "warm up", "warm")
    without = counted(round_trips, lambda: chat(alice_client, "hi", "warm"))
    budget_set(BudgetOwner("admin", alice.id), budget)
    chat(alice_client, "warm up", "warm")  # the budget's scripts loaded
    assert counted(round_trips, lambda: chat(alice_client, "hi", "warm")) == without + 1
    today = datetime.now(UTC).date()
    assert usage_report(alice.id, today, today, ["day"])["totals"]["requests"] == 4
