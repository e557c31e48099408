"""The quick checkout: an uncontended round trip takes the pool's idle connection directly.

On a single server the transport takes redis-py's most recent idle connection and gives it
back without the pool's lock, metrics or events. These tests hold it to the pool's
promises: every connection is back in the pool between calls, one the server closed is not
written to, a cancelled round trip's connection is not reused with a reply waiting, a RESP3
push among the replies is not taken for one, and a ``BlockingConnectionPool`` still wakes
the callers waiting for it.
"""

from __future__ import annotations

import datetime as dt

import anyio
import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from _helpers import connect
from bitlens import DayEvents, Tracker

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
DAY = DayEvents("active", 2026, 11, 27)


async def _marked(tracker: Tracker) -> None:
    """Mark ids 1 and 2 and count them once, leaving a connection kept."""
    await tracker.mark_events([("active", 1, AT), ("active", 2, AT)])
    assert await tracker.count(DAY) == 2


async def test_between_calls_every_connection_of_the_pool_is_free(
    redis_url: str, prefix: str
) -> None:
    """After marks and counts, every connection the pool allows can be checked out."""
    pool = redis.asyncio.ConnectionPool.from_url(redis_url, max_connections=64)
    client = redis.asyncio.Redis(connection_pool=pool)
    taken = []
    try:
        tracker = Tracker(client, prefix=prefix)
        await _marked(tracker)
        taken = [await pool.get_connection() for _ in range(64)]  # type: ignore[no-untyped-call]
        assert len(taken) == 64
    finally:
        for conn in taken:
            await pool.release(conn)
        await client.aclose()
        await pool.disconnect()


async def test_an_idle_connection_the_server_closed_is_reopened_without_a_retry(
    redis_url: str, prefix: str
) -> None:
    """CLIENT KILL of the idle connection: the next count, with no retries, still answers."""
    client = redis.asyncio.Redis.from_url(
        redis_url, client_name="kept-under-test", retry=Retry(NoBackoff(), 0)
    )
    admin = connect(redis_url)
    try:
        tracker = Tracker(client, prefix=prefix)
        await _marked(tracker)
        killed = 0
        for entry in await admin.client_list():  # pyright: ignore[reportUnknownMemberType]
            if entry.get("name") == "kept-under-test":
                killed += await admin.client_kill_filter(_id=entry["id"])  # pyright: ignore[reportUnknownMemberType]
        assert killed == 1
        await anyio.sleep(0.1)  # the close reaches the client's event loop
        assert await tracker.count(DAY) == 2
    finally:
        await client.aclose()
        await admin.aclose()


async def test_a_cancelled_count_leaves_no_reply_for_the_next_one(
    redis_url: str, prefix: str
) -> None:
    """A count cancelled while the server is paused: the next count reads its own reply."""
    client = connect(redis_url)
    admin = connect(redis_url)
    other = DayEvents("other", 2026, 11, 27)
    try:
        tracker = Tracker(client, prefix=prefix)
        await _marked(tracker)
        await tracker.mark_event("other", 3, AT)
        assert await tracker.count(other) == 1
        await admin.execute_command("CLIENT", "PAUSE", 300, "ALL")  # type: ignore[no-untyped-call]
        with anyio.move_on_after(0.1) as scope:
            await tracker.count(DAY)
        assert scope.cancelled_caught
        await anyio.sleep(0.4)  # the pause ends; the cancelled count's reply arrives
        assert await tracker.count(other) == 1
        assert await tracker.count(DAY) == 2
    finally:
        await client.aclose()
        await admin.aclose()


async def test_a_blocking_pool_wakes_the_caller_waiting_for_the_trackers_connection(
    redis_url: str, prefix: str
) -> None:
    """A BlockingConnectionPool of one: a command waiting while a count runs gets the connection."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(redis_url, max_connections=1, timeout=3)
    client = redis.asyncio.Redis(connection_pool=pool)
    admin = connect(redis_url)
    answers: dict[str, int] = {}
    try:
        tracker = Tracker(client, prefix=prefix)
        await _marked(tracker)

        async def count() -> None:
            answers["count"] = await tracker.count(DAY)

        async def exists() -> None:
            answers["exists"] = await client.exists(f"{prefix}:nothing-here")

        await admin.execute_command("CLIENT", "PAUSE", 200, "ALL")  # type: ignore[no-untyped-call]
        with anyio.fail_after(2):
            async with anyio.create_task_group() as tg:
                tg.start_soon(count)
                await anyio.sleep(0.05)  # the count holds the pool's one connection
                tg.start_soon(exists)
        assert answers == {"count": 2, "exists": 0}
    finally:
        await client.aclose()
        await pool.disconnect()
        await admin.aclose()


async def test_a_push_among_the_replies_is_not_taken_for_one(redis_url: str, prefix: str) -> None:
    """With CLIENT TRACKING on (RESP3), the invalidation a mark causes is skipped, not read."""
    client = connect(redis_url)
    try:
        tracker = Tracker(client, prefix=prefix)
        await _marked(tracker)
        await client.execute_command("CLIENT", "TRACKING", "ON")  # type: ignore[no-untyped-call]
        assert await tracker.contains(DAY, 1)  # the day bitmap is now tracked
        await tracker.mark_event("active", 3, AT)  # its write pushes an invalidation here
        assert await tracker.contains(DAY, 3)
        assert await tracker.count(DAY) == 3
        info = await client.execute_command("CLIENT", "TRACKINGINFO")  # type: ignore[no-untyped-call]
        assert isinstance(info, dict)
        assert b"on" in info[b"flags"]  # the same connection: no reconnection lost it
    finally:
        await client.aclose()
