"""A mark Redis refuses for good never poisons the marks around it.

The poison: a foreign value (a hash) sits at the exact day key one mark writes, so Redis
answers that mark's ``SETBIT`` with ``WRONGTYPE`` on every attempt. The batch holding it is
split until the mark is alone; it is rejected (counted in ``stats().rejected``, logged once
per reason, raised as :class:`~bitlens.MarkRejected` to an awaiting caller) and every
other mark is written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING

import anyio
import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from _helpers import connect
from bitlens import Coalesce, DayEvents, Limits, MarkRejected, Tracker
from bitlens.embedded import EmbeddedRedis
from faults._invariants import Ledger, check_invariants, tracked_client

if TYPE_CHECKING:
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from _proxy import RoundTripProxy
    from harness import EmbeddedCluster

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
GOOD, BAD = "active", "poisoned"


@pytest.fixture
def anyio_backend() -> str:
    """The fire-and-forget queue and coalescing run on asyncio's loop."""
    return "asyncio"


async def _poison(client: redis.asyncio.Redis, prefix: str, event: str = BAD) -> None:
    """Put a hash at the day key ``event``'s marks at :data:`AT` write (shard 0)."""
    await client.hset(f"{prefix}:{{0}}:{event}:D2026-11-27", "not", "a bitmap")  # pyright: ignore[reportUnknownMemberType]


def _expected_rejection(error: MarkRejected, event: str, user_id: int) -> None:
    assert (error.event, error.user_id) == (event, user_id)
    assert "WRONGTYPE" in error.reason
    assert isinstance(error.__cause__, ResponseError)


async def test_one_bad_mark_among_a_hundred_queued_ones_is_rejected_alone(
    redis_url: str, prefix: str
) -> None:
    """50 good queued marks, 1 poisoned, 50 good: all 100 good are written, 1 rejected."""
    ledger = Ledger()
    admin = connect(redis_url)
    client = tracked_client(redis_url)
    tracker = Tracker(client, prefix=prefix)
    try:
        await _poison(admin, prefix)
        for uid in range(100):
            if uid == 50:
                assert tracker.mark_event_nowait(BAD, 5000, AT)
            assert tracker.mark_event_nowait(GOOD, uid, AT)
            ledger.attempt(GOOD, uid, AT)
        await tracker.aclose()
        for uid in range(100):
            ledger.ack(GOOD, uid, AT)
        stats = tracker.stats()
        assert (stats.rejected, stats.nowait_written, stats.nowait_dropped) == (1, 100, 0)
        fresh = Tracker(client, prefix=prefix)
        await check_invariants(redis_url, prefix, ledger, fresh, connection_bound=4)
        await fresh.aclose()
    finally:
        await tracker.aclose()
        await client.aclose()
        await admin.aclose()


async def test_a_queued_mark_behind_a_rejected_one_is_written_without_a_retry(
    redis_url: str, prefix: str
) -> None:
    """The queue moves on at once: no failure is counted, nothing waits for a backoff."""
    admin = connect(redis_url)
    tracker = Tracker(redis_url, prefix=prefix, limits=Limits(mark_chunk_size=1))
    try:
        await _poison(admin, prefix)
        tracker.mark_event_nowait(BAD, 1, AT)
        tracker.mark_event_nowait(GOOD, 2, AT)
        await tracker.aclose()
        assert (tracker.stats().nowait_failures, tracker.stats().rejected) == (0, 1)
        assert await admin.getbit(f"{prefix}:{{0}}:{GOOD}:D2026-11-27", 2) == 1
    finally:
        await tracker.aclose()
        await admin.aclose()


