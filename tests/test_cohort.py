"""Retention tables on real servers: answers against a set model, one round trip, bitmapist parity.

The data: ~500 users (ids spread over a dozen shards) active on random days from October
2026 to February 2027, some also on ``ios`` (the same day, or the day before or after, so
"active and ios in the same period" depends on the period). The clock is 2027-01-20 13:00
UTC, so tables cross ISO week 2026-W53 / 2027-W01, hold empty and future cohorts, future
buckets, and marks dated after "now" (which no bucket may count).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import anyio
import pytest

import bitlens
from _helpers import connect
from _retention_reference import Index, PeriodType, reference_table
from bitlens import (
    BitmapistSchema,
    Day,
    EventTemplate,
    Expr,
    InvalidEventName,
    InvalidExpression,
    Month,
    Tracker,
    Universe,
    UnsupportedOperation,
    Week,
    _default,
)
from bitlens.cohort import (
    InvalidRetentionQuery,
    RetentionTable,
    get_dates_data,
    retention,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio

    from _proxy import RoundTripProxy
    from bitlens.cohort import Criterion, Mode, PeriodName
    from bitlens.embedded import EmbeddedRedis

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
NOW = dt.datetime(2027, 1, 20, 13, 0, tzinfo=UTC)
FIRST_DAY = dt.datetime(2026, 10, 5, tzinfo=UTC)
DAYS = 129  # up to 2027-02-10: three weeks of marks lie after NOW
HISTORY = dt.date(2026, 9, 1)
SHARD_BITS = 8  # 256 ids per shard: ~12 shards

ROOT = Path(__file__).resolve().parent.parent
SIDE_SCRIPT = ROOT / "benchmarks" / "bitmapist_cohort_side.py"


@cache
def activity(seed: int = 7) -> tuple[tuple[str, int, dt.datetime], ...]:
    """Return the marks: each user joins on a random day and comes back less and less."""
    rng = random.Random(seed)
    marks: list[tuple[str, int, dt.datetime]] = []
    for uid in rng.sample(range(3_000), 500):
        first = rng.randrange(DAYS)
        stickiness = rng.uniform(0.05, 0.5)
        for day in range(first, DAYS):
            if day != first and rng.random() >= stickiness * 0.97 ** (day - first):
                continue
            at = FIRST_DAY + dt.timedelta(days=day, hours=rng.randrange(24))
            marks.append(("active", uid, at))
            if rng.random() < 0.4:
                marks.append(("ios", uid, at))
            elif rng.random() < 0.4:
                marks.append(("ios", uid, at + dt.timedelta(days=rng.choice((-1, 1)))))
    return tuple(marks)


@cache
def index(period: PeriodName, tz: str = "UTC") -> Index:
    """Return the set model of :func:`activity` at one granularity."""
    types: dict[str, PeriodType] = {"day": Day, "week": Week, "month": Month}
    ptype = types[period]
    zone = dt.timezone.utc if tz == "UTC" else ZoneInfo(tz)
    model = Index(ptype, zone)
    for event, uid, at in activity():
        model.add(event, uid, at)
    return model


@dataclass(frozen=True)
class Shape:
    """A table's size per period: rows, buckets, brackets."""

    cohorts: int
    buckets: int
    brackets: tuple[tuple[int, int], ...]


SHAPES: dict[PeriodName, Shape] = {
    "day": Shape(31, 13, ((1, 1), (2, 3), (4, 7), (8, 14))),
    "week": Shape(10, 8, ((1, 2), (3, 5))),
    "month": Shape(5, 4, ((1, 1), (2, 3))),
}


def columns_of(criterion: str, shape: Shape) -> tuple[tuple[int, int | None], ...]:
    """Return the offsets of each column for a criterion name."""
    if criterion == "on":
        return tuple((k, k) for k in range(shape.buckets))
    if criterion == "on_or_after":
        return tuple((k, None) for k in range(shape.buckets))
    return shape.brackets


