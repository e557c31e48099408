"""``bitlens delete-event``, ``delete-all`` and ``erase-user``: deleting stored data.

Each asks for confirmation on the terminal (``--yes`` skips the question) and says what it
removed. Keys are found with SCAN and removed with UNLINK in bounded batches; nothing
outside ``--prefix`` is touched.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from .._keys import validate_event_name
from ._common import (
    CommandError,
    add_connection_options,
    non_negative_int,
    open_tracker,
    redact,
    require_url,
)

if TYPE_CHECKING:
    import argparse
    from argparse import _SubParsersAction  # pyright: ignore[reportPrivateUsage]

    from .._manage import Erasure
    from .._periods import Period

__all__ = ["add_manage_parsers", "period_label"]


def period_label(period: Period | None) -> str:
    """A period as the commands print it: ``2026-11``, ``2026-W48``, …, or ``unique``.

    :param period: a period, or ``None`` for the Unique bitmap
    """
    return "unique" if period is None else str(period)


async def _confirm(args: argparse.Namespace, question: str) -> None:
    """Ask ``question`` on stderr and read the answer from stdin, unless ``--yes``.

    :raises CommandError: unless the answer is ``y`` or ``yes``
    """
    if args.yes:
        return
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = await anyio.to_thread.run_sync(sys.stdin.readline)
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError("not confirmed: nothing was deleted (--yes skips the question)")


class _Progress:
    """Keys removed so far, on stderr: redrawn in place on a terminal, else every 5 s."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.tty = sys.stderr.isatty()
        self.last = time.monotonic()
        self.shown = False

    def __call__(self, removed: int) -> None:
        if self.tty:
            sys.stderr.write(f"\r{self.command}: {removed:,} keys removed")
            sys.stderr.flush()
            self.shown = True
        elif time.monotonic() - self.last >= 5.0:
            self.last = time.monotonic()
            print(f"{self.command}: {removed:,} keys removed", file=sys.stderr)

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def add_manage_parsers(sub: _SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``delete-event``, ``delete-all`` and ``erase-user``.

    :param sub: the subparsers of the ``bitlens`` parser
    """
    delete_event = sub.add_parser(
        "delete-event",
        help="delete one event: every period and shard of its bitmaps",
        description=(
            "Delete every bitmap of EVENT under --prefix (all periods, all shards), found "
            "with SCAN and removed with UNLINK in batches of 500. Asks first unless --yes."
        ),
    )
    delete_event.add_argument("event", metavar="EVENT", help="the event name")
    _add_yes(delete_event)
    add_connection_options(delete_event, url_help="required", tz=False)
    delete_event.set_defaults(run=_run_delete_event, parser=delete_event)

    delete_all = sub.add_parser(
        "delete-all",
        help="delete every key under the prefix (never another prefix's)",
        description=(
            "Delete every key bitlens keeps under --prefix: event bitmaps, universes, id "
            "maps and the shard registry. Keys of other prefixes (also longer ones such as "
            "bl:x when the prefix is bl) and keys bitlens would never write are left alone. "
            "Asks first unless --yes."
        ),
    )
    _add_yes(delete_all)
    add_connection_options(delete_all, url_help="required", tz=False)
    delete_all.set_defaults(run=_run_delete_all, parser=delete_all)

    erase = sub.add_parser(
        "erase-user",
        help="clear one user id from every bitmap under the prefix (e.g. a GDPR request)",
        description=(
            "Clear USER_ID's bit in every bitmap under --prefix: every event, every period, "
            "and its shard's universe. Only that shard's keys are read or written; other "
            "ids' bits are never touched. Idempotent. Prints what was cleared. Asks first "
            "unless --yes."
        ),
    )
    erase.add_argument("user_id", metavar="USER_ID", type=non_negative_int, help="the id")
    erase.add_argument(
        "--json",
        action="store_true",
        help='print {"user_id": ..., "cleared": [{"event": ..., "period": ...}], "universe": ...}',
    )
    _add_yes(erase)
    add_connection_options(erase, url_help="required", tz=False)
    erase.set_defaults(run=_run_erase, parser=erase)


def _add_yes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-y", "--yes", action="store_true", help="do not ask for confirmation (for scripts)"
    )


def _run_delete_event(args: argparse.Namespace) -> int:
    """Run ``bitlens delete-event``."""
    event = validate_event_name(args.event)
    url = require_url(args)

    async def go() -> int | None:
        async with open_tracker(args, url) as tracker:
            periods = await tracker.event_periods(event)
            if not periods:
                return None
            await _confirm(
                args,
                f"Delete event {event!r} under prefix {args.prefix!r} at {redact(url)} "
                f"({len(periods)} periods, every shard)?",
            )
            progress = _Progress("bitlens delete-event")
            removed = await tracker.delete_event(event, progress=progress)
            progress.finish()
            return removed

    removed = anyio.run(go)
    if removed is None:
        sys.stdout.write(f"no bitmaps of event {event!r} under prefix {args.prefix!r}\n")
    else:
        sys.stdout.write(f"deleted {removed:,} keys of event {event!r}\n")
    return 0


def _run_delete_all(args: argparse.Namespace) -> int:
    """Run ``bitlens delete-all``."""
    url = require_url(args)

    async def go() -> int:
        async with open_tracker(args, url) as tracker:
            names = await tracker.event_names()
            await _confirm(
                args,
                f"Delete every key under prefix {args.prefix!r} at {redact(url)} "
                f"({len(names)} events)?",
            )
            progress = _Progress("bitlens delete-all")
            removed = await tracker.delete_all(progress=progress)
            progress.finish()
            return removed

    removed = anyio.run(go)
    sys.stdout.write(f"deleted {removed:,} keys under prefix {args.prefix!r}\n")
    return 0


def _run_erase(args: argparse.Namespace) -> int:
    """Run ``bitlens erase-user``."""
    url = require_url(args)
    user_id: int = args.user_id

    async def go() -> Erasure:
        async with open_tracker(args, url) as tracker:
            await _confirm(
                args,
                f"Clear user {user_id} from every bitmap under prefix {args.prefix!r} "
                f"at {redact(url)}?",
            )
            return await tracker.erase_user(user_id)

    erased = anyio.run(go)
    if args.json:
        listing = {
            "user_id": erased.user_id,
            "cleared": [
                {"event": key.event, "period": period_label(key.period)} for key in erased.cleared
            ],
            "universe": erased.universe,
        }
        sys.stdout.write(json.dumps(listing) + "\n")
        return 0
    width = max((len(key.event) for key in erased.cleared), default=0)
    sys.stdout.writelines(
        f"{key.event:<{width}}  {period_label(key.period)}\n" for key in erased.cleared
    )
    where = "its shard's universe too" if erased.universe else "not in its shard's universe"
    sys.stdout.write(f"cleared user {user_id} from {len(erased.cleared):,} bitmaps ({where})\n")
    return 0
