"""Lua scripts that make the read-modify-write steps atomic on the Redis server (design.md §3).

Version fencing rule: a write applies only when its version is strictly greater than the fence
``ver:{id}`` (the highest version seen, deletes included). Older OR EQUAL versions change nothing, so a
replayed record is a no-op. Versions are compared as Lua numbers (doubles): exact up to 2**53.

List ordering rule (several workers refresh the same lists): every applied product write advances
``catalog:seq``; a list is computed after reading it and carries that number as its ``list_version``,
so a higher list_version always saw at least the writes a lower one saw. PREPARE_LIST admits a list
for emission only when nothing at least as fresh is current or in flight, WRITE_LIST makes it current
only when it is fresher than the current one, so the freshest computation wins in Redis and on the
topic whatever order the workers finish in.
"""

from __future__ import annotations

from typing import Final

# The catalog sequence is a hybrid clock: each step is max(current + 1, the server's time in
# microseconds). It still rises by at least one per write, and it also rises when Redis lost its last
# writes (a crash with everysec fsync, a restore from an older snapshot): the lists a replay then
# emits outrank the ones readers already saw. Microseconds stay below 2**53 (exact in Lua's doubles)
# until the year 2255. Numbers are written with %.0f: Lua's own conversion would print 1.79e+15.
_ADVANCE_SEQUENCE = """
local function advance_sequence(key)
  local now = redis.call('TIME')
  local micros = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local value = tonumber(redis.call('GET', key) or '0') + 1
  if micros > value then
    value = micros
  end
  local text = string.format('%.0f', value)
  redis.call('SET', key, text)
  return text
end
"""

# KEYS[1] catalog sequence: one step of the clock for stamps that are not a product write (tools).
ADVANCE_SEQUENCE: Final = _ADVANCE_SEQUENCE + "return advance_sequence(KEYS[1])\n"

# KEYS[1] the applied-offsets hash; ARGV[1] the run_id of the Redis process the batch started on (another
# process records nothing: 0), then pairs of field ("topic:partition") and next offset. An offset only
# moves forward: a zombie worker finishing late cannot move it back.
ADVANCE_OFFSETS: Final = """
if string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') ~= ARGV[1] then
  return 0
end
for i = 2, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if not current or tonumber(current) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""

# Return codes of UPSERT_PRODUCT.
UPSERT_STALE: Final = 0
UPSERT_APPLIED: Final = 1
UPSERT_NEEDS_EMBEDDING: Final = -1

# KEYS[1] product hash, KEYS[2] version fence, KEYS[3] catalog sequence.
# ARGV[1] version, ARGV[2] "full" | "meta", ARGV[3] content hash, ARGV[4] model, ARGV[5] "1" when the
# field pairs carry a price ("" otherwise), ARGV[6..] field/value pairs to HSET.
# "meta" keeps the stored embedding: only allowed when the stored content hash and model are the ones
# given and an embedding exists; otherwise it answers -1 so the caller embeds and writes in full.
UPSERT_PRODUCT: Final = (
    _ADVANCE_SEQUENCE
    + """
local version = tonumber(ARGV[1])
local fence = redis.call('GET', KEYS[2])
if fence and version <= tonumber(fence) then
  return 0
end
if ARGV[2] == 'meta' then
  local stored = redis.call('HMGET', KEYS[1], 'content_hash', 'model', 'embedding')
  if stored[1] ~= ARGV[3] or stored[2] ~= ARGV[4] or not stored[3] then
    return -1
  end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if ARGV[5] == '' then
  redis.call('HDEL', KEYS[1], 'price')
end
redis.call('SET', KEYS[2], ARGV[1])
advance_sequence(KEYS[3])
return 1
"""
)

# KEYS[1] product hash, KEYS[2] version fence, KEYS[3] catalog sequence. ARGV[1] version.
# The fence keeps the delete's version, so a replayed older create cannot resurrect the product.
DELETE_PRODUCT: Final = (
    _ADVANCE_SEQUENCE
    + """
local version = tonumber(ARGV[1])
local fence = redis.call('GET', KEYS[2])
if fence and version <= tonumber(fence) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
advance_sequence(KEYS[3])
return 1
"""
)

# The products the rev: sets hold for a list: the pool it was ranked from (a JSON array in
# listmeta:{id} field 'pool'), or for a list written before pools were kept, its items.
_OLD_MEMBERS = """
local function old_members(list_key, meta_key)
  local members = {}
  local pool = redis.call('HGET', meta_key, 'pool')
  if pool then
    local ok, decoded = pcall(cjson.decode, pool)
    if ok and type(decoded) == 'table' then
      for _, member in ipairs(decoded) do
        if type(member) == 'string' then
          members[member] = true
        end
      end
      return members
    end
  end
  local old = redis.call('GET', list_key)
  if old then
    local ok, decoded = pcall(cjson.decode, old)
    if ok and type(decoded) == 'table' and type(decoded['items']) == 'table' then
      for _, item in ipairs(decoded['items']) do
        if type(item) == 'table' and type(item['product_id']) == 'string' then
          members[item['product_id']] = true
        end
      end
    end
  end
  return members
