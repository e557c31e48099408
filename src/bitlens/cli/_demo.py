"""``bitlens demo``: mark synthetic activity, then answer the questions bitlens is for."""

from __future__ import annotations

import datetime as _dt
import os
import random
import shlex
import sys
import time
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlencode

import anyio

from .._expr import DayEvents, MonthEvents, UniqueEvents, WeekEvents
from .._periods import Day, Month, Week
from .._tracker import Mark, Tracker
from ..cohort import retention
from ..embedded import EmbeddedRedis
from ._common import HelpFormatter, day, positive_int, prefix_type, redact
from ._retention import render_table
from ._serve import add_listen_options, serve_dashboard, serve_until_stopped

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
  bitlens demo --serve                           # ... then the dashboard on that data
  bitlens demo --users 2000 --weeks 4 --today 2026-11-27
  bitlens demo --url redis://localhost:6379/0    # then: bitlens count --prefix demo ...

The demo ends by printing the commands that read its data (prefix included).
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
        "--prefix",
        type=prefix_type,
        default="demo",
        help="key prefix, whose keys are deleted first (default: demo)",
    )
    parser.add_argument(
        "--today",
        type=day,
        default=None,
        metavar="YYYY-MM-DD",
        help="the last day of activity (default: today, UTC)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="then serve the dashboard on the demo's data (and keep the embedded Redis) "
        "until Ctrl-C; needs bitlens[aiohttp]",
    )
    add_listen_options(parser)  # --host, --port: with --serve
    # What open_tracker() reads, fixed for the demo: its data is marked in UTC.
    parser.set_defaults(run=_run, parser=parser, tz="UTC", cluster=False)


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
        chunk = tracker.limits.mark_chunk_size
        for i in range(0, len(marks), chunk):
            part = marks[i : i + chunk]
            await tracker.mark_events(m for m in part if m[0] != "signed_up")
            # sign-ups also go to UniqueEvents("signed_up"): "ever signed up"
            await tracker.mark_events((m for m in part if m[0] == "signed_up"), track_unique=True)
            progress.update(min(i + chunk, len(marks)), len(marks))

        now = demo_clock(today)
        this_month = Month.from_datetime(today)
        this_week = Week.from_datetime(today)
        m_now = MonthEvents("active", this_month.year, this_month.month)
        m_prev = m_now.prev()
        buyers = m_now.with_event("purchase")
        week_now = WeekEvents("active", this_week.iso_year, this_week.week)
        month_label = f"{this_month}{_so_far(this_month, now)}"
        headline = await tracker.count_many(
            {
                "signed up, ever": UniqueEvents("signed_up"),
                f"active in {month_label}": m_now,
                f"active in {m_prev.period} and in {month_label}": m_prev & m_now,
                f"active in {m_prev.period}, not in {month_label}": m_prev - m_now,
                f"active in {month_label}, bought nothing": m_now - buyers,
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
            print(f"    {d}  {count:>7,}{_so_far(d, now)}", file=out)

        print("\n  weekly retention (signed up in week W, active in week W+k):", file=out)
        cohorts = min(weeks, 6)
        table = await retention(  # the whole table: one round trip
            tracker,
            "signed_up",
            "active",
            period="week",
            cohorts=cohorts,
            buckets=cohorts,
            end=today,
            now=now,
        )
        for line in render_table(table).splitlines()[1:]:
            print(f"    {line}", file=out)


def demo_clock(today: _dt.date) -> _dt.datetime:
    """Return the clock the demo's answers are read at: now, or the end of a past ``today``.

    Activity is generated up to ``today``; the periods still running at that time (this
    week, this month) are partial, and the answers say so.

    :param today: the last day of activity
    """
    end_of_today = _dt.datetime.combine(today + _dt.timedelta(days=1), _dt.time(), _dt.timezone.utc)
    return min(_dt.datetime.now(_dt.timezone.utc), end_of_today)


def _so_far(period: Day | Month, now: _dt.datetime) -> str:
    """Return ``" (so far)"`` for a period that is not over at ``now``, else ``""``."""
    return " (so far)" if now < period.end else ""


def follow_up(
    url: str | None, prefix: str, today: _dt.date, weeks: int, *, serving: bool = False
) -> list[str]:
    """Return the commands that read the demo's data, one per line, ready to paste.

    :param url: the ``--url`` to give (``None`` when ``REDIS_URL`` is set)
    :param prefix: the demo's key prefix
    :param today: the last day of activity
    :param weeks: the weeks of activity
    :param serving: whether the dashboard is being served (it already shows the data)
    """
    month = Month.from_datetime(today)
    cohorts = min(weeks, 6)
    where = ["--url", url] if url is not None else []
    common = [*where, "--prefix", prefix]
    commands = [
        [
            "count",
            *common,
            f"month:active:{month}",
            f"month:active:{month.prev()} & month:active:{month}",
        ],
        [
            "retention",
            *common,
            "signed_up",
            "active",
            "--period",
            "week",
            "--cohorts",
            str(cohorts),
            "--buckets",
            str(cohorts),
            "--end",
            today.isoformat(),
        ],
        ["events", *common, "--counts"],
    ]
    if not serving:
        commands.append(["serve", *common])
    return [shlex.join(["bitlens", *command]) for command in commands]


def _again(args: argparse.Namespace, today: _dt.date) -> str:
    """Return the ``bitlens demo --serve`` command that repeats this demo and serves it."""
    words = ["bitlens", "demo", "--serve"]
    defaults = {"users": 20_000, "weeks": 8, "seed": 7, "prefix": "demo"}
    for name, default in defaults.items():
        value = getattr(args, name)
        if value != default:
            words += [f"--{name}", str(value)]
    if args.today is not None:
        words += ["--today", today.isoformat()]
    return shlex.join(words)


def _dashboard_query(today: _dt.date) -> str:
    """Return the query string that opens the dashboard on the demo's weeks and events."""
    return "?" + urlencode(
        [
            ("event", "active"),
            ("event", "signed_up"),
            ("event", "purchase"),
            ("period", "week"),
            ("end", today.isoformat()),
            ("rstart", "signed_up"),
            ("rreturn", "active"),
        ]
    )


def _run(args: argparse.Namespace) -> int:
    """Run ``bitlens demo``."""
    url: str | None = args.url or os.environ.get("REDIS_URL") or None
    today: _dt.date = args.today or _dt.datetime.now(_dt.timezone.utc).date()
    serve = serve_dashboard() if args.serve else None  # a missing aiohttp fails first
    out = sys.stdout

    async def go(target: str, shown: str | None, embedded: bool) -> None:
        await run_demo(
            target,
            users=args.users,
            weeks=args.weeks,
            seed=args.seed,
            prefix=args.prefix,
            today=today,
            out=out,
        )
        commands = follow_up(shown, args.prefix, today, args.weeks, serving=serve is not None)
        if serve is None and embedded:
            print(
                "\nThe embedded redis-server stops now, with the demo's data. To keep "
                "exploring it:\n"
                f"  {_again(args, today)}    # the same data, then the dashboard\n"
                "or mark it into a Redis of yours, then ask it with the commands it prints:\n"
                "  bitlens demo --url redis://localhost:6379/0",
                file=out,
            )
            return
        heading = "While the dashboard runs, in another terminal:" if serve else "Next, try:"
        print(f"\n{heading}", file=out)
        for command in commands:
            print(f"  {command}", file=out)
        if url is not None and shown is not None and shown != url:
            print("  (the password is shown as ***: put yours back)", file=out)
        out.flush()
        if serve is not None:

            def ready(page: str) -> None:
                print(
                    f"\nbitlens demo: dashboard of the demo's data on "
                    f"{page}{_dashboard_query(today)} (Ctrl-C to stop)",
                    file=out,
                    flush=True,
                )

            await serve_until_stopped(args, target, serve, command="demo", on_ready=ready)

    if url:
        args.connected_url = url
        shown = None if args.url is None else redact(url)
        anyio.run(go, url, shown, False)
        return 0
    with EmbeddedRedis() as server:
        print(f"(no --url or REDIS_URL: using an embedded {server!r})", file=sys.stderr)
        anyio.run(go, server.url, server.url, True)
    return 0
