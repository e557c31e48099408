"""Set-up shared by the fault scenarios (not fixtures): loop turns and cancel sweeps."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

__all__ = ["CancelSweep", "cancel_at_every_turn", "spin"]


async def spin(turns: int) -> None:
    """Give the event loop ``turns`` turns (``asyncio.sleep(0)`` each).

    :param turns: how many turns
    """
    for _ in range(turns):
        await asyncio.sleep(0)


class CancelSweep:
    """How a :func:`cancel_at_every_turn` sweep ended.

    :param cancelled: how many calls the cancel cut short
    :param streak: how many calls in a row finished before their cancel, at the end
    """

    def __init__(self, cancelled: int, streak: int) -> None:
        self.cancelled = cancelled
        self.streak = streak


async def cancel_at_every_turn(
    start: Callable[[int], Coroutine[object, object, object]],
    max_turns: int,
    after: Callable[[int, bool], Awaitable[None]] | None = None,
) -> CancelSweep:
    """Run ``start(turns)`` as a task and cancel it after ``turns`` loop turns, for
    ``turns`` = 0, 1, 2, ... until three calls in a row finish first (or ``max_turns``).

    :param start: the call under test for one ``turns`` value
    :param max_turns: the most turns to try
    :param after: awaited after each call with ``turns`` and whether the call finished
    """
    cancelled = streak = 0
    for turns in range(max_turns):
        task = asyncio.ensure_future(start(turns))
        await spin(turns)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            finished = False
            cancelled, streak = cancelled + 1, 0
        else:
            finished = True
            streak += 1
        if after is not None:
            await after(turns, finished)
        if streak == 3:
            break
    return CancelSweep(cancelled, streak)
