"""Tests for ``bitlens._periods``: calendar periods, time zones and range covering."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import pickle
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import examples
from bitlens._cover import cover
from bitlens._exceptions import GranularityNotTracked, InvalidPeriod
from bitlens._periods import (
    UTC,
    Day,
    Hour,
    Month,
    Period,
    Week,
    Year,
    resolve_tz,
    to_local,
)

if TYPE_CHECKING:
    from collections.abc import Callable

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
FIXED = timezone(timedelta(hours=-3, minutes=-30))

PERIOD_CLASSES: tuple[type[Period], ...] = (Hour, Day, Week, Month, Year)
ZONES: list[tzinfo] = [UTC, BERLIN, NEW_YORK, FIXED]

zones = st.sampled_from(ZONES)
classes = st.sampled_from(PERIOD_CLASSES)
moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
aware_moments = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, BERLIN]),
)


@st.composite
def periods(draw: st.DrawFn) -> Period:
    """Draw a period of any class, in any test zone, between 1900 and 2200."""
    cls = draw(classes)
    return cls.from_datetime(draw(moments), draw(zones))


def loose(value: object) -> Any:
    """Hide a value's type so a deliberately wrong argument passes the type checkers."""
    return value


def hour_index(dt: datetime) -> int:
    """Number a local wall-clock hour (ignoring tzinfo) on a single integer scale."""
    return dt.toordinal() * 24 + dt.hour


def wall_span(p: Period) -> tuple[int, int]:
    """Give the wall-clock hour indexes [first, stop) a period spans."""
    return hour_index(p.start), hour_index(p.end)


def wall_hours(p: Period) -> list[int]:
    """Expand a period into its wall-clock hour indexes through the navigation helpers."""
    if isinstance(p, Hour):
        return [hour_index(p.start)]
    if isinstance(p, Day):
        return [hour_index(h.start) for h in p.hours()]
    if isinstance(p, Week | Month):
        return [hour_index(h.start) for d in p.days() for h in d.hours()]
    assert isinstance(p, Year)
    return [hour_index(h.start) for m in p.months() for d in m.days() for h in d.hours()]


# -- ISO weeks ------------------------------------------------------------------------------


def test_day_2024_12_30_is_in_week_2025_01() -> None:
    """A Monday late in December can belong to week 1 of the next ISO year."""
    assert Day(2024, 12, 30).as_week() == Week(2025, 1)
    assert Week.from_datetime(date(2024, 12, 30)) == Week(2025, 1)


def test_week_53_spans_new_year() -> None:
    """2026-12-28 to 2027-01-03 all belong to ISO week 2026-W53."""
    for offset in range(7):
        day = date(2026, 12, 28) + timedelta(days=offset)
        assert Week.from_datetime(day) == Week(2026, 53)
        assert Day.from_datetime(day).as_week() == Week(2026, 53)


def test_week_53_next_is_week_1() -> None:
    """The week after 2026-W53 is 2027-W01, and back."""
    assert Week(2026, 53).next() == Week(2027, 1)
    assert Week(2027, 1).prev() == Week(2026, 53)


def test_week_53_of_52_week_year_rejected() -> None:
    """2025 has 52 ISO weeks, so Week(2025, 53) does not exist."""
    with pytest.raises(InvalidPeriod, match=r"week 53 is out of range for ISO year 2025"):
        Week(2025, 53)


def test_week_days_span_two_years() -> None:
    """Week.days() runs Monday to Sunday across the year boundary."""
    days = Week(2026, 53).days()
    assert days[0] == Day(2026, 12, 28)
    assert days[-1] == Day(2027, 1, 3)
    assert len(days) == 7


def test_week_start_date() -> None:
    """Week.start_date is the Monday of the ISO week."""
    assert Week(2026, 6).start_date == date(2026, 2, 2)
    assert Week(1, 1).start_date == date(1, 1, 1)


