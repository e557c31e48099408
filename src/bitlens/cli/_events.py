"""``bitlens events``: the event names stored under a prefix, found with SCAN."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import TYPE_CHECKING, cast

import anyio

from .._keys import EventKey
from ._common import add_connection_options, open_tracker, require_url

if TYPE_CHECKING:
    import argparse
    from argparse import _SubParsersAction  # pyright: ignore[reportPrivateUsage]
    from collections.abc import AsyncIterator

    from .._tracker import Tracker

__all__ = ["add_events_parser", "scan_events"]

SCAN_COUNT = 1000
"""Keys each SCAN step looks at (a hint to the server; SCAN never blocks it for long)."""


async def scan_events(tracker: Tracker) -> Counter[str]:
    """Return how many keys each event has under the tracker's prefix, with SCAN.

    The tracker's key schema reads each key found (:meth:`~bitlens.KeySchema.parse`): its
    event bitmaps count, its own keys (universe, temp keys, id maps) and foreign keys not.

    Never ``KEYS``: SCAN walks the keyspace in small steps without blocking the server.
    On a cluster, redis-py's ``scan_iter`` walks every master.

    :param tracker: the tracker whose prefix to scan
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
        if isinstance(key, EventKey):
            found[key.event] += 1
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
        "--json",
        action="store_true",
        help='print a JSON array of names, or of {"event": ..., "keys": N} with --counts',
    )
    add_connection_options(parser, url_help="required", tz=False)
    parser.set_defaults(run=_run, parser=parser)


def _run(args: argparse.Namespace) -> int:
    """Run ``bitlens events``."""
    url = require_url(args)

    async def go() -> Counter[str]:
        async with open_tracker(args, url) as tracker:
            return await scan_events(tracker)

    found = anyio.run(go)
    names = sorted(found)
    if args.json:
        listing: list[object] = (
            [{"event": name, "keys": found[name]} for name in names] if args.counts else [*names]
        )
        sys.stdout.write(json.dumps(listing) + "\n")
    elif args.counts:
        width = max(map(len, names), default=0)
        sys.stdout.writelines(f"{name:<{width}}  {found[name]:>8,}\n" for name in names)
    else:
        sys.stdout.writelines(f"{name}\n" for name in names)
    return 0
