"""Bitmap expressions: immutable, hashable values that describe a set of user ids (pure).

Building an expression does no I/O. ``MonthEvents("active", 2026, 11)`` names a bitmap;
``a & b``, ``a | b``, ``a ^ b``, ``a - b`` and ``~a`` build a tree that a tracker answers
in one round trip per Redis node::

    retained = MonthEvents("active", 2026, 10) & MonthEvents("active", 2026, 11)
    n = await tracker.count(retained)

Same-operator children flatten (``(a & b) & c`` is one ``BITOP AND`` of three keys) and
equal subtrees are computed once. An expression has no truth value: ``a and b`` raises a
``TypeError`` instead of silently returning ``b``.

``EventTemplate("active")`` is a period-free template for reports such as retention:
``(EventTemplate("active") & EventTemplate("ios")).at(Week(2026, 48))`` binds it to one period.
"""

from __future__ import annotations

import datetime as _dt
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar, cast

from ._exceptions import (
    EmptyDifference,
    InvalidExpression,
    InvalidMoment,
    InvalidOption,
    InvalidWindow,
    NoDefaultTracker,
    NoPeriod,
    NotAPeriod,
    UnboundTemplate,
)
from ._keys import validate_event_name
from ._periods import Day, Hour, Month, Period, TzLike, Week, Year, resolve_tz, to_local

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

__all__ = [
    "Answerer",
    "BitOpAnd",
    "BitOpDiff",
    "BitOpNot",
    "BitOpOr",
    "BitOpXor",
    "DayEvents",
    "EventTemplate",
    "EventsBetween",
    "Expr",
    "HourEvents",
    "Last",
    "MonthEvents",
    "PeriodEvents",
    "UniqueEvents",
    "Universe",
    "WeekEvents",
    "YearEvents",
    "default_tracker",
    "last",
    "use_default",
]

_E = TypeVar("_E", bound="Expr")
_L = TypeVar("_L", bound="PeriodEvents")
_N = TypeVar("_N", bound="_NAry")

_NO_BOOL = (
    "the truth value of a bitlens expression is undefined: use & | ^ - ~ instead of "
    "and / or / not, and `await tracker.count(expr)` or `await expr.count()` for a number"
)


class Answerer(Protocol):
    """What answers questions about an expression: a :class:`~bitlens.Tracker`."""

    async def count(self, expr: Expr, /) -> int:
        """How many ids are in ``expr``."""
        ...

    async def contains(self, expr: Expr, user_id: int, /) -> bool:
        """Whether ``user_id`` is in ``expr``."""
        ...

    async def has_events(self, expr: Expr, /) -> bool:
        """Whether ``expr`` holds at least one id."""
        ...

    def members(self, expr: Expr, /) -> AsyncIterator[int]:
        """The ids in ``expr``, ascending."""
        ...


_default_answerer: Callable[[], Answerer] | None = None


def use_default(find: Callable[[], Answerer]) -> None:
    """Name how expressions find the default tracker when none is given.

    The default tracker lives in a layer above this one, which registers itself here, so
    expressions never import it.

    :param find: returns the default tracker, or raises ``NoDefaultTracker``
    """
    global _default_answerer
    _default_answerer = find


def default_tracker() -> Answerer:
    """The default tracker, as registered by :func:`use_default`.

    :raises NoDefaultTracker: if none was set up
    """
    if _default_answerer is None:
        raise NoDefaultTracker
    return _default_answerer()


def _tracker_or_default(tracker: Answerer | None) -> Answerer:
    return tracker if tracker is not None else default_tracker()


