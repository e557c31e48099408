"""Marking load for fault scenarios: many tasks marking while a fault is injected.

Each writer marks increasing ids of its own (``first, first + step, ...``) through one write
path, recording every attempt and every acknowledgement in the scenario's :class:`Ledger`.
A mark that raised is only *attempted*: it may or may not have been written.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio
from redis.exceptions import RedisError

from bitlens import BitlensError

if TYPE_CHECKING:
    from bitlens import Tracker
    from faults._invariants import Ledger

__all__ = ["AT", "Load", "WritePath", "run_writer"]

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)

WritePath = Literal["plain", "coalesced", "mark_events"]


@dataclass
class Load:
    """What the writers did, and an event set once they have done ``warm`` acknowledgements.

    :param warm: acknowledgements after which :attr:`under_way` is set
    """

    warm: int = 50
    acked: int = 0
    failed: int = 0
    errors: list[BaseException] = field(default_factory=lambda: list[BaseException]())
    under_way: anyio.Event = field(default_factory=anyio.Event)
    _goal: int = 0
    _reached: anyio.Event = field(default_factory=anyio.Event)

    def ok(self, count: int = 1) -> None:
        """Count acknowledgements."""
        self.acked += count
        if self.acked >= self.warm:
            self.under_way.set()
        if self.acked >= self._goal:
            self._reached.set()

    async def more(self, count: int) -> None:
        """Wait (at most 20 s) until ``count`` more marks than now were acknowledged."""
        self._goal, self._reached = self.acked + count, anyio.Event()
        with anyio.fail_after(20):
            await self._reached.wait()


async def run_writer(
    tracker: Tracker,
    ledger: Ledger,
    load: Load,
    path: WritePath,
    first: int,
    step: int,
    *,
    event: str = "active",
    pause: float = 0.0,
) -> None:
    """Mark ids ``first, first + step, ...`` through ``path`` until cancelled.

    :param tracker: the tracker under test
    :param ledger: where attempts and acknowledgements go
    :param load: the shared tally
    :param path: ``plain`` (one ``mark_event`` at a time), ``coalesced`` (the same, on a
        coalescing tracker) or ``mark_events`` (chunks of 25)
    :param first: the first id
    :param step: the distance between ids
    :param event: the event name
    :param pause: seconds between calls (0: back to back)
    """
    ids = itertools.count(first, step)
    while True:
        chunk = [next(ids) for _ in range(25 if path == "mark_events" else 1)]
        for uid in chunk:
            ledger.attempt(event, uid, AT)
        try:
            if path == "mark_events":
                await tracker.mark_events([(event, uid, AT) for uid in chunk])
            else:
                await tracker.mark_event(event, chunk[0], AT)
        except (RedisError, BitlensError) as error:
            load.failed += 1
            load.errors.append(error)
            await anyio.sleep(0.01)
        else:
            for uid in chunk:
                ledger.ack(event, uid, AT)
            load.ok(len(chunk))
        await anyio.sleep(pause)
