"""Marking cancelled at every await point: what returned is written, nothing is left behind.

Each scenario cancels a plain asyncio task after 0, 1, 2, ... loop turns — every await
point a mark passes on its way to Redis and back — and ends with the four checks of
:func:`faults._invariants.check_invariants`. (Coalesced callers, leaders and followers,
are cancelled the same way in ``test_coalesce_cancel.py``.)
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from bitlens import Limits, Tracker
from faults._invariants import Ledger, check_invariants, tracked_client
from faults._setup import cancel_at_every_turn

if TYPE_CHECKING:
    from collections.abc import Coroutine

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
MAX_TURNS = 400
"""Cancel after 0, 1, 2, ... loop turns, until three calls in a row finish first."""


@pytest.fixture
def anyio_backend() -> str:
    """These scenarios cancel plain asyncio tasks."""
    return "asyncio"


@pytest.mark.parametrize("expire", [False, True], ids=["lone", "expiring"])
async def test_a_plain_mark_cancelled_at_every_await_point(
    redis_url: str, prefix: str, expire: bool
) -> None:
    """mark_event cancelled after 0, 1, 2, ... turns: each one that returned is in Redis."""
    ledger = Ledger()
    client = tracked_client(redis_url)
    options = {"expire_after": {"day": dt.timedelta(days=400)}} if expire else {}
    tracker = Tracker(client, prefix=prefix, **options)  # type: ignore[arg-type]

    def start(turns: int) -> Coroutine[object, object, object]:
        ledger.attempt("active", turns, AT)
        return tracker.mark_event("active", turns, AT)

    async def after(turns: int, finished: bool) -> None:
        if finished:
            ledger.ack("active", turns, AT)

    try:
        sweep = await cancel_at_every_turn(start, MAX_TURNS, after)
        assert sweep.cancelled > 0  # cut before, inside and after the round trip
        assert sweep.streak == 3
        await check_invariants(redis_url, prefix, ledger, tracker, connection_bound=2)
    finally:
        await tracker.aclose()
        await client.aclose()


async def test_mark_events_cancelled_at_every_await_point(redis_url: str, prefix: str) -> None:
    """mark_events of 3 chunks cancelled after 0, 1, ... turns: a call that returned is whole."""
    ledger = Ledger()
    client = tracked_client(redis_url)
    tracker = Tracker(client, prefix=prefix, limits=Limits(mark_chunk_size=100))

    def items(turns: int) -> list[tuple[str, int, dt.datetime]]:
        return [(f"e{turns}", uid, AT) for uid in range(0, 3000, 10)]

    def start(turns: int) -> Coroutine[object, object, object]:
        for event, uid, at in items(turns):
            ledger.attempt(event, uid, at)
        return tracker.mark_events(items(turns))

    async def after(turns: int, finished: bool) -> None:
        if finished:
            for event, uid, at in items(turns):
                ledger.ack(event, uid, at)

    try:
        sweep = await cancel_at_every_turn(start, MAX_TURNS, after)
        assert sweep.cancelled > 0
        assert sweep.streak == 3
        await check_invariants(redis_url, prefix, ledger, tracker, connection_bound=2)
    finally:
        await tracker.aclose()
        await client.aclose()


async def test_aclose_cancelled_at_every_await_point_accounts_for_every_queued_mark(
    redis_url: str, prefix: str
) -> None:
    """aclose() cancelled after 0, 1, ... turns: every queued mark is written or counted dropped."""
    ledger = Ledger()
    client = tracked_client(redis_url)
    trackers: list[Tracker] = []

    def start(turns: int) -> Coroutine[object, object, object]:
        tracker = Tracker(client, prefix=prefix, limits=Limits(mark_chunk_size=20))
        trackers.append(tracker)
        for uid in range(100):
            ledger.attempt(f"q{turns}", uid, AT)
            assert tracker.mark_event_nowait(f"q{turns}", uid, AT)
        return tracker.aclose()

    async def after(turns: int, finished: bool) -> None:
        tracker = trackers[-1]
        if not tracker.closed:  # cancelled before aclose() began: still open, so close
            await tracker.aclose()
        stats = tracker.stats()
        if stats.nowait_written == 100:
            for uid in range(100):
                ledger.ack(f"q{turns}", uid, AT)
        assert stats.nowait_written + stats.nowait_dropped == 100
        assert stats.nowait_pending == 0

    try:
        sweep = await cancel_at_every_turn(start, MAX_TURNS, after)
        assert sweep.cancelled > 0
        assert sweep.streak == 3
        probe = Tracker(client, prefix=prefix)
        await check_invariants(redis_url, prefix, ledger, probe, connection_bound=2)
        await probe.aclose()
    finally:
        await client.aclose()
