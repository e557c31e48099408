"""The fault suite's own checks pass on a healthy run and catch what they must."""

from __future__ import annotations

import datetime as dt

import pytest

from _helpers import connect
from bitlens import Tracker
from faults._invariants import Ledger, check_invariants, tracked_client

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)


async def test_invariants_hold_after_plain_marks(redis_url: str, prefix: str) -> None:
    """A run without faults passes all four checks."""
    ledger = Ledger()
    client = tracked_client(redis_url)
    async with Tracker(client, prefix=prefix) as tracker:
        for uid in (1, 2, 3, 5_000_000):
            await tracker.mark_event("active", uid, AT)
            ledger.ack("active", uid, AT)
        await check_invariants(redis_url, prefix, ledger, tracker, connection_bound=2)
    await client.aclose()


async def test_invariants_catch_a_missing_acknowledged_mark(redis_url: str, prefix: str) -> None:
    """An acknowledged mark that is not in Redis fails check 1."""
    ledger = Ledger()
    client = tracked_client(redis_url)
    async with Tracker(client, prefix=prefix) as tracker:
        await tracker.mark_event("active", 1, AT)
        ledger.ack("active", 1, AT)
        ledger.ack("active", 2, AT)  # never sent
        with pytest.raises(AssertionError, match="acked marks missing"):
            await check_invariants(redis_url, prefix, ledger, tracker)
    await client.aclose()


async def test_invariants_catch_a_leftover_temp_key(redis_url: str, prefix: str) -> None:
    """A temp key left under the prefix fails check 2."""
    ledger = Ledger()
    admin = connect(redis_url)
    client = tracked_client(redis_url)
    async with Tracker(client, prefix=prefix) as tracker:
        await tracker.mark_event("active", 1, AT)
        ledger.ack("active", 1, AT)
        await admin.set(f"{prefix}:{{0}}:~tmp:abc:1", b"x")
        with pytest.raises(AssertionError, match="keys left behind"):
            await check_invariants(redis_url, prefix, ledger, tracker)
    await client.aclose()
    await admin.aclose()