class Expr(ABC):
    """Base of every bitlens expression: a lazily evaluated set of user ids.

    Combine expressions with ``&`` (and), ``|`` (or), ``^`` (xor), ``-`` (difference) and
    ``~`` (complement within the universe of marked ids); evaluate them with a tracker.
    """

    __slots__ = ()

    # -- operators: each a one-liner into one dispatch point -------------------------------

    def __and__(self, other: object) -> Expr:
        return BitOpAnd(self, other) if isinstance(other, Expr) else NotImplemented

    def __or__(self, other: object) -> Expr:
        return BitOpOr(self, other) if isinstance(other, Expr) else NotImplemented

    def __xor__(self, other: object) -> Expr:
        return BitOpXor(self, other) if isinstance(other, Expr) else NotImplemented

    def __sub__(self, other: object) -> Expr:
        return BitOpDiff(self, other) if isinstance(other, Expr) else NotImplemented

    def __invert__(self) -> Expr:
        return BitOpNot(self)

    def __bool__(self) -> bool:
        raise TypeError(_NO_BOOL)

    def __len__(self) -> int:
        raise TypeError("an expression has no len(): use `await tracker.count(expr)`")

    def __iter__(self) -> Iterator[int]:
        raise TypeError(
            "an expression is not iterable: use `async for uid in tracker.members(expr)`"
        )

    def __contains__(self, user_id: object) -> bool:
        raise TypeError("use `await tracker.contains(expr, user_id)` (membership needs Redis)")

    # -- time shifting ----------------------------------------------------------------------

    @abstractmethod
    def delta(self: _E, n: int) -> _E:
        """Return the same expression with every leaf's period moved by ``n`` periods.

        :param n: how many periods to move (negative: back in time)
        :raises UnsupportedOperation: if a leaf has no period (``UniqueEvents``)
        """

    def next(self: _E) -> _E:
        """Return the expression one period later (``delta(1)``)."""
        return self.delta(1)

    def prev(self: _E) -> _E:
        """Return the expression one period earlier (``delta(-1)``)."""
        return self.delta(-1)

    def at(self, period: Period) -> Expr:
        """Return this expression with every :class:`EventTemplate` bound to ``period``.

        Concrete leaves (``MonthEvents``, ``UniqueEvents``, ``Universe()``, ranges) stay as
        they are, so ``(EventTemplate("active") & UniqueEvents("ios")).at(Week(2026, 48))`` is
        ``WeekEvents("active", 2026, 48) & UniqueEvents("ios")``.

        :param period: an Hour, Day, Week, Month or Year
        """
        return self

    # -- evaluation on a tracker (the default one when none is given) -----------------------

    async def count(self, tracker: Answerer | None = None) -> int:
        """Return how many ids are in this set, on ``tracker`` or the default tracker.

        :param tracker: the tracker to ask; ``None`` for the one set by ``bitlens.setup()``
        :raises NoDefaultTracker: if no tracker is given and none was set up
        """
        return await _tracker_or_default(tracker).count(self)

    async def contains(self, user_id: int, tracker: Answerer | None = None) -> bool:
        """Return whether ``user_id`` is in this set.

        :param user_id: the id to look up
        :param tracker: the tracker to ask; ``None`` for the default tracker
        :raises InvalidUserId: for a negative, non-int or too large id
        """
        return await _tracker_or_default(tracker).contains(self, user_id)

    async def has_events(self, tracker: Answerer | None = None) -> bool:
        """Return whether the set holds at least one id.

        :param tracker: the tracker to ask; ``None`` for the default tracker
        """
        return await _tracker_or_default(tracker).has_events(self)

    def members(self, tracker: Answerer | None = None) -> AsyncIterator[int]:
        """Iterate over the ids in this set in ascending order, streamed in bounded chunks.

        :param tracker: the tracker to ask; ``None`` for the default tracker
        """
        return _tracker_or_default(tracker).members(self)


