"""A batch call cancelled again and again never leaves its chunk in flight behind.

``mark_events`` and ``mark_bulk`` keep one chunk in flight (a task of their own) while
they build the next. When the call ends early — cancelled, or stopped by a bad item — it
waits for that chunk to finish before it raises. These scenarios cancel the caller, a plain
asyncio task, on every loop turn from some point on (an anyio shield holds off anyio
cancel scopes, not ``Task.cancel()``), and check that when the call has raised, no task it
started is still running and no chunk's error went unobserved.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import importlib.util
from typing import TYPE_CHECKING, Any

import pytest

from bitlens import DayEvents, InvalidEventName, Limits, Tracker

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
TURNS = range(0, 60, 3)
"""Where the first cancel lands: before, inside and after the first chunks' round trips."""


@pytest.fixture
def anyio_backend() -> str:
    """These scenarios cancel plain asyncio tasks."""
    return "asyncio"


async def _cancel_from(
    call: Callable[[], Coroutine[Any, Any, object]], turns: int
) -> tuple[BaseException | None, list[asyncio.Task[Any]]]:
    """Run ``call()``, cancel it after ``turns`` turns and on every turn after; return
    what it raised and the tasks it started that are still not done once it has."""
    before = asyncio.all_tasks()
    task = asyncio.ensure_future(call())
    for _ in range(turns):
        await asyncio.sleep(0)
    while not task.done():
        task.cancel()
        await asyncio.sleep(0)
    raised = task.exception() if not task.cancelled() else asyncio.CancelledError()
    left = [t for t in asyncio.all_tasks() - before if t is not task and not t.done()]
    return raised, left


def _unobserved() -> Callable[[], list[str]]:
    """Collect what the loop reports as never retrieved; call the result to read it."""
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: seen.append(str(context.get("message"))))

    def read() -> list[str]:
        gc.collect()
        loop.set_exception_handler(previous)
        return seen

    return read


async def test_mark_events_cancelled_on_every_turn_leaves_no_chunk_running(
    redis_url: str, prefix: str
) -> None:
    """mark_events of 5 chunks, cancelled on every turn from turn k: no chunk task outlives it."""
    unobserved = _unobserved()
    tracker = Tracker(redis_url, prefix=prefix, limits=Limits(mark_chunk_size=50))
    try:
        await tracker.mark_event("warm", 1, AT)
        for turns in TURNS:
            marks = [(f"e{turns}", uid, AT) for uid in range(250)]
            raised, left = await _cancel_from(lambda: tracker.mark_events(marks), turns)  # noqa: B023
            assert left == [], turns
            assert raised is None or isinstance(raised, asyncio.CancelledError), turns
    finally:
        await tracker.aclose()
    assert unobserved() == []


async def test_a_bad_item_then_cancels_still_settle_the_chunk_in_flight(
    redis_url: str, prefix: str
) -> None:
    """A bad item stops mark_events; cancelled while it waits for the chunk in flight, it
    still waits, raises CancelledError, and the chunk before the bad item is in Redis."""
    unobserved = _unobserved()
    tracker = Tracker(redis_url, prefix=prefix, limits=Limits(mark_chunk_size=50))
    try:
        await tracker.mark_event("warm", 1, AT)
        for turns in TURNS:
            good: list[object] = [(f"b{turns}", uid, AT) for uid in range(50)]
            marks = [*good, ("bad name", 1, AT)]
            raised, left = await _cancel_from(lambda: tracker.mark_events(marks), turns)  # type: ignore[arg-type]  # noqa: B023
            assert left == [], turns
            assert isinstance(raised, (asyncio.CancelledError, InvalidEventName)), turns
            if isinstance(raised, InvalidEventName):  # the chunk before it was written
                assert await tracker.count(DayEvents(f"b{turns}", 2026, 11, 27)) == 50
    finally:
        await tracker.aclose()
    assert unobserved() == []


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="mark_bulk needs numpy")
async def test_mark_bulk_cancelled_on_every_turn_leaves_no_chunk_running(
    redis_url: str, prefix: str
) -> None:
    """mark_bulk of 5 chunks, cancelled on every turn from turn k: no chunk task outlives it."""
    unobserved = _unobserved()
    tracker = Tracker(redis_url, prefix=prefix)
    try:
        await tracker.mark_event("warm", 1, AT)
        for turns in TURNS:
            ids = list(range(0, 5000, 7))
            times = [AT] * len(ids)
            raised, left = await _cancel_from(
                lambda: tracker.mark_bulk(f"k{turns}", ids, times, chunk_size=150),  # noqa: B023
                turns,
            )
            assert left == [], turns
            assert raised is None or isinstance(raised, asyncio.CancelledError), turns
    finally:
        await tracker.aclose()
    assert unobserved() == []
