"""bitmapist 3.x's cohort renderers, in plain Python (no template engine).

:func:`render_csv_data` gives bitmapist's CSV character for character;
:func:`render_html_data` and :func:`render_html_form` give its HTML with the same tags,
attributes, styles and text, laid out with other whitespace (equal once runs of
whitespace are collapsed). One difference: every name and value put in the HTML is
escaped (bitmapist inserts them raw, so an event name holding ``<`` breaks its page).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from html import escape
from typing import Literal

__all__ = ["render_csv_data", "render_html_data", "render_html_form"]

TimeGroup = Literal["days", "weeks", "months", "years"]
Row = Sequence[object]
Selection = tuple[str, str]

_TABLE_STYLE = """<style>
.cohort_table {
    width: 1250px !important;
\tfont-family: sans-serif;
}

.cohort_table .entry {
    width: 6%;
}

.cohort_table td, .cohort_table th {
    padding: 5px 0;
    text-align: center;
    border-right: 1px solid #aaa;
}

.cohort_table td {
    border-bottom: 1px solid #aaa;
}



.cohort_table .date {
    display: inline-block;
    width: 125px;
}

.cohort_table .total_count {
    display: inline-block;
    width: 50px;
}

.cohort_table td.avg_row {
    border-top: 1px solid #aaa !important;
}

</style>
"""

_FORM_STYLE = """<style>
.cohort_form dd {
    display: inline-block;
    margin-right: 5px;
}