# ------------------------------------------------------------------------------------------
# Leaves
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, init=False, repr=False)
class PeriodEvents(Expr):
    """The base of the concrete leaves: the ids that did ``event`` in ``period``.

    ``period`` is ``None`` for :class:`UniqueEvents` (ever). Unlike an
    :class:`EventTemplate`, a leaf names stored bitmaps and can be counted as it is.
    Use the bitmapist-style subclasses: :class:`YearEvents`, :class:`MonthEvents`,
    :class:`WeekEvents`, :class:`DayEvents`, :class:`HourEvents`, :class:`UniqueEvents`.

    A leaf made by :meth:`from_date` from an aware instant (or "now") without ``tz=`` also
    keeps that ``instant``: the tracker that evaluates it places the instant in its own
    time zone, so a Berlin tracker reads the Berlin day. Until then ``period`` is the
    instant's reading in UTC; :meth:`in_zone` pins it to a zone.
    """

    event: str
    period: Period | None
    instant: _dt.datetime | None

    _period_type: ClassVar[type[Period] | None] = None

    def _set(self, event: str, period: Period | None, instant: _dt.datetime | None = None) -> None:
        object.__setattr__(self, "event", validate_event_name(event))
        object.__setattr__(self, "period", period)
        object.__setattr__(self, "instant", instant)

    @classmethod
    def _of(
        cls: type[_L], event: str, period: Period | None, instant: _dt.datetime | None = None
    ) -> _L:
        obj = object.__new__(cls)
        obj._set(event, period, instant)
        return obj

    @classmethod
    def from_date(
        cls: type[_L],
        event: str,
        dt: _dt.datetime | _dt.date | None = None,
        tz: TzLike | None = None,
    ) -> _L:
        """Return the events of the period that contains ``dt`` (default: now).

        Without ``tz``, the calendar is the one of the tracker that evaluates the leaf:
        an aware datetime (and "now") is placed in that tracker's time zone when the query
        runs, so ``DayEvents.from_date("active", datetime(2026, 11, 27, 23, 30,
        tzinfo=UTC))`` is Berlin's 28 November on a ``tz="Europe/Berlin"`` tracker and
        27 November on a UTC one. A naive datetime or a date is a wall-clock date, the
        same in every zone. With ``tz``, the period is fixed in that zone's calendar
        (aware datetimes are converted to it, naive ones taken to be in it).

        :param event: the event name
        :param dt: a datetime or date; ``None`` for the current time
        :param tz: the time zone whose calendar defines the period (default: the
            evaluating tracker's)
        :raises UnsupportedOperation: on UniqueEvents, which has no period
        :raises InvalidMoment: if ``dt`` is not a datetime or date
        """
        ptype = cls._period_type
        if ptype is None:
            raise NoPeriod(cls, "from_date")
        if tz is not None:
            zone = resolve_tz(tz)
            moment = _dt.datetime.now(zone) if dt is None else to_local(dt, zone)
            return cls._of(event, ptype.from_datetime(moment, zone))
        utc = _dt.timezone.utc
        moment = _dt.datetime.now(utc) if dt is None else to_local(dt, utc)
        aware = dt is None or (isinstance(dt, _dt.datetime) and dt.utcoffset() is not None)
        return cls._of(event, ptype.from_datetime(moment, utc), moment if aware else None)

    def in_zone(self: _L, tz: TzLike) -> _L:
        """Return this leaf with its instant placed in ``tz`` (a leaf without one as is).

        Trackers call this with their own zone; call it to read :meth:`period_start` of a
        :meth:`from_date` leaf in a zone of your choice.

        :param tz: the time zone
        :raises InvalidTimeZone: for an unknown zone
        """
        if self.instant is None or self.period is None:
            return self
        placed = type(self.period).from_datetime(self.instant, resolve_tz(tz))
        shift = self._shift()
        return type(self)._of(self.event, placed.delta(shift) if shift else placed)

    def _shift(self) -> int:
        """How many periods ``delta()`` moved this leaf away from its instant's period."""
        if self.instant is None or self.period is None:
            return 0
        base = type(self.period).from_datetime(self.instant, self.period.tz)
        return self.period.ordinal() - base.ordinal()

    def delta(self: _L, n: int) -> _L:
        if self.period is None:
            raise NoPeriod(self, "delta")
        return type(self)._of(self.event, self.period.delta(n), self.instant)

    def with_event(self: _L, event: str) -> _L:
        """Return the same kind of leaf, in the same period, for another event.

        Example: ``WeekEvents("signed_up", 2026, 47).with_event("active")``

        :param event: the other event name
        :raises InvalidEventName: for a bad event name
        """
        return type(self)._of(event, self.period, self.instant)

    def period_start(self) -> _dt.datetime:
        """Return the first instant of the period as an aware datetime.

        For a :meth:`from_date` leaf that waits for a tracker's zone, this is its UTC
        reading: use ``leaf.in_zone(tracker.tz).period_start()``.

        :raises UnsupportedOperation: on UniqueEvents
        """
        if self.period is None:
            raise NoPeriod(self, "period_start")
        return self.period.start

    def period_end(self) -> _dt.datetime:
        """Return the end of the period (exclusive: the first instant of the next one).

        :raises UnsupportedOperation: on UniqueEvents
        """
        if self.period is None:
            raise NoPeriod(self, "period_end")
        return self.period.end

    def __repr__(self) -> str:
        name = type(self).__name__
        if self.instant is not None:
            shift = self._shift()
            moved = f".delta({shift})" if shift else ""
            return f"{name}.from_date({self.event!r}, {self.instant.isoformat()}){moved}"
        return f"{name}({self.event!r}, {self.period!s})"


