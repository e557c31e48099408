"""The report endpoints of the web API: each report's numbers as JSON, per segment, one round trip.

The numbers themselves are checked against a set model in tests/test_reports.py; here the
reference is a small hand-made workload whose answers are computed from Python sets, and
the JSON must carry every number of the report under the right label and segment.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest

from _trees import SHARD_BITS
from bitlens import Tracker, UniqueEvents
from bitlens.web import MAX_SEGMENTS, handle

if TYPE_CHECKING:
    import redis.asyncio

    from _proxy import RoundTripProxy

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
MONDAY = dt.date(2026, 11, 2)  # ISO 2026-W45
FAR = 3 << SHARD_BITS  # an id in another shard
ACTIVE = {
    1: [0, 1, 7, 14],
    2: [1],
    3: [7, 14, 15],
    FAR: [14],
}
SIGNUP = {1: 0, 2: 1, 3: 7, FAR: 14}
PRO = {1, 3}
RANGE = {"start": ["2026-11-02"], "end": ["2026-11-17"]}


def _day(offset: int) -> dt.date:
    return MONDAY + dt.timedelta(days=offset)


async def _tracker(client: redis.asyncio.Redis, prefix: str) -> Tracker:
    tracker = Tracker(client, prefix=prefix)
    marks = [
        ("active", user, dt.datetime.combine(_day(d), dt.time(12), UTC))
        for user, days in ACTIVE.items()
        for d in days
    ]
    marks += [
        ("signup", user, dt.datetime.combine(_day(d), dt.time(9), UTC))
        for user, d in SIGNUP.items()
    ]
    await tracker.mark_events(marks)
    for user in PRO:
        await tracker.mark_unique("pro", user)
    return tracker


def _users(segment: str | None) -> set[int]:
    return set(ACTIVE) if segment is None else PRO


def _active_within(first: int, last: int, users: set[int]) -> int:
    return sum(1 for u in users if any(first <= d <= last for d in ACTIVE[u]))


async def _ok(tracker: Tracker, endpoint: str, **params: list[str]) -> dict[str, Any]:
    status, body = await handle(tracker, endpoint, {**RANGE, **params})
    assert status == 200, body
    return dict(body)


async def test_engagement_gives_rolling_windows_per_segment(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """/engagement: each day's trailing 1, 7 and 30 days, for the total and for ``pro``."""
    tracker = await _tracker(client, prefix)
    body = await _ok(tracker, "engagement", event=["active"], segment=["pro"])
    assert body["labels"] == [_day(d).isoformat() for d in range(16)]
    assert body["windows"] == ["day", "week", "month"]
    assert body["ratios"] == ["day/week", "day/month"]
    assert [s["segment"] for s in body["segments"]] == [None, "pro"]
    for series in body["segments"]:
        users = _users(series["segment"])
        for window, width in (("day", 1), ("week", 7), ("month", 30)):
            expected = [_active_within(d - width + 1, d, users) for d in range(16)]
            assert series["counts"][window] == expected, (series["segment"], window)
        day, week = series["counts"]["day"], series["counts"]["week"]
        ratios = [a / b if b else None for a, b in zip(day, week, strict=True)]
        assert series["ratios"]["day/week"] == ratios


