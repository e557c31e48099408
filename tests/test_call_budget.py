"""No script call reads more than its budget: plans cut into bounded calls (pure)."""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import examples
from _trees import trees
from bitlens import BitOpAnd, BitOpOr, BitOpXor, DayEvents, Expr, MonthEvents
from bitlens._plan import (
    CALL_BUDGET,
    CALL_BYTES,
    MAX_CALL_WORK,
    UNIVERSE,
    Capabilities,
    CountPlan,
    KeyRef,
    ScriptCall,
    evaluate,
    leaves_of,
    plan_counts,
    resolve,
)

if TYPE_CHECKING:
    from collections.abc import Callable

SHARD_SIZES = (32, 4096, 128 * 1024, 1024 * 1024)
EXTENSIONS = (Capabilities(), Capabilities(diff=True, andor=True))


def _days(event: str, n: int) -> list[Expr]:
    first = dt.date(2004, 1, 1)
    return [
        DayEvents(event, d.year, d.month, d.day)
        for d in (first + dt.timedelta(days=k) for k in range(n))
    ]


def _run(plan: CountPlan, calls: list[ScriptCall], values: dict[KeyRef, int]) -> list[int]:
    """Run ``calls`` like the script does, over one shard whose leaves hold ``values``.

    Temp keys live in a dict that persists between calls, as Redis keys do; an adopted
    slot must exist or have been emptied, a freed one is gone, and after the last call
    no temp key may remain.
    """
    store: dict[int, int] = {}  # temp number -> bits (0 means the key does not exist)
    outstanding: set[int] = set()  # temps kept by a call for a later one
    answers = [0] * plan.questions
    ops: dict[str, Callable[[list[int]], int]] = {
        "AND": lambda xs: _reduce(xs, int.__and__),
        "OR": lambda xs: _reduce(xs, int.__or__),
        "XOR": lambda xs: _reduce(xs, int.__xor__),
        "DIFF": lambda xs: xs[0] & ~_reduce(xs[1:], int.__or__),
        "ANDOR": lambda xs: xs[0] & _reduce(xs[1:], int.__or__),
    }
    for call in calls:
        argv = list(call.argv)
        nleaf, ntemp = int(argv[0]), int(argv[1])
        assert nleaf == len(call.leaves)
        assert ntemp == len(call.temps)

        def get(slot: int, call: ScriptCall = call, nleaf: int = nleaf) -> int:
            if slot <= nleaf:
                return values[plan.leaves[call.leaves[slot - 1]]]
            return store.get(call.temps[slot - nleaf - 1], 0)

        live: set[int] = set()
        keep: set[int] = set()
        asked = iter(call.questions)
        i = 2
        while i < len(argv):
            code = argv[i]
            if code == "B":
                op, dest, n = str(argv[i + 1]), int(argv[i + 2]), int(argv[i + 3])
                srcs = [get(int(s)) for s in argv[i + 4 : i + 4 + n]]
                store[call.temps[dest - nleaf - 1]] = ops[op](srcs)
                live.add(call.temps[dest - nleaf - 1])
                i += 4 + n
            elif code == "C":
                answers[next(asked)] += get(int(argv[i + 1])).bit_count()
                i += 2
            else:
                n = int(argv[i + 1])
                temps = [call.temps[int(s) - nleaf - 1] for s in argv[i + 2 : i + 2 + n]]
                if code == "D":
                    for t in temps:
                        store.pop(t, None)
                        live.discard(t)
                elif code == "L":
                    live.update(temps)
                else:
                    assert code == "K"
                    keep.update(temps)
                i += 2 + n
        for t in live - keep:  # the script's final drop
            store.pop(t, None)
        outstanding = (outstanding & set(store)) | keep
        assert set(store) <= outstanding, "a temp outlived its call without being kept"
    assert not store, "a temp outlived the query"
    return answers


def _reduce(xs: list[int], op: object) -> int:
    out = xs[0]
    for x in xs[1:]:
        out = op(out, x)  # type: ignore[operator]
    return out


def _random_values(plan: CountPlan, bits: int, rng: random.Random) -> dict[KeyRef, int]:
    universe = rng.getrandbits(bits)
    values = {leaf: rng.getrandbits(bits) & universe for leaf in plan.leaves}
    values[UNIVERSE] = universe  # read by evaluate even where DIFF spares the plan from it
    return values