def criterion_of(criterion: str, shape: Shape) -> tuple[Criterion, int | None]:
    """Return the ``criterion`` and ``buckets`` arguments for a criterion name."""
    if criterion == "brackets":
        return list(shape.brackets), None
    return ("on" if criterion == "on" else "on_or_after"), shape.buckets


def observed(
    table: RetentionTable,
) -> list[tuple[str, int, tuple[int | None, ...], tuple[bool, ...]]]:
    """Return each row as (label, size, counts, completeness)."""
    return [
        (
            row.label,
            row.size,
            tuple(c.count for c in row.cells),
            tuple(c.complete for c in row.cells),
        )
        for row in table.rows
    ]


def expected(
    period: PeriodName, start: Expr, returning: Expr, criterion: str, **options: Any
) -> list[tuple[str, int, tuple[int | None, ...], tuple[bool, ...]]]:
    """Return the reference rows in the shape of :func:`observed`."""
    shape = SHAPES[period]
    tz = options.pop("tz", "UTC")
    rows = reference_table(
        index(period, tz),
        start,
        returning,
        cohorts=options.pop("cohorts", shape.cohorts),
        columns=columns_of(criterion, shape),
        now=options.pop("now", NOW),
        **options,
    )
    return [(str(r.cohort), r.size, r.counts, r.complete) for r in rows]


async def _marked(client: redis.asyncio.Redis, prefix: str, tz: str = "UTC") -> Tracker:
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS, tz=tz)
    await tracker.mark_events(activity())
    return tracker


@pytest.fixture
async def tracker(client: redis.asyncio.Redis, prefix: str) -> AsyncIterator[Tracker]:
    """A tracker over :func:`activity`."""
    async with await _marked(client, prefix) as marked:
        yield marked


# -- answers against the set model -------------------------------------------------------------


@pytest.mark.parametrize("criterion", ["on", "on_or_after", "brackets"])
@pytest.mark.parametrize("mode", ["recurring", "first_time"])
@pytest.mark.parametrize("period", ["day", "week", "month"])
async def test_retention_matches_the_set_model(
    tracker: Tracker, period: PeriodName, mode: Mode, criterion: str
) -> None:
    """Every cohort size, cell count and completeness flag equals the reference."""
    shape = SHAPES[period]
    crit, buckets = criterion_of(criterion, shape)
    history = HISTORY if mode == "first_time" else None
    table = await retention(
        tracker,
        "active",
        period=period,
        cohorts=shape.cohorts,
        buckets=buckets,
        mode=mode,
        criterion=crit,
        history_start=history,
        now=NOW,
    )
    active = EventTemplate("active")
    assert observed(table) == expected(period, active, active, criterion, history_start=history)


@pytest.mark.parametrize("mode", ["recurring", "first_time"])
async def test_composite_events_are_bound_period_by_period(tracker: Tracker, mode: Mode) -> None:
    """``active & ios`` means both in the same week, for the cohort, the history and returns."""
    both = EventTemplate("active") & EventTemplate("ios")
    history = HISTORY if mode == "first_time" else None
    table = await retention(
        tracker,
        both,
        EventTemplate("ios") & EventTemplate("active"),
        period="week",
        cohorts=10,
        buckets=8,
        mode=mode,
        criterion="on_or_after",
        history_start=history,
        now=NOW,
    )
    assert observed(table) == expected("week", both, both, "on_or_after", history_start=history)


async def test_distributive_returning_expression_matches_the_set_model(tracker: Tracker) -> None:
    """A returning ``ios | (active - ios)`` is covered by months, weeks and days, exactly."""
    returning = EventTemplate("ios") | (EventTemplate("active") - EventTemplate("ios"))
    table = await retention(
        tracker, "active", returning, period="day", criterion="on_or_after", now=NOW
    )
    want = expected(
        "day",
        EventTemplate("active"),
        EventTemplate("active") | EventTemplate("ios"),
        "on_or_after",
    )
    assert observed(table) == want


