"""Resolved trees and compiled count plans are kept per question, bounded."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from bitlens import DayEvents, InvalidExpression, Last, MonthEvents, Tracker
from bitlens._reader import PLAN_CACHE_SIZE, RESOLVE_CACHE_SIZE
from bitlens._tracker import parts

if TYPE_CHECKING:
    from redis.asyncio import Redis

pytestmark = pytest.mark.anyio

A = MonthEvents("active", 2026, 10)
B = MonthEvents("active", 2026, 11)


async def test_an_equal_tree_built_again_reuses_its_compiled_plan(
    client: Redis, prefix: str
) -> None:
    """Counting ``a & b`` twice, built anew each time, compiles it once."""
    async with Tracker(client, prefix=prefix) as tracker:
        await tracker.mark_event("active", 1, dt.datetime(2026, 10, 5, tzinfo=dt.timezone.utc))
        reader = parts(tracker).reader
        assert await tracker.count(A) == 1  # learns the server's capabilities
        first = reader.compiled((reader.resolve(A & B),))
        assert await tracker.count(MonthEvents("active", 2026, 10) & B) == 0
        assert reader.compiled((reader.resolve(A & B),)) is first


async def test_another_tree_gets_its_own_plan(client: Redis, prefix: str) -> None:
    """``a | b`` does not reuse the plan of ``a & b``; each answers its own question."""
    async with Tracker(client, prefix=prefix) as tracker:
        await tracker.mark_event("active", 1, dt.datetime(2026, 10, 5, tzinfo=dt.timezone.utc))
        reader = parts(tracker).reader
        both = reader.compiled((reader.resolve(A & B),))
        assert reader.compiled((reader.resolve(A | B),)) is not both
        assert (await tracker.count(A & B), await tracker.count(A | B)) == (0, 1)


async def test_the_cache_stays_bounded(client: Redis, prefix: str) -> None:
    """Past PLAN_CACHE_SIZE distinct questions the cache starts again instead of growing."""
    async with Tracker(client, prefix=prefix) as tracker:
        reader = parts(tracker).reader
        for n in range(PLAN_CACHE_SIZE + 1):
            reader.compiled((reader.resolve(MonthEvents(f"e{n}", 2026, 10)),))
        first = reader.compiled((reader.resolve(MonthEvents("e0", 2026, 10)),))
        again = reader.compiled((reader.resolve(MonthEvents("e0", 2026, 10)),))
    assert again is first
    assert len(reader._programs) <= PLAN_CACHE_SIZE  # pyright: ignore[reportPrivateUsage]


async def test_an_equal_expression_built_again_is_resolved_once(client: Redis, prefix: str) -> None:
    """``a & b`` built anew finds the tree kept for the first one: one entry, that tree."""
    async with Tracker(client, prefix=prefix) as tracker:
        reader = parts(tracker).reader
        tree = reader.resolve(A & B)
        assert reader.resolve(MonthEvents("active", 2026, 10) & B) is tree
        assert reader._resolved == {A & B: tree}  # pyright: ignore[reportPrivateUsage]


async def test_an_expression_reading_the_clock_is_never_kept(client: Redis, prefix: str) -> None:
    """A rolling window, alone or inside a tree, is resolved afresh every time it is asked."""
    async with Tracker(client, prefix=prefix) as tracker:
        reader = parts(tracker).reader
        reader.resolve(Last("active", days=7))
        reader.resolve(A & ~Last("active", days=7))
        assert reader._resolved == {}  # pyright: ignore[reportPrivateUsage]


async def test_each_tracker_keeps_the_trees_of_its_own_time_zone(
    client: Redis, prefix: str
) -> None:
    """One instant's day is the UTC day on a UTC tracker and the next day on a UTC+14 one."""
    day = DayEvents.from_date("active", dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc))
    utc = Tracker(client, prefix=prefix)
    ahead = Tracker(client, prefix=prefix, tz="Pacific/Kiritimati")
    async with utc, ahead:
        at = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
        await utc.mark_event("active", 1, at)
        await ahead.mark_event("active", 2, at)  # 28 November there
        await ahead.mark_event("active", 3, at)
        assert parts(utc).reader.resolve(day) != parts(ahead).reader.resolve(day)
        assert (await utc.count(day), await ahead.count(day)) == (1, 2)


async def test_the_resolved_trees_stay_bounded(client: Redis, prefix: str) -> None:
    """Past RESOLVE_CACHE_SIZE distinct expressions the kept trees start again."""
    async with Tracker(client, prefix=prefix) as tracker:
        reader = parts(tracker).reader
        for n in range(RESOLVE_CACHE_SIZE + 1):
            reader.resolve(MonthEvents(f"e{n}", 2026, 10))
            assert len(reader._resolved) <= RESOLVE_CACHE_SIZE  # pyright: ignore[reportPrivateUsage]


async def test_an_unhashable_non_expression_is_still_refused(client: Redis, prefix: str) -> None:
    """A list is no expression: InvalidExpression, as before any tree was kept."""
    async with Tracker(client, prefix=prefix) as tracker:
        with pytest.raises(InvalidExpression):
            await tracker.count([A, B])  # type: ignore[arg-type]
