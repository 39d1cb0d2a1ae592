"""The Lua scripts of a chat turn on the Redis store: one round trip to begin it, one to finish it (or to give
back what a failed turn held).

Every key a turn touches is its admin's, in the admin's Redis Cluster slot ({a:<admin id>}), except one: the
store-wide index {conv-index}:all that bounds MAX_SESSIONS. On a single Redis (or Sentinel) the turn scripts use
it too (`SINGLE`), as before. On Redis Cluster it is in a slot of its own, so the turn scripts leave it out
(`CLUSTER`) and the store-wide steps run as scripts of their own on its slot, only when a turn needs them: a
place for a new session (RESERVE_SCRIPT), and a refresh of a session's place at most once per refresh interval
(see RedisHistoryStore)."""

from __future__ import annotations

from dataclasses import dataclass

from conversations.history.base import MAX_USAGE_COUNTER, USAGE_FIELDS
from conversations.limits import TAKE_SLOT_LUA

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

# KEYS: the admin's rate counter and chats in flight (AdminSlot.keys()), the session's lock, the admin's index, the
# session's messages and meta, and on a single Redis the store-wide index. ARGV: AdminSlot.args() (6), take the slot
# (1/0), lock token, lock ms, now, ttl, turn seconds, MAX_SESSIONS, MAX_SESSIONS_PER_ADMIN, session, member.
# Returns {limit} when the admin's slot is refused, {'busy'} when the session is locked (the slot, if taken, is
# kept for the retry), {'full', oldest activity} when a new session finds no place (the lock and the slot given
# back), or {admission, messages, meta}: admission is 'admitted', 'reserved' (a place was reserved for this new
# session) or, on Redis Cluster, 'new' (this new session needs a place in the store-wide index: RESERVE_SCRIPT).
_BEGIN = """
local lock_ms, now, ttl, per_admin = numbers(ARGV[9], ARGV[10], ARGV[11], ARGV[14])
require_type(KEYS[4], 'zset')
require_type(KEYS[5], 'list')
require_type(KEYS[6], 'hash')
if ARGV[7] == '1' then
  local refused = take_slot(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
  if refused then return {refused} end
end
if not redis.call('SET', KEYS[3], ARGV[8], 'NX', 'PX', lock_ms) then return {'busy'} end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - ttl)
local admission = 'admitted'
if not redis.call('ZSCORE', KEYS[4], ARGV[15]) and redis.call('ZCARD', KEYS[4]) < per_admin then
  --ADMIT--
end
return {admission, redis.call('LRANGE', KEYS[5], 0, -1), redis.call('HGETALL', KEYS[6])}
"""

_ADMIT_SINGLE = """
  local placed = reserve(KEYS[7], now, ttl, ARGV[12], 0, ARGV[13], ARGV[16], -now)
  if type(placed) == 'table' then
    redis.call('DEL', KEYS[3])
    redis.call('ZREM', KEYS[2], ARGV[6])
    return placed
  end
  if placed == 1 then admission = 'reserved' end
"""

_ADMIT_CLUSTER = """
  admission = 'new'
"""

# KEYS: the store-wide index. ARGV: now, ttl, turn seconds, refresh seconds, MAX_SESSIONS, member.
# Returns 1 (a place reserved, scored now), 0 (the session has one) or {'full', oldest activity}.
RESERVE_SCRIPT = ALL_LUA + "return reserve(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[1])"