def _tz(tz: TzLike) -> _dt.tzinfo:
    return resolve_tz(tz)


class YearEvents(PeriodEvents):
    """Ids that did ``event`` in a calendar year (the OR of its twelve months).

    Example: ``await YearEvents("active", 2026).count()``
    """

    __slots__ = ()
    _period_type = Year

    def __init__(self, event: str, year: int, *, tz: TzLike = "UTC") -> None:
        self._set(event, Year(year, _tz(tz)))


class MonthEvents(PeriodEvents):
    """Ids that did ``event`` in a calendar month.

    Example: ``await tracker.count(MonthEvents("active", 2026, 11))``
    """

    __slots__ = ()
    _period_type = Month

    def __init__(self, event: str, year: int, month: int, *, tz: TzLike = "UTC") -> None:
        self._set(event, Month(year, month, _tz(tz)))


class WeekEvents(PeriodEvents):
    """Ids that did ``event`` in an ISO 8601 week (``iso_year``, ``iso_week``).

    Example: ``WeekEvents("active", 2025, 1)`` starts on Monday 2024-12-30.
    """

    __slots__ = ()
    _period_type = Week

    def __init__(self, event: str, iso_year: int, iso_week: int, *, tz: TzLike = "UTC") -> None:
        self._set(event, Week(iso_year, iso_week, _tz(tz)))


class DayEvents(PeriodEvents):
    """Ids that did ``event`` on a calendar day.

    Example: ``await tracker.contains(DayEvents("login", 2026, 11, 27), 123)``
    """

    __slots__ = ()
    _period_type = Day

    def __init__(self, event: str, year: int, month: int, day: int, *, tz: TzLike = "UTC") -> None:
        self._set(event, Day(year, month, day, _tz(tz)))


class HourEvents(PeriodEvents):
    """Ids that did ``event`` in one hour (needs ``track_hourly``).

    Example: ``HourEvents("checkout", 2026, 11, 27, 13)``
    """

    __slots__ = ()
    _period_type = Hour

    def __init__(
        self, event: str, year: int, month: int, day: int, hour: int, *, tz: TzLike = "UTC"
    ) -> None:
        self._set(event, Hour(year, month, day, hour, _tz(tz)))


class UniqueEvents(PeriodEvents):
    """Ids that ever did ``event``, with no time dimension (``mark_unique`` or ``track_unique``).

    Example: ``await tracker.count(UniqueEvents("signed_up"))``
    """

    __slots__ = ()
    _period_type = None

    def __init__(self, event: str) -> None:
        self._set(event, None)

    def __repr__(self) -> str:
        return f"UniqueEvents({self.event!r})"


_LEAF_OF_PERIOD: dict[type[Period], type[PeriodEvents]] = {
    Hour: HourEvents,
    Day: DayEvents,
    Week: WeekEvents,
    Month: MonthEvents,
    Year: YearEvents,
}