async def test_time_zone_of_the_tracker_decides_the_periods(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """On a Europe/Berlin tracker, days and "now" are Berlin's."""
    tracker = await _marked(client, prefix, tz="Europe/Berlin")
    table = await retention(tracker, "active", period="day", now=NOW)
    active = EventTemplate("active")
    assert observed(table) == expected("day", active, active, "on", tz="Europe/Berlin")


async def test_returning_defaults_to_the_start_event(tracker: Tracker) -> None:
    """Without ``returning`` a cohort returns by doing the start event again: bucket 0 is 100 %."""
    table = await retention(tracker, "active", period="week", cohorts=6, now=NOW)
    assert table.returning == EventTemplate("active")
    assert all(row.cells[0].percent == 100.0 for row in table.rows if row.size)


async def test_tracker_retention_delegates_to_the_cohort_module(tracker: Tracker) -> None:
    """tracker.retention(...) returns the same table as bitlens.cohort.retention(tracker, ...)."""
    direct = await retention(tracker, "ios", "active", period="week", cohorts=4, now=NOW)
    method = await tracker.retention("ios", "active", period="week", cohorts=4, now=NOW)
    assert method.rows == direct.rows
    assert any(row.size for row in method.rows)


async def test_first_time_cohorts_are_disjoint(tracker: Tracker) -> None:
    """With history from before the first mark, every user is in exactly one first-time cohort."""
    after_the_data = dt.datetime(2027, 3, 1, tzinfo=UTC)
    table = await retention(
        tracker,
        "active",
        period="month",
        cohorts=6,
        mode="first_time",
        history_start=HISTORY,
        now=after_the_data,
    )
    everyone = await tracker.count(Universe())
    assert sum(row.size for row in table.rows) == everyone


# -- calendar edges --------------------------------------------------------------------------


async def test_week_labels_are_iso_across_the_year_boundary(tracker: Tracker) -> None:
    """Weekly cohorts are labelled by ISO year and week: 2026-W52, 2026-W53, 2027-W01."""
    table = await retention(tracker, "active", period="week", cohorts=5, now=NOW)
    labels = [row.label for row in table.rows]
    assert labels == ["2026-W52", "2026-W53", "2027-W01", "2027-W02", "2027-W03"]
    assert '<th scope="row">2026-W53</th>' in table.to_html()


async def test_future_buckets_hold_no_count_and_are_incomplete(tracker: Tracker) -> None:
    """Buckets after the current period are None; the current one has a count, incomplete."""
    table = await retention(tracker, "active", period="week", cohorts=3, buckets=4, now=NOW)
    last = table.rows[-1]  # 2027-W03, the current week
    assert last.cells[0].count is not None
    assert not last.cells[0].complete
    assert [c.count for c in last.cells[1:]] == [None, None, None]
    assert [c.percent for c in last.cells[1:]] == [None, None, None]
    assert not any(c.complete for c in last.cells)


async def test_cohorts_after_now_are_empty_and_future(tracker: Tracker) -> None:
    """With ``end`` after now, the cohorts that have not started have size 0 and no counts."""
    end = NOW + dt.timedelta(days=2)
    table = await retention(tracker, "active", period="day", cohorts=4, buckets=2, end=end, now=NOW)
    future = table.rows[-2:]
    assert [row.label for row in future] == ["2027-01-21", "2027-01-22"]
    assert all(row.size == 0 and not row.complete for row in future)
    assert all(c.count is None and not c.complete for row in future for c in row.cells)


async def test_an_empty_cohort_has_size_zero_and_no_percentages(tracker: Tracker) -> None:
    """September 2026 has no marks: size 0, counts 0, percentages None, averages skip it."""
    table = await retention(tracker, "active", period="month", cohorts=5, buckets=3, now=NOW)
    september = table.rows[0]
    assert september.label == "2026-09"
    assert september.size == 0
    assert [c.count for c in september.cells] == [0, 0, 0]
    assert [c.percent for c in september.cells] == [None, None, None]


# -- one round trip ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criterion", "mode"),
    [
        ("on", "recurring"),
        ("on_or_after", "recurring"),
        ("on", "first_time"),
        ("on_or_after", "first_time"),
    ],
)
async def test_a_31_by_13_day_table_is_one_round_trip(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    criterion: Criterion,
    mode: Mode,
) -> None:
    """The default 31 x 13 day table, sizes and cells, is one round trip on one server."""
    tracker = await _marked(counted_client, prefix)
    await tracker.count(Universe())  # the tracker now knows the shard registry
    proxy.reset()
    history = HISTORY if mode == "first_time" else None
    table = await retention(
        tracker, "active", criterion=criterion, mode=mode, history_start=history, now=NOW
    )
    assert proxy.round_trips == 1
    assert (len(table.rows), table.buckets) == (31, 13)


