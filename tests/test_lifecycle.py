"""Tracker lifecycle, client ownership, concurrency and the module-level default tracker."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING
from uuid import uuid4

import anyio
import pytest
import redis
import redis.asyncio

import bitlens
from _helpers import connect, ping
from bitlens import (
    DayEvents,
    MonthEvents,
    NoDefaultTracker,
    Tracker,
    TrackerClosed,
    UniqueEvents,
    _default,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

pytestmark = pytest.mark.anyio

UTC = timezone.utc
AT = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)
MONTH = MonthEvents("active", 2026, 11)


@pytest.fixture(autouse=True)
def no_default_tracker() -> Iterator[None]:
    """Start and end every test of this module without a default tracker."""
    _default.reset()
    yield
    _default.reset()


async def _client_names(client: redis.asyncio.Redis) -> list[str]:
    """Return the names of the server's client connections (CLIENT LIST).

    :param client: any client of the server
    """
    listed = await client.client_list()
    return [str(entry.get("name", "")) for entry in listed]


async def _wait_until_gone(client: redis.asyncio.Redis, name: str) -> bool:
    """Wait up to 2 s for every connection named ``name`` to leave the server.

    :param client: another client of the server
    :param name: the client name to look for
    """
    for _ in range(200):
        if name not in await _client_names(client):
            return True
        await anyio.sleep(0.01)
    return False


async def _members(tracker: Tracker, expr: bitlens.Expr) -> list[int]:
    """Collect ``tracker.members(expr)`` into a list.

    :param tracker: the tracker to ask
    :param expr: the expression
    """
    return [user_id async for user_id in tracker.members(expr)]


# -- ownership of the client ------------------------------------------------------------------


async def test_async_with_a_url_closes_the_tracker_and_its_own_client(
    redis_url: str, client: redis.asyncio.Redis, prefix: str
) -> None:
    """A tracker made from a URL closes its connections on exit, and is closed afterwards."""
    name = f"bitlens-{uuid4().hex[:8]}"
    async with Tracker(f"{redis_url}?client_name={name}", prefix=prefix) as tracker:
        await tracker.mark_event("active", 1, AT)
        assert tracker.closed is False
        assert name in await _client_names(client)
    assert tracker.closed is True
    assert await _wait_until_gone(client, name)


async def test_a_closed_tracker_refuses_every_call(redis_url: str, prefix: str) -> None:
    """After the async with block, marking and querying raise TrackerClosed."""
    async with Tracker(redis_url, prefix=prefix) as tracker:
        await tracker.mark_event("active", 1, AT)
    with pytest.raises(TrackerClosed):
        await tracker.mark_event("active", 2, AT)
    with pytest.raises(TrackerClosed):
        await tracker.mark_events([("active", 2, AT)])
    with pytest.raises(TrackerClosed):
        await tracker.mark_unique("active", 2)
    with pytest.raises(TrackerClosed):
        await tracker.count(MONTH)
    with pytest.raises(TrackerClosed):
        await tracker.count_many([MONTH])
    with pytest.raises(TrackerClosed):
        await tracker.contains(MONTH, 1)
    with pytest.raises(TrackerClosed):
        await _members(tracker, MONTH)
    with pytest.raises(TrackerClosed):
        async with tracker:
            pass


async def test_trackerclosed_is_a_runtimeerror() -> None:
    """TrackerClosed and NoDefaultTracker are RuntimeErrors and BitlensErrors."""
    assert issubclass(TrackerClosed, RuntimeError)
    assert issubclass(TrackerClosed, bitlens.BitlensError)
    assert issubclass(NoDefaultTracker, RuntimeError)
    assert issubclass(NoDefaultTracker, bitlens.BitlensError)


async def test_a_handed_client_is_never_closed(client: redis.asyncio.Redis, prefix: str) -> None:
    """aclose() and async with leave a client that was handed in open and connected."""
    connection_id = await client.client_id()
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_event("active", 1, AT)
    await tracker.aclose()
    assert tracker.closed is True
    async with Tracker(client, prefix=prefix) as second:
        assert await second.count(MONTH) == 1
    assert await ping(client)
    assert await client.client_id() == connection_id
    assert await Tracker(client, prefix=prefix).count(MONTH) == 1


async def test_aclose_twice_is_harmless(redis_url: str, prefix: str) -> None:
    """Calling aclose() twice, or after the async with block, raises nothing."""
    tracker = Tracker(redis_url, prefix=prefix)
    await tracker.mark_event("active", 1, AT)
    await tracker.aclose()
    await tracker.aclose()
    async with Tracker(redis_url, prefix=prefix) as other:
        assert await other.count(MONTH) == 1
    await other.aclose()
    assert tracker.closed is True
    assert other.closed is True


async def test_a_decode_responses_client_is_refused(redis_url: str) -> None:
    """A client made with decode_responses=True raises ValueError: bitmaps are bytes."""
    decoding = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            Tracker(decoding)
    finally:
        await decoding.aclose()


@pytest.mark.parametrize(
    "not_a_client",
    [None, 42, b"redis://localhost", redis.Redis(), object()],
    ids=["None", "int", "bytes", "sync-redis", "object"],
)
async def test_a_non_client_is_refused(not_a_client: object) -> None:
    """Anything but a URL str or a redis.asyncio.Redis raises TypeError."""
    with pytest.raises(TypeError, match="redis"):
        Tracker(not_a_client)  # type: ignore[arg-type]


# -- concurrency ------------------------------------------------------------------------------


@pytest.fixture
async def pooled_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """Yield a client whose pool waits for a free connection (at most 20) instead of failing.

    :param redis_url: the session server's URL
    """
    pool = redis.asyncio.BlockingConnectionPool.from_url(redis_url, max_connections=20, timeout=10)
    connection = redis.asyncio.Redis.from_pool(pool)
    try:
        yield connection
    finally:
        await connection.aclose()


async def _mark_concurrently(tracker: Tracker, ids: list[int]) -> None:
    """Mark each id in ``ids`` from its own task, all at once.

    :param tracker: the shared tracker
    :param ids: the ids, one task each
    """

    async def mark(user_id: int) -> None:
        await tracker.mark_event("active", user_id, AT)

    async with anyio.create_task_group() as group:
        for user_id in ids:
            group.start_soon(mark, user_id)


async def test_two_hundred_concurrent_tasks_share_one_tracker(redis_url: str, prefix: str) -> None:
    """200 tasks marking different ids through one tracker made from a URL give exact counts."""
    ids = [n * 52_361 for n in range(200)]
    async with Tracker(redis_url, prefix=prefix, track_unique=True) as tracker:
        await _mark_concurrently(tracker, ids)
        assert await tracker.count(MONTH) == 200
        assert await tracker.count(UniqueEvents("active")) == 200
        assert await _members(tracker, DayEvents("active", 2026, 11, 27)) == ids


async def test_two_hundred_concurrent_tasks_share_a_handed_client(
    pooled_client: redis.asyncio.Redis, prefix: str
) -> None:
    """200 tasks marking different ids through one tracker on a pooled client: exact counts."""
    tracker = Tracker(pooled_client, prefix=prefix, track_unique=True)
    ids = [n * 52_361 for n in range(200)]
    await _mark_concurrently(tracker, ids)
    assert await tracker.count(MONTH) == 200
    assert await tracker.count(UniqueEvents("active")) == 200
    assert await _members(tracker, DayEvents("active", 2026, 11, 27)) == ids


async def test_concurrent_marks_and_counts_on_a_fresh_tracker(
    pooled_client: redis.asyncio.Redis, prefix: str
) -> None:
    """Tasks counting while others mark new shards never fail, and the final count is exact."""
    tracker = Tracker(pooled_client, prefix=prefix)
    seen: list[int] = []

    async def count() -> None:
        seen.append(await tracker.count(MONTH))

    async with anyio.create_task_group() as group:
        group.start_soon(_mark_concurrently, tracker, [n << 20 for n in range(100)])
        for _ in range(100):
            group.start_soon(count)
    assert all(0 <= number <= 100 for number in seen)
    assert await tracker.count(MONTH) == 100
    assert await Tracker(pooled_client, prefix=prefix).count(MONTH) == 100


# -- the default tracker ----------------------------------------------------------------------


async def test_get_tracker_before_setup_raises() -> None:
    """get_tracker() before setup() raises NoDefaultTracker."""
    with pytest.raises(NoDefaultTracker):
        bitlens.get_tracker()


async def test_module_calls_before_setup_raise() -> None:
    """Module-level marking and expression queries without a tracker raise NoDefaultTracker."""
    with pytest.raises(NoDefaultTracker):
        await bitlens.mark_event("active", 1)
    with pytest.raises(NoDefaultTracker):
        await bitlens.mark_events([("active", 1)])
    with pytest.raises(NoDefaultTracker):
        await MONTH.count()
    with pytest.raises(NoDefaultTracker):
        await MONTH.contains(1)


async def test_setup_then_module_level_calls_use_the_default_tracker(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """After setup(), module-level marking and expression methods use the default tracker."""
    tracker = bitlens.setup(client, prefix=prefix)
    assert bitlens.get_tracker() is tracker
    await bitlens.mark_event("active", 123, AT)
    await bitlens.mark_event("active", 2**20 + 1, AT)
    assert await MONTH.count() == 2
    assert await MONTH.contains(123) is True
    assert await MONTH.contains(124) is False
    assert await MONTH.has_events() is True
    assert await MonthEvents("active", 2026, 10).has_events() is False
    assert [user_id async for user_id in MONTH.members()] == [123, 2**20 + 1]
    assert await tracker.count(MONTH) == 2


async def test_module_level_marking_functions(client: redis.asyncio.Redis, prefix: str) -> None:
    """mark_events, unmark_event, mark_unique and unmark_unique work on the default tracker."""
    bitlens.setup(client, prefix=prefix)
    assert await bitlens.mark_events([("active", 1, AT), ("active", 2, AT)]) == 2
    await bitlens.unmark_event("active", 1, AT)
    await bitlens.mark_unique("signed_up", 5)
    await bitlens.mark_unique("signed_up", 6)
    await bitlens.unmark_unique("signed_up", 5)
    assert [user_id async for user_id in MONTH.members()] == [2]
    assert [user_id async for user_id in UniqueEvents("signed_up").members()] == [6]


async def test_an_explicit_tracker_wins_over_the_default(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """expr.count(tracker=t) and friends ask ``t``, not the default tracker."""
    bitlens.setup(client, prefix=f"{prefix}-default")
    other = Tracker(client, prefix=prefix)
    await other.mark_event("active", 7, AT)
    assert await MONTH.count() == 0
    assert await MONTH.count(tracker=other) == 1
    assert await MONTH.contains(7, tracker=other) is True
    assert await MONTH.has_events(tracker=other) is True
    assert [user_id async for user_id in MONTH.members(tracker=other)] == [7]


async def test_setup_accepts_a_ready_tracker(client: redis.asyncio.Redis, prefix: str) -> None:
    """setup(tracker) installs that very tracker; options with a tracker raise TypeError."""
    tracker = Tracker(client, prefix=prefix)
    assert bitlens.setup(tracker) is tracker
    assert bitlens.get_tracker() is tracker
    with pytest.raises(TypeError):
        bitlens.setup(tracker, prefix="other")


async def test_setup_with_a_url_makes_a_tracker_that_owns_its_client(
    redis_url: str, prefix: str
) -> None:
    """setup(url) builds a working default tracker; closing it is the caller's job."""
    tracker = bitlens.setup(redis_url, prefix=prefix, track_unique=True)
    try:
        await bitlens.mark_event("active", 3, AT)
        assert await UniqueEvents("active").contains(3)
    finally:
        await tracker.aclose()
    with pytest.raises(TrackerClosed):
        await MONTH.count()


async def test_a_fresh_connection_sees_default_tracker_writes(redis_url: str, prefix: str) -> None:
    """Marks made through the default tracker are visible to an independent client."""
    writer = connect(redis_url)
    reader = connect(redis_url)
    try:
        bitlens.setup(writer, prefix=prefix)
        await bitlens.mark_event("active", 9, AT)
        assert await Tracker(reader, prefix=prefix).contains(MONTH, 9)
    finally:
        await writer.aclose()
        await reader.aclose()