# KEYS: the session's messages and meta, the admin's index, the admin's usage totals, the session's lock, the
# admin's chats in flight, and on a single Redis the store-wide index. ARGV: ttl, now (ISO), MAX_STORED_MESSAGES,
# usage (JSON), now, MAX_SESSIONS_PER_ADMIN, session, admin, add to the admin's totals (1/0), lock token (or ''),
# slot (or ''), how many stored messages the new ones replace, the session's creation time (or '' for now), how
# many of the first stored messages were folded into the summary, the new summary ('1' and it, or '0' and '' for
# none), when this turn reserved the session's place in the store-wide index (or ''), the refresh interval of that
# place (Redis Cluster), then the messages. Returns {'lost'}, writing nothing, when a lock token is given and the lock
# is not its own (it expired, or another turn holds it); else the session's usage totals, the sessions evicted to
# keep the admin within MAX_SESSIONS_PER_ADMIN and, on Redis Cluster, 1 when the session's place in the store-wide
# index is due for a refresh (its last refresh, kept in the meta as `indexed_at`, is older than the refresh interval).
#
# A Lua error does not undo the writes before it, so everything that can fail (arguments, key types, the usage)
# is checked before the first write, and each key gets its expiry with its writes: no error leaves a key without
# its expiry or outside the admin's index. Usage counters stop at MAX_USAGE_COUNTER rather than overflow.
_FINISH = f"""
if ARGV[10] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[10] then return {{'lost'}} end
local ttl, max_stored, now, per_admin = numbers(ARGV[1], ARGV[3], ARGV[5], ARGV[6])
local replaced, dropped = numbers(ARGV[12], ARGV[14])
require_type(KEYS[1], 'list')
require_type(KEYS[2], 'hash')
require_type(KEYS[3], 'zset')
require_type(KEYS[4], 'hash')
local decoded, usage = pcall(cjson.decode, ARGV[4])
if not decoded or type(usage) ~= 'table' then error('finish: the usage is not a JSON object') end
local names, cap = {{{", ".join(f"'{name}'" for name in USAGE_FIELDS)}}}, {MAX_USAGE_COUNTER}
for _, name in ipairs(names) do
  local value = usage[name] or 0
  if type(value) ~= 'number' or value < 0 or value ~= math.floor(value) then
    error('finish: the usage ' .. name .. ' is not a count')
  end
  usage[name] = math.min(value, cap)
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
local admin_counters = ARGV[9] == '1' and counters_after(KEYS[4]) or nil
local meta_fields, member, refresh = {{'last_activity', ARGV[2]}}, ARGV[8] .. ':' .. ARGV[7], 0
--INDEX_READ--

if replaced > 0 or dropped > 0 then redis.call('LTRIM', KEYS[1], dropped, -1 - replaced) end
for i = 19, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('LTRIM', KEYS[1], -max_stored, -1)
redis.call('EXPIRE', KEYS[1], ttl)
if ARGV[15] == '1' then redis.call('HSET', KEYS[2], 'summary', ARGV[16]) end
redis.call('HSETNX', KEYS[2], 'created_at', ARGV[13] ~= '' and ARGV[13] or ARGV[2])
redis.call('HSET', KEYS[2], unpack(meta_fields))
redis.call('HSET', KEYS[2], unpack(session_counters))
redis.call('EXPIRE', KEYS[2], ttl)
if admin_counters then redis.call('HSET', KEYS[4], unpack(admin_counters)) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ttl)
redis.call('ZADD', KEYS[3], now, ARGV[7])
redis.call('EXPIRE', KEYS[3], ttl)
--INDEX_WRITE--
local evicted = {{}}
local excess = redis.call('ZCARD', KEYS[3]) - per_admin
if excess > 0 then
  -- Never the session just stored, even if another instance's clock gave an older one a later score.
  for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, excess)) do
    if id ~= ARGV[7] and #evicted < excess then evicted[#evicted + 1] = id end
  end
  if #evicted > 0 then redis.call('ZREM', KEYS[3], unpack(evicted)) end
  --EVICT--
end
if ARGV[10] ~= '' then redis.call('DEL', KEYS[5]) end
if ARGV[11] ~= '' then redis.call('ZREM', KEYS[6], ARGV[11]) end
local totals = {{}}
for i = 2, #session_counters, 2 do totals[#totals + 1] = session_counters[i] end
return {{totals, evicted, refresh}}
"""

_INDEX_WRITE_SINGLE = """
redis.call('ZADD', KEYS[7], now, member)
"""

_INDEX_READ_CLUSTER = """
local indexed = tonumber(redis.call('HGET', KEYS[2], 'indexed_at') or ARGV[17])
if not indexed or now - indexed >= tonumber(ARGV[18]) then
  indexed = now
  refresh = 1
end
meta_fields[#meta_fields + 1] = 'indexed_at'
meta_fields[#meta_fields + 1] = tostring(indexed)
"""

_EVICT_SINGLE = """
  for _, id in ipairs(evicted) do redis.call('ZREM', KEYS[7], ARGV[8] .. ':' .. id) end
"""

# KEYS: the session's lock, the admin's chats in flight, the session's meta, and on a single Redis the store-wide
# index. ARGV: lock token, slot (or ''), member, reserved (1/0). Gives back what a turn that stored nothing holds:
# its lock, its slot, and on a single Redis a place reserved for a new session. Returns 1 when the session is
# stored after all (a finish whose answer was lost), so that on Redis Cluster the caller gives back a reserved
# place only when it is not.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[2]) end
--UNRESERVE--
return redis.call('EXISTS', KEYS[3])
"""

_UNRESERVE_SINGLE = """
if ARGV[4] == '1' then
  local score = redis.call('ZSCORE', KEYS[4], ARGV[3])
  if score and tonumber(score) < 0 then redis.call('ZREM', KEYS[4], ARGV[3]) end
end
"""


@dataclass(frozen=True)
class TurnScripts:
    """The three turn scripts of one deployment kind. `store_wide`: whether they use the store-wide index (their
    last key) themselves."""

    begin: str
    finish: str
    release: str
    store_wide: bool


def _fill(template: str, **parts: str) -> str:
    for name, lua in parts.items():
        template = template.replace(f"--{name}--", lua.strip("\n"))
    return template


SINGLE = TurnScripts(
    begin=CHECKS_LUA + TAKE_SLOT_LUA + ALL_LUA + _fill(_BEGIN, ADMIT=_ADMIT_SINGLE),
    finish=CHECKS_LUA + _fill(_FINISH, INDEX_READ="", INDEX_WRITE=_INDEX_WRITE_SINGLE, EVICT=_EVICT_SINGLE),
    release=_fill(_RELEASE, UNRESERVE=_UNRESERVE_SINGLE),
    store_wide=True,
)

CLUSTER = TurnScripts(
    begin=CHECKS_LUA + TAKE_SLOT_LUA + _fill(_BEGIN, ADMIT=_ADMIT_CLUSTER),
    finish=CHECKS_LUA + _fill(_FINISH, INDEX_READ=_INDEX_READ_CLUSTER, INDEX_WRITE="", EVICT=""),
    release=_fill(_RELEASE, UNRESERVE=""),
    store_wide=False,
)
