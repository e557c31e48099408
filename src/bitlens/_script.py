"""The count script: the Lua program that answers a compiled count plan on the server.

Pure data and text: the script, the bounds it enforces on itself (work per call, keys per
``BITOP``) and the planner's budgets for one call, and the typed errors of its replies.
"""

from __future__ import annotations

from ._exceptions import BitlensError, CleanupFailed, QueryRejected

__all__ = [
    "BITOP_SLICE",
    "CALL_BUDGET",
    "CALL_BYTES",
    "COUNT_SCRIPT",
    "MAX_CALL_WORK",
    "script_error",
]


MAX_CALL_WORK = 100_000
"""The most key operations one count-script call may run; the script refuses more."""

CALL_BUDGET = 512
"""The key operations the planner puts in one script call (shards times work per shard).

One key operation is a bitmap read or written by a BITOP, BITCOUNT or DEL: a few µs on
sparse bitmaps, so one call blocks the server for a few ms at most. A single question over
a single shard is the smallest unit and may exceed it (up to :data:`MAX_CALL_WORK`).
"""

CALL_BYTES = 2 * 1024 * 1024
"""The bitmap bytes the planner lets one script call read per shard group (2 MiB).

Each ``BITOP`` source counts as a whole shard bitmap (``2**shard_bits / 8`` bytes, 128 KiB
by default: the most it can hold) and each ``BITCOUNT`` as a quarter of one. Measured
with ``SLOWLOG`` on Redis 6.2 and 7.0 (this machine, 2 cores): a ``BITOP`` over more than
16 sources, or over sources of unequal length (a missing key is one), runs byte by byte at
about 2 ns per input byte (an XOR of 1,000 full 128 KiB bitmaps took 245 ms in one command
on 7.0 and 473 ms on 6.2; an OR of 8,000 days would be ~2 s); ``BITCOUNT`` takes ~30 µs per
128 KiB. 2 MiB is 16 full bitmaps: **at most about 4 ms of server time per call** in that
worst case, far less on short (sparse) bitmaps. The smallest call is one 2-source step, so
with shards above 1 MiB (``shard_bits`` > 23) a call may read up to two shard bitmaps.
"""

BITOP_SLICE = 1_000
"""The most keys one ``BITOP`` (or ``DEL``) carries inside the script: Lua's ``unpack``
refuses more than ~8,000 values, so wider operations run as a chain of slices."""

