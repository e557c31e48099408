"""The ``bitlens`` command line.

Run ``bitlens demo`` to mark synthetic activity and print answers, on an embedded Redis
when neither ``--url`` nor ``REDIS_URL`` is given.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ._demo import add_demo_parser

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``bitlens`` command."""
    parser = argparse.ArgumentParser(
        prog="bitlens",
        description="Real-time analytics on Redis bitmaps.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_demo_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bitlens`` command line and return its exit code.

    :param argv: the arguments (default: ``sys.argv[1:]``)
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # report, don't dump a traceback on a user's terminal
        if os.environ.get("BITLENS_DEBUG"):
            raise
        print(f"bitlens {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return code
