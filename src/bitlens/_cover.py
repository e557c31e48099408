"""The covering set of a date range: the fewest whole periods that tile it exactly.

``cover(start, end)`` answers ``EventsBetween`` and retention windows with months where
whole months fit, ISO weeks where whole weeks fit, then days (and hours at the edges).
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Literal

from ._exceptions import EmptyRange, HourlyRangeNotTracked, RangeNotOnWholeHour
from ._periods import Day, Hour, Month, Period, TzLike, Week, resolve_tz, to_local

__all__ = ["cover"]


def _hours(first: int, stop: int, tz: tzinfo) -> list[Period]:
    """Build the hours with ordinals ``first`` to ``stop - 1``.

    :param first: the first hour ordinal
    :param stop: the exclusive last hour ordinal
    :param tz: the zone of the hours
    :returns: the hours in order
    """
    return [Hour.from_ordinal(h, tz) for h in range(first, stop)]


def _days_and_weeks(first: int, stop: int, tz: tzinfo, weeks: bool) -> list[Period]:
    """Cover the days with ordinals ``first`` to ``stop - 1`` by whole ISO weeks and days.

    :param first: the first day ordinal
    :param stop: the exclusive last day ordinal
    :param tz: the zone of the periods
    :param weeks: use whole ISO weeks where possible
    :returns: the periods in order
    """
    if not weeks:
        return [Day.from_ordinal(d, tz) for d in range(first, stop)]
    # Day ordinal 1 (0001-01-01) is a Monday, so week w starts on day ordinal 7 * w + 1.
    first_week = (first + 5) // 7  # the first Monday on or after `first`
    stop_week = (stop - 1) // 7  # the last Monday on or before `stop`
    if first_week >= stop_week:
        return [Day.from_ordinal(d, tz) for d in range(first, stop)]
    out: list[Period] = [Day.from_ordinal(d, tz) for d in range(first, first_week * 7 + 1)]
    out.extend(Week.from_ordinal(w, tz) for w in range(first_week, stop_week))
    out.extend(Day.from_ordinal(d, tz) for d in range(stop_week * 7 + 1, stop))
    return out


def _whole_days(first: int, stop: int, tz: tzinfo, weeks: bool) -> list[Period]:
    """Cover the days with ordinals ``first`` to ``stop - 1`` by months, weeks and days.

    :param first: the first day ordinal
    :param stop: the exclusive last day ordinal
    :param tz: the zone of the periods
    :param weeks: use whole ISO weeks where possible
    :returns: the periods in order
    """
    if first >= stop:
        return []
    lo, hi = date.fromordinal(first), date.fromordinal(stop)
    first_month = lo.year * 12 + lo.month - 1 + (lo.day != 1)
    stop_month = hi.year * 12 + hi.month - 1
    if first_month >= stop_month:
        return _days_and_weeks(first, stop, tz, weeks)
    year, month0 = divmod(first_month, 12)
    months_start = date(year, month0 + 1, 1).toordinal()
    months_stop = date(hi.year, hi.month, 1).toordinal()
    out = _days_and_weeks(first, months_start, tz, weeks)
    out.extend(Month.from_ordinal(m, tz) for m in range(first_month, stop_month))
    out.extend(_days_and_weeks(months_stop, stop, tz, weeks))
    return out


def cover(
    start: datetime | date,
    end: datetime | date,
    tz: TzLike = "UTC",
    *,
    hourly: bool = False,
    weeks: bool = True,
) -> tuple[Period, ...]:
    """Split the local range ``[start, end)`` into the fewest whole periods.

    Greedy: whole months inside the range first, then whole ISO weeks (if ``weeks``) in
    what is left, then days, then hours for partial days at the edges (if ``hourly``).
    Years are never used. The pieces are disjoint, their union is exactly the range on the
    local wall clock, and they come sorted by start::

        >>> [str(p) for p in cover(date(2026, 1, 30), date(2026, 3, 3))]
        ['2026-01-30', '2026-01-31', '2026-02', '2026-03-01', '2026-03-02']

    :param start: the first moment, converted with :func:`to_local`
    :param end: the exclusive last moment, converted with :func:`to_local`
    :param tz: the zone whose calendar the periods follow
    :param hourly: allow ``Hour`` periods, so that the range may start or end mid-day
    :param weeks: allow ``Week`` periods
    :raises InvalidPeriod: if the range is empty, a boundary is not on a whole hour, or the
        zone is unknown
    :raises GranularityNotTracked: if a boundary is not on local midnight and ``hourly`` is
        false
    :returns: the periods, each carrying ``tz``
    """
    zone = resolve_tz(tz)
    lo = to_local(start, zone).replace(tzinfo=None)
    hi = to_local(end, zone).replace(tzinfo=None)
    bounds: tuple[tuple[Literal["start", "end"], datetime], ...] = (("start", lo), ("end", hi))
    for side, bound in bounds:
        if bound.minute or bound.second or bound.microsecond:
            raise RangeNotOnWholeHour(side, bound, zone)
    if lo >= hi:
        raise EmptyRange(lo, hi, zone)
    if not hourly:
        for side, bound in bounds:
            if bound.hour:
                raise HourlyRangeNotTracked(lo, hi, zone, side)
    lo_hour = lo.toordinal() * 24 + lo.hour
    hi_hour = hi.toordinal() * 24 + hi.hour
    first_day = -(-lo_hour // 24)  # the first local midnight at or after `lo`
    stop_day = hi_hour // 24  # the last local midnight at or before `hi`
    if first_day >= stop_day:
        return tuple(_hours(lo_hour, hi_hour, zone))
    out = _hours(lo_hour, first_day * 24, zone)
    out.extend(_whole_days(first_day, stop_day, zone, weeks))
    out.extend(_hours(stop_day * 24, hi_hour, zone))
    return tuple(out)
