"""Retention as product teams read it, answered with one batch of counts.

Every number of the table — cohort sizes and cells — is an expression, and the whole
table is one :meth:`Tracker.count_many`: one round trip per Redis node, however many
cohorts and buckets. Equal subtrees (the same cohort, the same "returned from day X on")
are computed once per shard.

Definitions (as Mixpanel, Amplitude and PostHog define them):

* cohort ``P`` (recurring): did ``start`` in period ``P``; (first time): did it in ``P``
  and in no period from ``history_start`` up to ``P``:
  ``start(P) & ~before & ~between(P)``, where ``before`` is the OR of ``start`` over
  ``[history_start, first cohort)`` (shared by every row) and ``between(P)`` its OR over
  ``[first cohort, P)``. The complement is within the universe of marked ids, so it is
  exact: the cohort's ids are marked ids.
* bucket 0 is the cohort's own period. "on" ``k``: returned in period ``P+k``;
  "on or after" ``k``: in any period from ``P+k`` to the current one (a monotone curve);
  brackets ``(lo, hi)``: in any period from ``P+lo`` to ``P+hi``.
* "returned in a range of periods" is the OR of ``returning`` bound to each period. When
  ``returning`` distributes over periods (an event, an OR of events, an event AND a
  constant such as ``UniqueEvents``), the range is covered by the fewest month, ISO week
  and day bitmaps instead (exact, because every mark sets all three); a composite such as
  ``active & ios`` means "both in the same period", so it is bound period by period.
* A bucket (or cohort) whose first period has not started is not queried: its cell holds
  ``count=None``. A cell is complete once its last period is over; for "on or after" once
  period ``P+k`` is over (the tail keeps growing with time, as in Mixpanel).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, TypeAlias, cast

from .._cover import cover
from .._exceptions import InvalidExpression, InvalidRetentionQuery
from .._expr import BitOpAnd, BitOpDiff, BitOpNot, BitOpOr, BitOpXor, EventTemplate, Expr
from .._periods import Day, Month, Period, Week, to_local
from ._table import (
    CriterionName,
    Mode,
    PeriodName,
    RetentionCell,
    RetentionRow,
    RetentionTable,
)

if TYPE_CHECKING:
    from .._tracker import Tracker

__all__ = [
    "MAX_REPORT_SEGMENTS",
    "Criterion",
    "InvalidRetentionQuery",
    "Segment",
    "Segments",
    "as_template",
    "retention",
    "segments_of",
]

Criterion: TypeAlias = Literal["on", "on_or_after"] | Sequence[tuple[int, int]]
"""``"on"``, ``"on_or_after"``, or brackets such as ``[(1, 3), (4, 7), (8, 14)]``."""

_PERIODS: dict[str, type[Day] | type[Week] | type[Month]] = {
    "day": Day,
    "week": Week,
    "month": Month,
}
Segments: TypeAlias = "Mapping[str, Mapping[str, Expr] | Sequence[Expr]]"
"""``{dimension: {label: expression}}``, or ``{dimension: [expression, ...]}``."""

Segment: TypeAlias = "tuple[str, str] | None"
"""``(dimension, label)``, or ``None`` for the total."""

MAX_REPORT_SEGMENTS = 32
"""The most segments (over every dimension) one report or table may split its numbers by."""

_DEFAULT_BUCKETS = 13
_MAX_HISTORY_PERIODS = 1_000


def as_template(value: object) -> Expr:
    """Return ``value`` as an expression: a ``str`` is ``EventTemplate(value)``.

    :param value: an event name or any expression
    :raises InvalidExpression: for anything else
    :raises InvalidEventName: for a bad event name
    """
    if isinstance(value, str):
        return EventTemplate(value)
    if isinstance(value, Expr):
        return value
    raise InvalidExpression(value)


def _varies(expr: Expr) -> bool:
    """Whether ``expr`` holds an :class:`EventTemplate` (its value depends on the period)."""
    if isinstance(expr, EventTemplate):
        return True
    if isinstance(expr, (BitOpAnd, BitOpOr, BitOpXor)):
        return any(map(_varies, expr.operands))
    if isinstance(expr, BitOpDiff):
        return _varies(expr.base) or any(map(_varies, expr.subtract))
    if isinstance(expr, BitOpNot):
        return _varies(expr.operand) or _varies(expr.universe)
    return False


def distributive(expr: Expr) -> bool:
    """Whether binding ``expr`` to a union of periods equals the union of its bindings.

    True for an event, a constant, an OR of such, an AND of one such and constants, and
    ``x - constant``; false for ``a & b`` of two events ("both in the same period"),
    ``~a`` and XOR. Such an expression can be bound to a month or a week instead of the
    OR of its days.

    :param expr: a template
    """
    if not _varies(expr) or isinstance(expr, EventTemplate):
        return True
    if isinstance(expr, BitOpOr):
        return all(map(distributive, expr.operands))
    if isinstance(expr, BitOpAnd):
        varying = [o for o in expr.operands if _varies(o)]
        return len(varying) == 1 and distributive(varying[0])
    if isinstance(expr, BitOpDiff):
        return distributive(expr.base) and not any(map(_varies, expr.subtract))
    if isinstance(expr, BitOpNot):
        return not _varies(expr.operand) and distributive(expr.universe)
    return False


def segments_of(by: Segments | None) -> list[tuple[Segment, Expr | None]]:
    """The total (``None``) and each segment of ``by`` with its expression, checked.

    :param by: ``{dimension: {label: expression}}`` or ``{dimension: [expression, ...]}``
    :raises InvalidRetentionQuery: for a malformed ``by``, a segment that depends on the
        period, or more than :data:`MAX_REPORT_SEGMENTS` segments
    :raises InvalidExpression: for a segment that is not an expression
    """
    found: list[tuple[Segment, Expr | None]] = [(None, None)]
    if by is None:
        return found
    if not isinstance(by, Mapping):
        raise InvalidRetentionQuery(
            f"by must map a dimension to its segments, e.g. {{'plan': {{'free': ...}}}}, got {by!r}"
        )
    for dimension, group in by.items():
        if isinstance(group, Mapping):
            items = [(str(label), expr) for label, expr in group.items()]
        elif isinstance(group, Sequence) and not isinstance(group, (str, bytes)):
            items = [(repr(expr), expr) for expr in group]
        else:
            raise InvalidRetentionQuery(
                f"segments of {dimension!r} must be a mapping or a list of expressions"
            )
        for label, expr in items:
            if not isinstance(expr, Expr):
                raise InvalidExpression(expr)
            if _varies(expr):
                raise InvalidRetentionQuery(
                    f"segment {dimension}={label} must not depend on the period (it holds an "
                    "EventTemplate): use UniqueEvents or a fixed period's events"
                )
            found.append(((str(dimension), label), expr))
    if len(found) - 1 > MAX_REPORT_SEGMENTS:
        raise InvalidRetentionQuery(
            f"{len(found) - 1} segments: a report splits by at most {MAX_REPORT_SEGMENTS}"
        )
    return found


def _span(first: Period, last: Period) -> int:
    return last.ordinal() - first.ordinal() + 1


def _union(template: Expr, first: Period, last: Period) -> Expr:
    """``template`` in any period from ``first`` to ``last`` (same class), as few leaves."""
    n = _span(first, last)
    if n == 1:
        return template.at(first)
    periods: Sequence[Period] = ()
    if distributive(template):
        periods = cover(first.start, last.end, first.tz)
    if not periods or len(periods) >= n:
        periods = [first.delta(i) for i in range(n)]
    return BitOpOr(*(template.at(p) for p in periods))


def _columns(
    criterion: Criterion, buckets: int | None
) -> tuple[CriterionName, tuple[tuple[int, int | None], ...]]:
    if isinstance(criterion, str):
        if criterion not in ("on", "on_or_after"):
            raise InvalidRetentionQuery(
                f"criterion must be 'on', 'on_or_after' or a list of (first, last) "
                f"brackets, got {criterion!r}"
            )
        n = _DEFAULT_BUCKETS if buckets is None else _positive("buckets", buckets)
        if criterion == "on":
            return "on", tuple((k, k) for k in range(n))
        return "on_or_after", tuple((k, None) for k in range(n))
    if buckets is not None:
        raise InvalidRetentionQuery("give buckets or brackets, not both: brackets set the columns")
    brackets = list(cast("Sequence[object]", criterion))
    if not brackets:
        raise InvalidRetentionQuery("brackets must not be empty")
    columns: list[tuple[int, int | None]] = []
    for bracket in brackets:
        if (
            not isinstance(bracket, (tuple, list))
            or len(cast("Sequence[object]", bracket)) != 2
            or not all(_is_int(x) for x in cast("Sequence[object]", bracket))
        ):
            raise InvalidRetentionQuery(
                f"a bracket is a (first, last) pair of ints, got {bracket!r}"
            )
        lo, hi = cast("Sequence[int]", bracket)
        if not 0 <= lo <= hi:
            raise InvalidRetentionQuery(f"a bracket needs 0 <= first <= last, got {bracket!r}")
        columns.append((lo, hi))
    return "brackets", tuple(columns)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(name: str, value: object) -> int:
    if not _is_int(value) or cast("int", value) < 1:
        raise InvalidRetentionQuery(f"{name} must be a positive int, got {value!r}")
    return cast("int", value)


class _Cohorts:
    """Builds each row's cohort expression, for either mode."""

    def __init__(
        self,
        start: Expr,
        mode: Mode,
        first: Period,
        history_start: _dt.date | _dt.datetime | None,
    ) -> None:
        self.start = start
        self.first = first
        self.before: Expr | None = None
        if mode == "recurring":
            if history_start is not None:
                raise InvalidRetentionQuery("history_start is for mode='first_time' only")
            self.first_time = False
            return
        if mode != "first_time":
            raise InvalidRetentionQuery(f"mode must be 'recurring' or 'first_time', got {mode!r}")
        if history_start is None:
            raise InvalidRetentionQuery(
                "mode='first_time' needs history_start=<the date your data begins>: a cohort "
                "is who did the start event in its period and in no period since then"
            )
        self.first_time = True
        oldest = type(first).from_datetime(history_start, first.tz)
        if oldest > first:
            raise InvalidRetentionQuery(
                f"history_start {history_start} falls after the first cohort {first}"
            )
        if oldest < first:
            last = first.prev()
            if not distributive(start) and _span(oldest, last) > _MAX_HISTORY_PERIODS:
                raise InvalidRetentionQuery(
                    f"{_span(oldest, last)} periods of history for a composite start event: "
                    f"give a later history_start (at most {_MAX_HISTORY_PERIODS} periods)"
                )
            self.before = _union(start, oldest, last)

    def of(self, period: Period) -> Expr:
        """The cohort of ``period``."""
        cohort = self.start.at(period)
        if not self.first_time:
            return cohort
        gone = [] if self.before is None else [BitOpNot(self.before)]
        if period > self.first:
            gone.append(BitOpNot(_union(self.start, self.first, period.prev())))
        return BitOpAnd(cohort, *gone) if gone else cohort


