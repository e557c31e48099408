"""Resolved trees that share subtrees: interned operations, linear walks."""

from __future__ import annotations

import pickle

from bitlens._periods import Day
from bitlens._plan import UNIVERSE, CountPlan, KeyRef, Node, Op, evaluate, leaves_of

DEPTH = 80
"""Levels of a tree whose every level reads the one below twice: 2**80 paths."""


def _ladder(depth: int) -> tuple[Node, list[KeyRef]]:
    """A tree of ``depth`` levels, each level ``(below | day) ^ (below & day)``."""
    days = [KeyRef("a", Day(2026, 1, 1).delta(i)) for i in range(depth)]
    node: Node = days[0]
    for day in days[1:]:
        node = Op("XOR", (Op("OR", (node, day)), Op("AND", (node, day))))
    return node, days


def test_equal_operations_are_one_object() -> None:
    """Two equal operations built apart are the same object, equal and of equal hash."""
    a, b = KeyRef("a", None), KeyRef("b", None)
    first, second = Op("AND", (a, b)), Op("AND", (a, b))
    assert first is second
    assert Op("AND", (a, b)) != Op("AND", (b, a))


def test_an_operation_cannot_be_changed() -> None:
    """Setting an attribute of an operation raises AttributeError."""
    node = Op("OR", (UNIVERSE, KeyRef("a", None)))
    try:
        node.op = "AND"
    except AttributeError:
        return
    raise AssertionError("an Op was changed")


def test_an_operation_pickles_to_the_interned_object() -> None:
    """A pickled operation loads as the interned equal operation."""
    node = Op("XOR", (UNIVERSE, KeyRef("a", None)))
    assert pickle.loads(pickle.dumps(node)) is node


def test_a_shared_tree_is_evaluated_once_per_node() -> None:
    """Evaluating an 80-level shared tree returns the XOR of its leaves."""
    node, days = _ladder(DEPTH)
    values = {day: 1 << i for i, day in enumerate(days)}
    assert evaluate(node, values) == (1 << DEPTH) - 1  # (x | d) ^ (x & d) == x ^ d


def test_a_shared_tree_lists_each_leaf_once() -> None:
    """The leaves of an 80-level shared tree are its days, in first-seen order."""
    node, days = _ladder(DEPTH)
    assert sorted(leaves_of(node), key=repr) == sorted(days, key=repr)


def test_a_shared_tree_plans_one_bitop_per_distinct_node() -> None:
    """The plan of an 80-level shared tree has three BITOPs per level, not one per path."""
    node, _ = _ladder(DEPTH)
    plan = CountPlan.compile([node])
    assert plan.argv.count("B") == 3 * (DEPTH - 1)
