"""Notes on stderr when an answer is empty because an event name was never marked.

A misspelled event (``actve``) or the wrong ``--prefix`` makes every question answer 0,
which looks like a real answer. When an answer is empty, the command looks up the events
under the prefix (one bounded ``SCAN`` walk: a single round trip on a small keyspace) and
names the ones that were never marked. Nothing extra is sent when answers are not empty.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .._expr import (
    BitOpAnd,
    BitOpDiff,
    BitOpNot,
    BitOpOr,
    BitOpXor,
    EventsBetween,
    EventTemplate,
    Last,
    PeriodEvents,
)
from ..web._api import list_events

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._expr import Expr
    from .._tracker import Tracker

__all__ = ["MAX_LISTED", "event_names", "unknown_events_note", "warn_unknown_events"]

MAX_LISTED = 20
"""The most known event names a note lists."""

_MAX_SECONDS = 2.0


def event_names(expr: Expr) -> set[str]:
    """Return the event names an expression reads (``all`` reads none).

    :param expr: any expression, template or concrete
    """
    if isinstance(expr, (PeriodEvents, EventTemplate, EventsBetween, Last)):
        return {expr.event}
    children: Iterable[Expr] = ()
    if isinstance(expr, (BitOpAnd, BitOpOr, BitOpXor)):
        children = expr.operands
    elif isinstance(expr, BitOpDiff):
        children = (expr.base, *expr.subtract)
    elif isinstance(expr, BitOpNot):
        children = (expr.operand, expr.universe)
    found: set[str] = set()
    for child in children:
        found |= event_names(child)
    return found


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


async def unknown_events_note(tracker: Tracker, exprs: Iterable[Expr]) -> str | None:
    """Return a note naming the events of ``exprs`` never marked under the prefix, if any.

    Call it only for empty answers: it walks the keyspace with ``SCAN`` (bounded, never
    ``KEYS``). ``None`` when every event was found (an empty answer is then a real one).

    :param tracker: the tracker whose prefix to search
    :param exprs: the expressions whose answers were empty
    """
    names: set[str] = set()
    for expr in exprs:
        names |= event_names(expr)
    if not names:
        return None
    listing = await list_events(tracker, limit=10_000, max_seconds=_MAX_SECONDS)
    known = listing["events"]
    missing = sorted(names.difference(known))
    if not missing:
        return None
    prefix = tracker.schema.prefix
    if not known:
        if listing["truncated"]:
            return None  # the walk stopped before finding anything: say nothing wrong
        return (
            f"nothing was ever marked under prefix {prefix!r}: was the data marked with "
            f"another --prefix? (bitlens demo marks under 'demo')"
        )
    shown = known[:MAX_LISTED]
    more = len(known) - len(shown)
    tail = f" and {more} more (bitlens events --prefix {prefix})" if more else ""
    verb = "was" if len(missing) == 1 else "were"
    noun = "event" if len(missing) == 1 else "events"
    what = "not found (the search stopped early)" if listing["truncated"] else "never marked"
    return (
        f"{noun} {_quoted(missing)} {verb} {what} under prefix {prefix!r}; "
        f"known events: {_quoted(shown)}{tail}"
    )


async def warn_unknown_events(command: str, tracker: Tracker, exprs: Iterable[Expr]) -> None:
    """Print :func:`unknown_events_note` on stderr as ``bitlens COMMAND: note: ...``.

    :param command: the subcommand's name
    :param tracker: the tracker whose prefix to search
    :param exprs: the expressions whose answers were empty (nothing is sent if none)
    """
    pending = list(exprs)
    if not pending:
        return
    note = await unknown_events_note(tracker, pending)
    if note is not None:
        print(f"bitlens {command}: note: {note}", file=sys.stderr)
