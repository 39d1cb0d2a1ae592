"""The Lua scripts of a chat turn on the Redis store: one round trip to begin it, one to finish it (or to give
back what a failed turn held)."""

from __future__ import annotations

from conversations.history.base import USAGE_FIELDS
from conversations.limits import TAKE_SLOT_LUA

# KEYS: the admin's rate counter and chats in flight (AdminSlot.keys()), the session's lock, all, the admin's index,
# the session's messages and meta. ARGV: AdminSlot.args() (6), take the slot (1/0), lock token, lock ms, now, ttl,
# turn seconds, MAX_SESSIONS, MAX_SESSIONS_PER_ADMIN, session, member. Returns {limit} when the admin's slot is refused,
# {'busy'} when the session is locked (the slot, if taken, is kept for the retry), {'full', oldest activity} when a
# new session finds no place (the lock and the slot given back), or {admission, messages, meta}.
BEGIN_SCRIPT = (
    TAKE_SLOT_LUA
    + """
if ARGV[7] == '1' then
  local refused = take_slot(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
  if refused then return {refused} end
end
if not redis.call('SET', KEYS[3], ARGV[8], 'NX', 'PX', ARGV[9]) then return {'busy'} end
local now, ttl = tonumber(ARGV[10]), tonumber(ARGV[11])
redis.call('ZREMRANGEBYSCORE', KEYS[4], 0, now - ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '(' .. (tonumber(ARGV[12]) - now), '(0')
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - ttl)
local admission = 'admitted'
if not redis.call('ZSCORE', KEYS[5], ARGV[15]) and redis.call('ZCARD', KEYS[5]) < tonumber(ARGV[14]) then
  if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[13]) then
    redis.call('DEL', KEYS[3])
    redis.call('ZREM', KEYS[2], ARGV[6])
    return {'full', redis.call('ZRANGEBYSCORE', KEYS[4], '(0', '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2]}
  end
  redis.call('ZADD', KEYS[4], -now, ARGV[16])
  admission = 'reserved'
end
return {admission, redis.call('LRANGE', KEYS[6], 0, -1), redis.call('HGETALL', KEYS[7])}
"""
)

# KEYS: the session's messages and meta, all, the admin's index, the admin's usage totals, the session's lock, the
# admin's chats in flight. ARGV: ttl, now (ISO), MAX_STORED_MESSAGES, usage (JSON), now, MAX_SESSIONS_PER_ADMIN,
# session, admin, add to the admin's totals (1/0), lock token (or ''), slot (or ''), how many stored messages the
# new ones replace, the session's creation time (or '' for now), how many of the first stored messages were
# folded into the summary, the new summary ('1' and it, or '0' and '' for none), then the messages.
# Returns the session's usage totals and the sessions evicted to keep the admin within MAX_SESSIONS_PER_ADMIN.
FINISH_SCRIPT = f"""
local replaced, dropped = tonumber(ARGV[12]), tonumber(ARGV[14])
if replaced > 0 or dropped > 0 then redis.call('LTRIM', KEYS[1], dropped, -1 - replaced) end
if ARGV[15] == '1' then redis.call('HSET', KEYS[2], 'summary', ARGV[16]) end
for i = 17, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('HSETNX', KEYS[2], 'created_at', ARGV[13] ~= '' and ARGV[13] or ARGV[2])
redis.call('HSET', KEYS[2], 'last_activity', ARGV[2])
for name, value in pairs(cjson.decode(ARGV[4])) do
  redis.call('HINCRBY', KEYS[2], name, value)
  if ARGV[9] == '1' then redis.call('HINCRBY', KEYS[5], name, value) end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
local totals = redis.call('HMGET', KEYS[2], {", ".join(f"'{name}'" for name in USAGE_FIELDS)})
local now, ttl, member = tonumber(ARGV[5]), tonumber(ARGV[1]), ARGV[8] .. ':' .. ARGV[7]
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - ttl)
redis.call('ZADD', KEYS[4], now, ARGV[7])
redis.call('EXPIRE', KEYS[4], ttl)
redis.call('ZADD', KEYS[3], now, member)
local evicted = {{}}
local excess = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[6])
if excess > 0 then
  -- Never the session just stored, even if another instance's clock gave an older one a later score.
  for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, excess)) do
    if id ~= ARGV[7] and #evicted < excess then evicted[#evicted + 1] = id end
  end
  redis.call('ZREM', KEYS[4], unpack(evicted))
  for _, id in ipairs(evicted) do redis.call('ZREM', KEYS[3], ARGV[8] .. ':' .. id) end
end
if ARGV[10] ~= '' and redis.call('GET', KEYS[6]) == ARGV[10] then redis.call('DEL', KEYS[6]) end
if ARGV[11] ~= '' then redis.call('ZREM', KEYS[7], ARGV[11]) end
return {{totals, evicted}}
"""

# KEYS: all, the session's lock, the admin's chats in flight. ARGV: member, lock token, slot, reserved (1/0).
# Gives back what a turn that stored nothing holds: its lock, its slot, and a place reserved for a new session.
RELEASE_SCRIPT = """
if ARGV[4] == '1' then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if score and tonumber(score) < 0 then redis.call('ZREM', KEYS[1], ARGV[1]) end
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[3], ARGV[3]) end
"""
