"""The exceptions bitlens raises.

Every usage error is raised *before* a command is sent to Redis, so a bad call never
leaves half a write behind. I/O errors from ``redis.exceptions`` pass through unwrapped.

The tree (a class drawn under another is its subclass)::

    BitlensError
    ├── InvalidUserId          (also ValueError)  negative, non-int, bool or too large id
    ├── InvalidExternalId      (also ValueError)  an id map key that is not a usable str/UUID
    ├── IdMapMismatch          (also ValueError)  an id map stored with another bucket count
    ├── InvalidEventName       (also ValueError)  empty, too long, or unsafe in a key
    ├── InvalidPrefix          (also ValueError)  unsafe key prefix
    ├── InvalidPeriod          (also ValueError)  a period or date range that does not exist
    │   ├── InvalidPeriodField                     a year, week, day... not an int or out of range
    │   ├── OutsideCalendar                        a moment or shifted period past years 1..9999
    │   ├── NoUtcOffset                            a datetime whose tzinfo gives no usable offset
    │   ├── RangeNotOnWholeHour                    a range boundary between whole hours
    │   ├── EmptyRange                             a range whose start is not before its end
    │   ├── ExpiryPastCalendar                     a mark whose expiry deadline is past 9999
    │   └── InvalidTimeZone                        a time zone name that is not known
    ├── InvalidMoment          (also TypeError)   an ``at`` that is not a datetime or date
    ├── InvalidBulkInput       (also ValueError)  a ``mark_bulk`` column that cannot be marked
    ├── InvalidOption          (also ValueError)  a Tracker option of the wrong type or range
    ├── InvalidRetentionQuery  (also ValueError)  retention arguments that make no table
    ├── CannotMigrate          (also ValueError)  a migration the target layout cannot hold
    ├── InvalidParameter       (also ValueError)  a bad query parameter of the web JSON API
    ├── ParseError             (also ValueError)  a syntax error in a command-line expression
    ├── GranularityNotTracked  (also ValueError)  a range that needs data that is not kept
    │   ├── HourlyRangeNotTracked                  a range starting or ending mid-day
    │   └── HourlyWindowNotTracked                 a ``Last(hours=N)`` window
    ├── InvalidExpression      (also TypeError)   an operand that is not a bitlens expression
    ├── UnsupportedOperation   (also TypeError)   e.g. shifting an expression without a period
    │   ├── NoPeriod                               a period asked of ``UniqueEvents``
    │   ├── UnboundTemplate                        an ``EventTemplate`` used before ``.at()``
    │   ├── NotAPeriod                             an ``EventTemplate`` bound to a non-period
    │   ├── InvalidWindow                          a ``Last`` window of bad sizes
    │   ├── EmptyDifference                        a ``BitOpDiff`` with nothing to subtract
    │   ├── UniverseUnavailable                    ``~x`` on a layout that keeps no universe
    │   ├── QueryTooLarge                          more bitmaps per shard than one call may read
    │   ├── ScriptsUnavailable                     a server that runs no Lua scripts
    │   └── ExtensionRefused                       a server refusing a ``BITOP`` extension
    ├── TrackerClosed          (also RuntimeError) use after ``aclose()``
    ├── NoDefaultTracker       (also RuntimeError) ``bitlens.setup()`` was never called
    ├── MarkRejected                               a mark the server refuses for good
    ├── CleanupFailed                              a query's temp keys could not be deleted
    ├── QueryRejected                              a query's script refused its arguments
    ├── AuthenticationFailed                       Redis refused the credentials (or got none)
    ├── PermissionDenied                           the Redis user lacks a command or key
    ├── ServerOutOfMemory                          Redis' ``maxmemory`` refused a write
    ├── RedisServerNotFound    (also RuntimeError) no redis-server binary for ``bitlens.embedded``
    ├── OptionalDependencyMissing (also ImportError) a feature's optional package is missing
    └── ReplicationTimeout     (also TimeoutError) too few replicas acknowledged a write

Each class fixes its own message from typed fields, kept as attributes; raise sites stay
one line, and ``copy``/``pickle`` rebuild an error from the same fields::

    raise InvalidUserId(user_id)
    raise EmptyRange(start, end, zone)
"""

from __future__ import annotations

from ._base import BitlensError
from ._runtime import (
    AuthenticationFailed,
    CleanupFailed,
    MarkRejected,
    OptionalDependencyMissing,
    PermissionDenied,
    QueryRejected,
    RedisServerNotFound,
    ReplicationTimeout,
    ServerOutOfMemory,
)
from ._usage import (
    CannotMigrate,
    EmptyDifference,
    EmptyRange,
    ExpiryPastCalendar,
    ExtensionRefused,
    GranularityNotTracked,
    HourlyRangeNotTracked,
    HourlyWindowNotTracked,
    IdMapMismatch,
    InvalidBulkInput,
    InvalidEventName,
    InvalidExpression,
    InvalidExternalId,
    InvalidMoment,
    InvalidOption,
    InvalidParameter,
    InvalidPeriod,
    InvalidPeriodField,
    InvalidPrefix,
    InvalidRetentionQuery,
    InvalidTimeZone,
    InvalidUserId,
    InvalidWindow,
    NoDefaultTracker,
    NoPeriod,
    NotAPeriod,
    NoUtcOffset,
    OutsideCalendar,
    ParseError,
    QueryTooLarge,
    RangeNotOnWholeHour,
    ScriptsUnavailable,
    TrackerClosed,
    UnboundTemplate,
    UniverseUnavailable,
    UnsupportedOperation,
)

__all__ = [
    "AuthenticationFailed",
    "BitlensError",
    "CleanupFailed",
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
    "MarkRejected",
    "NoDefaultTracker",
    "ParseError",
    "NoPeriod",
    "NoUtcOffset",
    "NotAPeriod",
    "OptionalDependencyMissing",
    "OutsideCalendar",
    "PermissionDenied",
    "QueryRejected",
    "QueryTooLarge",
    "RangeNotOnWholeHour",
    "RedisServerNotFound",
    "ReplicationTimeout",
    "ScriptsUnavailable",
    "ServerOutOfMemory",
    "TrackerClosed",
    "UnboundTemplate",
    "UnsupportedOperation",
]
