"""Engagement, lifecycle, stickiness and funnels: exact against Python sets, one round trip.

The reference below works on sets of ids per (event, day) and per user, with no bitmap, no
shared subtree and no counter: if the planner's sliding windows, bit-sliced counters or
running funnel states were wrong, the two would disagree. Workloads are random
(hypothesis), over ISO week 2026-W53 and the new year, with ids over several shards.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import sys
from collections import defaultdict
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _cluster_counter import count_writes
from _helpers import examples
from _trees import SHARD_BITS
from bitlens import Day, EventTemplate, Month, Tracker, UniqueEvents, Week
from bitlens.cohort import FunnelReport, FunnelRow, InvalidRetentionQuery

if TYPE_CHECKING:
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from _proxy import RoundTripProxy
    from bitlens import Period

pytestmark = pytest.mark.anyio

FIRST = dt.date(2026, 12, 10)
DAYS = 40  # to 2027-01-18: ISO weeks 2026-W50 .. 2027-W03, through 2026-W53
EVENTS = ("active", "visit", "cart", "buy", "signup")
PERIODS: dict[str, type[Day] | type[Week] | type[Month]] = {
    "day": Day,
    "week": Week,
    "month": Month,
}
SETTINGS = settings(
    max_examples=examples(15),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

Marks = list[tuple[str, int, dt.date]]
marks_strategy = st.lists(
    st.tuples(
        st.sampled_from(EVENTS),
        st.integers(0, 4 * (1 << SHARD_BITS)),  # four shards
        st.integers(0, DAYS - 1).map(lambda n: FIRST + dt.timedelta(days=n)),
    ),
    max_size=120,
)
pro_strategy = st.sets(st.integers(0, 4 * (1 << SHARD_BITS)), max_size=60)


class Reference:
    """Who did which event on which day."""

    def __init__(self, marks: Marks) -> None:
        self.days: dict[tuple[str, dt.date], set[int]] = defaultdict(set)
        for event, user, day in marks:
            self.days[event, day].add(user)

    def between(self, event: str, first: dt.date, last: dt.date) -> set[int]:
        """Ids that did ``event`` on any day from ``first`` to ``last``."""
        out: set[int] = set()
        day = first
        while day <= last:
            out |= self.days.get((event, day), set())
            day += dt.timedelta(days=1)
        return out

    def during(self, event: str, period: Period) -> set[int]:
        """Ids that did ``event`` in ``period``."""
        return self.between(event, _first_day(period), _last_day(period))


def _first_day(period: Period) -> dt.date:
    return period.start.date()


def _last_day(period: Period) -> dt.date:
    return period.next().start.date() - dt.timedelta(days=1)


def _periods(every: str, first: dt.date, last: dt.date) -> list[Period]:
    ptype = PERIODS[every]
    start, end = ptype.from_datetime(first), ptype.from_datetime(last)
    return [start.delta(i) for i in range(end.ordinal() - start.ordinal() + 1)]


async def _tracker(
    client: redis.asyncio.Redis | RedisCluster, marks: Marks, pro: set[int]
) -> Tracker:
    tracker = Tracker(client, prefix=f"rep{secrets.token_hex(4)}", shard_bits=SHARD_BITS)
    if marks:
        await tracker.mark_events(
            [(e, u, dt.datetime.combine(d, dt.time(12))) for e, u, d in marks]
        )
    for user in pro:
        await tracker.mark_unique("plan:pro", user)
    await tracker.mark_unique("plan:pro", 0)  # the shard registry is never empty
    return tracker


BY = {"plan": {"pro": UniqueEvents("plan:pro")}}


# -- engagement ----------------------------------------------------------------------------


@SETTINGS
@given(marks=marks_strategy, pro=pro_strategy, every=st.sampled_from(["day", "week"]))
async def test_engagement_matches_the_set_model(
    client: redis.asyncio.Redis, marks: Marks, pro: set[int], every: str
) -> None:
    """Every point's trailing 1/7/30-day counts, per segment, equal the set model's."""
    tracker = await _tracker(client, marks, pro)
    first, last = FIRST + dt.timedelta(days=29), FIRST + dt.timedelta(days=DAYS - 1)
    report = await tracker.engagement("active", first, last, every=every, by=BY)  # type: ignore[arg-type]
    ref = Reference(marks)
    expected = []
    for segment in (None, ("plan", "pro")):
        for period in _periods(every, first, last):
            end = _last_day(period)
            counts = {}
            for name, width in (("day", 1), ("week", 7), ("month", 30)):
                ids = ref.between("active", end - dt.timedelta(days=width - 1), end)
                counts[name] = len(ids & (pro | {0}) if segment else ids)
            expected.append((str(period), segment, counts))
    assert [(str(p.period), p.segment, dict(p.counts)) for p in report.points] == expected


async def test_engagement_ratios_are_the_narrowest_over_each_wider(
    client: redis.asyncio.Redis,
) -> None:
    """DAU/WAU and DAU/MAU are the point's counts divided, None over an empty window."""
    marks = [("active", 1, FIRST), ("active", 2, FIRST + dt.timedelta(days=3))]
    tracker = await _tracker(client, marks, set())
    report = await tracker.engagement(
        "active", FIRST + dt.timedelta(days=3), FIRST + dt.timedelta(days=3)
    )
    [point] = report.points
    assert dict(point.counts) == {"day": 1, "week": 2, "month": 2}
    assert report.header() == ("period", "segment", "day", "week", "month", "day/week", "day/month")
    assert report.to_rows() == [["2026-12-13", "all", 1, 2, 2, 0.5, 0.5]]
    empty = await tracker.engagement("active", dt.date(2027, 6, 1), dt.date(2027, 6, 1))
    assert empty.points[0].ratio("day", "week") is None


