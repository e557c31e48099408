"""The web JSON API the dashboard reads, independent of any web framework.

Each endpoint is a typed coroutine taking a :class:`~bitlens.Tracker` and validated Python
values and returning a JSON-ready dict; :func:`handle` parses a query string, calls one of
them and maps errors to HTTP statuses, so a web integration is a few lines per framework::

    status, body = await handle(tracker, "counts", {"event": ["active"], "period": ["week"]})
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Literal, NamedTuple, TypedDict, cast

import anyio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._exceptions import BitlensError, InvalidPeriod, TrackerClosed
from .._expr import EventTemplate
from .._keys import EventKey
from .._periods import Day, Month, Period, Week
from ._params import (
    InvalidParameter,
    Query,
    parse_choice,
    parse_date,
    parse_event,
    parse_events,
    parse_int,
    parse_one,
)
from ._reports import (
    engagement_endpoint,
    funnel_endpoint,
    lifecycle_endpoint,
    stickiness_endpoint,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .._tracker import Tracker
    from ..cohort import CriterionName, Mode, PeriodName, RowDict

__all__ = [
    "ENDPOINTS",
    "MAX_BUCKETS",
    "MAX_COHORTS",
    "MAX_EVENTS",
    "MAX_POINTS",
    "ContainsReply",
    "CountsReply",
    "EventsReply",
    "Reply",
    "RetentionReply",
    "SeriesDict",
    "contains",
    "counts",
    "handle",
    "list_events",
    "retention",
]

logger = logging.getLogger("bitlens")

MAX_EVENTS: Final = 20
"""The most events one ``/counts`` request may ask for."""
MAX_POINTS: Final = 1_000
"""The most periods one ``/counts`` series may hold."""
MAX_COHORTS: Final = 120
"""The most cohort rows one ``/retention`` request may ask for."""
MAX_BUCKETS: Final = 120
"""The most bucket columns one ``/retention`` request may ask for."""

_PERIOD_NAMES: tuple[PeriodName, ...] = ("day", "week", "month")
_PERIOD_TYPES: dict[str, type[Day] | type[Week] | type[Month]] = {
    "day": Day,
    "week": Week,
    "month": Month,
}
_CRITERIA: tuple[Literal["on", "on_or_after"], ...] = ("on", "on_or_after")
_MODES: tuple[Mode, ...] = ("recurring", "first_time")
# The default span of a chart when `start` is not given, in periods (end included).
_DEFAULT_SPAN = {"day": 30, "week": 12, "month": 12}


class EventsReply(TypedDict):
    """The answer of ``/events``: event names found under the tracker's prefix."""

    events: list[str]
    truncated: bool
    prefix: str


class SeriesDict(TypedDict):
    """One event's counts, one per period of :class:`CountsReply` ``labels``."""

    event: str
    counts: list[int]


class CountsReply(TypedDict):
    """The answer of ``/counts``: unique users per period for each event.

    ``complete[i]`` tells whether period ``labels[i]`` is over; the counts of a period
    that is not (the current one, or one yet to come) may still grow.
    """

    period: PeriodName
    start: str
    end: str
    labels: list[str]
    complete: list[bool]
    series: list[SeriesDict]


class ContainsReply(TypedDict):
    """The answer of ``/contains``: whether one user did an event in one period."""

    event: str
    period: PeriodName
    label: str
    user_id: int
    contains: bool


class RetentionReply(TypedDict):
    """The answer of ``/retention``: a retention table as JSON."""

    start: str
    returning: str
    period: PeriodName
    mode: Mode
    criterion: CriterionName
    columns: list[str]
    rows: list[RowDict]
    averages: list[float | None]
    now: str


class Reply(NamedTuple):
    """An HTTP answer: the status and a JSON-ready body (``{"error": ...}`` unless 200)."""

    status: int
    body: Mapping[str, object]


def _today(tracker: Tracker) -> _dt.date:
    return _dt.datetime.now(tracker.tz).date()


def _period(name: PeriodName, day: _dt.date, tracker: Tracker) -> Period:
    return _PERIOD_TYPES[name].from_datetime(day, tracker.tz)


def _over(period: Period, now: _dt.datetime) -> bool:
    """Whether ``period`` has ended at ``now`` (the last period of year 9999 never does)."""
    try:
        return period.end <= now
    except InvalidPeriod:
        return False


# -- /events -------------------------------------------------------------------------------


