"""Renderings of a retention table: CSV, an escaped HTML heatmap, pandas (pure)."""

from __future__ import annotations

import csv
import io
from html import escape
from importlib import import_module
from typing import TYPE_CHECKING

from .._expr import (
    BitOpAnd,
    BitOpDiff,
    BitOpNot,
    BitOpOr,
    BitOpXor,
    EventTemplate,
    Expr,
    PeriodEvents,
    Universe,
)

if TYPE_CHECKING:
    import pandas  # type: ignore[import-untyped, import-not-found, unused-ignore]  # pyright: ignore[reportMissingImports]

    from ._table import RetentionCell, RetentionTable, Values

__all__ = [
    "INCOMPLETE_COLUMN",
    "NOT_OVER",
    "column_label",
    "describe",
    "to_csv",
    "to_html",
    "to_pandas",
]

INCOMPLETE_COLUMN = "incomplete"
"""The last CSV column: the labels of the row's buckets that are not over, space-separated."""

NOT_OVER = "* not over yet: may still grow, left out of the average"
"""The footnote of a rendering whose cells marked ``*`` are not over."""

_SYMBOLS: dict[type[Expr], str] = {BitOpAnd: " & ", BitOpOr: " | ", BitOpXor: " ^ "}


def describe(expr: Expr) -> str:
    """Return a short human text for an expression: ``active & (ios | web)``.

    :param expr: a template or concrete expression
    """
    if isinstance(expr, EventTemplate):
        return expr.event
    if isinstance(expr, Universe):
        return "everyone"
    if isinstance(expr, PeriodEvents):
        return f"{expr.event}@{expr.period}" if expr.period is not None else f"{expr.event}@ever"
    if isinstance(expr, (BitOpAnd, BitOpOr, BitOpXor)):
        return _SYMBOLS[type(expr)].join(_operand(o) for o in expr.operands)
    if isinstance(expr, BitOpDiff):
        return " - ".join(_operand(o) for o in (expr.base, *expr.subtract))
    if isinstance(expr, BitOpNot):
        if isinstance(expr.universe, Universe):
            return f"~{_operand(expr.operand)}"
        return f"{_operand(expr.universe)} - {_operand(expr.operand)}"
    return repr(expr)


def _operand(expr: Expr) -> str:
    text = describe(expr)
    return f"({text})" if isinstance(expr, (BitOpAnd, BitOpOr, BitOpXor, BitOpDiff)) else text


def column_label(lo: int, hi: int | None) -> str:
    """Return a column's label: ``"3"``, ``"3+"`` (open-ended) or ``"4-7"``.

    :param lo: the first period offset the column covers
    :param hi: the last one; ``None`` when open-ended
    """
    if hi is None:
        return f"{lo}+"
    return str(lo) if hi == lo else f"{lo}-{hi}"


def title(table: RetentionTable) -> str:
    """Return ``start -> returning``, the events a table relates."""
    return f"{describe(table.start)} -> {describe(table.returning)}"


def _number(cell: RetentionCell, values: Values, precision: int) -> str:
    if values == "count":
        return "" if cell.count is None else str(cell.count)
    return "" if cell.percent is None else f"{cell.percent:.{precision}f}"


def to_csv(table: RetentionTable, values: Values, precision: int) -> str:
    """Render :meth:`RetentionTable.to_csv`.

    :param table: the table
    :param values: ``"percent"`` or ``"count"``
    :param precision: decimals of the percentages
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    labels = table.column_labels()
    writer.writerow([title(table), "size", *labels, INCOMPLETE_COLUMN])
    for row in table.rows:
        writer.writerow(
            [
                row.label,
                row.size,
                *(_number(c, values, precision) for c in row.cells),
                " ".join(labels[c.bucket] for c in row.cells if _running(c)),
            ]
        )
    return out.getvalue()


def _running(cell: RetentionCell) -> bool:
    """Whether a cell's bucket has started but is not over (its number may still grow)."""
    return cell.count is not None and not cell.complete


def _shade(percent: float) -> str:
    alpha = min(max(percent / 100, 0.0), 1.0)
    ink = "#fff" if alpha > 0.55 else "#111"
    return f"background-color: hsla(210, 80%, 45%, {alpha:.2f}); color: {ink}"


def _td(cell: RetentionCell, size: int, precision: int) -> str:
    if cell.count is None:
        return '<td class="future"></td>'
    classes = "" if cell.complete else ' class="incomplete"'
    hint = f"{cell.count} of {size}" + ("" if cell.complete else ", not over yet")
    if cell.percent is None:
        return f'<td{classes} title="{escape(hint)}"></td>'
    text = f"{cell.percent:.{precision}f}%" + ("" if cell.complete else "*")
    return f'<td{classes} style="{_shade(cell.percent)}" title="{escape(hint)}">{escape(text)}</td>'


def _mean_row(name: str, means: tuple[float | None, ...], precision: int) -> str:
    cells = "".join(
        "<td></td>" if m is None else f"<td>{escape(f'{m:.{precision}f}%')}</td>" for m in means
    )
    return f'<tr><th scope="row">{escape(name)}</th><td></td>{cells}</tr>'


def to_html(table: RetentionTable, precision: int) -> str:
    """Render :meth:`RetentionTable.to_html`.

    :param table: the table
    :param precision: decimals of the percentages
    """
    criterion = {"on": "on", "on_or_after": "on or after", "brackets": "brackets"}
    caption = (
        f"{title(table)} ({table.period}, {table.mode.replace('_', ' ')}, "
        f"{criterion[table.criterion]})"
    )
    head = "".join(f'<th scope="col">{escape(label)}</th>' for label in table.header())
    lines = [
        f'<table class="bitlens-retention" data-period="{escape(table.period)}">',
        f"<caption>{escape(caption)}</caption>",
        f"<thead><tr>{head}</tr></thead>",
        "<tbody>",
    ]
    for row in table.rows:
        cells = "".join(_td(cell, row.size, precision) for cell in row.cells)
        lines.append(f'<tr><th scope="row">{escape(row.label)}</th><td>{row.size}</td>{cells}</tr>')
    lines += [
        "</tbody>",
        "<tfoot>",
        _mean_row("weighted mean", table.averages(), precision),
        _mean_row("simple mean", table.simple_means(), precision),
    ]
    if any(_running(c) for row in table.rows for c in row.cells):
        span = len(table.header())
        lines.append(f'<tr class="note"><td colspan="{span}">{escape(NOT_OVER)}</td></tr>')
    lines += ["</tfoot>", "</table>"]
    return "\n".join(lines) + "\n"


def to_pandas(table: RetentionTable, values: Values) -> pandas.DataFrame:
    """Render :meth:`RetentionTable.to_pandas`, importing pandas now.

    :param table: the table
    :param values: ``"percent"`` or ``"count"``
    :raises ImportError: if pandas is not installed
    """
    try:
        pd = import_module("pandas")
    except ImportError as exc:
        raise ImportError(
            "RetentionTable.to_pandas() needs pandas, which is not installed: "
            "`pip install pandas` (or use to_rows(), to_dicts() or to_csv())"
        ) from exc
    data: dict[str, object] = {"size": [row.size for row in table.rows]}
    for j, label in enumerate(table.column_labels()):
        if values == "count":
            counts = [row.cells[j].count for row in table.rows]
            data[label] = pd.array(counts, dtype="Int64")
        else:
            data[label] = [
                float("nan") if (p := row.cells[j].percent) is None else p for row in table.rows
            ]
    index = pd.Index([row.label for row in table.rows], name="cohort")
    frame: pandas.DataFrame = pd.DataFrame(data, index=index)
    return frame
