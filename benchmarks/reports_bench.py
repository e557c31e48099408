"""Product reports beside the way a bitmapist user computes the same numbers: cell by cell.

    python benchmarks/reports_bench.py [--quick] [--server PATH] [--output PATH]

bitmapist has no engagement, lifecycle, stickiness or funnel report: its users compute each
number of one with its own ``BitOpOr``/``BitOpAnd`` and ``len()``, a round trip per number
at least. Both sides run on the same pinned server (redis-server on CPU 0, this process on
CPU 1) and the same bitmaps (bitlens' keys, one shard), taking turns in rounds:

* **bitlens**: ``await tracker.engagement(...)`` (rolling 1/7/30 days at 90 daily points),
  ``lifecycle(...)`` (13 weeks, new by history), ``stickiness(...)`` (30 days) and
  ``funnel(...)`` (3 steps over 30 days, any order), one round trip each;
* **cell by cell**: for every number, one pipelined round trip of the ``BITOP``\\ s that make
  it, a ``BITCOUNT`` and a ``DEL`` (kinder than bitmapist, which sends each ``BITOP`` and the
  ``BITCOUNT`` in round trips of their own); stickiness, which bitmapist cannot express in
  ``BITOP``\\ s, ``GET``\\ s the 30 day bitmaps and counts each user's days in Python.

Both sides' numbers are compared (the benchmark fails if they differ); latency is the median
of the rounds. No figure is asserted: ``--quick`` (tiny data) checks that it runs and agrees.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio
from common import (  # beside this file
    SEED,
    cpu_model,
    log,
    median,
    newest_server,
    pinned,
    start_server,
    table,
)

from bitlens import Day, Tracker, Week

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from bitlens import Period

UTC = dt.timezone.utc
FIRST = dt.date(2026, 8, 1)
DAYS = 120
PREFIX = "rb"
STEPS = ("visit", "cart", "buy")


async def _prepare(url: str, users: int) -> Tracker:
    """Mark ``users`` users on random days of ``DAYS`` (active, and a funnel's steps)."""
    rng = random.Random(SEED)
    tracker = Tracker(url, prefix=PREFIX)
    marks: list[tuple[str, int, dt.datetime]] = []
    for user in range(users):
        activity = rng.random()
        for n in range(DAYS):
            if rng.random() < activity * 0.3:
                at = dt.datetime.combine(FIRST + dt.timedelta(days=n), dt.time(12), UTC)
                marks.append(("active", user, at))
        day = FIRST + dt.timedelta(days=rng.randrange(DAYS))
        for step in STEPS:
            if rng.random() < 0.5:
                break
            at = dt.datetime.combine(day, dt.time(12), UTC)
            marks.append((step, user, at))
            day += dt.timedelta(days=rng.randrange(3))
    for lo in range(0, len(marks), 50_000):
        await tracker.mark_events(marks[lo : lo + 50_000])
    return tracker


class CellByCell:
    """Every number of a report, one pipelined round trip each (BITOPs, BITCOUNT, DEL)."""

    def __init__(self, client: redis.asyncio.Redis, tracker: Tracker) -> None:
        self.client = client
        self.schema = tracker.schema

    def key(self, event: str, period: Period) -> str:
        """The bitmap of ``event`` in ``period`` (shard 0: the data fits one shard)."""
        return self.schema.event_key(event, period, 0)

    async def cell(self, ops: Sequence[tuple[str, str, Sequence[str]]], result: str) -> int:
        """Run ``ops`` (``(op, dest, sources)``), count ``result``, delete every dest."""
        pipe = self.client.pipeline(transaction=False)
        for op, dest, sources in ops:
            pipe.bitop(op, dest, *sources)
        pipe.bitcount(result)
        dests = [dest for _, dest, _ in ops]
        if dests:
            pipe.delete(*dests)
        replies: list[Any] = await pipe.execute()
        return int(replies[len(ops)])

    async def union_count(self, keys: Sequence[str]) -> int:
        """``len(BitOpOr(*keys))``."""
        return await self.cell([("OR", "cell:t", keys)], "cell:t")


def _days(first: dt.date, last: dt.date) -> list[Day]:
    return [Day.from_datetime(first + dt.timedelta(days=n)) for n in range((last - first).days + 1)]


async def engagement_cells(side: CellByCell, first: dt.date, last: dt.date) -> list[int]:
    """DAU, WAU, MAU (rolling) at each day: one OR and BITCOUNT per number."""
    out = []
    for day in _days(first, last):
        end = day.to_date()
        for width in (1, 7, 30):
            keys = [side.key("active", d) for d in _days(end - dt.timedelta(days=width - 1), end)]
            out.append(await side.union_count(keys))
    return out


async def lifecycle_cells(side: CellByCell, weeks: list[Week], since: Week) -> list[int]:
    """New, returning, resurrecting, dormant per week, new meaning unseen since ``since``."""
    out = []
    for week in weeks:
        active, previous = side.key("active", week), side.key("active", week.prev())
        history = [
            side.key("active", since.delta(i)) for i in range(week.ordinal() - since.ordinal())
        ]
        seen: list[tuple[str, str, Sequence[str]]] = [("OR", "cell:h", history)] if history else []
        seen_key = "cell:h" if history else "cell:empty"
        # new = active - seen
        out.append(
            await side.cell(
                [
                    *seen,
                    ("AND", "cell:a", [active, seen_key]),
                    ("XOR", "cell:n", [active, "cell:a"]),
                ],
                "cell:n",
            )
        )
        out.append(await side.cell([("AND", "cell:r", [active, previous])], "cell:r"))
        # resurrecting = (active & seen) - previous
        out.append(
            await side.cell(
                [
                    *seen,
                    ("AND", "cell:a", [active, seen_key]),
                    ("AND", "cell:b", ["cell:a", previous]),
                    ("XOR", "cell:s", ["cell:a", "cell:b"]),
                ],
                "cell:s",
            )
        )
        out.append(
            -await side.cell(
                [("AND", "cell:b", [previous, active]), ("XOR", "cell:d", [previous, "cell:b"])],
                "cell:d",
            )
        )
    return out


async def stickiness_cells(side: CellByCell, first: dt.date, last: dt.date) -> list[int]:
    """GET every day's bitmap, count each user's active days in Python."""
    days = _days(first, last)
    pipe = side.client.pipeline(transaction=False)
    for day in days:
        pipe.get(side.key("active", day))
    bitmaps: list[bytes | None] = await pipe.execute()
    per_user: dict[int, int] = {}
    for data in bitmaps:
        for i, byte in enumerate(data or b""):
            if byte:
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        user = i * 8 + bit
                        per_user[user] = per_user.get(user, 0) + 1
    exactly = [0] * len(days)
    for count in per_user.values():
        exactly[count - 1] += 1
    return exactly


async def funnel_cells(side: CellByCell, first: dt.date, last: dt.date) -> list[int]:
    """Users who did steps 1..i in the window, any order: an AND chain per step."""
    out = []
    days = _days(first, last)
    for i in range(len(STEPS)):
        ops: list[tuple[str, str, Sequence[str]]] = [
            ("OR", f"cell:s{j}", [side.key(STEPS[j], d) for d in days]) for j in range(i + 1)
        ]
        ops.append(("AND", "cell:f", [f"cell:s{j}" for j in range(i + 1)]))
        out.append(await side.cell(ops, "cell:f"))
    return out


async def _timed(call: Callable[[], Awaitable[list[int]]]) -> tuple[float, list[int]]:
    start = time.perf_counter()
    answer = await call()
    return time.perf_counter() - start, answer


async def _round(url: str, results: dict[str, dict[str, list[float]]]) -> None:
    """One round: every report on both sides, answers compared."""
    tracker = Tracker(url, prefix=PREFIX)
    client = redis.asyncio.Redis.from_url(url)
    side = CellByCell(client, tracker)
    try:
        eng = (FIRST + dt.timedelta(days=29), FIRST + dt.timedelta(days=118))
        weeks_first = Week.from_datetime(FIRST + dt.timedelta(days=14))
        weeks = [weeks_first.delta(i) for i in range(13)]
        since = Week.from_datetime(FIRST)
        sticky = (FIRST + dt.timedelta(days=60), FIRST + dt.timedelta(days=89))

        async def bl_engagement() -> list[int]:
            report = await tracker.engagement("active", *eng)
            return [p.counts[w] for p in report.points for w in ("day", "week", "month")]

        async def bl_lifecycle() -> list[int]:
            report = await tracker.lifecycle(
                "active", weeks[0].start, weeks[-1].start, first=since.start
            )
            return [
                v for p in report.points for v in (p.new, p.returning, p.resurrecting, p.dormant)
            ]

        async def bl_stickiness() -> list[int]:
            return list((await tracker.stickiness("active", *sticky)).rows[0].exactly)

        async def bl_funnel() -> list[int]:
            return list((await tracker.funnel(STEPS, *sticky, ordered=False)).rows[0].counts)

        pairs: dict[
            str, tuple[Callable[[], Awaitable[list[int]]], Callable[[], Awaitable[list[int]]]]
        ] = {
            "engagement, 90 days x 3 windows": (
                bl_engagement,
                lambda: engagement_cells(side, *eng),
            ),
            "lifecycle, 13 weeks": (bl_lifecycle, lambda: lifecycle_cells(side, weeks, since)),
            "stickiness, 30 days": (bl_stickiness, lambda: stickiness_cells(side, *sticky)),
            "funnel, 3 steps over 30 days": (bl_funnel, lambda: funnel_cells(side, *sticky)),
        }
        for name, (ours, theirs) in pairs.items():
            t_ours, a_ours = await _timed(ours)
            t_theirs, a_theirs = await _timed(theirs)
            if a_ours != a_theirs:
                raise SystemExit(
                    f"{name}: bitlens {a_ours[:8]}... != cell by cell {a_theirs[:8]}..."
                )
            entry = results.setdefault(name, {"bitlens": [], "cells": []})
            entry["bitlens"].append(t_ours)
            entry["cells"].append(t_theirs)
    finally:
        await client.aclose()
        await tracker.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the Markdown table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, one round")
    parser.add_argument("--server", default=None, help="redis-server binary")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of both sides")
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown here")
    args = parser.parse_args(argv)
    users = 2_000 if args.quick else 100_000
    rounds = args.rounds or (1 if args.quick else 7)
    binary = args.server or newest_server()
    results: dict[str, dict[str, list[float]]] = {}
    with pinned() as pin:
        server = start_server(binary, pin)
        try:
            log(f"marking {users:,} users over {DAYS} days ...")
            tracker = asyncio.run(_prepare(server.url, users))
            del tracker
            for n in range(rounds):
                log(f"round {n + 1}/{rounds}")
                asyncio.run(_round(server.url, results))
        finally:
            server.stop()
    rows = []
    for name, sides in results.items():
        ours, theirs = median(sides["bitlens"]) * 1e3, median(sides["cells"]) * 1e3
        rows.append([name, f"{ours:.1f} ms", f"{theirs:.1f} ms", f"{ours / theirs:.2f}x"])
    when = dt.date.today().isoformat()
    markdown = (
        f"Reports on {users:,} users, one pinned redis-server ({Path(binary).name}), "
        f"{cpu_model()}, {when}, median of {rounds} rounds:\n\n"
        + table(["report", "bitlens (1 round trip)", "cell by cell", "ratio"], rows)
        + "\n"
    )
    sys.stdout.write(markdown)
    if args.output is not None:
        args.output.write_text(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