@given(moments, zones)
def test_week_start_date_is_the_monday(moment: datetime, zone: tzinfo) -> None:
    """The week of any moment starts on a Monday with the same ISO year and week."""
    week = Week.from_datetime(moment, zone)
    assert week.start_date.weekday() == 0
    assert week.start_date.isocalendar()[:2] == (week.iso_year, week.week)
    assert week.start_date <= moment.date() < week.start_date + timedelta(days=7)


def test_last_week_is_valid_but_its_days_are_not() -> None:
    """Week(9999, 52) exists, but its Sunday lies past year 9999."""
    week = Week.from_datetime(date(9999, 12, 31))
    assert week == Week(9999, 52)
    with pytest.raises(InvalidPeriod):
        week.days()


# -- time zones -----------------------------------------------------------------------------


def test_resolve_tz_utc_names() -> None:
    """'UTC' and 'utc' resolve to datetime.timezone.utc."""
    assert resolve_tz("UTC") is timezone.utc
    assert resolve_tz("utc") is timezone.utc


def test_resolve_tz_zone_name_and_passthrough() -> None:
    """An IANA name resolves to a ZoneInfo; a tzinfo is returned unchanged."""
    assert resolve_tz("Europe/Berlin") == BERLIN
    assert resolve_tz(FIXED) is FIXED


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "Europe"])
def test_resolve_tz_unknown_name(name: str) -> None:
    """An unknown zone name raises InvalidPeriod."""
    with pytest.raises(InvalidPeriod, match="unknown time zone"):
        resolve_tz(name)


def test_resolve_tz_wrong_type() -> None:
    """Something that is neither str nor tzinfo raises TypeError."""
    with pytest.raises(TypeError, match="str or tzinfo"):
        resolve_tz(loose(5))


def test_to_local_converts_aware_datetime() -> None:
    """An aware datetime is converted into the zone."""
    local = to_local(datetime(2026, 11, 27, 23, 30, tzinfo=UTC), "Europe/Berlin")
    assert local.tzinfo is BERLIN
    assert local.replace(tzinfo=None) == datetime(2026, 11, 28, 0, 30)


def test_to_local_naive_datetime_is_local() -> None:
    """A naive datetime is taken as wall-clock time in the zone."""
    local = to_local(datetime(2026, 11, 27, 23, 30), BERLIN)
    assert local == datetime(2026, 11, 27, 23, 30, tzinfo=BERLIN)
    assert local.utcoffset() == timedelta(hours=1)


def test_to_local_date_is_midnight() -> None:
    """A plain date means local midnight of that date."""
    assert to_local(date(2026, 7, 1), BERLIN).isoformat() == "2026-07-01T00:00:00+02:00"


def test_late_utc_evening_is_next_day_in_berlin() -> None:
    """23:30 UTC on Nov 27 is already Nov 28 in Berlin."""
    moment = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    assert Day.from_datetime(moment, "Europe/Berlin") == Day(2026, 11, 28)
    assert Day.from_datetime(moment) == Day(2026, 11, 27)


def test_naive_datetime_taken_as_berlin_time() -> None:
    """from_datetime reads a naive datetime as local time in the given zone."""
    assert Hour.from_datetime(datetime(2026, 11, 27, 23, 30), BERLIN) == Hour(2026, 11, 27, 23)


def test_berlin_day_start() -> None:
    """A Berlin day starts at local midnight with the local offset."""
    day = Day(2026, 11, 28, BERLIN)
    assert day.start.isoformat() == "2026-11-28T00:00:00+01:00"
    assert day.start.tzinfo is BERLIN
    assert day.start == datetime(2026, 11, 27, 23, tzinfo=UTC)


def test_spring_forward_day_is_23_hours() -> None:
    """The DST start day 2026-03-29 in Berlin lasts 23 real hours."""
    day = Day(2026, 3, 29, BERLIN)
    assert day.end.timestamp() - day.start.timestamp() == 23 * 3600


def test_fall_back_day_is_25_hours() -> None:
    """The DST end day 2026-10-25 in Berlin lasts 25 real hours."""
    day = Day(2026, 10, 25, BERLIN)
    assert day.end.timestamp() - day.start.timestamp() == 25 * 3600


