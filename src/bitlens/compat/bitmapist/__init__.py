"""bitmapist 3.x's API, sync, running on bitlens: switch one import and keep working.

Change ``import bitmapist`` to ``from bitlens.compat import bitmapist`` (and
``bitmapist.cohort`` to ``bitlens.compat.bitmapist.cohort``): the names and call shapes
stay, on bitmapist's own keys by default, so the same data serves both while the code
moves to the async API at its own pace::

    from bitlens.compat import bitmapist

    bitmapist.setup_redis("default", "localhost", 6379)
    bitmapist.mark_event("active", 123)
    len(bitmapist.MonthEvents("active", 2026, 11))
    123 in bitmapist.WeekEvents("active", 2026, 48)
    both = bitmapist.BitOpAnd(bitmapist.MonthEvents("active", 2026, 10),
                              bitmapist.MonthEvents("active", 2026, 11))

Every call runs bitlens on a private event-loop thread (one per process) and waits for
it. Where bitmapist's behaviour is a bug, bitlens' answer is kept (see "Coming from
bitmapist" in the docs):

* ``BitOp*`` values are lazy: they are computed when asked (``len``, ``in``,
  iteration), not snapshot into a key at construction, and leave no ``trackist_bitop_*``
  key behind (their ``redis_key`` names no stored key).
* ``BitOpNot``/``~`` is the complement within a universe, never Redis' bare ``BITOP NOT``
  with its padding bits: on bitmapist's layout it raises
  :class:`~bitlens.UniverseUnavailable` unless ``setup_redis(...,
  schema=BitmapistSchema(universe="..."))`` names one.
* Bad input (an id of 2**32 or more, an event name with whitespace, month 13) raises a
  typed :class:`~bitlens.BitlensError` before anything is sent.
* ``system`` is a system's name; Redis clients and pipelines are not accepted there.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

from ... import _expr as _x
from ..._keys import EventKey, KeySchema, glob_escape
from ..._periods import Day, Hour, Month, Period, Week, Year
from ._runtime import RUNNER, System

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..._tracker import Tracker

__all__ = [
    "TRACK_HOURLY",
    "TRACK_UNIQUE",
    "BitOpAnd",
    "BitOpNot",
    "BitOpOr",
    "BitOpXor",
    "DayEvents",
    "HourEvents",
    "MonthEvents",
    "UniqueEvents",
    "WeekEvents",
    "YearEvents",
    "delete_all_events",
    "delete_runtime_bitop_keys",
    "delete_temporary_bitop_keys",
    "get_event_names",
    "mark_event",
    "mark_unique",
    "setup_redis",
    "unmark_event",
    "unmark_unique",
]

TRACK_HOURLY = False
"""Whether marks set hour bits when ``track_hourly`` is not given (bitmapist's default)."""

TRACK_UNIQUE = False
"""Whether marks set the UniqueEvents bit when ``track_unique`` is not given."""

_UTC = _dt.timezone.utc


def setup_redis(
    name: str, host: str, port: int, *, schema: KeySchema | None = None, **kw: Any
) -> None:
    """Set up a Redis system: where the data of ``system=name`` calls lives.

    :param name: the system's name (``"default"`` is used when a call names none)
    :param host: the Redis host
    :param port: the Redis port
    :param schema: the key layout: bitmapist's (``BitmapistSchema()``, the default) or
        bitlens' own (``ShardedSchema(prefix=...)``)
    :param kw: more ``redis.asyncio.Redis`` keyword arguments (``db``, ``password``...)
    """
    from ..._keys import BitmapistSchema

    RUNNER.setup(name, System(host, port, schema or BitmapistSchema(), dict(kw)))


def _now() -> _dt.datetime:
    return _dt.datetime.now(tz=_UTC)


def _utc(moment: _dt.date | None) -> _dt.date:
    """``moment`` in UTC when it is an aware datetime (as marks file it), else as given."""
    if moment is None:
        return _now()
    if isinstance(moment, _dt.datetime) and moment.utcoffset() is not None:
        return moment.astimezone(_UTC)
    return moment


def _mark(
    event_name: str,
    uuid: int,
    system: str,
    now: _dt.datetime | None,
    track_hourly: bool | None,
    track_unique: bool | None,
    value: int,
) -> None:
    hourly = TRACK_HOURLY if track_hourly is None else track_hourly
    unique = TRACK_UNIQUE if track_unique is None else track_unique
    at = now or _now()

    async def call(tracker: Tracker) -> None:
        if value:
            await tracker.mark_event(event_name, uuid, at, track_hourly=hourly, track_unique=unique)
        else:
            await tracker.unmark_event(
                event_name, uuid, at, track_hourly=hourly, track_unique=unique
            )

    RUNNER.run(system, call)


def mark_event(
    event_name: str,
    uuid: int,
    system: str = "default",
    now: _dt.datetime | None = None,
    track_hourly: bool | None = None,
    track_unique: bool | None = None,
    use_pipeline: bool = True,
) -> None:
    """Mark ``uuid`` as having done ``event_name`` at ``now``: its month, week and day.

    All bits are set in one MULTI/EXEC, whatever ``use_pipeline`` says.

    :param event_name: the event, e.g. ``"active"``
    :param uuid: the id, an int from 0 to 2**32 - 1 on bitmapist's layout
    :param system: the system's name
    :param now: when it happened (default: now, UTC)
    :param track_hourly: also the hour (default :data:`TRACK_HOURLY`)
    :param track_unique: also the UniqueEvents bitmap (default :data:`TRACK_UNIQUE`)
    :param use_pipeline: accepted for compatibility; marks are always one transaction
    """
    _mark(event_name, uuid, system, now, track_hourly, track_unique, 1)


def unmark_event(
    event_name: str,
    uuid: int,
    system: str = "default",
    now: _dt.datetime | None = None,
    track_hourly: bool | None = None,
    track_unique: bool | None = None,
    use_pipeline: bool = True,
) -> None:
    """Clear the bits :func:`mark_event` sets for the same arguments.

    :param event_name: the event
    :param uuid: the id
    :param system: the system's name
    :param now: the moment whose periods to clear (default: now, UTC)
    :param track_hourly: also the hour (default :data:`TRACK_HOURLY`)
    :param track_unique: also the UniqueEvents bitmap (default :data:`TRACK_UNIQUE`)
    :param use_pipeline: accepted for compatibility
    """
    _mark(event_name, uuid, system, now, track_hourly, track_unique, 0)


def mark_unique(event_name: str, uuid: int, system: str = "default") -> None:
    """Set ``uuid`` in the UniqueEvents bitmap of ``event_name`` (a user flag).

    :param event_name: the flag, e.g. ``"premium"``
    :param uuid: the id
    :param system: the system's name
    """
    RUNNER.run(system, lambda tracker: tracker.mark_unique(event_name, uuid))


def unmark_unique(event_name: str, uuid: int, system: str = "default") -> None:
    """Clear ``uuid`` from the UniqueEvents bitmap of ``event_name``.

    :param event_name: the flag
    :param uuid: the id
    :param system: the system's name
    """
    RUNNER.run(system, lambda tracker: tracker.unmark_unique(event_name, uuid))


def get_event_names(system: str = "default", prefix: str = "", batch: int = 10000) -> list[str]:
    """Return the names of every event stored, sorted (bitmapist's are in no order).

    :param system: the system's name
    :param prefix: only names starting with it
    :param batch: accepted for compatibility (bitlens scans in bounded batches)
    """
    return RUNNER.run(system, lambda tracker: tracker.event_names(starting_with=prefix))


def delete_all_events(system: str = "default") -> None:
    """Delete every key of the system's layout (SCAN and UNLINK in batches, never KEYS).

    On bitmapist's layout, bitmapist's own ``bitop_`` result keys go too, as in bitmapist.

    :param system: the system's name
    """

    async def call(tracker: Tracker) -> None:
        await tracker.delete_all()
        await _delete_bitop_keys(tracker)

    RUNNER.run(system, call)


def delete_temporary_bitop_keys(system: str = "default") -> None:
    """Delete the ``BitOp`` result keys bitmapist code left under the prefix.

    bitlens' own operations leave none; this clears what bitmapist itself wrote before.

    :param system: the system's name
    """
    RUNNER.run(system, _delete_bitop_keys)


def delete_runtime_bitop_keys() -> None:
    """Do nothing: bitlens' ``BitOp`` values make no key to delete."""


async def _delete_bitop_keys(tracker: Tracker) -> None:
    from ..._keys import BitmapistSchema

    schema = tracker.schema
    if not isinstance(schema, BitmapistSchema):
        return
    client = tracker.client
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{glob_escape(schema.prefix)}bitop_*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            await client.unlink(*batch)
            batch = []
    if batch:
        await client.unlink(*batch)


# -- events ------------------------------------------------------------------------------------


class _Events:
    """What every bitmapist value answers: count, membership, members, operators."""

    system: str
    redis_key: str

    def _expr(self) -> _x.Expr:
        raise NotImplementedError

    def get_count(self) -> int:
        """The number of ids in the set (``BITCOUNT``)."""
        expr = self._expr()
        return RUNNER.run(self.system, lambda tracker: tracker.count(expr))

    def __len__(self) -> int:
        return self.get_count()

    def __contains__(self, uuid: int) -> bool:
        expr = self._expr()
        return RUNNER.run(self.system, lambda tracker: tracker.contains(expr, uuid))

    def has_events_marked(self) -> bool:
        """Whether any id is in the set."""
        expr = self._expr()
        return RUNNER.run(self.system, lambda tracker: tracker.has_events(expr))

    def get_uuids(self) -> Iterator[int]:
        """Yield the ids in the set, ascending."""
        expr = self._expr()

        async def members(tracker: Tracker) -> list[int]:
            return [uid async for uid in tracker.members(expr)]

        yield from RUNNER.run(self.system, members)

    def __iter__(self) -> Iterator[int]:
        return self.get_uuids()

    def __eq__(self, other: object) -> bool:
        other_key = getattr(other, "redis_key", None)
        if other_key is None:
            return NotImplemented
        return bool(self.redis_key == other_key)

    def __hash__(self) -> int:
        return hash(self.redis_key)

    def __invert__(self) -> BitOpNot:
        return BitOpNot(self)

    def __and__(self, other: _Events) -> BitOpAnd:
        return BitOpAnd(self, other)

    def __or__(self, other: _Events) -> BitOpOr:
        return BitOpOr(self, other)

    def __xor__(self, other: _Events) -> BitOpXor:
        return BitOpXor(self, other)


class _Stored(_Events):
    """A bitmap of one event (one period, or ever)."""

    redis_key: str

    event_name: str

    def _period(self) -> Period | None:
        raise NotImplementedError

    def _init(self, event_name: str, system: str) -> None:
        self.event_name = event_name
        self.system = system
        period = self._period()
        schema = RUNNER.systems[system].schema if system in RUNNER.systems else None
        if isinstance(period, Year) or schema is None:
            self.redis_key = f"{event_name}_{period}"
        else:
            self.redis_key = schema.event_key(event_name, period, 0)

    def delete(self) -> None:
        """Delete this bitmap (every shard of it on bitlens' own layout).

        A YearEvents has no bitmap of its own (it is the OR of its months): as in
        bitmapist, deleting it deletes no data.
        """
        event, period = self.event_name, self._period()
        if isinstance(period, Year):
            return
        months = (period,)

        async def call(tracker: Tracker) -> None:
            keys = []
            async for key in tracker.client.scan_iter(
                match=tracker.schema.event_pattern(event), count=1000
            ):
                parsed = tracker.schema.parse_scanned(key)
                if (
                    isinstance(parsed, EventKey)
                    and parsed.event == event
                    and parsed.period in months
                ):
                    keys.append(key)
            if keys:
                await tracker.client.unlink(*keys)

        RUNNER.run(self.system, call)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.event_name!r}, key={self.redis_key!r})"


