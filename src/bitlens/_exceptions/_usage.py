"""Usage errors: bad input, raised before anything is sent to Redis."""

from __future__ import annotations

import datetime as _dt
from typing import Literal

from ._base import BitlensError

__all__ = [
    "CannotMigrate",
    "EmptyDifference",
    "UniverseUnavailable",
    "EmptyRange",
    "ExpiryPastCalendar",
    "ExtensionRefused",
    "GranularityNotTracked",
    "HourlyRangeNotTracked",
    "HourlyWindowNotTracked",
    "IdMapMismatch",
    "InvalidBulkInput",
    "InvalidEventName",
    "InvalidExpression",
    "InvalidExternalId",
    "InvalidMoment",
    "InvalidOption",
    "InvalidParameter",
    "InvalidPeriod",
    "InvalidPeriodField",
    "InvalidPrefix",
    "InvalidRetentionQuery",
    "InvalidTimeZone",
    "InvalidUserId",
    "InvalidWindow",
    "NoDefaultTracker",
    "NoPeriod",
    "NoUtcOffset",
    "NotAPeriod",
    "OutsideCalendar",
    "ParseError",
    "QueryTooLarge",
    "RangeNotOnWholeHour",
    "ScriptsUnavailable",
    "TrackerClosed",
    "UnboundTemplate",
    "UnsupportedOperation",
]


class InvalidUserId(BitlensError, ValueError):
    """A user id is not an ``int`` from 0 to the tracker's limit (2**63-1 by default).

    ``bool`` is refused although it is an ``int`` subclass: ``True`` is almost always a bug.
    """

    def __init__(self, user_id: object, limit: int = 2**63 - 1) -> None:
        self.user_id = user_id
        self.limit = limit
        super().__init__(
            f"user ids must be ints from 0 to {limit}; got {user_id!r} ({type(user_id).__name__})"
        )


class InvalidExternalId(BitlensError, ValueError):
    """An external id given to an ``IdMap`` is not a non-empty ``str`` or ``uuid.UUID``.

    Also refused: ids longer than 1,024 UTF-8 bytes and strings that are not valid Unicode.

    :param external_id: what was given
    :param problem: what is wrong: ``"type"``, ``"empty"``, ``"unicode"`` (lone
        surrogates) or ``"size"`` (more than ``max_bytes`` UTF-8 bytes)
    :param max_bytes: the longest id, in UTF-8 bytes
    """

    def __init__(
        self,
        external_id: object,
        problem: Literal["type", "empty", "unicode", "size"],
        max_bytes: int = 1024,
    ) -> None:
        self.external_id = external_id
        self.problem = problem
        self.max_bytes = max_bytes
        self.reason: str = {
            "type": f"must be a str or uuid.UUID, not {type(external_id).__name__}",
            "empty": "must not be empty",
            "unicode": "must be valid Unicode (no lone surrogates)",
            "size": f"must be at most {max_bytes} UTF-8 bytes",
        }[problem]
        super().__init__(f"invalid external id {external_id!r}: {self.reason}")


class IdMapMismatch(BitlensError, ValueError):
    """An ``IdMap`` was opened with another bucket count than the one it was stored with.

    The bucket count decides which int each external id gets, so it is fixed for the life
    of a map: open it with the count it was made with (or use another map name).
    """

    def __init__(self, name: str, stored: int, given: int) -> None:
        self.name = name
        self.stored = stored
        self.given = given
        super().__init__(
            f"id map {name!r} was stored with buckets={stored}, not {given}: "
            f"open it with IdMap(tracker, {name!r}, buckets={stored})"
        )


class InvalidEventName(BitlensError, ValueError):
    """An event name is empty, too long, not a ``str``, or holds characters unsafe in a key.

    Names may not contain ``{`` or ``}`` (they would break the shard's hash tag), whitespace
    or control characters, and may not start with ``~`` (reserved for bitlens' own keys).
    """

    def __init__(self, name: object, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"invalid event name {name!r}: {reason}")


class InvalidPrefix(BitlensError, ValueError):
    """A key prefix is empty or holds characters unsafe in a key (``{``, ``}``, whitespace)."""

    def __init__(self, prefix: object) -> None:
        self.prefix = prefix
        super().__init__(
            f"invalid key prefix {prefix!r}: use 1-64 printable characters without "
            "whitespace, '{' or '}'"
        )


