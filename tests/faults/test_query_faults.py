"""Queries cancelled at every await point (and under CLIENT PAUSE) leave nothing behind."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias

import pytest

from _helpers import paused_server
from bitlens import DayEvents, MonthEvents, Tracker
from faults._invariants import Ledger, check_invariants, tracked_client

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("scripts")]  # scripts: conftest

UTC = dt.timezone.utc
AT = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)
SHARD_BITS = 8
MONTH = MonthEvents("active", 2026, 11)
DAY = DayEvents("active", 2026, 11, 27)

Query: TypeAlias = Callable[[Tracker], Coroutine[Any, Any, object]]


async def _count(tracker: Tracker) -> object:
    """A composite count (temp keys in every shard)."""
    return await tracker.count((MONTH & DAY) | ~DAY)


async def _count_many(tracker: Tracker) -> object:
    """A batch of 600 composite counts (several script calls)."""
    return await tracker.count_many(
        [(MONTH & DAY) - DayEvents("x", 2026, 11, d % 28 + 1) for d in range(600)]
    )


async def _members(tracker: Tracker) -> object:
    """Members of a composite tree."""
    return [uid async for uid in tracker.members(MONTH - DAY.prev())]


async def _retention(tracker: Tracker) -> object:
    """A 31-day retention table."""
    return await tracker.retention("active", period="day", end=AT.date(), now=AT)


async def _count_many_small(tracker: Tracker) -> object:
    """A batch of 20 composite counts (a request small enough to be written at once)."""
    return await tracker.count_many(
        [(MONTH & DAY) - DayEvents("x", 2026, 11, d + 1) for d in range(20)]
    )


async def _retention_small(tracker: Tracker) -> object:
    """A 7 x 7 retention table (a request small enough to be written at once)."""
    return await tracker.retention(
        "active", period="day", cohorts=7, buckets=7, end=AT.date(), now=AT
    )


QUERIES = [_count, _count_many, _members, _retention]
IDS = [q.__name__.lstrip("_") for q in QUERIES]
# Under CLIENT PAUSE a request larger than the socket buffers blocks in redis-py's write,
# whose asyncio.wait_for (Python 3.11) can swallow the caller's cancellation: the paused
# scenarios use requests that are written at once, so the cancellation lands in the read.
PAUSED = [_count, _count_many_small, _members, _retention_small]
PAUSED_IDS = [q.__name__.lstrip("_") for q in PAUSED]


async def _seeded(url: str, prefix: str) -> tuple[Tracker, Ledger, object]:
    """A tracker under test over ~20 shards of marks, and the client it uses."""
    ledger = Ledger()
    client = tracked_client(url)
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    marks = [("active", uid, AT) for uid in range(0, 5_000, 13)]
    await tracker.mark_events(marks)
    for event, uid, at in marks:
        ledger.ack(event, uid, at)
    return tracker, ledger, client


@pytest.mark.parametrize("query", QUERIES, ids=IDS)
async def test_cancelled_at_every_await_point_leaves_nothing(
    redis_url: str, prefix: str, query: Query
) -> None:
    """task.cancel() after 0..39 loop iterations of a query leaves no key; all four checks hold."""
    tracker, ledger, client = await _seeded(redis_url, prefix)
    finished = 0
    for n in range(40):
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(query(tracker))
        for _ in range(n):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
            finished += 1
        except asyncio.CancelledError:
            pass
    assert finished < 40  # some were cut mid-way
    await check_invariants(
        redis_url, prefix, ledger, tracker, shard_bits=SHARD_BITS, connection_bound=4
    )
    await tracker.aclose()
    await client.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("query", PAUSED, ids=PAUSED_IDS)
async def test_timed_out_under_client_pause_leaves_nothing(
    redis_url: str, prefix: str, query: Query
) -> None:
    """A query timed out by wait_for while the server is paused leaves no key behind."""
    tracker, ledger, client = await _seeded(redis_url, prefix)
    await tracker.count(MONTH)  # warm: the paused round trip is the query itself
    try:
        async with paused_server(redis_url, 1000, "ALL"):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(query(tracker), 0.05)
        await check_invariants(
            redis_url, prefix, ledger, tracker, shard_bits=SHARD_BITS, connection_bound=4
        )
    finally:
        await tracker.aclose()
        await client.aclose()  # type: ignore[attr-defined]