class UniqueEvents(_Stored):
    """Ids marked with :func:`mark_unique` (or ``track_unique``): no time dimension."""

    @classmethod
    def from_date(
        cls, event_name: str, dt: _dt.date | None = None, system: str = "default"
    ) -> UniqueEvents:
        """The same set whatever the date."""
        return cls(event_name, system=system)

    def __init__(self, event_name: str, system: str = "default") -> None:
        self._init(event_name, system)

    def _period(self) -> None:
        return None

    def _expr(self) -> _x.Expr:
        return _x.UniqueEvents(self.event_name)

    def next(self) -> UniqueEvents:
        """Itself: UniqueEvents has no time line."""
        return self

    def prev(self) -> UniqueEvents:
        """Itself."""
        return self


class _PeriodEvents(_Stored):
    """A bitmap of one event in one period, with bitmapist's time-line helpers."""

    def _bitlens_period(self) -> Period:
        raise NotImplementedError

    def _period(self) -> Period:
        return self._bitlens_period()

    def _expr(self) -> _x.Expr:
        return _x.EventTemplate(self.event_name).at(self._bitlens_period())

    def _of(self, period: Period) -> Any:
        raise NotImplementedError

    def delta(self, value: int) -> Any:
        """The same event ``value`` periods later (earlier if negative)."""
        return self._of(self._bitlens_period().delta(value))

    def next(self) -> Any:
        """The next period's events."""
        return self.delta(1)

    def prev(self) -> Any:
        """The previous period's events."""
        return self.delta(-1)

    def period_start(self) -> _dt.datetime:
        """The first instant of the period (UTC)."""
        return self._bitlens_period().start

    def period_end(self) -> _dt.datetime:
        """The last microsecond of the period (UTC), as bitmapist gives it."""
        return self._bitlens_period().end - _dt.timedelta(microseconds=1)


