"""The dashboard's JSON answers about unfinished periods and the prefix, on a real server."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from bitlens import Tracker
from bitlens.web import counts, handle, list_events

if TYPE_CHECKING:
    import redis.asyncio

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc


async def test_counts_flag_the_periods_that_are_not_over(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """/counts says which weeks are over at its clock: the current and later ones are not."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_event("active", 1, dt.datetime(2026, 11, 18, 9, tzinfo=UTC))
    reply = await counts(
        tracker,
        ["active"],
        period="week",
        start=dt.date(2026, 11, 2),
        end=dt.date(2026, 11, 23),
        now=dt.datetime(2026, 11, 18, 12, tzinfo=UTC),
    )
    assert reply["labels"] == ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    assert reply["complete"] == [True, True, False, False]
    assert reply["series"] == [{"event": "active", "counts": [0, 0, 1, 0]}]


async def test_a_period_ending_exactly_now_is_over(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A day whose end is the clock's instant counts as over."""
    tracker = Tracker(client, prefix=prefix)
    day = dt.date(2026, 11, 18)
    reply = await counts(
        tracker, ["a"], start=day, end=day, now=dt.datetime(2026, 11, 19, tzinfo=UTC)
    )
    assert reply["complete"] == [True]


async def test_counts_endpoint_flags_today_as_not_over(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Through handle(), the default chart ends with today, which is not over."""
    tracker = Tracker(client, prefix=prefix)
    status, body = await handle(tracker, "counts", {"event": ["active"], "period": ["day"]})
    assert status == 200
    flags = body["complete"]
    assert isinstance(flags, list)
    assert flags[-1] is False
    assert all(flags[:-1])


async def test_events_reply_names_the_prefix(client: redis.asyncio.Redis, prefix: str) -> None:
    """/events carries the tracker's prefix, which the empty state shows."""
    tracker = Tracker(client, prefix=prefix)
    assert await list_events(tracker) == {"events": [], "truncated": False, "prefix": prefix}
