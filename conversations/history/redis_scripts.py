"""The Lua scripts of a chat turn on the Redis store: one round trip to begin it, one to finish it (or to give
back what a failed turn held).

Every key a turn touches is its admin's, in the admin's Redis Cluster slot ({a:<admin id>}), except one: the
store-wide index {conv-index}:all that bounds MAX_SESSIONS. On a single Redis (or Sentinel) the turn scripts use
it too (`turn_scripts(..., cluster=False)`). On Redis Cluster it is in a slot of its own, so the turn scripts leave
it out and the store-wide steps run as scripts of their own on its slot, only when a turn needs them: a place for a
new session (RESERVE_SCRIPT), and a refresh of a session's place at most once per refresh interval (see
RedisHistoryStore).

Each script's ARGV is one dataclass below, whose fields the script names in the same order on its first line; what
differs between a single Redis and a cluster is a Lua function of the same name and parameters (`admit_new`,
`index_read`, `index_write`, `index_evict`, `unreserve`), defined before the script that calls it."""

from __future__ import annotations

from dataclasses import dataclass, field

from conversations.history.base import MAX_USAGE_COUNTER, USAGE_FIELDS
from core.lua_args import lua_argv_names

# Lua functions over the store-wide index: every "<admin>:<session>" scored by its last activity (at most `grace`
# seconds older than that), and on a single Redis the places reserved for new sessions, scored minus the time
# they were reserved, so that each kind expires on its own clock and stored sessions are counted apart.
ALL_LUA = """
local function prune_all(all, now, ttl, turn, grace)
  redis.call('ZREMRANGEBYSCORE', all, 0, now - ttl - grace)
  redis.call('ZREMRANGEBYSCORE', all, '(' .. (turn - now), '(0')
end
-- 1 when a place is reserved for member (scored score), 0 when it has one, {'full', oldest activity} when the
-- store holds max_sessions already.
local function reserve(all, now, ttl, turn, grace, max_sessions, member, score)
  prune_all(all, now, ttl, turn, grace)
  if redis.call('ZSCORE', all, member) then return 0 end
  if redis.call('ZCARD', all) >= tonumber(max_sessions) then
    return {'full', redis.call('ZRANGEBYSCORE', all, '(0', '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2]}
  end
  redis.call('ZADD', all, score, member)
  return 1
end
"""

# Lua functions that check, before a script's first write, what would make a later command fail: a Lua error does
# not undo the writes before it.
CHECKS_LUA = """
local function numbers(...)
  local parsed = {}
  for i, raw in ipairs({...}) do
    parsed[i] = tonumber(raw)
    if not parsed[i] then error('argument ' .. tostring(raw) .. ' is not a number') end
  end
  return unpack(parsed)
end
local function require_type(key, wanted)
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= wanted then error(key .. ' is a ' .. found .. ', not a ' .. wanted) end
end
"""


@dataclass(frozen=True)
class BeginArgs:
    """The begin script's ARGV: the admin's slot (its SlotArgs, named as take_slot's parameters), then the turn's."""

    per_minute: int
    concurrent: int
    started: float
    stale_before: float
    slot_ttl: int
    slot_member: str
    slot_to_take: bool  # False on a retry while the session is busy: the first try took the slot
    lock_token: str
    lock_ms: int
    now: float
    ttl: int  # MEMORY_TTL_SECONDS
    hold_seconds: float  # how long a reserved place lasts unrenewed
    max_sessions: int
    max_sessions_per_admin: int
    session_id: str
    member: str  # "<admin>:<session>" in the store-wide index
    record_name: str  # the session's record to read with the history; '': none


# KEYS: the admin's rate counter and chats in flight (ChatSlot.keys()), the session's lock, the admin's index, the
# session's messages, meta and records, and on a single Redis the store-wide index. ARGV: BeginArgs.
# Returns {limit} when the admin's slot is refused, {'busy'} when the session is locked (the slot, if taken, is
# kept for the retry), {'full', oldest activity} when a new session finds no place (the lock and the slot given
# back), or {admission, messages, meta, record, the admin's requests this minute (0: not counted)}: admission is
# 'admitted', 'reserved' (a place was reserved for this new session) or, on Redis Cluster, 'new' (this new session
# needs a place in the store-wide index: RESERVE_SCRIPT).
_BEGIN = """
local per_minute, concurrent, started, stale_before, slot_ttl, slot_member, slot_to_take, lock_token, lock_ms,
  now, ttl, hold_seconds, max_sessions, max_sessions_per_admin, session_id, member, record_name = unpack(ARGV)
lock_ms, now, ttl, max_sessions_per_admin = numbers(lock_ms, now, ttl, max_sessions_per_admin)
require_type(KEYS[4], 'zset')
require_type(KEYS[5], 'list')
require_type(KEYS[6], 'hash')
require_type(KEYS[7], 'hash')
local requests, refused = 0, nil
if slot_to_take == '1' then
  refused, requests = take_slot(KEYS[1], KEYS[2], per_minute, concurrent, started, stale_before, slot_ttl, slot_member)
  if refused then return {refused} end
end
if not redis.call('SET', KEYS[3], lock_token, 'NX', 'PX', lock_ms) then return {'busy'} end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - ttl)
local admission = 'admitted'
if not redis.call('ZSCORE', KEYS[4], session_id) and redis.call('ZCARD', KEYS[4]) < max_sessions_per_admin then
  admission = admit_new(now, ttl, hold_seconds, max_sessions, member)
  if type(admission) == 'table' then
    redis.call('DEL', KEYS[3])
    redis.call('ZREM', KEYS[2], slot_member)
    return admission
  end
end
local record = record_name ~= '' and redis.call('HGET', KEYS[7], record_name) or false
return {admission, redis.call('LRANGE', KEYS[5], 0, -1), redis.call('HGETALL', KEYS[6]), record, requests}
"""

