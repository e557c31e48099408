"""Cancelling one coalesced caller affects that caller alone.

A coalesced batch is sent by a task the tracker owns, never by a caller's task: plain
asyncio cancellation (``task.cancel()``, ``asyncio.wait_for`` timing out, what ASGI servers
do when a client goes away) of the caller that opened a batch, or of any other, leaves
every other caller's mark written before its ``await`` returns.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from _helpers import connect
from bitlens import Coalesce, Tracker
from faults._invariants import Ledger, check_invariants, tracked_client
from faults._setup import spin

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)


@pytest.fixture
def anyio_backend() -> str:
    """These scenarios cancel plain asyncio tasks."""
    return "asyncio"


@pytest.mark.parametrize("victim", [0, 1, 25, 49])
@pytest.mark.parametrize("turns", [0, 1, 2, 3, 5, 8])
async def test_a_cancelled_coalesced_caller_costs_no_other_caller_its_mark(
    redis_url: str, prefix: str, victim: int, turns: int
) -> None:
    """Cancel caller ``victim`` (0 opened the batch) after ``turns`` loop turns: 49 still land."""
    ledger = Ledger()
    client = tracked_client(redis_url)
    tracker = Tracker(client, prefix=prefix, coalesce=Coalesce(delay=0.02))

    async def mark(uid: int) -> None:
        ledger.attempt("active", uid, AT)
        await tracker.mark_event("active", uid, AT)
        ledger.ack("active", uid, AT)

    try:
        tasks = [asyncio.ensure_future(mark(uid)) for uid in range(50)]
        await spin(turns)
        tasks[victim].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        others = [outcome for uid, outcome in enumerate(outcomes) if uid != victim]
        assert others == [None] * 49
        assert ledger.acked_count >= 49
        await check_invariants(redis_url, prefix, ledger, tracker, connection_bound=4)
    finally:
        await tracker.aclose()
        await client.aclose()


async def test_callers_timed_out_under_a_write_pause_cost_the_rest_nothing(
    redis_url: str, prefix: str
) -> None:
    """Writes paused 0.5 s, every other caller given up after 0.1 s: the others all land."""
    ledger = Ledger()
    admin = connect(redis_url)
    client = tracked_client(redis_url)
    tracker = Tracker(client, prefix=prefix, coalesce=Coalesce(delay=0.01))

    async def mark(uid: int) -> None:
        ledger.attempt("active", uid, AT)
        await tracker.mark_event("active", uid, AT)
        ledger.ack("active", uid, AT)

    try:
        await tracker.mark_event("warm", 1, AT)
        await admin.client_pause(500, all=False)  # pyright: ignore[reportUnknownMemberType]
        tasks = [
            asyncio.ensure_future(asyncio.wait_for(mark(uid), 0.1) if uid % 2 == 0 else mark(uid))
            for uid in range(400)
        ]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        timed_out = [uid for uid, outcome in enumerate(outcomes) if outcome is not None]
        assert timed_out, "no caller gave up: the pause was too short to test anything"
        assert all(uid % 2 == 0 for uid in timed_out)
        assert ledger.acked_count >= 200
        await check_invariants(redis_url, prefix, ledger, tracker, connection_bound=4)
    finally:
        await tracker.aclose()
        await client.aclose()
        await admin.aclose()