def test_hours_follow_the_wall_clock_across_a_gap() -> None:
    """Hour.next() steps the wall clock, even into the skipped 02:00 hour."""
    assert Hour(2026, 3, 29, 1, BERLIN).next() == Hour(2026, 3, 29, 2)
    assert len(Day(2026, 3, 29, BERLIN).hours()) == 24


def test_constructor_accepts_zone_name() -> None:
    """A zone name passed to a constructor is resolved to a tzinfo."""
    assert Day(2026, 1, 1, "Europe/Berlin").tz is BERLIN
    assert Week(2026, 1, "UTC").tz is UTC
    assert Hour(2026, 1, 1, 0).tz is UTC


def test_constructor_rejects_unknown_zone() -> None:
    """An unknown zone name passed to a constructor raises InvalidPeriod."""
    with pytest.raises(InvalidPeriod, match="unknown time zone"):
        Month(2026, 1, "Nowhere/Land")


# -- equality, hashing, copying -------------------------------------------------------------


def test_tz_ignored_in_equality_and_hash() -> None:
    """Periods that differ only by zone are equal and hash alike."""
    assert Day(2026, 1, 1, UTC) == Day(2026, 1, 1, BERLIN)
    assert hash(Hour(2026, 1, 1, 5, UTC)) == hash(Hour(2026, 1, 1, 5, BERLIN))
    assert len({Week(2026, 1, UTC), Week(2026, 1, NEW_YORK)}) == 1


def test_tz_ignored_in_ordering() -> None:
    """Ordering looks at the date fields only."""
    assert Day(2026, 1, 1, BERLIN) < Day(2026, 1, 2, UTC)
    assert not Month(2026, 1, BERLIN) < Month(2026, 1, UTC)


def test_different_classes_are_not_ordered() -> None:
    """Comparing a Day with a Month raises TypeError."""
    day: Period = Day(2026, 1, 1)
    with pytest.raises(TypeError):
        _ = day < Month(2026, 1)


def test_mixed_periods_sort_within_class() -> None:
    """A list typed as Period sorts by time when all items share a class."""
    items: list[Period] = [Week(2026, 3), Week(2025, 52, BERLIN), Week(2026, 1)]
    assert sorted(items) == [Week(2025, 52), Week(2026, 1), Week(2026, 3)]


def test_different_classes_never_equal() -> None:
    """A Month is never equal to a Day or Year, even on the same date."""
    month: Period = Month(2026, 1)
    assert month != Year(2026)
    assert Day(2026, 1, 1) != month


