"""bitlens: asyncio-native real-time analytics on Redis bitmaps.

Mark what users do, then ask exact questions — "has user 123 been active this week?",
"how many unique users did X this month?", "what share of last month's actives came
back?" — each answered in one round trip::

    import bitlens
    from bitlens import MonthEvents, Tracker

    async with Tracker("redis://localhost:6379/0") as tracker:
        await tracker.mark_event("active", 123)
        await tracker.count(MonthEvents("active", 2026, 10) & MonthEvents("active", 2026, 11))
"""

from ._default import (
    get_tracker,
    mark_event,
    mark_events,
    mark_unique,
    setup,
    unmark_event,
    unmark_unique,
)
from ._exceptions import (
    AuthenticationFailed,
    BitlensError,
    CannotMigrate,
    CleanupFailed,
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
    InvalidPeriod,
    InvalidPeriodField,
    InvalidPrefix,
    InvalidTimeZone,
    InvalidUserId,
    InvalidWindow,
    MarkRejected,
    NoDefaultTracker,
    NoPeriod,
    NotAPeriod,
    NoUtcOffset,
    OptionalDependencyMissing,
    OutsideCalendar,
    PermissionDenied,
    QueryRejected,
    QueryTooLarge,
    RangeNotOnWholeHour,
    ReplicationTimeout,
    ScriptsUnavailable,
    ServerOutOfMemory,
    TrackerClosed,
    UnboundTemplate,
    UniverseUnavailable,
    UnsupportedOperation,
)
from ._expr import (
    BitOpAnd,
    BitOpDiff,
    BitOpNot,
    BitOpOr,
    BitOpXor,
    DayEvents,
    EventsBetween,
    EventTemplate,
    Expr,
    HourEvents,
    Last,
    MonthEvents,
    PeriodEvents,
    UniqueEvents,
    Universe,
    WeekEvents,
    YearEvents,
    last,
)
from ._idmap import IdMap
from ._ingest import Batch, IngestStats
from ._keys import (
    MAX_USER_ID,
    BitmapistSchema,
    EventKey,
    IdMapKey,
    KeySchema,
    ParsedKey,
    RegistryKey,
    ShardedSchema,
    TempKey,
    UniverseKey,
    UniverseKind,
)
from ._manage import Erasure
from ._migrate import MigrationReport, migrate
from ._options import Coalesce, Limits
from ._periods import Day, Hour, Month, Period, Week, Year
from ._plan import Capabilities
from ._tracker import Mark, Tracker, TrackerOptions
from ._version import __version__

__all__ = [
    "MAX_USER_ID",
    "AuthenticationFailed",
    "Batch",
    "BitOpAnd",
    "BitOpDiff",
    "BitOpNot",
    "BitOpOr",
    "BitOpXor",
    "BitlensError",
    "BitmapistSchema",
    "CannotMigrate",
    "Capabilities",
    "CleanupFailed",
    "Coalesce",
    "Day",
    "DayEvents",
    "EmptyDifference",
    "EmptyRange",
    "Erasure",
    "EventKey",
    "EventTemplate",
    "EventsBetween",
    "ExpiryPastCalendar",
    "Expr",
    "ExtensionRefused",
    "GranularityNotTracked",
    "Hour",
    "HourEvents",
    "HourlyRangeNotTracked",
    "HourlyWindowNotTracked",
    "IdMap",
    "IdMapKey",
    "IdMapMismatch",
    "IngestStats",
    "InvalidBulkInput",
    "InvalidEventName",
    "InvalidExpression",
    "InvalidExternalId",
    "InvalidMoment",
    "InvalidOption",
    "InvalidPeriod",
    "InvalidPeriodField",
    "InvalidPrefix",
    "InvalidTimeZone",
    "InvalidUserId",
    "InvalidWindow",
    "KeySchema",
    "Last",
    "Limits",
    "Mark",
    "MarkRejected",
    "MigrationReport",
    "Month",
    "MonthEvents",
    "NoDefaultTracker",
    "NoPeriod",
    "NoUtcOffset",
    "NotAPeriod",
    "OptionalDependencyMissing",
    "OutsideCalendar",
    "ParsedKey",
    "Period",
    "PeriodEvents",
    "PermissionDenied",
    "QueryRejected",
    "QueryTooLarge",
    "RangeNotOnWholeHour",
    "RegistryKey",
    "ReplicationTimeout",
    "ScriptsUnavailable",
    "ServerOutOfMemory",
    "ShardedSchema",
    "TempKey",
    "Tracker",
    "TrackerClosed",
    "TrackerOptions",
    "UnboundTemplate",
    "UniqueEvents",
    "Universe",
    "UniverseKey",
    "UniverseKind",
    "UniverseUnavailable",
    "UnsupportedOperation",
    "Week",
    "WeekEvents",
    "Year",
    "YearEvents",
    "__version__",
    "get_tracker",
    "last",
    "mark_event",
    "mark_events",
    "mark_unique",
    "migrate",
    "setup",
    "unmark_event",
    "unmark_unique",
]


# Show users bitlens.Tracker, not bitlens._tracker.Tracker (as httpx does).
def _rehome() -> None:
    from contextlib import suppress

    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("bitlens._"):
            with suppress(AttributeError, TypeError):  # e.g. type aliases
                obj.__module__ = "bitlens"


_rehome()
del _rehome
