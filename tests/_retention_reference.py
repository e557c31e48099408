"""A reference retention table, computed from Python sets of marks (no Redis, no planner).

Marks are indexed per (event, period) once; a template is evaluated in one period of the
table's own granularity at a time, and a range of periods is the union of those sets. No
month or week bitmap stands in for days, no complement trick: if bitlens' coarser covers,
shared subtrees or universe complements were wrong, the two would disagree.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from bitlens import BitOpAnd, BitOpDiff, BitOpNot, BitOpOr, EventTemplate, Expr, Universe

if TYPE_CHECKING:
    from bitlens import Day, Month, Period, Week

__all__ = ["Index", "PeriodType", "RefRow", "reference_table"]

PeriodType: TypeAlias = "type[Day] | type[Week] | type[Month]"


@dataclass
class Index:
    """Who did which event in which period, for one period granularity.

    :param ptype: ``Day``, ``Week`` or ``Month``
    :param tz: the tracker's time zone
    """

    ptype: PeriodType
    tz: dt.tzinfo = dt.timezone.utc
    sets: dict[tuple[str, Period], set[int]] = field(default_factory=lambda: defaultdict(set))
    everyone: set[int] = field(default_factory=lambda: set[int]())

    def add(self, event: str, user_id: int, at: dt.datetime) -> None:
        """Record one mark."""
        self.sets[event, self.ptype.from_datetime(at, self.tz)].add(user_id)
        self.everyone.add(user_id)

    def ids(self, template: Expr, period: Period) -> set[int]:
        """Return the ids of ``template`` in ``period``."""
        if isinstance(template, EventTemplate):
            return set(self.sets.get((template.event, period), set()))
        if isinstance(template, Universe):
            return set(self.everyone)
        if isinstance(template, BitOpAnd):
            return set.intersection(*(self.ids(o, period) for o in template.operands))
        if isinstance(template, BitOpOr):
            return set().union(*(self.ids(o, period) for o in template.operands))
        if isinstance(template, BitOpDiff):
            gone = set().union(*(self.ids(s, period) for s in template.subtract))
            return self.ids(template.base, period) - gone
        if isinstance(template, BitOpNot):
            return self.ids(template.universe, period) - self.ids(template.operand, period)
        raise TypeError(f"no reference for {template!r}")

    def between(self, template: Expr, first: Period, last: Period) -> set[int]:
        """Return the ids of ``template`` in any period from ``first`` to ``last``."""
        found: set[int] = set()
        period = first
        while period <= last:
            found |= self.ids(template, period)
            period = period.next()
        return found


@dataclass(frozen=True)
class RefRow:
    """One expected row: the cohort, its size, and per column the count and completeness."""

    cohort: Period
    size: int
    counts: tuple[int | None, ...]
    complete: tuple[bool, ...]


def reference_table(
    index: Index,
    start: Expr,
    returning: Expr,
    *,
    cohorts: int,
    columns: tuple[tuple[int, int | None], ...],
    now: dt.datetime,
    end: dt.datetime | None = None,
    history_start: dt.date | None = None,
) -> list[RefRow]:
    """Return the retention table by its definition, from sets.

    :param index: the marks, indexed at the table's granularity
    :param start: the start template
    :param returning: the returning template
    :param cohorts: the number of rows
    :param columns: per column the first and last offset (``None``: up to the current period)
    :param now: the clock
    :param end: a moment of the last cohort (default ``now``)
    :param history_start: for first-time cohorts, where the search for earlier starts begins
    """
    ptype = index.ptype
    current = ptype.from_datetime(now, index.tz)
    last = ptype.from_datetime(end or now, index.tz)
    rows: list[RefRow] = []
    for i in range(cohorts):
        period = last.delta(i - cohorts + 1)
        if period > current:
            rows.append(RefRow(period, 0, (None,) * len(columns), (False,) * len(columns)))
            continue
        cohort = index.ids(start, period)
        if history_start is not None:
            oldest = ptype.from_datetime(history_start, index.tz)
            if oldest < period:
                cohort -= index.between(start, oldest, period.prev())
        counts: list[int | None] = []
        complete: list[bool] = []
        for lo, hi in columns:
            first = period.delta(lo)
            if first > current:
                counts.append(None)
                complete.append(False)
                continue
            top = current if hi is None else min(period.delta(hi), current)
            counts.append(len(cohort & index.between(returning, first, top)))
            complete.append(period.delta(lo if hi is None else hi) < current)
        rows.append(RefRow(period, len(cohort), tuple(counts), tuple(complete)))
    return rows
