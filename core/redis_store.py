"""The one Redis connection pool (django-redis's), the project's key naming, and small helpers for the hashes
the service keeps records in."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import redis
from django.conf import settings
from django_redis import get_redis_connection
from redis.client import Pipeline
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import AskError, MovedError, NoScriptError, RedisClusterException

from core.cached import until_settings_change
from core.exceptions import DependencyUnavailable

logger = logging.getLogger(__name__)


@until_settings_change
def redis_client() -> redis.Redis:
    """The process's client, shared by its threads: a redis.Redis (one server, or the primary Sentinel names) or,
    with REDIS_CLUSTER, a RedisCluster; both take the same commands, scripts and pipelines for keys of one slot."""
    return get_redis_connection("default")


def redis_disconnect(client: redis.Redis) -> None:
    """Closes the client's connections (before gunicorn forks its workers, which must not share sockets)."""
    if isinstance(client, RedisCluster):
        client.disconnect_connection_pools()
    else:
        client.connection_pool.disconnect()


def redis_key(*parts: str) -> str:
    """`chatbot:admins`: every key the service writes starts with REDIS_KEY_PREFIX."""
    return ":".join((settings.REDIS_KEY_PREFIX, *parts))


def redis_tagged_key(tag: str, *parts: str) -> str:
    """`chatbot:{tag}:parts`: keys with one hash tag share one Redis Cluster slot, so that a script or a
    transaction may use them together (on a single Redis the tag is just part of the name)."""
    return redis_key(f"{{{tag}}}", *parts)


def redis_admin_key(admin_id: str, *parts: str) -> str:
    """`chatbot:{a:42}:usage`: every key of one admin (its record, logins, API key ids, limits, usage and
    conversations) carries the tag {a:<admin id>}, so that any script over them stays in the admin's slot."""
    return redis_tagged_key(f"a:{admin_id}", *parts)


def redis_script(source: str) -> Script:
    """The Lua script `source`, bound to the current client: made once, not hashed again on every call."""
    return _script(redis_client(), source)


@lru_cache(maxsize=64)
def _script(client: redis.Redis, source: str) -> Script:
    return client.register_script(source)


def redis_ping() -> bool:
    """Redis answers: the server, the primary Sentinel names, or every primary of the cluster (a replica down
    leaves the service whole)."""
    try:
        client = redis_client()
        if isinstance(client, RedisCluster):
            return bool(client.ping(target_nodes=RedisCluster.PRIMARIES))
        return bool(client.ping())
    except (redis.RedisError, RedisClusterException):
        return False


class NotReplicated(DependencyUnavailable):
    code = "redis_unavailable"


# Connected replicas of a primary (by its client's pool and its name), as ROLE said at the time: whether a write
# can wait for one.
_REPLICAS_SEEN: dict[tuple[int, str], tuple[int, float]] = {}
_REPLICAS_RECHECK_SECONDS = 1.0


def _connected_replicas(name: str, client: redis.Redis, *, fresh: bool = False) -> int:
    key = (id(client.connection_pool), name)
    seen = _REPLICAS_SEEN.get(key)
    if seen is not None and not fresh and time.monotonic() - seen[1] < _REPLICAS_RECHECK_SECONDS:
        return seen[0]
    role = client.execute_command("ROLE")
    replicas = len(role[2]) if role and role[0] in (b"master", "master") else 0
    _REPLICAS_SEEN[key] = (replicas, time.monotonic())
    return replicas


def _node_of(client: redis.Redis, key: str) -> tuple[str, redis.Redis]:
    """The server that holds `key`, and a client of that server alone (so that a pipeline stays on it)."""
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(key)
        return node.name, client.get_redis_connection(node)
    return "primary", client


def redis_slot_pipeline(key: str) -> Pipeline:
    """A pipeline (no transaction) on the server that holds `key`, for commands on keys of its Redis Cluster slot:
    a cluster pipeline would ask the server for the keys of each script it carries (COMMAND GETKEYS), a round trip
    more, and takes no eval()."""
    return _node_of(redis_client(), key)[1].pipeline(transaction=False)


# What a pipeline's replies are handed to once it ran (all of them: it knows where the commands it queued are).
RepliesHandler = Callable[[list[Any]], None]
# Queues writes on a pipeline that carries others too (a turn's last writes, in one round trip); returns what wants
# their replies, if anything does.
PipelineWrites = Callable[[Pipeline], RepliesHandler | None]


