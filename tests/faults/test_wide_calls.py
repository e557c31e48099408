"""Questions cut into bounded script calls: exact, one round trip, no temp key left."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING

import pytest
from redis.exceptions import ResponseError

from _helpers import as_script_calls, connect, ping
from bitlens import BitOpOr, DayEvents, Expr, Tracker
from bitlens._plan import CountPlan, resolve
from faults._invariants import Ledger, check_invariants, tracked_client

if TYPE_CHECKING:
    import redis.asyncio

    from _proxy import RoundTripProxy

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("scripts")]  # scripts: conftest

UTC = dt.timezone.utc
FIRST = dt.date(2026, 1, 1)
TOP = 2**20 - 1  # the last id of shard 0: every day's bitmap there is a full 128 KiB


def _day(n: int, event: str = "a") -> DayEvents:
    d = FIRST + dt.timedelta(days=n)
    return DayEvents(event, d.year, d.month, d.day)


async def _mark_days(tracker: Tracker, ledger: Ledger, days: int) -> dict[int, set[int]]:
    """Mark ids in two default shards (shard 0 up to its last bit) on ``days`` days."""
    who: dict[int, set[int]] = {}
    marks: list[tuple[str, int, dt.datetime]] = []
    for n in range(days):
        at = dt.datetime.combine(FIRST + dt.timedelta(days=n), dt.time(12), UTC)
        ids = {n * 7, TOP, 2**20 + n * 13} if n % 3 else {n * 11 + 1}
        who[n] = ids
        for uid in ids:
            marks.append(("a", uid, at))
            ledger.ack("a", uid, at)
    await tracker.mark_events(marks)
    return who


async def test_a_wide_or_over_full_shards_is_cut_into_calls_in_one_round_trip(
    redis_url: str, counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """An OR of 40 full 128 KiB days runs as 3 calls per shard, in one round trip, exact."""
    ledger = Ledger()
    tracker = Tracker(counted_client, prefix=prefix)
    who = await _mark_days(tracker, ledger, 40)
    expr: Expr = BitOpOr(*(_day(n) for n in range(40)))
    await tracker.count(_day(0))  # the registry is known: one round trip from here on
    (call_count,) = {len(CountPlan.compile([resolve(expr)]).calls(128 * 1024))}
    assert call_count == 3  # 1 + ceil((40 - 16) / 15)
    proxy.reset()
    assert await tracker.count(expr) == len(set().union(*who.values()))
    assert proxy.round_trips == 1
    calls = as_script_calls(proxy.command_names)
    assert sum(name in ("EVAL", "EVALSHA") for name in calls) == 2 * call_count  # 2 shards
    await check_invariants(redis_url, prefix, ledger, tracker)


async def test_a_call_failing_midway_leaves_no_kept_temp_key(
    redis_url: str, counted_client: redis.asyncio.Redis, client: redis.asyncio.Redis, prefix: str
) -> None:
    """One call's WRONGTYPE fails the count; every temp kept between calls is gone."""
    ledger = Ledger()
    tracker = Tracker(counted_client, prefix=prefix)
    await _mark_days(tracker, ledger, 40)
    foreign = tracker.schema.event_key("b", _day(0, "b").period, 0)
    await client.sadd(foreign, "x")  # read by one call of shard 0
    expr = BitOpOr(*(_day(n) for n in range(40)), _day(0, "b"))
    assert len(CountPlan.compile([resolve(expr)]).calls(128 * 1024)) == 3
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await tracker.count(expr)
    await check_invariants(redis_url, prefix, ledger, tracker)


async def test_a_client_reader_agrees_with_the_split_server_count(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """reads='client' and the split server path give the same answer for a wide XOR."""
    ledger = Ledger()
    tracker = Tracker(counted_client, prefix=prefix)
    await _mark_days(tracker, ledger, 50)
    reader_client = connect(proxy.url)
    try:
        await ping(reader_client)
        here = Tracker(reader_client, prefix=prefix, reads="client")
        expr = BitOpOr(*(_day(n) for n in range(0, 50, 2))) ^ BitOpOr(
            *(_day(n) for n in range(1, 50, 2))
        )
        assert await here.count(expr) == await tracker.count(expr)
    finally:
        await reader_client.aclose()


async def test_a_split_count_cancelled_at_every_await_point_leaves_nothing(
    redis_url: str, prefix: str
) -> None:
    """task.cancel() after 0..39 loop iterations of a split count: no kept temp survives."""
    ledger = Ledger()
    client = tracked_client(redis_url)
    tracker = Tracker(client, prefix=prefix)
    await _mark_days(tracker, ledger, 40)
    expr = BitOpOr(*(_day(n) for n in range(40))) & ~_day(1)
    assert len(CountPlan.compile([resolve(expr)]).calls(128 * 1024)) > 1
    finished = 0
    for n in range(40):
        task: asyncio.Task[int] = asyncio.get_running_loop().create_task(tracker.count(expr))
        for _ in range(n):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
            finished += 1
        except asyncio.CancelledError:
            pass
    assert finished < 40  # some were cut mid-way
    await tracker.aclose()  # waits for the deletion of temps kept by cut-off counts
    async with Tracker(client, prefix=prefix) as after:
        await check_invariants(redis_url, prefix, ledger, after, connection_bound=4)
    await client.aclose()