@settings(max_examples=examples(150), deadline=None)
@given(
    tree=trees(4),
    wide=st.integers(0, 300),
    shard_bytes=st.sampled_from(SHARD_SIZES),
    caps=st.sampled_from(EXTENSIONS),
    budget=st.sampled_from((256, 4096, CALL_BYTES)),
)
def test_no_call_reads_more_than_its_budget(
    tree: Expr, wide: int, shard_bytes: int, caps: Capabilities, budget: int
) -> None:
    """Every call of any plan reads at most max(budget, 2 shard bitmaps) per shard."""
    questions = [tree, BitOpOr(*_days("a", wide)) & tree] if wide > 1 else [tree]
    for plan in plan_counts([resolve(q) for q in questions], caps):
        for call in plan.calls(shard_bytes, budget):
            assert call.cost <= max(budget, 2 * shard_bytes + shard_bytes // 4)
            assert call.work <= MAX_CALL_WORK
            assert call.work * call.shards_per_call() <= MAX_CALL_WORK


@settings(max_examples=examples(150), deadline=None)
@given(
    tree=trees(4),
    wide=st.integers(0, 120),
    caps=st.sampled_from(EXTENSIONS),
    budget=st.sampled_from((64, 256, 1024)),
    seed=st.integers(0, 2**32),
)
def test_split_calls_answer_what_the_tree_means(
    tree: Expr, wide: int, caps: Capabilities, budget: int, seed: int
) -> None:
    """Run like the script, the calls of a split plan give each tree's exact count."""
    questions = [tree, BitOpXor(*_days("a", wide), tree)] if wide > 1 else [tree]
    nodes = [resolve(q) for q in questions]
    plan = CountPlan.compile(nodes, caps)
    calls = plan.calls(32, budget)
    values = _random_values(plan, 256, random.Random(seed))
    assert _run(plan, calls, values) == [evaluate(n, values).bit_count() for n in nodes]


def test_an_or_of_8000_days_over_default_shards_takes_the_documented_number_of_calls() -> None:
    """OR of n days, m = CALL_BYTES // 128 KiB sources a call: 1 + ceil((n - m) / (m - 1))."""
    shard_bytes = 128 * 1024
    plan = CountPlan.compile([resolve(BitOpOr(*_days("a", 8_000)))])
    calls = plan.calls(shard_bytes)
    m = CALL_BYTES // shard_bytes
    assert m == 16
    assert len(calls) == 1 + math.ceil((8_000 - m) / (m - 1))
    assert max(call.cost for call in calls) == CALL_BYTES
    assert sum(len(call.questions) for call in calls) == 1
    assert all(len(call.leaves) <= m for call in calls)  # a call's keys stay few


def test_a_plan_within_budget_is_one_call_of_its_own_program() -> None:
    """A small plan is not cut: one call whose arguments are the plan's."""
    plan = CountPlan.compile([resolve(MonthEvents("a", 2026, 1) & MonthEvents("b", 2026, 1))])
    (call,) = plan.calls(128 * 1024)
    assert list(call.argv) == plan.argv
    assert call.kept == ()


def test_a_wide_andor_becomes_an_or_chain_and_an_and() -> None:
    """With BITOP ANDOR, x & (y1 | .. | y40) over big shards is cut into an OR chain + AND."""
    x = MonthEvents("x", 2026, 1)
    plan = CountPlan.compile([resolve(x & BitOpOr(*_days("y", 40)))], EXTENSIONS[1])
    assert "ANDOR" in plan.argv
    calls = plan.calls(128 * 1024)
    ops = {str(a) for call in calls for a in call.argv if a in ("AND", "OR", "ANDOR")}
    assert ops == {"AND", "OR"}
    values = _random_values(plan, 512, random.Random(1))
    assert _run(plan, calls, values) == [
        evaluate(resolve(x & BitOpOr(*_days("y", 40))), values).bit_count()
    ]


def test_a_single_leaf_count_groups_shards_by_bytes() -> None:
    """Counting one bitmap over 128 KiB shards: 64 shards a call (BITCOUNT at a quarter)."""
    plan = CountPlan.compile([resolve(MonthEvents("a", 2026, 1))])
    (call,) = plan.calls(128 * 1024)
    assert call.shards_per_call() == CALL_BYTES // (32 * 1024)
    assert call.shards_per_call() <= CALL_BUDGET


@pytest.mark.parametrize("n", [17, 31, 32, 1_000])
def test_every_leaf_is_read_by_exactly_one_call(n: int) -> None:
    """A wide AND reads each of its bitmaps once, across all its calls."""
    nodes = [resolve(BitOpAnd(*_days("a", n)))]
    plan = CountPlan.compile(nodes)
    read = [plan.leaves[i] for call in plan.calls(128 * 1024) for i in call.leaves]
    assert sorted(map(repr, read)) == sorted(map(repr, leaves_of(nodes[0])))
