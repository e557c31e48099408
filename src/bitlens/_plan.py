r"""The planner: expressions and questions to Redis commands (pure, no I/O).

An expression is first *resolved* into a small tree of bitmap operations over concrete
keys: ``YearEvents`` becomes the OR of its months, a range the OR of its covering periods,
and same-operator children flatten. Complements use the **universe** ``U`` of the shard
(every id ever marked, written in the same transaction as each mark), so every bitmap
under the prefix is a subset of ``U``. That invariant makes the complement one exact XOR::

    ~x      = U ^ x                (x is inside U)
    a - b   = a & (U ^ b)          (so (a - b) & c is one AND of a, c and U ^ b)
    BitOpNot(x, universe=v) = v & (U ^ x)

Never Redis' bare ``BITOP NOT``, whose padding bits would stand for ids that do not exist.

A :class:`CountPlan` compiles a batch of trees once, independent of the shard, into
instructions over numbered key slots. The executor sends it as one ``EVAL`` of
:data:`COUNT_SCRIPT` per node (standalone: all shards in one call), with each shard's keys.
The script runs the ``BITOP``\ s into temp keys named with the shard's hash tag, sums the
``BITCOUNT``\ s per question, and deletes every temp key before it returns, so no temp key
outlives the atomic script that made it (see :data:`COUNT_SCRIPT` for failures).

No call may block the server for long: :meth:`CountPlan.calls` cuts a plan whose work on
one shard exceeds :data:`CALL_BYTES` (bytes of bitmap input) or :data:`CALL_BUDGET` (key
operations) into several calls, sent one after another in the same pipeline; a temp key
one call makes and a later one reads is kept between them (with its 60 s ``PEXPIRE``) and
deleted by the call that reads it last.

``contains`` and ``members`` need no temp keys at all: they read the leaves' bits
(``GETBIT`` / ``GETRANGE``) and evaluate the tree here, on Python ints.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from functools import lru_cache, reduce
from typing import TYPE_CHECKING, Literal, TypeAlias

from ._exceptions import (
    BitlensError,
    CleanupFailed,
    GranularityNotTracked,
    InvalidExpression,
    QueryRejected,
    UnsupportedOperation,
)
from ._expr import (
    BitOpAnd,
    BitOpDiff,
    BitOpNot,
    BitOpOr,
    BitOpXor,
    EventsBetween,
    EventTemplate,
    Expr,
    Last,
    PeriodEvents,
    Universe,
)
from ._periods import UTC, Period, Year, cover, to_local

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from ._keys import KeySchema

__all__ = [
    "BITOP_SLICE",
    "CALL_BUDGET",
    "CALL_BYTES",
    "MAX_CALL_WORK",
    "Capabilities",
    "Command",
    "KeyRef",
    "Node",
    "Op",
    "COUNT_SCRIPT",
    "CountPlan",
    "ResolveContext",
    "ScriptCall",
    "complement",
    "evaluate",
    "iter_set_bits",
    "leaves_of",
    "plan_counts",
    "resolve",
    "script_error",
]

Arg: TypeAlias = "str | int | bytes"
Command: TypeAlias = "tuple[Arg, ...]"
OpName: TypeAlias = Literal["AND", "OR", "XOR"]
Moment: TypeAlias = "_dt.datetime | _dt.date"


_PROBED_OPS = ("DIFF", "ANDOR")
"""The BITOP operations probed, in the order of :meth:`Capabilities.probe_commands`."""

# Replies that settle a probe: the server does not know the operation (``ERR syntax error``
# on Redis < 8.2 and Valkey), the command, or its arity, or the user may not run it. Any
# other error (OOM, LOADING, READONLY, BUSY ...) says nothing about the server: probe again.
_REFUSALS = ("syntax error", "unknown command", "wrong number of arguments", "NOPERM", "no perm")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the server's BITOP can do beyond AND/OR/XOR/NOT.

    A tracker learns them once per connection pool by sending the operations themselves
    (:meth:`probe_commands`), never from a version string: Valkey reports a Redis-like
    ``redis_version`` but lacks them. State them to skip the probe::

        Tracker(url, capabilities=Capabilities(diff=True, andor=True))  # Redis >= 8.2

    :param diff: ``BITOP DIFF`` (Redis >= 8.2): X and not any of Y1..Yn, in one command
    :param andor: ``BITOP ANDOR`` (Redis >= 8.2): X and any of Y1..Yn, in one command
    """

    diff: bool = False
    andor: bool = False

    @staticmethod
    def probe_commands(key: str) -> list[Command]:
        """Return the commands that probe each operation on ``key``, a key that does not exist.

        ``BITOP <op> key key key`` over missing sources writes nothing (an empty result
        deletes the destination, which does not exist either), so the probe leaves no key
        and is not replicated; a server without the operation answers ``ERR syntax error``.

        :param key: a key under the tracker's prefix that holds nothing (a fresh temp key)
        """
        return [("BITOP", op, key, key, key) for op in _PROBED_OPS]

    @classmethod
    def from_probe(cls, replies: Sequence[object]) -> Capabilities | None:
        """Read the replies to :meth:`probe_commands`; ``None`` if they settle nothing.

        An integer reply means the operation exists; a syntax error, an unknown command or
        an ACL refusal means the tracker must do without it. Any other reply (an error such
        as ``OOM`` or ``LOADING``, a missing reply) leaves the question open.

        :param replies: the replies in order; error replies as exception objects
        """
        if len(replies) != len(_PROBED_OPS):
            return None
        found: list[bool] = []
        for reply in replies:
            if isinstance(reply, int) and not isinstance(reply, bool):
                found.append(True)
            elif isinstance(reply, Exception) and any(r in str(reply) for r in _REFUSALS):
                found.append(False)
            else:
                return None
        return cls(diff=found[0], andor=found[1])


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A concrete bitmap, independent of the shard: an event in a period, or the universe.

    :param event: the event name; ``None`` for the universe of marked ids
    :param period: an Hour, Day, Week or Month; ``None`` for UniqueEvents or the universe
    """

    event: str | None
    period: Period | None

    def key(self, schema: KeySchema, shard: int) -> str:
        """Return this bitmap's key in ``shard``.

        :param schema: the key schema
        :param shard: the shard number
        """
        if self.event is None:
            return schema.universe_key(shard)
        return schema.event_key(self.event, self.period, shard)


@dataclass(frozen=True, slots=True)
class Op:
    """A bitmap operation over resolved children (the complement is ``XOR`` with U)."""

    op: OpName
    children: tuple[Node, ...]


Node: TypeAlias = "KeyRef | Op"

UNIVERSE = KeyRef(None, None)


@lru_cache(maxsize=1 << 14)
def _sort_key(node: Node) -> str:
    # Any total order works (it only makes equal sets of children share a temp key); a
    # node's repr is stable across processes. Cached: big batches sort the same leaves a lot.
    return repr(node)


def _nary(op: Literal["AND", "OR", "XOR"], children: Iterable[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        if isinstance(child, Op) and child.op == op:
            flat.extend(child.children)
        else:
            flat.append(child)
    if op != "XOR":  # x & x == x, x | x == x; sort so equal sets share a temp key
        flat = sorted(dict.fromkeys(flat), key=_sort_key)
    if len(flat) == 1:
        return flat[0]
    return Op(op, tuple(flat))


@dataclass(frozen=True, slots=True)
class ResolveContext:
    """What resolving a range needs from the tracker.

    :param tz: the tracker's time zone
    :param hourly: whether hour bitmaps are written by default
    :param now: the current time for rolling windows (default: the clock, in ``tz``)
    """

    tz: _dt.tzinfo = UTC
    hourly: bool = False
    now: _dt.datetime | None = None


_DEFAULT_CONTEXT = ResolveContext()


def _range(event: str, start: Moment, end: Moment, hourly: bool, ctx: ResolveContext) -> Node:
    return _nary("OR", (KeyRef(event, p) for p in cover(start, end, ctx.tz, hourly=hourly)))


def resolve(expr: Expr, ctx: ResolveContext = _DEFAULT_CONTEXT) -> Node:
    """Resolve an expression into a tree of operations over concrete bitmaps.

    :param expr: any bitlens expression
    :param ctx: the time zone, hourly setting and clock that ranges are resolved with
    :raises InvalidExpression: for an object that is not a bitlens expression
    :raises UnsupportedOperation: for an :class:`EventTemplate` not bound to a period
    :raises GranularityNotTracked: for a range whose edges need hours that are not kept
    """
    if isinstance(expr, (BitOpAnd, BitOpOr, BitOpXor, BitOpDiff, BitOpNot)):
        return _resolve_op(expr, ctx)
    if isinstance(expr, PeriodEvents):
        period = expr.in_zone(ctx.tz).period
        if isinstance(period, Year):
            return _nary("OR", (KeyRef(expr.event, m) for m in period.months()))
        return KeyRef(expr.event, period)
    if isinstance(expr, Universe):
        return UNIVERSE
    if isinstance(expr, EventsBetween):
        hourly = ctx.hourly if expr.hourly is None else expr.hourly
        return _range(expr.event, expr.start, expr.end, hourly, ctx)
    if isinstance(expr, Last):
        hourly = ctx.hourly if expr.hourly is None else expr.hourly
        if expr.hours and not hourly:
            # Refused whatever the clock says: a window that happens to fall on midnights
            # would count, one hour later the same call would raise.
            raise GranularityNotTracked(
                f"{expr!r} reads hour bitmaps, which this tracker does not write: create it "
                f"with Tracker(..., track_hourly=True) (marks made before that have no hour "
                f"bits), pass hourly=True if your marks set them, or use days=N"
            )
        now = ctx.now if ctx.now is not None else _dt.datetime.now(ctx.tz)
        start, end = expr.window(to_local(now, ctx.tz))
        return _range(expr.event, start, end, hourly, ctx)
    if isinstance(expr, EventTemplate):
        raise UnsupportedOperation(
            f"{expr!r} is a template without a period: bind it first with .at(period), "
            f"e.g. {expr!r}.at(Day(2026, 11, 27)) or .at(Week(2026, 48))"
        )
    raise InvalidExpression(expr)


def _resolve_op(
    expr: BitOpAnd | BitOpOr | BitOpXor | BitOpDiff | BitOpNot, ctx: ResolveContext
) -> Node:
    def sub(e: Expr) -> Node:
        return resolve(e, ctx)

    if isinstance(expr, BitOpAnd):
        return _nary("AND", map(sub, expr.operands))
    if isinstance(expr, BitOpOr):
        return _nary("OR", map(sub, expr.operands))
    if isinstance(expr, BitOpXor):
        return _nary("XOR", map(sub, expr.operands))
    if isinstance(expr, BitOpDiff):
        gone = _nary("OR", map(sub, expr.subtract))
        return _nary("AND", (sub(expr.base), complement(gone)))
    if isinstance(expr.universe, Universe):
        return complement(sub(expr.operand))
    return _nary("AND", (sub(expr.universe), complement(sub(expr.operand))))


def complement(node: Node) -> Node:
    """Return the complement of ``node`` within the universe: ``U ^ node``.

    Exact because every bitmap under the prefix is a subset of the universe.

    :param node: a resolved tree
    """
    if isinstance(node, Op) and node.op == "XOR" and UNIVERSE in node.children:
        rest = list(node.children)
        rest.remove(UNIVERSE)  # U ^ (U ^ x) == x
        return rest[0] if len(rest) == 1 else Op("XOR", tuple(rest))
    return Op("XOR", (UNIVERSE, node))


def leaves_of(node: Node) -> tuple[KeyRef, ...]:
    """Return the distinct bitmaps a resolved tree reads, in first-seen order.

    :param node: a resolved tree
    """
    seen: dict[KeyRef, None] = {}

    def walk(n: Node) -> None:
        if isinstance(n, KeyRef):
            seen[n] = None
        else:
            for child in n.children:
                walk(child)

    walk(node)
    return tuple(seen)


def evaluate(node: Node, values: Mapping[KeyRef, int]) -> int:
    """Evaluate a resolved tree over bit vectors held as non-negative Python ints.

    Used for ``contains`` (each value is one bit, 0 or 1) and ``members`` (each value is a
    chunk of a bitmap). The complement is ``U ^ x``, so no mask is ever needed.

    :param node: a resolved tree
    :param values: the value of every leaf of the tree
    """
    if isinstance(node, KeyRef):
        return values[node]
    parts = [evaluate(child, values) for child in node.children]
    if node.op == "AND":
        return reduce(int.__and__, parts)
    if node.op == "OR":
        return reduce(int.__or__, parts)
    return reduce(int.__xor__, parts)


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


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One script call of a :class:`CountPlan`: its own slots, program and answers.

    A call's slots are the plan's leaves and temp keys it touches (then a void key), so a
    call's keys stay few however wide the plan. Send every call of a plan in order, each
    over the same shards (in groups of :meth:`shards_per_call`), on one connection.

    :param leaves: the plan's leaf indexes, in this call's slot order
    :param temps: the plan's temp numbers, in this call's slot order
    :param void: the temp number naming the never-written void key
    :param argv: the script's arguments
    :param questions: the plan's questions (0-based) this call answers, in reply order
    :param kept: the temp numbers this call leaves for a later call
    :param work: key operations per shard (see :data:`CALL_BUDGET`)
    :param cost: bitmap bytes read per shard (see :data:`CALL_BYTES`)
    """

    leaves: tuple[int, ...]
    temps: tuple[int, ...]
    void: int
    argv: tuple[str | int, ...]
    questions: tuple[int, ...]
    kept: tuple[int, ...]
    work: int
    cost: int

    def keys(self, plan: CountPlan, schema: KeySchema, shard: int, token: str) -> list[str]:
        """Return the keys of this call's slots in ``shard``.

        :param plan: the plan this call belongs to
        :param schema: the key schema
        :param shard: the shard number
        :param token: the query's random token (names its temp keys)
        """
        keys = [plan.leaves[i].key(schema, shard) for i in self.leaves]
        keys += [schema.temp_key(shard, token, n) for n in (*self.temps, self.void)]
        return keys

    def shards_per_call(self, budget: int = CALL_BUDGET, byte_budget: int = CALL_BYTES) -> int:
        """How many shards one script call covers within both budgets (at least one).

        :param budget: key operations per call
        :param byte_budget: bitmap bytes per call
        """
        return max(1, min(budget // max(1, self.work), byte_budget // max(1, self.cost)))


def _step_cost(code: str, sources: int, shard_bytes: int) -> int:
    return max(1, shard_bytes // 4) if code == "C" else sources * shard_bytes


# A reference to a slot while compiling: a leaf's index (>= 0) or ~index of a temp (< 0).
_Ref: TypeAlias = int
_Step: TypeAlias = "tuple[str, _Ref, tuple[_Ref, ...]]"  # (op or "C", dest or counted, srcs)


@dataclass(slots=True)
class CountPlan:
    """A batch of count questions compiled once, for any shard: one script call's program.

    Example::

        plan = CountPlan.compile([resolve(a & b), resolve(~a)], Capabilities())
        keys = plan.keys(schema, shard=7, token="f3a9")  # that shard's slots
        command = ("EVAL", COUNT_SCRIPT, len(keys), *keys, *plan.argv)

    Slots are numbered from 1 in each shard: the leaf bitmaps first, then the temp keys,
    then one void key that is never written. Equal subtrees share a slot across every
    question of the plan, and each temp key is deleted right after its last reader.

    :param caps: the server's BITOP extensions
    :param leaves: the bitmaps read, in slot order
    :param temp_count: how many temp keys each shard needs
    :param argv: the script's arguments
    :param questions: how many questions the plan answers (one total each)
    :param work: key operations per shard (see :data:`CALL_BUDGET`)
    :param indexes: for a plan made by :func:`plan_counts`, which questions of the batch
        it answers, in order
    """

    caps: Capabilities = field(default_factory=Capabilities)
    leaves: list[KeyRef] = field(default_factory=list)
    temp_count: int = 0
    argv: list[str | int] = field(default_factory=list)
    questions: int = 0
    work: int = 0
    indexes: tuple[int, ...] = ()
    _memo: dict[Node, _Ref] = field(default_factory=dict)
    _leaf_index: dict[KeyRef, int] = field(default_factory=dict)
    _program: list[_Step] = field(default_factory=list)

    @classmethod
    def compile(cls, nodes: Sequence[Node], caps: Capabilities | None = None) -> CountPlan:
        """Compile count questions into one plan (one script call per group of shards).

        :param nodes: resolved trees, one per question
        :param caps: the server's BITOP extensions (default: none)
        """
        plan = cls(caps or Capabilities())
        for node in nodes:
            plan._program.append(("C", plan._slot(node), ()))
            plan.questions += 1
        plan.indexes = tuple(range(plan.questions))
        plan._emit()
        return plan

    @property
    def width(self) -> int:
        """Key slots per shard: the leaves, the temp keys and the void key."""
        return len(self.leaves) + self.temp_count + 1

    def shards_per_call(self, budget: int = CALL_BUDGET) -> int:
        """How many shards one script call of this plan covers within ``budget``.

        :param budget: key operations per call
        """
        return max(1, budget // max(1, self.work))

    def cost(self, shard_bytes: int) -> int:
        """Bitmap bytes one shard of this plan reads (see :data:`CALL_BYTES`).

        :param shard_bytes: the size of a full shard bitmap
        """
        return sum(
            _step_cost(code, len(sources), shard_bytes) for code, _, sources in self._program
        )

    def calls(
        self, shard_bytes: int, byte_budget: int = CALL_BYTES, budget: int = CALL_BUDGET
    ) -> list[ScriptCall]:
        """Cut this plan into script calls of at most ``byte_budget`` bytes per shard.

        A plan within both budgets is one call (its :attr:`argv`). Otherwise a ``BITOP``
        over more sources than a call may read becomes a chain (``dest = op(dest, more)``;
        a wide ``ANDOR`` an ``OR`` chain and an ``AND``), and the steps are packed in order
        into calls of at most ``byte_budget`` bytes and ``budget`` key operations per
        shard. So a question reading ``n`` full bitmaps per shard takes about
        ``ceil(n * shard_bytes / byte_budget)`` calls per shard (an OR of 8,000 days over
        128 KiB shards: ~500 calls of ~4 ms at most, instead of one of ~2 s); the calls of
        every shard ride in the same round trip per node.

        :param shard_bytes: the size of a full shard bitmap (``2**shard_bits / 8``)
        :param byte_budget: bitmap bytes per call and shard
        :param budget: key operations per call and shard
        """
        if self.cost(shard_bytes) <= byte_budget and self.work <= budget:
            return [
                ScriptCall(
                    leaves=tuple(range(len(self.leaves))),
                    temps=tuple(range(self.temp_count)),
                    void=self.temp_count,
                    argv=tuple(self.argv),
                    questions=tuple(range(self.questions)),
                    kept=(),
                    work=self.work,
                    cost=self.cost(shard_bytes),
                )
            ]
        return _split(self, shard_bytes, byte_budget, budget)

    def keys(self, schema: KeySchema, shard: int, token: str) -> list[str]:
        """Return the keys of ``shard``'s slots, temp and void keys named with ``token``.

        :param schema: the key schema
        :param shard: the shard number
        :param token: a random token unique to this query
        """
        keys = [leaf.key(schema, shard) for leaf in self.leaves]
        keys += [schema.temp_key(shard, token, n) for n in range(self.temp_count + 1)]
        return keys

    def _emit(self) -> None:
        leaves = len(self.leaves)

        def number(ref: _Ref) -> int:
            return ref + 1 if ref >= 0 else leaves + 1 + ~ref

        last: dict[_Ref, int] = {}
        for at, (code, target, sources) in enumerate(self._program):
            if code != "C" and target not in last:
                last[target] = at  # (read later, so overwritten below)
            for ref in (target,) if code == "C" else sources:
                if ref < 0:
                    last[ref] = at
        frees: dict[int, list[int]] = {}
        for ref, at in last.items():
            frees.setdefault(at, []).append(number(ref))
        argv: list[str | int] = [leaves, self.temp_count]
        work = 0
        for at, (code, target, sources) in enumerate(self._program):
            if code == "C":
                argv += ["C", number(target)]
                work += 1
            else:
                argv += ["B", code, number(target), len(sources), *map(number, sources)]
                work += len(sources) + 1
            freed = frees.get(at)
            if freed:
                argv += ["D", len(freed), *sorted(freed)]
                work += len(freed)
        self.argv = argv
        self.work = work

    def _temp(self) -> _Ref:
        self.temp_count += 1
        return ~(self.temp_count - 1)

    def _bitop(self, op: str, sources: Sequence[_Ref]) -> _Ref:
        dest = self._temp()
        self._program.append((op, dest, tuple(sources)))
        return dest

    def _slot(self, node: Node) -> _Ref:
        found = self._memo.get(node)
        if found is not None:
            return found
        if isinstance(node, KeyRef):
            ref = self._leaf_index.get(node)
            if ref is None:
                ref = self._leaf_index[node] = len(self.leaves)
                self.leaves.append(node)
        elif node.op == "AND":
            ref = self._and(node.children)
        else:
            ref = self._bitop(node.op, [self._slot(c) for c in node.children])
        self._memo[node] = ref
        return ref

    def _and(self, children: Sequence[Node]) -> _Ref:
        caps = self.caps
        if caps.diff:  # x & (U ^ y) == x - y: one BITOP DIFF instead of XOR + AND
            negated = [c for c in children if _is_complement(c)]
            plain = [c for c in children if not _is_complement(c)]
            if negated and plain:
                base = self._slot(plain[0] if len(plain) == 1 else Op("AND", tuple(plain)))
                gone = [self._slot(_complemented(c)) for c in negated]
                return self._bitop("DIFF", [base, *gone])
        if caps.andor:  # x & (y1 | y2 ..) in one BITOP ANDOR (not sliceable: kept small)
            ors = [
                c
                for c in children
                if isinstance(c, Op) and c.op == "OR" and len(c.children) < BITOP_SLICE - 4
            ]
            if ors:
                rest = [c for c in children if c is not ors[0]]
                x = self._slot(rest[0] if len(rest) == 1 else Op("AND", tuple(rest)))
                return self._bitop("ANDOR", [x, *(self._slot(y) for y in ors[0].children)])
        return self._bitop("AND", [self._slot(c) for c in children])


def _split(plan: CountPlan, shard_bytes: int, byte_budget: int, budget: int) -> list[ScriptCall]:
    """Cut ``plan``'s program into bounded calls (see :meth:`CountPlan.calls`)."""
    most = max(2, min(BITOP_SLICE, budget - 2, byte_budget // max(1, shard_bytes)))
    temps = plan.temp_count
    steps: list[_Step] = []

    def chain(op: str, dest: _Ref, sources: Sequence[_Ref]) -> None:
        steps.append((op, dest, tuple(sources[:most])))
        rest = sources[most:]
        while rest:
            steps.append((op, dest, (dest, *rest[: most - 1])))
            rest = rest[most - 1 :]

    for code, target, sources in plan._program:
        if code == "C":
            steps.append((code, target, sources))
        elif code == "ANDOR" and len(sources) > most:
            ored = ~temps
            temps += 1
            chain("OR", ored, sources[1:])
            steps.append(("AND", target, (sources[0], ored)))
        else:
            chain(code, target, sources)
    # Pack the steps into calls.
    cuts: list[list[_Step]] = [[]]
    cost = work = 0
    for step in steps:
        code, _, sources = step
        step_cost = _step_cost(code, len(sources), shard_bytes)
        step_work = 1 if code == "C" else len(sources) + 2  # + its DEL
        if cuts[-1] and (cost + step_cost > byte_budget or work + step_work > budget):
            cuts.append([])
            cost = work = 0
        cuts[-1].append(step)
        cost += step_cost
        work += step_work
    # Where each temp is read last (a chain's own dest counts as read by the next link).
    last: dict[_Ref, tuple[int, int]] = {}
    for c, cut in enumerate(cuts):
        for at, (code, target, sources) in enumerate(cut):
            for ref in (target,) if code == "C" else (target, *sources):
                if ref < 0:
                    last[ref] = (c, at)
    calls: list[ScriptCall] = []
    made: set[_Ref] = set()  # temps an earlier call made
    question = 0
    for c, cut in enumerate(cuts):
        leaf_refs: dict[int, None] = {}
        temp_refs: dict[_Ref, None] = {}
        for code, target, sources in cut:
            for ref in (target,) if code == "C" else (target, *sources):
                if ref >= 0:
                    leaf_refs[ref] = None
                else:
                    temp_refs[ref] = None
        leaves = sorted(leaf_refs)
        temp_list = sorted(temp_refs, key=lambda r: ~r)
        slot = {ref: n + 1 for n, ref in enumerate(leaves)}
        slot.update({ref: len(leaves) + 1 + n for n, ref in enumerate(temp_list)})
        argv: list[str | int] = [len(leaves), len(temp_list)]
        adopted = [slot[r] for r in temp_list if r in made]
        if adopted:
            argv += ["L", len(adopted), *adopted]
        answers: list[int] = []
        work = len(adopted)
        cost = 0
        for at, (code, target, sources) in enumerate(cut):
            if code == "C":
                argv += ["C", slot[target]]
                answers.append(question)
                question += 1
                work += 1
            else:
                argv += ["B", code, slot[target], len(sources), *(slot[r] for r in sources)]
                work += len(sources) + 1
            cost += _step_cost(code, len(sources), shard_bytes)
            freed = sorted(slot[r] for r in temp_list if last[r] == (c, at))
            if freed:
                argv += ["D", len(freed), *freed]
                work += len(freed)
        kept = [r for r in temp_list if last[r][0] > c]
        if kept:
            argv += ["K", len(kept), *(slot[r] for r in kept)]
            work += len(kept)
        made.update(kept)
        calls.append(
            ScriptCall(
                leaves=tuple(leaves),
                temps=tuple(~r for r in temp_list),
                void=temps,
                argv=tuple(argv),
                questions=tuple(answers),
                kept=tuple(~r for r in kept),
                work=work,
                cost=cost,
            )
        )
    return calls


def _new_work(node: Node, seen: set[Node], added: set[Node]) -> int:
    """Estimate the key operations ``node`` adds to a plan that already computes ``seen``."""
    if isinstance(node, KeyRef) or node in seen or node in added:
        return 0
    added.add(node)
    return len(node.children) + 2 + sum(_new_work(c, seen, added) for c in node.children)


def plan_counts(
    nodes: Sequence[Node], caps: Capabilities | None = None, budget: int = CALL_BUDGET
) -> list[CountPlan]:
    """Split a batch of count questions into plans of about ``budget`` work per shard.

    Consecutive questions share a plan (and its equal subtrees) while the plan's work per
    shard stays within ``budget``; a question alone over budget gets a plan of its own.
    Each plan's :attr:`CountPlan.indexes` says which questions of the batch it answers.

    :param nodes: resolved trees, one per question
    :param caps: the server's BITOP extensions (default: none)
    :param budget: key operations per shard and plan
    :raises UnsupportedOperation: for a question needing more than :data:`MAX_CALL_WORK`
        key operations on one shard, before anything is sent
    """
    chunks: list[list[int]] = []
    current: list[int] = []
    seen: set[Node] = set()
    work = 0
    for index, node in enumerate(nodes):
        added: set[Node] = set()
        extra = 1 + _new_work(node, seen, added)
        if current and work + extra > budget:
            chunks.append(current)
            current, seen, work = [], set(), 0
            added = set()
            extra = 1 + _new_work(node, seen, added)
        current.append(index)
        seen |= added
        work += extra
    if current:
        chunks.append(current)
    plans: list[CountPlan] = []
    for chunk in chunks:
        plan = CountPlan.compile([nodes[i] for i in chunk], caps)
        if plan.work > MAX_CALL_WORK:
            raise UnsupportedOperation(
                f"a question reading {plan.work} bitmaps per shard is too large (at most "
                f"{MAX_CALL_WORK}): split it, or use ranges (EventsBetween) and coarser periods"
            )
        plan.indexes = tuple(chunk)
        plans.append(plan)
    return plans


def _is_complement(node: Node) -> bool:
    return (
        isinstance(node, Op)
        and node.op == "XOR"
        and len(node.children) == 2
        and UNIVERSE in node.children
    )


def _complemented(node: Node) -> Node:
    assert isinstance(node, Op)
    return node.children[1] if node.children[0] == UNIVERSE else node.children[0]


_BITS_OF_BYTE: tuple[tuple[int, ...], ...] = tuple(
    tuple(i for i in range(8) if byte & (0x80 >> i)) for byte in range(256)
)
_NONZERO_RUNS = re.compile(rb"[^\x00]+")


def iter_set_bits(data: bytes, first_bit: int = 0) -> Iterator[int]:
    """Yield the offsets of the set bits of a Redis bitmap slice, ascending.

    Redis numbers bits most-significant first: bit 0 is ``0x80`` of byte 0.

    :param data: bytes of a bitmap (e.g. a GETRANGE reply)
    :param first_bit: the bit offset of ``data[0]``'s first bit
    """
    for run in _NONZERO_RUNS.finditer(data):
        offset = first_bit + run.start() * 8
        for byte in run.group():
            for i in _BITS_OF_BYTE[byte]:
                yield offset + i
            offset += 8