@dataclass(frozen=True, slots=True, repr=False)
class EventTemplate(Expr):
    """A period-free event: a template that :meth:`at` binds to a period.

    Templates describe a set "per period" once, for reports that evaluate it in many
    periods (cohorts, retention). ``EventTemplate("active").at(Week(2026, 48))`` is
    ``WeekEvents("active", 2026, 48)``; with ``active, ios = EventTemplate("active"),
    EventTemplate("ios")``, ``(active & ios).at(day)`` is "active and on iOS that day". An
    unbound template cannot be counted.

    Example: ``await tracker.count((active & ios).at(Month(2026, 11)))``

    :param event: the event name
    :raises InvalidEventName: for a bad event name
    """

    event: str

    def __post_init__(self) -> None:
        validate_event_name(self.event)

    def at(self, period: Period) -> PeriodEvents:
        """Return the concrete leaf of this event in ``period`` (e.g. ``DayEvents``).

        :param period: an Hour, Day, Week, Month or Year
        :raises UnsupportedOperation: for anything else
        """
        leaf = _LEAF_OF_PERIOD.get(type(period))
        if leaf is None:
            raise NotAPeriod(self, period)
        return leaf._of(self.event, period)

    def delta(self, n: int) -> EventTemplate:
        raise UnboundTemplate(self, "delta")

    def __repr__(self) -> str:
        return f"EventTemplate({self.event!r})"


@dataclass(frozen=True, slots=True, repr=False)
class Universe(Expr):
    """Every id the tracker has ever marked (kept at write time, per shard).

    It is the default universe of ``~x``: ``~x`` is ``Universe() - x``, never Redis' bare
    byte-padded NOT, which would count ids that were never seen.
    """

    def delta(self, n: int) -> Universe:
        return self

    def __repr__(self) -> str:
        return "Universe()"


# ------------------------------------------------------------------------------------------
# Date ranges and rolling windows
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class EventsBetween(Expr):
    """Ids that did ``event`` at any time in the half-open range ``[start, end)``.

    Answered as the OR of the fewest stored bitmaps that cover the range exactly: whole
    months, then ISO weeks, then days, then hours at the edges (hours only where hourly
    tracking is on). Naive datetimes and dates are taken in the tracker's time zone.

    Example: ``EventsBetween("active", date(2026, 11, 1), date(2026, 11, 15))`` is
    ``W2026-45 | W2026-46 | D2026-11-01 | D2026-11-02 | D2026-11-03 | …`` — as few keys as
    the calendar allows.

    :param event: the event name
    :param start: the first moment (inclusive)
    :param end: the last moment (exclusive)
    :param hourly: whether hour bitmaps exist for this event (default: the tracker's
        ``track_hourly``)
    :raises GranularityNotTracked: when evaluated, if an edge needs hours that are not kept
    :raises InvalidMoment: if ``start`` or ``end`` is not a datetime or date
    """

    event: str
    start: _dt.datetime | _dt.date
    end: _dt.datetime | _dt.date
    hourly: bool | None = None

    def __post_init__(self) -> None:
        validate_event_name(self.event)
        for bound in (self.start, self.end):
            if not isinstance(cast("object", bound), _dt.date):  # a datetime is a date too
                raise InvalidMoment(bound)
        _check_hourly(self.hourly)

    def delta(self, n: int) -> EventsBetween:
        """Return the range moved by ``n`` times its own length.

        :param n: how many range lengths to move (negative: back in time)
        """
        span = _as_datetime(self.end) - _as_datetime(self.start)
        return EventsBetween(self.event, self.start + span * n, self.end + span * n, self.hourly)

    def __repr__(self) -> str:
        return f"EventsBetween({self.event!r}, {self.start.isoformat()}, {self.end.isoformat()})"


def _check_hourly(hourly: object) -> None:
    if hourly is not None and not isinstance(hourly, bool):
        raise InvalidOption("hourly", hourly, "True, False or None")


def _as_datetime(moment: _dt.datetime | _dt.date) -> _dt.datetime:
    if isinstance(moment, _dt.datetime):
        return moment
    return _dt.datetime.combine(moment, _dt.time())


