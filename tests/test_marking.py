"""Marking and querying against real servers, checked against a model built from Python sets.

The granularity property runs on every standalone server and on the cluster
(:func:`deployed_client`).

The model computes every bucket with the standard library alone (``datetime.isocalendar``
for ISO weeks, ``astimezone`` for zones), so it is independent of ``bitlens._periods``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, TypeAlias

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _helpers import examples, scan_keys
from bitlens import (
    BitOpOr,
    DayEvents,
    Expr,
    HourEvents,
    Limits,
    MonthEvents,
    PeriodEvents,
    Tracker,
    UniqueEvents,
    WeekEvents,
    YearEvents,
)

if TYPE_CHECKING:
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

pytestmark = pytest.mark.anyio

UTC = timezone.utc

EVENTS = ("login", "buy", "page:view")
"""The events the model marks; ``:`` is allowed inside a name."""

SPECIAL_IDS = (2**20 - 1, 2**20, 2**20 + 1, 2**36 + 5)
"""Ids at shard boundaries (shards of 2**20 ids) and one in a far-away shard."""

FIRST = datetime(2024, 12, 20)
LAST = datetime(2027, 1, 10, 23, 59, 59)
OFFSETS = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)))
"""Fixed-offset zones for aware marks (no DST gaps, so every wall time exists)."""

KIB = 1024
BIG_CHUNK = 256 * KIB
"""A ``members_chunk_bytes`` above the largest bitmap (128 KiB): one read per shard."""

Moment: TypeAlias = "datetime | date"

user_ids = st.one_of(
    st.integers(min_value=0, max_value=40),
    st.sampled_from(SPECIAL_IDS),
    st.integers(min_value=0, max_value=2**40),
)
moments: st.SearchStrategy[Moment] = st.one_of(
    st.datetimes(min_value=FIRST, max_value=LAST),
    st.datetimes(min_value=FIRST, max_value=LAST, timezones=st.sampled_from(OFFSETS)),
    st.dates(min_value=FIRST.date(), max_value=LAST.date()),
)
marks_strategy = st.lists(
    st.tuples(st.sampled_from(EVENTS), user_ids, moments), min_size=1, max_size=10
)
CLUSTER_SHARD_BITS = 8
"""Shards of 256 ids on the cluster, so a few dozen ids spread over every master."""

CLUSTER_SHARD = 1 << CLUSTER_SHARD_BITS
cluster_ids = st.one_of(
    st.integers(0, 40 * CLUSTER_SHARD),
    st.sampled_from([CLUSTER_SHARD - 1, CLUSTER_SHARD, 2**36 + 5, 2**62]),
)
cluster_marks_strategy = st.lists(
    st.tuples(st.sampled_from(EVENTS), st.one_of(user_ids, cluster_ids), moments),
    min_size=1,
    max_size=12,
)

_example_numbers = itertools.count()


def _utc_wall_clock(at: Moment) -> datetime:
    """Return the naive UTC wall-clock time a UTC tracker files ``at`` under.

    :param at: an aware or naive datetime, or a date (midnight)
    """
    if isinstance(at, datetime):
        return at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)
    return datetime(at.year, at.month, at.day)


def _buckets(event: str, at: Moment) -> list[PeriodEvents]:
    """Return every leaf a mark of ``event`` at ``at`` lands in, tracked hourly and unique.

    :param event: the event name
    :param at: when it happened
    """
    t = _utc_wall_clock(at)
    iso_year, iso_week, _ = t.isocalendar()
    return [
        YearEvents(event, t.year),
        MonthEvents(event, t.year, t.month),
        WeekEvents(event, iso_year, iso_week),
        DayEvents(event, t.year, t.month, t.day),
        HourEvents(event, t.year, t.month, t.day, t.hour),
        UniqueEvents(event),
    ]


@dataclass
class Model:
    """The expected contents of every leaf, as Python sets."""

    sets: dict[PeriodEvents, set[int]] = field(default_factory=dict)

    def mark(self, event: str, user_id: int, at: Moment) -> None:
        """Record one mark.

        :param event: the event name
        :param user_id: the id
        :param at: when it happened
        """
        for leaf in _buckets(event, at):
            self.sets.setdefault(leaf, set()).add(user_id)

    def of(self, leaf: PeriodEvents) -> set[int]:
        """Return the ids expected in ``leaf``.

        :param leaf: any leaf expression
        """
        return self.sets.get(leaf, set())


def _queries(model: Model) -> list[PeriodEvents]:
    """Return the leaves to check: every touched one, its twins for other events, and empties.

    :param model: the filled model
    """
    queries: dict[PeriodEvents, None] = {}
    for leaf in model.sets:
        for event in (*EVENTS, "never"):
            queries[leaf.with_event(event)] = None
    for event in (*EVENTS, "never"):
        queries[YearEvents(event, 2023)] = None
        queries[MonthEvents(event, 2024, 11)] = None
        queries[WeekEvents(event, 2027, 5)] = None
        queries[DayEvents(event, 2027, 1, 11)] = None
        queries[HourEvents(event, 2024, 12, 19, 23)] = None
    return list(queries)


async def _members(tracker: Tracker, expr: Expr) -> list[int]:
    """Collect ``tracker.members(expr)`` into a list, in the order it yields.

    :param tracker: the tracker to ask
    :param expr: the expression
    """
    return [user_id async for user_id in tracker.members(expr)]


async def _delete_all(client: redis.asyncio.Redis | RedisCluster, prefix: str) -> None:
    """Delete every key under ``prefix`` (keeps the server small between examples).

    :param client: the client
    :param prefix: the prefix whose keys go
    """
    keys = await scan_keys(client, prefix)
    if keys:
        await client.delete(*keys)


# -- the model ------------------------------------------------------------------------------


@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(marks=marks_strategy, cluster_marks=cluster_marks_strategy, batched=st.booleans())
async def test_every_granularity_matches_the_set_model(
    deployed_client: redis.asyncio.Redis | RedisCluster,
    deployment: str,
    prefix: str,
    marks: list[tuple[str, int, Moment]],
    cluster_marks: list[tuple[str, int, Moment]],
    batched: bool,
) -> None:
    """count, contains and members of every kind of leaf equal a model built from sets."""
    on_cluster = deployment == "cluster"
    if on_cluster:  # ids over many small shards, so every master holds some
        marks = cluster_marks
    example_prefix = f"{prefix}-{next(_example_numbers)}"
    tracker = Tracker(
        deployed_client,
        prefix=example_prefix,
        shard_bits=CLUSTER_SHARD_BITS if on_cluster else 20,
        track_hourly=True,
        track_unique=True,
        limits=Limits(members_chunk_bytes=BIG_CHUNK),
    )
    model = Model()
    for event, user_id, at in marks:
        model.mark(event, user_id, at)
    try:
        if batched:
            assert await tracker.mark_events(marks) == len(marks)
        else:
            for event, user_id, at in marks:
                await tracker.mark_event(event, user_id, at)
        marked = sorted({user_id for _, user_id, _ in marks})
        probes = [*marked, *(u + 1 for u in marked), 2**20 + 2, 2**40 + 1]
        leaves = _queries(model)
        assert await tracker.count_many(leaves) == [len(model.of(leaf)) for leaf in leaves]
        for leaf in leaves:
            expected = model.of(leaf)
            assert await tracker.count(leaf) == len(expected), leaf
            for user_id in probes:
                assert await tracker.contains(leaf, user_id) == (user_id in expected), (
                    leaf,
                    user_id,
                )
            assert await tracker.contains_many(leaf, probes) == [u in expected for u in probes]
            assert await _members(tracker, leaf) == sorted(expected), leaf
    finally:
        await _delete_all(deployed_client, example_prefix)


# -- ISO weeks and years ----------------------------------------------------------------------


async def test_iso_week_one_of_2025_starts_in_december_2024(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A mark on Monday 2024-12-30 is in ISO week 2025-W01, yet in December and in 2024."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_event("active", 7, datetime(2024, 12, 30, 12, tzinfo=UTC))
    counts = await tracker.count_many(
        [
            WeekEvents("active", 2025, 1),
            MonthEvents("active", 2024, 12),
            YearEvents("active", 2024),
            WeekEvents("active", 2024, 52),
            MonthEvents("active", 2025, 1),
            YearEvents("active", 2025),
        ]
    )
    assert counts == [1, 1, 1, 0, 0, 0]


async def test_last_days_of_2026_and_first_of_2027_share_iso_week_53(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Marks on each day from 2026-12-28 to 2027-01-03 all land in WeekEvents(2026, 53)."""
    tracker = Tracker(client, prefix=prefix)
    days = [date(2026, 12, 28) + timedelta(days=n) for n in range(7)]
    await tracker.mark_events([("active", n, day) for n, day in enumerate(days)])
    week = WeekEvents("active", 2026, 53)
    assert await tracker.count(week) == 7
    assert await _members(tracker, week) == list(range(7))
    assert await tracker.count(WeekEvents("active", 2027, 1)) == 0


