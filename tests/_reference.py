"""A reference model of bitlens' answers, built from Python sets.

Every query the tests send to Redis is also answered here, from the raw list of marks,
without bitmaps, shards or a planner; the two must agree exactly.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from bitlens import (
    BitOpAnd,
    BitOpDiff,
    BitOpNot,
    BitOpOr,
    BitOpXor,
    EventsBetween,
    Expr,
    Last,
    PeriodEvents,
    Universe,
    Year,
)
from bitlens._periods import Period, to_local

__all__ = ["Model"]


@dataclass
class Model:
    """The marks a test made, and the sets they imply.

    :param tz: the tracker's time zone
    :param hourly: whether the tracker keeps hour bitmaps
    """

    tz: dt.tzinfo = dt.timezone.utc
    hourly: bool = False
    marks: dict[str, list[tuple[int, dt.datetime]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    unique: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    everyone: set[int] = field(default_factory=lambda: set[int]())
    _seen: dict[tuple[str, Period], tuple[int, frozenset[int]]] = field(
        default_factory=lambda: dict[tuple[str, Period], tuple[int, frozenset[int]]](),
        repr=False,
        compare=False,
    )
    """The ids of each (event, period) asked, with how many marks the event had then."""

    def mark(self, event: str, user_id: int, at: dt.datetime, *, unique: bool = False) -> None:
        """Record a mark (and its unique bit when asked)."""
        self.marks[event].append((user_id, to_local(at, self.tz)))
        self.everyone.add(user_id)
        if unique:
            self.unique[event].add(user_id)

    def mark_unique(self, event: str, user_id: int) -> None:
        """Record a mark_unique."""
        self.unique[event].add(user_id)
        self.everyone.add(user_id)

    def _in_period(self, event: str, period: Period) -> set[int]:
        marks = self.marks[event]
        key = (event, period)
        known = self._seen.get(key)
        if known is not None and known[0] == len(marks):  # no mark since: the same set
            return set(known[1])
        if isinstance(period, Year):
            found = {uid for uid, at in marks if at.year == period.year}
        else:
            found = {uid for uid, at in marks if period.contains(at)}
        self._seen[key] = (len(marks), frozenset(found))
        return found

    def _between(self, event: str, start: dt.datetime, end: dt.datetime) -> set[int]:
        lo, hi = start.replace(tzinfo=None), end.replace(tzinfo=None)
        return {uid for uid, at in self.marks[event] if lo <= at.replace(tzinfo=None) < hi}

    def ids(self, expr: Expr, now: dt.datetime | None = None) -> set[int]:
        """Return the set of ids ``expr`` stands for.

        :param expr: any bitlens expression
        :param now: the clock for rolling windows
        """
        if isinstance(expr, PeriodEvents):
            if expr.period is None:
                return set(self.unique[expr.event])
            return self._in_period(expr.event, expr.period)
        if isinstance(expr, Universe):
            return set(self.everyone)
        if isinstance(expr, EventsBetween):
            return self._between(
                expr.event, to_local(expr.start, self.tz), to_local(expr.end, self.tz)
            )
        if isinstance(expr, Last):
            moment = to_local(now or dt.datetime.now(self.tz), self.tz)
            start, end = expr.window(moment)
            return self._between(expr.event, start, end)
        if isinstance(expr, BitOpAnd):
            return set.intersection(*(self.ids(e, now) for e in expr.operands))
        if isinstance(expr, BitOpOr):
            union: set[int] = set()
            for e in expr.operands:
                union |= self.ids(e, now)
            return union
        if isinstance(expr, BitOpXor):
            result: set[int] = set()
            for e in expr.operands:
                result ^= self.ids(e, now)
            return result
        if isinstance(expr, BitOpDiff):
            gone: set[int] = set()
            for e in expr.subtract:
                gone |= self.ids(e, now)
            return self.ids(expr.base, now) - gone
        if isinstance(expr, BitOpNot):
            return self.ids(expr.universe, now) - self.ids(expr.operand, now)
        raise TypeError(f"no reference for {expr!r}")
