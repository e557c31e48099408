"""``bitlens count EXPR``: count, list or test the ids of bitmap expressions."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import anyio

from ._common import (
    HelpFormatter,
    UsageError,
    add_connection_options,
    non_negative_int,
    open_tracker,
    require_url,
)
from ._hints import warn_unknown_events
from ._parse import ParseError, parse_expression

if TYPE_CHECKING:
    import argparse
    from argparse import _SubParsersAction  # pyright: ignore[reportPrivateUsage]
    from collections.abc import Sequence

    from .._expr import Expr
    from .._tracker import Tracker

__all__ = ["EXPRESSION_HELP", "add_count_parser", "parse_argument", "print_counts"]

EXPRESSION_HELP = """\
expressions:
  leaves      month:EVENT:2026-11      week:EVENT:2026-W48     day:EVENT:2026-11-27
              hour:EVENT:2026-11-27T13  year:EVENT:2026          unique:EVENT (ever)
              last:EVENT:7d  last:EVENT:24h (rolling, in --tz)
              range:EVENT:2026-11-01..2026-11-15 (both ends included; days or THH hours)
              all (every id ever marked)
  operators   ~ not (within all)   & and   ^ xor   | or   - minus
              precedence: ~ first, then &, then ^, then | and - (left to right):
              a | b - c is (a | b) - c; use parentheses when in doubt
  names       quote names holding : or & | ^ ~ ( ) with "..." or '...':
              month:"my:event":2026-11; put spaces around the minus operator (a - b),
              as leaves may contain '-'
"""


def add_count_parser(sub: _SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``count`` subcommand.

    :param sub: the subparsers of the ``bitlens`` parser
    """
    parser = sub.add_parser(
        "count",
        help="count (or list, or test membership of) the ids of expressions",
        description=(
            "Count the ids in each EXPR, all in one round trip, one number per line. "
            "With --members, print the ids of one EXPR; with --contains, test one id."
        ),
        epilog=EXPRESSION_HELP
        + """
examples:
  bitlens count 'month:active:2026-11'
  bitlens count 'month:active:2026-10 & month:active:2026-11' \\
                'month:active:2026-10 - month:active:2026-11'
  bitlens count --members 'week:signed_up:2026-W48 & ~week:active:2026-W49'
  bitlens count --contains 42 'last:active:7d'

exit status: 0 on success (for --contains: the id is in EXPR), 1 when --contains answers
false or Redis fails, 2 for bad arguments or expressions.
""",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("expressions", nargs="+", metavar="EXPR", help="an expression (below)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--members",
        action="store_true",
        help="print the ids in EXPR, ascending, one per line, as they stream in",
    )
    what.add_argument(
        "--contains",
        type=non_negative_int,
        metavar="ID",
        help="print true or false: whether ID is in EXPR (exit status 0 or 1)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print JSON: {"expression": ..., "count": N} per line; an array with --members',
    )
    add_connection_options(parser, url_help="required")
    parser.set_defaults(run=_run, parser=parser)


def parse_argument(text: str, *, templates: bool = False, what: str = "EXPR") -> Expr:
    r"""Parse a command-line expression, turning a syntax error into a usage error.

    :param text: the argument
    :param templates: accept bare names as ``EventTemplate``\ s (retention)
    :param what: the argument's name in the message
    :raises UsageError: with the position of the error marked by a caret
    """
    try:
        return parse_expression(text, templates=templates)
    except ParseError as exc:
        raise UsageError(f"bad {what}: {exc.render()}") from None


def _print(line: str) -> None:
    """Write one line to stdout."""
    sys.stdout.write(line + "\n")


async def print_counts(
    tracker: Tracker, texts: Sequence[str], exprs: Sequence[Expr], *, as_json: bool
) -> int:
    """Print the count of each expression, one round trip for all; return 0.

    A note on stderr names the events never marked, looked up only if a count is 0.

    :param tracker: the tracker to ask
    :param texts: the expressions as given
    :param exprs: the parsed expressions
    :param as_json: print one JSON object per expression
    """
    counts = await tracker.count_many(exprs)
    for text, n in zip(texts, counts, strict=True):
        _print(json.dumps({"expression": text, "count": n}) if as_json else str(n))
    sys.stdout.flush()
    empty = [expr for expr, n in zip(exprs, counts, strict=True) if n == 0]
    await warn_unknown_events("count", tracker, empty)
    return 0


async def _contains(tracker: Tracker, text: str, expr: Expr, user_id: int, as_json: bool) -> int:
    """Print whether ``user_id`` is in ``expr``; return 0 if it is, else 1."""
    member = await tracker.contains(expr, user_id)
    if as_json:
        _print(json.dumps({"expression": text, "user_id": user_id, "member": member}))
    else:
        _print("true" if member else "false")
    if not member:
        sys.stdout.flush()
        await warn_unknown_events("count", tracker, [expr])
    return 0 if member else 1


async def _members(tracker: Tracker, expr: Expr, as_json: bool) -> int:
    """Stream the ids of ``expr`` to stdout, one per line or as a JSON array; return 0."""
    out = sys.stdout
    first = True
    if as_json:
        out.write("[")
    async for user_id in tracker.members(expr):
        if as_json:
            out.write(f"{user_id}" if first else f", {user_id}")
        else:
            out.write(f"{user_id}\n")
        first = False
    if as_json:
        out.write("]\n")
    out.flush()
    if first:  # nothing was printed
        await warn_unknown_events("count", tracker, [expr])
    return 0


def _run(args: argparse.Namespace) -> int:
    """Run ``bitlens count``."""
    url = require_url(args)
    texts: list[str] = args.expressions
    exprs = [parse_argument(text) for text in texts]
    single = args.members or args.contains is not None
    if single and len(exprs) > 1:
        option = "--members" if args.members else "--contains"
        raise UsageError(f"{option} takes one EXPR, got {len(exprs)}")

    async def go() -> int:
        async with open_tracker(args, url) as tracker:
            if args.members:
                return await _members(tracker, exprs[0], args.json)
            if args.contains is not None:
                return await _contains(tracker, texts[0], exprs[0], args.contains, args.json)
            return await print_counts(tracker, texts, exprs, as_json=args.json)

    return anyio.run(go)
