"""The two-command quick start on a machine where no Redis runs: `make run` starts a local one at the default
address, which keeps its data across restarts, and never one at another address."""

from __future__ import annotations

import contextlib

import pytest
import redis

from devtools.local_redis import local_redis_ensure
from tests.support import free_port


def test_it_starts_a_redis_at_the_default_address_that_keeps_its_data_across_restarts(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        message = local_redis_ensure(url, managed_port=port, data_dir=tmp_path)

        assert message is not None and str(tmp_path) in message
        assert local_redis_ensure(url, managed_port=port, data_dir=tmp_path) is None  # one that answers is left alone
        client.set("admin", "kept")
        client.shutdown()

        assert local_redis_ensure(url, managed_port=port, data_dir=tmp_path) is not None
        assert client.get("admin") == b"kept"
    finally:
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown(nosave=True)


def test_it_never_starts_one_at_another_local_address(tmp_path):
    port = free_port()

    with pytest.raises(SystemExit) as refused:
        local_redis_ensure(f"redis://127.0.0.1:{port}/0", managed_port=free_port(), data_dir=tmp_path)

    assert f"127.0.0.1:{port} (REDIS_URL)" in str(refused.value)
    assert "fix the port in REDIS_URL" in str(refused.value)
    assert not list(tmp_path.iterdir())


def test_it_never_touches_a_redis_elsewhere():
    assert local_redis_ensure("redis://redis.internal:6379/0") is None
    assert local_redis_ensure("rediss://127.0.0.1:6380/0") is None