@dataclass(frozen=True, slots=True, repr=False)
class Last(Expr):
    """A rolling window: ids that did ``event`` in the last ``days`` days or ``hours`` hours.

    The window is placed when the expression is evaluated, in the tracker's time zone:
    ``days=7`` is today and the six days before it; ``hours=24`` is the current hour and
    the 23 before it. An ``hours`` window reads hour bitmaps, so it needs a tracker made
    with ``track_hourly=True`` (or ``hourly=True`` here when your marks set hour bits);
    otherwise evaluating it raises ``GranularityNotTracked``. ``delta(-1)`` is the window
    just before. Prefer the :func:`last` helper to build one.

    :param event: the event name
    :param days: the window's length in whole days
    :param hours: the window's length in whole hours
    :param offset: windows to move (negative: earlier)
    """

    event: str
    days: int = 0
    hours: int = 0
    offset: int = 0
    hourly: bool | None = None

    def __post_init__(self) -> None:
        validate_event_name(self.event)
        for size in (self.days, self.hours, self.offset):
            if isinstance(size, bool) or not isinstance(cast("object", size), int):
                raise InvalidWindow(self.days, self.hours, self.offset)
        _check_hourly(self.hourly)
        if (self.days > 0) == (self.hours > 0) or self.days < 0 or self.hours < 0:
            raise InvalidWindow(self.days, self.hours, self.offset)

    def delta(self, n: int) -> Last:
        return Last(self.event, self.days, self.hours, self.offset + n, self.hourly)

    def window(self, now: _dt.datetime) -> tuple[_dt.datetime, _dt.datetime]:
        """Return the window's local wall-clock bounds for a local ``now``.

        :param now: the current time in the tracker's zone
        """
        local = now.replace(tzinfo=None)
        if self.hours:
            step = _dt.timedelta(hours=self.hours)
            end = local.replace(minute=0, second=0, microsecond=0) + _dt.timedelta(hours=1)
        else:
            step = _dt.timedelta(days=self.days)
            end = _dt.datetime.combine(local.date(), _dt.time()) + _dt.timedelta(days=1)
        end += step * self.offset
        return end - step, end

    def __repr__(self) -> str:
        size = f"days={self.days}" if self.days else f"hours={self.hours}"
        shift = f", offset={self.offset}" if self.offset else ""
        return f"last({self.event!r}, {size}{shift})"


def last(event: str, *, days: int = 0, hours: int = 0, hourly: bool | None = None) -> Last:
    """Return the rolling window of the last ``days`` days (or ``hours`` hours) of ``event``.

    Example: ``await tracker.count(last("active", days=7))`` is the weekly active users,
    rolling; ``last("active", days=7).prev()`` is the week before.
    ``last("active", hours=24)`` needs hour bitmaps: a tracker made with
    ``Tracker(..., track_hourly=True)`` (marks made without it set no hour bits).

    :param event: the event name
    :param days: the window's length in days (today included)
    :param hours: the window's length in hours (current hour included); needs
        ``track_hourly=True`` on the tracker (or ``hourly=True``)
    :param hourly: whether hour bitmaps exist for this event (default: the tracker's
        ``track_hourly``); an hours window without them raises ``GranularityNotTracked``
        when evaluated, whatever the time of day
    :raises UnsupportedOperation: unless exactly one of ``days`` and ``hours`` is positive
    """
    return Last(event, days=days, hours=hours, hourly=hourly)


# ------------------------------------------------------------------------------------------
# Operators
# ------------------------------------------------------------------------------------------


def _check(operands: tuple[object, ...]) -> tuple[Expr, ...]:
    for operand in operands:
        if not isinstance(operand, Expr):
            raise InvalidExpression(operand)
    return operands  # type: ignore[return-value]  # checked above


def _flatten(cls: type[_NAry], operands: tuple[object, ...], *, dedupe: bool) -> tuple[Expr, ...]:
    flat: list[Expr] = []
    for operand in _check(operands):
        if isinstance(operand, _NAry) and type(operand) is cls:
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    if dedupe:
        flat = list(dict.fromkeys(flat))
    if not flat:
        raise InvalidExpression(operands)
    return tuple(flat)