# -- time zones -------------------------------------------------------------------------------


async def test_berlin_tracker_files_an_aware_mark_under_the_local_day(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """23:30 UTC on 2026-11-27 is 00:30 on the 28th in Berlin: it counts on the 28th only."""
    tracker = Tracker(client, prefix=prefix, tz="Europe/Berlin")
    await tracker.mark_event("active", 1, datetime(2026, 11, 27, 23, 30, tzinfo=UTC))
    assert await tracker.count(DayEvents("active", 2026, 11, 28, tz="Europe/Berlin")) == 1
    assert await tracker.count(DayEvents("active", 2026, 11, 27, tz="Europe/Berlin")) == 0


async def test_berlin_tracker_takes_a_naive_mark_as_berlin_time(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A naive 2026-11-28 00:30 is Berlin wall time: the 28th, hour 0, not the UTC 27th."""
    tracker = Tracker(client, prefix=prefix, tz="Europe/Berlin", track_hourly=True)
    await tracker.mark_event("active", 1, datetime(2026, 11, 28, 0, 30))
    counts = await tracker.count_many(
        [
            DayEvents("active", 2026, 11, 28),
            HourEvents("active", 2026, 11, 28, 0),
            DayEvents("active", 2026, 11, 27),
            HourEvents("active", 2026, 11, 27, 23),
        ]
    )
    assert counts == [1, 1, 0, 0]


# -- ids and shards ---------------------------------------------------------------------------

BOUNDARY_IDS = [0, 2**20 - 1, 2**20, 2**36 + 5]
AT = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)


async def test_ids_at_shard_boundaries_are_found(client: redis.asyncio.Redis, prefix: str) -> None:
    """Ids 0, 2**20-1, 2**20 and 2**36+5 are each found by contains and listed by members."""
    tracker = Tracker(client, prefix=prefix)
    for user_id in BOUNDARY_IDS:
        await tracker.mark_event("active", user_id, AT)
    month = MonthEvents("active", 2026, 11)
    assert await tracker.contains_many(month, BOUNDARY_IDS) == [True] * 4
    for user_id in BOUNDARY_IDS:
        assert await tracker.contains(month, user_id)
    assert await tracker.contains(month, 1) is False
    assert await tracker.contains(month, 2**36 + 4) is False
    assert await _members(tracker, month) == BOUNDARY_IDS
    assert await tracker.count(month) == 4


async def test_only_the_touched_shards_have_keys(client: redis.asyncio.Redis, prefix: str) -> None:
    """SCAN finds keys of shards {0}, {1} and {65536} only, plus the shard registry."""
    tracker = Tracker(client, prefix=prefix)
    for user_id in BOUNDARY_IDS:
        await tracker.mark_event("active", user_id, AT)
    expected = {f"{prefix}:~shards".encode()}
    for shard in (0, 1, 65536):
        for suffix in ("active:M2026-11", "active:W2026-48", "active:D2026-11-27", "~all"):
            expected.add(f"{prefix}:{{{shard}}}:{suffix}".encode())
    assert await scan_keys(client, prefix) == expected
    registry = await client.smembers(f"{prefix}:~shards")
    assert {int(shard) for shard in registry} == {0, 1, 65536}


async def test_a_far_shard_holds_small_bitmaps(client: redis.asyncio.Redis, prefix: str) -> None:
    """Id 2**36+5 lives at bit 5 of shard 65536: its bitmaps are 1 byte, far below 128 KiB."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_event("active", 2**36 + 5, AT)
    keys = await scan_keys(client, f"{prefix}:{{65536}}")
    assert len(keys) == 4
    for key in keys:
        size = await client.strlen(key)
        assert size <= 128 * KIB
        assert size == 1
        memory = await client.memory_usage(key)
        assert memory is not None
        assert memory <= 128 * KIB


async def test_members_are_ascending_and_complete_across_many_chunks(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Thousands of ids over five shards come back sorted and complete, 16 bytes per read."""
    tracker = Tracker(client, prefix=prefix, limits=Limits(members_chunk_bytes=16))
    ids = sorted(
        {
            (shard << 20) + bit
            for shard in (0, 1, 2, 7, 4096)
            for bit in range(shard % 5, 1200 + 3 * shard % 97, 2 + shard % 3)
        }
        | {(3 << 20) + 1023}
    )
    assert len(ids) > 2000
    marks = [("active", user_id, AT) for user_id in reversed(ids)]
    assert await tracker.mark_events(marks) == len(ids)
    assert await _members(tracker, MonthEvents("active", 2026, 11)) == ids
    assert await tracker.count(MonthEvents("active", 2026, 11)) == len(ids)


# -- unmarking and unique events --------------------------------------------------------------


async def test_unmark_event_clears_month_week_and_day_bits(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """unmark_event drops the id from its month, week and day; the other ids stay."""
    tracker = Tracker(client, prefix=prefix)
    for user_id in (1, 2, 3):
        await tracker.mark_event("active", user_id, AT)
    leaves = [
        MonthEvents("active", 2026, 11),
        WeekEvents("active", 2026, 48),
        DayEvents("active", 2026, 11, 27),
    ]
    await tracker.unmark_event("active", 2, AT)
    assert await tracker.count_many(leaves) == [2, 2, 2]
    for leaf in leaves:
        assert await _members(tracker, leaf) == [1, 3]
        assert await tracker.contains_many(leaf, [1, 2, 3]) == [True, False, True]


async def test_unmark_event_leaves_other_events_and_periods_alone(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Unmarking one event at one time keeps the id's bits of other events and other months."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_event("active", 5, AT)
    await tracker.mark_event("buy", 5, AT)
    await tracker.mark_event("active", 5, datetime(2026, 10, 3, tzinfo=UTC))
    await tracker.unmark_event("active", 5, AT)
    counts = await tracker.count_many(
        {
            "active-nov": MonthEvents("active", 2026, 11),
            "buy-nov": MonthEvents("buy", 2026, 11),
            "active-oct": MonthEvents("active", 2026, 10),
            "active-day": DayEvents("active", 2026, 10, 3),
        }
    )
    assert counts == {"active-nov": 0, "buy-nov": 1, "active-oct": 1, "active-day": 1}


async def test_mark_unique_and_unmark_unique(client: redis.asyncio.Redis, prefix: str) -> None:
    """mark_unique adds ids to UniqueEvents and unmark_unique removes them."""
    tracker = Tracker(client, prefix=prefix)
    for user_id in (3, 2**20 + 9, 4):
        await tracker.mark_unique("signed_up", user_id)
    await tracker.unmark_unique("signed_up", 4)
    signed_up = UniqueEvents("signed_up")
    assert await tracker.count(signed_up) == 2
    assert await _members(tracker, signed_up) == [3, 2**20 + 9]
    assert await tracker.contains_many(signed_up, [3, 4, 2**20 + 9]) == [True, False, True]
    assert await tracker.count(MonthEvents.from_date("signed_up")) == 0


async def test_track_unique_on_mark_event_sets_the_unique_bitmap(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """mark_event(track_unique=True) sets UniqueEvents; a plain mark_event does not."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_event("paid", 1, AT, track_unique=True)
    await tracker.mark_event("paid", 2, AT)
    assert await _members(tracker, UniqueEvents("paid")) == [1]
    assert await tracker.count(MonthEvents("paid", 2026, 11)) == 2


async def test_track_unique_tracker_default_can_be_turned_off_per_call(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A track_unique=True tracker sets UniqueEvents unless the call says track_unique=False."""
    tracker = Tracker(client, prefix=prefix, track_unique=True)
    await tracker.mark_event("paid", 1, AT)
    await tracker.mark_event("paid", 2, AT, track_unique=False)
    assert await _members(tracker, UniqueEvents("paid")) == [1]


async def test_track_hourly_per_call_on_a_daily_tracker(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """On a tracker without hourly tracking, track_hourly=True on one call sets that hour."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_event("active", 1, AT, track_hourly=True)
    await tracker.mark_event("active", 2, AT)
    assert await _members(tracker, HourEvents("active", 2026, 11, 27, 13)) == [1]
    assert await _members(tracker, DayEvents("active", 2026, 11, 27)) == [1, 2]


async def test_track_hourly_tracker_default_can_be_turned_off_per_call(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """An hourly tracker sets the hour bit by default; track_hourly=False on a call skips it."""
    tracker = Tracker(client, prefix=prefix, track_hourly=True)
    await tracker.mark_event("active", 1, AT)
    await tracker.mark_event("active", 2, AT, track_hourly=False)
    assert await _members(tracker, HourEvents("active", 2026, 11, 27, 13)) == [1]
    assert await _members(tracker, DayEvents("active", 2026, 11, 27)) == [1, 2]


# -- batches and other queries ----------------------------------------------------------------


async def test_mark_events_takes_two_and_three_tuples(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """mark_events marks (event, id) now and (event, id, at) at ``at``, and returns the count."""
    tracker = Tracker(client, prefix=prefix)
    then = datetime(2025, 3, 4, 10, tzinfo=UTC)
    before = datetime.now(UTC)
    marked = await tracker.mark_events(
        [("active", 1), ("active", 2, then), ("buy", 3), ("buy", 4, then.date())]
    )
    after = datetime.now(UTC)
    assert marked == 4
    for event, now_id, then_id in (("active", 1, 2), ("buy", 3, 4)):
        today = BitOpOr(DayEvents.from_date(event, before), DayEvents.from_date(event, after))
        assert await _members(tracker, today) == [now_id]
        assert await _members(tracker, DayEvents(event, 2025, 3, 4)) == [then_id]


async def test_has_events_is_true_for_a_marked_period(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """has_events is True for a period holding a mark."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_event("active", 2**36 + 5, AT)
    assert await tracker.has_events(DayEvents("active", 2026, 11, 27)) is True


async def test_has_events_is_false_for_an_empty_period(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """has_events is False for a period, or an event, without marks."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_event("active", 1, AT)
    assert await tracker.has_events(DayEvents("active", 2026, 11, 26)) is False
    assert await tracker.has_events(DayEvents("buy", 2026, 11, 27)) is False


async def test_year_events_equal_the_or_of_their_months(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """YearEvents holds exactly the ids of the OR of its twelve months."""
    tracker = Tracker(client, prefix=prefix)
    marks: list[tuple[str, int, Moment]] = [
        ("active", (n * 7919) % 3000 + (n % 3) * 2**20, datetime(2026, 1 + n % 12, 1 + n % 28))
        for n in range(120)
    ]
    marks += [("active", 99_999, datetime(2025, 12, 31, 23)), ("active", 5, date(2027, 1, 1))]
    await tracker.mark_events(marks)
    year = YearEvents("active", 2026)
    months = BitOpOr(*(MonthEvents("active", 2026, m) for m in range(1, 13)))
    expected = sorted({user_id for _, user_id, at in marks if at.year == 2026})
    assert await _members(tracker, year) == expected
    assert await _members(tracker, months) == expected
    assert await tracker.count_many([year, months]) == [len(expected), len(expected)]


async def test_count_many_with_a_dict_keeps_its_keys(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """count_many of a mapping answers a dict with the same keys."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_events([("active", n, AT) for n in range(5)] + [("buy", 2, AT)])
    counts = await tracker.count_many(
        {
            "mau": MonthEvents("active", 2026, 11),
            "buyers": MonthEvents("buy", 2026, 11),
            "both": MonthEvents("active", 2026, 11) & MonthEvents("buy", 2026, 11),
            "none": MonthEvents("active", 2026, 10),
        }
    )
    assert counts == {"mau": 5, "buyers": 1, "both": 1, "none": 0}


async def test_count_many_with_a_list_keeps_its_order(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """count_many of a list answers a list in the same order."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_events([("active", n, AT) for n in range(5)] + [("buy", 2**20, AT)])
    counts = await tracker.count_many(
        [
            MonthEvents("buy", 2026, 11),
            MonthEvents("active", 2026, 10),
            MonthEvents("active", 2026, 11) | MonthEvents("buy", 2026, 11),
            MonthEvents("active", 2026, 11),
        ]
    )
    assert counts == [1, 0, 6, 5]


async def test_contains_many_answers_each_id_in_order(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """contains_many answers one bool per id, in the order given, duplicates included."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_events([("active", user_id, AT) for user_id in (0, 2**20, 2**36 + 5)])
    month = MonthEvents("active", 2026, 11)
    ids = [2**36 + 5, 1, 0, 2**20, 2**20 + 1, 0, 2**63 - 1]
    assert await tracker.contains_many(month, ids) == [True, False, True, True, False, True, False]
    assert await tracker.contains_many(month, []) == []
