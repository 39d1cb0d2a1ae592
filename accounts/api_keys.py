"""API keys: long-lived credentials of an admin for programs (OpenAI SDKs, scripts), sent as `Bearer cgk_...`.

A key is shown once, at creation; Redis keeps only its SHA-256, so a leaked dump of Redis holds no usable key.
A key high in entropy needs no salt or slow hash: nobody can guess one to test against the digest.
Its keys (`P:apikey:<sha256>` the record, `P:apikeys` id -> digest, `A:apikeys` the admin's key ids) are in the Redis
key map (docs/architecture.md). Revoking an admin's tokens leaves its keys alone; deleting the admin revokes them.

The three keys are in different Redis Cluster slots, so they are written one after the other, in an order that
leaves nothing usable behind a crash: the indexes before the record when a key is made (an id without a record is
no key, and listings skip it), the record before the indexes when one is revoked (the key stops working first).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import redis

from accounts.key_rules import NO_RULES, KeyRules, rules_of_record, rules_record_fields
from core.redis_store import decoded, hash_touch, redis_admin_key, redis_client, redis_key, redis_script
from core.timestamps import utcnow_iso

KEY_PREFIX = "cgk_"
# What a listing shows of a key, so its owner can tell keys apart: "cgk_" and four more characters.
SHOWN_CHARS = 8


@dataclass(frozen=True)
class ApiKey:
    id: str
    admin_id: str
    name: str
    prefix: str
    created_at: str
    last_used: str | None
    has_budget: bool = False  # accounts.budgets: a token budget applies to this key
    rules: KeyRules = NO_RULES  # accounts.key_rules: its models, rate limits and expiry


def _digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _record_key(digest: str) -> str:
    return redis_key("apikey", digest)


def _ids_key() -> str:
    return redis_key("apikeys")


def _admin_keys_key(admin_id: str) -> str:
    return redis_admin_key(admin_id, "apikeys")


def _from_record(record: dict[str, str]) -> ApiKey:
    return ApiKey(
        id=record["id"],
        admin_id=record["admin_id"],
        name=record.get("name", ""),
        prefix=record.get("prefix", KEY_PREFIX),
        created_at=record.get("created_at", ""),
        last_used=record.get("last_used") or None,
        has_budget=record.get("budget") == "1",
        rules=rules_of_record(record),
    )


def looks_like_api_key(raw: str) -> bool:
    return raw.startswith(KEY_PREFIX)


def api_key_create(*, admin_id: str, name: str = "", rules: KeyRules = NO_RULES) -> tuple[ApiKey, str]:
    """Creates a key for `admin_id` with its `rules`; returns it with the raw key, which is never available
    again."""
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    digest = _digest(raw)
    record = {
        "id": secrets.token_hex(8),
        "admin_id": admin_id,
        "name": name,
        "prefix": raw[:SHOWN_CHARS],
        "created_at": utcnow_iso(),
        "last_used": "",
        **{field: value for field, value in rules_record_fields(rules).items() if value},
    }
    client = redis_client()
    client.sadd(_admin_keys_key(admin_id), record["id"])
    client.hset(_ids_key(), record["id"], digest)
    client.hset(_record_key(digest), mapping=record)
    return _from_record(record), raw


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The live key `raw_key`, marked as used now; None when it is unknown or revoked."""
    if not looks_like_api_key(raw_key):
        return None
    record = hash_touch(_record_key(_digest(raw_key)), "last_used", utcnow_iso())
    return _from_record(record) if record else None


def _records(client: redis.Redis, key_ids: list[str]) -> list[ApiKey]:
    digests = client.hmget(_ids_key(), key_ids) if key_ids else []
    pipe = client.pipeline(transaction=False)
    for digest in digests:
        pipe.hgetall(_record_key(digest.decode() if digest else "-"))
    found = [decoded(record) for record in pipe.execute() if record]
    return sorted((_from_record(r) for r in found), key=lambda key: (key.created_at, key.id))


def api_key_list(admin_id: str) -> list[ApiKey]:
    client = redis_client()
    return _records(client, sorted(member.decode() for member in client.smembers(_admin_keys_key(admin_id))))


def api_key_list_all() -> list[ApiKey]:
    client = redis_client()
    return _records(client, sorted(key_id.decode() for key_id in client.hkeys(_ids_key())))


def api_key_admin_id(key_id: str) -> str | None:
    """The admin of the key `key_id`, or None when there is no such key."""
    record_key = api_key_record_key(key_id)
    admin_id = redis_client().hget(record_key, "admin_id") if record_key else None
    return admin_id.decode() if admin_id else None


def api_key_record_key(key_id: str) -> str | None:
    """The Redis key of the record of the key `key_id`, or None when there is no such key."""
    digest = redis_client().hget(_ids_key(), key_id)
    return _record_key(digest.decode()) if digest else None


# KEYS: an API key's record. ARGV: field, value pairs ('' removes the field). Never recreates a revoked key's record.
_SET_FIELDS_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""


def api_key_rules_set(key_id: str, rules: KeyRules) -> bool:
    """Replaces the rules of the key `key_id`; False when there is no such key."""
    record = api_key_record_key(key_id)
    pairs = [item for pair in rules_record_fields(rules).items() for item in pair]
    return record is not None and bool(redis_script(_SET_FIELDS_SCRIPT)(keys=[record], args=pairs))


def api_key_delete(*, key_id: str, admin_id: str | None = None) -> bool:
    """Deletes the key `key_id`, which revokes it (only if it is `admin_id`'s, when given); False when there is
    no such key."""
    client = redis_client()
    digest = client.hget(_ids_key(), key_id)
    if digest is None:
        return False
    owner = client.hget(_record_key(digest.decode()), "admin_id")
    if owner is not None and admin_id is not None and owner.decode() != admin_id:
        return False
    client.delete(_record_key(digest.decode()))
    client.hdel(_ids_key(), key_id)
    if owner is not None:
        client.srem(_admin_keys_key(owner.decode()), key_id)
    return owner is not None


def api_key_revoke_all(admin_id: str) -> int:
    keys = api_key_list(admin_id)
    for key in keys:
        api_key_delete(key_id=key.id)
    redis_client().delete(_admin_keys_key(admin_id))
    return len(keys)