class YearEvents(_PeriodEvents):
    """Ids that did the event in a calendar year (the OR of its months, asked lazily)."""

    year: int
    redis_key: str

    @classmethod
    def from_date(
        cls, event_name: str, dt: _dt.date | None = None, system: str = "default"
    ) -> YearEvents:
        """The year of ``dt`` (default: now, UTC)."""
        dt = _utc(dt)
        return cls(event_name, dt.year, system=system)

    def __init__(self, event_name: str, year: int | None = None, system: str = "default") -> None:
        self.year = _now().year if year is None else year
        self._init(event_name, system)
        self.redis_key = f"{event_name}_Y{self.year}"  # no key of its own: the OR of months

    def _bitlens_period(self) -> Year:
        return Year(self.year)

    def _of(self, period: Period) -> YearEvents:
        assert isinstance(period, Year)
        return YearEvents(self.event_name, period.year, self.system)


class MonthEvents(_PeriodEvents):
    """Ids that did the event in a calendar month."""

    year: int
    month: int

    @classmethod
    def from_date(
        cls, event_name: str, dt: _dt.date | None = None, system: str = "default"
    ) -> MonthEvents:
        """The month of ``dt`` (default: now, UTC)."""
        dt = _utc(dt)
        return cls(event_name, dt.year, dt.month, system=system)

    def __init__(
        self,
        event_name: str,
        year: int | None = None,
        month: int | None = None,
        system: str = "default",
    ) -> None:
        now = _now()
        self.year = now.year if year is None else year
        self.month = now.month if month is None else month
        self._init(event_name, system)

    def _bitlens_period(self) -> Month:
        return Month(self.year, self.month)

    def _of(self, period: Period) -> MonthEvents:
        assert isinstance(period, Month)
        return MonthEvents(self.event_name, period.year, period.month, self.system)