# A new session's admission: 'reserved' (a place reserved for it, scored minus now), 'admitted' (it had one) or
# {'full', oldest activity}.
_ADMIT_NEW_SINGLE = """
local function admit_new(now, ttl, hold_seconds, max_sessions, member)
  local placed = reserve(KEYS[8], now, ttl, hold_seconds, 0, max_sessions, member, -now)
  if type(placed) == 'table' then return placed end
  return placed == 1 and 'reserved' or 'admitted'
end
"""

# On Redis Cluster the place is reserved by RESERVE_SCRIPT, in the store-wide index's slot.
_ADMIT_NEW_CLUSTER = """
local function admit_new(now, ttl, hold_seconds, max_sessions, member)
  return 'new'
end
"""


@dataclass(frozen=True)
class ReserveArgs:
    now: float
    ttl: int  # MEMORY_TTL_SECONDS
    hold_seconds: float
    grace: int  # the refresh interval of a session's place
    max_sessions: int
    member: str


# KEYS: the store-wide index. ARGV: ReserveArgs.
# Returns 1 (a place reserved, scored now), 0 (the session has one) or {'full', oldest activity}.
RESERVE_SCRIPT = (
    ALL_LUA
    + """
local now, ttl, hold_seconds, grace, max_sessions, member = unpack(ARGV)
return reserve(KEYS[1], now, ttl, hold_seconds, grace, max_sessions, member, now)
"""
)


@dataclass(frozen=True)
class FinishArgs:
    ttl: int  # MEMORY_TTL_SECONDS
    now_iso: str
    max_stored: int  # MAX_STORED_MESSAGES
    usage_json: str
    now: float
    max_sessions_per_admin: int
    session_id: str
    admin_id: str
    admin_usage: bool  # add to the admin's totals too
    lock_token: str  # '': no lock to check or give back
    slot_member: str  # '': no slot to give back
    replace_last: int  # stored messages the new ones replace
    created_at: str  # the session's creation time; '': now
    drop_first: int  # the first stored messages, folded into the summary
    set_summary: bool
    summary: str
    reserved_at: float | None  # when this turn reserved the session's place in the store-wide index
    refresh_seconds: int  # the refresh interval of that place (Redis Cluster)
    record_name: str  # a record to write beside the session (StoreOptions.record); '': none
    record: str
    records_kept: int  # StoreOptions.records_kept: 0, the record is not counted; else the cap of those counted
    day_json: str  # the turn's usage of the day (UsageDay.increments) as JSON, in the last key; '': none
    day_expire_at: int  # when that day's hash expires (Unix time)
    messages: list[str] = field(default_factory=list)  # JSON, one per message


_FINISH_NAMED = len(lua_argv_names(FinishArgs))