async def test_a_90_point_series_shares_its_window_unions(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy
) -> None:
    """A 90-day DAU/WAU/MAU series is one round trip, and at most 3 BITOPs per point and window."""
    marks = [("active", u, FIRST + dt.timedelta(days=u % DAYS)) for u in range(300)]
    tracker = await _tracker(counted_client, marks, set())
    await tracker.count(UniqueEvents("plan:pro"))
    proxy.reset()
    first = FIRST + dt.timedelta(days=-60)
    report = await tracker.engagement("active", first, first + dt.timedelta(days=89))
    assert proxy.round_trips == 1
    assert len(report.points) == 90
    programs = list(tracker._reader._programs.values())[-1]  # pyright: ignore[reportPrivateUsage]
    bitops = sum(call.argv.count("B") for _, calls in programs for call in calls)
    assert bitops <= 3 * 90 * 3


# -- lifecycle -----------------------------------------------------------------------------


def _lifecycle_reference(
    ref: Reference, periods: list[Period], first: str | dt.date, segment: set[int] | None
) -> list[tuple[int, int, int, int]]:
    rows = []
    for period in periods:

        def cut(ids: set[int]) -> set[int]:
            return ids if segment is None else ids & segment

        active = cut(ref.during("active", period))
        previous = cut(ref.during("active", period.prev()))
        if isinstance(first, str):
            new = active & ref.during(first, period)
            returning = (active & previous) - new
            resurrecting = active - previous - new
        else:
            seen = ref.between("active", first, _first_day(period) - dt.timedelta(days=1))
            seen = cut(seen)
            new = active - seen
            returning = active & previous
            resurrecting = (active & seen) - previous
        rows.append((len(new), len(returning), len(resurrecting), -len(previous - active)))
    return rows


@SETTINGS
@given(
    marks=marks_strategy,
    pro=pro_strategy,
    every=st.sampled_from(["day", "week"]),
    first=st.sampled_from(["signup", FIRST]),
)
async def test_lifecycle_matches_the_set_model(
    client: redis.asyncio.Redis, marks: Marks, pro: set[int], every: str, first: str | dt.date
) -> None:
    """New, returning, resurrecting and dormant per period and segment equal the set model's."""
    tracker = await _tracker(client, marks, pro)
    start = FIRST + dt.timedelta(days=7)
    end = FIRST + dt.timedelta(days=DAYS - 1)
    report = await tracker.lifecycle("active", start, end, every=every, first=first, by=BY)  # type: ignore[arg-type]
    ref = Reference(marks)
    periods = _periods(every, start, end)
    expected = [
        *_lifecycle_reference(ref, periods, first, None),
        *_lifecycle_reference(ref, periods, first, pro | {0}),
    ]
    observed = [(p.new, p.returning, p.resurrecting, p.dormant) for p in report.points]
    assert observed == expected


