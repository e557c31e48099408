"""``bitlens report KIND ...``: engagement, lifecycle, stickiness or a funnel, one round trip."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from typing import TYPE_CHECKING, Any

import anyio

from ..cohort import engagement, funnel, lifecycle, stickiness
from ._common import (
    HelpFormatter,
    UsageError,
    add_connection_options,
    moment,
    open_tracker,
    require_url,
)
from ._count import parse_argument

if TYPE_CHECKING:
    from argparse import _SubParsersAction  # pyright: ignore[reportPrivateUsage]

    from .._expr import Expr
    from ..cohort._reports import _Table  # pyright: ignore[reportPrivateUsage]

__all__ = ["add_report_parser", "render_rows"]

KINDS = ("engagement", "lifecycle", "stickiness", "funnel")


def add_report_parser(sub: _SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``report`` subcommand.

    :param sub: the subparsers of the ``bitlens`` parser
    """
    parser = sub.add_parser(
        "report",
        help="print engagement, lifecycle, stickiness or a funnel (one round trip)",
        description=(
            "Print a product report over START..END, exact and in one round trip per node: "
            "engagement (distinct users over the trailing 1, 7 and 30 days at each point, "
            "and DAU/WAU, DAU/MAU), lifecycle (new, returning, resurrecting, dormant per "
            "period), stickiness (users active in exactly k of the periods) or funnel "
            "(users at each of the EVENTs, in order). EVENT is an event name or an "
            "expression such as 'active & ios' (both in the same period)."
        ),
        epilog="""\
examples:
  bitlens report engagement active --start 2026-09-01 --end 2026-11-30
  bitlens report lifecycle active --every week --first signed_up --start 2026-09-01
  bitlens report stickiness active --start 2026-11-01 --end 2026-11-30 --format csv
  bitlens report funnel visit cart buy --within 7d --segment plan=pro:unique:pro
""",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("kind", choices=KINDS, help="which report")
    parser.add_argument(
        "events", metavar="EVENT", nargs="+", help="the event (a funnel: its steps, in order)"
    )
    shape = parser.add_argument_group("report")
    shape.add_argument("--start", type=moment, required=True, help="a date in the first period")
    shape.add_argument("--end", type=moment, help="a date in the last period (default: today)")
    shape.add_argument(
        "--every",
        choices=("day", "week", "month"),
        help="the periods (default: day; lifecycle: week)",
    )
    shape.add_argument(
        "--first",
        help="lifecycle: the sign-up event that makes a user new, or the date your data begins",
    )
    shape.add_argument("--within", help="funnel: a conversion window such as 7d, 2w or 1m")
    shape.add_argument(
        "--any-order",
        action="store_true",
        help="funnel: count every step done in the window, in any order",
    )
    shape.add_argument(
        "--segment",
        action="append",
        default=[],
        metavar="DIM=LABEL:EXPR",
        help="split every number by a segment, e.g. plan=pro:unique:pro (repeatable)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="an aligned table, CSV or JSON (default: table)",
    )
    add_connection_options(parser, url_help="required")
    parser.set_defaults(run=_run, parser=parser)


def _segments(texts: list[str]) -> dict[str, dict[str, Expr]]:
    """``DIM=LABEL:EXPR`` arguments as ``{dimension: {label: expression}}``."""
    found: dict[str, dict[str, Expr]] = {}
    for text in texts:
        head, sep, expr = text.partition(":")
        dimension, eq, label = head.partition("=")
        if not (sep and eq and dimension and label and expr):
            raise UsageError(
                f"--segment wants DIM=LABEL:EXPR, e.g. plan=pro:unique:pro; got {text!r}"
            )
        segment = parse_argument(expr, templates=True, what="--segment")
        found.setdefault(dimension, {})[label] = segment
    return found


def render_rows(report: _Table) -> str:
    """Return a report as an aligned text table, ratios as percentages."""

    def cell(value: Any) -> str:
        if value is None:
            return ""
        return f"{value:.1%}" if isinstance(value, float) else str(value)

    values = report.to_rows()
    rows = [list(report.header()), *([cell(v) for v in row] for row in values)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    # text columns (periods, segments) to the left, numbers to the right
    left = [all(isinstance(row[i], str) for row in values) for i in range(len(widths))]
    lines = [
        "  ".join(
            v.ljust(w) if left[i] else v.rjust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _run(args: argparse.Namespace) -> int:
    """Run ``bitlens report``."""
    url = require_url(args)
    kind: str = args.kind
    if kind != "funnel" and len(args.events) != 1:
        raise UsageError(f"bitlens report {kind} takes one EVENT")
    if kind == "funnel" and len(args.events) < 2:
        raise UsageError("bitlens report funnel takes two EVENTs or more (its steps)")
    if kind == "lifecycle" and args.first is None:
        raise UsageError(
            "lifecycle needs --first: the sign-up event that makes a user new, or the date "
            "your data begins (new: active and not seen since)"
        )
    events = [parse_argument(text, templates=True, what="EVENT") for text in args.events]
    by = _segments(args.segment) or None
    first: Any = None
    if args.first is not None:
        try:
            first = moment(args.first)
        except argparse.ArgumentTypeError:
            first = parse_argument(args.first, templates=True, what="--first")

    async def go() -> _Table:
        async with open_tracker(args, url) as tracker:
            end = args.end if args.end is not None else _dt.datetime.now(tracker.tz)
            if kind == "engagement":
                return await engagement(
                    tracker, events[0], args.start, end, every=args.every or "day", by=by
                )
            if kind == "lifecycle":
                return await lifecycle(
                    tracker,
                    events[0],
                    args.start,
                    end,
                    every=args.every or "week",
                    first=first,
                    by=by,
                )
            if kind == "stickiness":
                return await stickiness(
                    tracker, events[0], args.start, end, every=args.every or "day", by=by
                )
            return await funnel(
                tracker,
                events,
                args.start,
                end,
                every=args.every or "day",
                within=args.within,
                ordered=False if args.any_order else "period",
                by=by,
            )

    report = anyio.run(go)
    if args.format == "csv":
        sys.stdout.write(report.to_csv())
    elif args.format == "json":
        header = report.header()
        rows = [dict(zip(header, row, strict=True)) for row in report.to_rows()]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(render_rows(report))
    return 0
