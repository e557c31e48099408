"""Random expression trees and a seeded data set, shared by the query suites.

:func:`trees` draws expression trees over :data:`LEAVES`; :func:`seed` marks a fixed random
data set (~2,000 events on 700 ids below 6,000, plus 200 unique marks) through a tracker and
records it in a :class:`~_reference.Model`. With :data:`SHARD_BITS` the data spans ~24
shards, so every query touches many shards (and, on a cluster, every master).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import TYPE_CHECKING

from hypothesis import strategies as st

from bitlens import (
    BitOpAnd,
    BitOpDiff,
    BitOpNot,
    BitOpOr,
    BitOpXor,
    DayEvents,
    EventsBetween,
    Expr,
    MonthEvents,
    UniqueEvents,
    Universe,
    WeekEvents,
    YearEvents,
)

if TYPE_CHECKING:
    from _reference import Model
    from bitlens import Tracker

__all__ = ["EVENTS", "FIRST_DAY", "LEAVES", "SHARD_BITS", "UTC", "seed", "trees"]

UTC = dt.timezone.utc
EVENTS = ("a", "b", "c")
FIRST_DAY = dt.datetime(2026, 10, 20, tzinfo=UTC)
SHARD_BITS = 8  # 256 ids per shard: the data below spans ~24 shards

LEAVES: tuple[Expr, ...] = (
    *(MonthEvents(e, 2026, m) for e in EVENTS for m in (10, 11, 12)),
    *(WeekEvents(e, 2026, w) for e in EVENTS[:2] for w in (44, 45, 47, 49)),
    DayEvents("a", 2026, 11, 2),
    DayEvents("b", 2026, 11, 15),
    YearEvents("c", 2026),
    UniqueEvents("a"),
    UniqueEvents("b"),
    Universe(),
    EventsBetween("a", dt.date(2026, 10, 28), dt.date(2026, 11, 20)),
    EventsBetween("b", dt.date(2026, 11, 1), dt.date(2026, 12, 1)),
)


def trees(depth: int) -> st.SearchStrategy[Expr]:
    """Random expression trees of at most ``depth`` operator levels."""
    leaf = st.sampled_from(LEAVES)
    if depth == 0:
        return leaf
    sub = st.deferred(lambda: trees(depth - 1))
    children = st.lists(sub, min_size=2, max_size=3)
    return st.one_of(
        leaf,
        children.map(lambda xs: BitOpAnd(*xs)),
        children.map(lambda xs: BitOpOr(*xs)),
        children.map(lambda xs: BitOpXor(*xs)),
        children.map(lambda xs: BitOpDiff(xs[0], *xs[1:])),
        sub.map(lambda x: BitOpNot(x)),
        st.tuples(sub, sub).map(lambda xy: BitOpNot(xy[0], universe=xy[1])),
    )


async def seed(tracker: Tracker, model: Model, seed: int) -> list[int]:
    """Mark a random data set through ``tracker`` and in ``model``; return the ids, sorted.

    :param tracker: the tracker to mark with
    :param model: the reference model to record the marks in
    :param seed: the random seed (the same seed marks the same data)
    """
    rng = random.Random(seed)
    ids = sorted(rng.sample(range(6_000), 700))
    marks: list[tuple[str, int, dt.datetime]] = []
    for uid in ids:
        for _ in range(rng.randrange(1, 6)):
            at = FIRST_DAY + dt.timedelta(hours=rng.randrange(50 * 24))
            event = rng.choice(EVENTS)
            marks.append((event, uid, at))
            model.mark(event, uid, at)
    await tracker.mark_events(marks)
    for uid in rng.sample(ids, 200):
        event = rng.choice(EVENTS[:2])
        await tracker.mark_unique(event, uid)
        model.mark_unique(event, uid)
    return ids
