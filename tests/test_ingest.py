"""Ingestion: batches, dense images, expiry, coalescing and fire-and-forget, with faults."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest
import redis.asyncio
import redis.exceptions

from _helpers import scan_keys
from bitlens import Coalesce, DayEvents, Limits, MonthEvents, Tracker, WeekEvents
from bitlens.embedded import EmbeddedRedis

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _proxy import RoundTripProxy

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
AT = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)
DAY = DayEvents("active", 2026, 11, 27)


async def _members(tracker: Tracker, expr: DayEvents | MonthEvents | WeekEvents) -> list[int]:
    return [uid async for uid in tracker.members(expr)]


@pytest.fixture
def durable_server(redis_binary: str) -> Iterator[EmbeddedRedis]:
    """A private server that keeps every acknowledged write across a restart (AOF always)."""
    server = EmbeddedRedis(redis_binary, args=["--appendonly", "yes", "--appendfsync", "always"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_server(redis_binary: str) -> Iterator[EmbeddedRedis]:
    """A private server a test may stop and start."""
    server = EmbeddedRedis(redis_binary)
    server.start()
    yield server
    server.stop()


async def test_batch_of_1000_marks_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """An explicit batch of 1,000 marks goes out in one round trip."""
    tracker = Tracker(counted_client, prefix=prefix)
    async with tracker.batch() as batch:
        for uid in range(0, 50_000, 50):
            batch.mark_event("active", uid, AT)
        assert proxy.round_trips == 0
    assert proxy.round_trips == 1
    assert await tracker.count(DAY) == 1_000


async def test_batch_is_discarded_when_the_block_raises(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A batch whose block raises sends nothing."""
    tracker = Tracker(client, prefix=prefix)

    async def fill_then_fail() -> None:
        async with tracker.batch() as batch:
            batch.mark_event("active", 1, AT)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await fill_then_fail()
    assert await tracker.count(DAY) == 0