async def test_splitting_a_refused_batch_costs_two_round_trips_per_halving(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """8 queued marks, the first refused: 1 + 2·log2(8) = 7 round trips, 1 rejected."""
    tracker = Tracker(counted_client, prefix=prefix)
    await _poison(counted_client, prefix)
    proxy.reset()
    tracker.mark_event_nowait(BAD, 0, AT)
    for uid in range(1, 8):
        tracker.mark_event_nowait(GOOD, uid, AT)
    await tracker.aclose()
    assert proxy.round_trips == 7
    assert tracker.stats().rejected == 1


async def test_a_rejection_is_logged_once_per_reason(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Three marks refused with WRONGTYPE log one error naming the first of them."""
    admin = connect(redis_url)
    tracker = Tracker(redis_url, prefix=prefix)
    try:
        await _poison(admin, prefix)
        with caplog.at_level(logging.ERROR, logger="bitlens"):
            for uid in (1, 2, 3):
                tracker.mark_event_nowait(BAD, uid, AT)
            await tracker.aclose()
        rejections = [r for r in caplog.records if "rejected the mark" in r.getMessage()]
        assert len(rejections) == 1
        assert "WRONGTYPE" in rejections[0].getMessage()
        assert tracker.stats().rejected == 3
    finally:
        await tracker.aclose()
        await admin.aclose()


async def test_a_passing_error_is_retried_and_never_rejected(
    redis_binary: str, prefix: str
) -> None:
    """Queued marks sent while the server is down are retried, then written; none rejected."""
    with EmbeddedRedis(redis_binary) as server:
        # No retries inside the client: each failed attempt reaches the queue's own retry.
        client = tracked_client(server.url, retry=Retry(NoBackoff(), 0))
        tracker = Tracker(client, prefix=prefix)
        try:
            await tracker.mark_event(GOOD, 1, AT)  # connected; lost with the server
            server.kill()
            for uid in range(2, 12):
                tracker.mark_event_nowait(GOOD, uid, AT)
            await anyio.sleep(0.3)
            await anyio.to_thread.run_sync(server.start)
            await tracker.aclose(drain_timeout=20)
            stats = tracker.stats()
            assert stats.nowait_failures > 0
            assert (stats.rejected, stats.nowait_written) == (0, 10)
            async with Tracker(server.url, prefix=prefix) as reader:
                assert await reader.count(DayEvents(GOOD, 2026, 11, 27)) == 10
        finally:
            await tracker.aclose()
            await client.aclose()


async def test_a_coalesced_bad_mark_fails_its_own_caller_only(redis_url: str, prefix: str) -> None:
    """50 coalesced callers, one mark poisoned: it raises MarkRejected, the 49 others land."""
    ledger = Ledger()
    admin = connect(redis_url)
    client = tracked_client(redis_url)
    tracker = Tracker(client, prefix=prefix, coalesce=Coalesce(delay=0.02))

    async def mark(uid: int) -> None:
        event = BAD if uid == 17 else GOOD
        if event == GOOD:
            ledger.attempt(event, uid, AT)
        await tracker.mark_event(event, uid, AT)
        ledger.ack(event, uid, AT)

    try:
        await _poison(admin, prefix)
        outcomes = await asyncio.gather(*(mark(uid) for uid in range(50)), return_exceptions=True)
        bad = outcomes.pop(17)
        assert outcomes == [None] * 49
        assert isinstance(bad, MarkRejected)
        _expected_rejection(bad, BAD, 17)
        stats = tracker.stats()
        assert (stats.rejected, stats.coalesced_batches) == (1, 1)
        await check_invariants(redis_url, prefix, ledger, tracker, connection_bound=4)
    finally:
        await tracker.aclose()
        await client.aclose()
        await admin.aclose()


async def test_a_lone_mark_refused_for_good_raises_mark_rejected(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A plain mark_event at a poisoned key raises MarkRejected, chained from WRONGTYPE."""
    tracker = Tracker(client, prefix=prefix)
    await _poison(client, prefix)
    with pytest.raises(MarkRejected) as caught:
        await tracker.mark_event(BAD, 9, AT)
    _expected_rejection(caught.value, BAD, 9)
    assert tracker.stats().rejected == 1
    await tracker.aclose()


async def test_cancelling_aclose_while_it_drains_stops_the_sender(
    redis_binary: str, prefix: str
) -> None:
    """aclose() cancelled mid-drain: the sender stops, so nothing is written after close."""
    with EmbeddedRedis(redis_binary) as server:
        tracker = Tracker(server.url, prefix=prefix)
        try:
            await tracker.mark_event(GOOD, 1, AT)  # connected; lost with the server
            server.kill()
            for uid in range(2, 12):
                tracker.mark_event_nowait(GOOD, uid, AT)
            closing = asyncio.ensure_future(tracker.aclose())
            await anyio.wait_all_tasks_blocked()  # aclose() waits for the sender to drain
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
            assert tracker.stats().nowait_dropped == 10
            await anyio.to_thread.run_sync(server.start)
            await anyio.sleep(1.5)  # longer than any backoff a live sender would be in
            admin = connect(server.url)
            try:
                assert await admin.getbit(f"{prefix}:{{0}}:{GOOD}:D2026-11-27", 2) == 0
            finally:
                await admin.aclose()
        finally:
            await tracker.aclose()


async def test_on_a_cluster_a_bad_mark_is_rejected_alone_on_every_path(
    redis_cluster: EmbeddedCluster, cluster_client: RedisCluster, prefix: str
) -> None:
    """Cluster, ids over many shards: coalesced and queued bad marks fail alone; others land."""
    ledger = Ledger()
    shard_bits = 8
    await cluster_client.hset(  # pyright: ignore[reportUnknownMemberType]
        f"{prefix}:{{3}}:{BAD}:D2026-11-27", "not", "a bitmap"
    )
    tracker = Tracker(
        cluster_client, prefix=prefix, shard_bits=shard_bits, coalesce=Coalesce(delay=0.02)
    )
    bad_id = 3 << shard_bits

    async def mark(uid: int, event: str) -> None:
        if event == GOOD:
            ledger.attempt(event, uid, AT)
        await tracker.mark_event(event, uid, AT)
        ledger.ack(event, uid, AT)

    try:
        marks = [(uid * 37, GOOD) for uid in range(40)] + [(bad_id, BAD)]
        outcomes = await asyncio.gather(*(mark(*m) for m in marks), return_exceptions=True)
        bad = outcomes.pop()
        assert outcomes == [None] * 40
        assert isinstance(bad, MarkRejected)
        _expected_rejection(bad, BAD, bad_id)
        for uid in range(40, 80):
            tracker.mark_event_nowait(GOOD, uid * 37, AT)
            ledger.attempt(GOOD, uid * 37, AT)
        tracker.mark_event_nowait(BAD, bad_id, AT)
        await tracker.aclose()
        for uid in range(40, 80):
            ledger.ack(GOOD, uid * 37, AT)
        assert tracker.stats().rejected == 2
        fresh = Tracker(cluster_client, prefix=prefix, shard_bits=shard_bits)
        await check_invariants(
            redis_cluster.url, prefix, ledger, fresh, shard_bits=shard_bits, cluster=True
        )
        await fresh.aclose()
    finally:
        await tracker.aclose()
