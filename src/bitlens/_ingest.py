"""Ingestion at web scale: explicit batches, coalescing and fire-and-forget marking.

Three ways to send marks, all built on :class:`~bitlens._writes.WriteBatch` (one MULTI/EXEC
per node, few commands per key):

* :class:`Batch` — ``async with tracker.batch() as batch: batch.mark_event(...)``; sent on
  exit in one round trip.
* :class:`Coalescer` — with ``Tracker(coalesce=True)``, concurrent ``await mark_event(...)``
  calls from many tasks share batches. The first caller to find no open batch opens it and
  starts its sender, a task the coalescer owns: it waits up to ``coalesce_delay`` seconds
  (or until ``coalesce_max_marks`` marks joined), then sends the batch while every caller
  waits on it. A caller's cancellation affects that caller alone. Every caller returns
  only once its mark is in Redis, or raises the error the batch met. At most
  ``coalesce_max_in_flight`` batches are sent at a time: when Redis is slow, callers wait
  (back-pressure) and memory stays bounded by the number of waiting callers.
* :class:`Background` — ``tracker.mark_event_nowait(...)`` enqueues and returns at once. A
  background task sends the queue in chunks; a failed chunk stays at the head of the queue
  and is retried with exponential backoff (50 ms doubling to 5 s), logged on the
  ``bitlens`` logger and counted, never raised into the caller. The queue holds at most
  ``nowait_max_queue`` marks; past that, **new marks are dropped** (counted in
  ``IngestStats.nowait_dropped`` and logged), so a Redis outage can never exhaust memory.
  ``aclose()`` drains the queue (waiting up to its ``drain_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ._writes import WriteBatch

if TYPE_CHECKING:
    import datetime as _dt
    from types import TracebackType

    from ._periods import Period
    from ._tracker import Tracker

__all__ = ["Background", "Batch", "Coalescer", "IngestStats", "MarkItem"]

logger = logging.getLogger("bitlens")

MarkItem = tuple[str, int, "tuple[Period | None, ...]", int]
"""A validated mark: event, user id, periods (``None`` = unique), value (1 mark, 0 unmark)."""

Flush = Callable[[WriteBatch], Awaitable[None]]
NewBatch = Callable[[], WriteBatch]


@dataclass(frozen=True, slots=True)
class IngestStats:
    """Counters of a tracker's write paths since it was created.

    :param marks_written: marks confirmed written by any path
    :param batches_sent: MULTI/EXEC batches that succeeded
    :param coalesced_batches: of those, batches sent by coalescing ``mark_event`` calls
    :param nowait_enqueued: marks accepted by ``mark_event_nowait``
    :param nowait_written: of those, marks written
    :param nowait_dropped: marks refused because the queue was full (or left at close)
    :param nowait_pending: marks waiting in the queue now
    :param nowait_failures: failed attempts to send a queued chunk (each retried)
    """

    marks_written: int = 0
    batches_sent: int = 0
    coalesced_batches: int = 0
    nowait_enqueued: int = 0
    nowait_written: int = 0
    nowait_dropped: int = 0
    nowait_pending: int = 0
    nowait_failures: int = 0


@dataclass(slots=True)
class Counters:
    """The mutable counters behind :class:`IngestStats`."""

    marks_written: int = 0
    batches_sent: int = 0
    coalesced_batches: int = 0
    nowait_enqueued: int = 0
    nowait_written: int = 0
    nowait_dropped: int = 0
    nowait_failures: int = 0


class Batch:
    """Marks collected in memory and sent together, in one round trip per node.

    Made by :meth:`Tracker.batch`. Bad input raises at once, when the mark is added; the
    batch is sent when the ``async with`` block exits normally (or on :meth:`flush`), and
    discarded if the block raises.

    Example::

        async with tracker.batch() as batch:
            for user_id in active_ids:
                batch.mark_event("active", user_id)
        # one round trip for all of them

    :param tracker: the tracker to send with
    """

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self._writes = tracker._new_writes()

    def __len__(self) -> int:
        return len(self._writes)

    def mark_event(
        self,
        event: str,
        user_id: int,
        at: _dt.datetime | _dt.date | None = None,
        *,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
    ) -> None:
        """Add a mark (see :meth:`Tracker.mark_event`).

        :param event: the event name
        :param user_id: the id
        :param at: when it happened (default: now)
        :param track_hourly: also set the hour bit
        :param track_unique: also set the UniqueEvents bit
        :raises InvalidUserId: for a bad id
        :raises InvalidEventName: for a bad event name
        """
        self._writes.add(
            *self._tracker._validate_mark(event, user_id, at, track_hourly, track_unique), 1
        )

    def unmark_event(
        self,
        event: str,
        user_id: int,
        at: _dt.datetime | _dt.date | None = None,
        *,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
    ) -> None:
        """Add an unmark (see :meth:`Tracker.unmark_event`).

        :param event: the event name
        :param user_id: the id
        :param at: which periods to clear (default: now)
        :param track_hourly: also clear the hour bit
        :param track_unique: also clear the UniqueEvents bit
        :raises InvalidUserId: for a bad id
        :raises InvalidEventName: for a bad event name
        """
        self._writes.add(
            *self._tracker._validate_mark(event, user_id, at, track_hourly, track_unique), 0
        )

    def mark_unique(self, event: str, user_id: int) -> None:
        """Add a mark of ``UniqueEvents(event)``.

        :param event: the event name
        :param user_id: the id
        :raises InvalidUserId: for a bad id
        :raises InvalidEventName: for a bad event name
        """
        self._writes.add(*self._tracker._validate_unique(event, user_id), 1)

    def unmark_unique(self, event: str, user_id: int) -> None:
        """Add an unmark of ``UniqueEvents(event)``.

        :param event: the event name
        :param user_id: the id
        :raises InvalidUserId: for a bad id
        :raises InvalidEventName: for a bad event name
        """
        self._writes.add(*self._tracker._validate_unique(event, user_id), 0)

    async def flush(self) -> int:
        """Send the marks collected so far in one round trip; return how many were sent.

        If sending fails (or is cancelled), the marks stay in the batch, so calling
        ``flush()`` again sends them.

        :raises TrackerClosed: after the tracker's ``aclose()``
        """
        writes, self._writes = self._writes, self._tracker._new_writes()
        try:
            await self._tracker._flush(writes)
        except BaseException:
            if not self._writes:  # nothing added meanwhile: keep the marks for a retry
                self._writes = writes
            raise
        return len(writes)

    async def __aenter__(self) -> Batch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.flush()


class _Shared:
    """One batch being coalesced: its marks, the futures of the callers waiting on it."""

    __slots__ = ("error", "full", "waiters", "writes")

    def __init__(self, writes: WriteBatch) -> None:
        self.writes = writes
        self.waiters: list[asyncio.Future[None]] = []
        self.full: asyncio.Future[None] | None = None  # the sender's wake-up, once it waits
        self.error: BaseException | None = None


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class Coalescer:
    """Merges concurrent marks from many tasks into shared batches (see the module doc).

    Each waiting caller costs one bare asyncio future, woken once by the batch's sender (a
    task the coalescer owns, never a caller's) after the batch is written (no per-caller
    event or cancel scope): at a thousand callers per batch, waking them is a good part of
    the cost of a coalesced mark.

    :param flush: sends one batch
    :param new_batch: makes an empty batch
    :param counters: where to count the batches sent
    :param max_marks: a batch is sent as soon as it holds this many marks
    :param delay: the longest a batch waits for company, in seconds
    :param max_in_flight: batches sent at the same time; callers beyond wait
    """

    def __init__(
        self,
        flush: Flush,
        new_batch: NewBatch,
        counters: Counters,
        *,
        max_marks: int,
        delay: float,
        max_in_flight: int,
    ) -> None:
        self._flush = flush
        self._new_batch = new_batch
        self._counters = counters
        self.max_marks = max_marks
        self.delay = delay
        self._in_flight = anyio.Semaphore(max_in_flight)
        self._open: _Shared | None = None
        self._active = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[None]] = set()  # the batches being sent

    async def add(
        self, event: str, user_id: int, periods: tuple[Period | None, ...], value: int
    ) -> None:
        """Add one validated mark and return once the batch holding it is written.

        A caller cancelled while it waits leaves its mark in the batch, which is still
        sent for the others: the batch is sent by a task the tracker owns.

        :param event: the event name
        :param user_id: the id
        :param periods: the periods to write (``None``: UniqueEvents)
        :param value: 1 to mark, 0 to unmark
        :raises Exception: whatever sending the shared batch raised
        """
        shared = self._open
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if shared is None:
            # The batch is sent by a task the tracker owns, never by a caller's task: a
            # caller's cancellation (anyio's or a plain Task.cancel()) affects it alone.
            shared = self._open = _Shared(self._new_batch())
            shared.writes.add(event, user_id, periods, value)
            shared.waiters.append(waiter)
            self._start(shared)
        else:
            shared.writes.add(event, user_id, periods, value)
            shared.waiters.append(waiter)
            if len(shared.writes) >= self.max_marks:
                self._open = None
                _wake(shared.full)
        await waiter
        if shared.error is not None:
            # The same exception for every caller of the batch: its type and fields kept.
            raise shared.error.with_traceback(None)

    def _start(self, shared: _Shared) -> None:
        if self._active == 0:
            self._idle = anyio.Event()
        self._active += 1
        task = asyncio.get_running_loop().create_task(self._send(shared))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, shared: _Shared) -> None:
        """Wait for company (or a full batch), then send it; wake every caller in it."""
        try:
            if self._open is shared and len(shared.writes) < self.max_marks:
                loop = asyncio.get_running_loop()
                full = shared.full = loop.create_future()
                timer = loop.call_later(self.delay, _wake, full)
                try:
                    await full
                finally:
                    timer.cancel()
            if self._open is shared:
                self._open = None
            async with self._in_flight:
                await self._flush(shared.writes)
            self._counters.coalesced_batches += 1
        except BaseException as exc:  # the loop shutting down cancels this task too
            shared.error = (
                exc
                if isinstance(exc, Exception)
                else RuntimeError("the coalesced batch was cancelled before it was written")
            )
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._open is shared:
                self._open = None
            for waiter in shared.waiters:
                _wake(waiter)
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no coalesced batch is waiting or in flight."""
        while self._active:
            await self._idle.wait()