@dataclass(frozen=True, slots=True, init=False, repr=False)
class _NAry(Expr):
    operands: tuple[Expr, ...]

    _symbol: ClassVar[str] = "?"
    _dedupe: ClassVar[bool] = True

    def __init__(self, *operands: Expr) -> None:
        object.__setattr__(self, "operands", _flatten(type(self), operands, dedupe=self._dedupe))

    def delta(self: _N, n: int) -> _N:
        return type(self)(*(operand.delta(n) for operand in self.operands))

    def at(self: _N, period: Period) -> _N:
        return type(self)(*(operand.at(period) for operand in self.operands))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.operands))})"


class BitOpAnd(_NAry):
    """Ids in every operand (``a & b & c``).

    Example: ``BitOpAnd(MonthEvents("active", 2026, 10), MonthEvents("active", 2026, 11))``
    """

    __slots__ = ()
    _symbol = "&"


class BitOpOr(_NAry):
    """Ids in any operand (``a | b | c``).

    Example: ``BitOpOr(DayEvents("login", 2026, 11, 26), DayEvents("login", 2026, 11, 27))``
    """

    __slots__ = ()
    _symbol = "|"


class BitOpXor(_NAry):
    """Ids in an odd number of operands (``a ^ b ^ c``), as Redis' ``BITOP XOR``.

    Example: ``BitOpXor(WeekEvents("active", 2026, 47), WeekEvents("active", 2026, 48))``
    """

    __slots__ = ()
    _symbol = "^"
    _dedupe = False


@dataclass(frozen=True, slots=True, init=False, repr=False)
class BitOpDiff(Expr):
    """Ids in ``base`` and in none of ``subtract`` (``a - b - c``).

    Example: churned users ``MonthEvents("active", 2026, 10) - MonthEvents("active", 2026, 11)``
    """

    base: Expr
    subtract: tuple[Expr, ...]

    def __init__(self, base: Expr, *subtract: Expr) -> None:
        _check((base, *subtract))
        if not subtract:
            raise EmptyDifference(base)
        flat: list[Expr] = []
        if type(base) is BitOpDiff:  # (a - b) - c == a - (b | c)
            flat.extend(base.subtract)
            base = base.base
        flat.extend(subtract)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "subtract", tuple(dict.fromkeys(flat)))

    def delta(self, n: int) -> BitOpDiff:
        return BitOpDiff(self.base.delta(n), *(s.delta(n) for s in self.subtract))

    def at(self, period: Period) -> BitOpDiff:
        return BitOpDiff(self.base.at(period), *(s.at(period) for s in self.subtract))

    def __repr__(self) -> str:
        return f"BitOpDiff({', '.join(map(repr, (self.base, *self.subtract)))})"


@dataclass(frozen=True, slots=True, init=False, repr=False)
class BitOpNot(Expr):
    """Ids of a universe that are not in ``operand`` (``~a``).

    The universe is every id the tracker has ever marked (``Universe()``) unless another
    expression is given, e.g. ``BitOpNot(paid, universe=UniqueEvents("signed_up"))``.
    bitmapist's ``BitOpNot`` runs Redis' bare ``BITOP NOT``, which also counts ids that
    were never marked (every padding bit up to the byte boundary); bitlens never does.
    """

    operand: Expr
    universe: Expr

    def __init__(self, operand: Expr, universe: Expr | None = None) -> None:
        _check((operand,) if universe is None else (operand, universe))
        object.__setattr__(self, "operand", operand)
        object.__setattr__(self, "universe", Universe() if universe is None else universe)

    def delta(self, n: int) -> BitOpNot:
        return BitOpNot(self.operand.delta(n), self.universe.delta(n))

    def at(self, period: Period) -> BitOpNot:
        return BitOpNot(self.operand.at(period), self.universe.at(period))

    def __repr__(self) -> str:
        if isinstance(self.universe, Universe):
            return f"BitOpNot({self.operand!r})"
        return f"BitOpNot({self.operand!r}, universe={self.universe!r})"
