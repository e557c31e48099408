"""The retention table: frozen rows of cells, their averages, and conversions (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias, TypedDict

from . import _render

if TYPE_CHECKING:
    import datetime as _dt

    import pandas  # type: ignore[import-untyped, import-not-found, unused-ignore]  # pyright: ignore[reportMissingImports]

    from .._expr import Expr
    from .._periods import Period

__all__ = [
    "CellDict",
    "CriterionName",
    "Mode",
    "PeriodName",
    "RetentionCell",
    "RetentionRow",
    "RetentionTable",
    "RowDict",
    "Values",
]

PeriodName: TypeAlias = Literal["day", "week", "month"]
"""The granularity of a retention table: cohorts and buckets are days, ISO weeks or months."""

Mode: TypeAlias = Literal["recurring", "first_time"]
"""``recurring``: did the start event in the cohort period; ``first_time``: and never before."""

CriterionName: TypeAlias = Literal["on", "on_or_after", "brackets"]
"""How a table counted a return: in exactly bucket k, in k or later, or in a range."""

Values: TypeAlias = Literal["percent", "count"]
"""Which number of each cell a flat export carries."""


class CellDict(TypedDict):
    """One cell of :meth:`RetentionTable.to_dicts`."""

    bucket: int
    label: str
    count: int | None
    percent: float | None
    complete: bool


class RowDict(TypedDict):
    """One row of :meth:`RetentionTable.to_dicts`."""

    cohort: str
    start: str
    size: int
    complete: bool
    cells: list[CellDict]


@dataclass(frozen=True, slots=True)
class RetentionCell:
    """How many of a cohort came back in one bucket.

    :param bucket: the column's index (bucket ``k`` for "on" and "on or after"; the
        bracket's index for brackets)
    :param count: users of the cohort who came back; ``None`` when the bucket has not
        started yet (no query is sent for it)
    :param percent: ``count / size * 100``; ``None`` for an empty cohort or a future bucket
    :param complete: whether the bucket's period is over (the count can no longer grow)
    """

    bucket: int
    count: int | None
    percent: float | None
    complete: bool


@dataclass(frozen=True, slots=True)
class RetentionRow:
    """One cohort: the users who did the start event in one period, and their cells.

    :param cohort: the cohort's period (``Day``, ``Week`` or ``Month``)
    :param size: how many users are in the cohort (0 for a period that has not started)
    :param complete: whether the cohort's period is over (its size is final)
    :param cells: one cell per column of the table
    """

    cohort: Period
    size: int
    complete: bool
    cells: tuple[RetentionCell, ...]

    @property
    def label(self) -> str:
        """The cohort's ISO label: ``2026-11-27``, ``2026-W48`` or ``2026-11``."""
        return str(self.cohort)


