"""Calendar periods (hour, day, ISO week, month, year) and range covering.

This is a pure layer: it knows nothing about Redis. A period is a *wall-clock bucket* in a
time zone: ``Day(2026, 11, 28, "Europe/Berlin")`` is the local calendar day, whatever its
length in real time (23, 24 or 25 hours around DST changes). The time zone only decides
which instants fall into the bucket; it is not part of equality, hashing or ordering, so
equal periods map to the same Redis key whatever the zone::

    >>> Day(2026, 11, 28) == Day(2026, 11, 28, "Europe/Berlin")
    True
    >>> Day.from_datetime(datetime(2026, 11, 27, 23, 30, tzinfo=UTC), "Europe/Berlin")
    Day(year=2026, month=11, day=28, tz=zoneinfo.ZoneInfo(key='Europe/Berlin'))
    >>> str(Week(2026, 7)), str(Week(2026, 53).next())
    ('2026-W07', '2027-W01')

:func:`cover` splits a local date/time range into the fewest months, ISO weeks, days and
(optionally) hours whose union is exactly that range.

Wall-clock caveats: on a spring-forward day the skipped local hour still exists as an
``Hour`` bucket (it simply never receives events) and its ``start`` uses ``fold=0``; on a
fall-back day the repeated local hour is a single ``Hour`` bucket two real hours long.
"""

from __future__ import annotations

import calendar
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from typing import ClassVar, TypeAlias, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._exceptions import (
    InvalidMoment,
    InvalidPeriod,
    InvalidPeriodField,
    InvalidTimeZone,
    NoUtcOffset,
    OutsideCalendar,
)

__all__ = [
    "UTC",
    "Day",
    "Hour",
    "Month",
    "Period",
    "TzLike",
    "Week",
    "Year",
    "resolve_tz",
    "to_local",
]

TzLike: TypeAlias = str | tzinfo
"""A time zone: an IANA name such as ``"Europe/Berlin"`` (or ``"UTC"``), or a ``tzinfo``."""

UTC: tzinfo = timezone.utc
"""The default time zone of every period."""

_P = TypeVar("_P", bound="Period")

_MIN_YEAR = 1
_MAX_YEAR = 9999


