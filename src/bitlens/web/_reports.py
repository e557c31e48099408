"""The product-report endpoints of the web JSON API: engagement, lifecycle, stickiness, funnel.

Each is one :mod:`bitlens.cohort` report (one round trip per node) turned into JSON the
dashboard draws: a list of period ``labels`` and, per segment, the series over them. The
first segment is always the total (``"segment": null``); the others are the users marked
with :meth:`~bitlens.Tracker.mark_unique` under each name given as ``segment``.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Final, Literal, TypedDict

from .._expr import UniqueEvents
from .._periods import Day, Month, Period, Week
from ..cohort import engagement as _engagement
from ..cohort import funnel as _funnel
from ..cohort import lifecycle as _lifecycle
from ..cohort import stickiness as _stickiness
from ._params import (
    InvalidParameter,
    Query,
    parse_choice,
    parse_date,
    parse_event,
    parse_events,
    parse_one,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._tracker import Tracker
    from ..cohort import PeriodName, Segments
    from ..cohort._retention import Segment

__all__ = [
    "MAX_FUNNEL_STEPS",
    "MAX_SEGMENTS",
    "EngagementReply",
    "EngagementSeries",
    "FunnelEntry",
    "FunnelReply",
    "FunnelSeries",
    "LifecycleReply",
    "LifecycleSeries",
    "StickinessReply",
    "StickinessSeries",
    "engagement_reply",
    "funnel_reply",
    "lifecycle_reply",
    "stickiness_reply",
]

MAX_SEGMENTS: Final = 8
"""The most ``segment`` names one report request may split by."""
MAX_FUNNEL_STEPS: Final = 10
"""The most ``step`` events one ``/funnel`` request may hold."""

_PERIOD_NAMES: tuple[PeriodName, ...] = ("day", "week", "month")
_LIFECYCLE_PERIODS: tuple[PeriodName, ...] = ("week", "day", "month")
_PERIOD_TYPES: dict[str, type[Day] | type[Week] | type[Month]] = {
    "day": Day,
    "week": Week,
    "month": Month,
}
_DEFAULT_SPAN = {"day": 30, "week": 12, "month": 12}
_ORDERS: tuple[Literal["period", "any"], ...] = ("period", "any")


class EngagementSeries(TypedDict):
    """One segment's engagement: distinct users per window and the ratios, per point."""

    segment: str | None
    counts: dict[str, list[int]]
    ratios: dict[str, list[float | None]]


class EngagementReply(TypedDict):
    """The answer of ``/engagement``: rolling DAU/WAU/MAU and their ratios per point."""

    event: str
    every: PeriodName
    labels: list[str]
    windows: list[str]
    ratios: list[str]
    segments: list[EngagementSeries]


class LifecycleSeries(TypedDict):
    """One segment's lifecycle per period; ``dormant`` is negative."""

    segment: str | None
    new: list[int]
    returning: list[int]
    resurrecting: list[int]
    dormant: list[int]


class LifecycleReply(TypedDict):
    """The answer of ``/lifecycle``: new, returning, resurrecting and dormant users."""

    event: str
    every: PeriodName
    first: str
    labels: list[str]
    segments: list[LifecycleSeries]


class StickinessSeries(TypedDict):
    """One segment's histogram: ``exactly[k-1]`` users active in exactly k periods."""

    segment: str | None
    exactly: list[int]
    at_least: list[int]


class StickinessReply(TypedDict):
    """The answer of ``/stickiness``: users active in exactly (and at least) k periods."""

    event: str
    every: PeriodName
    labels: list[str]
    segments: list[StickinessSeries]


class FunnelEntry(TypedDict):
    """Users at each step among those who entered in one period (``within`` only)."""

    entered: str
    counts: list[int]


class FunnelSeries(TypedDict):
    """One segment's funnel: users at each step, each step's share of the one before
    (``conversion``) and of the first (``overall``)."""

    segment: str | None
    counts: list[int]
    conversion: list[float | None]
    overall: list[float | None]
    entries: list[FunnelEntry]


class FunnelReply(TypedDict):
    """The answer of ``/funnel``: the steps, in order, per segment."""

    steps: list[str]
    every: PeriodName
    ordered: Literal["period", "any"]
    within: int | None
    start: str
    end: str
    segments: list[FunnelSeries]


def _by(segments: Sequence[str]) -> Segments | None:
    if not segments:
        return None
    return {"segment": {name: UniqueEvents(name) for name in segments}}


def _name(segment: Segment) -> str | None:
    return None if segment is None else segment[1]


def _order(segments: Sequence[str]) -> list[str | None]:
    return [None, *segments]