end
"""

# Keys and arguments shared by PREPARE_LIST and WRITE_LIST:
# KEYS[1] similar:{id}, KEYS[2] listmeta:{id}, KEYS[3] product:{id};
# ARGV[1] rev key prefix, ARGV[2] product id, ARGV[3] the list's stamp (its list_version), ARGV[4] its
# admission threshold (the dense score to enter its pool; -1 when anything may enter), ARGV[5] its
# pool as a JSON array, ARGV[6..9] what each script needs besides, ARGV[10..] the pool's ids.
# set_pool makes the pool current: rev sets follow the pool, not only the list, because a pool member
# that changes or leaves can let another candidate into the list. Members that left lose the id, all
# current members hold it. rev keys are built in the script (not declared in KEYS): fine on one
# server, not on Redis Cluster.
_SET_POOL = """
local POOL_FROM = 10
local function set_pool()
  local old = old_members(KEYS[1], KEYS[2])
  local new = {}
  for i = POOL_FROM, #ARGV do
    new[ARGV[i]] = true
  end
  for member, _ in pairs(old) do
    if not new[member] then
      redis.call('SREM', ARGV[1] .. member, ARGV[2])
    end
  end
  for member, _ in pairs(new) do
    if not old[member] then
      redis.call('SADD', ARGV[1] .. member, ARGV[2])
    end
  end
  redis.call('HSET', KEYS[2], 'pool', ARGV[5])
  -- The admission threshold on the product itself, for reverse-neighbour searches; never creates
  -- the hash of a product deleted meanwhile.
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('HSET', KEYS[3], 'kth', ARGV[4])
  end
end
local function list_meta()
  local meta = redis.call('HMGET', KEYS[2], 'committed', 'pending', 'fence')
  return tonumber(meta[1]) or -1, tonumber(meta[2]) or -1, tonumber(meta[3]) or -1
end
"""

# Return codes of PREPARE_LIST.
PREPARE_EMIT: Final = 1
PREPARE_SUPERSEDED: Final = 0  # a list at least as fresh is current, or was found unchanged: drop this one
PREPARE_UNCHANGED: Final = -1  # equal to the current list and nothing in flight: nothing to emit
PREPARE_MEMBER_GONE: Final = -2  # the product or one of its neighbours was deleted meanwhile: recompute

# KEYS as above, then KEYS[4..] the product hashes of the list's items.
# ARGV as above, with ARGV[6] the committed list_version the caller compared the list with ('' when
# there was none), ARGV[7] '1' when the list's items equal that one's, ARGV[8] '1' to emit even when unchanged or
# equally fresh (a replay: its earlier records may have been aborted), ARGV[9] '1' when the product
# (KEYS[3]) and the items (KEYS[4..]) must still exist.
# A list fresher than the current one is emitted even while a fresher one is in flight: that one may
# never land (its worker lost the partition), and if it does it outranks this one everywhere.
# ``pending`` (the highest stamp in flight) only stops an unchanged list from being skipped: a staler
# list in flight would reach the topic after it. Skipping raises the fence instead, so a staler list
# computed before it can no longer be emitted, and makes the new pool current (nothing to emit).
PREPARE_LIST: Final = (
    _OLD_MEMBERS
    + _SET_POOL
    + """
if ARGV[9] == '1' then
  for i = 3, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 0 then
      return -2
    end
  end
end
local stamp = tonumber(ARGV[3])
local committed, pending, fence = list_meta()
local forced = ARGV[8] == '1'
local floor = math.max(committed, fence)
if stamp < floor or (stamp == floor and not forced) then
  return 0
end
if not forced and ARGV[7] == '1' and ARGV[6] ~= '' and tonumber(ARGV[6]) == committed and pending <= committed then
  redis.call('HSET', KEYS[2], 'fence', ARGV[3])
  set_pool()
  return -1
end
if stamp > pending then
  redis.call('HSET', KEYS[2], 'pending', ARGV[3])
end
return 1
"""
)

# KEYS and ARGV[1..5] as above; ARGV[6] the list's JSON, ARGV[7..9] unused (''), the pool from
# ARGV[10]. Fenced: a list not fresher than the current one (or below the fence) changes nothing
# (returns 0), so a slow writer never overwrites a fresher list.
WRITE_LIST: Final = (
    _OLD_MEMBERS
    + _SET_POOL
    + """
local stamp = tonumber(ARGV[3])
local committed, pending, fence = list_meta()
if pending ~= -1 and pending <= stamp then
  redis.call('HDEL', KEYS[2], 'pending')
end
if stamp <= committed or stamp < fence then
  return 0
end
set_pool()
redis.call('SET', KEYS[1], ARGV[6])
redis.call('HSET', KEYS[2], 'committed', ARGV[3])
return 1
"""
)

# KEYS[1] similar:{id}, KEYS[2] listmeta:{id}, KEYS[3] catalog sequence. ARGV[1] rev key prefix,
# ARGV[2] product id. Returns 1 when a list was removed. The fence moves to the current sequence: a
# list computed before the delete can no longer become current.
DELETE_LIST: Final = (
    _OLD_MEMBERS
    + """
local old = old_members(KEYS[1], KEYS[2])
for member, _ in pairs(old) do
  redis.call('SREM', ARGV[1] .. member, ARGV[2])
end
redis.call('HDEL', KEYS[2], 'pool')
redis.call('HSET', KEYS[2], 'fence', redis.call('GET', KEYS[3]) or '0')
return redis.call('DEL', KEYS[1])
"""
)
