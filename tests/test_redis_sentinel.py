"""The service on a real Sentinel setup (a primary, a replica and three Sentinels, each with a password of its own;
tests/redis_topologies.py): REDIS_SENTINELS and REDIS_SENTINEL_MASTER find the primary, REDIS_SENTINEL_PASSWORD is
the Sentinels' password, and REDIS_URL gives only the data nodes' password and the database. The conversation
suite runs on the same setup with `--redis-topologies=sentinel` (tests/conftest.py): every turn there waits for the
replica (WAIT), in the same round trip as its finish script."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from redis.sentinel import SentinelConnectionPool

from accounts.services import admin_create
from core.redis_store import redis_client
from tests.support import ALICE_PASSWORD, chat, login
from tests.topology import SENTINEL_DATABASE

pytestmark = pytest.mark.redis_topology("sentinel")


def test_the_primary_is_found_through_the_sentinels(redis_topologies, api):
    setup = redis_topologies.sentinel()
    client = redis_client()
    assert isinstance(client.connection_pool, SentinelConnectionPool)
    admin_create(username="alice", password=ALICE_PASSWORD)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {login(api, 'alice', ALICE_PASSWORD)['access_token']}")
    assert chat(api, "hello", "s1").status_code == HTTPStatus.OK

    primary = setup.primary.client(password=setup.password, db=SENTINEL_DATABASE)
    assert primary.dbsize() > 0  # in REDIS_URL's database, on the primary
    assert setup.primary.client(password=setup.password, db=0).dbsize() == 0