async def test_lifecycle_splits_each_week_and_dormant_is_negative(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """/lifecycle with a sign-up event: new, returning, resurrecting and dormant per week."""
    tracker = await _tracker(client, prefix)
    body = await _ok(tracker, "lifecycle", event=["active"], first=["signup"])
    assert body["every"] == "week"
    assert body["first"] == "signup"
    assert body["labels"] == ["2026-W45", "2026-W46", "2026-W47"]
    total = body["segments"][0]
    # W45: 1 and 2 sign up and are active. W46: 3 signs up; 1 comes back, 2 goes quiet.
    # W47: FAR signs up; 1 and 3 active again.
    assert total == {
        "segment": None,
        "new": [2, 1, 1],
        "returning": [0, 1, 2],
        "resurrecting": [0, 0, 0],
        "dormant": [0, -1, 0],
    }


async def test_lifecycle_takes_a_date_as_first(client: redis.asyncio.Redis, prefix: str) -> None:
    """/lifecycle?first=DATE: new means first seen since that date."""
    tracker = await _tracker(client, prefix)
    body = await _ok(tracker, "lifecycle", event=["active"], first=["2026-11-02"])
    assert body["first"] == "2026-11-02"
    report = await tracker.lifecycle(
        "active", _day(0), _day(15), every="week", first=dt.date(2026, 11, 2)
    )
    assert body["segments"][0]["new"] == [p.new for p in report.points]


async def test_stickiness_counts_users_by_active_days(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """/stickiness: users active on exactly k of the days, and on k or more."""
    tracker = await _tracker(client, prefix)
    body = await _ok(tracker, "stickiness", event=["active"], segment=["pro"])
    assert len(body["labels"]) == 16
    for series in body["segments"]:
        users = _users(series["segment"])
        exactly = [sum(1 for u in users if len(ACTIVE[u]) == k) for k in range(1, 17)]
        assert series["exactly"] == exactly
        assert series["at_least"] == [sum(exactly[k:]) for k in range(16)]


async def test_funnel_gives_steps_conversions_and_entry_periods(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """/funnel signup -> active within 7 days, by week: totals, conversions, a row per week."""
    tracker = await _tracker(client, prefix)
    body = await _ok(tracker, "funnel", step=["signup", "active"], every=["week"], within=["7d"])
    assert body["steps"] == ["signup", "active"]
    assert body["within"] == 1
    total = body["segments"][0]
    assert total["counts"] == [4, 4]
    assert total["conversion"] == [1.0, 1.0]
    assert [e["entered"] for e in total["entries"]] == ["2026-W45", "2026-W46", "2026-W47"]
    assert [e["counts"] for e in total["entries"]] == [[2, 2], [1, 1], [1, 1]]


async def test_a_segment_is_the_report_of_its_users(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """The ``pro`` funnel row equals the library's report split by UniqueEvents("pro")."""
    tracker = await _tracker(client, prefix)
    body = await _ok(tracker, "funnel", step=["signup", "active"], segment=["pro"])
    report = await tracker.funnel(
        ["signup", "active"], _day(0), _day(15), by={"segment": {"pro": UniqueEvents("pro")}}
    )
    assert [s["counts"] for s in body["segments"]] == [list(r.counts) for r in report.rows]
    assert body["segments"][1]["counts"] == [2, 2]


@pytest.mark.parametrize(
    ("endpoint", "params"),
    [
        ("engagement", {"event": ["active"]}),
        ("lifecycle", {"event": ["active"], "first": ["signup"]}),
        ("stickiness", {"event": ["active"]}),
        ("funnel", {"step": ["signup", "active"], "within": ["7d"]}),
    ],
)
async def test_each_report_endpoint_is_one_round_trip(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    endpoint: str,
    params: dict[str, list[str]],
) -> None:
    """A report request with a segment costs one round trip to Redis."""
    tracker = await _tracker(counted_client, prefix)
    await tracker.count(UniqueEvents("pro"))  # the tracker knows the shard registry
    proxy.reset()
    await _ok(tracker, endpoint, segment=["pro"], **params)
    assert proxy.round_trips == 1


@pytest.mark.parametrize(
    ("endpoint", "params", "says"),
    [
        ("funnel", {"step": ["signup"]}, "two steps"),
        ("funnel", {"step": ["a", "b"], "within": ["soon"]}, "within"),
        ("engagement", {"event": ["a"], "every": ["year"]}, "every"),
        ("stickiness", {"event": ["a"], "start": ["2026-12-01"]}, "after end"),
        ("lifecycle", {"event": ["a"], "first": ["2026-13-01"]}, "first"),
        ("engagement", {"event": ["a"], "segment": [f"s{i}" for i in range(9)]}, "at most"),
        ("engagement", {"event": ["a b"]}, "event"),
    ],
)
async def test_bad_report_parameters_are_answered_400(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    endpoint: str,
    params: dict[str, list[str]],
    says: str,
) -> None:
    """A request that makes no report is answered 400, saying why, before any I/O."""
    assert len(params.get("segment", [])) in (0, MAX_SEGMENTS + 1)
    tracker = Tracker(counted_client, prefix=prefix)
    proxy.reset()
    status, body = await handle(tracker, endpoint, {**RANGE, **params})
    assert status == 400
    assert says in str(body["error"])
    assert proxy.round_trips == 0