class WeekEvents(_PeriodEvents):
    """Ids that did the event in an ISO 8601 week (ISO year, week)."""

    year: int
    week: int

    @classmethod
    def from_date(
        cls, event_name: str, dt: _dt.date | None = None, system: str = "default"
    ) -> WeekEvents:
        """The ISO week of ``dt`` (default: now, UTC)."""
        dt = _utc(dt)
        year, week, _ = dt.isocalendar()
        return cls(event_name, year, week, system=system)

    def __init__(
        self,
        event_name: str,
        year: int | None = None,
        week: int | None = None,
        system: str = "default",
    ) -> None:
        iso = _now().isocalendar()
        self.year = iso[0] if year is None else year
        self.week = iso[1] if week is None else week
        self._init(event_name, system)

    def _bitlens_period(self) -> Week:
        return Week(self.year, self.week)

    def _of(self, period: Period) -> WeekEvents:
        assert isinstance(period, Week)
        return WeekEvents(self.event_name, period.iso_year, period.week, self.system)


class DayEvents(_PeriodEvents):
    """Ids that did the event on a calendar day."""

    year: int
    month: int
    day: int

    @classmethod
    def from_date(
        cls, event_name: str, dt: _dt.date | None = None, system: str = "default"
    ) -> DayEvents:
        """The day of ``dt`` (default: now, UTC)."""
        dt = _utc(dt)
        return cls(event_name, dt.year, dt.month, dt.day, system=system)

    def __init__(
        self,
        event_name: str,
        year: int | None = None,
        month: int | None = None,
        day: int | None = None,
        system: str = "default",
    ) -> None:
        now = _now()
        self.year = now.year if year is None else year
        self.month = now.month if month is None else month
        self.day = now.day if day is None else day
        self._init(event_name, system)

    def _bitlens_period(self) -> Day:
        return Day(self.year, self.month, self.day)

    def _of(self, period: Period) -> DayEvents:
        assert isinstance(period, Day)
        return DayEvents(self.event_name, period.year, period.month, period.day, self.system)