class InvalidPeriod(BitlensError, ValueError):
    """A period that does not exist (month 13, ISO week 53 of a 52-week year) or an empty range.

    bitlens raises one of its subclasses, each naming one cause; catch this class for all.

    :param detail: what is wrong, after ``"invalid period: "``
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"invalid period: {detail}")


class InvalidPeriodField(InvalidPeriod):
    """A field of a period (year, month, week, day, hour) is not an ``int`` or out of range.

    :param field: the field, e.g. ``"week"`` or ``"ISO year"``
    :param value: what was given
    :param low: the smallest value the field takes
    :param high: the largest value the field takes (here)
    :param within: what bounds it, e.g. ``"ISO year 2025"`` for a week, or ``None``
    """

    def __init__(
        self, field: str, value: object, low: int, high: int, within: str | None = None
    ) -> None:
        self.field = field
        self.value = value
        self.low = low
        self.high = high
        self.within = within
        if isinstance(value, bool) or not isinstance(value, int):
            super().__init__(f"{field} must be an int, got {type(value).__name__} {value!r}")
        else:
            where = f" for {within}" if within else ""
            super().__init__(f"{field} {value} is out of range{where} ({low}..{high})")


class OutsideCalendar(InvalidPeriod):
    """A moment or period would fall outside years 1..9999, which Python's calendar ends at.

    :param subject: the datetime converted, the period shifted, or the granularity whose
        ordinal was out of range (e.g. ``"day"``)
    :param zone: the zone a datetime was converted to, if one was
    :param shift: the ``n`` of ``period.delta(n)``, if the period was shifted
    """

    def __init__(
        self, subject: object, *, zone: _dt.tzinfo | None = None, shift: int | None = None
    ) -> None:
        self.subject = subject
        self.zone = zone
        self.shift = shift
        if zone is not None and isinstance(subject, _dt.datetime):
            what = f"{subject.isoformat()} in {zone}"
        elif shift is not None:
            what = f"{subject}.delta({shift})"
        else:
            what = str(subject)
        super().__init__(f"{what} falls outside years 1..9999")


class NoUtcOffset(InvalidPeriod):
    """A datetime's own ``tzinfo`` gives no usable UTC offset (it fails or answers nonsense).

    :param moment: the datetime
    :param error: what its ``utcoffset()`` raised
    """

    def __init__(self, moment: _dt.datetime, error: str) -> None:
        self.moment = moment
        self.error = error
        super().__init__(f"{moment!r} has no usable UTC offset ({error})")


class RangeNotOnWholeHour(InvalidPeriod):
    """A range boundary falls between whole hours of its zone (bitmaps are an hour at finest).

    :param side: ``"start"`` or ``"end"``
    :param bound: the boundary, in local time of ``zone`` (naive)
    :param zone: the zone of the range
    """

    def __init__(
        self, side: Literal["start", "end"], bound: _dt.datetime, zone: _dt.tzinfo
    ) -> None:
        self.side = side
        self.bound = bound
        self.zone = zone
        super().__init__(
            f"range boundaries must fall on whole hours; {side} is {bound.isoformat()} local "
            f"time in {zone}"
        )


class EmptyRange(InvalidPeriod):
    """A range whose start is not before its end.

    :param start: the start, in local time of ``zone`` (naive)
    :param end: the end, in local time of ``zone`` (naive)
    :param zone: the zone of the range
    """

    def __init__(self, start: _dt.datetime, end: _dt.datetime, zone: _dt.tzinfo) -> None:
        self.start = start
        self.end = end
        self.zone = zone
        super().__init__(
            f"empty range: start {start.isoformat()} is not before end {end.isoformat()} "
            f"(local time in {zone})"
        )


class ExpiryPastCalendar(InvalidPeriod):
    """A mark's expiry deadline (its period's end + ``expire_after``) falls past year 9999.

    :param granularity: the period's granularity, e.g. ``"month"``
    :param period: the period marked
    :param ttl: the ``expire_after`` entry of that granularity
    """

    def __init__(self, granularity: str, period: object, ttl: _dt.timedelta) -> None:
        self.granularity = granularity
        self.period = period
        self.ttl = ttl
        super().__init__(
            f"a mark in {granularity} {period} cannot expire: its deadline (the period's end "
            f"+ expire_after[{granularity!r}] = {ttl}) falls past year 9999"
        )


class GranularityNotTracked(BitlensError, ValueError):
    """A query needs bitmaps of a granularity that the tracker does not write.

    For example a range that starts at 13:00 needs hourly bitmaps; turn on
    ``track_hourly=True`` or align the range to whole days.

    bitlens raises one of its subclasses, each naming one cause; catch this class for all.

    :param detail: the whole message
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class HourlyRangeNotTracked(GranularityNotTracked):
    """A range starts or ends mid-day, which needs the hour bitmaps the tracker does not write.

    :param start: the range's start, in local time of ``zone`` (naive)
    :param end: the range's end, in local time of ``zone`` (naive)
    :param zone: the zone of the range
    :param side: which boundary is mid-day: ``"start"`` or ``"end"``
    """

    def __init__(
        self,
        start: _dt.datetime,
        end: _dt.datetime,
        zone: _dt.tzinfo,
        side: Literal["start", "end"],
    ) -> None:
        self.start = start
        self.end = end
        self.zone = zone
        self.side = side
        bound = start if side == "start" else end
        super().__init__(
            f"range {start.isoformat()} .. {end.isoformat()} ({zone}) {side}s at "
            f"{bound.hour:02d}:00; covering it needs hourly bitmaps (track_hourly=True) or a "
            "range aligned to whole days"
        )