async def engagement_reply(
    tracker: Tracker,
    event: str,
    start: _dt.date,
    end: _dt.date,
    *,
    every: PeriodName = "day",
    segments: Sequence[str] = (),
) -> EngagementReply:
    """Return :func:`bitlens.cohort.engagement` of ``event`` as JSON, one series per segment.

    :param tracker: the tracker to ask
    :param event: the event name
    :param start: a date in the first point
    :param end: a date in the last point
    :param every: the points' granularity
    :param segments: unique-event names to split by (the total always comes first)
    :raises InvalidRetentionQuery: for a range that makes no report
    """
    report = await _engagement(tracker, event, start, end, every=every, by=_by(segments))
    ratios = report.ratios()
    series: dict[str | None, EngagementSeries] = {
        name: EngagementSeries(
            segment=name,
            counts={w: [] for w in report.windows},
            ratios={f"{a}/{b}": [] for a, b in ratios},
        )
        for name in _order(segments)
    }
    labels: list[str] = []
    for point in report.points:
        one = series[_name(point.segment)]
        if point.segment is None:
            labels.append(str(point.period))
        for window in report.windows:
            one["counts"][window].append(point.counts[window])
        for a, b in ratios:
            one["ratios"][f"{a}/{b}"].append(point.ratio(a, b))
    return EngagementReply(
        event=event,
        every=every,
        labels=labels,
        windows=list(report.windows),
        ratios=[f"{a}/{b}" for a, b in ratios],
        segments=list(series.values()),
    )


async def lifecycle_reply(
    tracker: Tracker,
    event: str,
    start: _dt.date,
    end: _dt.date,
    *,
    every: PeriodName = "week",
    first: str | _dt.date,
    segments: Sequence[str] = (),
) -> LifecycleReply:
    """Return :func:`bitlens.cohort.lifecycle` of ``event`` as JSON, one series per segment.

    :param tracker: the tracker to ask
    :param event: the event name
    :param start: a date in the first period
    :param end: a date in the last period
    :param every: the periods
    :param first: the sign-up event that makes a user new, or the date the data begins
    :param segments: unique-event names to split by (the total always comes first)
    :raises InvalidRetentionQuery: for a range that makes no report
    """
    report = await _lifecycle(
        tracker, event, start, end, every=every, first=first, by=_by(segments)
    )
    series: dict[str | None, LifecycleSeries] = {
        name: LifecycleSeries(segment=name, new=[], returning=[], resurrecting=[], dormant=[])
        for name in _order(segments)
    }
    labels: list[str] = []
    for point in report.points:
        one = series[_name(point.segment)]
        if point.segment is None:
            labels.append(str(point.period))
        one["new"].append(point.new)
        one["returning"].append(point.returning)
        one["resurrecting"].append(point.resurrecting)
        one["dormant"].append(point.dormant)
    return LifecycleReply(
        event=event,
        every=every,
        first=first if isinstance(first, str) else first.isoformat(),
        labels=labels,
        segments=list(series.values()),
    )


async def stickiness_reply(
    tracker: Tracker,
    event: str,
    start: _dt.date,
    end: _dt.date,
    *,
    every: PeriodName = "day",
    segments: Sequence[str] = (),
) -> StickinessReply:
    """Return :func:`bitlens.cohort.stickiness` of ``event`` as JSON, one row per segment.

    :param tracker: the tracker to ask
    :param event: the event name
    :param start: a date in the first period
    :param end: a date in the last period
    :param every: the periods
    :param segments: unique-event names to split by (the total always comes first)
    :raises InvalidRetentionQuery: for a range that makes no report
    """
    report = await _stickiness(tracker, event, start, end, every=every, by=_by(segments))
    return StickinessReply(
        event=event,
        every=every,
        labels=[str(p) for p in report.periods],
        segments=[
            StickinessSeries(
                segment=_name(row.segment),
                exactly=list(row.exactly),
                at_least=list(row.at_least),
            )
            for row in report.rows
        ],
    )


