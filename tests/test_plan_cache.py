"""Compiled count plans are kept per tree shape, bounded."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from bitlens import MonthEvents, Tracker
from bitlens._reader import PLAN_CACHE_SIZE
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
