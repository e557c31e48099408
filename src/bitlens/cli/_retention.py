"""``bitlens retention START [RETURNING]``: a cohort retention table, in one round trip."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING

import anyio

from .._periods import to_local
from ..cohort import retention
from ..cohort._render import NOT_OVER, describe
from ._common import (
    HelpFormatter,
    UsageError,
    add_connection_options,
    moment,
    open_tracker,
    positive_int,
    require_url,
)
from ._count import parse_argument
from ._hints import warn_unknown_events

if TYPE_CHECKING:
    import datetime as _dt
    from argparse import _SubParsersAction  # pyright: ignore[reportPrivateUsage]

    from .._expr import Expr
    from ..cohort import Criterion, RetentionCell, RetentionTable

__all__ = ["add_retention_parser", "criterion", "render_table"]

_BRACKET = re.compile(r"(\d+)(?:-(\d+))?")
_CRITERIA = {"on": "on", "on_or_after": "on_or_after", "on-or-after": "on_or_after"}


def criterion(text: str) -> Criterion:
    """Return ``on``, ``on_or_after`` or brackets such as ``1-3,4-7`` (an ``argparse`` type).

    A bracket ``N`` alone is ``N-N``.

    :param text: the argument
    :raises argparse.ArgumentTypeError: for anything else
    """
    named = _CRITERIA.get(text)
    if named == "on":
        return "on"
    if named == "on_or_after":
        return "on_or_after"
    brackets: list[tuple[int, int]] = []
    for part in text.split(","):
        match = _BRACKET.fullmatch(part.strip())
        if match is None:
            raise argparse.ArgumentTypeError(
                f"expected on, on_or_after or brackets such as 1-3,4-7; got {text!r}"
            )
        lo = int(match.group(1))
        hi = lo if match.group(2) is None else int(match.group(2))
        if hi < lo:
            raise argparse.ArgumentTypeError(f"bracket {part.strip()!r} ends before it starts")
        brackets.append((lo, hi))
    return brackets


def add_retention_parser(sub: _SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``retention`` subcommand.

    :param sub: the subparsers of the ``bitlens`` parser
    """
    parser = sub.add_parser(
        "retention",
        help="print a cohort retention table (one round trip)",
        description=(
            "Print what share of the users who did START in each period did RETURNING "
            "(default: START) k periods later. START and RETURNING are event names or "
            "expressions of them, such as 'active & ios' (both in the same period); the "
            "leaves of bitlens count (unique:EVENT, all, ...) are allowed as constants."
        ),
        epilog="""\
examples:
  bitlens retention signed_up active --period week --cohorts 8 --buckets 6
  bitlens retention signed_up 'active & ios' --period month --criterion 1-2,3-5
  bitlens retention active --mode first_time --history-start 2026-01-01 --format csv

cells: '*' marks a bucket that is not over yet (left out of the average); an empty
cell is a bucket that has not started.
""",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("start", metavar="START", help="the event that puts users in a cohort")
    parser.add_argument(
        "returning", metavar="RETURNING", nargs="?", help="the event that counts as coming back"
    )
    table = parser.add_argument_group("table")
    table.add_argument(
        "--period",
        choices=("day", "week", "month"),
        default="day",
        help="cohort and bucket length; weeks are ISO weeks (default: day)",
    )
    table.add_argument(
        "--cohorts", type=positive_int, default=31, metavar="N", help="rows (default: 31)"
    )
    table.add_argument(
        "--buckets",
        type=positive_int,
        default=None,
        metavar="M",
        help="columns 0..M-1, bucket 0 being the cohort's own period (default: 13)",
    )
    table.add_argument(
        "--end",
        type=moment,
        default=None,
        metavar="DATE",
        help="a day in the last cohort's period (default: now)",
    )
    table.add_argument(
        "--mode",
        choices=("recurring", "first_time"),
        default="recurring",
        help="recurring: did START in the period; first_time: and never before (default: "
        "recurring)",
    )
    table.add_argument(
        "--history-start",
        type=moment,
        default=None,
        metavar="DATE",
        help="with --mode first_time: the day your data begins",
    )
    table.add_argument(
        "--criterion",
        type=criterion,
        default="on",
        metavar="on|on_or_after|1-3,4-7",
        help="returned in exactly bucket k (on), in k or later (on_or_after), or in any "
        "period of each bracket (default: on)",
    )
    table.add_argument(
        "--now",
        type=moment,
        default=None,
        metavar="TIME",
        help="the clock deciding which buckets have started and ended (default: now)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="an aligned table, CSV or JSON (default: table)",
    )
    out.add_argument(
        "--values",
        choices=("percent", "count"),
        default="percent",
        help="cells of the table and CSV (default: percent)",
    )
    add_connection_options(parser, url_help="required")
    parser.set_defaults(run=_run, parser=parser)


def _cell(cell: RetentionCell, values: str) -> str:
    """Return one cell of the text table: ``60.0%``, ``*`` if not over, empty if not started."""
    if cell.count is None:
        return ""  # the bucket has not started
    mark = "" if cell.complete else "*"
    if values == "count":
        return f"{cell.count:,}{mark}"
    if cell.percent is None:
        return "-"  # an empty cohort
    return f"{cell.percent:.1f}%{mark}"


def render_table(table: RetentionTable, values: str = "percent") -> str:
    """Return the table as aligned text: a title, a header, a row per cohort, the means.

    :param table: the retention table
    :param values: ``"percent"`` or ``"count"``
    """
    criterion_text = {
        "on": "in bucket k",
        "on_or_after": "in bucket k or later",
        "brackets": "in each bracket",
    }
    adjective = {"day": "daily", "week": "weekly", "month": "monthly"}
    title = (
        f"{describe(table.start)} -> {describe(table.returning)}: {adjective[table.period]} "
        f"cohorts ({table.mode.replace('_', ' ')}), returned {criterion_text[table.criterion]}"
    )
    grid: list[list[str]] = [["cohort", "size", *table.column_labels()]]
    for row in table.rows:
        grid.append([row.label, f"{row.size:,}", *(_cell(c, values) for c in row.cells)])
    if values == "percent":
        means = ["" if m is None else f"{m:.1f}%" for m in table.averages()]
        grid.append(["average", "", *means])
    widths = [max(len(line[j]) for line in grid) for j in range(len(grid[0]))]
    lines = [title]
    for line in grid:
        first = line[0].ljust(widths[0])
        rest = "".join("  " + line[j].rjust(widths[j]) for j in range(1, len(line)))
        lines.append((first + rest).rstrip())
    if any(not c.complete and c.count is not None for row in table.rows for c in row.cells):
        lines.append(NOT_OVER)
    return "\n".join(lines) + "\n"


def _json(table: RetentionTable) -> str:
    """Return the table as a JSON document: its settings, rows, cells and averages."""
    return json.dumps(
        {
            "start": describe(table.start),
            "returning": describe(table.returning),
            "period": table.period,
            "mode": table.mode,
            "criterion": table.criterion,
            "columns": list(table.column_labels()),
            "now": table.now.isoformat(),
            "rows": table.to_dicts(),
            "averages": list(table.averages()),
        },
        indent=2,
    )


def _empty_sides(table: RetentionTable) -> list[Expr]:
    """Return the start and returning events when the table shows nobody for them."""
    if not any(row.size for row in table.rows):
        return [table.start, table.returning]
    if not any(cell.count for row in table.rows for cell in row.cells):
        return [table.returning]
    return []


def _check(args: argparse.Namespace) -> None:
    """Catch inconsistent options before connecting, in the command line's words."""
    if args.mode == "first_time" and args.history_start is None:
        raise UsageError(
            "--mode first_time needs --history-start DATE (when your data begins): a "
            "first-time cohort did START in its period and in no period since that date"
        )
    if args.mode != "first_time" and args.history_start is not None:
        raise UsageError("--history-start is for --mode first_time only")
    if args.buckets is not None and not isinstance(args.criterion, str):
        raise UsageError(
            "give --buckets or --criterion brackets, not both: brackets set the columns"
        )


def _run(args: argparse.Namespace) -> int:
    """Run ``bitlens retention``."""
    url = require_url(args)
    _check(args)
    start = parse_argument(args.start, templates=True, what="START")
    returning = (
        None
        if args.returning is None
        else parse_argument(args.returning, templates=True, what="RETURNING")
    )
    now: _dt.date | _dt.datetime | None = args.now

    async def go() -> RetentionTable:
        async with open_tracker(args, url) as tracker:
            clock = None if now is None else to_local(now, tracker.tz)
            table = await retention(
                tracker,
                start,
                returning,
                period=args.period,
                cohorts=args.cohorts,
                buckets=args.buckets,
                end=args.end,
                mode=args.mode,
                criterion=args.criterion,
                history_start=args.history_start,
                now=clock,
            )
            await warn_unknown_events("retention", tracker, _empty_sides(table))
            return table

    table = anyio.run(go)
    if args.format == "csv":
        sys.stdout.write(table.to_csv(args.values))
    elif args.format == "json":
        sys.stdout.write(_json(table) + "\n")
    else:
        sys.stdout.write(render_table(table, args.values))
    return 0
