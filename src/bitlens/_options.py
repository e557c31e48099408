"""The tracker's option objects and the checks every option passes before a client is made.

Options that belong together travel together, in the spirit of httpx's ``Limits`` and
``Timeout``::

    Tracker(url, coalesce=Coalesce(delay=0.005), limits=Limits(mark_chunk_size=5_000))
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias, cast

from ._exceptions import ExpiryPastCalendar, InvalidOption, InvalidPeriod
from ._keys import MAX_USER_ID, KeySchema
from ._periods import Day, Hour, Month, Period, TzLike, Week, resolve_tz
from ._plan import Capabilities

if TYPE_CHECKING:
    from ._writes import Granularity

__all__ = [
    "CLIENT_READ_BYTES",
    "Coalesce",
    "Limits",
    "Reads",
    "check_deadlines",
    "check_options",
]

Reads: TypeAlias = Literal["server", "client"]
"""Where counts are computed: ``"server"`` (a script, temp keys) or ``"client"`` (reads only)."""

CLIENT_READ_BYTES = 32 * 1024 * 1024
"""The most bitmap bytes one round trip of ``reads="client"`` counting asks for.

Each shard is read in windows of ``min(shard size, max(4 KiB, CLIENT_READ_BYTES // L))``
bytes of each of its ``L`` distinct bitmaps, and one round trip carries
``max(1, CLIENT_READ_BYTES // (L * window))`` such windows, so the client holds at most
about this many bytes of replies at once.
"""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_count(name: str, value: object) -> None:
    if not _is_int(value) or cast("int", value) < 1:
        raise InvalidOption(name, value, "an int >= 1")


@dataclass(frozen=True, slots=True)
class Coalesce:
    """How concurrent ``mark_event`` calls share round trips: ``Tracker(coalesce=...)``.

    ``Tracker(coalesce=True)`` is ``Tracker(coalesce=Coalesce())``. Each caller still
    returns only once its own mark is written.

    Example::

        Tracker(url, coalesce=Coalesce(max_marks=500, delay=0.001))

    :param max_marks: a batch is sent as soon as it holds this many marks
    :param delay: the longest a batch waits for company, in seconds
    :param max_in_flight: batches on the wire at once, per node (back-pressure: callers
        beyond wait, so memory stays bounded by the number of waiting callers)
    :raises InvalidOption: for a count below 1 or a delay that is not a finite number >= 0
    """

    max_marks: int = 1_000
    delay: float = 0.002
    max_in_flight: int = 4

    def __post_init__(self) -> None:
        _check_count("Coalesce.max_marks", self.max_marks)
        _check_count("Coalesce.max_in_flight", self.max_in_flight)
        delay = self.delay
        if (
            not isinstance(delay, (int, float))
            or isinstance(delay, bool)
            or not math.isfinite(delay)
            or delay < 0
        ):
            raise InvalidOption("Coalesce.delay", delay, "a finite number of seconds >= 0")


@dataclass(frozen=True, slots=True)
class Limits:
    """The sizes that bound a tracker's ids, round trips and memory: ``Tracker(limits=...)``.

    Example::

        Tracker(url, limits=Limits(max_user_id=2**32 - 1, mark_chunk_size=5_000))

    :param max_user_id: the largest id accepted (default ``2**63 - 1``)
    :param mark_chunk_size: marks sent per round trip by ``mark_events`` and by the
        fire-and-forget queue
    :param members_chunk_bytes: bytes of each bitmap read per round trip by ``members``
    :param nowait_max_queue: marks ``mark_event_nowait`` may hold; new ones beyond are
        dropped (counted, logged)
    :raises InvalidOption: for a value that is not an int in its range
    """

    max_user_id: int = MAX_USER_ID
    mark_chunk_size: int = 10_000
    members_chunk_bytes: int = 64 * 1024
    nowait_max_queue: int = 100_000

    def __post_init__(self) -> None:
        if not _is_int(self.max_user_id) or not 1 <= self.max_user_id <= MAX_USER_ID:
            raise InvalidOption("max_user_id", self.max_user_id, "an int from 1 to 2**63-1")
        _check_count("mark_chunk_size", self.mark_chunk_size)
        _check_count("members_chunk_bytes", self.members_chunk_bytes)
        _check_count("nowait_max_queue", self.nowait_max_queue)


_GRANULARITIES: frozenset[str] = frozenset(("hour", "day", "week", "month"))


def check_options(
    *,
    tz: object,
    flags: Mapping[str, object],
    schema: object,
    coalesce: object,
    limits: object,
    expire_after: object,
    replicas_ack: object,
    capabilities: object,
    reads: object,
) -> tuple[_dt.tzinfo, Coalesce | None]:
    """Check a tracker's options; return its zone and its coalescing (``None``: off).

    :raises InvalidOption: for an option of the wrong type or out of its range
    :raises InvalidTimeZone: for an unknown zone
    """
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise InvalidOption(name, flag, "True or False")
    if schema is not None and not isinstance(schema, KeySchema):
        raise InvalidOption("schema", schema, "a bitlens KeySchema or None")
    if coalesce is True:
        coalescing: Coalesce | None = Coalesce()
    elif coalesce is False:
        coalescing = None
    elif isinstance(coalesce, Coalesce):
        coalescing = coalesce
    else:
        raise InvalidOption("coalesce", coalesce, "True, False or a bitlens.Coalesce")
    if not isinstance(limits, Limits):
        raise InvalidOption("limits", limits, "a bitlens.Limits")
    if not _is_int(replicas_ack) or cast("int", replicas_ack) < 0:
        raise InvalidOption("replicas_ack", replicas_ack, "an int >= 0")
    if capabilities is not None and not (
        isinstance(capabilities, Capabilities)
        and isinstance(capabilities.diff, bool)
        and isinstance(capabilities.andor, bool)
    ):
        raise InvalidOption("capabilities", capabilities, "a bitlens Capabilities or None")
    if not isinstance(reads, str) or reads not in ("server", "client"):
        raise InvalidOption("reads", reads, "'server' or 'client'")
    if expire_after is not None:
        _check_expiry(expire_after)
    zone = resolve_tz(cast("TzLike", tz))
    try:
        zone.utcoffset(_dt.datetime(2000, 1, 1))
    except Exception as exc:  # a tzinfo subclass that cannot answer (e.g. bare tzinfo())
        raise InvalidOption("tz", tz, f"a tzinfo that gives UTC offsets ({exc!r})") from None
    return zone, coalescing


def _check_expiry(expire_after: object) -> None:
    if not isinstance(expire_after, Mapping):
        raise InvalidOption(
            "expire_after", expire_after, "a mapping of granularities to timedeltas, or None"
        )
    for granularity, ttl in cast("Mapping[object, object]", expire_after).items():
        if granularity not in _GRANULARITIES:
            raise InvalidOption(
                "expire_after",
                expire_after,
                f"keys among 'hour', 'day', 'week' and 'month', not {granularity!r}",
            )
        if not isinstance(ttl, _dt.timedelta) or ttl <= _dt.timedelta(0):
            raise InvalidOption(
                f"expire_after[{granularity!r}]", ttl, "a positive datetime.timedelta"
            )


_GRANULARITY_OF: dict[type[Period], Granularity] = {
    Hour: "hour",
    Day: "day",
    Week: "week",
    Month: "month",
}


def check_deadlines(
    periods: tuple[Period | None, ...], expire_after: Mapping[Granularity, _dt.timedelta]
) -> None:
    """Check that every deadline a mark's keys would get (period end + TTL) can be sent.

    The same arithmetic as the write batch's ``EXPIREAT``, done at the call so that a mark
    that cannot expire is refused there, never later in a sender.

    :raises InvalidPeriod: if a deadline falls past year 9999
    """
    for period in periods:
        if period is None:
            continue
        granularity = _GRANULARITY_OF.get(type(period))
        ttl = expire_after.get(granularity) if granularity is not None else None
        if granularity is None or ttl is None:
            continue
        try:
            int((period.end + ttl).timestamp())
        except (InvalidPeriod, OverflowError, ValueError, OSError):
            raise ExpiryPastCalendar(granularity, period, ttl) from None
