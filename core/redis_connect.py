"""How django-redis connects: connection factories (its CONNECTION_FACTORY option) for one Redis server, Redis
Cluster (REDIS_CLUSTER) and Redis Sentinel (REDIS_SENTINELS). chatbot_project/settings.py picks one; everything
else gets its client from core.redis_store.redis_client()."""

from __future__ import annotations

import os
import threading
from typing import Any, ClassVar

from django_redis.pool import ConnectionFactory, SentinelConnectionFactory
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, ConnectionError, RedisClusterException, SlotNotCoveredError
from redis.retry import Retry


def reconnect_once() -> Retry:
    """One quick reconnect for a pooled connection that died (Redis restarted), but no retry after a timeout:
    redis-py's default (10 retries with backoff) turns a hung Redis into a 10-second hang."""
    return Retry(NoBackoff(), 1, supported_errors=(ConnectionError,))


def _with_reconnect_once(options: dict[str, Any]) -> dict[str, Any]:
    return {
        **options,
        "CONNECTION_POOL_KWARGS": {**options.get("CONNECTION_POOL_KWARGS", {}), "retry": reconnect_once()},
    }


class ServerConnectionFactory(ConnectionFactory):
    """One Redis server: django-redis's factory, its pools' connections reconnecting once (reconnect_once)."""

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(_with_reconnect_once(options))


class ServiceCluster(RedisCluster):
    # Retried (after the slot map is read again): a refused connection, a cluster that is down for a moment, a
    # slot no node serves yet. Not a timeout, as on a single Redis: the command may have run, and a turn's script
    # must not run twice.
    ERRORS_ALLOW_RETRY = (ConnectionError, ClusterDownError, SlotNotCoveredError)


class ClusterConnectionFactory(ConnectionFactory):
    """One RedisCluster client per process (it holds a connection pool per node and the slot map), made from
    REDIS_URL, which may name any node, a replica included. Django makes a cache client per thread; they all share
    it. The nodes of the cluster are remembered, so that a client made later in this process (or in a gunicorn
    worker forked from it) can start from any of them when the node REDIS_URL names is down."""

    _clusters: ClassVar[dict[tuple[str, int], RedisCluster]] = {}
    _known_nodes: ClassVar[dict[str, list[tuple[str, int]]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def connect(self, url: str) -> RedisCluster:  # type: ignore[override]
        key = (url, os.getpid())
        client = self._clusters.get(key)
        if client is None:
            with self._lock:
                client = self._clusters.get(key)
                if client is None:
                    client = self._clusters[key] = self._cluster(url)
        return client

    def _cluster(self, url: str) -> RedisCluster:
        params = self.make_connection_params(url)
        options: dict[str, Any] = {
            name: params[name] for name in ("socket_timeout", "socket_connect_timeout", "password") if name in params
        }
        # The pool's own retry is the cluster client's job here (ServiceCluster); the rest applies to each node.
        options.update({name: value for name, value in self.pool_cls_kwargs.items() if name != "retry"})
        known = [ClusterNode(host, port) for host, port in self._known_nodes.get(url, [])]
        try:
            client = ServiceCluster(url=url, startup_nodes=known, retry=Retry(NoBackoff(), 1), **options)
        except RedisClusterException as exc:  # no node answered: an outage, a 503 like any Redis ConnectionError
            raise ConnectionError(f"Redis Cluster cannot be reached: {exc}") from None
        self._known_nodes[url] = [(node.host, node.port) for node in client.get_nodes()]
        return client

    def disconnect(self, connection: RedisCluster) -> None:  # type: ignore[override]
        connection.disconnect_connection_pools()


class SentinelMasterConnectionFactory(SentinelConnectionFactory):
    """django-redis's Sentinel factory, with the primary's name from SENTINEL_MASTER (REDIS_SENTINEL_MASTER) rather
        than from the URL's host, which would be lower-cased and limited to host-name characters. REDIS_URL still gives
        the data nodes' password, user and database; its host is not used. Its connections reconnect once
    (reconnect_once)."""

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(_with_reconnect_once(options))

    def get_connection_pool(self, params: dict[str, Any]) -> Any:
        pool_params = {**params, "service_name": self.options["SENTINEL_MASTER"], "sentinel_manager": self._sentinel}
        return ConnectionFactory.get_connection_pool(self, pool_params)
