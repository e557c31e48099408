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

``contains`` and ``members`` need no temp keys at all: they read the leaves' bits
(``GETBIT`` / ``GETRANGE``) and evaluate the tree here, on Python ints.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from functools import lru_cache, reduce
from typing import TYPE_CHECKING, Literal, TypeAlias

from ._exceptions import InvalidExpression, UnsupportedOperation
from ._expr import (
    BitOpAnd,
    BitOpDiff,
    BitOpNot,
    BitOpOr,
    BitOpXor,
    Event,
    Events,
    EventsBetween,
    Expr,
    Last,
    Universe,
)
from ._periods import UTC, Period, Year, cover, to_local

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from ._keys import KeySchema

__all__ = [
    "Capabilities",
    "Command",
    "KeyRef",
    "Node",
    "Op",
    "COUNT_SCRIPT",
    "CountPlan",
    "ResolveContext",
    "complement",
    "evaluate",
    "iter_set_bits",
    "leaves_of",
    "resolve",
]

Arg: TypeAlias = "str | int | bytes"
Command: TypeAlias = "tuple[Arg, ...]"
OpName: TypeAlias = Literal["AND", "OR", "XOR"]
Moment: TypeAlias = "_dt.datetime | _dt.date"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the server's BITOP can do beyond AND/OR/XOR/NOT.

    :param diff: ``BITOP DIFF`` (Redis >= 8.2): X and not any of Y1..Yn, in one command
    :param andor: ``BITOP ANDOR`` (Redis >= 8.2): X and any of Y1..Yn, in one command
    """

    diff: bool = False
    andor: bool = False

    @classmethod
    def from_info(cls, info: Mapping[str, object]) -> Capabilities:
        """Derive capabilities from an ``INFO server`` reply (a parsed mapping).

        Only Redis itself (not Valkey or Dragonfly, which report a Redis-compatible
        ``redis_version``) has the new BITOP operations, from version 8.2 on.

        :param info: the parsed ``INFO server`` section
        """
        if "valkey_version" in info or "dragonfly_version" in info:
            return cls()
        match = re.match(r"(\d+)\.(\d+)", str(info.get("redis_version", "0.0")))
        if match is None:
            return cls()
        new = (int(match[1]), int(match[2])) >= (8, 2)
        return cls(diff=new, andor=new)


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
    :raises UnsupportedOperation: for an :class:`Event` template not bound to a period
    :raises GranularityNotTracked: for a range whose edges need hours that are not kept
    """
    if isinstance(expr, (BitOpAnd, BitOpOr, BitOpXor, BitOpDiff, BitOpNot)):
        return _resolve_op(expr, ctx)
    if isinstance(expr, Events):
        period = expr.period
        if isinstance(period, Year):
            return _nary("OR", (KeyRef(expr.event, m) for m in period.months()))
        return KeyRef(expr.event, period)
    if isinstance(expr, Universe):
        return UNIVERSE
    if isinstance(expr, EventsBetween):
        hourly = ctx.hourly if expr.hourly is None else expr.hourly
        return _range(expr.event, expr.start, expr.end, hourly, ctx)
    if isinstance(expr, Last):
        now = ctx.now if ctx.now is not None else _dt.datetime.now(ctx.tz)
        start, end = expr.window(to_local(now, ctx.tz))
        hourly = ctx.hourly if expr.hourly is None else expr.hourly
        return _range(expr.event, start, end, hourly, ctx)
    if isinstance(expr, Event):
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


COUNT_SCRIPT = """\
-- bitlens count: run a compiled CountPlan over one or more shards, atomically.
-- KEYS: for each shard, the same number of key slots (leaves, then temp keys).
-- ARGV: slots per shard, then instructions:
--   B <op> <dest> <n> <src1..srcn>   BITOP op dest srcs    (slots are 1-based)
--   C <slot>                          BITCOUNT of a slot: the next question
--   D <n> <slot1..slotn>              DEL of the temp slots
-- Returns one total per question, summed over the shards.
-- Every command runs through pcall and the DEL always runs, so a failing BITOP (e.g. OOM)
-- still deletes the temp keys made before it; the first error is returned after cleanup.
-- A script is atomic like MULTI/EXEC (nothing else runs while it does; a dropped
-- connection cannot cut it in half; replicas and the AOF receive its effects as one
-- MULTI/EXEC), and the DEL below always runs. The only way left to strand a temp key is a
-- script stopped midway by the operator (SHUTDOWN NOSAVE, a crash with no persistence
-- replaying it): for that, each temp key also gets a 60 s PEXPIRE as a safety net.
-- Nothing this script writes outlives it, so nothing is replicated or written to the AOF:
-- replicas would only redo the BITOPs to delete their results again.
redis.set_repl(redis.REPL_NONE)
local width = tonumber(ARGV[1])
local program, i = {}, 2
while i <= #ARGV do
  local code = ARGV[i]
  if code == 'B' then
    local n = tonumber(ARGV[i + 3])
    local srcs = {}
    for j = 1, n do srcs[j] = tonumber(ARGV[i + 3 + j]) end
    program[#program + 1] = {'B', ARGV[i + 1], tonumber(ARGV[i + 2]), srcs}
    i = i + 4 + n
  elseif code == 'C' then
    program[#program + 1] = {'C', tonumber(ARGV[i + 1])}
    i = i + 2
  else
    local n = tonumber(ARGV[i + 1])
    local slots = {}
    for j = 1, n do slots[j] = tonumber(ARGV[i + 1 + j]) end
    program[#program + 1] = {'D', slots}
    i = i + 2 + n
  end
end
local totals, failure = {}, nil
for base = 0, #KEYS - width, width do
  local q = 0
  for _, step in ipairs(program) do
    if step[1] == 'B' then
      local args = {'BITOP', step[2], KEYS[base + step[3]]}
      for _, src in ipairs(step[4]) do args[#args + 1] = KEYS[base + src] end
      local reply = redis.pcall(unpack(args))
      if type(reply) == 'table' and reply.err then
        failure = failure or reply
      elseif reply > 0 then
        redis.pcall('PEXPIRE', args[3], 60000)
      end
    elseif step[1] == 'C' then
      q = q + 1
      local reply = redis.pcall('BITCOUNT', KEYS[base + step[2]])
      if type(reply) == 'number' then
        totals[q] = (totals[q] or 0) + reply
      else
        totals[q] = totals[q] or 0
        failure = failure or reply
      end
    else
      local doomed = {}
      for _, slot in ipairs(step[2]) do doomed[#doomed + 1] = KEYS[base + slot] end
      redis.pcall('DEL', unpack(doomed))
    end
  end
end
if failure then return failure end
return totals
"""
"""The Lua script that answers a :class:`CountPlan` (one ``EVAL`` per node or shard)."""


