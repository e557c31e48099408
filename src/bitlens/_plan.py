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
import enum
import re
import weakref
from dataclasses import dataclass, field
from functools import cache, lru_cache, reduce
from typing import TYPE_CHECKING, ClassVar, Literal, TypeAlias, cast

from ._cover import cover
from ._exceptions import (
    HourlyWindowNotTracked,
    InvalidExpression,
    QueryTooLarge,
    UnboundTemplate,
    UniverseUnavailable,
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
from ._periods import UTC, Period, Year, to_local
from ._script import (
    BITOP_SLICE,
    CALL_BUDGET,
    CALL_BYTES,
    COUNT_SCRIPT,
    MAX_CALL_WORK,
    script_error,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from ._keys import KeySchema, UniverseKind

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


class Op:
    """A bitmap operation over resolved children (the complement is ``XOR`` with U).

    Immutable and interned: equal operations are one object, so a tree that shares
    subtrees (a report's running unions, a bit-sliced counter) hashes, compares and plans
    in time linear in its distinct nodes, never in its paths. The hash is computed once.

    :param op: ``"AND"``, ``"OR"`` or ``"XOR"``
    :param children: the operands, in order
    """

    __slots__ = ("__weakref__", "_hash", "children", "op")
    _interned: ClassVar[weakref.WeakValueDictionary[tuple[str, tuple[Node, ...]], Op]] = (
        weakref.WeakValueDictionary()
    )

    op: OpName
    children: tuple[Node, ...]
    _hash: int

    def __new__(cls, op: OpName, children: tuple[Node, ...]) -> Op:
        key = (op, children)
        found = cls._interned.get(key)
        if found is not None:
            return found
        self = object.__new__(cls)
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "children", children)
        object.__setattr__(self, "_hash", hash(key))
        return cls._interned.setdefault(key, self)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Op is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Op is immutable: cannot delete {name!r}")

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Op):
            return NotImplemented
        return False  # interned: an equal operation is this very object

    def __repr__(self) -> str:
        return f"Op(op={self.op!r}, children={self.children!r})"

    def __reduce__(self) -> tuple[type[Op], tuple[OpName, tuple[Node, ...]]]:
        return (Op, (self.op, self.children))


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
    :param universe: what the key layout's universe holds (see
        :data:`~bitlens.UniverseKind`): with ``"complete"`` a complement is one XOR with
        it; with ``"partial"`` complements stay inside it and differences use no universe;
        with ``"absent"`` ``~x`` and ``Universe()`` raise :class:`UniverseUnavailable`
    :param layout: the key layout's repr, for that error
    """

    tz: _dt.tzinfo = UTC
    hourly: bool = False
    now: _dt.datetime | None = None
    universe: UniverseKind = "complete"
    layout: str = "ShardedSchema()"


_DEFAULT_CONTEXT = ResolveContext()


def _range(event: str, start: Moment, end: Moment, hourly: bool, ctx: ResolveContext) -> Node:
    return _nary("OR", (KeyRef(event, p) for p in cover(start, end, ctx.tz, hourly=hourly)))


_OpExpr: TypeAlias = "BitOpAnd | BitOpOr | BitOpXor | BitOpDiff | BitOpNot"


class _Kind(enum.Enum):
    """Which branch of :func:`resolve` an expression's class takes."""

    OP = enum.auto()
    PERIOD = enum.auto()
    UNIVERSE = enum.auto()
    OTHER = enum.auto()


@cache
def _kind_of(cls: type) -> _Kind:
    """The branch for instances of ``cls``: the ``isinstance`` checks through the
    expressions' ABC are made once per class, not on every resolve of a hot call."""
    if issubclass(cls, (BitOpAnd, BitOpOr, BitOpXor, BitOpDiff, BitOpNot)):
        return _Kind.OP
    if issubclass(cls, PeriodEvents):
        return _Kind.PERIOD
    if issubclass(cls, Universe):
        return _Kind.UNIVERSE
    return _Kind.OTHER


def resolve(expr: Expr, ctx: ResolveContext = _DEFAULT_CONTEXT) -> Node:
    """Resolve an expression into a tree of operations over concrete bitmaps.

    :param expr: any bitlens expression
    :param ctx: the time zone, hourly setting and clock that ranges are resolved with
    :raises InvalidExpression: for an object that is not a bitlens expression
    :raises UnsupportedOperation: for an :class:`EventTemplate` not bound to a period
    :raises GranularityNotTracked: for a range whose edges need hours that are not kept
    """
    kind = _kind_of(type(expr))
    if kind is _Kind.OP:
        return _resolve_op(cast("_OpExpr", expr), ctx)
    if kind is _Kind.PERIOD:
        leaf = cast("PeriodEvents", expr)
        period = leaf.in_zone(ctx.tz).period
        if isinstance(period, Year):
            return _nary("OR", (KeyRef(leaf.event, m) for m in period.months()))
        return KeyRef(leaf.event, period)
    if kind is _Kind.UNIVERSE:
        if ctx.universe == "absent":
            raise UniverseUnavailable(ctx.layout)
        return UNIVERSE
    if isinstance(expr, EventsBetween):
        hourly = ctx.hourly if expr.hourly is None else expr.hourly
        return _range(expr.event, expr.start, expr.end, hourly, ctx)
    if isinstance(expr, Last):
        hourly = ctx.hourly if expr.hourly is None else expr.hourly
        if expr.hours and not hourly:
            # Refused whatever the clock says: a window that happens to fall on midnights
            # would count, one hour later the same call would raise.
            raise HourlyWindowNotTracked(expr)
        now = ctx.now if ctx.now is not None else _dt.datetime.now(ctx.tz)
        start, end = expr.window(to_local(now, ctx.tz))
        return _range(expr.event, start, end, hourly, ctx)
    if isinstance(expr, EventTemplate):
        raise UnboundTemplate(expr, "count")
    raise InvalidExpression(expr)