def test_periods_are_frozen() -> None:
    """Assigning a field raises FrozenInstanceError."""
    day = Day(2026, 1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loose(day).year = 2027


@given(periods())
def test_pickle_and_copy_keep_period_and_tz(p: Period) -> None:
    """Pickling and deep-copying give an equal period with the same zone."""
    for clone in (pickle.loads(pickle.dumps(p)), copy.deepcopy(p), copy.copy(p)):
        assert clone == p
        assert type(clone) is type(p)
        assert clone.tz == p.tz


def test_replace_revalidates() -> None:
    """dataclasses.replace goes through the validating constructor."""
    assert dataclasses.replace(Day(2024, 2, 29), day=1) == Day(2024, 2, 1)
    with pytest.raises(InvalidPeriod):
        dataclasses.replace(Day(2024, 2, 29), year=2025)


@given(periods(), zones)
def test_with_tz_keeps_period_and_changes_zone(p: Period, zone: tzinfo) -> None:
    """with_tz gives an equal period carrying the new zone."""
    moved = p.with_tz(zone)
    assert moved == p
    assert moved.tz is zone


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: Year(0), r"year 0 is out of range \(1\.\.9999\)"),
        (lambda: Year(10000), r"year 10000 is out of range"),
        (lambda: Month(2026, 0), r"month 0 is out of range \(1\.\.12\)"),
        (lambda: Month(2026, 13), r"month 13 is out of range"),
        (lambda: Day(2026, 1, 0), r"day 0 is out of range for 2026-01 \(1\.\.31\)"),
        (lambda: Day(2026, 2, 29), r"day 29 is out of range for 2026-02 \(1\.\.28\)"),
        (lambda: Day(2024, 2, 30), r"day 30 is out of range for 2024-02 \(1\.\.29\)"),
        (lambda: Day(2026, 4, 31), r"day 31 is out of range for 2026-04 \(1\.\.30\)"),
        (lambda: Day(0, 1, 1), r"year 0 is out of range"),
        (lambda: Hour(2026, 1, 1, 24), r"hour 24 is out of range \(0\.\.23\)"),
        (lambda: Hour(2026, 1, 1, -1), r"hour -1 is out of range"),
        (lambda: Hour(2026, 13, 1, 0), r"month 13 is out of range"),
        (lambda: Week(2026, 0), r"week 0 is out of range for ISO year 2026 \(1\.\.53\)"),
        (lambda: Week(2026, 54), r"week 54 is out of range"),
        (lambda: Week(2025, 53), r"week 53 is out of range for ISO year 2025 \(1\.\.52\)"),
        (lambda: Week(0, 1), r"ISO year 0 is out of range"),
    ],
)
def test_out_of_range_fields_rejected(factory: Callable[[], object], message: str) -> None:
    """Each field is range-checked with a precise message."""
    with pytest.raises(InvalidPeriod, match=message):
        factory()


def test_leap_day_accepted() -> None:
    """Feb 29 exists in leap years, including 2000 but not 1900."""
    assert Day(2024, 2, 29).next() == Day(2024, 3, 1)
    assert Day(2000, 2, 29).prev() == Day(2000, 2, 28)
    with pytest.raises(InvalidPeriod):
        Day(1900, 2, 29)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: Year(loose(True)),
        lambda: Month(2026, loose(True)),
        lambda: Day(2026, 1, loose(True)),
        lambda: Hour(2026, 1, 1, loose(False)),
        lambda: Week(2026, loose(True)),
    ],
)
def test_bools_rejected(factory: Callable[[], object]) -> None:
    """bool is refused although it is an int subclass."""
    with pytest.raises(InvalidPeriod, match="must be an int, got bool"):
        factory()


@pytest.mark.parametrize(
    "factory",
    [
        lambda: Year(loose(2026.0)),
        lambda: Month(loose("2026"), 1),
        lambda: Day(2026, 1, loose(None)),
        lambda: Hour(2026, 1, 1, loose(1.5)),
        lambda: Week(loose("2026"), 1),
    ],
)
def test_non_ints_rejected(factory: Callable[[], object]) -> None:
    """Floats, strings and None are refused."""
    with pytest.raises(InvalidPeriod, match="must be an int"):
        factory()


@pytest.mark.parametrize(
    ("period", "step"),
    [
        (Year(9999), 1),
        (Year(1), -1),
        (Month(9999, 12), 1),
        (Month(1, 1), -1),
        (Week(9999, 52), 1),
        (Week(1, 1), -1),
        (Day(9999, 12, 31), 1),
        (Day(1, 1, 1), -1),
        (Hour(9999, 12, 31, 23), 1),
        (Hour(1, 1, 1, 0), -1),
        (Day(2026, 1, 1), 10**30),
        (Hour(2026, 1, 1, 0), -(10**30)),
    ],
)
def test_delta_out_of_range(period: Period, step: int) -> None:
    """Moving past year 1 or 9999 raises InvalidPeriod."""
    with pytest.raises(InvalidPeriod, match=r"outside years 1\.\.9999"):
        period.delta(step)


def test_delta_reaches_the_extremes() -> None:
    """delta can jump straight from the first period to the last one."""
    assert Day(1, 1, 1).delta(date.max.toordinal() - 1) == Day(9999, 12, 31)
    assert Week(1, 1).delta(521722) == Week(9999, 52)
    assert Month(1, 1).delta(9999 * 12 - 1) == Month(9999, 12)


