"""The two-command quick start on a machine where no Redis runs: `make run` starts a local one."""

from __future__ import annotations

import redis

from devtools.local_redis import local_redis_ensure
from tests.support import free_port


def test_it_starts_a_redis_where_none_answers_and_keeps_nothing_on_disk():
    url = f"redis://127.0.0.1:{free_port()}/0"
    client = redis.Redis.from_url(url)
    try:
        message = local_redis_ensure(url)

        assert message is not None and "keeps nothing on disk" in message
        assert client.ping()
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
        assert local_redis_ensure(url) is None  # one that answers is left alone
    finally:
        client.shutdown(nosave=True)


def test_it_never_touches_a_redis_elsewhere():
    assert local_redis_ensure("redis://redis.internal:6379/0") is None
    assert local_redis_ensure("rediss://127.0.0.1:6380/0") is None