async def test_lifecycle_parts_add_up_to_the_active_count(client: redis.asyncio.Redis) -> None:
    """new + returning + resurrecting is the period's active count, dormant is negative."""
    marks = [("active", u, FIRST + dt.timedelta(days=(u * 7) % DAYS)) for u in range(200)]
    marks += [("active", u, FIRST + dt.timedelta(days=(u * 3) % DAYS)) for u in range(200)]
    tracker = await _tracker(client, marks, set())
    report = await tracker.lifecycle(
        "active", FIRST, FIRST + dt.timedelta(days=DAYS - 1), first=FIRST
    )
    ref = Reference(marks)
    for point in report.points:
        assert point.active == len(ref.during("active", point.period))
        assert point.dormant <= 0


# -- stickiness ----------------------------------------------------------------------------


@SETTINGS
@given(marks=marks_strategy, pro=pro_strategy, every=st.sampled_from(["day", "week"]))
async def test_stickiness_matches_the_set_model(
    client: redis.asyncio.Redis, marks: Marks, pro: set[int], every: str
) -> None:
    """For each k, the users active in exactly k periods (and in k or more) equal the model's."""
    tracker = await _tracker(client, marks, pro)
    start, end = FIRST, FIRST + dt.timedelta(days=DAYS - 1)
    report = await tracker.stickiness("active", start, end, every=every, by=BY)  # type: ignore[arg-type]
    ref = Reference(marks)
    periods = _periods(every, start, end)
    for row, segment in zip(report.rows, (None, pro | {0}), strict=True):
        per_user: dict[int, int] = defaultdict(int)
        for period in periods:
            for user in ref.during("active", period):
                if segment is None or user in segment:
                    per_user[user] += 1
        exactly = tuple(
            sum(1 for c in per_user.values() if c == k) for k in range(1, len(periods) + 1)
        )
        assert row.exactly == exactly
        assert row.at_least == tuple(sum(exactly[k:]) for k in range(len(periods)))


ZONE = "Pacific/Auckland"  # UTC+13 in December: most UTC days straddle two local days
utc_marks_strategy = st.lists(
    st.tuples(
        st.sampled_from(("active", "signup")),
        st.integers(0, 4 * (1 << SHARD_BITS)),
        st.integers(0, DAYS * 24 - 1).map(
            lambda h: dt.datetime.combine(FIRST, dt.time(), dt.timezone.utc) + dt.timedelta(hours=h)
        ),
    ),
    max_size=120,
)