def test_delta_rejects_bool() -> None:
    """delta(True) is a TypeError, not a step of one."""
    with pytest.raises(TypeError, match="needs an int"):
        Day(2026, 1, 1).delta(loose(True))


# -- navigation properties ------------------------------------------------------------------


@given(periods(), st.integers(-1000, 1000))
def test_delta_round_trip(p: Period, n: int) -> None:
    """p.delta(n).delta(-n) == p, and the zone is kept."""
    moved = p.delta(n)
    assert moved.tz is p.tz
    assert moved.delta(-n) == p


@settings(max_examples=examples(50))
@given(periods(), st.integers(0, 40))
def test_delta_is_repeated_next(p: Period, n: int) -> None:
    """p.delta(n) equals n calls of next(), and -n calls of prev()."""
    forward = backward = p
    for _ in range(n):
        forward = forward.next()
        backward = backward.prev()
    assert p.delta(n) == forward
    assert p.delta(-n) == backward


@given(periods())
def test_next_and_prev_are_inverse(p: Period) -> None:
    """prev() undoes next() and vice versa."""
    assert p.next().prev() == p
    assert p.prev().next() == p
    assert p.prev() < p < p.next()


@given(classes, moments, moments, st.sampled_from([UTC, BERLIN]))
def test_ordering_matches_start(cls: type[Period], a: datetime, b: datetime, zone: tzinfo) -> None:
    """Comparing periods agrees with comparing their starts."""
    p, q = cls.from_datetime(a, zone), cls.from_datetime(b, zone)
    assert (p < q) == (p.start < q.start)
    assert (p == q) == (p.start == q.start)


@given(periods())
def test_end_is_next_start(p: Period) -> None:
    """end is exclusive and equals next().start."""
    assert p.end == p.next().start
    assert p.start < p.end


@given(periods())
def test_from_datetime_of_start_round_trips(p: Period) -> None:
    """from_datetime(p.start) gives p back."""
    assert type(p).from_datetime(p.start, p.tz) == p
    assert p.start.tzinfo is p.tz


@given(periods())
def test_contains_start_but_not_end(p: Period) -> None:
    """A period holds its start but neither its end nor the moment before its start."""
    assert p.contains(p.start)
    assert not p.contains(p.end)
    assert not p.prev().contains(p.start)


@given(classes, aware_moments, zones)
def test_from_datetime_result_contains_the_moment(
    cls: type[Period], moment: datetime, zone: tzinfo
) -> None:
    """The period built from a moment contains that moment."""
    p = cls.from_datetime(moment, zone)
    assert p.contains(moment)
    assert not p.next().contains(moment)


def test_contains_converts_to_the_period_zone() -> None:
    """contains() looks at the moment on the period's local clock."""
    moment = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    assert Day(2026, 11, 28, BERLIN).contains(moment)
    assert not Day(2026, 11, 28, UTC).contains(moment)
    assert Day(2026, 11, 28, BERLIN).contains(date(2026, 11, 28))


@given(periods())
def test_granularity_names(p: Period) -> None:
    """Each class reports its granularity name."""
    expected: dict[type[Period], str] = {
        Hour: "hour",
        Day: "day",
        Week: "week",
        Month: "month",
        Year: "year",
    }
    assert p.granularity == expected[type(p)]


@given(st.integers(1, 9998), zones)
def test_year_months(year: int, zone: tzinfo) -> None:
    """Year.months() gives its twelve consecutive months."""
    months = Year(year, zone).months()
    assert months == tuple(Month(year, m) for m in range(1, 13))
    assert all(m.as_year() == Year(year) and m.tz is zone for m in months)


@given(st.integers(1, 9998), st.integers(1, 12))
def test_month_days(year: int, month: int) -> None:
    """Month.days() gives consecutive days that fill the month."""
    days = Month(year, month).days()
    assert days[0] == Day(year, month, 1)
    assert days[-1].next() == Month(year, month).next().days()[0]
    assert all(a.next() == b for a, b in itertools.pairwise(days))
    assert all(d.as_month() == Month(year, month) for d in days)


