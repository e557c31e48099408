"""``bitlens demo``: mark synthetic activity, then answer the questions bitlens is for."""

from __future__ import annotations

import datetime as _dt
import os
import random
import sys
import time
from typing import TYPE_CHECKING, TextIO

import anyio

from .._embedded import EmbeddedRedis
from .._expr import DayEvents, Expr, MonthEvents, UniqueEvents, WeekEvents
from .._periods import Day, Month, Week
from .._tracker import Mark, Tracker
from ._common import HelpFormatter, day, positive_int

if TYPE_CHECKING:
    import argparse
    from argparse import _SubParsersAction  # pyright: ignore[reportPrivateUsage]
    from collections.abc import Iterator

__all__ = ["add_demo_parser", "generate_activity", "run_demo"]


def add_demo_parser(sub: _SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``demo`` subcommand.

    :param sub: the subparsers of the ``bitlens`` parser
    """
    parser = sub.add_parser(
        "demo",
        help="mark synthetic activity and print answers (embedded Redis by default)",
        description=(
            "Generate realistic synthetic activity for USERS users over WEEKS weeks (sign-ups, "
            "activity with decaying stickiness, purchases), mark it under --prefix, and print "
            "counts, a membership answer, daily actives and a weekly retention table. Uses "
            "--url or $REDIS_URL when given, else starts a private redis-server "
            "(bitlens[embedded]) that is gone when the demo ends."
        ),
        epilog="""\
examples:
  bitlens demo                                   # embedded redis-server, 20,000 users
  bitlens demo --users 2000 --weeks 4 --today 2026-11-27
  bitlens demo --url redis://localhost:6379/0    # then: bitlens events --prefix demo ...

The keys under --prefix are deleted first: never point it at real data.
""",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--url",
        default=None,
        metavar="URL",
        help="redis:// URL (default: $REDIS_URL, else embedded)",
    )
    parser.add_argument(
        "--users",
        type=positive_int,
        default=20_000,
        metavar="N",
        help="number of users (default: 20000)",
    )
    parser.add_argument(
        "--weeks", type=positive_int, default=8, metavar="N", help="weeks of activity (default: 8)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument(
        "--prefix", default="demo", help="key prefix, whose keys are deleted first (default: demo)"
    )
    parser.add_argument(
        "--today",
        type=day,
        default=None,
        metavar="YYYY-MM-DD",
        help="the last day of activity (default: today, UTC)",
    )
    parser.set_defaults(run=_run, parser=parser)


def generate_activity(
    users: int, weeks: int, today: _dt.date, seed: int
) -> Iterator[tuple[str, int, _dt.datetime]]:
    """Yield ``(event, user_id, at)`` marks of a product with realistic retention.

    Users sign up on a random day; each has a stickiness that decays with time, and a few
    of their active days include a purchase. The same seed gives the same activity.

    :param users: how many users
    :param weeks: how many weeks of history, ending on ``today``
    :param today: the last day of activity
    :param seed: the random seed
    """
    rng = random.Random(seed)
    days = weeks * 7
    first = today - _dt.timedelta(days=days - 1)
    for uid in range(users):
        signup = rng.randrange(days)
        stickiness = rng.betavariate(2, 5)
        buyer = rng.random() < 0.2
        for offset in range(signup, days):
            age = offset - signup
            if age and rng.random() > stickiness * 0.92**age + 0.03:
                continue
            at = _dt.datetime.combine(
                first + _dt.timedelta(days=offset), _dt.time(rng.randrange(24))
            )
            if age == 0:
                yield ("signed_up", uid, at)
            yield ("active", uid, at)
            if buyer and rng.random() < 0.15:
                yield ("purchase", uid, at)


class _Progress:
    """A progress bar on a terminal, a line every 10% elsewhere."""

    def __init__(self, label: str, stream: TextIO) -> None:
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.perf_counter()
        self._last_decile = -1

    def update(self, done: int, total: int) -> None:
        """Show that ``done`` of ``total`` marks are written."""
        fraction = done / total if total else 1.0
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        if self.tty:
            bar = "#" * int(fraction * 30)
            self.stream.write(
                f"\r{self.label} [{bar:<30}] {fraction:4.0%} {done:,}/{total:,} ({rate:,.0f}/s)"
            )
            if done >= total:
                self.stream.write("\n")
        else:
            decile = int(fraction * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(
                    f"{self.label}: {fraction:4.0%} {done:,}/{total:,} ({rate:,.0f}/s)\n"
                )
        self.stream.flush()


async def run_demo(
    url: str, *, users: int, weeks: int, seed: int, prefix: str, today: _dt.date, out: TextIO
) -> None:
    """Mark synthetic activity on ``url`` and print what bitlens answers.

    :param url: a ``redis://`` URL
    :param users: how many users to simulate
    :param weeks: how many weeks of history
    :param seed: the random seed
    :param prefix: the key prefix; its keys are deleted first
    :param today: the last day of activity
    :param out: where to print
    """
    async with Tracker(url, prefix=prefix, track_unique=False) as tracker:
        # The prefix's keys only (never another prefix's, e.g. "bl:x" under "bl"): every
        # key carrying a hash tag, then the shard registry by name.
        stale = [key async for key in tracker.client.scan_iter(match=tracker.schema.scan_pattern)]
        stale.append(tracker.schema.registry_key.encode())
        for i in range(0, len(stale), 1000):
            await tracker.client.delete(*stale[i : i + 1000])

        marks: list[Mark] = list(generate_activity(users, weeks, today, seed))
        progress = _Progress("marking", sys.stderr)
        chunk = tracker.mark_chunk_size
        for i in range(0, len(marks), chunk):
            part = marks[i : i + chunk]
            await tracker.mark_events(m for m in part if m[0] != "signed_up")
            # sign-ups also go to UniqueEvents("signed_up"): "ever signed up"
            await tracker.mark_events((m for m in part if m[0] == "signed_up"), track_unique=True)
            progress.update(min(i + chunk, len(marks)), len(marks))

        this_month = Month.from_datetime(today)
        this_week = Week.from_datetime(today)
        m_now = MonthEvents("active", this_month.year, this_month.month)
        m_prev = m_now.prev()
        buyers = m_now.with_event("purchase")
        week_now = WeekEvents("active", this_week.iso_year, this_week.week)
        headline = await tracker.count_many(
            {
                "signed up, ever": UniqueEvents("signed_up"),
                f"active in {this_month}": m_now,
                f"active in {m_prev.period} and in {this_month}": m_prev & m_now,
                f"active in {m_prev.period}, not in {this_month}": m_prev - m_now,
                f"active in {this_month}, bought nothing": m_now - buyers,
            }
        )
        print(
            f"\nbitlens demo: {users:,} users, {weeks} weeks to {today}, {len(marks):,} marks",
            file=out,
        )
        width = max(map(len, headline)) + 2
        for label, value in headline.items():
            print(f"  {label + ':':<{width}}{value:>8,}", file=out)
        member = await tracker.contains(week_now, 42)
        print(f"  {'user 42 active in ' + str(this_week) + '?':<{width}}{member!s:>8}", file=out)

        print("\n  daily active users, last 7 days:", file=out)
        day = Day.from_datetime(today)
        last_7 = [day.delta(-back) for back in range(6, -1, -1)]
        daily = await tracker.count_many(
            [DayEvents("active", d.year, d.month, d.day) for d in last_7]
        )
        for d, count in zip(last_7, daily, strict=False):
            print(f"    {d}  {count:>7,}", file=out)

        print("\n  weekly retention (signed up in week W, active in week W+k):", file=out)
        cohorts = min(weeks, 6)
        header = "".join(f"{'W+' + str(k):>7}" for k in range(cohorts))
        print(f"    {'cohort':<9}{'size':>7}{header}", file=out)
        questions: dict[tuple[int, int], Expr] = {}
        for back in range(cohorts - 1, -1, -1):
            signups = WeekEvents("signed_up", this_week.iso_year, this_week.week).delta(-back)
            questions[back, -1] = signups
            for k in range(back + 1):
                questions[back, k] = signups & signups.delta(k).with_event("active")
        answers = await tracker.count_many(questions)  # the whole table: one round trip
        for back in range(cohorts - 1, -1, -1):
            size = answers[back, -1]
            cells = "".join(
                f"{answers[back, k] / size:7.0%}" if size else f"{'-':>7}" for k in range(back + 1)
            )
            print(f"    {this_week.delta(-back)!s:<9}{size:>7,}{cells}", file=out)


def _run(args: argparse.Namespace) -> int:
    """Run ``bitlens demo``."""
    url: str | None = args.url or os.environ.get("REDIS_URL") or None
    today: _dt.date = args.today or _dt.datetime.now(_dt.timezone.utc).date()

    async def go(target: str) -> None:
        await run_demo(
            target,
            users=args.users,
            weeks=args.weeks,
            seed=args.seed,
            prefix=args.prefix,
            today=today,
            out=sys.stdout,
        )

    if url:
        args.connected_url = url
        anyio.run(go, url)
        return 0
    with EmbeddedRedis() as server:
        print(f"(no --url or REDIS_URL: using an embedded {server!r})", file=sys.stderr)
        anyio.run(go, server.url)
    return 0