_COUNT_SCRIPT_TEMPLATE = """\
-- bitlens count: answer a compiled CountPlan over one or more shards, in one atomic call.
-- KEYS: per shard, the same `width` slots: L leaves, T temp keys, then one void key.
-- ARGV: L, T, then instructions (slots are 1-based within a shard):
--   B <op> <dest> <n> <src1..srcn>   BITOP op dest srcs (run in slices of at most SLICE keys)
--   C <slot>                          BITCOUNT of a slot: the next question's answer
--   D <n> <slot1..slotn>              DEL of temp slots, right after their last reader
--   L <n> <slot1..slotn>              temp slots an earlier call of the query left (adopted:
--                                     read, then deleted like the call's own)
--   K <n> <slot1..slotn>              temp slots a later call reads: kept (with their 60 s
--                                     PEXPIRE) when this call succeeds, deleted when it fails
-- Returns one total per question, summed over the shards.
-- Every argument is checked before any command runs: a malformed or oversized call gets a
-- BITLENS-ARGS error, so no loop can be endless and no call can do more than MAX_WORK key
-- operations. Every command runs through pcall; the first failure stops the work, every
-- temp key made so far is deleted, and the failure is returned. A temp key that DEL may not
-- remove (a user without +del) is removed by a BITOP from the never-written void key
-- instead (BITOP deletes a dest whose sources are all missing), and the call fails with
-- BITLENS-CLEANUP, as it does when the safety PEXPIRE is refused.
-- The script is atomic (nothing else runs meanwhile; a dropped connection cannot cut it),
-- so no one ever sees its temp keys. Each still gets a 60 s PEXPIRE in case the operator
-- stops the script midway. Nothing it writes outlives its query (a temp kept for a later
-- call of the same query, on the same connection, is deleted by that call), so nothing is
-- replicated.
redis.set_repl(redis.REPL_NONE)
local MAX_WORK, SLICE = @MAX_WORK@, @SLICE@
local function int(v, lo, hi)
  local n = tonumber(v)
  if n == nil or n ~= math.floor(n) or n < lo or n > hi then return nil end
  return n
end
local function bad(why) return redis.error_reply('BITLENS-ARGS ' .. why) end
local nleaf, ntemp = int(ARGV[1], 0, MAX_WORK), int(ARGV[2], 0, MAX_WORK)
if not nleaf or not ntemp then return bad('the slot counts must be integers from 0') end
local width = nleaf + ntemp + 1
if #KEYS == 0 or #KEYS % width ~= 0 then
  return bad(#KEYS .. ' keys are not whole shards of ' .. width .. ' slots')
end
local shards = #KEYS / width
local OPS = {AND = 1, OR = 1, XOR = 1, DIFF = 2, ANDOR = 2}
local program, work, questions, i = {}, 0, 0, 3
while i <= #ARGV do
  local code, step = ARGV[i], nil
  if code == 'B' then
    local op = ARGV[i + 1]
    local least = OPS[op]
    local dest = int(ARGV[i + 2], nleaf + 1, nleaf + ntemp)
    local n = int(ARGV[i + 3], least or 1, #ARGV - i - 3)
    if not least or not dest or not n or (op == 'ANDOR' and n > SLICE - 3) then
      return bad('malformed BITOP at argument ' .. i)
    end
    step = {1, op, dest, {}}
    for j = 1, n do
      local src = int(ARGV[i + 3 + j], 1, nleaf + ntemp)
      if not src then return bad('bad BITOP source at argument ' .. (i + 3 + j)) end
      step[4][j] = src
    end
    work, i = work + n + 1, i + 4 + n
  elseif code == 'C' then
    local slot = int(ARGV[i + 1], 1, nleaf + ntemp)
    if not slot then return bad('bad BITCOUNT slot at argument ' .. i) end
    step, questions, work, i = {2, slot}, questions + 1, work + 1, i + 2
  elseif code == 'D' then
    local n = int(ARGV[i + 1], 1, #ARGV - i - 1)
    if not n then return bad('malformed DEL at argument ' .. i) end
    step = {3, {}}
    for j = 1, n do
      local slot = int(ARGV[i + 1 + j], nleaf + 1, nleaf + ntemp)
      if not slot then return bad('DEL of a slot that is no temp key at argument ' .. i) end
      step[2][j] = slot
    end
    work, i = work + n, i + 2 + n
  elseif code == 'L' or code == 'K' then
    local n = int(ARGV[i + 1], 1, #ARGV - i - 1)
    if not n then return bad('malformed ' .. code .. ' at argument ' .. i) end
    step = {code == 'L' and 4 or 5, {}}
    for j = 1, n do
      local slot = int(ARGV[i + 1 + j], nleaf + 1, nleaf + ntemp)
      if not slot then return bad(code .. ' of a slot that is no temp key at argument ' .. i) end
      step[2][j] = slot
    end
    work, i = work + n, i + 2 + n
  else
    return bad('unknown instruction at argument ' .. i)
  end
  if work * shards > MAX_WORK then
    return bad('more than ' .. MAX_WORK .. ' key operations in one call')
  end
  program[#program + 1] = step
end
local totals, live, keep, failure, broken = {}, {}, {}, nil, nil
for q = 1, questions do totals[q] = 0 end
-- DEL in slices; the keys of a refused slice are removed by a BITOP from their void key.
local function drop(names)
  local refused = nil
  for lo = 1, #names, SLICE do
    local part = {}
    for j = lo, math.min(#names, lo + SLICE - 1) do part[#part + 1] = names[j] end
    local reply = redis.pcall('DEL', unpack(part))
    if type(reply) == 'table' then
      refused = refused or reply.err
      for _, key in ipairs(part) do redis.pcall('BITOP', 'OR', key, live[key]) end
    end
    for _, key in ipairs(part) do live[key] = nil end
  end
  return refused
end
for base = 0, #KEYS - width, width do
  local void, q = KEYS[base + width], 0
  for _, step in ipairs(program) do
    if step[1] == 1 then
      local dest, srcs, j = KEYS[base + step[3]], step[4], 1
      repeat
        local args = {'BITOP', step[2], dest}
        if j > 1 then args[4] = dest end
        while j <= #srcs and #args < SLICE do
          args[#args + 1] = KEYS[base + srcs[j]]
          j = j + 1
        end
        local reply = redis.pcall(unpack(args))
        if type(reply) == 'table' then failure = reply; break end
        if reply > 0 then
          live[dest] = void
          local set = redis.pcall('PEXPIRE', dest, 60000)
          if type(set) == 'table' then broken = {1, 'PEXPIRE', set.err}; break end
        else
          live[dest] = nil
        end
      until j > #srcs
    elseif step[1] == 4 then
      for _, slot in ipairs(step[2]) do live[KEYS[base + slot]] = void end
    elseif step[1] == 5 then
      for _, slot in ipairs(step[2]) do keep[KEYS[base + slot]] = true end
    elseif step[1] == 2 then
      q = q + 1
      local reply = redis.pcall('BITCOUNT', KEYS[base + step[2]])
      if type(reply) == 'table' then failure = reply else totals[q] = totals[q] + reply end
    else
      local names = {}
      for _, slot in ipairs(step[2]) do
        local key = KEYS[base + slot]
        if live[key] then names[#names + 1] = key end
      end
      local refused = drop(names)
      if refused then broken = {#names, 'DEL', refused} end
    end
    if failure or broken then break end
  end
  if failure or broken then break end
end
local rest = {}
for key in pairs(live) do
  if failure or broken or not keep[key] then rest[#rest + 1] = key end
end
if #rest > 0 then
  local refused = drop(rest)
  if refused and not broken then broken = {#rest, 'DEL', refused} end
end
if broken then
  return redis.error_reply(
    'BITLENS-CLEANUP ' .. broken[1] .. ' ' .. broken[2] .. ' refused: ' .. tostring(broken[3]))
end
if failure then return failure end
return totals
"""

COUNT_SCRIPT = _COUNT_SCRIPT_TEMPLATE.replace("@MAX_WORK@", str(MAX_CALL_WORK)).replace(
    "@SLICE@", str(BITOP_SLICE)
)
"""The Lua script that answers a :class:`CountPlan` (one ``EVAL`` per call)."""

_ARGS_ERROR = "BITLENS-ARGS "
_CLEANUP_ERROR = "BITLENS-CLEANUP "


def script_error(message: str) -> BitlensError | None:
    """Return the typed error for an error reply of :data:`COUNT_SCRIPT`, else ``None``.

    :param message: the error reply's text (``str()`` of redis-py's ``ResponseError``)
    """
    if message.startswith(_CLEANUP_ERROR):
        count, _, reason = message[len(_CLEANUP_ERROR) :].partition(" ")
        return CleanupFailed(int(count) if count.isdigit() else 0, reason)
    if message.startswith(_ARGS_ERROR):
        return QueryRejected(message[len(_ARGS_ERROR) :])
    return None
