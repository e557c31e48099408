"""The ``bitlens`` command line (also ``python -m bitlens``).

Subcommands:

* ``bitlens demo``: mark synthetic activity and print answers, on an embedded Redis when
  neither ``--url`` nor ``REDIS_URL`` is given;
* ``bitlens count EXPR...``: count the ids of expressions such as
  ``'month:active:2026-10 & month:active:2026-11'`` (``--members`` lists them,
  ``--contains ID`` tests one);
* ``bitlens retention START [RETURNING]``: a cohort retention table;
* ``bitlens report KIND``: engagement, lifecycle, stickiness or a funnel;
* ``bitlens events``: the event names under a prefix, found with SCAN;
* ``bitlens import FILE``: backfill marks from a CSV, JSON lines or Parquet file;
* ``bitlens delete-event EVENT``, ``bitlens delete-all``, ``bitlens erase-user ID``:
  delete an event, everything under a prefix, or one user's bits (asking first);
* ``bitlens migrate``: copy every bitmap into another key layout (bitmapist's and back);
* ``bitlens serve``: the web dashboard on localhost (needs ``bitlens[aiohttp]``).

Exit status: 0 on success, 1 when Redis (or the command) fails, 2 for bad arguments,
130 when interrupted. ``BITLENS_DEBUG=1`` shows tracebacks instead of one-line errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._exceptions import BitlensError
from ._common import CommandError, HelpFormatter, UsageError, redact
from ._count import add_count_parser
from ._demo import add_demo_parser
from ._events import add_events_parser
from ._import import add_import_parser
from ._manage import add_manage_parsers
from ._migrate import add_migrate_parser
from ._report import add_report_parser
from ._retention import add_retention_parser
from ._serve import add_serve_parser

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

_EPILOG = """\
Run `bitlens COMMAND --help` for a command's options. Commands other than demo and serve
need --url or $REDIS_URL.

exit status: 0 success, 1 Redis or command failure (or `count --contains` answering
false), 2 bad arguments, 130 interrupted. BITLENS_DEBUG=1 shows tracebacks.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``bitlens`` command."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="bitlens",
        description="Real-time analytics on Redis bitmaps: count, list and compare the "
        "users behind events, and print retention tables.",
        epilog=_EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bitlens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_demo_parser(sub)
    add_count_parser(sub)
    add_retention_parser(sub)
    add_report_parser(sub)
    add_events_parser(sub)
    add_import_parser(sub)
    add_manage_parsers(sub)
    add_migrate_parser(sub)
    add_serve_parser(sub)
    return parser


def _unwrap(exc: BaseException) -> BaseException:
    """Return the one exception inside (nested) single-exception groups, else ``exc``."""
    while True:
        inner: object = getattr(exc, "exceptions", None)
        if not isinstance(inner, tuple) or len(inner) != 1:  # pyright: ignore[reportUnknownArgumentType]
            return exc
        only: object = inner[0]  # pyright: ignore[reportUnknownVariableType]
        if not isinstance(only, BaseException):
            return exc
        exc = only


def _one_line(exc: BaseException) -> str:
    """Return the message of ``exc`` on one line (its type name if it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _report(parser: argparse.ArgumentParser, args: argparse.Namespace, exc: BaseException) -> int:
    """Print ``exc`` as a one-line error (with the usage line for bad input); return the code.

    :param parser: the parser whose usage line to print
    :param args: the parsed arguments
    :param exc: the error
    """
    name = f"bitlens {args.command}"
    url: str | None = getattr(args, "connected_url", None)
    where = redact(url) if url else "redis"
    if isinstance(exc, UsageError) or (
        isinstance(exc, BitlensError) and isinstance(exc, (ValueError, TypeError))
    ):
        parser.print_usage(sys.stderr)
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, CommandError):
        message = f"{name}: {exc}"
    elif isinstance(exc, RedisTimeoutError):
        message = f"{name}: {where} timed out: {_one_line(exc)}"
    elif isinstance(exc, RedisConnectionError) or (
        isinstance(exc, RedisClusterException) and "connect" in str(exc)
    ):
        message = f"{name}: cannot connect to {where}: {_one_line(exc)}"
    elif isinstance(exc, (RedisError, RedisClusterException)):
        message = f"{name}: redis error from {where}: {_one_line(exc)}"
    elif isinstance(exc, BitlensError):
        message = f"{name}: {_one_line(exc)}"
    else:
        message = f"{name}: error: {type(exc).__name__}: {_one_line(exc)}"
    print(message, file=sys.stderr)
    return 1


def _silence_stdout() -> None:
    """After the reader of stdout went away: send what is left to /dev/null, quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bitlens`` command line and return its exit code.

    :param argv: the arguments (default: ``sys.argv[1:]``)
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    command_parser: argparse.ArgumentParser = getattr(args, "parser", parser)
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # here, so that a closed pipe is reported like any error
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # report, don't dump a traceback on a user's terminal
        error = _unwrap(exc)
        if isinstance(error, BrokenPipeError):  # e.g. `bitlens count --members X | head`
            _silence_stdout()
            return 141
        if os.environ.get("BITLENS_DEBUG") and not isinstance(error, UsageError):
            raise
        return _report(command_parser, args, error)
    return code