@dataclass(frozen=True, slots=True)
class RetentionTable:
    """A retention table as product teams read it: cohorts down, buckets across.

    Returned by :func:`bitlens.cohort.retention`. Row ``i`` is the cohort of one period;
    column ``j`` covers the periods ``columns[j]`` after it (bucket 0 is the cohort's own
    period). Cells of buckets that have not started hold ``None``; cells of buckets that
    have started but not ended are flagged ``complete=False``.

    Example::

        table = await retention(tracker, "signed_up", "active", period="week", cohorts=8)
        for row in table.rows:
            print(row.label, row.size, [cell.percent for cell in row.cells])
        print(table.averages())
        html = table.to_html()

    :param period: ``"day"``, ``"week"`` or ``"month"``
    :param mode: ``"recurring"`` or ``"first_time"``
    :param criterion: ``"on"``, ``"on_or_after"`` or ``"brackets"``
    :param columns: per column, the first and last period offset it covers; the last is
        ``None`` for "on or after" (open up to the current period)
    :param rows: the cohorts, oldest first
    :param start: the start event or expression (a template)
    :param returning: the returning event or expression (a template)
    :param now: the clock the table was computed at (decides completeness)
    :param segments: with ``by=``, each segment's own table (``"plan=pro"``, in ``by``'s
        order), computed in the same round trip: the cohorts and returns of the users of
        the segment only; this table is the total
    """

    period: PeriodName
    mode: Mode
    criterion: CriterionName
    columns: tuple[tuple[int, int | None], ...]
    rows: tuple[RetentionRow, ...]
    start: Expr
    returning: Expr
    now: _dt.datetime
    segments: tuple[tuple[str, RetentionTable], ...] = ()

    def segment(self, label: str) -> RetentionTable:
        """The table of one segment, by its label (``"plan=pro"``).

        :raises KeyError: for a label that is not a segment of this table
        """
        for name, table in self.segments:
            if name == label:
                return table
        raise KeyError(label)

    @property
    def buckets(self) -> int:
        """The number of columns (buckets or brackets)."""
        return len(self.columns)

    def column_labels(self) -> tuple[str, ...]:
        """Return the columns' labels: ``"3"`` (on), ``"3+"`` (on or after), ``"4-7"``."""
        return tuple(_render.column_label(lo, hi) for lo, hi in self.columns)

    def header(self) -> tuple[str, ...]:
        """Return the header of :meth:`to_rows`: ``("cohort", "size", "0", "1", ...)``."""
        return ("cohort", "size", *self.column_labels())

    def averages(self) -> tuple[float | None, ...]:
        """Return each column's retention in percent, weighted by cohort size.

        Only complete cells of non-empty cohorts count: ``sum(count) / sum(size) * 100``.
        ``None`` for a column without such a cell.
        """
        out: list[float | None] = []
        for j in range(len(self.columns)):
            returned = size = 0
            for row in self.rows:
                cell = row.cells[j]
                if cell.complete and cell.count is not None and row.size:
                    returned += cell.count
                    size += row.size
            out.append(returned / size * 100 if size else None)
        return tuple(out)

    def simple_means(self) -> tuple[float | None, ...]:
        """Return each column's plain mean of the percentages of its complete cells.

        Every non-empty cohort weighs the same, whatever its size (PostHog's "simple
        mean"); ``None`` for a column without a complete cell.
        """
        out: list[float | None] = []
        for j in range(len(self.columns)):
            found = [
                cell.percent
                for row in self.rows
                if (cell := row.cells[j]).complete and cell.percent is not None
            ]
            out.append(sum(found) / len(found) if found else None)
        return tuple(out)

    def to_rows(self, values: Values = "percent") -> list[list[str | int | float | None]]:
        """Return the table as flat rows under :meth:`header`: label, size, then cells.

        :param values: ``"percent"`` (floats) or ``"count"`` (ints); ``None`` for a
            future bucket (and for percentages of an empty cohort)
        """
        return [
            [
                row.label,
                row.size,
                *(cell.percent if values == "percent" else cell.count for cell in row.cells),
            ]
            for row in self.rows
        ]

    def to_dicts(self) -> list[RowDict]:
        """Return the table as JSON-ready dicts, one per cohort, with every cell's fields."""
        labels = self.column_labels()
        return [
            RowDict(
                cohort=row.label,
                start=row.cohort.start.isoformat(),
                size=row.size,
                complete=row.complete,
                cells=[
                    CellDict(
                        bucket=cell.bucket,
                        label=labels[cell.bucket],
                        count=cell.count,
                        percent=cell.percent,
                        complete=cell.complete,
                    )
                    for cell in row.cells
                ],
            )
            for row in self.rows
        ]

    def to_csv(self, values: Values = "percent", *, precision: int = 2) -> str:
        """Return the table as CSV: a header, then one line per cohort.

        The corner cell names the events (``signed_up -> active``); empty fields are
        future buckets (and percentages of empty cohorts). The last column,
        ``incomplete``, lists the labels of the row's buckets that have started but are
        not over (``2``, or ``1 2``; empty when all are over): their numbers may still
        grow. Fields are quoted as needed.

        :param values: ``"percent"`` or ``"count"``
        :param precision: decimals of the percentages
        """
        return _render.to_csv(self, values, precision)

    def to_html(self, *, precision: int = 1) -> str:
        """Return an HTML ``<table>`` fragment: a heatmap of the percentages.

        Every text is escaped. Cells are shaded by percentage; incomplete cells (not
        over yet) carry ``class="incomplete"`` and a ``*`` after their number, future
        ones ``class="future"``; the footer holds the weighted and simple means and, when
        a cell is incomplete, a note saying what ``*`` means. Labels are ISO
        (``2026-W48``).

        :param precision: decimals of the percentages
        """
        return _render.to_html(self, precision)

    def to_pandas(self, values: Values = "percent") -> pandas.DataFrame:
        """Return the table as a pandas ``DataFrame`` indexed by cohort label.

        Columns: ``size``, then one per bucket (floats, ``NaN`` for missing, or nullable
        ``Int64`` counts). pandas is imported only here.

        :param values: ``"percent"`` or ``"count"``
        :raises ImportError: if pandas is not installed
        """
        return _render.to_pandas(self, values)