@given(moments, zones)
def test_week_days(moment: datetime, zone: tzinfo) -> None:
    """Week.days() gives Monday..Sunday, all in that week."""
    week = Week.from_datetime(moment, zone)
    days = week.days()
    assert [d.to_date().weekday() for d in days] == list(range(7))
    assert all(d.as_week() == week and d.tz is zone for d in days)
    assert days[-1].next() == week.next().days()[0]


@given(moments, zones)
def test_day_hours(moment: datetime, zone: tzinfo) -> None:
    """Day.hours() gives hours 0..23 of that day."""
    day = Day.from_datetime(moment, zone)
    hours = day.hours()
    assert [h.hour for h in hours] == list(range(24))
    assert all(h.as_day() == day and h.tz is zone for h in hours)
    assert hours[-1].next() == day.next().hours()[0]


@given(moments, zones)
def test_up_navigation_agrees_with_from_datetime(moment: datetime, zone: tzinfo) -> None:
    """as_day/as_week/as_month/as_year agree with from_datetime on each class."""
    hour = Hour.from_datetime(moment, zone)
    day = hour.as_day()
    assert day == Day.from_datetime(moment, zone)
    assert day.as_week() == Week.from_datetime(moment, zone)
    assert day.as_month() == Month.from_datetime(moment, zone)
    assert day.as_month().as_year() == Year.from_datetime(moment, zone)
    assert day.as_week().tz is zone


# -- str ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "text"),
    [
        (Hour(2026, 1, 5, 13), "2026-01-05T13"),
        (Hour(2026, 1, 5, 0), "2026-01-05T00"),
        (Day(2026, 1, 5), "2026-01-05"),
        (Week(2026, 7), "2026-W07"),
        (Week(2026, 53), "2026-W53"),
        (Month(2026, 11), "2026-11"),
        (Month(2026, 2), "2026-02"),
        (Year(2026), "2026"),
        (Year(5), "0005"),
        (Day(5, 1, 2, BERLIN), "0005-01-02"),
    ],
)
def test_str_format(period: Period, text: str) -> None:
    """str() gives the zero-padded ISO-like key fragment."""
    assert str(period) == text


# -- cover ----------------------------------------------------------------------------------


def test_cover_whole_months() -> None:
    """A range of whole months is covered by those months."""
    assert cover(date(2026, 1, 1), date(2026, 3, 1)) == (Month(2026, 1), Month(2026, 2))


def test_cover_days_and_a_week() -> None:
    """Jan 30 to Feb 10, 2026: three days, ISO week 6, one day."""
    assert cover(datetime(2026, 1, 30), datetime(2026, 2, 10)) == (
        Day(2026, 1, 30),
        Day(2026, 1, 31),
        Day(2026, 2, 1),
        Week(2026, 6),
        Day(2026, 2, 9),
    )


def test_cover_without_weeks() -> None:
    """weeks=False uses days where a week would fit."""
    assert cover(date(2026, 2, 2), date(2026, 2, 10), weeks=False) == tuple(
        Day(2026, 2, d) for d in range(2, 10)
    )


def test_cover_months_weeks_and_days() -> None:
    """Months come first; weeks and days fill the edges."""
    assert cover(date(2025, 12, 20), date(2026, 3, 12)) == (
        Day(2025, 12, 20),
        Day(2025, 12, 21),
        Week(2025, 52),
        Day(2025, 12, 29),
        Day(2025, 12, 30),
        Day(2025, 12, 31),
        Month(2026, 1),
        Month(2026, 2),
        Day(2026, 3, 1),
        Week(2026, 10),
        Day(2026, 3, 9),
        Day(2026, 3, 10),
        Day(2026, 3, 11),
    )


