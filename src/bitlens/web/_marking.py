"""Marking one event per web request, for any framework, without ever failing a request."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeAlias, TypeVar

from .._keys import validate_event_name

if TYPE_CHECKING:
    from .._tracker import Tracker

__all__ = ["SKIP_MARK", "MarkingStats", "RequestMarker", "UserIdGetter"]

logger = logging.getLogger("bitlens")

_R = TypeVar("_R")

UserIdGetter: TypeAlias = Callable[[_R], int | Awaitable[int | None] | None]
"""Returns the id of the user behind a request, or ``None`` to leave the request unmarked."""

SKIP_MARK = "bitlens.skip_mark"
"""The ASGI scope key that keeps a request unmarked (the dashboard's own routes set it)."""


@dataclass(frozen=True, slots=True)
class MarkingStats:
    """What a :class:`RequestMarker` did with the requests it saw.

    :param marked: requests whose mark was queued (``mark_event_nowait`` accepted it)
    :param anonymous: requests for which ``user_id`` returned ``None``
    :param skipped: requests on an excluded path, for which ``event`` returned ``None``,
        or served by the dashboard's own routes
    :param dropped: marks the tracker's fire-and-forget queue refused (it was full)
    :param failed: requests whose ``user_id`` or ``event`` raised or returned an invalid
        id or name, or that found no open tracker (logged on the ``bitlens`` logger)
    """

    marked: int = 0
    anonymous: int = 0
    skipped: int = 0
    dropped: int = 0
    failed: int = 0


class RequestMarker(Generic[_R]):
    """Marks an event for the user behind each web request, never failing the request.

    The web integrations call it once per request, after the handler has run (so an
    authentication layer or the handler itself may have put the user on the request).
    It queues the mark with :meth:`Tracker.mark_event_nowait`, so requests never wait on
    Redis, and catches every error of ``user_id`` and ``event``: a bad id, a bad name or
    a closed tracker is logged (at most once a second) and counted in :meth:`stats`.

    Example (FastAPI)::

        marker = RequestMarker(lambda request: request.state.user_id, event="request")

    :param user_id: called with the request; returns the user's id, or ``None`` to leave
        the request unmarked; may be a coroutine function
    :param event: the event name to mark, or a function of the request returning one
        (``None``: leave the request unmarked)
    :param exclude: path prefixes never marked (``"/health"`` excludes ``/health`` and
        ``/health/live``, not ``/healthz``)
    :raises InvalidEventName: if ``event`` is a name bitlens would refuse
    """

    def __init__(
        self,
        user_id: UserIdGetter[_R],
        *,
        event: str | Callable[[_R], str | None] = "request",
        exclude: Iterable[str] = (),
    ) -> None:
        if isinstance(event, str):
            validate_event_name(event)
        self._user_id = user_id
        self._event = event
        self.exclude: tuple[str, ...] = tuple(p.rstrip("/") for p in exclude)
        self._marked = self._anonymous = self._skipped = self._dropped = self._failed = 0
        self._last_log = -float("inf")

    def __repr__(self) -> str:
        return f"<RequestMarker event={self._event!r} exclude={self.exclude!r}>"

    def excludes(self, path: str) -> bool:
        """Return whether ``path`` is under one of the excluded prefixes.

        :param path: the request's path, e.g. ``/health/live``
        """
        return any(path == p or path.startswith(p + "/") or not p for p in self.exclude)

    def skip(self) -> None:
        """Count a request left unmarked on purpose (an excluded path, a dashboard route)."""
        self._skipped += 1

    async def mark(self, tracker: Tracker | None, request: _R) -> bool:
        """Queue the mark of one request; return whether it was queued. Never raises.

        :param tracker: the application's tracker (``None``: not set up, counted failed)
        :param request: the request, passed to ``user_id`` and ``event``
        """
        try:
            found = self._user_id(request)
            user_id = await found if inspect.isawaitable(found) else found
            if user_id is None:
                self._anonymous += 1
                return False
            event = self._event if isinstance(self._event, str) else self._event(request)
            if event is None:
                self._skipped += 1
                return False
            if tracker is None:
                raise LookupError("no bitlens tracker is set up for this application")
            queued = tracker.mark_event_nowait(event, user_id)
        except Exception as exc:  # the request must not fail because of its analytics
            self._failed += 1
            now = time.monotonic()
            if now - self._last_log >= 1.0:
                self._last_log = now
                logger.warning(
                    "bitlens: could not mark a request (%s: %s); %d failed so far",
                    type(exc).__name__,
                    exc,
                    self._failed,
                )
            return False
        if queued:
            self._marked += 1
        else:
            self._dropped += 1
        return queued

    def stats(self) -> MarkingStats:
        """Return a snapshot of the counters."""
        return MarkingStats(
            marked=self._marked,
            anonymous=self._anonymous,
            skipped=self._skipped,
            dropped=self._dropped,
            failed=self._failed,
        )
