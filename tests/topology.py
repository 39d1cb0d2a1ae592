"""Pointing this process, or a gunicorn instance, at a real Redis Cluster or Sentinel (tests/redis_topologies.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings as django_settings
from django_redis.pool import ConnectionFactory

from core.redis_connect import ClusterConnectionFactory
from tests.redis_topologies import REDIS_SERVER, SENTINEL_MASTER, Cluster, SentinelSetup
from tests.server import ROOT


def require_redis_server() -> None:
    """The topology tests need redis-server; CI has it (without it they fail there, and skip elsewhere)."""
    if shutil.which("redis-server") or os.path.exists(REDIS_SERVER):
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("redis-server is not installed")
    pytest.skip("redis-server is not installed (apt-get install redis-server)")


# A test machine is busy (a dozen Redis processes, gunicorn, the tests): a replica's confirmation (WAIT) may take
# longer than the default timeout's half of 0.5 s.
ROOM_TO_WAIT = {"REDIS_TIMEOUT_SECONDS": "2"}


def cluster_env(cluster: Cluster, node_index: int = 3) -> dict[str, str]:
    """What a gunicorn instance (tests/server.py) needs to run on `cluster`, through the node `node_index` (by
    default a replica: any node will do)."""
    return {
        "TEST_REDIS_URL": cluster.url(cluster.nodes[node_index]),
        "REDIS_CLUSTER": "true",
        "HISTORY_BACKEND": "redis",
        **ROOM_TO_WAIT,
    }


def sentinel_url(setup: SentinelSetup, database: int = 0) -> str:
    """REDIS_URL with Sentinel: the data nodes' password and the database; the host is not used."""
    auth = f":{setup.password}@" if setup.password else ""
    return f"redis://{auth}unused-host:1/{database}"


def sentinel_env(setup: SentinelSetup, database: int = 0) -> dict[str, str]:
    return {
        "TEST_REDIS_URL": sentinel_url(setup, database),
        "REDIS_SENTINELS": setup.sentinel_addresses,
        "REDIS_SENTINEL_MASTER": SENTINEL_MASTER,
        "REDIS_SENTINEL_PASSWORD": setup.sentinel_password or "",
        "HISTORY_BACKEND": "redis",
        **ROOM_TO_WAIT,
    }


def _cache(location: str, **options: object) -> dict[str, object]:
    """The default cache at `location`, with ROOM_TO_WAIT's timeouts (the caller sets REDIS_WAIT_TIMEOUT_MS)."""
    default = django_settings.CACHES["default"]
    timeouts = {"SOCKET_TIMEOUT": 2.0, "SOCKET_CONNECT_TIMEOUT": 2.0}
    return {**default, "LOCATION": location, "OPTIONS": {**default["OPTIONS"], **timeouts, **options}}  # type: ignore[dict-item]


def forget_cluster_clients() -> None:
    """Drops this process's Redis Cluster clients, as a process that points at another cluster (or a new worker)
    starts without them; the nodes it knew are kept."""
    with ClusterConnectionFactory._lock:
        for client in ClusterConnectionFactory._clusters.values():
            client.disconnect_connection_pools()
        ClusterConnectionFactory._clusters.clear()


@contextmanager
def this_process_on_cluster(settings, cluster: Cluster, node_index: int = 3) -> Iterator[None]:
    """This process's service (Django's test client) on `cluster`, with the settings REDIS_CLUSTER=true gives."""
    settings.REDIS_CLUSTER = True
    settings.REDIS_WAIT_REPLICAS = 1
    settings.REDIS_WAIT_TIMEOUT_MS = 1000
    settings.HISTORY_BACKEND = "redis"
    location = cluster.url(cluster.nodes[node_index])
    settings.CACHES = {
        **settings.CACHES,
        "default": _cache(location, CONNECTION_FACTORY="core.redis_connect.ClusterConnectionFactory"),
    }
    try:
        yield
    finally:
        forget_cluster_clients()
        cluster.flush()


@contextmanager
def this_process_on_sentinel(settings, setup: SentinelSetup, database: int = 0) -> Iterator[None]:
    settings.REDIS_SENTINELS = [("127.0.0.1", node.port) for node in setup.sentinels]
    settings.REDIS_WAIT_REPLICAS = 1
    settings.REDIS_WAIT_TIMEOUT_MS = 1000
    settings.HISTORY_BACKEND = "redis"
    location = sentinel_url(setup, database)
    settings.CACHES = {
        **settings.CACHES,
        "default": _cache(
            location,
            CONNECTION_FACTORY="core.redis_connect.SentinelMasterConnectionFactory",
            SENTINELS=settings.REDIS_SENTINELS,
            SENTINEL_MASTER=SENTINEL_MASTER,
            SENTINEL_KWARGS={"password": setup.sentinel_password, "socket_timeout": 2, "socket_connect_timeout": 2},
        ),
    }
    try:
        yield
    finally:
        pool = ConnectionFactory._pools.pop(location, None)
        if pool is not None:
            pool.disconnect()
        primary = setup.data_node(setup.current_primary_port())
        primary.client(password=setup.password).flushall()


def run_suites_on(suites: tuple[str, ...], **env: str) -> subprocess.CompletedProcess[str]:
    """Runs test suites in a pytest of their own, with this environment (a Redis topology): their own fake upstream
    and key prefix, the browser tests and these topology tests left out."""
    inherited = {k: v for k, v in os.environ.items() if k not in {"TEST_FAKE_GROQ_PORT", "TEST_REDIS_KEY_PREFIX"}}
    env = {name: value for name, value in env.items() if name != "HISTORY_BACKEND"}  # each test picks its own
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not redis_topology", *suites],
        cwd=ROOT,
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=1200,
    )
