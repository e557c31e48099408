r"""Product reports past retention: engagement, lifecycle, stickiness, funnels, segments.

Each report is exact set algebra over the bitmaps bitlens already keeps, planned here
(pure: expressions to resolved trees) and counted by the tracker's executor in one batch,
so the whole result is one round trip per node, however many points, periods, steps and
segments it has.

The trees are built from resolved nodes directly, so the planner keeps what they share
(a running union, a counter bit) instead of flattening it away; every shared node is one
``BITOP`` per shard, computed once for every question that reads it:

* **engagement**, a trailing window of ``w`` days ending on each point: days are cut in
  blocks of ``w``; each window is the OR of a suffix of one block and a prefix of the
  next, and each suffix and prefix is one more day OR'ed onto the one before. So a series
  costs at most three two-input ``BITOP OR``\ s per point and window, however wide the
  window: a 90-point WAU series is about 270, not 90 times 7.
* **lifecycle**, per period ``P``: *new* did the event in ``P`` and is first seen there
  (did the ``first`` event in ``P``, or was not active from ``first``'s date up to ``P``),
  *returning* was active in ``P`` and in ``P - 1``, *resurrecting* was active in ``P``, not
  in ``P - 1``, and is not new; *dormant* was active in ``P - 1`` and not in ``P``
  (reported negative). New, returning and resurrecting partition the period's actives.
* **stickiness**: the ``n`` period bitmaps are added as binary numbers, bit-sliced (XOR for
  the sum bit, AND for the carry, about ``2·n·log2(n)`` ``BITOP``\ s per shard); "active in
  exactly ``k`` periods" is the AND of the counter's bits and their complements within the
  union of the ``n`` bitmaps. No per-user loop anywhere.
* **funnel**: with ``ordered="period"``, step ``i`` counts a user in period ``p`` only if
  they did step ``i - 1`` in ``p`` or earlier: ``reached_i(p) = reached_i(p - 1) | (step_i(p)
  & reached_{i-1}(p))``, two ``BITOP``\ s per step and period. Order inside one period is
  not known to a bitmap, so two steps in the same period count as in order. With
  ``ordered=False`` it is the AND chain of "did the step in the window".
* **segments**: ``by={"plan": {"free": UniqueEvents("plan:free"), ...}}`` intersects every
  question with each segment's expression, in the same batch; the first row of every
  result is the total (segment ``None``).
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import io
import re
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from .._exceptions import InvalidRetentionQuery
from .._expr import Expr
from .._periods import Day, Month, Period, Week, to_local
from .._plan import Node, Op
from ._retention import MAX_REPORT_SEGMENTS, Segment, Segments, as_template, segments_of

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import pandas

    from .._tracker import Tracker

__all__ = [
    "MAX_REPORT_PERIODS",
    "MAX_REPORT_SEGMENTS",
    "EngagementPoint",
    "EngagementReport",
    "Every",
    "FunnelReport",
    "FunnelRow",
    "LifecyclePoint",
    "LifecycleReport",
    "Segments",
    "StickinessReport",
    "StickinessRow",
    "engagement",
    "funnel",
    "lifecycle",
    "stickiness",
]

Every: TypeAlias = Literal["day", "week", "month"]
"""A report's granularity: ``"day"``, ``"week"`` (ISO) or ``"month"``."""

MAX_REPORT_PERIODS = 400
"""The most periods (points, periods or funnel periods) one report may span."""

_PERIODS: dict[str, type[Day] | type[Week] | type[Month]] = {
    "day": Day,
    "week": Week,
    "month": Month,
}
_WINDOW_DAYS = {"day": 1, "week": 7, "month": 30}
_WITHIN = re.compile(r"^\s*(\d+)\s*([dwm])\s*$")
_UNIT = {"d": "day", "w": "week", "m": "month"}

Moment: TypeAlias = "_dt.date | _dt.datetime"


# -- building trees ------------------------------------------------------------------------