class Background:
    """A bounded queue of fire-and-forget marks and the task that sends it.

    :param flush: sends one batch
    :param new_batch: makes an empty batch
    :param counters: where to count
    :param max_queue: the most marks held; new marks beyond are dropped and counted
    :param chunk: marks sent per round trip
    """

    def __init__(
        self, flush: Flush, new_batch: NewBatch, counters: Counters, *, max_queue: int, chunk: int
    ) -> None:
        self._flush = flush
        self._new_batch = new_batch
        self._counters = counters
        self.max_queue = max_queue
        self.chunk = chunk
        self._queue: deque[MarkItem] = deque()
        self._wake = anyio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_drop_log = -math.inf

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, item: MarkItem) -> bool:
        """Enqueue a mark without waiting; return False if the queue was full (dropped).

        :param item: a validated mark
        """
        if len(self._queue) >= self.max_queue:
            self._counters.nowait_dropped += 1
            now = anyio.current_time()
            if now - self._last_drop_log > 1.0:
                self._last_drop_log = now
                logger.warning(
                    "bitlens: fire-and-forget queue full (%d marks); dropping new marks "
                    "(%d dropped so far)",
                    self.max_queue,
                    self._counters.nowait_dropped,
                )
            return False
        self._queue.append(item)
        self._counters.nowait_enqueued += 1
        self._wake.set()
        if self._task is None:  # redis.asyncio ties the tracker to asyncio's loop anyway
            self._task = asyncio.get_running_loop().create_task(self._run())
        return True

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            items = [self._queue[i] for i in range(min(self.chunk, len(self._queue)))]
            writes = self._new_batch()
            for item in items:
                writes.add(*item)
            try:
                await self._flush(writes)
            except Exception as exc:  # retried: a queued mark is never given up silently
                self._counters.nowait_failures += 1
                logger.warning(
                    "bitlens: sending %d queued marks failed (%s: %s); retrying in %.2fs",
                    len(items),
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.05
            for _ in items:
                self._queue.popleft()
            self._counters.nowait_written += len(items)

    async def drain(self, limit: float | None) -> None:
        """Wait until the queue is empty, then stop the task; drop what is left at the limit.

        :param limit: seconds to wait (None: as long as it takes)
        """
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        with anyio.move_on_after(math.inf if limit is None else limit):
            await asyncio.shield(task)
        if not task.done():
            task.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError):
                await task
        if self._queue:
            left = len(self._queue)
            self._counters.nowait_dropped += left
            self._queue.clear()
            logger.error("bitlens: closing with %d queued marks unsent (dropped)", left)