async def funnel_reply(
    tracker: Tracker,
    steps: Sequence[str],
    start: _dt.date,
    end: _dt.date,
    *,
    every: PeriodName = "day",
    within: str | None = None,
    ordered: Literal["period", "any"] = "period",
    segments: Sequence[str] = (),
) -> FunnelReply:
    """Return :func:`bitlens.cohort.funnel` over ``steps`` as JSON, one row per segment.

    :param tracker: the tracker to ask
    :param steps: the step event names, in order (two or more)
    :param start: a date in the first period
    :param end: a date in the last period
    :param every: the periods the order is known at
    :param within: a conversion window such as ``"7d"`` (then ``entries`` holds a row per
        entry period)
    :param ordered: ``"period"``: each step at or after the step before; ``"any"``: any order
    :param segments: unique-event names to split by (the total always comes first)
    :raises InvalidRetentionQuery: for steps or a window that make no funnel
    """
    report = await _funnel(
        tracker,
        list(steps),
        start,
        end,
        every=every,
        within=within,
        ordered="period" if ordered == "period" else False,
        by=_by(segments),
    )
    series: dict[str | None, FunnelSeries] = {}
    for row in report.rows:
        name = _name(row.segment)
        if row.entered is None:
            series[name] = FunnelSeries(
                segment=name,
                counts=list(row.counts),
                conversion=list(row.conversion()),
                overall=list(row.overall()),
                entries=series[name]["entries"] if name in series else [],
            )
        else:
            holder = series.setdefault(
                name, FunnelSeries(segment=name, counts=[], conversion=[], overall=[], entries=[])
            )
            holder["entries"].append(FunnelEntry(entered=str(row.entered), counts=list(row.counts)))
    ptype = _PERIOD_TYPES[every]
    return FunnelReply(
        steps=list(steps),
        every=every,
        ordered=ordered,
        within=report.within,
        start=str(ptype.from_datetime(start, tracker.tz)),
        end=str(ptype.from_datetime(end, tracker.tz)),
        segments=[series[name] for name in _order(segments)],
    )


# -- query strings -------------------------------------------------------------------------


def _range(tracker: Tracker, query: Query, every: PeriodName) -> tuple[_dt.date, _dt.date]:
    end = parse_date(query, "end", _dt.datetime.now(tracker.tz).date())
    first: Period = _PERIOD_TYPES[every].from_datetime(end, tracker.tz)
    start = parse_date(query, "start", first.delta(1 - _DEFAULT_SPAN[every]).start.date())
    if start > end:
        raise InvalidParameter("start", f"{start} is after end {end}")
    return start, end


def _segments(query: Query) -> list[str]:
    if not any(value != "" for value in query.get("segment", ())):
        return []
    return parse_events(query, "segment", limit=MAX_SEGMENTS)


async def engagement_endpoint(tracker: Tracker, query: Query) -> EngagementReply:
    """``/engagement?event=&every=&start=&end=&segment=``."""
    event = parse_event(query, "event")
    every = parse_choice(query, "every", _PERIOD_NAMES)
    start, end = _range(tracker, query, every)
    return await engagement_reply(
        tracker, event, start, end, every=every, segments=_segments(query)
    )


async def lifecycle_endpoint(tracker: Tracker, query: Query) -> LifecycleReply:
    """``/lifecycle?event=&every=&start=&end=&first=&segment=``."""
    event = parse_event(query, "event")
    every = parse_choice(query, "every", _LIFECYCLE_PERIODS)
    start, end = _range(tracker, query, every)
    text = parse_one(query, "first")
    first: str | _dt.date
    if text is None:
        first = start
    elif text[:1].isdigit():
        first = parse_date(query, "first", None)
    else:
        first = parse_event(query, "first")
    return await lifecycle_reply(
        tracker, event, start, end, every=every, first=first, segments=_segments(query)
    )


async def stickiness_endpoint(tracker: Tracker, query: Query) -> StickinessReply:
    """``/stickiness?event=&every=&start=&end=&segment=``."""
    event = parse_event(query, "event")
    every = parse_choice(query, "every", _PERIOD_NAMES)
    start, end = _range(tracker, query, every)
    return await stickiness_reply(
        tracker, event, start, end, every=every, segments=_segments(query)
    )


async def funnel_endpoint(tracker: Tracker, query: Query) -> FunnelReply:
    """``/funnel?step=&step=&every=&start=&end=&within=&ordered=&segment=``."""
    steps = [
        parse_event({"step": [value]}, "step") for value in query.get("step", ()) if value != ""
    ]
    if len(steps) < 2:
        raise InvalidParameter("step", "give two steps or more, in order")
    if len(steps) > MAX_FUNNEL_STEPS:
        raise InvalidParameter("step", f"at most {MAX_FUNNEL_STEPS} steps, got {len(steps)}")
    every = parse_choice(query, "every", _PERIOD_NAMES)
    start, end = _range(tracker, query, every)
    ordered = parse_choice(query, "ordered", _ORDERS)
    return await funnel_reply(
        tracker,
        steps,
        start,
        end,
        every=every,
        within=parse_one(query, "within"),
        ordered=ordered,
        segments=_segments(query),
    )