async def test_batch_applies_marks_and_unmarks_in_order(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Marking then unmarking a bit in one batch leaves it clear, and vice versa."""
    tracker = Tracker(client, prefix=prefix)
    async with tracker.batch() as batch:
        batch.mark_event("active", 1, AT)
        batch.unmark_event("active", 1, AT)
        batch.unmark_event("active", 2, AT)
        batch.mark_event("active", 2, AT)
    assert await _members(tracker, DAY) == [2]


async def test_batch_rejects_bad_input_at_once(client: redis.asyncio.Redis, prefix: str) -> None:
    """A bad id raises when it is added, not when the batch is sent."""
    tracker = Tracker(client, prefix=prefix)
    batch = tracker.batch()
    with pytest.raises(ValueError, match="user ids"):
        batch.mark_event("active", -1, AT)
    assert len(batch) == 0


async def test_dense_marks_use_a_byte_image_and_keep_existing_bits(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """5,000 close ids go in as SETRANGE + BITOP OR, OR'ed with the bits already there."""
    tracker = Tracker(counted_client, prefix=prefix)
    await tracker.mark_event("active", 123_456, AT)
    ids = random.Random(3).sample(range(10_000), 5_000)
    proxy.reset()
    await tracker.mark_events([("active", uid, AT) for uid in ids])
    assert {"SETRANGE", "BITOP"} <= set(proxy.command_names)
    assert await _members(tracker, DAY) == sorted({*ids, 123_456})


async def test_sparse_marks_use_one_bitfield_per_key(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A few far-apart ids in one key are one BITFIELD, exact."""
    tracker = Tracker(counted_client, prefix=prefix)
    ids = [3, 70_000, 500_000, 1_048_575]
    proxy.reset()
    await tracker.mark_events([("active", uid, AT) for uid in ids])
    assert proxy.command_names.count("BITFIELD") == 4  # month, week, day, universe
    assert await _members(tracker, DAY) == ids


async def test_huge_shards_never_get_byte_images(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """In 512 MiB shards, 5,000 close ids high up go in as BITFIELD, not a 256 MiB image."""
    tracker = Tracker(counted_client, prefix=prefix, shard_bits=32)
    ids = list(range(2**31, 2**31 + 10_000, 2))
    proxy.reset()
    await tracker.mark_events([("active", uid, AT) for uid in ids])
    assert "SETRANGE" not in proxy.command_names
    assert proxy.command_names.count("BITFIELD") == 4
    assert await tracker.count(DAY) == 5_000


async def test_progress_is_reported_after_each_chunk(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """mark_events calls progress with the running total after every chunk."""
    tracker = Tracker(client, prefix=prefix, limits=Limits(mark_chunk_size=400))
    seen: list[int] = []
    total = await tracker.mark_events(
        ((("active", uid, AT)) for uid in range(1_000)), progress=seen.append
    )
    assert total == 1_000
    assert seen == [400, 800, 1_000]


async def test_a_bad_item_after_full_chunks_keeps_those_chunks(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A bad item in the fourth chunk raises after the three before it are written."""
    tracker = Tracker(client, prefix=prefix, limits=Limits(mark_chunk_size=100))
    seen: list[int] = []
    items: list[tuple[str, int, dt.datetime]] = [("active", uid, AT) for uid in range(350)]
    with pytest.raises(ValueError, match="user ids"):
        await tracker.mark_events([*items, ("active", -1, AT)], progress=seen.append)
    assert seen == [100, 200, 300]
    assert await tracker.count(DAY) == 300


async def test_mark_events_raises_when_a_chunk_in_flight_fails(
    private_server: EmbeddedRedis,
) -> None:
    """A server lost mid-stream raises a connection error; written chunks stay reported."""
    plain = redis.asyncio.Redis.from_url(private_server.url, retry=None)
    tracker = Tracker(plain, prefix="f", limits=Limits(mark_chunk_size=500))
    seen: list[int] = []

    def items() -> Iterator[tuple[str, int, dt.datetime]]:
        for uid in range(5_000):
            if uid == 1_600:
                private_server.kill()
            yield ("active", uid, AT)

    with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        await tracker.mark_events(items(), progress=seen.append)
    assert seen in ([500, 1_000], [500, 1_000, 1_500])
    await plain.aclose()


async def test_mark_events_cancelled_midway_leaves_the_tracker_usable(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Cancelling a long mark_events stops it; the next call and queries work and agree."""
    tracker = Tracker(client, prefix=prefix, limits=Limits(mark_chunk_size=500))
    seen: list[int] = []
    with anyio.move_on_after(0.05) as scope:
        await tracker.mark_events(
            (("active", uid % 200_000, AT) for uid in range(10**7)), progress=seen.append
        )
    assert scope.cancelled_caught
    assert seen
    assert await tracker.count(DAY) >= seen[-1]
    assert await tracker.mark_events([("active", uid, AT) for uid in range(200_000)]) == 200_000
    assert await tracker.count(DAY) == 200_000
    assert await client.keys(f"{prefix}:*~tmp*") == []


async def test_coalesced_batches_are_counted(client: redis.asyncio.Redis, prefix: str) -> None:
    """stats().coalesced_batches counts the batches coalescing callers shared."""
    tracker = Tracker(client, prefix=prefix, coalesce=Coalesce(delay=0.05))
    async with anyio.create_task_group() as tg:
        for uid in range(300):
            tg.start_soon(tracker.mark_event, "active", uid, AT)
    stats = tracker.stats()
    assert (stats.marks_written, stats.coalesced_batches, stats.batches_sent) == (300, 1, 1)


async def test_day_keys_expire_after_their_period(client: redis.asyncio.Redis, prefix: str) -> None:
    """expire_after={"day": 30 days} sets EXPIREAT end-of-day + 30 days; months keep no TTL."""
    tracker = Tracker(client, prefix=prefix, expire_after={"day": dt.timedelta(days=30)})
    now = dt.datetime.now(UTC)
    await tracker.mark_event("active", 5, now)
    day_key = tracker.schema.event_key("active", DayEvents.from_date("active", now).period, 0)
    month_key = tracker.schema.event_key("active", MonthEvents.from_date("active", now).period, 0)
    end_of_day = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), UTC)
    expected = (end_of_day + dt.timedelta(days=30) - now).total_seconds()
    ttl = await client.ttl(day_key)
    assert abs(ttl - expected) < 5
    assert await client.ttl(month_key) == -1
    assert await client.ttl(tracker.schema.universe_key(0)) == -1


async def test_every_write_carries_one_expireat_per_expiring_key(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """The second mark into an expiring key sends its EXPIREAT again, once, in the MULTI."""
    tracker = Tracker(counted_client, prefix=prefix, expire_after={"day": dt.timedelta(days=2)})
    now = dt.datetime.now(UTC)
    await tracker.mark_event("active", 1, now)
    proxy.reset()
    await tracker.mark_event("active", 2, now)
    assert proxy.round_trips == 1
    assert proxy.command_names.count("EXPIREAT") == 1


async def test_a_key_recreated_after_a_flush_expires_again(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """After its keys are lost, the same tracker's next mark re-creates them with a deadline."""
    tracker = Tracker(client, prefix=prefix, expire_after={"day": dt.timedelta(days=2)})
    now = dt.datetime.now(UTC)
    await tracker.mark_event("active", 1, now)
    await client.delete(*await scan_keys(client, prefix))  # what a FLUSHDB does to them
    await tracker.mark_event("active", 2, now)
    day_key = tracker.schema.event_key("active", DayEvents.from_date("active", now).period, 0)
    assert await client.ttl(day_key) > 86_400


async def test_dense_image_keeps_the_expiry(client: redis.asyncio.Redis, prefix: str) -> None:
    """BITOP drops a key's TTL; the write batch sets the deadline again after it."""
    tracker = Tracker(client, prefix=prefix, expire_after={"day": dt.timedelta(days=2)})
    now = dt.datetime.now(UTC)
    await tracker.mark_event("active", 1, now)
    await tracker.mark_events([("active", uid, now) for uid in range(2, 3_000)])
    day_key = tracker.schema.event_key("active", DayEvents.from_date("active", now).period, 0)
    assert await client.ttl(day_key) > 86_400


async def test_coalesced_marks_share_round_trips(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """1,000 concurrent mark_event calls with coalescing take a handful of round trips."""
    tracker = Tracker(counted_client, prefix=prefix, coalesce=Coalesce(delay=0.005))
    async with anyio.create_task_group() as tg:
        for uid in range(1_000):
            tg.start_soon(tracker.mark_event, "active", uid, AT)
    assert proxy.round_trips <= 3
    assert await tracker.count(DAY) == 1_000
    assert tracker.stats().marks_written == 1_000


async def test_coalescing_leader_cancelled_still_writes_the_batch(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Cancelling the task that leads a batch does not lose the others' marks."""
    tracker = Tracker(client, prefix=prefix, coalesce=Coalesce(delay=0.05))
    done: list[int] = []

    async def mark(uid: int) -> None:
        await tracker.mark_event("active", uid, AT)
        done.append(uid)

    leader_scope = anyio.CancelScope()

    async def lead() -> None:
        with leader_scope:
            await mark(0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lead)
        await anyio.lowlevel.checkpoint()  # one loop turn: the leader opens the batch
        for uid in range(1, 20):
            tg.start_soon(mark, uid)
        await anyio.lowlevel.checkpoint()  # one loop turn: the others join it
        assert done == []  # the batch is still waiting out its coalescing delay
        leader_scope.cancel()
    assert sorted(done) == list(range(1, 20))
    assert await tracker.count(DAY) == 20


async def test_ten_thousand_coalesced_marks_survive_a_restart(
    durable_server: EmbeddedRedis,
) -> None:
    """With the server restarted midway, every mark whose await returned is in Redis."""
    tracker = Tracker(durable_server.url, prefix="r", coalesce=True)
    returned: set[int] = set()
    failed: set[int] = set()
    first_returned = anyio.Event()

    async def mark(uid: int) -> None:
        try:
            await tracker.mark_event("active", uid, AT)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
            failed.add(uid)
        else:
            returned.add(uid)
            first_returned.set()

    async with anyio.create_task_group() as tg:
        for uid in range(10_000):
            tg.start_soon(mark, uid)
            if uid == 5_000:
                await first_returned.wait()  # some marks are acknowledged before the restart
                await anyio.to_thread.run_sync(durable_server.restart)
    assert returned | failed == set(range(10_000))
    assert set(range(5_001, 10_000)) <= returned  # every mark sent once it was back
    assert len(returned) >= 5_000
    stored = set(await _members_of(tracker))
    assert returned <= stored
    await tracker.aclose()


async def _members_of(tracker: Tracker) -> list[int]:
    return await _members(tracker, DAY)


async def test_nowait_marks_survive_a_server_outage(private_server: EmbeddedRedis) -> None:
    """Queued marks wait out a few seconds of downtime and all land once it is back."""
    plain = redis.asyncio.Redis.from_url(private_server.url)  # no retries: the queue retries
    tracker = Tracker(plain, prefix="n")
    await tracker.mark_event("active", 0, AT)
    private_server.kill()
    for uid in range(1, 501):
        assert tracker.mark_event_nowait("active", uid, AT)
    await anyio.sleep(2)
    assert tracker.stats().nowait_pending == 500
    await anyio.to_thread.run_sync(private_server.start)
    await tracker.aclose(drain_timeout=30)
    stats = tracker.stats()
    assert stats.nowait_written == 500
    assert stats.nowait_failures >= 1
    async with Tracker(private_server.url, prefix="n") as reader:
        assert await _members(reader, DAY) == list(range(1, 501))
    await plain.aclose()


async def test_nowait_overflow_drops_new_marks_and_counts_them(
    private_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """Past nowait_max_queue, new marks are refused, counted and logged; old ones kept."""
    tracker = Tracker(private_server.url, prefix="o", limits=Limits(nowait_max_queue=100))
    private_server.kill()
    with caplog.at_level(logging.WARNING, logger="bitlens"):
        accepted = [tracker.mark_event_nowait("active", uid, AT) for uid in range(150)]
    assert accepted == [True] * 100 + [False] * 50
    assert tracker.stats().nowait_dropped == 50
    assert "queue full" in caplog.text
    await anyio.to_thread.run_sync(private_server.start)
    await tracker.aclose(drain_timeout=30)
    async with Tracker(private_server.url, prefix="o") as reader:
        assert await _members(reader, DAY) == list(range(100))


async def test_nowait_rejects_bad_input_immediately(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A bad id is a bug in the caller: mark_event_nowait raises at once."""
    tracker = Tracker(client, prefix=prefix)
    with pytest.raises(ValueError, match="user ids"):
        tracker.mark_event_nowait("active", -5)
    assert tracker.stats().nowait_enqueued == 0


async def test_aclose_drains_the_nowait_queue(client: redis.asyncio.Redis, prefix: str) -> None:
    """Marks queued just before aclose() are written by it."""
    tracker = Tracker(client, prefix=prefix)
    for uid in range(2_000):
        tracker.mark_event_nowait("active", uid, AT)
    await tracker.aclose()
    reader = Tracker(client, prefix=prefix)
    assert await reader.count(DAY) == 2_000


async def test_aclose_gives_up_after_its_drain_timeout(private_server: EmbeddedRedis) -> None:
    """With Redis gone, aclose(drain_timeout=...) returns and counts the unsent marks."""
    tracker = Tracker(private_server.url, prefix="g")
    private_server.kill()
    for uid in range(10):
        tracker.mark_event_nowait("active", uid, AT)
    started = time.monotonic()
    await tracker.aclose(drain_timeout=0.5)
    assert time.monotonic() - started < 10
    assert tracker.stats().nowait_dropped == 10


async def test_a_failed_batch_flush_keeps_its_marks_for_a_retry(
    private_server: EmbeddedRedis,
) -> None:
    """A flush that fails (server down) keeps its marks; the next flush sends them."""
    plain = redis.asyncio.Redis.from_url(private_server.url, retry=None)
    tracker = Tracker(plain, prefix="b")
    batch = tracker.batch()
    for uid in range(100):
        batch.mark_event("active", uid, AT)
    private_server.kill()
    with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        await batch.flush()
    assert len(batch) == 100
    await anyio.to_thread.run_sync(private_server.start)
    assert await batch.flush() == 100
    assert await tracker.count(DAY) == 100
    await plain.aclose()