def redis_script_replicated(
    script: Script,
    *,
    keys: Sequence[str],
    args: Sequence[Any],
    before: PipelineWrites | None = None,
) -> Any:
    """Runs `script` and answers once REDIS_WAIT_REPLICAS replicas have its writes: WAIT, on the same connection
    right after it (one round trip for both), on the primary that holds its keys. A primary without that many
    connected replicas (a single Redis; a replica promoted after its primary died, until another replica joins)
    is not waited for. Raises NotReplicated (503) when its replicas do not confirm within the WAIT timeout: the
    writes may then be lost by a failover, so they are not acknowledged. `before` queues writes (of keys in the
    script's slot) to send ahead of the script, in the same round trip; what it returns is handed their replies."""
    wanted = settings.REDIS_WAIT_REPLICAS
    if not wanted and before is None:
        return script(keys=keys, args=args)
    client = redis_client()
    name, node = _node_of(client, keys[0])
    wait = bool(wanted) and _connected_replicas(name, node) >= wanted
    if not wait and before is None:
        return script(keys=keys, args=args)
    acked: Any = wanted
    written: tuple[RepliesHandler, list[Any]] | None = None  # the writes' replies, once they ran
    for attempt in range(3):
        pipe = node.pipeline(transaction=False)
        on_replies = before(pipe) if before is not None else None
        queued = len(pipe)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        if wait:
            pipe.wait(wanted, settings.REDIS_WAIT_TIMEOUT_MS)
        replies = pipe.execute(raise_on_error=False)
        result = replies[queued]
        if wait:
            acked = replies[queued + 1]
        if isinstance(result, MovedError | AskError) and isinstance(client, RedisCluster) and attempt < 2:
            client.nodes_manager.initialize()  # the slot moved (a failover): nothing ran
            name, node = _node_of(client, keys[0])
            continue
        for reply in replies[:queued]:
            if isinstance(reply, Exception):
                raise reply
        if on_replies is not None:
            written = on_replies, replies
        before = None  # they ran
        if isinstance(result, NoScriptError) and attempt < 2:  # a new primary (a failover) or a restart
            node.script_load(script.script)
            continue
        break
    if written is not None:
        written[0](written[1])
    if isinstance(result, Exception):
        raise result
    if isinstance(acked, Exception):
        raise acked
    if wait and acked < wanted and _connected_replicas(name, node, fresh=True) >= wanted:
        logger.warning(
            "redis: a write was confirmed by %d of %d replica(s) within %d ms (on %s)",
            acked,
            wanted,
            settings.REDIS_WAIT_TIMEOUT_MS,
            name,
        )
        raise NotReplicated(
            "Redis did not confirm that a replica has this change; it may be lost. Try again shortly.", retry_after=1
        )
    return result


class ScriptCall(NamedTuple):
    """A script and its keys and arguments: to run on its own, or folded into one script with others (a tuple,
    quicker to make than a frozen dataclass, on every chat)."""

    script: Script
    keys: list[str]
    args: list[Any]


# Sets one field of an existing hash and returns the whole hash in one round trip; a missing (revoked or
# expired) record stays missing instead of being recreated with that one field. Any further keys must exist too.
_TOUCH_SCRIPT = """
for _, key in ipairs(KEYS) do if redis.call('EXISTS', key) == 0 then return nil end end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""


def hash_touch(key: str, field: str, value: str, *, requires: str | None = None) -> dict[str, str] | None:
    """The record at `key` with `field` set to `value`, or None when there is no such record (or no `requires`)."""
    keys = [key] if requires is None else [key, requires]
    flat = redis_script(_TOUCH_SCRIPT)(keys=keys, args=[field, value])
    if not flat:
        return None
    values = [item.decode() for item in flat]
    return dict(zip(values[::2], values[1::2], strict=True))


def decoded(record: dict[bytes, bytes]) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in record.items()}


class _LateWrites:
    """Writes that give something back (a session's lock, a chat slot) and failed because Redis could not be
    reached, as while a primary fails over: retried in the background every `interval` seconds until Redis takes
    them or `until` passes (by then what they give back has expired anyway). Without them a session whose turn
    failed mid-failover would stay locked, answering 409, for as long as its lock lives."""

    interval = 0.25

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[Callable[[], object], float]] = []
        self._thread: threading.Thread | None = None

    def add(self, write: Callable[[], object], until: float) -> None:
        with self._lock:
            self._pending.append((write, until))
            if self._thread is None or not self._thread.is_alive():  # none yet in this (forked) process
                self._thread = threading.Thread(target=self._run, name="redis-late-writes", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                pending, self._pending = self._pending, []
            if not pending:
                with self._lock:
                    if not self._pending:
                        self._thread = None
                        return
                continue
            kept = []
            for write, until in pending:
                try:
                    write()
                except (redis.RedisError, RedisClusterException):
                    if time.monotonic() < until:
                        kept.append((write, until))
            with self._lock:
                self._pending.extend(kept)


_late_writes = _LateWrites()


def redis_give_back(write: Callable[[], object], *, within: float) -> None:
    """Runs `write`, which gives back something a request held; when Redis cannot be reached, runs it again in the
    background until it can, for up to `within` seconds, and raises the error for the request to answer with."""
    try:
        write()
    except (redis.RedisError, RedisClusterException):
        _late_writes.add(write, time.monotonic() + within)
        raise
