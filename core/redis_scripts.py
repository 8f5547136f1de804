"""Lua scripts that make the read-modify-write steps atomic on the Redis server (design.md §3).

Version fencing rule: a write applies only when its version is strictly greater than the fence
``ver:{id}`` (the highest version seen, deletes included). Older OR EQUAL versions change nothing, so a
replayed record is a no-op. Versions are compared as Lua numbers (doubles): exact up to 2**53.

The list protocol's scripts live with it, in core/list_store.py.
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
