"""A count asked again is sent as the request packed the first time (single server)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import anyio
import pytest

from _helpers import Wires, connect
from bitlens import DayEvents, Expr, MonthEvents, Tracker
from bitlens._reader import REQUEST_CACHE_SIZE
from bitlens._tracker import parts

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from _proxy import RoundTripProxy

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
AT = dt.datetime(2026, 11, 5, 12, tzinfo=UTC)
A = MonthEvents("active", 2026, 11)
B = MonthEvents("paid", 2026, 11)
C = MonthEvents("churned", 2026, 11)


async def _seeded(client: Redis, prefix: str) -> Tracker:
    """A tracker that marked active 1, 2, 2**20 + 1; paid 2, 2**20 + 1; churned 2**20 + 1."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_events(
        [
            ("active", 1, AT),
            ("active", 2, AT),
            ("active", 2**20 + 1, AT),
            ("paid", 2, AT),
            ("paid", 2**20 + 1, AT),
            ("churned", 2**20 + 1, AT),
        ]
    )
    return tracker


async def test_a_count_asked_again_sends_the_same_commands(client: Redis, prefix: str) -> None:
    """From the second count on, ``a & b`` goes as one identical EVALSHA request each time."""
    async with await _seeded(client, prefix) as tracker:
        wires = Wires()
        parts(tracker).executor.observer = wires
        answers = [await tracker.count(A & B) for _ in range(3)]
    assert answers == [2, 2, 2]
    assert wires.wires[1] == wires.wires[2]
    assert [command[0] for command in wires.wires[2]] == ["SCARD", "EVALSHA"]


async def test_a_kept_request_is_one_round_trip(
    counted_client: Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A count sent from its kept request is one round trip: SCARD and one EVALSHA."""
    async with await _seeded(counted_client, prefix) as tracker:
        await tracker.count(A - B)
        await tracker.count(A - B)
        proxy.reset()
        assert await tracker.count(A - B) == 1
    assert proxy.round_trips == 1
    assert proxy.command_names == ["SCARD", "EVALSHA"]


async def test_concurrent_counts_of_one_kept_request_each_answer_right(
    client: Redis, redis_url: str, prefix: str
) -> None:
    """Fifty counts at once, sharing temp key names, each answer right and leave no temp."""
    async with await _seeded(client, prefix) as tracker:
        tree = (A & B) | (A - C)
        assert await tracker.count(tree) == 3
        assert await tracker.count(tree) == 3
        answers: list[int] = []

        async def one() -> None:
            answers.append(await tracker.count(tree))

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(one)
    assert answers == [3] * 50
    admin = connect(redis_url)
    try:
        assert [key async for key in admin.scan_iter(f"{prefix}:*tmp*")] == []
    finally:
        await admin.aclose()


async def test_a_kept_request_still_finds_a_shard_another_tracker_added(
    client: Redis, prefix: str
) -> None:
    """A shard written by another tracker after the request was kept is counted too."""
    async with await _seeded(client, prefix) as tracker:
        assert await tracker.count(A & B) == 2
        assert await tracker.count(A & B) == 2
        async with Tracker(client, prefix=prefix) as other:
            await other.mark_event("active", 5 * 2**20 + 7, AT)
            await other.mark_event("paid", 5 * 2**20 + 7, AT)
        assert await tracker.count(A & B) == 3
        assert await tracker.count(A & B) == 3


async def test_a_count_keeping_temps_between_calls_names_them_afresh_each_time(
    client: Redis, prefix: str
) -> None:
    """An OR too wide for one script call keeps temps between calls: never a kept request."""
    days = [DayEvents("visit", 2026, 11, d) for d in range(1, 31)]
    async with Tracker(client, prefix=prefix) as tracker:
        await tracker.mark_events(
            [("visit", d, dt.datetime(2026, 11, d, tzinfo=UTC)) for d in range(1, 31)]
        )
        wide: Expr = days[0]
        for day in days[1:]:
            wide = wide | day
        wires = Wires()
        parts(tracker).executor.observer = wires
        answers = [await tracker.count(wide) for _ in range(3)]
        kept = parts(tracker).reader._requests  # pyright: ignore[reportPrivateUsage]
    assert answers == [30, 30, 30]
    assert len([c for c in wires.wires[2] if c[0] == "EVALSHA"]) > 1  # several calls
    assert wires.wires[1] != wires.wires[2]
    assert kept == {}


async def test_the_kept_requests_stay_bounded(client: Redis, prefix: str) -> None:
    """Past REQUEST_CACHE_SIZE distinct questions the kept requests start again."""
    async with await _seeded(client, prefix) as tracker:
        await tracker.count(A)
        for n in range(REQUEST_CACHE_SIZE + 1):
            assert await tracker.count(A & MonthEvents(f"e{n}", 2026, 11)) == 0
        kept = parts(tracker).reader._requests  # pyright: ignore[reportPrivateUsage]
        assert 0 < len(kept) <= REQUEST_CACHE_SIZE


async def test_a_request_too_large_to_keep_is_built_each_time(
    client: Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request above a sixteenth of REQUEST_CACHE_BYTES is never kept; it still answers."""
    import bitlens._reader

    monkeypatch.setattr(bitlens._reader, "REQUEST_CACHE_BYTES", 16 * 64)
    async with await _seeded(client, prefix) as tracker:
        answers = [await tracker.count(A & B) for _ in range(3)]
        kept = parts(tracker).reader._requests  # pyright: ignore[reportPrivateUsage]
    assert answers == [2, 2, 2]
    assert kept == {}
