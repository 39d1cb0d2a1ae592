"""Usage over time: per UTC day, admin, API key and model, recorded in the turn's last write (no round trip of its
own), read by GET /admin/usage (an admin sees its own) and `manage.py usage` (CSV and JSON), kept
USAGE_RETENTION_DAYS."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from conversations.usage_history import day_key, usage_report
from core.redis_store import redis_client
from llm_provider.pricing import usd
from tests.support import MODEL, ask

OTHER = "openai/gpt-oss-120b"  # without a price here


@pytest.fixture
def prices(tmp_path, settings):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({MODEL: {"input": "1.00", "output": "2.00"}}))
    settings.MODEL_PRICES_FILE = str(path)
    settings.CHAT_ALLOWED_MODELS = [MODEL, OTHER]


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def key_client(alice_client) -> tuple[str, APIClient]:
    created = alice_client.post("/admin/api-keys", {"name": "script"}, format="json").json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created['key']}")
    return created["id"], client


def test_usage_is_counted_per_day_model_and_key(history_backend, alice_client, prices):
    key_id, by_key = key_client(alice_client)
    login_one = alice_client.post("/chat/", {"message": "hi", "session_id": "s1"}, format="json").json()["usage"]
    login_two = ask(alice_client, model=OTHER).json()["usage"]  # stateless
    keyed = ask(by_key).json()["usage"]

    report = alice_client.get("/admin/usage", {"group_by": "day,model,key"}).json()

    assert report["group_by"] == ["day", "model", "key"]
    assert report["from"] == (datetime.now(UTC).date() - timedelta(days=29)).isoformat() and report["to"] == today()

    def row(model, key, usage, cost):
        return {
            "day": today(),
            "model": model,
            "key": key,
            "requests": 1,
            "input_tokens": usage["prompt_tokens"],
            "output_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
            "cost_usd": cost,
        }

    cost = lambda usage: usd(usage["prompt_tokens"] + 2 * usage["completion_tokens"])  # noqa: E731
    expected = [
        row(MODEL, key_id, keyed, cost(keyed)),
        row(MODEL, None, login_one, cost(login_one)),
        row(OTHER, None, login_two, None),
    ]
    order = lambda r: (r["model"], r["key"] or "")  # noqa: E731
    assert sorted(report["rows"], key=order) == sorted(expected, key=order)
    assert report["totals"]["requests"] == 3
    assert report["totals"]["total_tokens"] == sum(u["total_tokens"] for u in (login_one, login_two, keyed))
    assert report["totals"]["cost_usd"] is None  # part of it went to a model without a price


def test_rows_carry_only_the_grouped_dimensions(alice_client, prices):
    first = ask(alice_client).json()["usage"]
    second = ask(alice_client).json()["usage"]

    by_day = alice_client.get("/admin/usage").json()
    assert by_day["group_by"] == ["day"]
    (row,) = by_day["rows"]
    assert set(row) == {"day", "requests", "input_tokens", "output_tokens", "total_tokens", "cost_usd"}
    assert row["requests"] == 2 and row["total_tokens"] == first["total_tokens"] + second["total_tokens"]
    spent = sum(u["prompt_tokens"] + 2 * u["completion_tokens"] for u in (first, second))
    assert row["cost_usd"] == usd(spent) == by_day["totals"]["cost_usd"]

    (by_model,) = alice_client.get("/admin/usage", {"group_by": "model"}).json()["rows"]
    assert set(by_model) - {"requests", "input_tokens", "output_tokens", "total_tokens", "cost_usd"} == {"model"}


def test_an_admin_sees_only_its_own_usage(alice_client, bob_client):
    assert ask(alice_client).status_code == HTTPStatus.OK
    report = bob_client.get("/admin/usage").json()
    assert report["rows"] == [] and report["totals"]["requests"] == 0


def test_a_day_outside_the_range_is_left_out(alice_client):
    ask(alice_client)
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    assert alice_client.get("/admin/usage", {"from": tomorrow, "to": tomorrow}).json()["rows"] == []
    assert alice_client.get("/admin/usage", {"from": yesterday, "to": yesterday}).json()["rows"] == []
    assert len(alice_client.get("/admin/usage", {"from": yesterday, "to": tomorrow}).json()["rows"]) == 1


@pytest.mark.parametrize(
    "query",
    [
        {"group_by": "week"},
        {"group_by": "day,admin"},
        {"from": "2026-13-01"},
        {"from": "2026-02-02", "to": "2026-02-01"},
    ],
)
def test_a_bad_query_is_a_400(alice_client, query):
    response = alice_client.get("/admin/usage", query)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid"


def test_a_day_is_kept_for_the_retention(alice, alice_client, settings):
    settings.USAGE_RETENTION_DAYS = 3
    ask(alice_client)
    day = datetime.now(UTC).date()
    expires = datetime.combine(day + timedelta(days=4), datetime.min.time(), tzinfo=UTC).timestamp()
    ttl = redis_client().ttl(day_key(alice.id, day))
    assert abs(ttl - (expires - datetime.now(UTC).timestamp())) < 5
    # A day past the retention is not read, even where its hash still lives.
    old = day - timedelta(days=4)
    redis_client().hset(day_key(alice.id, old), f"requests\t\t{MODEL}", 7)
    try:
        assert usage_report(alice.id, old, old, ["day"])["rows"] == []
        settings.USAGE_RETENTION_DAYS = 5
        assert usage_report(alice.id, old, old, ["day"])["rows"][0]["requests"] == 7
    finally:
        redis_client().delete(day_key(alice.id, old))


def test_manage_py_usage_writes_csv_and_json(alice, alice_client, bob_client, prices):
    one = ask(alice_client).json()["usage"]
    ask(bob_client, model=OTHER)

    out = StringIO()
    call_command("usage", "--group-by", "admin,model", stdout=out)
    rows = list(csv.DictReader(StringIO(out.getvalue())))
    assert sorted((r["admin"], r["model"], r["requests"]) for r in rows) == [("alice", MODEL, "1"), ("bob", OTHER, "1")]
    by_admin = {r["admin"]: r for r in rows}
    assert by_admin["alice"]["cost_usd"] == usd(one["prompt_tokens"] + 2 * one["completion_tokens"])
    assert by_admin["bob"]["cost_usd"] == ""  # unknown
    assert by_admin["alice"]["total_tokens"] == str(one["total_tokens"])

    out = StringIO()
    call_command("usage", "--admin", "alice", "--format", "json", "--from", today(), "--to", today(), stdout=out)
    report = json.loads(out.getvalue())
    assert report["group_by"] == ["admin", "day"]
    assert report["rows"] == [
        {
            "admin": "alice",
            "day": today(),
            "requests": 1,
            "input_tokens": one["prompt_tokens"],
            "output_tokens": one["completion_tokens"],
            "total_tokens": one["total_tokens"],
            "cost_usd": usd(one["prompt_tokens"] + 2 * one["completion_tokens"]),
        }
    ]


@pytest.mark.parametrize(
    "args", [["--group-by", "week"], ["--from", "yesterday"], ["--from", "2026-02-02", "--to", "2026-02-01"]]
)
def test_manage_py_usage_refuses_bad_arguments(args):
    with pytest.raises(CommandError):
        call_command("usage", *args, stdout=StringIO())


def test_retention_defaults_to_90_days():
    assert django_settings.USAGE_RETENTION_DAYS == 90
