"""Static checks of the public API's types: mypy and pyright read this file, nothing runs it.

Each ``assert_type`` states the exact type a user gets back; if an annotation in bitlens
drifts, type checking fails here. The file is not named ``test_*.py``, so pytest does not
collect it, and nothing imports it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import date, datetime, timezone

import redis.asyncio
from redis.asyncio.cluster import RedisCluster

import bitlens
from bitlens import (
    BitOpAnd,
    Capabilities,
    DayEvents,
    EventsBetween,
    Expr,
    MonthEvents,
    Tracker,
    UniqueEvents,
    WeekEvents,
    YearEvents,
    last,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type


async def tracker_queries(tracker: Tracker) -> None:
    """Each query answers the type its name promises."""
    a = MonthEvents("active", 2026, 10)
    b = MonthEvents("active", 2026, 11)
    assert_type(await tracker.count(a & b), int)
    assert_type(await tracker.count(a | b - WeekEvents("active", 2026, 48)), int)
    assert_type(await tracker.contains(a, 123), bool)
    assert_type(await tracker.contains_many(a, [1, 2, 3]), list[bool])
    assert_type(await tracker.has_events(~a), bool)
    assert_type(tracker.members(a ^ b), AsyncIterator[int])
    async for user_id in tracker.members(b):
        assert_type(user_id, int)
    assert_type(await tracker.count_many({"october": a, "november": b}), dict[str, int])
    assert_type(await tracker.count_many({1: a, 2: b & a}), dict[int, int])
    assert_type(await tracker.count_many([a, b, a & b]), list[int])
    assert_type(await tracker.count_many(e for e in (a, b)), list[int])


async def tracker_marking(tracker: Tracker) -> None:
    """Marking returns nothing, except mark_events, which returns how many it marked."""
    at = datetime(2026, 11, 27, 13, tzinfo=timezone.utc)
    assert_type(await tracker.mark_event("active", 1), None)
    assert_type(await tracker.mark_event("active", 1, at, track_hourly=True), None)
    assert_type(await tracker.unmark_event("active", 1, date(2026, 11, 27)), None)
    assert_type(await tracker.mark_unique("signed_up", 1), None)
    assert_type(await tracker.unmark_unique("signed_up", 1), None)
    marks: list[bitlens.Mark] = [("active", 1), ("active", 2, at), ("buy", 3, None)]
    assert_type(await tracker.mark_events(marks), int)
    assert_type(await tracker.mark_bulk("active", [1, 2], [at, at], hourly=True), int)


async def expressions() -> None:
    """Operators build expressions; expression methods ask the default tracker."""
    month = MonthEvents("active", 2026, 11)
    assert_type(month & DayEvents("active", 2026, 11, 27), Expr)
    assert_type(~month, Expr)
    assert_type(month.next(), MonthEvents)
    assert_type(month.prev().with_event("buy"), MonthEvents)
    assert_type(YearEvents("active", 2026).delta(-1), YearEvents)
    assert_type(UniqueEvents("signed_up"), UniqueEvents)
    assert_type(BitOpAnd(month, month.prev()), BitOpAnd)
    assert_type(EventsBetween("active", date(2026, 11, 1), date(2026, 11, 15)), EventsBetween)
    assert_type(last("active", days=7), bitlens.Last)
    assert_type(await month.count(), int)
    assert_type(await month.contains(1), bool)
    assert_type(await month.has_events(), bool)
    assert_type(month.members(), AsyncIterator[int])


async def lifecycle(url: str, client: redis.asyncio.Redis) -> None:
    """Trackers come from a URL or a client; the default tracker is a Tracker too."""
    async with Tracker(url, prefix="bl", tz="Europe/Berlin") as tracker:
        assert_type(tracker, Tracker)
        assert_type(tracker.closed, bool)
    assert_type(Tracker(client).client, redis.asyncio.Redis | RedisCluster)
    stated = Tracker(client, capabilities=Capabilities(diff=True, andor=True))
    assert_type(stated.capabilities, Capabilities | None)
    assert_type(Capabilities.from_probe([0, 0]), Capabilities | None)
    assert_type(bitlens.setup(client, prefix="bl", track_hourly=True), Tracker)
    assert_type(bitlens.get_tracker(), Tracker)
    assert_type(await bitlens.mark_events([("active", 1)]), int)
    assert_type(await bitlens.mark_event("active", 1), None)