class HourEvents(_PeriodEvents):
    """Ids that did the event in one hour (marked with ``track_hourly``)."""

    year: int
    month: int
    day: int
    hour: int

    @classmethod
    def from_date(
        cls, event_name: str, dt: _dt.datetime | None = None, system: str = "default"
    ) -> HourEvents:
        """The hour of ``dt`` (default: now, UTC)."""
        moment = _utc(dt)
        assert isinstance(moment, _dt.datetime)
        return cls(event_name, moment.year, moment.month, moment.day, moment.hour, system=system)

    def __init__(
        self,
        event_name: str,
        year: int | None = None,
        month: int | None = None,
        day: int | None = None,
        hour: int | None = None,
        system: str = "default",
    ) -> None:
        now = _now()
        self.year = now.year if year is None else year
        self.month = now.month if month is None else month
        self.day = now.day if day is None else day
        self.hour = now.hour if hour is None else hour
        self._init(event_name, system)

    def _bitlens_period(self) -> Hour:
        return Hour(self.year, self.month, self.day, self.hour)

    def _of(self, period: Period) -> HourEvents:
        assert isinstance(period, Hour)
        return HourEvents(
            self.event_name, period.year, period.month, period.day, period.hour, self.system
        )


# -- bit operations --------------------------------------------------------------------------


class _BitOperation(_Events):
    """A lazy operation over bitmapist values: asked when counted, tested or iterated."""

    redis_key: str

    _op: str

    def __init__(self, system_or_event: str | _Events, *events: _Events) -> None:
        if isinstance(system_or_event, _Events):
            events = (system_or_event, *events)
            system = events[0].system
        else:
            system = system_or_event
        self.system = system
        self.events = events
        self.redis_key = f"bitop_{self._op}_{'-'.join(e.redis_key for e in events)}"

    def _expr(self) -> _x.Expr:
        parts = [e._expr() for e in self.events]
        if self._op == "AND":
            return _x.BitOpAnd(*parts)
        if self._op == "OR":
            return _x.BitOpOr(*parts)
        if self._op == "XOR":
            return _x.BitOpXor(*parts)
        return _x.BitOpNot(parts[0])

    def delete(self) -> None:
        """Do nothing: the operation stores no key."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.events))})"


class BitOpAnd(_BitOperation):
    """Ids in every one of the events (``a & b``)."""

    _op = "AND"


class BitOpOr(_BitOperation):
    """Ids in any of the events (``a | b``)."""

    _op = "OR"


class BitOpXor(_BitOperation):
    """Ids in an odd number of the events (``a ^ b``)."""

    _op = "XOR"


class BitOpNot(_BitOperation):
    """Ids of the universe not in the event (``~a``); see the module docs for the universe."""

    _op = "NOT"
