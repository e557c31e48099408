"""``bitlens events``: the event names stored under a prefix, found with SCAN."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import TYPE_CHECKING, cast

import anyio

from .._keys import EventKey
from .._manage import check_name_prefix, period_order
from ._common import add_connection_options, open_tracker, require_url
from ._manage import period_label

if TYPE_CHECKING:
    import argparse
    from argparse import _SubParsersAction  # pyright: ignore[reportPrivateUsage]
    from collections.abc import AsyncIterator

    from .._periods import Period
    from .._tracker import Tracker

__all__ = ["add_events_parser", "scan_events"]

SCAN_COUNT = 1000
"""Keys each SCAN step looks at (a hint to the server; SCAN never blocks it for long)."""


async def scan_events(
    tracker: Tracker,
    *,
    starting_with: str = "",
    periods: dict[str, set[Period | None]] | None = None,
) -> Counter[str]:
    """Return how many keys each event has under the tracker's prefix, with SCAN.

    The tracker's key schema reads each key found (:meth:`~bitlens.KeySchema.parse`): its
    event bitmaps count, its own keys (universe, temp keys, id maps) and foreign keys not.

    Never ``KEYS``: SCAN walks the keyspace in small steps without blocking the server.
    On a cluster, redis-py's ``scan_iter`` walks every master.

    :param tracker: the tracker whose prefix to scan
    :param starting_with: only events whose name starts with this text
    :param periods: if given, filled with the periods each event has keys for
    """
    found: Counter[str] = Counter()
    schema = tracker.schema
    keys = cast(
        "AsyncIterator[bytes]",
        tracker.client.scan_iter(  # pyright: ignore[reportUnknownMemberType]
            match=schema.scan_pattern, count=SCAN_COUNT
        ),
    )
    async for raw in keys:
        key = schema.parse_scanned(raw)
        if isinstance(key, EventKey) and key.event.startswith(starting_with):
            found[key.event] += 1
            if periods is not None:
                periods.setdefault(key.event, set()).add(key.period)
    return found


def add_events_parser(sub: _SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``events`` subcommand.

    :param sub: the subparsers of the ``bitlens`` parser
    """
    parser = sub.add_parser(
        "events",
        help="list the event names stored under the prefix (SCAN, never KEYS)",
        description=(
            "List the event names that have bitmaps under --prefix, sorted, found with "
            "SCAN (never KEYS), on every master of a cluster with --cluster."
        ),
    )
    parser.add_argument(
        "--counts", action="store_true", help="also print how many keys each event has"
    )
    parser.add_argument(
        "--periods",
        action="store_true",
        help="also print the periods each event has bitmaps for (months, weeks, days, ...)",
    )
    parser.add_argument(
        "--starting-with",
        metavar="TEXT",
        default="",
        help="only the events whose name starts with TEXT, e.g. checkout:",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print a JSON array of names, or of {"event": ..., "keys": N, "periods": [...]} '
        "with --counts or --periods",
    )
    add_connection_options(parser, url_help="required", tz=False)
    parser.set_defaults(run=_run, parser=parser)


def _run(args: argparse.Namespace) -> int:
    """Run ``bitlens events``."""
    url = require_url(args)

    starting_with = check_name_prefix(args.starting_with)
    periods: dict[str, set[Period | None]] | None = {} if args.periods else None

    async def go() -> Counter[str]:
        async with open_tracker(args, url) as tracker:
            return await scan_events(tracker, starting_with=starting_with, periods=periods)

    found = anyio.run(go)
    names = sorted(found)

    def labels(name: str) -> list[str]:
        stored = periods.get(name, set()) if periods is not None else set()
        return [period_label(p) for p in sorted(stored, key=period_order)]

    if args.json:
        listing: list[object] = [*names]
        if args.counts or args.periods:
            listing = []
            for name in names:
                entry: dict[str, object] = {"event": name}
                if args.counts:
                    entry["keys"] = found[name]
                if args.periods:
                    entry["periods"] = labels(name)
                listing.append(entry)
        sys.stdout.write(json.dumps(listing) + "\n")
        return 0
    width = max(map(len, names), default=0)
    for name in names:
        line = f"{name:<{width}}" if args.counts or args.periods else name
        if args.counts:
            line += f"  {found[name]:>8,}"
        if args.periods:
            line += "  " + " ".join(labels(name))
        sys.stdout.write(line.rstrip() + "\n")
    return 0