async def retention(
    tracker: Tracker,
    start: str | Expr,
    returning: str | Expr | None = None,
    *,
    period: PeriodName = "day",
    cohorts: int = 31,
    buckets: int | None = None,
    end: _dt.date | _dt.datetime | None = None,
    mode: Mode = "recurring",
    criterion: Criterion = "on",
    history_start: _dt.date | _dt.datetime | None = None,
    now: _dt.datetime | None = None,
    by: Segments | None = None,
) -> RetentionTable:
    r"""Return the retention table of ``start`` -> ``returning``, in one round trip per node.

    "What share of the users who did ``start`` in period P did ``returning`` in period
    P+k?" Rows are the ``cohorts`` periods ending with the one holding ``end``; columns
    are buckets 0..``buckets``-1 (bucket 0 is the cohort's own period) or brackets.

    Example::

        on_ios = EventTemplate("active") & EventTemplate("ios")
        table = await retention(tracker, "signed_up", on_ios, period="week", cohorts=8)
        print(table.to_csv())

    :param tracker: the tracker to ask
    :param start: the event that puts a user in a cohort: a name, or any expression over
        :class:`bitlens.EventTemplate`\ s (``EventTemplate("active") & EventTemplate("ios")``)
    :param returning: the event that counts as coming back (default: ``start``)
    :param period: ``"day"``, ``"week"`` (ISO) or ``"month"``, in the tracker's time zone
    :param cohorts: how many cohort rows
    :param buckets: how many bucket columns, bucket 0 included (default 13); not with
        brackets
    :param end: a moment in the last cohort's period (default: now)
    :param mode: ``"recurring"`` (did ``start`` in the period) or ``"first_time"`` (did it
        in the period and in no period since ``history_start``)
    :param criterion: ``"on"`` (returned in exactly bucket k), ``"on_or_after"`` (in k or
        any later period up to the current one) or brackets ``[(1, 3), (4, 7)]`` (in any
        period of the range)
    :param history_start: for ``"first_time"``: when your data begins (its period is the
        first one searched for an earlier start event)
    :param now: the clock, which decides which buckets have started and ended (default:
        the current time in the tracker's zone)
    :param by: segments (see :data:`Segments`): each gets its own table in
        :attr:`RetentionTable.segments`, its cohorts and returns restricted to the segment,
        in the same round trip
    :raises InvalidRetentionQuery: for arguments that do not make a table, before any I/O
    :raises InvalidExpression: if ``start`` or ``returning`` is not a name or expression
    :raises InvalidEventName: for a bad event name
    """
    ptype = _PERIODS.get(cast("str", period))
    if ptype is None:
        raise InvalidRetentionQuery(f"period must be 'day', 'week' or 'month', got {period!r}")
    n_cohorts = _positive("cohorts", cohorts)
    criterion_name, columns = _columns(criterion, buckets)
    start_t = as_template(start)
    returning_t = start_t if returning is None else as_template(returning)
    tz = tracker.tz
    clock = _dt.datetime.now(tz) if now is None else to_local(now, tz)
    current = ptype.from_datetime(clock, tz)
    last_cohort = ptype.from_datetime(clock if end is None else end, tz)
    periods = [last_cohort.delta(i - n_cohorts + 1) for i in range(n_cohorts)]
    maker = _Cohorts(start_t, mode, periods[0], history_start)

    questions: dict[Expr, int] = {}
    unions: dict[tuple[Period, Period], Expr] = {}

    def ask(expr: Expr) -> int:
        return questions.setdefault(expr, len(questions))

    def returned(first: Period, last: Period) -> Expr:
        found = unions.get((first, last))
        if found is None:
            found = unions[first, last] = _union(returning_t, first, last)
        return found

    segments = segments_of(by)
    # Per segment and row: the size's question (or None), and per column the cell's question.
    plans: list[list[tuple[int | None, list[int | None]]]] = []
    for _, within in segments:
        plan: list[tuple[int | None, list[int | None]]] = []
        for cohort_period in periods:
            if cohort_period > current:
                plan.append((None, [None] * len(columns)))
                continue
            cohort = maker.of(cohort_period)
            if within is not None:
                cohort = cohort & within
            cells: list[int | None] = []
            for lo, hi in columns:
                first = cohort_period.delta(lo)
                if first > current:
                    cells.append(None)
                    continue
                last = current if hi is None else min(cohort_period.delta(hi), current)
                cells.append(ask(cohort & returned(first, last)))
            plan.append((ask(cohort), cells))
        plans.append(plan)

    counts = await tracker.count_many(list(questions)) if questions else []

    def table(plan: list[tuple[int | None, list[int | None]]]) -> RetentionTable:
        rows: list[RetentionRow] = []
        for cohort_period, (size_q, cell_qs) in zip(periods, plan, strict=True):
            size = 0 if size_q is None else counts[size_q]
            row_cells: list[RetentionCell] = []
            for j, ((lo, hi), q) in enumerate(zip(columns, cell_qs, strict=True)):
                count = None if q is None else counts[q]
                closing = cohort_period.delta(lo if hi is None else hi)
                row_cells.append(
                    RetentionCell(
                        bucket=j,
                        count=count,
                        percent=count / size * 100 if count is not None and size else None,
                        complete=count is not None and closing < current,
                    )
                )
            rows.append(
                RetentionRow(cohort_period, size, cohort_period < current, tuple(row_cells))
            )
        return RetentionTable(
            period=period,
            mode=mode,
            criterion=criterion_name,
            columns=columns,
            rows=tuple(rows),
            start=start_t,
            returning=returning_t,
            now=clock,
        )

    total, *parts = (table(plan) for plan in plans)
    if not parts:
        return total
    labels = [f"{segment[0]}={segment[1]}" for segment, _ in segments[1:] if segment is not None]
    return dataclasses.replace(total, segments=tuple(zip(labels, parts, strict=True)))