def test_cover_with_hours_at_both_edges() -> None:
    """hourly=True covers partial days with hours."""
    assert cover(datetime(2026, 1, 30, 22), datetime(2026, 2, 2, 3), hourly=True) == (
        Hour(2026, 1, 30, 22),
        Hour(2026, 1, 30, 23),
        Day(2026, 1, 31),
        Day(2026, 2, 1),
        Hour(2026, 2, 2, 0),
        Hour(2026, 2, 2, 1),
        Hour(2026, 2, 2, 2),
    )


def test_cover_within_one_day_and_across_midnight() -> None:
    """Ranges without a whole day are all hours."""
    assert cover(datetime(2026, 1, 1, 5), datetime(2026, 1, 1, 8), hourly=True) == (
        Hour(2026, 1, 1, 5),
        Hour(2026, 1, 1, 6),
        Hour(2026, 1, 1, 7),
    )
    assert cover(datetime(2026, 1, 1, 23), datetime(2026, 1, 2, 1), hourly=True) == (
        Hour(2026, 1, 1, 23),
        Hour(2026, 1, 2, 0),
    )


def test_cover_converts_aware_boundaries_to_the_zone() -> None:
    """Aware boundaries are read on the zone's local clock; results carry the zone."""
    pieces = cover(
        datetime(2026, 1, 31, 23, tzinfo=UTC),
        datetime(2026, 2, 28, 23, tzinfo=UTC),
        "Europe/Berlin",
    )
    assert pieces == (Month(2026, 2),)
    assert pieces[0].tz is BERLIN


def test_cover_at_the_end_of_time() -> None:
    """Covering up to the last representable hour does not overflow."""
    pieces = cover(datetime(9999, 12, 1), datetime(9999, 12, 31, 23), hourly=True)
    assert [str(p) for p in pieces[:10]] == [
        *(f"9999-12-{d:02d}" for d in range(1, 6)),
        "9999-W49",
        "9999-W50",
        "9999-W51",
        "9999-12-27",  # W52 ends in year 10000, so its days are covered one by one
        "9999-12-28",
    ]
    assert pieces[-23:] == Day(9999, 12, 31).hours()[:23]


def test_cover_unaligned_start_needs_hourly() -> None:
    """A start at 13:00 without hourly data raises GranularityNotTracked."""
    with pytest.raises(GranularityNotTracked, match=r"starts at 13:00.*track_hourly=True"):
        cover(datetime(2026, 1, 1, 13), date(2026, 2, 1))


def test_cover_unaligned_end_needs_hourly() -> None:
    """An end at 05:00 without hourly data raises GranularityNotTracked."""
    with pytest.raises(GranularityNotTracked, match=r"ends at 05:00"):
        cover(date(2026, 1, 1), datetime(2026, 2, 1, 5))


def test_cover_unaligned_in_zone_needs_hourly() -> None:
    """UTC midnight is 01:00 in Berlin, so it is not day-aligned there."""
    with pytest.raises(GranularityNotTracked, match=r"starts at 01:00"):
        cover(datetime(2026, 1, 1, tzinfo=UTC), date(2026, 2, 1), BERLIN)


@pytest.mark.parametrize("hourly", [False, True])
def test_cover_minutes_rejected(hourly: bool) -> None:
    """Boundaries with minutes or seconds raise InvalidPeriod."""
    with pytest.raises(InvalidPeriod, match="whole hours"):
        cover(datetime(2026, 1, 1, 13, 30), date(2026, 2, 1), hourly=hourly)
    with pytest.raises(InvalidPeriod, match="whole hours"):
        cover(date(2026, 1, 1), datetime(2026, 2, 1, 0, 0, 1), hourly=hourly)


@pytest.mark.parametrize(
    ("start", "end"),
    [(date(2026, 1, 1), date(2026, 1, 1)), (date(2026, 2, 1), date(2026, 1, 1))],
)
def test_cover_empty_range_rejected(start: date, end: date) -> None:
    """start >= end raises InvalidPeriod."""
    with pytest.raises(InvalidPeriod, match="empty range"):
        cover(start, end)