class HourlyWindowNotTracked(GranularityNotTracked):
    """A ``Last(hours=N)`` window reads hour bitmaps, which the tracker does not write.

    :param window: the window (a :class:`~bitlens.Last`)
    """

    def __init__(self, window: object) -> None:
        self.window = window
        super().__init__(
            f"{window!r} reads hour bitmaps, which this tracker does not write: create it "
            "with Tracker(..., track_hourly=True) (marks made before that have no hour "
            "bits), pass hourly=True if your marks set them, or use days=N"
        )


class InvalidExpression(BitlensError, TypeError):
    """An operand is not a bitlens expression (for example a plain ``set`` or ``int``)."""

    def __init__(self, operand: object) -> None:
        self.operand = operand
        super().__init__(
            f"expected a bitlens expression (e.g. MonthEvents, BitOpAnd), got "
            f"{type(operand).__name__}: {operand!r}"
        )


class UnsupportedOperation(BitlensError, TypeError):
    """The operation does not apply to this expression (e.g. ``next()`` on ``UniqueEvents``).

    bitlens raises one of its subclasses, each naming one cause; catch this class for all.

    :param detail: the whole message
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class NoPeriod(UnsupportedOperation):
    """A period-free expression (``UniqueEvents``) was asked for its period or to shift it.

    :param subject: the expression, or its class (for a class method such as ``from_date``)
    :param operation: what was asked, e.g. ``"delta"``, ``"from_date"``, ``"period_start"``
    """

    def __init__(self, subject: object, operation: str) -> None:
        self.subject = subject
        self.operation = operation
        name = subject.__name__ if isinstance(subject, type) else type(subject).__name__
        if operation == "from_date":
            super().__init__(f"{name} has no period; use {name}(event)")
        elif operation == "delta":
            super().__init__(f"{name} has no period to shift")
        else:
            super().__init__(f"{name} has no period (asked for {operation})")


class UnboundTemplate(UnsupportedOperation):
    """An ``EventTemplate`` was counted or shifted before it was bound to a period.

    :param template: the template
    :param operation: what was asked: ``"delta"`` or ``"count"``
    """

    def __init__(self, template: object, operation: str) -> None:
        self.template = template
        self.operation = operation
        if operation == "delta":
            super().__init__(f"{template!r} has no period to shift: bind it with .at(period)")
        else:
            super().__init__(
                f"{template!r} is a template without a period: bind it first with "
                f".at(period), e.g. {template!r}.at(Day(2026, 11, 27)) or .at(Week(2026, 48))"
            )


class NotAPeriod(UnsupportedOperation):
    """An ``EventTemplate`` was bound to something that is not a period.

    :param template: the template
    :param value: what was given instead of a period
    """

    def __init__(self, template: object, value: object) -> None:
        self.template = template
        self.value = value
        super().__init__(f"cannot bind {template!r} to {value!r}: not a period")


class InvalidWindow(UnsupportedOperation):
    """A ``Last`` window whose sizes are not ints, or not exactly one of days/hours above 0.

    :param days: the ``days`` given
    :param hours: the ``hours`` given
    :param offset: the ``offset`` given
    """

    def __init__(self, days: object, hours: object, offset: object) -> None:
        self.days = days
        self.hours = hours
        self.offset = offset
        wrong = [v for v in (days, hours, offset) if isinstance(v, bool) or not isinstance(v, int)]
        if wrong:
            super().__init__(
                f"window sizes and offsets must be ints, got {type(wrong[0]).__name__} {wrong[0]!r}"
            )
        else:
            super().__init__(
                f"give exactly one of days=N or hours=N, with N > 0 (got days={days}, "
                f"hours={hours})"
            )


class EmptyDifference(UnsupportedOperation):
    """A ``BitOpDiff`` with nothing to subtract from its base.

    :param base: the base set
    """

    def __init__(self, base: object) -> None:
        self.base = base
        super().__init__(
            f"BitOpDiff needs a base and at least one set to subtract (got only {base!r})"
        )


class UniverseUnavailable(UnsupportedOperation):
    """``~x`` or ``Universe()`` on a key layout that keeps no universe of marked ids.

    bitlens' own layout sets a universe bit with every mark; bitmapist's has no such
    bitmap, so "every id but x" has no exact meaning there.

    :param schema: the layout, as its repr
    """

    def __init__(self, schema: str) -> None:
        self.schema = schema
        super().__init__(
            f"{schema} keeps no universe of marked ids, so ~x and Universe() have no exact "
            "meaning: give the complement a universe (BitOpNot(x, universe=UniqueEvents("
            "'signed_up'))), subtract from a set (a - x), or name a universe event "
            "(BitmapistSchema(universe='signed_up'))"
        )


class QueryTooLarge(UnsupportedOperation):
    """One question reads more bitmaps per shard than one server-side call may touch.

    :param work: the bitmaps the question reads per shard
    :param limit: the most one call may read
    """

    def __init__(self, work: int, limit: int) -> None:
        self.work = work
        self.limit = limit
        super().__init__(
            f"a question reading {work} bitmaps per shard is too large (at most {limit}): "
            "split it, or use ranges (EventsBetween) and coarser periods"
        )


class ScriptsUnavailable(UnsupportedOperation):
    """The server runs no Lua scripts (e.g. Valkey without its lua module), which counts need.

    :param reply: the server's error
    """

    def __init__(self, reply: str) -> None:
        self.reply = reply
        super().__init__(
            f"the server runs no Lua scripts ({reply}), which count() needs: load Valkey's "
            "lua module or use a server or service that allows EVAL"
        )


class ExtensionRefused(UnsupportedOperation):
    """A server refused a ``BITOP`` extension (``DIFF``, ``ANDOR``, ...) a count was built with.

    :param capabilities: the :class:`~bitlens.Capabilities` the count was compiled with
    :param reply: the server's error
    :param probed: whether they came from a probe (one node has them, another not: the next
        count probes again) rather than from the caller
    """

    def __init__(self, capabilities: object, reply: str, *, probed: bool) -> None:
        self.capabilities = capabilities
        self.reply = reply
        self.probed = probed
        if probed:
            super().__init__(
                f"a node refused a BITOP extension of {capabilities!r} that another one has "
                f"({reply}); the next count probes again. Pass capabilities=Capabilities() "
                "while the servers differ"
            )
        else:
            super().__init__(
                f"the server refused a BITOP extension of {capabilities!r} ({reply}): it "
                "lacks them (Redis < 8.2, Valkey); pass capabilities=Capabilities() or leave "
                "capabilities unset so the tracker probes the server"
            )


class TrackerClosed(BitlensError, RuntimeError):
    """The tracker was used after ``aclose()``."""

    def __init__(self) -> None:
        super().__init__(
            "this Tracker is closed; create a new one (or use `async with Tracker(...)`)"
        )


class NoDefaultTracker(BitlensError, RuntimeError):
    """A module-level call was made before ``bitlens.setup()`` configured a default tracker."""

    def __init__(self) -> None:
        super().__init__(
            "no default tracker: call bitlens.setup(url_or_client) first, "
            "or pass tracker=... explicitly"
        )


class InvalidTimeZone(InvalidPeriod):
    """A time zone that is neither a usable ``datetime.tzinfo`` nor a known IANA name.

    It is an :class:`InvalidPeriod` (and so a ``ValueError``): the calendar of an unknown
    zone does not exist. A zone of the wrong type (neither ``str`` nor ``tzinfo``) raises
    it too, as an instance that is also a ``TypeError``.

    :param tz: what was given
    """

    def __init__(self, tz: object) -> None:
        self.tz = tz
        self.detail: str = f"unknown time zone {tz!r}"
        what = (
            ""
            if isinstance(tz, str)
            else f" (a time zone must be a str or tzinfo, got {type(tz).__name__})"
        )
        # Not InvalidPeriod's "invalid period: ..." sentence: this class fixes its own.
        BitlensError.__init__(
            self,
            f"unknown time zone {tz!r}{what}: pass an IANA name such as 'Europe/Berlin' or "
            "'UTC', or a datetime.tzinfo",
        )

    def __new__(cls, tz: object) -> InvalidTimeZone:
        """Make the instance, of a class that is also a ``TypeError`` if ``tz`` has a wrong type.

        :param tz: what was given
        """
        made = _TimeZoneOfWrongType if cls is InvalidTimeZone and not isinstance(tz, str) else cls
        return BitlensError.__new__(made, tz)


class _TimeZoneOfWrongType(InvalidTimeZone, TypeError):
    """An :class:`InvalidTimeZone` for a zone that is neither a ``str`` nor a ``tzinfo``."""


class InvalidMoment(BitlensError, TypeError):
    """An ``at`` (or date bound) that is not a ``datetime.datetime`` or ``datetime.date``."""

    def __init__(self, value: object) -> None:
        self.value = value
        super().__init__(
            "expected a datetime.datetime or datetime.date (or None for now), got "
            f"{type(value).__name__}: {value!r}"
        )


class InvalidOption(BitlensError, ValueError):
    """A configuration option of the wrong type or outside its range.

    :param name: the option, e.g. ``"max_user_id"``
    :param value: what was given
    :param expected: what the option takes, e.g. ``"an int from 1 to 2**63-1"``
    """

    def __init__(self, name: str, value: object, expected: str) -> None:
        self.option = name
        self.value = value
        self.expected = expected
        super().__init__(f"invalid {name}={value!r}: expected {expected}")


class CannotMigrate(BitlensError, ValueError):
    """A migration that cannot be done as asked (refused before anything is written).

    :param detail: what stands in the way, e.g. ids the target layout cannot hold
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"cannot migrate: {detail}")