def resolve_tz(tz: TzLike) -> tzinfo:
    """Turn a zone name or ``tzinfo`` into a ``tzinfo``.

    ``"UTC"`` and ``"utc"`` give ``datetime.timezone.utc``; other names are looked up with
    ``zoneinfo.ZoneInfo``; a ``tzinfo`` is returned unchanged.

    :param tz: an IANA zone name or a ``tzinfo``
    :raises InvalidTimeZone: if the name is not a known time zone (an ``InvalidPeriod``),
        or if ``tz`` is neither a ``str`` nor a ``tzinfo`` (then also a ``TypeError``)
    :returns: the ``tzinfo``
    """
    if isinstance(tz, tzinfo):
        return tz
    name = cast("object", tz)
    if not isinstance(name, str):
        raise InvalidTimeZone(name)
    if name in ("UTC", "utc"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError covers malformed keys, NUL bytes and lone surrogates (not encodable);
        # OSError a directory's name or a name too long for the file system.
        raise InvalidTimeZone(name) from None


def to_local(dt: datetime | date, tz: TzLike) -> datetime:
    """Express a datetime or date as an aware datetime in ``tz``.

    An aware datetime is converted with ``astimezone``; a naive datetime is taken to be
    local time in ``tz`` already; a plain date means local midnight of that date.

    :param dt: the moment or day
    :param tz: the zone to express it in
    :raises InvalidMoment: if ``dt`` is not a ``datetime.datetime`` or ``datetime.date``
        (a ``str``, a number, a ``datetime.time``, ...)
    :raises InvalidTimeZone: if the zone is unknown
    :raises InvalidPeriod: if the conversion leaves years 1..9999, or the datetime's own
        ``tzinfo`` gives no usable UTC offset
    :returns: an aware datetime whose ``tzinfo`` is ``tz``
    """
    zone = resolve_tz(tz)
    if isinstance(dt, datetime):
        try:
            offset = dt.utcoffset()
            if offset is None:
                return dt.replace(tzinfo=zone)
            return dt.astimezone(zone)
        except OverflowError:
            raise OutsideCalendar(dt, zone=zone) from None
        except (TypeError, ValueError, ArithmeticError, NotImplementedError) as exc:
            # A tzinfo whose utcoffset() fails or answers nonsense (e.g. 25 hours).
            raise NoUtcOffset(dt, str(exc)) from None
    if isinstance(cast("object", dt), date):
        return datetime(dt.year, dt.month, dt.day, tzinfo=zone)
    raise InvalidMoment(dt)


def _check_int(name: str, value: object, low: int, high: int, within: str | None = None) -> int:
    """Check that a period field is an ``int`` (not a ``bool``) within ``low..high``.

    :param name: the field name, for the message
    :param value: the value to check
    :param low: the smallest allowed value
    :param high: the largest allowed value
    :param within: what bounds the field, for the message, e.g. ``"2026-02"``
    :raises InvalidPeriod: if the value is not an int or is out of range
    :returns: the value as a plain ``int``
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidPeriodField(name, value, low, high, within)
    return int(value)


def _check_date(year: object, month: object, day: object) -> tuple[int, int, int]:
    """Check a calendar date's fields, leap years included.

    :param year: the year, 1..9999
    :param month: the month, 1..12
    :param day: the day of the month
    :raises InvalidPeriod: if any field is invalid
    :returns: the three fields as plain ints
    """
    y = _check_int("year", year, _MIN_YEAR, _MAX_YEAR)
    m = _check_int("month", month, 1, 12)
    last = calendar.monthrange(y, m)[1]
    d = _check_int("day", day, 1, last, f"{y:04d}-{m:02d}")
    return y, m, d


def _iso_weeks_in(iso_year: int) -> int:
    """Count the ISO weeks of an ISO year (52 or 53).

    :param iso_year: the ISO year
    :returns: 52 or 53
    """
    return date(iso_year, 12, 28).isocalendar()[1]


class Period(ABC):
    """A calendar bucket in a time zone: the abstract base of Hour, Day, Week, Month, Year.

    Concrete periods are frozen, slotted, hashable and ordered within their class
    (comparing periods of different classes raises ``TypeError``). ``tz`` is never
    compared. Navigation keeps the zone::

        >>> day = Day(2026, 3, 29, "Europe/Berlin")
        >>> day.next(), day.delta(-29) == Day(2026, 2, 28)
        (Day(year=2026, month=3, day=30, tz=zoneinfo.ZoneInfo(key='Europe/Berlin')), True)
    """

    __slots__ = ()

    granularity: ClassVar[str]
    _min_ordinal: ClassVar[int]
    _max_ordinal: ClassVar[int]

    tz: tzinfo

    # -- primitives every concrete period implements ------------------------------------

    @abstractmethod
    def _ordinal(self) -> int:
        """Give this period's position in an unbroken sequence of its class.

        :returns: an int; consecutive periods have consecutive ordinals
        """

    @classmethod
    @abstractmethod
    def _ordinal_of(cls, local: datetime) -> int:
        """Give the ordinal of the period holding a local wall-clock time.

        :param local: a datetime whose fields are read as local wall time
        :returns: the ordinal
        """

    @classmethod
    @abstractmethod
    def _make(cls: type[_P], ordinal: int, tz: tzinfo) -> _P:
        """Build the period at an ordinal already known to be in range.

        :param ordinal: the ordinal
        :param tz: the zone of the new period
        :returns: the period
        """

    @abstractmethod
    def _naive_start(self) -> datetime:
        """Give the first local wall-clock instant, without ``tzinfo``.

        :returns: a naive datetime
        """

    @abstractmethod
    def _args(self) -> tuple[int, ...]:
        """Give the constructor arguments except ``tz``.

        :returns: the date fields in constructor order
        """

    # -- shared behaviour ----------------------------------------------------------------

    @classmethod
    def _from_ordinal(cls: type[_P], ordinal: int, tz: tzinfo) -> _P:
        """Build the period at an ordinal, checking that it exists.

        :param ordinal: the ordinal
        :param tz: the zone of the new period
        :raises InvalidPeriod: if the ordinal is outside years 1..9999
        :returns: the period
        """
        if not cls._min_ordinal <= ordinal <= cls._max_ordinal:
            raise OutsideCalendar(cls.granularity)
        return cls._make(ordinal, tz)

    def ordinal(self) -> int:
        """This period's number among all periods of its kind: the next one is one more.

        Example::

            Day(2026, 11, 30).ordinal() + 1 == Day(2026, 12, 1).ordinal()
        """
        return self._ordinal()

    @classmethod
    def from_ordinal(cls: type[_P], ordinal: int, tz: TzLike = "UTC") -> _P:
        """The period numbered ``ordinal`` (see :meth:`ordinal`) in the zone ``tz``.

        :param ordinal: the number
        :param tz: the zone of the period
        :raises InvalidPeriod: if it falls outside years 1..9999
        """
        return cls._from_ordinal(ordinal, resolve_tz(tz))

    @classmethod
    def from_datetime(cls: type[_P], dt: datetime | date, tz: TzLike = "UTC") -> _P:
        """Give the period of this class that holds a moment, seen in ``tz``.

        :param dt: an aware datetime (converted to ``tz``), a naive datetime (taken as local
            time in ``tz``) or a date (local midnight)
        :param tz: the zone whose calendar decides the bucket
        :raises InvalidMoment: if ``dt`` is not a datetime or date
        :raises InvalidPeriod: if the zone is unknown (:class:`InvalidTimeZone`) or the
            moment is out of range
        :returns: the period, carrying ``tz``
        """
        zone = resolve_tz(tz)
        return cls._from_ordinal(cls._ordinal_of(to_local(dt, zone)), zone)

    def delta(self: _P, n: int) -> _P:
        """Give the period ``n`` steps later (earlier if negative), in the same zone.

        Hours step by local wall-clock hours, weeks by ISO weeks. Runs in constant time.

        :param n: the number of periods to move
        :raises TypeError: if ``n`` is not an int
        :raises InvalidPeriod: if the result lies outside years 1..9999
        :returns: a period of the same class
        """
        if isinstance(n, bool) or not isinstance(cast("object", n), int):
            raise TypeError(f"delta() needs an int, got {type(n).__name__}")
        try:
            return type(self)._from_ordinal(self._ordinal() + n, self.tz)
        except InvalidPeriod:
            raise OutsideCalendar(self, shift=n) from None

    def next(self: _P) -> _P:
        """Give the following period, in the same zone.

        :raises InvalidPeriod: if this is the last period before year 10000
        :returns: a period of the same class
        """
        return self.delta(1)

    def prev(self: _P) -> _P:
        """Give the preceding period, in the same zone.

        :raises InvalidPeriod: if this is the first period of year 1
        :returns: a period of the same class
        """
        return self.delta(-1)

    def with_tz(self: _P, tz: TzLike) -> _P:
        """Give the same period (equal to this one) in another zone.

        :param tz: the new zone
        :raises InvalidPeriod: if the zone is unknown
        :returns: a period of the same class carrying ``tz``
        """
        return type(self)._make(self._ordinal(), resolve_tz(tz))

    @property
    def start(self) -> datetime:
        """The first instant: local midnight (or the hour's start) as an aware datetime.

        It is built on the local wall clock with ``fold=0``.
        """
        return self._naive_start().replace(tzinfo=self.tz)

    @property
    def end(self) -> datetime:
        """The exclusive end, equal to ``self.next().start``.

        Note that Python subtracts two datetimes that share a ``tzinfo`` on the wall clock;
        compare ``timestamp()`` values to get the real length of a DST day.

        :raises InvalidPeriod: for the last period before year 10000
        """
        return self.next().start

    def contains(self, dt: datetime | date) -> bool:
        """Tell whether a moment falls into this bucket, seen in this period's zone.

        :param dt: an aware datetime, a naive datetime (local time) or a date (midnight)
        :raises InvalidPeriod: if the moment cannot be expressed in this zone
        :returns: ``True`` if the local wall time lies in this period
        """
        return type(self).from_datetime(dt, self.tz) == self

    # Ordering lives here rather than in ``@dataclass(order=True)`` so that code holding a
    # plain ``Period`` can compare and sort. Like the dataclass methods it compares only
    # periods of the same class, and only their date fields (never ``tz``).

    def __lt__(self, other: Period) -> bool:
        """Tell whether this period comes before another of the same class.

        :param other: a period of the same class
        :returns: ``True`` if this period is earlier
        """
        if type(other) is not type(self):
            return NotImplemented
        return self._ordinal() < other._ordinal()

    def __le__(self, other: Period) -> bool:
        """Tell whether this period comes before or equals another of the same class.

        :param other: a period of the same class
        :returns: ``True`` if this period is earlier or equal
        """
        if type(other) is not type(self):
            return NotImplemented
        return self._ordinal() <= other._ordinal()

    def __gt__(self, other: Period) -> bool:
        """Tell whether this period comes after another of the same class.

        :param other: a period of the same class
        :returns: ``True`` if this period is later
        """
        if type(other) is not type(self):
            return NotImplemented
        return self._ordinal() > other._ordinal()

    def __ge__(self, other: Period) -> bool:
        """Tell whether this period comes after or equals another of the same class.

        :param other: a period of the same class
        :returns: ``True`` if this period is later or equal
        """
        if type(other) is not type(self):
            return NotImplemented
        return self._ordinal() >= other._ordinal()

    def __reduce__(self) -> tuple[type[Period], tuple[object, ...]]:
        """Pickle through the constructor (portable across Python versions).

        :returns: the class and its constructor arguments
        """
        return (type(self), (*self._args(), self.tz))


@dataclass(frozen=True, slots=True, init=False)
class Hour(Period):
    """One local wall-clock hour.

    ``tz`` may be given as a zone name or a ``tzinfo``::

        >>> hour = Hour(2026, 1, 5, 13, "Europe/Berlin")
        >>> str(hour), hour.start.isoformat(), str(hour.as_day())
        ('2026-01-05T13', '2026-01-05T13:00:00+01:00', '2026-01-05')
    """

    granularity: ClassVar[str] = "hour"
    _min_ordinal: ClassVar[int] = date.min.toordinal() * 24
    _max_ordinal: ClassVar[int] = date.max.toordinal() * 24 + 23

    year: int
    month: int
    day: int
    hour: int
    tz: tzinfo = field(default=UTC, compare=False)

    def __init__(self, year: int, month: int, day: int, hour: int, tz: TzLike = UTC) -> None:
        """Create an hour bucket.

        :param year: 1..9999
        :param month: 1..12
        :param day: a valid day of that month
        :param hour: 0..23
        :param tz: a zone name or ``tzinfo`` (default UTC)
        :raises InvalidPeriod: if a field is out of range or not an int, or the zone is unknown
        """
        y, m, d = _check_date(year, month, day)
        h = _check_int("hour", hour, 0, 23)
        object.__setattr__(self, "year", y)
        object.__setattr__(self, "month", m)
        object.__setattr__(self, "day", d)
        object.__setattr__(self, "hour", h)
        object.__setattr__(self, "tz", resolve_tz(tz))

    def _ordinal(self) -> int:
        return date(self.year, self.month, self.day).toordinal() * 24 + self.hour

    @classmethod
    def _ordinal_of(cls, local: datetime) -> int:
        return local.toordinal() * 24 + local.hour

    @classmethod
    def _make(cls, ordinal: int, tz: tzinfo) -> Hour:
        days, hour = divmod(ordinal, 24)
        d = date.fromordinal(days)
        return cls(d.year, d.month, d.day, hour, tz)

    def _naive_start(self) -> datetime:
        return datetime(self.year, self.month, self.day, self.hour)

    def _args(self) -> tuple[int, ...]:
        return (self.year, self.month, self.day, self.hour)

    def as_day(self) -> Day:
        """Give the day this hour belongs to, in the same zone.

        :returns: the local day
        """
        return Day(self.year, self.month, self.day, self.tz)

    def __str__(self) -> str:
        """Format as ``YYYY-MM-DDTHH``.

        :returns: e.g. ``"2026-01-05T13"``
        """
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}T{self.hour:02d}"


@dataclass(frozen=True, slots=True, init=False)
class Day(Period):
    """One local calendar day, from local midnight to the next.

    ::

        >>> day = Day(2026, 11, 28, "Europe/Berlin")
        >>> day.start.isoformat(), str(day.as_week()), len(day.hours())
        ('2026-11-28T00:00:00+01:00', '2026-W48', 24)
    """

    granularity: ClassVar[str] = "day"
    _min_ordinal: ClassVar[int] = date.min.toordinal()
    _max_ordinal: ClassVar[int] = date.max.toordinal()

    year: int
    month: int
    day: int
    tz: tzinfo = field(default=UTC, compare=False)

    def __init__(self, year: int, month: int, day: int, tz: TzLike = UTC) -> None:
        """Create a day bucket.

        :param year: 1..9999
        :param month: 1..12
        :param day: a valid day of that month (leap years included)
        :param tz: a zone name or ``tzinfo`` (default UTC)
        :raises InvalidPeriod: if a field is out of range or not an int, or the zone is unknown
        """
        y, m, d = _check_date(year, month, day)
        object.__setattr__(self, "year", y)
        object.__setattr__(self, "month", m)
        object.__setattr__(self, "day", d)
        object.__setattr__(self, "tz", resolve_tz(tz))

    def _ordinal(self) -> int:
        return date(self.year, self.month, self.day).toordinal()

    @classmethod
    def _ordinal_of(cls, local: datetime) -> int:
        return local.toordinal()

    @classmethod
    def _make(cls, ordinal: int, tz: tzinfo) -> Day:
        d = date.fromordinal(ordinal)
        return cls(d.year, d.month, d.day, tz)

    def _naive_start(self) -> datetime:
        return datetime(self.year, self.month, self.day)

    def _args(self) -> tuple[int, ...]:
        return (self.year, self.month, self.day)

    def to_date(self) -> date:
        """Give this day as a ``datetime.date``.

        :returns: the date
        """
        return date(self.year, self.month, self.day)

    def hours(self) -> tuple[Hour, ...]:
        """Give the 24 wall-clock hours of this day, in the same zone.

        :returns: ``Hour`` 0 to 23
        """
        base = self._ordinal() * 24
        return tuple(Hour._make(base + h, self.tz) for h in range(24))

    def as_week(self) -> Week:
        """Give the ISO week this day belongs to, in the same zone.

        :returns: the week (its ISO year may differ from this day's year)
        """
        iso_year, week, _ = date(self.year, self.month, self.day).isocalendar()
        return Week(iso_year, week, self.tz)

    def as_month(self) -> Month:
        """Give the month this day belongs to, in the same zone.

        :returns: the month
        """
        return Month(self.year, self.month, self.tz)

    def __str__(self) -> str:
        """Format as ``YYYY-MM-DD``.

        :returns: e.g. ``"2026-01-05"``
        """
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


@dataclass(frozen=True, slots=True, init=False)
class Week(Period):
    """One ISO 8601 week, Monday to Sunday; it may span two months or two years.

    ``iso_year`` is the ISO week-numbering year, which differs from the calendar year
    around New Year::

        >>> Day(2024, 12, 30).as_week(), str(Week(2026, 53).next())
        (Week(iso_year=2025, week=1, tz=datetime.timezone.utc), '2027-W01')
        >>> Week(2026, 6).start_date
        datetime.date(2026, 2, 2)
    """

    granularity: ClassVar[str] = "week"
    # Ordinal = index of the week's Monday counted from 0001-01-01, itself a Monday.
    _min_ordinal: ClassVar[int] = 0
    _max_ordinal: ClassVar[int] = (date(9999, 12, 27).toordinal() - 1) // 7

    iso_year: int
    week: int
    tz: tzinfo = field(default=UTC, compare=False)

    def __init__(self, iso_year: int, week: int, tz: TzLike = UTC) -> None:
        """Create an ISO week bucket.

        ``Week(9999, 52)`` is the last week; its last two days lie past ``date.max``.

        :param iso_year: the ISO year, 1..9999
        :param week: 1..52, or 53 in ISO years that have 53 weeks
        :param tz: a zone name or ``tzinfo`` (default UTC)
        :raises InvalidPeriod: if a field is out of range or not an int, or the zone is unknown
        """
        y = _check_int("ISO year", iso_year, _MIN_YEAR, _MAX_YEAR)
        w = _check_int("week", week, 1, _iso_weeks_in(y), f"ISO year {y:04d}")
        object.__setattr__(self, "iso_year", y)
        object.__setattr__(self, "week", w)
        object.__setattr__(self, "tz", resolve_tz(tz))

    def _ordinal(self) -> int:
        return (self.start_date.toordinal() - 1) // 7

    @classmethod
    def _ordinal_of(cls, local: datetime) -> int:
        return (local.toordinal() - 1) // 7

    @classmethod
    def _make(cls, ordinal: int, tz: tzinfo) -> Week:
        iso_year, week, _ = date.fromordinal(ordinal * 7 + 1).isocalendar()
        return cls(iso_year, week, tz)

    def _naive_start(self) -> datetime:
        monday = self.start_date
        return datetime(monday.year, monday.month, monday.day)

    def _args(self) -> tuple[int, ...]:
        return (self.iso_year, self.week)

    @property
    def start_date(self) -> date:
        """The Monday that starts this week."""
        return date.fromisocalendar(self.iso_year, self.week, 1)

    def days(self) -> tuple[Day, ...]:
        """Give the seven days of this week, Monday first, in the same zone.

        :raises InvalidPeriod: for ``Week(9999, 52)``, whose Sunday is past year 9999
        :returns: the seven days
        """
        monday = self.start_date.toordinal()
        return tuple(Day._from_ordinal(monday + i, self.tz) for i in range(7))

    def __str__(self) -> str:
        """Format as ``YYYY-Www``.

        :returns: e.g. ``"2026-W07"``
        """
        return f"{self.iso_year:04d}-W{self.week:02d}"


@dataclass(frozen=True, slots=True, init=False)
class Month(Period):
    """One calendar month.

    ::

        >>> month = Month(2024, 2)
        >>> str(month), len(month.days()), str(month.as_year()), str(Month(2026, 12).next())
        ('2024-02', 29, '2024', '2027-01')
    """

    granularity: ClassVar[str] = "month"
    _min_ordinal: ClassVar[int] = _MIN_YEAR * 12
    _max_ordinal: ClassVar[int] = _MAX_YEAR * 12 + 11

    year: int
    month: int
    tz: tzinfo = field(default=UTC, compare=False)

    def __init__(self, year: int, month: int, tz: TzLike = UTC) -> None:
        """Create a month bucket.

        :param year: 1..9999
        :param month: 1..12
        :param tz: a zone name or ``tzinfo`` (default UTC)
        :raises InvalidPeriod: if a field is out of range or not an int, or the zone is unknown
        """
        y = _check_int("year", year, _MIN_YEAR, _MAX_YEAR)
        m = _check_int("month", month, 1, 12)
        object.__setattr__(self, "year", y)
        object.__setattr__(self, "month", m)
        object.__setattr__(self, "tz", resolve_tz(tz))

    def _ordinal(self) -> int:
        return self.year * 12 + self.month - 1

    @classmethod
    def _ordinal_of(cls, local: datetime) -> int:
        return local.year * 12 + local.month - 1

    @classmethod
    def _make(cls, ordinal: int, tz: tzinfo) -> Month:
        year, month0 = divmod(ordinal, 12)
        return cls(year, month0 + 1, tz)

    def _naive_start(self) -> datetime:
        return datetime(self.year, self.month, 1)

    def _args(self) -> tuple[int, ...]:
        return (self.year, self.month)

    def days(self) -> tuple[Day, ...]:
        """Give the days of this month (28 to 31), in the same zone.

        :returns: the days, first to last
        """
        last = calendar.monthrange(self.year, self.month)[1]
        return tuple(Day(self.year, self.month, d, self.tz) for d in range(1, last + 1))

    def as_year(self) -> Year:
        """Give the year this month belongs to, in the same zone.

        :returns: the year
        """
        return Year(self.year, self.tz)

    def __str__(self) -> str:
        """Format as ``YYYY-MM``.

        :returns: e.g. ``"2026-11"``
        """
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True, init=False)
class Year(Period):
    """One calendar year.

    ::

        >>> year = Year(2026, "Europe/Berlin")
        >>> str(year), len(year.months()), year.start.isoformat()
        ('2026', 12, '2026-01-01T00:00:00+01:00')
    """

    granularity: ClassVar[str] = "year"
    _min_ordinal: ClassVar[int] = _MIN_YEAR
    _max_ordinal: ClassVar[int] = _MAX_YEAR

    year: int
    tz: tzinfo = field(default=UTC, compare=False)

    def __init__(self, year: int, tz: TzLike = UTC) -> None:
        """Create a year bucket.

        :param year: 1..9999
        :param tz: a zone name or ``tzinfo`` (default UTC)
        :raises InvalidPeriod: if the year is out of range or not an int, or the zone is unknown
        """
        object.__setattr__(self, "year", _check_int("year", year, _MIN_YEAR, _MAX_YEAR))
        object.__setattr__(self, "tz", resolve_tz(tz))

    def _ordinal(self) -> int:
        return self.year

    @classmethod
    def _ordinal_of(cls, local: datetime) -> int:
        return local.year

    @classmethod
    def _make(cls, ordinal: int, tz: tzinfo) -> Year:
        return cls(ordinal, tz)

    def _naive_start(self) -> datetime:
        return datetime(self.year, 1, 1)

    def _args(self) -> tuple[int, ...]:
        return (self.year,)

    def months(self) -> tuple[Month, ...]:
        """Give the twelve months of this year, in the same zone.

        :returns: January to December
        """
        return tuple(Month(self.year, m, self.tz) for m in range(1, 13))

    def __str__(self) -> str:
        """Format as ``YYYY``.

        :returns: e.g. ``"2026"``
        """
        return f"{self.year:04d}"