@dataclass(slots=True)
class CountPlan:
    """A batch of count questions compiled once, for any shard.

    Example::

        plan = CountPlan.compile([resolve(a & b), resolve(~a)], Capabilities())
        keys = plan.keys(schema, shard=7, token="f3a9")  # that shard's slots
        command = ("EVAL", COUNT_SCRIPT, len(keys), *keys, *plan.argv)

    Slots are numbered from 1: each is a leaf bitmap or a temp key. Equal subtrees share a
    slot, across every question of the batch.

    :param caps: the server's BITOP extensions
    """

    caps: Capabilities = field(default_factory=Capabilities)
    slots: list[KeyRef | int] = field(default_factory=list)
    argv: list[str | int] = field(default_factory=list)
    questions: int = 0
    _memo: dict[Node, int] = field(default_factory=dict)
    _temps: list[int] = field(default_factory=list)

    @classmethod
    def compile(cls, nodes: Sequence[Node], caps: Capabilities | None = None) -> CountPlan:
        """Compile count questions into one plan.

        :param nodes: resolved trees, one per question
        :param caps: the server's BITOP extensions (default: none)
        """
        plan = cls(caps or Capabilities())
        plan.argv.append(0)  # slots per shard, filled in below
        for node in nodes:
            plan.argv += ["C", plan._slot(node)]
            plan.questions += 1
        if plan._temps:
            plan.argv += ["D", len(plan._temps), *plan._temps]
        plan.argv[0] = len(plan.slots)
        return plan

    @property
    def temp_count(self) -> int:
        """How many temp keys each shard needs."""
        return len(self._temps)

    def keys(self, schema: KeySchema, shard: int, token: str) -> list[str]:
        """Return the keys of ``shard``'s slots, temp keys named with ``token``.

        :param schema: the key schema
        :param shard: the shard number
        :param token: a random token unique to this query
        """
        return [
            slot.key(schema, shard)
            if isinstance(slot, KeyRef)
            else schema.temp_key(shard, token, slot)
            for slot in self.slots
        ]

    def _new_slot(self, value: KeyRef | int) -> int:
        self.slots.append(value)
        return len(self.slots)

    def _temp(self) -> int:
        slot = self._new_slot(len(self._temps))
        self._temps.append(slot)
        return slot

    def _bitop(self, op: str, sources: Sequence[int]) -> int:
        dest = self._temp()
        self.argv += ["B", op, dest, len(sources), *sources]
        return dest

    def _slot(self, node: Node) -> int:
        found = self._memo.get(node)
        if found is not None:
            return found
        if isinstance(node, KeyRef):
            slot = self._new_slot(node)
        elif node.op == "AND":
            slot = self._and(node.children)
        else:
            slot = self._bitop(node.op, [self._slot(c) for c in node.children])
        self._memo[node] = slot
        return slot

    def _and(self, children: Sequence[Node]) -> int:
        caps = self.caps
        if caps.diff:  # x & (U ^ y) == x - y: one BITOP DIFF instead of XOR + AND
            negated = [c for c in children if _is_complement(c)]
            plain = [c for c in children if not _is_complement(c)]
            if negated and plain:
                base = self._slot(plain[0] if len(plain) == 1 else Op("AND", tuple(plain)))
                gone = [self._slot(_complemented(c)) for c in negated]
                return self._bitop("DIFF", [base, *gone])
        if caps.andor:  # x & (y1 | y2 ..) in one BITOP ANDOR
            ors = [c for c in children if isinstance(c, Op) and c.op == "OR"]
            if ors:
                rest = [c for c in children if c is not ors[0]]
                x = self._slot(rest[0] if len(rest) == 1 else Op("AND", tuple(rest)))
                return self._bitop("ANDOR", [x, *(self._slot(y) for y in ors[0].children)])
        return self._bitop("AND", [self._slot(c) for c in children])


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