class InvalidRetentionQuery(BitlensError, ValueError):
    """A retention, cohort or product report query with arguments that make no result.

    For example ``period="fortnight"``, ``cohorts=0``, brackets ``[(3, 1)]``,
    ``mode="first_time"`` without ``history_start``, a funnel of one step, or more
    segments than a report takes.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class InvalidParameter(BitlensError, ValueError):
    """A query parameter of the web JSON API is missing, repeated or malformed.

    The web integrations answer it with HTTP 400 and the message, e.g.
    ``invalid 'period': must be one of day, week, month; got 'year'``.

    :param name: the parameter's name
    :param detail: what is wrong with it
    """

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        self.detail = detail
        super().__init__(f"invalid {name!r}: {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        """Rebuild from ``name`` and ``detail`` (for ``copy`` and ``pickle``)."""
        return (type(self), (self.name, self.detail))


class ParseError(BitlensError, ValueError):
    """A syntax error in a command-line expression, with the position it was found at.

    ``str(error)`` is the message; :meth:`render` adds the text and a caret under the
    offending position.

    :param message: what is wrong, e.g. ``expected ')'``
    :param text: the whole expression
    :param position: the 0-based index of the offending character (``len(text)``: the end)
    """

    def __init__(self, message: str, text: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.text = text
        self.position = position

    def __reduce__(self) -> tuple[object, ...]:
        """Rebuild from ``message``, ``text`` and ``position`` (for ``copy`` and ``pickle``)."""
        return (type(self), (self.message, self.text, self.position))

    def render(self) -> str:
        """Return the message, then the expression and a caret under the position."""
        shown = "".join(" " if char.isspace() else char for char in self.text)
        return f"{self.message}\n  {shown}\n  {' ' * self.position}^"


class InvalidBulkInput(BitlensError, ValueError):
    """A column given to :meth:`~bitlens.Tracker.mark_bulk` that cannot be marked.

    For example ``times`` shorter than ``user_ids``, a ``NaT``/``NaN``/``None`` time, a
    time outside years 1..9999, or a column of a type that holds neither ids nor times.

    :param column: the argument, e.g. ``"times"``
    :param index: the position of the first offending value (``None``: the whole column)
    :param value: the offending value (or the column's length or type)
    :param reason: what is wrong with it
    """

    def __init__(self, column: str, index: int | None, value: object, reason: str) -> None:
        self.column = column
        self.index = index
        self.value = value
        self.reason = reason
        where = column if index is None else f"{column}[{index}]"
        super().__init__(f"invalid {where} = {value!r}: {reason}")
