"""Exact round-trip and command counts, measured by the counting proxy on a real server.

Every tracker here sends through :func:`counted_client`, whose connection is already open,
so each count below is what the operation itself costs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeAlias

import pytest

from bitlens import (
    DayEvents,
    Expr,
    HourEvents,
    InvalidEventName,
    InvalidUserId,
    Limits,
    MonthEvents,
    Tracker,
    UniqueEvents,
    WeekEvents,
    YearEvents,
)

if TYPE_CHECKING:
    import redis.asyncio

    from _proxy import RoundTripProxy

pytestmark = pytest.mark.anyio

UTC = timezone.utc
AT = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)
MONTH = MonthEvents("active", 2026, 11)


async def _marked_tracker(client: redis.asyncio.Redis, prefix: str) -> Tracker:
    """Return a tracker on ``client`` that has marked a few ids in November 2026.

    :param client: the counted client
    :param prefix: the test's prefix
    """
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_events([("active", n, AT) for n in (1, 2, 2**20 + 3)])
    return tracker


# -- writes -----------------------------------------------------------------------------------


async def test_mark_event_with_every_granularity_is_one_transaction(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """mark_event with hourly and unique tracking is 1 round trip: MULTI, the writes, EXEC."""
    tracker = Tracker(counted_client, prefix=prefix)
    await tracker.mark_event("active", 1, AT, track_hourly=True, track_unique=True)
    assert proxy.round_trips == 1
    names = proxy.command_names
    assert names[0] == "MULTI"
    assert names[-1] == "EXEC"
    assert set(names[1:-1]) <= {"SETBIT", "BITFIELD", "SADD"}
    assert names.count("MULTI") == names.count("EXEC") == 1


async def test_mark_event_on_a_warm_tracker_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A second mark_event with every granularity, on a warmed tracker, is 1 round trip."""
    tracker = Tracker(counted_client, prefix=prefix)
    await tracker.mark_event("active", 1, AT)
    await tracker.count(MONTH)
    proxy.reset()
    await tracker.mark_event("active", 2, AT, track_hourly=True, track_unique=True)
    assert proxy.round_trips == 1
    assert proxy.command_names[0] == "MULTI"
    assert proxy.command_names[-1] == "EXEC"


async def test_mark_events_of_a_thousand_items_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """mark_events of 1,000 items over several shards is 1 round trip, in one MULTI/EXEC."""
    tracker = Tracker(counted_client, prefix=prefix)
    marks = [("active", n * 4099, AT) for n in range(1000)]
    assert await tracker.mark_events(marks, track_hourly=True, track_unique=True) == 1000
    assert proxy.round_trips == 1
    assert proxy.command_names.count("MULTI") == proxy.command_names.count("EXEC") == 1
    proxy.reset()
    assert await tracker.count(MONTH) == 1000
    assert proxy.round_trips == 1


