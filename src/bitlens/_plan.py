"""The planner: expressions and questions to per-shard Redis command lists (pure, no I/O).

An expression is first *resolved* into a small tree of bitmap operations over concrete
keys (``YearEvents`` becomes the OR of its months, ``~x`` becomes ``universe - x``, and
same-operator children flatten). A :class:`ShardProgram` then turns questions about that
tree into the commands of one shard: ``BITOP`` into temp keys named with the shard's hash
tag, the question itself (``BITCOUNT``), then one ``DEL`` of every temp key. The executor
sends each program inside MULTI/EXEC, so a temp key never outlives the transaction that
made it. Equal subtrees share one temp key, across every question of a batch.

``contains`` and ``members`` need no temp keys at all: they read the leaves' bits
(``GETBIT`` / ``GETRANGE``) and evaluate the tree here, on Python ints.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from functools import reduce
from typing import TYPE_CHECKING, Literal, TypeAlias

from ._exceptions import InvalidExpression
from ._expr import (
    BitOpAnd,
    BitOpDiff,
    BitOpNot,
    BitOpOr,
    BitOpXor,
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
    "ResolveContext",
    "ShardProgram",
    "evaluate",
    "iter_set_bits",
    "leaves_of",
    "resolve",
]

Arg: TypeAlias = "str | int | bytes"
Command: TypeAlias = "tuple[Arg, ...]"
OpName: TypeAlias = Literal["AND", "OR", "XOR", "DIFF"]
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
    """A bitmap operation over resolved children.

    ``DIFF`` is ``children[0]`` minus the union of the rest.
    """

    op: OpName
    children: tuple[Node, ...]


Node: TypeAlias = "KeyRef | Op"

UNIVERSE = KeyRef(None, None)


def _sort_key(node: Node) -> str:
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
        return _range(expr.event, start, end, ctx.hourly or bool(expr.hours), ctx)
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
        subtract = _nary("OR", map(sub, expr.subtract))
        rest = (
            subtract.children if isinstance(subtract, Op) and subtract.op == "OR" else (subtract,)
        )
        return Op("DIFF", (sub(expr.base), *rest))
    return Op("DIFF", (sub(expr.universe), sub(expr.operand)))


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
    chunk of a bitmap). No bare NOT exists in a resolved tree, so no mask is needed.

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
    if node.op == "XOR":
        return reduce(int.__xor__, parts)
    return parts[0] & ~reduce(int.__or__, parts[1:])


@dataclass(slots=True)
class ShardProgram:
    """The commands of one shard for one query or a batch of queries.

    Example::

        program = ShardProgram(schema, shard=0, token="f3a9", caps=Capabilities())
        index = program.bitcount(resolve(a & b))   # BITOP AND tmp a b; BITCOUNT tmp
        commands = program.finish()                # ... DEL tmp

    The reply to ``commands[index]`` is the answer. ``finish()`` appends the ``DEL`` of every
    temp key, so the executor must send the whole list in one MULTI/EXEC.
    """

    schema: KeySchema
    shard: int
    token: str
    caps: Capabilities = field(default_factory=Capabilities)
    commands: list[Command] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)
    _memo: dict[Node, str] = field(default_factory=dict)
    _finished: bool = False

    def _temp(self) -> str:
        key = self.schema.temp_key(self.shard, self.token, len(self.temps))
        self.temps.append(key)
        return key

    def _bitop(self, op: str, sources: Sequence[str]) -> str:
        dest = self._temp()
        self.commands.append(("BITOP", op, dest, *sources))
        return dest

    def key_for(self, node: Node) -> str:
        """Return a key holding ``node``'s bitmap, emitting the BITOPs that compute it.

        :param node: a resolved tree
        """
        if isinstance(node, KeyRef):
            return node.key(self.schema, self.shard)
        cached = self._memo.get(node)
        if cached is not None:
            return cached
        if node.op == "DIFF":
            key = self._diff(node.children[0], node.children[1:])
        elif node.op == "AND" and self.caps.andor:
            key = self._and_with_andor(node.children)
        else:
            key = self._bitop(node.op, [self.key_for(c) for c in node.children])
        self._memo[node] = key
        return key

    def _diff(self, base: Node, subtract: Sequence[Node]) -> str:
        base_key = self.key_for(base)
        sub_keys = [self.key_for(s) for s in subtract]
        if self.caps.diff:
            return self._bitop("DIFF", [base_key, *sub_keys])
        # X - Y == X ^ (X & Y): exact whatever the lengths, and without BITOP NOT, whose
        # padding bits would stand for ids that do not exist.
        union = sub_keys[0] if len(sub_keys) == 1 else self._bitop("OR", sub_keys)
        both = self._bitop("AND", [base_key, union])
        return self._bitop("XOR", [base_key, both])

    def _and_with_andor(self, children: Sequence[Node]) -> str:
        ors = [c for c in children if isinstance(c, Op) and c.op == "OR"]
        if not ors:
            return self._bitop("AND", [self.key_for(c) for c in children])
        first = ors[0]
        rest = [c for c in children if c is not first]
        x = self.key_for(rest[0]) if len(rest) == 1 else self.key_for(Op("AND", tuple(rest)))
        return self._bitop("ANDOR", [x, *(self.key_for(c) for c in first.children)])

    def bitcount(self, node: Node) -> int:
        """Append the BITCOUNT of ``node`` and return the index of its reply.

        :param node: a resolved tree
        """
        key = self.key_for(node)
        self.commands.append(("BITCOUNT", key))
        return len(self.commands) - 1

    def finish(self) -> list[Command]:
        """Append the deletion of every temp key and return the commands to send."""
        if not self._finished and self.temps:
            self.commands.append(("DEL", *self.temps))
        self._finished = True
        return self.commands


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