# KEYS: the session's messages and meta, the admin's index, the admin's usage totals, the session's lock, the
# admin's chats in flight, the session's records and their order, on a single Redis the store-wide index, and last,
# with a day_json, the admin's usage of the day (conversations/usage_history.py). ARGV: FinishArgs, the messages last.
# Returns {'lost'}, writing nothing, when a lock token is given and the lock
# is not its own (it expired, or another turn holds it); else the session's usage totals, the sessions evicted to
# keep the admin within MAX_SESSIONS_PER_ADMIN and, on Redis Cluster, 1 when the session's place in the store-wide
# index is due for a refresh (its last refresh, kept in the meta as `indexed_at`, is older than the refresh interval).
#
# A Lua error does not undo the writes before it, so everything that can fail (arguments, key types, the usage)
# is checked before the first write, and each key gets its expiry with its writes: no error leaves a key without
# its expiry or outside the admin's index. Usage counters stop at MAX_USAGE_COUNTER rather than overflow.
_FINISH = f"""
local ttl, now_iso, max_stored, usage_json, now, max_sessions_per_admin, session_id, admin_id, admin_usage,
  lock_token, slot_member, replace_last, created_at, drop_first, set_summary, summary, reserved_at,
  refresh_seconds, record_name, record, records_kept, day_json, day_expire_at = unpack(ARGV, 1, {_FINISH_NAMED})
if lock_token ~= '' and redis.call('GET', KEYS[5]) ~= lock_token then return {{'lost'}} end
ttl, max_stored, now, max_sessions_per_admin, replace_last, drop_first, records_kept = numbers(ttl, max_stored, now,
  max_sessions_per_admin, replace_last, drop_first, records_kept)
require_type(KEYS[1], 'list')
require_type(KEYS[2], 'hash')
require_type(KEYS[3], 'zset')
require_type(KEYS[4], 'hash')
require_type(KEYS[7], 'hash')
require_type(KEYS[8], 'list')
local decoded, usage = pcall(cjson.decode, usage_json)
if not decoded or type(usage) ~= 'table' then error('finish: the usage is not a JSON object') end
local names, cap = {{{", ".join(f"'{name}'" for name in USAGE_FIELDS)}}}, {MAX_USAGE_COUNTER}
for _, name in ipairs(names) do
  local value = usage[name] or 0
  if type(value) ~= 'number' or value < 0 or value ~= math.floor(value) then
    error('finish: the usage ' .. name .. ' is not a count')
  end
  usage[name] = math.min(value, cap)
end
local day = nil
if day_json ~= '' then
  require_type(KEYS[#KEYS], 'hash')
  local ok, increments = pcall(cjson.decode, day_json)
  if not ok or type(increments) ~= 'table' then error('finish: the usage of the day is not a JSON object') end
  for name, value in pairs(increments) do
    if type(value) ~= 'number' or value < 0 or value ~= math.floor(value) or value > cap then
      error('finish: the usage of the day ' .. name .. ' is not a count')
    end
  end
  day = increments
  day_expire_at = numbers(day_expire_at)
end
-- The counters of `key` with this turn's usage added, as HSET's field-value pairs.
local function counters_after(key)
  local current, fields = redis.call('HMGET', key, unpack(names)), {{}}
  for i, name in ipairs(names) do
    fields[#fields + 1] = name
    fields[#fields + 1] = string.format('%d', math.min((tonumber(current[i]) or 0) + usage[name], cap))
  end
  return fields
end
local session_counters = counters_after(KEYS[2])
local admin_counters = admin_usage == '1' and counters_after(KEYS[4]) or nil
local meta_fields, member = {{'last_activity', now_iso}}, admin_id .. ':' .. session_id
local refresh = index_read(meta_fields, now, reserved_at, refresh_seconds)

if replace_last > 0 or drop_first > 0 then redis.call('LTRIM', KEYS[1], drop_first, -1 - replace_last) end
for i = {_FINISH_NAMED} + 1, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('LTRIM', KEYS[1], -max_stored, -1)
redis.call('EXPIRE', KEYS[1], ttl)
if set_summary == '1' then redis.call('HSET', KEYS[2], 'summary', summary) end
redis.call('HSETNX', KEYS[2], 'created_at', created_at ~= '' and created_at or now_iso)
redis.call('HSET', KEYS[2], unpack(meta_fields))
redis.call('HSET', KEYS[2], unpack(session_counters))
redis.call('EXPIRE', KEYS[2], ttl)
if record_name ~= '' then
  redis.call('HSET', KEYS[7], record_name, record)
  if records_kept > 0 then
    -- The counted records in the order they were written (a turn holds the session's lock): past the cap, the
    -- oldest go. One HDEL each: a lowered cap can drop more than unpack() takes.
    redis.call('RPUSH', KEYS[8], record_name)
    local excess = redis.call('LLEN', KEYS[8]) - records_kept
    if excess > 0 then
      for _, name in ipairs(redis.call('LRANGE', KEYS[8], 0, excess - 1)) do redis.call('HDEL', KEYS[7], name) end
      redis.call('LTRIM', KEYS[8], excess, -1)
    end
  end
end
redis.call('EXPIRE', KEYS[7], ttl)
redis.call('EXPIRE', KEYS[8], ttl)
if admin_counters then redis.call('HSET', KEYS[4], unpack(admin_counters)) end
if day then
  for name, value in pairs(day) do redis.call('HINCRBY', KEYS[#KEYS], name, value) end
  redis.call('EXPIREAT', KEYS[#KEYS], day_expire_at)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ttl)
redis.call('ZADD', KEYS[3], now, session_id)
redis.call('EXPIRE', KEYS[3], ttl)
index_write(now, member)
local evicted = {{}}
local excess = redis.call('ZCARD', KEYS[3]) - max_sessions_per_admin
if excess > 0 then
  -- Never the session just stored, even if another instance's clock gave an older one a later score.
  for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, excess)) do
    if id ~= session_id and #evicted < excess then evicted[#evicted + 1] = id end
  end
  if #evicted > 0 then redis.call('ZREM', KEYS[3], unpack(evicted)) end
  index_evict(evicted, admin_id)
end
if lock_token ~= '' then redis.call('DEL', KEYS[5]) end
if slot_member ~= '' then redis.call('ZREM', KEYS[6], slot_member) end
local totals = {{}}
for i = 2, #session_counters, 2 do totals[#totals + 1] = session_counters[i] end
return {{totals, evicted, refresh}}
"""