def clock_free(expr: Expr) -> bool:
    """Whether resolving ``expr`` reads no clock: it holds no :class:`~bitlens.Last`.

    Such an expression resolves to the same tree in the same context whenever it is
    resolved, so the tree may be kept for the next time it is asked.
    """
    stack = [expr]
    while stack:
        item = stack.pop()
        if isinstance(item, Last):
            return False
        if isinstance(item, (BitOpAnd, BitOpOr, BitOpXor)):
            stack.extend(item.operands)
        elif isinstance(item, BitOpDiff):
            stack.append(item.base)
            stack.extend(item.subtract)
        elif isinstance(item, BitOpNot):
            stack.append(item.operand)
            stack.append(item.universe)
    return True


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
        return _without(sub(expr.base), gone, ctx)
    if isinstance(expr.universe, Universe) and ctx.universe == "complete":
        return complement(sub(expr.operand))
    return _without(sub(expr.universe), sub(expr.operand), ctx)


def _without(base: Node, gone: Node, ctx: ResolveContext) -> Node:
    """``base - gone``: with a complete universe ``base & (U ^ gone)``, the complement one
    XOR that the planner can fold into a ``BITOP DIFF`` or an AND chain; else the exact
    ``base ^ (base & gone)``, or ``U & (U ^ gone)`` for a partial universe itself (every
    bitmap the planner then sees complemented lies inside that universe)."""
    if ctx.universe == "complete":
        return _nary("AND", (base, complement(gone)))
    if base == UNIVERSE:
        return Op("AND", (UNIVERSE, complement(gone)))
    return Op("XOR", (base, _nary("AND", (base, gone))))


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
    visited: set[Op] = set()

    def walk(n: Node) -> None:
        if isinstance(n, KeyRef):
            seen[n] = None
        elif n not in visited:  # a shared subtree is walked once
            visited.add(n)
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
    memo: dict[Op, int] = {}  # a shared subtree is evaluated once

    def value(n: Node) -> int:
        if isinstance(n, KeyRef):
            return values[n]
        found = memo.get(n)
        if found is None:
            parts = [value(child) for child in n.children]
            if n.op == "AND":
                found = reduce(int.__and__, parts)
            elif n.op == "OR":
                found = reduce(int.__or__, parts)
            else:
                found = reduce(int.__xor__, parts)
            memo[n] = found
        return found

    return value(node)


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


SHARED_PLAN_WORK = 50_000
"""The most work per shard a plan grows to by taking questions that share its subtrees."""


def _new_work(node: Node, seen: set[Node], added: set[Node], shared: list[bool]) -> int:
    """Estimate the key operations ``node`` adds to a plan that already computes ``seen``.

    ``shared[0]`` is set when ``node`` reads a subtree the plan already computes.
    """
    if isinstance(node, KeyRef) or node in added:
        return 0
    if node in seen:
        shared[0] = True
        return 0
    added.add(node)
    return len(node.children) + 2 + sum(_new_work(c, seen, added, shared) for c in node.children)


def plan_counts(
    nodes: Sequence[Node], caps: Capabilities | None = None, budget: int = CALL_BUDGET
) -> list[CountPlan]:
    """Split a batch of count questions into plans of about ``budget`` work per shard.

    Consecutive questions share a plan (and its equal subtrees) while the plan's work per
    shard stays within ``budget``; a question alone over budget gets a plan of its own. A
    question that shares subtrees with the plan so far stays in it up to
    :data:`SHARED_PLAN_WORK` (a report's questions all read one counter or running union:
    a plan each would compute it again for each), and :meth:`CountPlan.calls` then cuts the
    plan into calls within ``budget``.
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
        shared = [False]
        extra = 1 + _new_work(node, seen, added, shared)
        if (
            current
            and work + extra > budget
            and not (shared[0] and work + extra <= SHARED_PLAN_WORK)
        ):
            chunks.append(current)
            current, seen, work = [], set(), 0
            added = set()
            extra = 1 + _new_work(node, seen, added, shared)
        current.append(index)
        seen |= added
        work += extra
    if current:
        chunks.append(current)
    plans: list[CountPlan] = []
    for chunk in chunks:
        plan = CountPlan.compile([nodes[i] for i in chunk], caps)
        if plan.work > MAX_CALL_WORK:
            raise QueryTooLarge(plan.work, MAX_CALL_WORK)
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
