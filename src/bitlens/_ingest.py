"""Ingestion at web scale: explicit batches, coalescing and fire-and-forget marking.

Three ways to send marks, all built on :class:`~bitlens._writes.WriteBatch` (one MULTI/EXEC
per node, few commands per key):

* :class:`Batch` — ``async with tracker.batch() as batch: batch.mark_event(...)``; sent on
  exit in one round trip.
* :class:`Coalescer` — with ``Tracker(coalesce=True)``, concurrent ``await mark_event(...)``
  calls from many tasks share batches. The first caller to find no open batch opens it and
  starts its sender, a task the coalescer owns: it waits up to ``Coalesce.delay`` seconds
  (or until ``Coalesce.max_marks`` marks joined), then sends the batch while every caller
  waits on it. A caller's cancellation affects that caller alone. Every caller returns
  only once its mark is in Redis, or raises the error the batch met. At most
  ``Coalesce.max_in_flight`` batches are sent at a time: when Redis is slow, callers wait
  (back-pressure) and memory stays bounded by the number of waiting callers.
* :class:`FireAndForget` — ``tracker.mark_event_nowait(...)`` enqueues and returns at once. A
  background task sends the queue in chunks; a chunk that fails for a passing reason (a
  lost connection, a timeout, ``LOADING``, ``TRYAGAIN``, a failover) stays at the head of
  the queue and is retried with jittered exponential backoff (50 ms doubling to 5 s),
  logged on the ``bitlens`` logger and counted, never raised into the caller. The queue
  holds at most ``Limits.nowait_max_queue`` marks; past that, **new marks are dropped** (counted
  in ``IngestStats.nowait_dropped`` and logged), so a Redis outage can never exhaust
  memory. ``aclose()`` drains the queue (waiting up to its ``drain_timeout``).

One bad mark never poisons the others. When Redis refuses a batch for good (e.g.
``WRONGTYPE``: a foreign value sits at one mark's key), the batch is split in halves and
sent again until the marks Redis refuses are alone: those are rejected — counted in
``IngestStats.rejected``, logged once per reason, and raised as
:class:`~bitlens.MarkRejected` to a coalesced caller — and every other mark is written.
Marks are idempotent, so sending a good mark again is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import anyio
from redis.exceptions import (
    AskError,
    ClusterDownError,
    DataError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from ._exceptions import BitlensError, MarkRejected, TrackerClosed
from ._writes import WriteBatch

if TYPE_CHECKING:
    import datetime as _dt
    from types import TracebackType

    from ._periods import Period

__all__ = [
    "Batch",
    "Coalescer",
    "FireAndForget",
    "IngestStats",
    "MarkItem",
    "Rejections",
    "Sink",
    "is_permanent",
]

logger = logging.getLogger("bitlens")

MarkItem = tuple[str, int, "tuple[Period | None, ...]", int]
"""A validated mark: event, user id, periods (``None`` = unique), value (1 mark, 0 unmark)."""

Flush = Callable[[WriteBatch], Awaitable[None]]
NewBatch = Callable[[], WriteBatch]
Route = Callable[[int], Hashable]

# Error replies that say "not now" rather than "never": the server is loading, a slot is
# moving, the cluster is failing over, a script is busy, the disk is full. (redis-py turns
# some into classes of their own and strips their code; the rest keep it in the text.)
_PASSING_REPLIES = (
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "READONLY",
    "MISCONF",
    "NOREPLICAS",
    "NOSCRIPT",
    "UNBLOCKED",
    "OOM",
    "NOPERM",
    "NOAUTH",
    "WRONGPASS",
    "MOVED",
    "ASK",
)
_PASSING_CLASSES = (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    TryAgainError,
)


def is_permanent(error: BaseException) -> bool:
    """Whether ``error`` says that sending the same marks again can never succeed.

    Permanent: an error reply about the data itself (``WRONGTYPE``, a bit offset or a
    value out of range) and a mark the client cannot encode. Everything else — lost
    connections, timeouts, ``LOADING``, ``TRYAGAIN``, failovers, a full memory, a missing
    permission (fixed by an operator) — may pass, so it is retried, never rejected.

    :param error: what sending a batch raised
    """
    if isinstance(error, ResponseError):
        if isinstance(error, _PASSING_CLASSES):
            return False
        return not str(error).startswith(_PASSING_REPLIES)
    if isinstance(error, BitlensError):  # typed server errors: auth, NOPERM, OOM, closed
        return isinstance(error, ValueError) and not isinstance(error, TrackerClosed)
    return isinstance(error, (DataError, ValueError, TypeError, OverflowError))


async def send_splitting(
    flush: Flush,
    new_batch: NewBatch,
    items: Sequence[MarkItem],
    first: WriteBatch | None = None,
) -> list[tuple[int, Exception]]:
    """Send ``items`` in one round trip; isolate the marks Redis refuses for good.

    On a permanent error (:func:`is_permanent`) the items are split in halves, each sent
    again in order (earlier marks before later ones, so a mark and a later unmark of the
    same bit keep their order), until each refused mark is alone. A good mark may be sent
    more than once, which is harmless: SETBIT is idempotent.

    :param flush: sends one batch
    :param new_batch: makes an empty batch
    :param items: the marks, in order
    :param first: the batch holding all ``items``, if already built
    :returns: ``(index, error)`` for each mark refused for good, in order
    :raises Exception: a passing error (connection, timeout, ...): nothing is rejected
    """
    rejected: list[tuple[int, Exception]] = []

    async def attempt(lo: int, hi: int, writes: WriteBatch | None) -> None:
        if writes is None:
            writes = new_batch()
            for index in range(lo, hi):
                writes.add(*items[index])
        try:
            await flush(writes)
        except Exception as error:
            if not is_permanent(error):
                raise
            if hi - lo == 1:
                rejected.append((lo, error))
                return
            middle = (lo + hi) // 2
            await attempt(lo, middle, None)
            await attempt(middle, hi, None)

    if items:
        await attempt(0, len(items), first)
    return rejected


def _reason(error: BaseException) -> str:
    """A short name for why Redis refused a mark (for logging once per reason)."""
    text = str(error)
    code = text.split(" ", 1)[0]
    return f"{type(error).__name__}: {code if code.isupper() else text[:80]}"


@dataclass(slots=True)
class IngestStats:
    """Counters of a tracker's write paths since it was created.

    :meth:`Tracker.stats` returns a copy taken at the call: changing it changes nothing.

    :param marks_written: marks confirmed written by any path
    :param batches_sent: MULTI/EXEC batches that succeeded
    :param coalesced_batches: of those, batches sent by coalescing ``mark_event`` calls
    :param nowait_enqueued: marks accepted by ``mark_event_nowait``
    :param nowait_written: of those, marks written
    :param nowait_dropped: marks refused because the queue was full (or left at close)
    :param nowait_pending: marks waiting in the queue now
    :param nowait_failures: failed attempts to send a queued chunk (each retried)
    :param rejected: marks Redis refused for good (e.g. ``WRONGTYPE``), by any path; the
        other marks of their batches were written
    """

    marks_written: int = 0
    batches_sent: int = 0
    coalesced_batches: int = 0
    nowait_enqueued: int = 0
    nowait_written: int = 0
    nowait_dropped: int = 0
    nowait_pending: int = 0
    nowait_failures: int = 0
    rejected: int = 0


@dataclass(slots=True)
class Rejections:
    """Counts marks Redis refused for good and logs the first of each reason."""

    reasons_logged: set[str] = field(default_factory=lambda: set[str]())

    def reject(self, item: MarkItem, error: BaseException, tally: IngestStats) -> None:
        """Count a mark Redis refused for good; log the first of each reason.

        :param item: the mark
        :param error: the server's error
        :param tally: the counters to add it to
        """
        tally.rejected += 1
        reason = _reason(error)
        if reason not in self.reasons_logged and len(self.reasons_logged) < 100:
            self.reasons_logged.add(reason)
            logger.error(
                "bitlens: Redis rejected the mark (%r, %d) for good (%s); rejected marks "
                "are counted in stats().rejected, the others are written (further "
                "rejections for this reason are not logged)",
                item[0],
                item[1],
                error,
            )


class Sink(Protocol):
    """What a :class:`Batch` needs from the write side."""

    def validate_mark(
        self,
        event: str,
        user_id: int,
        at: _dt.datetime | _dt.date | None,
        track_hourly: bool | None,
        track_unique: bool | None,
    ) -> tuple[str, int, tuple[Period | None, ...]]:
        """Check a mark; return it with its periods."""
        ...

    def validate_unique(
        self, event: str, user_id: int
    ) -> tuple[str, int, tuple[Period | None, ...]]:
        """Check a UniqueEvents mark; return it with its period."""
        ...

    def new_writes(self) -> WriteBatch:
        """An empty write batch."""
        ...

    async def flush(self, writes: WriteBatch) -> None:
        """Send a write batch in one round trip."""
        ...


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

    :param sink: the write side of the tracker to send with
    """

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._writes = sink.new_writes()

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
            *self._sink.validate_mark(event, user_id, at, track_hourly, track_unique), 1
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
            *self._sink.validate_mark(event, user_id, at, track_hourly, track_unique), 0
        )

    def mark_unique(self, event: str, user_id: int) -> None:
        """Add a mark of ``UniqueEvents(event)``.

        :param event: the event name
        :param user_id: the id
        :raises InvalidUserId: for a bad id
        :raises InvalidEventName: for a bad event name
        """
        self._writes.add(*self._sink.validate_unique(event, user_id), 1)

    def unmark_unique(self, event: str, user_id: int) -> None:
        """Add an unmark of ``UniqueEvents(event)``.

        :param event: the event name
        :param user_id: the id
        :raises InvalidUserId: for a bad id
        :raises InvalidEventName: for a bad event name
        """
        self._writes.add(*self._sink.validate_unique(event, user_id), 0)

    async def flush(self) -> int:
        """Send the marks collected so far in one round trip; return how many were sent.

        If sending fails (or is cancelled), the marks stay in the batch, so calling
        ``flush()`` again sends them.

        :raises TrackerClosed: after the tracker's ``aclose()``
        """
        writes, self._writes = self._writes, self._sink.new_writes()
        try:
            await self._sink.flush(writes)
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

    __slots__ = ("error", "full", "items", "rejected", "route", "waiters", "writes")

    def __init__(self, writes: WriteBatch, route: Hashable) -> None:
        self.writes = writes
        self.route = route
        self.items: list[MarkItem] = []  # in the order of ``waiters``, to split the batch
        self.waiters: list[asyncio.Future[None]] = []
        self.full: asyncio.Future[None] | None = None  # the sender's wake-up, once it waits
        self.error: BaseException | None = None
        self.rejected: dict[int, Exception] = {}  # waiter index → why Redis refused it


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class Coalescer:
    """Merges concurrent marks from many tasks into shared batches (see the module doc).

    Each waiting caller costs one bare asyncio future, woken once by the batch's sender (a
    task the coalescer owns, never a caller's) after the batch is written (no per-caller
    event or cancel scope): at a thousand callers per batch, waking them is a good part of
    the cost of a coalesced mark.

    On a Redis Cluster a batch is open per node (``route`` names the node of a mark's
    shard), so a slow or failing master delays only the callers whose marks live there.

    :param flush: sends one batch
    :param new_batch: makes an empty batch
    :param tally: where to count the batches sent
    :param rejections: where to count and log marks Redis refuses for good
    :param max_marks: a batch is sent as soon as it holds this many marks
    :param delay: the longest a batch waits for company, in seconds
    :param max_in_flight: batches sent at the same time; callers beyond wait
    :param route: the batch a mark's id goes to (``None``: one batch for all)
    """

    def __init__(
        self,
        flush: Flush,
        new_batch: NewBatch,
        tally: IngestStats,
        rejections: Rejections,
        *,
        max_marks: int,
        delay: float,
        max_in_flight: int,
        route: Route | None = None,
    ) -> None:
        self._flush = flush
        self._new_batch = new_batch
        self._tally = tally
        self._rejections = rejections
        self.max_marks = max_marks
        self.delay = delay
        self._route = route
        self._in_flight = anyio.Semaphore(max_in_flight)
        self._open: dict[Hashable, _Shared] = {}
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
        :raises MarkRejected: when Redis refused this mark for good (the others of the
            batch were written)
        :raises Exception: whatever else sending the shared batch raised
        """
        route = None if self._route is None else self._route(user_id)
        shared = self._open.get(route)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if shared is None:
            # The batch is sent by a task the tracker owns, never by a caller's task: a
            # caller's cancellation (anyio's or a plain Task.cancel()) affects it alone.
            shared = self._open[route] = _Shared(self._new_batch(), route)
            self._start(shared)
        index = len(shared.waiters)
        shared.writes.add(event, user_id, periods, value)
        shared.items.append((event, user_id, periods, value))
        shared.waiters.append(waiter)
        if index + 1 >= self.max_marks:
            self._close(shared)
            _wake(shared.full)
        await waiter
        if shared.error is not None:
            # The same exception for every caller of the batch: its type and fields kept.
            raise shared.error.with_traceback(None)
        if shared.rejected:
            refused = shared.rejected.get(index)
            if refused is not None:
                raise MarkRejected(event, user_id, str(refused)) from refused

    def _close(self, shared: _Shared) -> None:
        """Let no more marks join ``shared``."""
        if self._open.get(shared.route) is shared:
            del self._open[shared.route]

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
            if len(shared.writes) < self.max_marks and self._open.get(shared.route) is shared:
                loop = asyncio.get_running_loop()
                full = shared.full = loop.create_future()
                timer = loop.call_later(self.delay, _wake, full)
                try:
                    await full
                finally:
                    timer.cancel()
            self._close(shared)
            async with self._in_flight:
                rejected = await send_splitting(
                    self._flush, self._new_batch, shared.items, shared.writes
                )
            for index, error in rejected:
                shared.rejected[index] = error
                self._rejections.reject(shared.items[index], error, self._tally)
            self._tally.coalesced_batches += 1
        except BaseException as exc:  # the loop shutting down cancels this task too
            shared.error = (
                exc
                if isinstance(exc, Exception)
                else RuntimeError("the coalesced batch was cancelled before it was written")
            )
            if not isinstance(exc, Exception):
                raise
        finally:
            self._close(shared)
            for waiter in shared.waiters:
                _wake(waiter)
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no coalesced batch is waiting or in flight."""
        while self._active:
            await self._idle.wait()


