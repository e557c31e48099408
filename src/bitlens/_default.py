"""The optional module-level default tracker, for bitmapist-style calls.

bitmapist keeps its Redis connection in global state; bitlens keeps every setting on a
:class:`~bitlens.Tracker` and offers this default only as a convenience::

    bitlens.setup("redis://localhost:6379/0")
    await bitlens.mark_event("active", 123)
    await MonthEvents("active", 2026, 11).count()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._exceptions import NoDefaultTracker
from ._expr import use_default
from ._tracker import Tracker

if TYPE_CHECKING:
    import datetime as _dt
    from collections.abc import Iterable

    from redis.asyncio import Redis
    from typing_extensions import Unpack

    from ._tracker import TrackerOptions
    from ._writer import Mark

__all__ = [
    "get_tracker",
    "mark_event",
    "mark_events",
    "mark_unique",
    "setup",
    "unmark_event",
    "unmark_unique",
]

_default: Tracker | None = None


def setup(
    url_or_client_or_tracker: str | Redis | Tracker, **options: Unpack[TrackerOptions]
) -> Tracker:
    """Configure the default tracker used by module-level calls, and return it.

    :param url_or_client_or_tracker: a ``redis://`` URL, a ``redis.asyncio.Redis`` client
        or a ready :class:`Tracker`
    :param options: :class:`Tracker` keyword options (not allowed with a Tracker)
    :raises TypeError: if options are given together with a Tracker
    """
    global _default
    if isinstance(url_or_client_or_tracker, Tracker):
        if options:
            raise TypeError("options cannot be given together with a ready Tracker")
        tracker = url_or_client_or_tracker
    else:
        tracker = Tracker(url_or_client_or_tracker, **options)
    _default = tracker
    return tracker


def get_tracker() -> Tracker:
    """Return the default tracker.

    :raises NoDefaultTracker: if :func:`setup` was not called
    """
    if _default is None:
        raise NoDefaultTracker
    return _default


use_default(get_tracker)


def reset() -> None:
    """Forget the default tracker (it is not closed: close it yourself if you made it)."""
    global _default
    _default = None


async def mark_event(
    event: str,
    user_id: int,
    at: _dt.datetime | _dt.date | None = None,
    *,
    track_hourly: bool | None = None,
    track_unique: bool | None = None,
) -> None:
    """Mark an event on the default tracker (see :meth:`Tracker.mark_event`).

    :param event: the event name
    :param user_id: the id
    :param at: when it happened (default: now)
    :param track_hourly: also set the hour bit
    :param track_unique: also set the UniqueEvents bit
    :raises NoDefaultTracker: if :func:`setup` was not called
    """
    await get_tracker().mark_event(
        event, user_id, at, track_hourly=track_hourly, track_unique=track_unique
    )


async def unmark_event(
    event: str,
    user_id: int,
    at: _dt.datetime | _dt.date | None = None,
    *,
    track_hourly: bool | None = None,
    track_unique: bool | None = None,
) -> None:
    """Clear an event's bits on the default tracker (see :meth:`Tracker.unmark_event`).

    :param event: the event name
    :param user_id: the id
    :param at: which periods to clear (default: now)
    :param track_hourly: also clear the hour bit
    :param track_unique: also clear the UniqueEvents bit
    :raises NoDefaultTracker: if :func:`setup` was not called
    """
    await get_tracker().unmark_event(
        event, user_id, at, track_hourly=track_hourly, track_unique=track_unique
    )


async def mark_unique(event: str, user_id: int) -> None:
    """Mark ``UniqueEvents(event)`` on the default tracker.

    :param event: the event name
    :param user_id: the id
    :raises NoDefaultTracker: if :func:`setup` was not called
    """
    await get_tracker().mark_unique(event, user_id)


async def unmark_unique(event: str, user_id: int) -> None:
    """Clear ``user_id`` from ``UniqueEvents(event)`` on the default tracker.

    :param event: the event name
    :param user_id: the id
    :raises NoDefaultTracker: if :func:`setup` was not called
    """
    await get_tracker().unmark_unique(event, user_id)


async def mark_events(
    marks: Iterable[Mark],
    *,
    track_hourly: bool | None = None,
    track_unique: bool | None = None,
) -> int:
    """Mark many events on the default tracker (see :meth:`Tracker.mark_events`).

    :param marks: ``(event, user_id)`` or ``(event, user_id, at)`` items
    :param track_hourly: also set hour bits
    :param track_unique: also set UniqueEvents bits
    :returns: the number of items marked
    :raises NoDefaultTracker: if :func:`setup` was not called
    """
    return await get_tracker().mark_events(
        marks, track_hourly=track_hourly, track_unique=track_unique
    )
