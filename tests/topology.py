"""Pointing this process, or a gunicorn instance, at a real Redis Cluster or Sentinel (tests/redis_topologies.py).

The suites that use Redis run on each topology `--redis-topologies` names (tests/conftest.py): `Topologies` starts
each once per pytest process, and `serving()` gives a test the environment and the settings a service started
with that environment has."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from django_redis.pool import ConnectionFactory

from core.redis_connect import ClusterConnectionFactory
from tests.redis_topologies import REDIS_SERVER, SENTINEL_MASTER, Cluster, SentinelSetup, redis_cluster, redis_sentinel


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
    """REDIS_URL with Sentinel: the data nodes' password and the database. The host is not used; the port is the
    first Sentinel's, so that each setup has a URL (and django-redis a connection pool) of its own."""
    auth = f":{setup.password}@" if setup.password else ""
    return f"redis://{auth}unused-host:{setup.sentinels[0].port}/{database}"


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


# The topologies the suites that use Redis also run on, and the suites (paths from the project's root).
SUITES_ON = {
    "cluster": ("tests/accounts", "tests/conversations", "tests/test_scale_out.py", "tests/test_system.py"),
    "sentinel": ("tests/conversations",),
}
SENTINEL_DATABASE = 3  # not 0: the service must use REDIS_URL's database, found through the Sentinels
SENTINEL_PASSWORDS = {"password": "data-nodes-password", "sentinel_password": "sentinels-password"}


class Topologies:
    """The Redis Cluster and the Sentinel setup of this pytest process, each started when a test first needs it
    and stopped when the process ends."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._cluster: Cluster | None = None
        self._sentinel: SentinelSetup | None = None
        self._settings: dict[str, dict[str, Any]] = {}

    def cluster(self) -> Cluster:
        if self._cluster is None:
            require_redis_server()
            self._cluster = self._stack.enter_context(redis_cluster())
        return self._cluster

    def sentinel(self) -> SentinelSetup:
        if self._sentinel is None:
            require_redis_server()
            self._sentinel = self._stack.enter_context(redis_sentinel(**SENTINEL_PASSWORDS))
        return self._sentinel

    def env(self, name: str) -> dict[str, str]:
        """The environment of a service on topology `name`, the history store left to each test (as with one Redis,
        where it defaults to locmem)."""
        if name == "cluster":
            env = cluster_env(self.cluster())
        elif name == "sentinel":
            env = sentinel_env(self.sentinel(), SENTINEL_DATABASE)
        else:
            raise ValueError(f"no Redis topology {name!r}")
        return {key: value for key, value in env.items() if key != "HISTORY_BACKEND"}

    def settings(self, name: str) -> dict[str, Any]:
        """The settings that differ between a process started with `env(name)` and one on a single Redis."""
        if name not in self._settings:
            env = self.env(name)
            with _environ(**env, REDIS_URL=env["TEST_REDIS_URL"]):
                on_topology = _settings_module()
            single = _settings_module()
            self._settings[name] = {
                key: value for key, value in on_topology.items() if key not in single or single[key] != value
            }
        return self._settings[name]

    @contextmanager
    def serving(self, name: str) -> Iterator[None]:
        """This process's service, and any process a test starts (gunicorn, manage.py), on topology `name`."""
        env, changed = self.env(name), self.settings(name)
        with _environ(**env, REDIS_URL=env["TEST_REDIS_URL"]), override_settings(**changed):
            yield

    def close(self) -> None:
        self._stack.close()


def _settings_module() -> dict[str, Any]:
    """The settings chatbot_project.settings makes of this process's environment now, in a module of their own."""
    spec = importlib.util.find_spec("chatbot_project.settings")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {key: value for key, value in vars(module).items() if key.isupper()}


@contextmanager
def _environ(**env: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