async def list_events(
    tracker: Tracker,
    *,
    limit: int = 1_000,
    max_keys: int = 100_000,
    max_seconds: float = 2.0,
) -> EventsReply:
    """Return the event names found under the tracker's prefix, sorted.

    Walks the keyspace with ``SCAN`` (never ``KEYS``) over the key schema's
    :attr:`~bitlens.KeySchema.event_scan_pattern` (month and unique bitmaps by default),
    and the schema reads each name out of its key. The walk is bounded: it stops after
    ``limit`` names, ``max_keys`` matching keys or ``max_seconds``, and then says
    ``truncated``.

    :param tracker: the tracker whose prefix to search
    :param limit: the most names returned
    :param max_keys: the most matching keys read
    :param max_seconds: the longest the walk may take
    """
    schema = tracker.schema
    names: set[str] = set()
    truncated = True
    seen = 0
    scan = cast(
        "Callable[..., AsyncIterator[bytes | str]]",
        tracker.client.scan_iter,  # pyright: ignore[reportUnknownMemberType]
    )
    keys = scan(match=schema.event_scan_pattern, count=1000, _type="string")
    with anyio.move_on_after(max_seconds):
        try:
            async for key in keys:
                seen += 1
                found = schema.parse_scanned(key)
                if isinstance(found, EventKey):
                    names.add(found.event)
                if len(names) >= limit or seen >= max_keys:
                    break
            else:
                truncated = False
        finally:
            aclose = cast("Callable[[], Awaitable[None]] | None", getattr(keys, "aclose", None))
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
    return EventsReply(events=sorted(names)[:limit], truncated=truncated, prefix=schema.prefix)


# -- /counts -------------------------------------------------------------------------------


async def counts(
    tracker: Tracker,
    events: Sequence[str],
    *,
    period: PeriodName = "day",
    start: _dt.date,
    end: _dt.date,
    now: _dt.datetime | None = None,
) -> CountsReply:
    """Return unique users per period for each event, from ``start``'s period to ``end``'s.

    Every number comes from one :meth:`~bitlens.Tracker.count_many`: one round trip.
    ``complete`` flags the periods that are over at ``now``.

    :param tracker: the tracker to ask
    :param events: the event names (at most :data:`MAX_EVENTS`)
    :param period: ``"day"``, ``"week"`` (ISO) or ``"month"``, in the tracker's time zone
    :param start: a date in the first period
    :param end: a date in the last period
    :param now: the clock deciding which periods are over (default: now)
    :raises InvalidParameter: if ``start`` is after ``end``, the range holds more than
        :data:`MAX_POINTS` periods, or there are too many or no events
    :raises InvalidEventName: for a bad event name
    """
    if not events:
        raise InvalidParameter("event", "give at least one event")
    if len(events) > MAX_EVENTS:
        raise InvalidParameter("event", f"at most {MAX_EVENTS} events per request")
    if start > end:
        raise InvalidParameter("start", f"{start} is after end {end}")
    first, last = _period(period, start, tracker), _period(period, end, tracker)
    periods = [first]
    while periods[-1] < last:
        if len(periods) >= MAX_POINTS:
            raise InvalidParameter("start", f"at most {MAX_POINTS} {period}s per series")
        periods.append(periods[-1].next())
    templates = [EventTemplate(name) for name in events]
    totals = await tracker.count_many([t.at(p) for t in templates for p in periods])
    n = len(periods)
    clock = _dt.datetime.now(tracker.tz) if now is None else now
    return CountsReply(
        period=period,
        start=str(first),
        end=str(last),
        labels=[str(p) for p in periods],
        complete=[_over(p, clock) for p in periods],
        series=[
            SeriesDict(event=name, counts=totals[i * n : (i + 1) * n])
            for i, name in enumerate(events)
        ],
    )


# -- /contains -----------------------------------------------------------------------------


async def contains(
    tracker: Tracker,
    event: str,
    user_id: int,
    *,
    period: PeriodName = "day",
    at: _dt.date,
) -> ContainsReply:
    """Return whether ``user_id`` did ``event`` in the period holding ``at``.

    :param tracker: the tracker to ask
    :param event: the event name
    :param user_id: the id to look up
    :param period: ``"day"``, ``"week"`` (ISO) or ``"month"``
    :param at: a date in the period
    :raises InvalidEventName: for a bad event name
    :raises InvalidUserId: for a bad id
    """
    when = _period(period, at, tracker)
    found = await tracker.contains(EventTemplate(event).at(when), user_id)
    return ContainsReply(
        event=event, period=period, label=str(when), user_id=user_id, contains=found
    )


# -- /retention ----------------------------------------------------------------------------