class _Builder:
    """Resolved nodes and the batch of questions asked about them."""

    def __init__(self, resolve: Callable[[Expr], Node]) -> None:
        self.resolve = resolve
        self.questions: dict[Node, int] = {}
        self._leaves: dict[tuple[Expr, Period], Node] = {}

    def at(self, template: Expr, period: Period) -> Node:
        """``template`` bound to ``period``, resolved (once)."""
        key = (template, period)
        found = self._leaves.get(key)
        if found is None:
            found = self._leaves[key] = self.resolve(template.at(period))
        return found

    @staticmethod
    def union(a: Node | None, b: Node) -> Node:
        """``a | b`` kept as a node of its own (``a`` ``None`` is the empty set)."""
        if a is None or a == b:
            return b
        return Op("OR", (a, b))

    @staticmethod
    def both(a: Node, b: Node) -> Node:
        """``a & b``."""
        return a if a == b else Op("AND", (a, b))

    @staticmethod
    def minus(a: Node, b: Node) -> Node:
        """``a - b``, exact whatever the layout's universe: ``a ^ (a & b)``."""
        return Op("XOR", (a, Op("AND", (a, b))))

    def ask(self, node: Node) -> int:
        """The index of the question "how many ids are in ``node``?"."""
        return self.questions.setdefault(node, len(self.questions))


def _segments(
    by: Segments | None, resolve: Callable[[Expr], Node]
) -> list[tuple[Segment, Node | None]]:
    """The total (``None``) and each segment with its resolved expression."""
    return [(segment, None if expr is None else resolve(expr)) for segment, expr in segments_of(by)]


def _within(segment: Node | None, node: Node) -> Node:
    return node if segment is None else _Builder.both(node, segment)


def _periods(ptype: type[Period], start: Moment, end: Moment, tz: _dt.tzinfo) -> list[Period]:
    first = ptype.from_datetime(start, tz)
    last = ptype.from_datetime(end, tz)
    if last < first:
        raise InvalidRetentionQuery(f"end {end} falls before start {start}")
    n = last.ordinal() - first.ordinal() + 1
    if n > MAX_REPORT_PERIODS:
        raise InvalidRetentionQuery(
            f"{n} periods: a report spans at most {MAX_REPORT_PERIODS} (use a coarser every=)"
        )
    return [first.delta(i) for i in range(n)]


def _ptype(every: object) -> type[Day] | type[Week] | type[Month]:
    found = _PERIODS.get(cast("str", every))
    if found is None:
        raise InvalidRetentionQuery(f"every must be 'day', 'week' or 'month', got {every!r}")
    return found


def _label(segment: Segment) -> str:
    return "all" if segment is None else f"{segment[0]}={segment[1]}"


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# -- the result values ---------------------------------------------------------------------


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else value