@SETTINGS
@given(marks=utc_marks_strategy, every=st.sampled_from(["day", "week"]))
async def test_reports_follow_the_trackers_time_zone(
    client: redis.asyncio.Redis, marks: list[tuple[str, int, dt.datetime]], every: str
) -> None:
    """In Pacific/Auckland, engagement, stickiness and funnels bucket by the local calendar."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(ZONE)
    tracker = Tracker(client, prefix=f"rep{secrets.token_hex(4)}", shard_bits=SHARD_BITS, tz=ZONE)
    if marks:
        await tracker.mark_events(marks)
    ref = Reference([(e, u, at.astimezone(zone).date()) for e, u, at in marks])
    start, end = FIRST + dt.timedelta(days=8), FIRST + dt.timedelta(days=DAYS - 2)
    periods = [
        PERIODS[every].from_datetime(start, zone).delta(i)
        for i in range(len(_periods(every, start, end)))
    ]

    engagement = await tracker.engagement("active", start, end, every=every)  # type: ignore[arg-type]
    expected = []
    for period in periods:
        last = _last_day(period)
        expected.append(
            {
                name: len(ref.between("active", last - dt.timedelta(days=width - 1), last))
                for name, width in (("day", 1), ("week", 7), ("month", 30))
            }
        )
    assert [dict(p.counts) for p in engagement.points] == expected

    stickiness = await tracker.stickiness("active", start, end, every=every)  # type: ignore[arg-type]
    per_user: dict[int, int] = defaultdict(int)
    for period in periods:
        for user in ref.during("active", period):
            per_user[user] += 1
    assert stickiness.rows[0].exactly == tuple(
        sum(1 for c in per_user.values() if c == k) for k in range(1, len(periods) + 1)
    )

    funnel = await tracker.funnel(["signup", "active"], start, end, every=every)  # type: ignore[arg-type]
    reached = [0, 0]
    for user in set().union(*(ref.during("signup", p) for p in periods)):
        at = next(i for i, p in enumerate(periods) if user in ref.during("signup", p))
        reached[0] += 1
        reached[1] += any(user in ref.during("active", p) for p in periods[at:])
    assert funnel.rows[0].counts == tuple(reached)


async def test_a_user_active_in_every_period_counts_at_n(client: redis.asyncio.Redis) -> None:
    """A user active on each of 40 days is the one user active exactly 40 times."""
    marks = [("active", 7, FIRST + dt.timedelta(days=n)) for n in range(DAYS)]
    marks.append(("active", 8, FIRST))
    tracker = await _tracker(client, marks, set())
    report = await tracker.stickiness("active", FIRST, FIRST + dt.timedelta(days=DAYS - 1))
    exactly = report.rows[0].exactly
    assert (len(exactly), exactly[0], exactly[-1], sum(exactly)) == (40, 1, 1, 2)


# -- funnels -------------------------------------------------------------------------------

STEPS = ("visit", "cart", "buy")


def _funnel_reference(
    ref: Reference, periods: list[Period], ordered: str | bool, segment: set[int] | None
) -> tuple[int, ...]:
    """Users reaching each step within ``periods``, by simulating each user."""
    users = set().union(*(ref.during(s, p) for s in STEPS for p in periods))
    if segment is not None:
        users &= segment
    counts = [0] * len(STEPS)
    for user in users:
        if ordered is False:
            for i in range(len(STEPS)):
                if all(any(user in ref.during(s, p) for p in periods) for s in STEPS[: i + 1]):
                    counts[i] += 1
            continue
        step = 0  # steps done so far, greedily, period by period
        for period in periods:
            while step < len(STEPS) and user in ref.during(STEPS[step], period):
                step += 1
        for i in range(step):
            counts[i] += 1
    return tuple(counts)


@SETTINGS
@given(
    marks=marks_strategy,
    pro=pro_strategy,
    ordered=st.sampled_from(["period", False]),
    every=st.sampled_from(["day", "week"]),
)
async def test_funnel_matches_the_set_model(
    client: redis.asyncio.Redis, marks: Marks, pro: set[int], ordered: str | bool, every: str
) -> None:
    """Users at each step, ordered by period or not, per segment, equal the model's."""
    tracker = await _tracker(client, marks, pro)
    start, end = FIRST, FIRST + dt.timedelta(days=DAYS - 1)
    report = await tracker.funnel(STEPS, start, end, every=every, ordered=ordered, by=BY)  # type: ignore[arg-type]
    ref = Reference(marks)
    periods = _periods(every, start, end)
    expected = [
        _funnel_reference(ref, periods, ordered, None),
        _funnel_reference(ref, periods, ordered, pro | {0}),
    ]
    assert [row.counts for row in report.rows] == expected


@SETTINGS
@given(marks=marks_strategy)
async def test_a_conversion_window_counts_each_entry_period(
    client: redis.asyncio.Redis, marks: Marks
) -> None:
    """within=7d: each entry day counts the steps of its 7 days; the total is their union."""
    tracker = await _tracker(client, marks, set())
    start, end = FIRST, FIRST + dt.timedelta(days=20)
    report = await tracker.funnel(STEPS, start, end, within="7d")
    ref = Reference(marks)
    total_reached: list[set[int]] = [set() for _ in STEPS]
    expected_rows = []
    for day in _periods("day", start, end):
        window = [day.delta(i) for i in range(7)]
        entered = ref.during(STEPS[0], day)
        # each entrant, step 1 done on the entry day, then greedily period by period
        counts = [0] * len(STEPS)
        reached_sets: list[set[int]] = [set() for _ in STEPS]
        for user in entered:
            step = 1
            for period in window:
                while step < len(STEPS) and user in ref.during(STEPS[step], period):
                    step += 1
            for i in range(step):
                counts[i] += 1
                reached_sets[i].add(user)
        for i in range(len(STEPS)):
            total_reached[i] |= reached_sets[i]
        expected_rows.append((str(day), tuple(counts)))
    total, *rows = report.rows
    assert total.entered is None
    assert total.counts == tuple(len(s) for s in total_reached)
    assert [(str(r.entered), r.counts) for r in rows] == expected_rows