async def test_mark_events_sends_one_round_trip_per_chunk(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """2,500 items in chunks of 1,000 are exactly 3 round trips, however they overlap."""
    tracker = Tracker(counted_client, prefix=prefix, limits=Limits(mark_chunk_size=1_000))
    assert await tracker.mark_events([("active", n, AT) for n in range(2_500)]) == 2_500
    assert proxy.round_trips == 3
    assert proxy.command_names.count("MULTI") == proxy.command_names.count("EXEC") == 3


# -- reads ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("scripts")  # also with counts lowered to MULTI/EXEC
async def test_count_of_one_period_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """count of one month is 1 round trip, the first time and the next."""
    tracker = await _marked_tracker(counted_client, prefix)
    proxy.reset()
    assert await tracker.count(MONTH) == 3
    assert proxy.round_trips == 1
    proxy.reset()
    assert await tracker.count(DayEvents("active", 2026, 11, 27)) == 3
    assert proxy.round_trips == 1


async def test_contains_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """contains is 1 round trip, for an id that is there and for one that is not."""
    tracker = await _marked_tracker(counted_client, prefix)
    proxy.reset()
    assert await tracker.contains(MONTH, 2**20 + 3) is True
    assert proxy.round_trips == 1
    proxy.reset()
    assert await tracker.contains(MONTH & WeekEvents("active", 2026, 48), 7) is False
    assert proxy.round_trips == 1


@pytest.mark.usefixtures("scripts")  # also with counts lowered to MULTI/EXEC
async def test_count_of_a_year_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """count of YearEvents (the OR of twelve months, over two shards) is 1 round trip."""
    tracker = await _marked_tracker(counted_client, prefix)
    await tracker.mark_event("active", 9, datetime(2026, 2, 1, tzinfo=UTC))
    proxy.reset()
    assert await tracker.count(YearEvents("active", 2026)) == 4
    assert proxy.round_trips == 1


@pytest.mark.usefixtures("scripts")  # also with counts lowered to MULTI/EXEC
async def test_count_many_of_forty_expressions_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """count_many of 40 expressions (leaves, ANDs, ORs, differences, years) is 1 round trip."""
    tracker = await _marked_tracker(counted_client, prefix)
    exprs: list[Expr] = []
    for day in range(1, 11):
        today = DayEvents("active", 2026, 11, day + 18)
        exprs += [
            today,
            today & MONTH,
            today | WeekEvents("active", 2026, 47),
            MONTH - today,
        ]
    exprs[-1] = YearEvents("active", 2026)
    assert len(exprs) == 40
    proxy.reset()
    counts = await tracker.count_many(exprs)
    assert proxy.round_trips == 1
    assert len(counts) == 40
    assert counts[-1] == 3


@pytest.mark.usefixtures("scripts")  # also with counts lowered to MULTI/EXEC
async def test_a_cold_tracker_needs_two_round_trips_for_its_first_count(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A fresh tracker on existing data: 2 round trips for the first count, then 1.

    A fresh tracker knows no shards, so its first round trip can only read the shard
    registry (SMEMBERS, with the one-off INFO probe riding along); the second counts the
    shards it found there, together with the registry check. From then on the tracker
    knows the shards and every count is 1 round trip.
    """
    await _marked_tracker(counted_client, prefix)
    cold = Tracker(counted_client, prefix=prefix)
    proxy.reset()
    assert await cold.count(MONTH) == 3
    assert proxy.round_trips == 2
    proxy.reset()
    assert await cold.count(MONTH) == 3
    assert proxy.round_trips == 1


@pytest.mark.usefixtures("scripts")  # also with counts lowered to MULTI/EXEC
async def test_a_fresh_tracker_on_no_data_counts_in_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A fresh tracker whose prefix holds no data answers 0 in 1 round trip."""
    tracker = Tracker(counted_client, prefix=prefix)
    assert await tracker.count(MONTH) == 0
    assert proxy.round_trips == 1


@pytest.mark.usefixtures("scripts")  # also with counts lowered to MULTI/EXEC
async def test_a_cold_tracker_learns_the_shards_once(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """After its first count a fresh tracker counts other expressions in 1 round trip each."""
    await _marked_tracker(counted_client, prefix)
    cold = Tracker(counted_client, prefix=prefix)
    await cold.count(MONTH)
    for expr in (DayEvents("active", 2026, 11, 27), YearEvents("active", 2026), ~MONTH):
        proxy.reset()
        await cold.count(expr)
        assert proxy.round_trips == 1, expr


# -- bad input costs nothing ------------------------------------------------------------------

BAD_IDS: list[object] = [-1, True, False, 1.0, 2**63, "7", None]
BAD_NAMES = ["a{b", "a}b", "", "~x", "a b", "tab\there", "new\nline"]

Operation: TypeAlias = Callable[[Tracker, Any, Any], Awaitable[None]]


async def _mark_event(tracker: Tracker, event: Any, user_id: Any) -> None:
    """Call mark_event.

    :param tracker: the tracker
    :param event: the event name, maybe bad
    :param user_id: the id, maybe bad
    """
    await tracker.mark_event(event, user_id, AT)


async def _unmark_event(tracker: Tracker, event: Any, user_id: Any) -> None:
    """Call unmark_event.

    :param tracker: the tracker
    :param event: the event name, maybe bad
    :param user_id: the id, maybe bad
    """
    await tracker.unmark_event(event, user_id, AT)


async def _mark_unique(tracker: Tracker, event: Any, user_id: Any) -> None:
    """Call mark_unique.

    :param tracker: the tracker
    :param event: the event name, maybe bad
    :param user_id: the id, maybe bad
    """
    await tracker.mark_unique(event, user_id)


async def _contains(tracker: Tracker, event: Any, user_id: Any) -> None:
    """Call contains on a month of ``event`` (a bad name fails building the expression).

    :param tracker: the tracker
    :param event: the event name, maybe bad
    :param user_id: the id, maybe bad
    """
    await tracker.contains(MonthEvents(event, 2026, 11), user_id)


async def _mark_events_first(tracker: Tracker, event: Any, user_id: Any) -> None:
    """Call mark_events on 10 items whose first is the bad one.

    :param tracker: the tracker
    :param event: the event name, maybe bad
    :param user_id: the id, maybe bad
    """
    await tracker.mark_events([(event, user_id, AT)] + [("ok", n, AT) for n in range(9)])


async def _mark_events_middle(tracker: Tracker, event: Any, user_id: Any) -> None:
    """Call mark_events on 10 items whose sixth is the bad one.

    :param tracker: the tracker
    :param event: the event name, maybe bad
    :param user_id: the id, maybe bad
    """
    marks: list[Any] = [("ok", n, AT) for n in range(9)]
    marks.insert(5, (event, user_id))
    await tracker.mark_events(marks)


async def _mark_events_last(tracker: Tracker, event: Any, user_id: Any) -> None:
    """Call mark_events on 10 items whose last is the bad one.

    :param tracker: the tracker
    :param event: the event name, maybe bad
    :param user_id: the id, maybe bad
    """
    await tracker.mark_events([("ok", n, AT) for n in range(9)] + [(event, user_id, AT)])


OPERATIONS: list[Operation] = [
    _mark_event,
    _unmark_event,
    _mark_unique,
    _contains,
    _mark_events_first,
    _mark_events_middle,
    _mark_events_last,
]
OPERATION_IDS = [op.__name__.lstrip("_") for op in OPERATIONS]


@pytest.mark.parametrize("user_id", BAD_IDS, ids=repr)
@pytest.mark.parametrize("operation", OPERATIONS, ids=OPERATION_IDS)
async def test_a_bad_id_sends_nothing(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    operation: Operation,
    user_id: object,
) -> None:
    """A negative, bool, float, str, None or too large id raises InvalidUserId, sending nothing."""
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(InvalidUserId) as caught:
        await operation(tracker, "active", user_id)
    assert isinstance(caught.value, ValueError)
    assert caught.value.user_id is user_id
    assert (proxy.round_trips, proxy.commands) == (0, 0)


@pytest.mark.parametrize("event", BAD_NAMES, ids=repr)
@pytest.mark.parametrize("operation", OPERATIONS, ids=OPERATION_IDS)
async def test_a_bad_event_name_sends_nothing(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    operation: Operation,
    event: str,
) -> None:
    """A name with braces or whitespace, empty, or starting with '~' raises, sending nothing."""
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(InvalidEventName) as caught:
        await operation(tracker, event, 1)
    assert isinstance(caught.value, ValueError)
    assert (proxy.round_trips, proxy.commands) == (0, 0)


async def test_a_bad_item_in_mark_events_writes_none_of_the_chunk(
    counted_client: redis.asyncio.Redis, prefix: str
) -> None:
    """After a refused 10-item mark_events, none of the nine good items was written."""
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(InvalidUserId):
        await _mark_events_last(tracker, "ok", -1)
    assert await tracker.count(MonthEvents("ok", 2026, 11)) == 0
    assert await tracker.count(UniqueEvents("ok")) == 0


async def test_bad_input_on_a_warm_tracker_sends_nothing(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A tracker that has already talked to the server still sends nothing for bad input."""
    tracker = await _marked_tracker(counted_client, prefix)
    await tracker.count(MONTH)
    proxy.reset()
    with pytest.raises(InvalidUserId):
        await tracker.contains(HourEvents("active", 2026, 11, 27, 13), -5)
    with pytest.raises(InvalidEventName):
        await tracker.mark_event("has space", 1)
    with pytest.raises(InvalidUserId):
        await tracker.contains_many(MONTH, [1, 2, 2**63])
    assert (proxy.round_trips, proxy.commands) == (0, 0)