async def retention(
    tracker: Tracker,
    start: str,
    returning: str | None = None,
    *,
    period: PeriodName = "day",
    cohorts: int = 31,
    buckets: int | None = None,
    end: _dt.date | None = None,
    criterion: Literal["on", "on_or_after"] = "on",
    mode: Mode = "recurring",
    history_start: _dt.date | None = None,
) -> RetentionReply:
    """Return the retention table of ``start`` -> ``returning`` as JSON.

    A thin layer over :meth:`~bitlens.Tracker.retention` (one round trip per node); rows
    are :meth:`~bitlens.cohort.RetentionTable.to_dicts`, averages are weighted by cohort
    size over complete cells.

    :param tracker: the tracker to ask
    :param start: the event that puts a user in a cohort
    :param returning: the event that counts as coming back (default: ``start``)
    :param period: ``"day"``, ``"week"`` (ISO) or ``"month"``
    :param cohorts: how many cohort rows, ending with the period of ``end``
    :param buckets: how many bucket columns (default 13)
    :param end: a date in the last cohort's period (default: today)
    :param criterion: ``"on"`` or ``"on_or_after"``
    :param mode: ``"recurring"`` or ``"first_time"`` (needs ``history_start``)
    :param history_start: for ``"first_time"``: when the data begins
    :raises InvalidRetentionQuery: for arguments that do not make a table
    :raises InvalidEventName: for a bad event name
    """
    if criterion not in _CRITERIA:
        raise InvalidParameter("criterion", f"must be one of {', '.join(_CRITERIA)}")
    table = await tracker.retention(
        start,
        returning,
        period=period,
        cohorts=cohorts,
        buckets=buckets,
        end=end,
        criterion=criterion,
        mode=mode,
        history_start=history_start,
    )
    return RetentionReply(
        start=start,
        returning=start if returning is None else returning,
        period=period,
        mode=mode,
        criterion=table.criterion,
        columns=list(table.column_labels()),
        rows=table.to_dicts(),
        averages=list(table.averages()),
        now=table.now.isoformat(),
    )


# -- dispatch ------------------------------------------------------------------------------


async def _events_endpoint(tracker: Tracker, query: Query) -> Mapping[str, object]:
    limit = parse_int(query, "limit", 1_000, 1, 10_000)
    return await list_events(tracker, limit=limit)


async def _counts_endpoint(tracker: Tracker, query: Query) -> Mapping[str, object]:
    events = parse_events(query, "event", limit=MAX_EVENTS)
    period = parse_choice(query, "period", _PERIOD_NAMES)
    end = parse_date(query, "end", _today(tracker))
    first = _period(period, end, tracker).delta(1 - _DEFAULT_SPAN[period])
    start = parse_date(query, "start", first.start.date())
    return await counts(tracker, events, period=period, start=start, end=end)


async def _contains_endpoint(tracker: Tracker, query: Query) -> Mapping[str, object]:
    event = parse_event(query, "event")
    user_id = parse_int(query, "user_id", None, 0, tracker.max_user_id)
    period = parse_choice(query, "period", _PERIOD_NAMES)
    at = parse_date(query, "at", _today(tracker))
    return await contains(tracker, event, user_id, period=period, at=at)


async def _retention_endpoint(tracker: Tracker, query: Query) -> Mapping[str, object]:
    start = parse_event(query, "start")
    returning = parse_event(query, "returning", start)
    period = parse_choice(query, "period", _PERIOD_NAMES)
    cohorts = parse_int(query, "cohorts", 31, 1, MAX_COHORTS)
    buckets = parse_int(query, "buckets", 13, 1, MAX_BUCKETS)
    end = parse_date(query, "end", _today(tracker))
    criterion = parse_choice(query, "criterion", _CRITERIA)
    mode = parse_choice(query, "mode", _MODES)
    history = parse_one(query, "history_start")
    history_start = None if history is None else parse_date(query, "history_start", None)
    return await retention(
        tracker,
        start,
        returning,
        period=period,
        cohorts=cohorts,
        buckets=buckets,
        end=end,
        criterion=criterion,
        mode=mode,
        history_start=history_start,
    )


_Endpoint = Callable[["Tracker", Query], Awaitable[Mapping[str, object]]]

_ENDPOINTS: dict[str, _Endpoint] = {
    "events": _events_endpoint,
    "counts": _counts_endpoint,
    "contains": _contains_endpoint,
    "retention": _retention_endpoint,
    "engagement": engagement_endpoint,
    "lifecycle": lifecycle_endpoint,
    "stickiness": stickiness_endpoint,
    "funnel": funnel_endpoint,
}

ENDPOINTS: Final = tuple(_ENDPOINTS)
"""The names of the JSON endpoints, each served at ``<mount>/<name>``."""


async def handle(tracker: Tracker, endpoint: str, query: Query) -> Reply:
    """Answer one JSON API request: parse the query, ask the tracker, map errors.

    Usage errors (bad parameters, event names, ids, periods, retention arguments) are
    answered 400 with their message; an unreachable Redis or a closed tracker 503. Any
    other error propagates (the framework answers 500).

    :param tracker: the tracker to ask
    :param endpoint: one of :data:`ENDPOINTS` (anything else is answered 404)
    :param query: the parsed query string, e.g. ``{"event": ["active"], "period": ["week"]}``
    """
    run = _ENDPOINTS.get(endpoint)
    if run is None:
        return Reply(404, {"error": f"no endpoint {endpoint!r}"})
    try:
        return Reply(200, await run(tracker, query))
    except TrackerClosed:
        return Reply(503, {"error": "the tracker is closed"})
    except (RedisConnectionError, RedisTimeoutError) as exc:
        logger.warning("bitlens dashboard: %s failed: %s: %s", endpoint, type(exc).__name__, exc)
        return Reply(503, {"error": "Redis is unavailable; try again later"})
    except BitlensError as exc:
        if isinstance(exc, (ValueError, TypeError)):
            return Reply(400, {"error": str(exc)})
        raise