class FireAndForget:
    """The fire-and-forget queue of ``mark_event_nowait``: bounded, and the task sending it.

    :param flush: sends one batch
    :param new_batch: makes an empty batch
    :param tally: where to count
    :param rejections: where to count and log marks Redis refuses for good
    :param max_queue: the most marks held; new marks beyond are dropped and counted
    :param chunk: marks sent per round trip
    """

    def __init__(
        self,
        flush: Flush,
        new_batch: NewBatch,
        tally: IngestStats,
        rejections: Rejections,
        *,
        max_queue: int,
        chunk: int,
    ) -> None:
        self._flush = flush
        self._new_batch = new_batch
        self._tally = tally
        self._rejections = rejections
        self.max_queue = max_queue
        self.chunk = chunk
        self._queue: deque[MarkItem] = deque()
        self._wake = anyio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._warned = False
        self._last_drop_log = -math.inf

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, item: MarkItem) -> bool:
        """Enqueue a mark without waiting; return False if the queue was full (dropped).

        :param item: a validated mark
        """
        if len(self._queue) >= self.max_queue:
            self._tally.nowait_dropped += 1
            now = anyio.current_time()
            if now - self._last_drop_log > 1.0:
                self._last_drop_log = now
                logger.warning(
                    "bitlens: fire-and-forget queue full (%d marks); dropping new marks "
                    "(%d dropped so far)",
                    self.max_queue,
                    self._tally.nowait_dropped,
                )
            return False
        self._queue.append(item)
        self._tally.nowait_enqueued += 1
        self._wake.set()
        if self._task is None:  # redis.asyncio ties the tracker to asyncio's loop anyway
            self._task = asyncio.get_running_loop().create_task(self._run())
        return True

    async def _run(self) -> None:
        backoff = 0.05
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wake = anyio.Event()
                    await self._wake.wait()
                    continue
                items = [self._queue[i] for i in range(min(self.chunk, len(self._queue)))]
                try:
                    rejected = await send_splitting(self._flush, self._new_batch, items)
                except Exception as exc:  # a passing error: retried, never given up silently
                    self._tally.nowait_failures += 1
                    # Jittered, so that many processes do not all come back at once.
                    pause = backoff * random.uniform(0.5, 1.0)
                    logger.warning(
                        "bitlens: sending %d queued marks failed (%s: %s); retrying in %.2fs",
                        len(items),
                        type(exc).__name__,
                        exc,
                        pause,
                    )
                    await anyio.sleep(pause)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.05
                for _ in items:
                    self._queue.popleft()
                for index, error in rejected:
                    self._rejections.reject(items[index], error, self._tally)
                self._tally.nowait_written += len(items) - len(rejected)
        except asyncio.CancelledError:
            if self._queue and not self._closing:
                # Cancelled from outside, e.g. asyncio.run() ending with the tracker open.
                self.warn_unsent()
            raise

    def warn_unsent(self) -> None:
        """Warn (``ResourceWarning`` and the ``bitlens`` logger) that queued marks are lost."""
        if self._warned or not self._queue:
            return
        self._warned = True
        message = (
            f"bitlens: a Tracker was not closed: {len(self._queue)} marks queued with "
            "mark_event_nowait() were never sent (await tracker.aclose() before the event "
            "loop ends, or use `async with Tracker(...)`)"
        )
        logger.error(message)
        warnings.warn(message, ResourceWarning, stacklevel=2)

    async def drain(self, limit: float | None) -> None:
        """Wait until the queue is empty, then stop the task; drop what is left at the limit.

        :param limit: seconds to wait (None: as long as it takes)
        """
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            with anyio.move_on_after(math.inf if limit is None else limit):
                await asyncio.shield(task)
        finally:
            # Also when drain() itself is cancelled: the sender must not outlive close.
            if not task.done():
                task.cancel()
                with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError):
                    await task
            self._drop_left()

    def _drop_left(self) -> None:
        if self._queue:
            left = len(self._queue)
            self._tally.nowait_dropped += left
            self._queue.clear()
            logger.error("bitlens: closing with %d queued marks unsent (dropped)", left)