async def test_funnel_conversions(client: redis.asyncio.Redis) -> None:
    """conversion() is each step over the one before, overall() over the first step."""
    marks = [("visit", u, FIRST) for u in range(10)]
    marks += [("cart", u, FIRST) for u in range(5)]
    marks += [("buy", u, FIRST + dt.timedelta(days=1)) for u in range(2)]
    tracker = await _tracker(client, marks, set())
    report = await tracker.funnel(STEPS, FIRST, FIRST + dt.timedelta(days=3))
    [row] = report.rows
    assert row.counts == (10, 5, 2)
    assert row.conversion() == (1.0, 0.5, 0.4)
    assert row.overall() == (1.0, 0.5, 0.2)
    assert report.to_csv().splitlines()[1:] == [
        "all,all,1,10,1.0000,1.0000",
        "all,all,2,5,0.5000,0.5000",
        "all,all,3,2,0.4000,0.2000",
    ]


# -- the cost ------------------------------------------------------------------------------

REPORTS = ("engagement", "lifecycle", "stickiness", "funnel", "funnel_within")


async def _run(tracker: Tracker, name: str) -> object:
    start, end = FIRST, FIRST + dt.timedelta(days=DAYS - 1)
    if name == "engagement":
        return await tracker.engagement("active", start, end, by=BY)
    if name == "lifecycle":
        return await tracker.lifecycle("active", start, end, first="signup", by=BY)
    if name == "stickiness":
        return await tracker.stickiness("active", start, end, by=BY)
    if name == "funnel":
        return await tracker.funnel(STEPS, start, end, by=BY)
    return await tracker.funnel(STEPS, start, end, within="7d", by=BY)


def _busy_marks() -> Marks:
    return [
        (event, user, FIRST + dt.timedelta(days=(user * 7 + i) % DAYS))
        for user, (i, event) in itertools.product(range(0, 1000, 3), enumerate(EVENTS))
    ]


@pytest.mark.parametrize("name", REPORTS)
async def test_each_report_is_one_round_trip_and_leaves_no_key(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, name: str
) -> None:
    """Each whole report, segments included, is one round trip; no temp key survives it."""
    tracker = await _tracker(counted_client, _busy_marks(), set(range(0, 1000, 5)))
    await tracker.count(UniqueEvents("plan:pro"))  # the tracker knows the shard registry
    before = {key async for key in counted_client.scan_iter(match=f"{tracker.schema.prefix}*")}
    proxy.reset()
    await _run(tracker, name)
    assert proxy.round_trips == 1
    after = {key async for key in counted_client.scan_iter(match=f"{tracker.schema.prefix}*")}
    assert after == before


@pytest.mark.parametrize("name", REPORTS)
async def test_each_report_is_one_round_trip_per_master_on_a_cluster(
    cluster_client: RedisCluster, name: str
) -> None:
    """On a cluster each report is one round trip per master holding a shard, none more."""
    tracker = await _tracker(cluster_client, _busy_marks(), set(range(0, 1000, 5)))
    await tracker.count(UniqueEvents("plan:pro"))
    with count_writes() as counter:
        await _run(tracker, name)
    assert all(count == 1 for count in counter.per_node().values())


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.engagement("active", FIRST, FIRST, every="hour"),
        lambda t: t.engagement("active", FIRST, FIRST, windows=("day", "day")),
        lambda t: t.engagement("active", FIRST, FIRST - dt.timedelta(days=1)),
        lambda t: t.engagement("active", FIRST, FIRST + dt.timedelta(days=500)),
        lambda t: t.lifecycle("active", FIRST, FIRST, first=FIRST + dt.timedelta(days=30)),
        lambda t: t.funnel(["visit"], FIRST, FIRST),
        lambda t: t.funnel(STEPS, FIRST, FIRST, within="3d", every="week"),
        lambda t: t.funnel(STEPS, FIRST, FIRST, within="soon"),
        lambda t: t.funnel(STEPS, FIRST, FIRST, ordered="strict"),
        lambda t: t.stickiness("active", FIRST, FIRST, by={"os": {"ios": EventTemplate("ios")}}),
        lambda t: t.stickiness(
            "active", FIRST, FIRST, by={"id": [UniqueEvents(f"s{n}") for n in range(33)]}
        ),
    ],
)
async def test_arguments_that_make_no_report_are_refused_before_io(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, call: object
) -> None:
    """A bad granularity, window, range, first date, step list or segment raises, sends nothing."""
    tracker = Tracker(counted_client, prefix="never", shard_bits=SHARD_BITS)
    proxy.reset()
    with pytest.raises(InvalidRetentionQuery):
        await call(tracker)  # type: ignore[operator]
    assert proxy.round_trips == 0


