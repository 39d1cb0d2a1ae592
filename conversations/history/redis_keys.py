"""The history store's Redis keys, under REDIS_KEY_PREFIX, all of one admin in its Redis Cluster slot {a:<admin>}
but the store-wide index (docs/architecture.md has every key of the service):

{a:<admin>}:conv:<session>:messages  list of JSON messages
{a:<admin>}:conv:<session>:meta      hash created_at, last_activity, usage counters, summary (and on Redis
                                     Cluster indexed_at, when the session's place in {conv-index}:all was
                                     refreshed)
{a:<admin>}:conv:<session>:records   hash of records kept beside the session (stored responses, a Responses
                                     conversation's metadata), expiring with it
{a:<admin>}:conv:<session>:record-order  list of the names of the records written with a cap
                                     (StoreOptions.records_kept), oldest first: the finish script drops the
                                     oldest past the cap; expiring with the session
{a:<admin>}:conv-index               sorted set of the admin's session ids by last activity
{a:<admin>}:conv-lock:<session>      the session's lock: a random token per turn, expiring unless its turn
                                     renews it (SessionTurn.leases)
{conv-index}:all                     sorted set of every "<admin>:<session>" by last activity, and (on a single
                                     Redis) of the places reserved for new sessions, scored minus the time they
                                     were reserved (so each kind expires on its own clock, and stored sessions
                                     are counted apart)
"""

from __future__ import annotations

from django.conf import settings

from core.redis_store import redis_admin_key, redis_tagged_key


def index_refresh_seconds() -> int:
    """On Redis Cluster, how stale a session's place in the store-wide index may be: a turn refreshes it (one more
    round trip) only when its last refresh is older than this. A tenth of MEMORY_TTL_SECONDS, at most a minute."""
    return max(1, min(60, settings.MEMORY_TTL_SECONDS // 10))


def session_keys(admin_id: str, session_id: str) -> tuple[str, str]:
    """The session's messages and its meta."""
    return redis_admin_key(admin_id, "conv", session_id, "messages"), redis_admin_key(
        admin_id, "conv", session_id, "meta"
    )


def records_key(admin_id: str, session_id: str) -> str:
    return redis_admin_key(admin_id, "conv", session_id, "records")


def record_order_key(admin_id: str, session_id: str) -> str:
    return redis_admin_key(admin_id, "conv", session_id, "record-order")


def every_session_key(admin_id: str, session_id: str) -> tuple[str, ...]:
    """Every key of the session, to remove it."""
    return (
        *session_keys(admin_id, session_id),
        records_key(admin_id, session_id),
        record_order_key(admin_id, session_id),
    )


def admin_index_key(admin_id: str) -> str:
    return redis_admin_key(admin_id, "conv-index")


def store_index_key() -> str:
    return redis_tagged_key("conv-index", "all")


def lock_key(admin_id: str, session_id: str) -> str:
    return redis_admin_key(admin_id, "conv-lock", session_id)
