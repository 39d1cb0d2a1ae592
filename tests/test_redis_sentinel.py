"""The service on a real Sentinel setup (a primary, a replica and three Sentinels, each with a password of its own;
tests/redis_topologies.py): REDIS_SENTINELS and REDIS_SENTINEL_MASTER find the primary, REDIS_SENTINEL_PASSWORD is
the Sentinels' password, and REDIS_URL gives only the data nodes' password and the database."""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus

import pytest
from redis.sentinel import SentinelConnectionPool

from accounts.services import admin_create
from core.redis_store import redis_client
from tests.redis_topologies import SentinelSetup, redis_sentinel
from tests.support import ALICE_PASSWORD, chat, login
from tests.topology import require_redis_server, run_suites_on, sentinel_env, this_process_on_sentinel

pytestmark = pytest.mark.redis_topology

DATABASE = 3


@pytest.fixture(scope="module")
def setup() -> Iterator[SentinelSetup]:
    require_redis_server()
    with redis_sentinel(password="data-nodes-password", sentinel_password="sentinels-password") as started:
        yield started


def test_the_primary_is_found_through_the_sentinels(settings, setup, api):
    with this_process_on_sentinel(settings, setup, DATABASE):
        client = redis_client()
        assert isinstance(client.connection_pool, SentinelConnectionPool)
        admin_create(username="alice", password=ALICE_PASSWORD)
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {login(api, 'alice', ALICE_PASSWORD)['access_token']}")
        assert chat(api, "hello", "s1").status_code == HTTPStatus.OK

        primary = setup.primary.client(password=setup.password, db=DATABASE)
        assert primary.dbsize() > 0  # in REDIS_URL's database, on the primary
        assert setup.primary.client(password=setup.password, db=0).dbsize() == 0


def test_the_conversation_suite_passes_on_sentinel(setup):
    # Every turn there waits for the replica (WAIT), in the same round trip as its finish script.
    result = run_suites_on(("tests/conversations",), **sentinel_env(setup, DATABASE))
    assert result.returncode == 0, result.stdout[-6000:]