async def test_get_dates_data_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """bitmapist's default 31 x 13 table, about 1,240 round trips there, is one here."""
    tracker = await _marked(counted_client, prefix)
    await tracker.count(Universe())
    proxy.reset()
    rows = await get_dates_data("active", "active", start_date="2026-12-20", tracker=tracker)
    assert proxy.round_trips == 1
    assert (len(rows), len(rows[0])) == (31, 15)


async def test_counting_an_unbound_template_raises_before_sending(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """Counting an unbound EventTemplate raises UnsupportedOperation naming .at(period)."""
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(UnsupportedOperation, match=r"\.at\(period\)"):
        await tracker.count(EventTemplate("active") & EventTemplate("ios"))
    assert proxy.commands == 0


# -- output ------------------------------------------------------------------------------------

ODD = 'a<b>&"c,d'


async def test_csv_quotes_an_event_name_that_needs_it(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """An event named ``a<b>&"c,d`` comes back intact from the CSV's corner cell."""
    import csv

    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_events([(ODD, 1, NOW), (ODD, 2, NOW - dt.timedelta(days=1))])
    table = await retention(tracker, ODD, period="day", cohorts=2, buckets=2, now=NOW)
    rows = list(csv.reader(table.to_csv().splitlines()))
    assert rows[0] == [f"{ODD} -> {ODD}", "size", "0", "1", "incomplete"]
    assert rows[1:] == [
        ["2027-01-19", "1", "100.00", "0.00", "1"],
        ["2027-01-20", "1", "100.00", "", "0"],
    ]


async def test_html_escapes_an_event_name(client: redis.asyncio.Redis, prefix: str) -> None:
    """The HTML fragment shows ``a<b>&"c,d`` escaped, never as markup."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_events([(ODD, 1, NOW)])
    html = (await retention(tracker, ODD, period="day", cohorts=1, buckets=2, now=NOW)).to_html()
    assert "a&lt;b&gt;&amp;&quot;c,d -&gt; a&lt;b&gt;&amp;&quot;c,d" in html
    assert "<b>" not in html
    assert html.startswith('<table class="bitlens-retention"')


def test_the_readme_example_prints_what_the_readme_says(redis_url: str) -> None:
    """The cohort guide's example (docs/cohorts.md), run on a real server, prints its output."""
    section = (ROOT / "docs" / "cohorts.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    printed = re.search(r"```text\n(.*?)```", section, re.DOTALL)
    assert code is not None
    assert printed is not None
    done = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed.group(1)


# -- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"period": "fortnight"}, "period"),
        ({"cohorts": 0}, "cohorts"),
        ({"buckets": 0}, "buckets"),
        ({"criterion": "sideways"}, "criterion"),
        ({"criterion": [(3, 1)]}, "first <= last"),
        ({"criterion": [(1, 2)], "buckets": 5}, "not both"),
        ({"criterion": []}, "empty"),
        ({"mode": "sometimes"}, "mode"),
        ({"mode": "first_time"}, "history_start"),
        ({"mode": "first_time", "history_start": dt.date(2027, 1, 19)}, "after the first"),
        ({"history_start": dt.date(2026, 1, 1)}, "is for mode=.first_time. only"),
    ],
)
async def test_bad_arguments_raise_before_any_io(options: dict[str, Any], match: str) -> None:
    """Arguments that make no table raise InvalidRetentionQuery without touching Redis."""
    async with Tracker("redis://127.0.0.1:1/0") as offline:
        with pytest.raises(InvalidRetentionQuery, match=match):
            await retention(offline, "active", now=NOW, **options)


async def test_start_must_be_a_name_or_an_expression() -> None:
    """A start that is neither a str nor an expression raises InvalidExpression."""
    async with Tracker("redis://127.0.0.1:1/0") as offline:
        with pytest.raises(InvalidExpression):
            await retention(offline, 42, now=NOW)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(InvalidEventName):
            await retention(offline, "two words", now=NOW)


@pytest.mark.parametrize(
    ("options", "match"),
    [({"system": "secondary"}, "named systems"), ({"time_group": "fortnights"}, "time_group")],
)
async def test_get_dates_data_refuses_what_bitlens_has_not(
    options: dict[str, Any], match: str
) -> None:
    """A named bitmapist system or an unknown time group raises before any I/O."""
    async with Tracker("redis://127.0.0.1:1/0") as offline:
        with pytest.raises(InvalidRetentionQuery, match=match):
            await get_dates_data("active", "active", tracker=offline, **options)


async def test_get_dates_data_uses_the_default_tracker(tracker: Tracker) -> None:
    """Without tracker=, the one set by bitlens.setup() answers, as bitmapist's global would."""
    bitlens.setup(tracker)
    try:
        rows = await get_dates_data("active", "ios", start_date="2027-01-01", num_results=2)
    finally:
        _default.reset()
    assert rows == await get_dates_data(
        "active", "ios", start_date="2027-01-01", num_results=2, tracker=tracker
    )
    assert isinstance(rows[0][2], float)


# -- bitmapist parity ----------------------------------------------------------------------------


def _parity_tables(a: str, i: str) -> dict[str, dict[str, Any]]:
    return {
        "days": {"select1": a, "select2": a, "time_group": "days", "start_date": "2026-12-20"},
        "days-counts-other-event": {
            "select1": a,
            "select2": i,
            "time_group": "days",
            "as_percent": False,
            "num_results": 20,
            "num_of_rows": 8,
            "start_date": "2026-12-27",
        },
        "weeks-with-b-selections": {
            "select1": a,
            "select1b": i,
            "select2": a,
            "select2b": i,
            "time_group": "weeks",
            "num_results": 12,
            "num_of_rows": 8,
            "start_date": "2026-11-02",
        },
        "months": {
            "select1": i,
            "select2": a,
            "time_group": "months",
            "num_results": 6,
            "num_of_rows": 5,
            "start_date": "2026-09-30",
        },
        "years": {"select1": a, "select2": i, "time_group": "years", "start_date": "2027-01-31"},
    }


@dataclass(frozen=True)
class Parity:
    """What bitmapist answered on the marks, and where bitlens holds the same marks."""

    prefix: str
    tables: dict[str, dict[str, Any]]
    answers: dict[str, list[list[Any]]]


@pytest.fixture(scope="module")
async def parity(
    redis_server: EmbeddedRedis, redis_url: str, bitmapist_python: Path
) -> AsyncIterator[Parity]:
    """Write :func:`activity` in both layouts (bitmapist's by bitmapist) and ask bitmapist."""
    prefix = f"parity{random.randrange(10**9)}"
    a, i = f"{prefix}.active", f"{prefix}.ios"
    names = {"active": a, "ios": i}
    marks = [(names[event], uid, at) for event, uid, at in activity()]
    connection = connect(redis_url)
    async with Tracker(connection, prefix=prefix, shard_bits=SHARD_BITS) as tracker:
        await tracker.mark_events(marks)
    tables = _parity_tables(a, i)
    job = {"marks": [[e, u, at.isoformat()] for e, u, at in marks], "tables": tables}
    done = await anyio.run_process(
        [
            str(bitmapist_python),
            str(SIDE_SCRIPT),
            "--host",
            redis_server.host,
            "--port",
            str(redis_server.port),
        ],
        input=json.dumps(job).encode(),
    )
    report = json.loads(done.stdout)
    assert report["bitmapist"] == "3.119"
    yield Parity(prefix, tables, report["tables"])
    keys = [k async for k in connection.scan_iter(match=f"trackist_*{prefix}*", count=1000)]
    if keys:
        await connection.delete(*keys)
    await connection.aclose()


@pytest.mark.parametrize("name", list(_parity_tables("a", "i")))
async def test_get_dates_data_equals_bitmapist(
    parity: Parity, client: redis.asyncio.Redis, name: str
) -> None:
    """Same rows, dates, '' cells, 0.0 cells, floats and ints as bitmapist 3.119's own run."""
    tracker = Tracker(client, prefix=parity.prefix, shard_bits=SHARD_BITS)
    rows = await get_dates_data(**parity.tables[name], tracker=tracker)
    ours = [[_iso(row[0]), *row[1:]] for row in rows]
    assert json.dumps(ours) == json.dumps(parity.answers[name])


@pytest.mark.parametrize("name", list(_parity_tables("a", "i")))
async def test_get_dates_data_reads_bitmapists_keys_in_place(
    parity: Parity, client: redis.asyncio.Redis, name: str
) -> None:
    """On the keys bitmapist itself wrote, bitlens' rows equal bitmapist's, cell for cell."""
    tracker = Tracker(client, schema=BitmapistSchema())
    rows = await get_dates_data(**parity.tables[name], tracker=tracker)
    ours = [[_iso(row[0]), *row[1:]] for row in rows]
    assert json.dumps(ours) == json.dumps(parity.answers[name])


@pytest.fixture(scope="module")
async def written_by_bitlens(
    redis_server: EmbeddedRedis, redis_url: str, bitmapist_python: Path
) -> AsyncIterator[dict[str, list[list[Any]]]]:
    """bitlens writes :func:`activity` in bitmapist's layout; bitmapist computes the tables."""
    tag = f"blparity{random.randrange(10**9)}"
    names = {"active": f"{tag}.active", "ios": f"{tag}.ios"}
    connection = connect(redis_url)
    async with Tracker(connection, schema=BitmapistSchema()) as tracker:
        await tracker.mark_events([(names[event], uid, at) for event, uid, at in activity()])
    job = {"tables": _parity_tables(names["active"], names["ios"])}
    done = await anyio.run_process(
        [
            str(bitmapist_python),
            str(SIDE_SCRIPT),
            "--host",
            redis_server.host,
            "--port",
            str(redis_server.port),
        ],
        input=json.dumps(job).encode(),
    )
    report = json.loads(done.stdout)
    assert report["bitmapist"] == "3.119"
    yield report["tables"]
    keys = [k async for k in connection.scan_iter(match=f"trackist_{tag}*", count=1000)]
    if keys:
        await connection.delete(*keys)
    await connection.aclose()


@pytest.mark.parametrize("name", list(_parity_tables("a", "i")))
async def test_bitmapist_reads_the_tables_of_bitlens_writes(
    parity: Parity, written_by_bitlens: dict[str, list[list[Any]]], name: str
) -> None:
    """bitmapist's get_dates_data on keys bitlens wrote gives the rows of its own marks."""
    assert json.dumps(written_by_bitlens[name]) == json.dumps(parity.answers[name])


def _iso(date: object) -> str:
    assert isinstance(date, dt.datetime)
    return date.isoformat()
