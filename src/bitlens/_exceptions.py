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
    ├── GranularityNotTracked  (also ValueError)  a range that needs data that is not kept
    ├── InvalidExpression      (also TypeError)   an operand that is not a bitlens expression
    ├── UnsupportedOperation   (also TypeError)   e.g. shifting an expression without a period
    ├── TrackerClosed          (also RuntimeError) use after ``aclose()``
    └── NoDefaultTracker       (also RuntimeError) ``bitlens.setup()`` was never called

Each class fixes its own message; raise sites stay one line::

    raise InvalidUserId(user_id)
"""

from __future__ import annotations

__all__ = [
    "BitlensError",
    "GranularityNotTracked",
    "IdMapMismatch",
    "InvalidEventName",
    "InvalidExpression",
    "InvalidExternalId",
    "InvalidPeriod",
    "InvalidPrefix",
    "InvalidUserId",
    "NoDefaultTracker",
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