# Hour indexes of 2000-01-01T00 and 2040-01-01T00, the span the cover() properties use.
_H0 = hour_index(datetime(2000, 1, 1))
_H1 = hour_index(datetime(2040, 1, 1))


@st.composite
def ranges(draw: st.DrawFn, max_hours: int) -> tuple[datetime, datetime, bool]:
    """Draw a local [start, end) range of whole hours (whole days unless hourly)."""
    hourly = draw(st.booleans())
    unit = 1 if hourly else 24
    first = draw(st.integers(_H0 // unit, (_H1 - max_hours) // unit)) * unit
    length = draw(st.integers(1, max_hours // unit)) * unit
    days, hour = divmod(first, 24)
    start = datetime.fromordinal(days) + timedelta(hours=hour)
    return start, start + timedelta(hours=length), hourly


def _check_greedy(pieces: tuple[Period, ...], lo: int, hi: int, weeks: bool) -> None:
    """Assert that no smaller pieces remain where a bigger period fits in [lo, hi)."""

    def inside(p: Period) -> bool:
        first, stop = wall_span(p)
        return lo <= first and stop <= hi

    months = {p for p in pieces if isinstance(p, Month)}
    for p in pieces:
        assert not isinstance(p, Year)
        if isinstance(p, Month):
            continue
        if isinstance(p, Hour):
            days: tuple[Day, ...] = (p.as_day(),)
        elif isinstance(p, Day):
            days = (p,)
        else:
            assert isinstance(p, Week)
            days = p.days()
        for day in days:
            assert not inside(day.as_month()), f"{p} lies in a whole month of the range"
            if isinstance(p, Hour):
                assert not inside(day), f"{p} lies in a whole day of the range"
        if isinstance(p, Day):
            week = p.as_week()
            spills_into_month = any(d.as_month() in months for d in week.days())
            if weeks and not spills_into_month:
                assert not inside(week), f"{p} lies in a whole week of the range"


@settings(max_examples=examples(60), deadline=None)
@given(ranges(max_hours=24 * 70), st.sampled_from([UTC, BERLIN]), st.booleans())
def test_cover_matches_brute_force(
    rng: tuple[datetime, datetime, bool], zone: tzinfo, weeks: bool
) -> None:
    """The pieces' hours, expanded one by one, are exactly the range's hours."""
    start, end, hourly = rng
    pieces = cover(start, end, zone, hourly=hourly, weeks=weeks)
    expanded = [h for p in pieces for h in wall_hours(p)]
    assert expanded == list(range(hour_index(start), hour_index(end)))
    assert all(p.tz is zone for p in pieces)
    if zone is UTC:
        instants = {p.start + timedelta(hours=i) for p in pieces for i in range(len(wall_hours(p)))}
        expected = {start.replace(tzinfo=UTC) + timedelta(hours=i) for i in range(len(expanded))}
        assert instants == expected
    _check_greedy(pieces, hour_index(start), hour_index(end), weeks)


@settings(max_examples=examples(150), deadline=None)
@given(ranges(max_hours=24 * 366 * 6), zones, st.booleans(), st.booleans())
def test_cover_is_exact_disjoint_sorted_and_greedy(
    rng: tuple[datetime, datetime, bool], zone: tzinfo, weeks: bool, as_dates: bool
) -> None:
    """Over long ranges the pieces tile [start, end) in order and are greedy."""
    start, end, hourly = rng
    if as_dates and not hourly:
        pieces = cover(start.date(), end.date(), zone, weeks=weeks)
    else:
        pieces = cover(start, end, zone, hourly=hourly, weeks=weeks)
    spans = [wall_span(p) for p in pieces]
    assert spans[0][0] == hour_index(start)
    assert spans[-1][1] == hour_index(end)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(first < stop for first, stop in spans)
    assert all(a.start < b.start for a, b in itertools.pairwise(pieces))
    if not hourly:
        assert not any(isinstance(p, Hour) for p in pieces)
    if not weeks:
        assert not any(isinstance(p, Week) for p in pieces)
    _check_greedy(pieces, hour_index(start), hour_index(end), weeks)