# -- retention by segment ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["recurring", "first_time"])
async def test_a_retention_segment_is_the_table_of_the_segments_users(
    client: redis.asyncio.Redis, mode: str
) -> None:
    """Each segment's table equals the table whose start and return are ANDed with it."""
    pro = set(range(0, 1000, 5))
    tracker = await _tracker(client, _busy_marks(), pro)
    now = dt.datetime(2027, 1, 20, 12, tzinfo=dt.timezone.utc)
    history = FIRST if mode == "first_time" else None
    kwargs = {
        "period": "week",
        "cohorts": 5,
        "buckets": 4,
        "mode": mode,
        "history_start": history,
        "now": now,
    }
    table = await tracker.retention("active", by=BY, **kwargs)  # type: ignore[arg-type]
    active, seg = EventTemplate("active"), UniqueEvents("plan:pro")
    alone = await tracker.retention(active & seg, active & seg, **kwargs)  # type: ignore[arg-type]
    total = await tracker.retention("active", **kwargs)  # type: ignore[arg-type]
    assert [label for label, _ in table.segments] == ["plan=pro"]
    assert table.segment("plan=pro").rows == alone.rows
    assert table.rows == total.rows
    assert any(row.size for row in alone.rows)


async def test_a_segmented_retention_table_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy
) -> None:
    """The total and every segment's table come in one round trip."""
    tracker = await _tracker(counted_client, _busy_marks(), set(range(0, 1000, 5)))
    await tracker.count(UniqueEvents("plan:pro"))
    proxy.reset()
    by = {"plan": {"pro": UniqueEvents("plan:pro"), "free": ~UniqueEvents("plan:pro")}}
    table = await tracker.retention("active", period="day", cohorts=20, buckets=8, by=by)
    assert proxy.round_trips == 1
    assert len(table.segments) == 2


# -- the values ----------------------------------------------------------------------------


def _funnel_value() -> FunnelReport:
    return FunnelReport(
        steps=(UniqueEvents("visit"), UniqueEvents("buy")),
        ordered="period",
        within=None,
        rows=(
            FunnelRow(segment=None, entered=None, counts=(4, 1)),
            FunnelRow(segment=("plan", "<pro>"), entered=None, counts=(0, 0)),
        ),
    )


def test_a_report_as_html_escapes_labels_and_shows_shares_as_percent() -> None:
    """to_html is one table: a header cell per column, labels escaped, shares as percent."""
    page = _funnel_value().to_html()
    assert page.count("<th>") == len(_funnel_value().header())
    assert "&lt;pro&gt;" in page
    assert "<pro>" not in page
    assert "<td>25.0%</td>" in page
    assert "<td></td>" in page  # a share of nobody is empty, not 0%


def test_a_report_as_pandas_has_its_header_as_columns() -> None:
    """to_pandas gives one row per to_rows() row under the header, NaN for a missing share."""
    pytest.importorskip("pandas")
    frame = _funnel_value().to_pandas()
    rows = _funnel_value().to_rows()
    assert list(frame.columns) == list(_funnel_value().header())
    assert frame.iloc[:2].to_numpy().tolist() == rows[:2]
    assert frame["conversion"].isna().tolist() == [v is None for v, *_ in (r[4:] for r in rows)]


def test_a_report_to_pandas_without_pandas_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without pandas, to_pandas raises ImportError naming the report and the extra."""
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"FunnelReport\.to_pandas\(\).*bitlens\[pandas\]"):
        _funnel_value().to_pandas()