class _Table:
    """What every report's value shares: rows, CSV, HTML and pandas."""

    def header(self) -> tuple[str, ...]:
        """The column names of :meth:`to_rows`."""
        raise NotImplementedError

    def to_rows(self) -> list[list[Any]]:
        """The report as rows of plain values, one per line of :meth:`header`."""
        raise NotImplementedError

    def to_csv(self) -> str:
        """The report as CSV, header first."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.header())
        for row in self.to_rows():
            writer.writerow([_csv_value(v) for v in row])
        return out.getvalue()

    def to_html(self) -> str:
        """The report as an HTML ``<table>`` (every value escaped)."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in self.header())
        body = []
        for row in self.to_rows():
            cells = "".join(
                "<td></td>"
                if v is None
                else f"<td>{html.escape(f'{v:.1%}' if isinstance(v, float) else str(v))}</td>"
                for v in row
            )
            body.append(f"<tr>{cells}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def to_pandas(self) -> pandas.DataFrame:
        """The report as a pandas DataFrame, one column per :meth:`header` name.

        pandas is imported only here (the ``pandas`` extra).

        :raises ImportError: if pandas is not installed
        """
        try:
            pd = import_module("pandas")
        except ImportError as exc:
            raise ImportError(
                f"{type(self).__name__}.to_pandas() needs pandas, which is not installed: "
                "`pip install bitlens[pandas]` (or use to_rows(), to_csv() or to_html())"
            ) from exc
        return cast("pandas.DataFrame", pd.DataFrame(self.to_rows(), columns=list(self.header())))


@dataclass(frozen=True, slots=True)
class EngagementPoint:
    """Distinct users in each trailing window ending with one point's last day.

    :param period: the point
    :param segment: ``(dimension, label)``, or ``None`` for the total
    :param counts: distinct users per window name (``"day"``, ``"week"``, ``"month"``)
    """

    period: Period
    segment: Segment
    counts: Mapping[str, int]

    def ratio(self, part: str, whole: str) -> float | None:
        """Stickiness ``counts[part] / counts[whole]`` (``None`` when ``whole`` is 0)."""
        return _ratio(self.counts[part], self.counts[whole])


@dataclass(frozen=True, slots=True)
class EngagementReport(_Table):
    """DAU, WAU and MAU as rolling windows, and their ratios, for every point.

    :param event: the event's expression
    :param every: the points' granularity
    :param windows: the window names, narrowest first
    :param points: every point of every segment, the total's first
    """

    event: Expr
    every: Every
    windows: tuple[str, ...]
    points: tuple[EngagementPoint, ...]

    def ratios(self) -> tuple[tuple[str, str], ...]:
        """The stickiness ratios reported: the narrowest window over each wider one."""
        return tuple((self.windows[0], w) for w in self.windows[1:])

    def header(self) -> tuple[str, ...]:
        """``period``, ``segment``, one column per window, one per ratio."""
        return ("period", "segment", *self.windows, *(f"{a}/{b}" for a, b in self.ratios()))

    def to_rows(self) -> list[list[Any]]:
        """One row per point and segment."""
        return [
            [
                str(p.period),
                _label(p.segment),
                *(p.counts[w] for w in self.windows),
                *(p.ratio(a, b) for a, b in self.ratios()),
            ]
            for p in self.points
        ]


@dataclass(frozen=True, slots=True)
class LifecyclePoint:
    """One period's actives split by where they come from, and the dormant.

    ``new + returning + resurrecting`` is the period's active count; ``dormant`` is
    negative (minus those active in the previous period and not in this one).
    """

    period: Period
    segment: Segment
    new: int
    returning: int
    resurrecting: int
    dormant: int

    @property
    def active(self) -> int:
        """The period's active users: new, returning and resurrecting."""
        return self.new + self.returning + self.resurrecting


@dataclass(frozen=True, slots=True)
class LifecycleReport(_Table):
    """New, returning, resurrecting and dormant users per period."""

    event: Expr
    every: Every
    points: tuple[LifecyclePoint, ...]

    def header(self) -> tuple[str, ...]:
        """The columns of :meth:`to_rows`."""
        return ("period", "segment", "new", "returning", "resurrecting", "dormant")

    def to_rows(self) -> list[list[Any]]:
        """One row per period and segment."""
        return [
            [str(p.period), _label(p.segment), p.new, p.returning, p.resurrecting, p.dormant]
            for p in self.points
        ]


@dataclass(frozen=True, slots=True)
class StickinessRow:
    """How many users were active in exactly ``k`` of the periods, for k = 1..n.

    :param exactly: ``exactly[k - 1]`` users were active in exactly ``k`` periods
    """

    segment: Segment
    exactly: tuple[int, ...]

    @property
    def at_least(self) -> tuple[int, ...]:
        """``at_least[k - 1]`` users were active in ``k`` periods or more."""
        total, out = 0, []
        for value in reversed(self.exactly):
            total += value
            out.append(total)
        return tuple(reversed(out))


@dataclass(frozen=True, slots=True)
class StickinessReport(_Table):
    """The stickiness histogram of each segment, the total's first."""

    event: Expr
    every: Every
    periods: tuple[Period, ...]
    rows: tuple[StickinessRow, ...]

    def header(self) -> tuple[str, ...]:
        """``segment``, ``k``, ``exactly``, ``at_least``."""
        return ("segment", "k", "exactly", "at_least")

    def to_rows(self) -> list[list[Any]]:
        """One row per segment and k."""
        return [
            [_label(row.segment), k + 1, row.exactly[k], row.at_least[k]]
            for row in self.rows
            for k in range(len(self.periods))
        ]


@dataclass(frozen=True, slots=True)
class FunnelRow:
    """Users reaching each step, for one segment (and, with ``within``, one entry period).

    :param entered: the entry period, or ``None`` for the whole window
    :param counts: users at each step, the first step's first
    """

    segment: Segment
    entered: Period | None
    counts: tuple[int, ...]

    def conversion(self) -> tuple[float | None, ...]:
        """Each step's share of the step before (the first step's is 1.0 when any)."""
        return tuple(_ratio(c, self.counts[i - 1] if i else c) for i, c in enumerate(self.counts))

    def overall(self) -> tuple[float | None, ...]:
        """Each step's share of the first step."""
        return tuple(_ratio(c, self.counts[0]) for c in self.counts)


@dataclass(frozen=True, slots=True)
class FunnelReport(_Table):
    """A funnel's step counts and conversions, per segment (and entry period)."""

    steps: tuple[Expr, ...]
    ordered: Literal["period"] | bool
    within: int | None
    rows: tuple[FunnelRow, ...]

    def header(self) -> tuple[str, ...]:
        """``segment``, ``entered``, ``step``, ``users``, ``conversion``, ``overall``."""
        return ("segment", "entered", "step", "users", "conversion", "overall")

    def to_rows(self) -> list[list[Any]]:
        """One row per segment, entry period and step."""
        rows: list[list[Any]] = []
        for row in self.rows:
            step_conv, overall = row.conversion(), row.overall()
            for i, count in enumerate(row.counts):
                entered = "all" if row.entered is None else str(row.entered)
                rows.append([_label(row.segment), entered, i + 1, count, step_conv[i], overall[i]])
        return rows


# -- the reports ---------------------------------------------------------------------------


def _clock(tracker: Tracker, moment: Moment) -> _dt.datetime | _dt.date:
    return to_local(moment, tracker.tz) if isinstance(moment, _dt.datetime) else moment


async def engagement(
    tracker: Tracker,
    event: str | Expr,
    start: Moment,
    end: Moment,
    *,
    every: Every = "day",
    windows: Sequence[str] = ("day", "week", "month"),
    by: Segments | None = None,
) -> EngagementReport:
    """Distinct users over trailing 1, 7 and 30 days at every point, in one round trip.

    Each point's windows end with the point's last day (a week's Sunday, a month's last
    day): ``"day"`` is that day (DAU), ``"week"`` the 7 days ending there (WAU),
    ``"month"`` the 30 (MAU), rolling windows rather than calendar periods. Ratios (the
    narrowest window over each wider one: DAU/WAU, DAU/MAU) come with the report.

    :param tracker: the tracker to ask
    :param event: an event name, or an expression over :class:`bitlens.EventTemplate`\\ s
    :param start: a moment in the first point
    :param end: a moment in the last point
    :param every: the points' granularity
    :param windows: window names among ``"day"``, ``"week"``, ``"month"``, distinct
    :param by: segments to split every number by (see :data:`Segments`)
    :raises InvalidRetentionQuery: for arguments that make no report, before any I/O
    """
    ptype = _ptype(every)
    names = tuple(windows)
    if not names or len(set(names)) != len(names) or any(w not in _WINDOW_DAYS for w in names):
        raise InvalidRetentionQuery(
            f"windows must be distinct names among 'day', 'week', 'month', got {windows!r}"
        )
    names = tuple(sorted(names, key=_WINDOW_DAYS.__getitem__))
    template = as_template(event)
    tz = tracker.tz
    points = _periods(ptype, _clock(tracker, start), _clock(tracker, end), tz)
    segments = _segments(by, tracker._resolve_for_report)  # pyright: ignore[reportPrivateUsage]
    build = _Builder(tracker._resolve_for_report)  # pyright: ignore[reportPrivateUsage]
    last_days = [Day.from_datetime(p.next().start, tz).prev() for p in points]

    def day(ordinal: int) -> Node:
        return build.at(template, Day.from_ordinal(ordinal, tz))

    memo: dict[tuple[str, int, int], Node] = {}

    def run(kind: str, lo: int, hi: int) -> Node:
        """OR of days ``lo..hi``: a suffix (grown leftwards) or a prefix (rightwards)."""
        key = (kind, lo, hi)
        found = memo.get(key)
        if found is None:
            if lo == hi:
                found = day(lo)
            elif kind == "suffix":
                found = _Builder.union(run(kind, lo + 1, hi), day(lo))
            else:
                found = _Builder.union(run(kind, lo, hi - 1), day(hi))
            memo[key] = found
        return found

    def window(last: int, width: int) -> Node:
        first = last - width + 1
        block = first // width
        block_end = block * width + width - 1
        if block_end >= last:  # the window is one whole block
            return run("prefix", first, last)
        return _Builder.union(run("suffix", first, block_end), run("prefix", block_end + 1, last))

    asked: list[tuple[Period, Segment, dict[str, int]]] = []
    for segment, node in segments:
        for period, last in zip(points, last_days, strict=True):
            ordinal = last.ordinal()
            counts = {
                name: build.ask(_within(node, window(ordinal, _WINDOW_DAYS[name])))
                for name in names
            }
            asked.append((period, segment, counts))
    totals = await tracker._count_nodes(list(build.questions))  # pyright: ignore[reportPrivateUsage]
    return EngagementReport(
        template,
        every,
        names,
        tuple(
            EngagementPoint(period, segment, {n: totals[i] for n, i in counts.items()})
            for period, segment, counts in asked
        ),
    )


async def lifecycle(
    tracker: Tracker,
    event: str | Expr,
    start: Moment,
    end: Moment,
    *,
    every: Every = "week",
    first: str | Expr | Moment,
    by: Segments | None = None,
) -> LifecycleReport:
    """New, returning, resurrecting and dormant users per period, in one round trip.

    :param tracker: the tracker to ask
    :param event: the activity: an event name or an expression over templates
    :param start: a moment in the first period
    :param end: a moment in the last period
    :param every: the periods' granularity
    :param first: what makes a user new in a period: a sign-up event (name or template)
        done in that period, or a date, the start of your data: new then means active in
        the period and in no period from that date on
    :param by: segments to split every number by (see :data:`Segments`)
    :raises InvalidRetentionQuery: for arguments that make no report, before any I/O
    """
    ptype = _ptype(every)
    template = as_template(event)
    tz = tracker.tz
    periods = _periods(ptype, _clock(tracker, start), _clock(tracker, end), tz)
    resolve = tracker._resolve_for_report  # pyright: ignore[reportPrivateUsage]
    segments = _segments(by, resolve)
    build = _Builder(resolve)
    signup: Expr | None = None
    seen: dict[Period, Node | None] = {}
    if isinstance(first, (_dt.date, _dt.datetime)):
        oldest = ptype.from_datetime(_clock(tracker, first), tz)
        if oldest > periods[0]:
            raise InvalidRetentionQuery(f"first={first} falls after the first period")
        span = periods[0].ordinal() - oldest.ordinal()
        if span > MAX_REPORT_PERIODS * 4:
            raise InvalidRetentionQuery(
                f"{span} periods of history: give a later first= (at most "
                f"{MAX_REPORT_PERIODS * 4} periods before the report)"
            )
        before: Node | None = None
        for i in range(span):
            before = _Builder.union(before, build.at(template, oldest.delta(i)))
        for period in periods:
            seen[period] = before
            before = _Builder.union(before, build.at(template, period))
    else:
        signup = as_template(first)

    asked: list[tuple[Period, Segment, tuple[int, int, int, int]]] = []
    for segment, node in segments:
        for period in periods:
            active = _within(node, build.at(template, period))
            previous = _within(node, build.at(template, period.prev()))
            resurrecting: Node | None
            if signup is not None:
                new = build.both(active, build.at(signup, period))
                returning = build.minus(build.both(active, previous), new)
                resurrecting = build.minus(build.minus(active, previous), new)
            else:
                history = seen[period]
                new = active if history is None else build.minus(active, history)
                returning = build.both(active, previous)
                back = build.both(active, history) if history is not None else None
                resurrecting = None if back is None else build.minus(back, previous)
            indexes = (
                build.ask(new),
                build.ask(returning),
                -1 if resurrecting is None else build.ask(resurrecting),
                build.ask(build.minus(previous, active)),
            )
            asked.append((period, segment, indexes))
    totals = await tracker._count_nodes(list(build.questions))  # pyright: ignore[reportPrivateUsage]

    def value(i: int) -> int:
        return 0 if i < 0 else totals[i]

    return LifecycleReport(
        template,
        every,
        tuple(
            LifecyclePoint(p, s, value(n), value(r), value(b), -value(d))
            for p, s, (n, r, b, d) in asked
        ),
    )


async def stickiness(
    tracker: Tracker,
    event: str | Expr,
    start: Moment,
    end: Moment,
    *,
    every: Every = "day",
    by: Segments | None = None,
) -> StickinessReport:
    """How many users were active in exactly k of the n periods, k = 1..n, in one round trip.

    :param tracker: the tracker to ask
    :param event: the activity: an event name or an expression over templates
    :param start: a moment in the first period
    :param end: a moment in the last period
    :param every: the periods' granularity
    :param by: segments to split every number by (see :data:`Segments`)
    :raises InvalidRetentionQuery: for arguments that make no report, before any I/O
    """
    ptype = _ptype(every)
    template = as_template(event)
    tz = tracker.tz
    periods = _periods(ptype, _clock(tracker, start), _clock(tracker, end), tz)
    resolve = tracker._resolve_for_report  # pyright: ignore[reportPrivateUsage]
    segments = _segments(by, resolve)
    build = _Builder(resolve)
    # The bit-sliced counter: bits[j] holds the ids whose count has bit j set.
    bits: list[Node] = []
    anyone: Node | None = None
    for added, period in enumerate(periods, 1):
        leaf = build.at(template, period)
        anyone = _Builder.union(anyone, leaf)
        # After ``added`` bitmaps no count exceeds ``added``: bits from ``need`` up stay
        # empty, so no carry into them is computed.
        need = added.bit_length()
        carry: Node | None = leaf
        for j, bit in enumerate(bits):
            assert carry is not None
            bits[j] = Op("XOR", (bit, carry))
            carry = Op("AND", (bit, carry)) if j + 1 < need else None
            if carry is None:
                break
        if carry is not None:
            bits.append(carry)
    assert anyone is not None  # at least one period
    everyone = anyone
    negated = [Op("XOR", (everyone, bit)) for bit in bits]  # bit ⊂ everyone: exact
    asked: list[tuple[Segment, list[int]]] = []
    for segment, node in segments:
        indexes = []
        for k in range(1, len(periods) + 1):
            if k.bit_length() > len(bits):
                indexes.append(-1)
                continue
            # From the top bit down, so that values sharing their high bits share the
            # chain's first ANDs (a binary trie: about 2n ANDs for n values, not n log n).
            parts = [bits[j] if k >> j & 1 else negated[j] for j in reversed(range(len(bits)))]
            exact: Node = parts[0]
            for part in parts[1:]:
                exact = Op("AND", (exact, part))
            indexes.append(build.ask(_within(node, exact)))
        asked.append((segment, indexes))
    totals = await tracker._count_nodes(list(build.questions))  # pyright: ignore[reportPrivateUsage]
    return StickinessReport(
        template,
        every,
        tuple(periods),
        tuple(
            StickinessRow(segment, tuple(0 if i < 0 else totals[i] for i in indexes))
            for segment, indexes in asked
        ),
    )


def _within_periods(within: str | int | None, every: Every) -> int | None:
    if within is None:
        return None
    if isinstance(within, bool):
        raise InvalidRetentionQuery(
            f"within must be like '7d' or a number of periods, got {within!r}"
        )
    if isinstance(within, int):
        count = within
    else:
        match = _WITHIN.match(str(within))
        if match is None:
            raise InvalidRetentionQuery(f"within must be like '7d', '2w' or '1m', got {within!r}")
        count, unit = int(match.group(1)), _UNIT[match.group(2)]
        if unit != every:
            days = count * _WINDOW_DAYS[unit]
            per = _WINDOW_DAYS[every]
            if days % per:
                raise InvalidRetentionQuery(
                    f"within={within!r} is not a whole number of {every}s (every={every!r})"
                )
            count = days // per
    if count < 1:
        raise InvalidRetentionQuery(f"within must be at least one period, got {within!r}")
    return count


async def funnel(
    tracker: Tracker,
    steps: Sequence[str | Expr],
    start: Moment,
    end: Moment,
    *,
    every: Every = "day",
    within: str | int | None = None,
    ordered: Literal["period"] | bool = "period",
    by: Segments | None = None,
) -> FunnelReport:
    """Users at each step of a funnel and the conversion between steps, in one round trip.

    :param tracker: the tracker to ask
    :param steps: two or more events (names or templates), in funnel order
    :param start: a moment in the first period
    :param end: a moment in the last period
    :param every: the periods the order is known at
    :param within: a conversion window (``"7d"``, ``"2w"``, or a number of periods): one
        row per entry period (who did the first step then), each counting the later steps
        done from that period to ``within`` periods after its start; the total row counts
        users who converted in at least one of their windows
    :param ordered: ``"period"`` (step i counts in periods at or after step i-1's) or
        ``False`` (did every step in the window, in any order)
    :param by: segments to split every number by (see :data:`Segments`)
    :raises InvalidRetentionQuery: for arguments that make no report, before any I/O
    """
    ptype = _ptype(every)
    if isinstance(steps, (str, Expr)) or len(steps) < 2:
        raise InvalidRetentionQuery("a funnel needs a sequence of two steps or more")
    if ordered not in ("period", False):
        raise InvalidRetentionQuery(f"ordered must be 'period' or False, got {ordered!r}")
    templates = tuple(as_template(step) for step in steps)
    tz = tracker.tz
    periods = _periods(ptype, _clock(tracker, start), _clock(tracker, end), tz)
    width = _within_periods(within, every)
    resolve = tracker._resolve_for_report  # pyright: ignore[reportPrivateUsage]
    segments = _segments(by, resolve)
    build = _Builder(resolve)

    def reached(window: Sequence[Period], entry: Node | None) -> list[Node | None]:
        """The users at each step by the end of ``window`` (entry fixes the first step)."""
        if ordered is False:
            did = []
            for t in templates:
                acc: Node | None = None
                for p in window:
                    acc = _Builder.union(acc, build.at(t, p))
                did.append(acc)
            if entry is not None:
                did[0] = entry
            out: list[Node | None] = []
            chain: Node | None = None
            for node in did:
                assert node is not None
                chain = node if chain is None else build.both(chain, node)
                out.append(chain)
            return out
        state: list[Node | None] = [entry] + [None] * (len(templates) - 1)
        for p in window:
            before: Node | None = None
            for i, t in enumerate(templates):
                if i == 0:
                    if entry is None:
                        state[0] = _Builder.union(state[0], build.at(t, p))
                    before = state[0]
                    continue
                if before is not None:
                    state[i] = _Builder.union(state[i], build.both(build.at(t, p), before))
                before = state[i]
        return state

    asked: list[tuple[Segment, Period | None, list[int]]] = []
    for segment, node in segments:
        if width is None:
            steps_at = reached(periods, None)
            asked.append((segment, None, [_ask(build, node, n) for n in steps_at]))
            continue
        union: list[Node | None] = [None] * len(templates)
        rows = []
        for period in periods:
            window = [period.delta(i) for i in range(width)]
            steps_at = reached(window, build.at(templates[0], period))
            rows.append((segment, period, [_ask(build, node, n) for n in steps_at]))
            for i, n in enumerate(steps_at):
                if n is not None:
                    union[i] = _Builder.union(union[i], n)
        asked.append((segment, None, [_ask(build, node, n) for n in union]))
        asked.extend(rows)
    totals = await tracker._count_nodes(list(build.questions))  # pyright: ignore[reportPrivateUsage]
    return FunnelReport(
        templates,
        ordered,
        width,
        tuple(
            FunnelRow(segment, entered, tuple(0 if i < 0 else totals[i] for i in indexes))
            for segment, entered, indexes in asked
        ),
    )


def _ask(build: _Builder, segment: Node | None, node: Node | None) -> int:
    return -1 if node is None else build.ask(_within(segment, node))
