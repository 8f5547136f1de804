"""Lua scripts that make the read-modify-write steps atomic on the Redis server (design.md §3).

Version fencing rule: a write applies only when its version is strictly greater than the fence
``ver:{id}`` (the highest version seen, deletes included). Older OR EQUAL versions change nothing, so a
replayed record is a no-op. Versions are compared as Lua numbers (doubles): exact up to 2**53.
"""

from __future__ import annotations

from typing import Final

# Return codes of UPSERT_PRODUCT.
UPSERT_STALE: Final = 0
UPSERT_APPLIED: Final = 1
UPSERT_NEEDS_EMBEDDING: Final = -1

# KEYS[1] product hash, KEYS[2] version fence.
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
return 1
"""

# KEYS[1] product hash, KEYS[2] version fence. ARGV[1] version.
# The fence keeps the delete's version, so a replayed older create cannot resurrect the product.
DELETE_PRODUCT: Final = """
local version = tonumber(ARGV[1])
local fence = redis.call('GET', KEYS[2])
if fence and version <= tonumber(fence) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
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

# KEYS[1] similar:{id}, KEYS[2] product:{id}. ARGV[1] rev key prefix, ARGV[2] product id, ARGV[3] the
# list's JSON, ARGV[4] its list_version (reserved earlier by INCR on listver:{id}), ARGV[5] its K-th
# score (-1 when shorter than K), ARGV[6..] member ids.
# Fenced: a list whose version is not above the stored one changes nothing (returns 0), so a slow
# writer never overwrites a newer list. rev sets change in the same script: members that left lose
# the id, all current members hold it.
# rev keys are built in the script (not declared in KEYS): fine on one server, not on Redis Cluster.
WRITE_LIST: Final = (
    _OLD_MEMBERS
    + """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and tonumber(decoded['list_version'])
      and tonumber(decoded['list_version']) >= tonumber(ARGV[4]) then
    return 0
  end
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
-- The list's admission threshold on the product itself, for reverse-neighbour searches; never
-- creates the hash of a product deleted meanwhile.
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'kth', ARGV[5])
end
return 1
"""
)

# KEYS[1] similar:{id}. ARGV[1] rev key prefix, ARGV[2] product id. Returns 1 when a list was removed.
# The list-version counter stays, so a re-created product's list versions keep increasing.
DELETE_LIST: Final = (
    _OLD_MEMBERS
    + """
local old = old_members(KEYS[1])
for member, _ in pairs(old) do
  redis.call('SREM', ARGV[1] .. member, ARGV[2])
end
return redis.call('DEL', KEYS[1])
"""
)