# The store-wide index in the finish script. index_read, before the first write: 1 when the session's place is due
# for a refresh (Redis Cluster, by a round trip of its own), else 0; it may add fields to the session's meta.
# index_write: the session's place, scored by its last activity. index_evict: the places of the evicted sessions.
_INDEX_SINGLE = """
local function index_read(meta_fields, now, reserved_at, refresh_seconds) return 0 end
local function index_write(now, member) redis.call('ZADD', KEYS[9], now, member) end
local function index_evict(evicted, admin_id)
  for _, id in ipairs(evicted) do redis.call('ZREM', KEYS[9], admin_id .. ':' .. id) end
end
"""

# On Redis Cluster the store-wide index is in another slot: the session's meta keeps when its place was last
# refreshed (`indexed_at`), and the caller refreshes it, or removes the evicted sessions' places, afterwards.
_INDEX_CLUSTER = """
local function index_read(meta_fields, now, reserved_at, refresh_seconds)
  local refresh, indexed = 0, tonumber(redis.call('HGET', KEYS[2], 'indexed_at') or reserved_at)
  if not indexed or now - indexed >= tonumber(refresh_seconds) then
    indexed = now
    refresh = 1
  end
  meta_fields[#meta_fields + 1] = 'indexed_at'
  meta_fields[#meta_fields + 1] = tostring(indexed)
  return refresh
end
local function index_write(now, member) end
local function index_evict(evicted, admin_id) end
"""

# KEYS: the session's lock, the admin's chats in flight, the session's meta, and on a single Redis the store-wide
# index. ARGV: ReleaseArgs. Gives back what a turn that stored nothing holds:
# its lock, its slot, and on a single Redis a place reserved for a new session. Returns 1 when the session is
# stored after all (a finish whose answer was lost), so that on Redis Cluster the caller gives back a reserved
# place only when it is not.
_RELEASE = """
local lock_token, slot_member, member, reserved = unpack(ARGV)
if redis.call('GET', KEYS[1]) == lock_token then redis.call('DEL', KEYS[1]) end
if slot_member ~= '' then redis.call('ZREM', KEYS[2], slot_member) end
if reserved == '1' then unreserve(member) end
return redis.call('EXISTS', KEYS[3])
"""


@dataclass(frozen=True)
class ReleaseArgs:
    lock_token: str
    slot_member: str  # '': no slot to give back
    member: str  # "<admin>:<session>" in the store-wide index
    reserved: bool  # the turn reserved a place for a new session


# A place reserved for a new session, given back while it is still only reserved (scored below 0).
_UNRESERVE_SINGLE = """
local function unreserve(member)
  local score = redis.call('ZSCORE', KEYS[4], member)
  if score and tonumber(score) < 0 then redis.call('ZREM', KEYS[4], member) end
end
"""

# On Redis Cluster the caller gives it back, in the store-wide index's slot.
_UNRESERVE_CLUSTER = """
local function unreserve(member) end
"""


@dataclass(frozen=True)
class TurnScripts:
    """The three turn scripts of one deployment kind. `store_wide`: whether they use the store-wide index (their
    last key) themselves."""

    begin: str
    finish: str
    release: str
    store_wide: bool


def turn_scripts(take_slot_lua: str, *, cluster: bool) -> TurnScripts:
    """The turn scripts, with `take_slot_lua` (the admin's chat limits, which the store is given) defining the
    take_slot function that the begin script calls."""
    if cluster:
        return TurnScripts(
            begin=CHECKS_LUA + take_slot_lua + _ADMIT_NEW_CLUSTER + _BEGIN,
            finish=CHECKS_LUA + _INDEX_CLUSTER + _FINISH,
            release=_UNRESERVE_CLUSTER + _RELEASE,
            store_wide=False,
        )
    return TurnScripts(
        begin=CHECKS_LUA + take_slot_lua + ALL_LUA + _ADMIT_NEW_SINGLE + _BEGIN,
        finish=CHECKS_LUA + _INDEX_SINGLE + _FINISH,
        release=_UNRESERVE_SINGLE + _RELEASE,
        store_wide=True,
    )