.cohort_form select {
    max-width: 150px;
}
</style>
"""

_EXPORT = (
    '<div style="padding-top: 20px;">\n    <a href="#" target="_blank" '
    "onclick=\"window.open(location.href + '&export_csv=1'); return false;\">"
    "Export as CSV</a>\n</div>\n"
)


def _date(row: Row, time_group: str, *, html: bool) -> str:
    day = row[0]
    assert isinstance(day, (_dt.date, _dt.datetime))
    if time_group == "months":
        return day.strftime("%d %b")
    if time_group == "weeks":
        return day.strftime("Week %U, %d %b" if html else "Week %U %d %b")
    if time_group == "years":
        return day.strftime("%Y")
    return day.strftime("%d %b, %Y" if html else "%d %b %Y")


def _number(value: object) -> float:
    assert isinstance(value, (int, float))
    return float(value) if isinstance(value, float) else value


def render_csv_data(
    dates_data: Sequence[Row],
    as_percent: bool = True,
    time_group: TimeGroup = "days",
    num_results: int = 31,
    num_of_rows: int = 12,
    start_date: str | None = None,
) -> str:
    """Render ``get_dates_data`` rows as bitmapist's CSV: a header, then a line per row.

    :param dates_data: the rows of :func:`~bitlens.compat.bitmapist.cohort.get_dates_data`
    :param as_percent: whether the cells are percentages (rounded to 2 places) or counts
    :param time_group: ``"days"``, ``"weeks"``, ``"months"`` or ``"years"`` (the date format)
    :param num_results: accepted for compatibility
    :param num_of_rows: the number of columns after the first
    :param start_date: accepted for compatibility
    """
    lines = ["Date,Total," + ",".join(str(i) for i in range(num_of_rows + 1))]
    for row in dates_data:
        cells = []
        for value in row[2 : num_of_rows + 3]:
            if value == "":
                cells.append("")
            elif as_percent:
                cells.append(str(round(_number(value), 2)))
            else:
                cells.append(str(int(_number(value))))
        lines.append(f"{_date(row, time_group, html=False)},{row[1]},{','.join(cells)}")
    return "\n".join(lines) + "\n"


def render_html_data(
    dates_data: Sequence[Row],
    as_percent: bool = True,
    time_group: TimeGroup = "days",
    num_results: int = 31,
    num_of_rows: int = 12,
    start_date: str | None = None,
) -> str:
    """Render ``get_dates_data`` rows as bitmapist's HTML table, averages row included.

    :param dates_data: the rows of :func:`~bitlens.compat.bitmapist.cohort.get_dates_data`
    :param as_percent: whether cells are percentages (shaded) or counts
    :param time_group: ``"days"``, ``"weeks"``, ``"months"`` or ``"years"``
    :param num_results: accepted for compatibility
    :param num_of_rows: the number of columns after the first
    :param start_date: accepted for compatibility
    """
    out = [_TABLE_STYLE, '<table class="cohort_table" cellpadding="0" cellspacing="0">']
    out.append('<tr>\n<th width="200"></th>')
    out += [f'<th class="entry">{i}</th>' for i in range(num_of_rows + 1)]
    out.append("</tr>")
    for row in dates_data:
        out.append("<tr>\n<td>")
        out.append(f'<div class="date">\n{escape(_date(row, time_group, html=True))}\n</div>')
        out.append(f'<div class="total_count">{escape(str(row[1]))}</div>\n</td>')
        for value in row[2 : num_of_rows + 3]:
            if value == "":
                out.append("<td></td>")
            elif as_percent:
                share = _number(value)
                color = f"hsla(200, 100%, 0%, {round(float(share / 100) + 0.5, 1)});"
                shade = round(float(share / 100), 1)
                out.append(
                    f'<td style="background-color: hsla(200, 80%, 50%, {shade}); '
                    f'color: {color}">\n{round(share, 2)}%\n</td>'
                )
            else:
                out.append(f"<td>\n{int(_number(value))}\n</td>")
        out.append("</tr>")
    out.append('<tr>\n<td class="avg_row"></td>')
    for i in range(2, num_of_rows + 3):
        entries = [_number(row[i]) for row in dates_data if row[i] != ""]
        average = sum(entries, 0.0) / len(entries) if entries else 0
        shown = f"{round(average, 2)}%" if as_percent else str(int(average))
        out.append(f'<td class="avg_row">\n{shown}\n</td>')
    out.append("</tr>\n</table>")
    out.append(_EXPORT)
    return "\n".join(out)


def _options(name: str, selections: Sequence[Selection | str], current: str | None) -> str:
    out = [f'<select name="{escape(name)}">']
    for option in selections:
        if isinstance(option, str):  # bitmapist's separator, "---"
            out.append('<option value="" disabled="disabled">----</option>')
            continue
        label, value = option
        chosen = ' selected="selected"' if current == value else ""
        out.append(f'<option value="{escape(value)}"{chosen}>{escape(label)}</option>')
    out.append("</select>")
    return "\n".join(out)


def _choice(name: str, choices: Sequence[tuple[str | None, str, bool]]) -> str:
    out = [f'<select name="{name}">']
    for value, label, chosen in choices:
        if value is None:
            out.append('<option value="" disabled="disabled">----</option>')
        else:
            mark = 'selected="selected"' if chosen else ""
            out.append(f'<option value="{value}" {mark}>{label}</option>')
    out.append("</select>")
    return "\n".join(out)


def render_html_form(
    action_url: str,
    selections1: Sequence[Selection | str],
    selections1b: Sequence[Selection | str] | None = None,
    selections2: Sequence[Selection | str] | None = None,
    selections2b: Sequence[Selection | str] | None = None,
    time_group: TimeGroup = "days",
    select1: str | None = None,
    select1b: str | None = None,
    select2: str | None = None,
    select2b: str | None = None,
    as_percent: bool = True,
    num_results: int = 31,
    num_of_rows: int = 12,
    start_date: str | None = None,
) -> str:
    """Render bitmapist's query form (a GET form of the four selections and the options).

    :param action_url: where the form is sent
    :param selections1: ``(label, event)`` pairs of the first selection
    :param selections1b: extra first selections (default: ``selections1``), after ``------``
    :param selections2: the returning selections (default: ``selections1``)
    :param selections2b: extra returning selections (default: ``selections2``)
    :param time_group: the chosen grouping
    :param select1: the chosen first selection
    :param select1b: the chosen extra first selection
    :param select2: the chosen returning selection
    :param select2b: the chosen extra returning selection
    :param as_percent: the chosen cell values
    :param num_results: the chosen number of rows
    :param num_of_rows: the chosen number of columns
    :param start_date: the chosen start date, ``YYYY-MM-DD``
    """
    second = list(selections2 or selections1)
    first_b: list[Selection | str] = [("------", ""), *(selections1b or selections1)]
    second_b: list[Selection | str] = [("------", ""), *(selections2b or second)]
    results, rows = int(num_results), int(num_of_rows)
    groups: list[tuple[str | None, str, bool]] = [
        (g, g.title(), time_group == g) for g in ("days", "weeks", "months", "years")
    ]
    percent: list[tuple[str | None, str, bool]] = [
        ("1", "Yes", bool(as_percent)),
        ("0", "No", not as_percent),
    ]
    counts: list[tuple[str | None, str, bool]] = []
    for n in (7, 28, 31, None, 12, 24, None, 4, 52, 104):
        counts.append((None, "", False) if n is None else (str(n), str(n), results == n))
    widths: list[tuple[str | None, str, bool]] = [
        (str(n), str(n), rows == n) for n in (3, 6, 12, 24, 48)
    ]
    date = escape(start_date or "")
    return "\n".join(
        [
            _FORM_STYLE,
            f'<form action="{escape(action_url)}" method="GET" class="cohort_form">',
            "<dl>\n<dd>\nShow me people who",
            _options("select1", selections1, select1),
            "AND",
            _options("select1b", first_b, select1b),
            "and then came back to",
            _options("select2", second, select2),
            "AND",
            _options("select2b", second_b, select2b),
            "</dd>\n</dl>",
            "<dl>\n<dd>\nGroup By:",
            _choice("time_group", groups),
            "</dd>\n<dd>\nAs percent:",
            _choice("as_percent", percent),
            "</dd>\n<dd>\nNumber of results:",
            _choice("num_results", counts),
            "</dd>\n<dd>\nNumber of rows:",
            _choice("num_of_rows", widths),
            "</dd>\n<dd>\nStart date:",
            f'<input name="start_date" type="date" value="{date}" />',
            "</dd>\n</dl>",
            '<dl>\n<dd>\n<input type="submit" value="Show me results" />\n</dd>\n</dl>',
            "</form>\n",
        ]
    )
