"""Lua scripts that make the read-modify-write steps atomic on the Redis server (design.md §3).

Version fencing rule: a write applies only when its version is strictly greater than the fence
``ver:{id}`` (the highest version seen, deletes included). Older OR EQUAL versions change nothing, so a
replayed record is a no-op. Versions are compared as Lua numbers (doubles): exact up to 2**53.

List ordering rule (several workers refresh the same lists): every applied product write increments
``catalog:seq``; a list is computed after reading it and carries that number as its ``list_version``,
so a higher list_version always saw at least the writes a lower one saw. PREPARE_LIST admits a list
for emission only when nothing at least as fresh is current or in flight, WRITE_LIST makes it current
only when it is fresher than the current one, so the freshest computation wins in Redis and on the
topic whatever order the workers finish in.
"""

from __future__ import annotations

from typing import Final

# Return codes of UPSERT_PRODUCT.
UPSERT_STALE: Final = 0
UPSERT_APPLIED: Final = 1
UPSERT_NEEDS_EMBEDDING: Final = -1

# KEYS[1] product hash, KEYS[2] version fence, KEYS[3] catalog sequence.
# ARGV[1] version, ARGV[2] "full" | "meta", ARGV[3] content hash, ARGV[4] model, ARGV[5] "1" when the
# field pairs carry a price ("" otherwise), ARGV[6..] field/value pairs to HSET.
# "meta" keeps the stored embedding: only allowed when the stored content hash and model are the ones
# given and an embedding exists; otherwise it answers -1 so the caller embeds and writes in full.
UPSERT_PRODUCT: Final = """
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
redis.call('INCR', KEYS[3])
return 1
"""

# KEYS[1] product hash, KEYS[2] version fence, KEYS[3] catalog sequence. ARGV[1] version.
# The fence keeps the delete's version, so a replayed older create cannot resurrect the product.
DELETE_PRODUCT: Final = """
local version = tonumber(ARGV[1])
local fence = redis.call('GET', KEYS[2])
if fence and version <= tonumber(fence) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[3])
return 1
"""

# Members of the list stored at `key` (the "items" of its similar-items JSON), as a set-like table.
_OLD_MEMBERS = """
local function old_members(key)
  local members = {}
  local old = redis.call('GET', key)
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

# Return codes of PREPARE_LIST.
PREPARE_EMIT: Final = 1
PREPARE_SUPERSEDED: Final = 0  # a list at least as fresh is current, or was found unchanged: drop this one
PREPARE_UNCHANGED: Final = -1  # equal to the current list and nothing in flight: nothing to emit
PREPARE_MEMBER_GONE: Final = -2  # the product or one of its neighbours was deleted meanwhile: recompute

# KEYS[1] listmeta:{id}, KEYS[2] product:{id}, KEYS[3..] product hashes of the list's members.
# ARGV[1] the list's stamp (its list_version), ARGV[2] the committed list_version the caller compared
# the list with ('' when there was none), ARGV[3] '1' when the list equals that one, ARGV[4] '1' to
# emit even when unchanged or equally fresh (a replay: its earlier records may have been aborted).
# A list fresher than the current one is emitted even while a fresher one is in flight: that one may
# never land (its worker lost the partition), and if it does it outranks this one everywhere.
# ``pending`` (the highest stamp in flight) only stops an unchanged list from being skipped: a staler
# list in flight would reach the topic after it. Skipping raises the fence instead, so a staler list
# computed before it can no longer be emitted.
PREPARE_LIST: Final = """
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    return -2
  end
end
local stamp = tonumber(ARGV[1])
local meta = redis.call('HMGET', KEYS[1], 'committed', 'pending', 'fence')
local committed = tonumber(meta[1]) or -1
local pending = tonumber(meta[2]) or -1
local fence = tonumber(meta[3]) or -1
local forced = ARGV[4] == '1'
local floor = math.max(committed, fence)
if stamp < floor or (stamp == floor and not forced) then
  return 0
end
if not forced and ARGV[3] == '1' and ARGV[2] ~= '' and tonumber(ARGV[2]) == committed and pending <= committed then
  redis.call('HSET', KEYS[1], 'fence', ARGV[1])
  return -1
end
if stamp > pending then
  redis.call('HSET', KEYS[1], 'pending', ARGV[1])
end
return 1
"""

# KEYS[1] similar:{id}, KEYS[2] product:{id}, KEYS[3] listmeta:{id}. ARGV[1] rev key prefix, ARGV[2]
# product id, ARGV[3] the list's JSON, ARGV[4] its list_version (its stamp), ARGV[5] its admission
# threshold (-1 when anything may enter), ARGV[6..] member ids.
# Fenced: a list not fresher than the current one (or below the fence) changes nothing (returns 0), so
# a slow writer never overwrites a fresher list. rev sets change in the same script: members that left
# lose the id, all current members hold it.
# rev keys are built in the script (not declared in KEYS): fine on one server, not on Redis Cluster.
WRITE_LIST: Final = (
    _OLD_MEMBERS
    + """
local stamp = tonumber(ARGV[4])
local meta = redis.call('HMGET', KEYS[3], 'committed', 'pending', 'fence')
local committed = tonumber(meta[1]) or -1
local pending = tonumber(meta[2]) or -1
local fence = tonumber(meta[3]) or -1
if pending ~= -1 and pending <= stamp then
  redis.call('HDEL', KEYS[3], 'pending')
end
if stamp <= committed or stamp < fence then
  return 0
end
local old = old_members(KEYS[1])
local new = {}
for i = 6, #ARGV do
  new[ARGV[i]] = true
end
for member, _ in pairs(old) do
  if not new[member] then
    redis.call('SREM', ARGV[1] .. member, ARGV[2])
  end
end
for member, _ in pairs(new) do
  redis.call('SADD', ARGV[1] .. member, ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[3], 'committed', ARGV[4])
-- The list's admission threshold on the product itself, for reverse-neighbour searches; never
-- creates the hash of a product deleted meanwhile.
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'kth', ARGV[5])
end
return 1
"""
)

# KEYS[1] similar:{id}, KEYS[2] listmeta:{id}, KEYS[3] catalog sequence. ARGV[1] rev key prefix,
# ARGV[2] product id. Returns 1 when a list was removed. The fence moves to the current sequence: a
# list computed before the delete can no longer become current.
DELETE_LIST: Final = (
    _OLD_MEMBERS
    + """
local old = old_members(KEYS[1])
for member, _ in pairs(old) do
  redis.call('SREM', ARGV[1] .. member, ARGV[2])
end
redis.call('HSET', KEYS[2], 'fence', tonumber(redis.call('GET', KEYS[3]) or '0'))
return redis.call('DEL', KEYS[1])
"""
)
