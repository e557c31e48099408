"""Seeded activity for the web tests, and its answers computed from Python sets.

Six ISO weeks of 2025 (W10 to W15, Monday 3 March to Sunday 13 April): 300 users sign up
on random days and come back on random days after; a few users also do an event
whose name is hostile HTML. The reference answers (counts per day, week and month, and a
weekly retention table) come from plain sets of ``(user, date)`` pairs, never from bitlens.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FIRST_DAY",
    "HOSTILE",
    "LAST_DAY",
    "Seed",
    "day_label",
    "month_label",
    "readme_example",
    "week_label",
]

WEB_GUIDE = Path(__file__).resolve().parent.parent / "docs" / "web-apps.md"

HOSTILE = '<img/src="x"/onerror="alert(1)">&amp;\''
"""An event name bitlens accepts that would run script if a page used it as markup."""

FIRST_DAY = dt.date(2025, 3, 3)  # Monday of ISO week 2025-W10
LAST_DAY = dt.date(2025, 4, 13)  # Sunday of ISO week 2025-W15
UTC = dt.timezone.utc


def readme_example(framework: str, prefix: str) -> str:
    """Return the example app of docs/web-apps.md for ``framework``, prefix replaced.

    :param framework: ``"fastapi"`` or ``"aiohttp"``
    :param prefix: the key prefix the test's tracker uses instead of the guide's ``web``
    """
    section = WEB_GUIDE.read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    found = [b for b in blocks if f"from bitlens.{framework} import" in b]
    assert len(found) == 1, f"one {framework} example expected in docs/web-apps.md"
    assert found[0].count('prefix="web"') == 1
    return found[0].replace('prefix="web"', f"prefix={prefix!r}")


def day_label(day: dt.date) -> str:
    """Return bitlens' label of a day: ``2025-03-03``."""
    return day.isoformat()


def week_label(day: dt.date) -> str:
    """Return bitlens' label of the ISO week holding ``day``: ``2025-W10``."""
    iso = day.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def month_label(day: dt.date) -> str:
    """Return bitlens' label of the month holding ``day``: ``2025-03``."""
    return f"{day.year}-{day.month:02d}"


LABELS = {"day": day_label, "week": week_label, "month": month_label}


@dataclass
class Seed:
    """Marks made from a fixed random seed, and what they imply.

    :param users: how many users sign up
    :param seed: the random seed
    """

    users: int = 300
    seed: int = 2025
    marks: list[tuple[str, int, dt.datetime]] = field(default_factory=list)
    days: dict[str, dict[dt.date, set[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        span = (LAST_DAY - FIRST_DAY).days + 1
        for user in range(1, self.users + 1):
            signup = FIRST_DAY + dt.timedelta(days=rng.randrange(span))
            self._add("signed_up", user, signup, rng)
            for offset in range((signup - FIRST_DAY).days, span):
                # Activity fades with time since sign-up, as retention curves do.
                if rng.random() < 0.3 * 0.87 ** (offset - (signup - FIRST_DAY).days):
                    self._add("active", user, FIRST_DAY + dt.timedelta(days=offset), rng)
            if user % 25 == 0:
                self._add(HOSTILE, user, signup, rng)

    def _add(self, event: str, user: int, day: dt.date, rng: random.Random) -> None:
        at = dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60)), UTC)
        self.marks.append((event, user, at))
        self.days[event][day].add(user)

    def users_in(self, event: str, period: str, label: str) -> set[int]:
        """Return the users who did ``event`` in the period labelled ``label``.

        :param event: the event name
        :param period: ``"day"``, ``"week"`` or ``"month"``
        :param label: the period's label, e.g. ``2025-W10``
        """
        of = LABELS[period]
        found: set[int] = set()
        for day, users in self.days[event].items():
            if of(day) == label:
                found |= users
        return found

    def labels(self, period: str, first: dt.date, last: dt.date) -> list[str]:
        """Return the labels of the periods from ``first``'s to ``last``'s, in order.

        :param period: ``"day"``, ``"week"`` or ``"month"``
        :param first: a day in the first period
        :param last: a day in the last period
        """
        of = LABELS[period]
        out: list[str] = []
        day = first
        while day <= last:
            if not out or out[-1] != of(day):
                out.append(of(day))
            day += dt.timedelta(days=1)
        if out[-1] != of(last):
            out.append(of(last))
        return out

    def counts(self, event: str, period: str, first: dt.date, last: dt.date) -> list[int]:
        """Return unique users of ``event`` per period from ``first``'s to ``last``'s.

        :param event: the event name
        :param period: ``"day"``, ``"week"`` or ``"month"``
        :param first: a day in the first period
        :param last: a day in the last period
        """
        return [
            len(self.users_in(event, period, label)) for label in self.labels(period, first, last)
        ]

    def active_between(self, event: str, first: dt.date, last: dt.date) -> set[int]:
        """Return the users who did ``event`` on any day from ``first`` to ``last``.

        :param event: the event name
        :param first: the first day
        :param last: the last day, included
        """
        found: set[int] = set()
        for day, users in self.days[event].items():
            if first <= day <= last:
                found |= users
        return found

    def weekly_retention(
        self, start: str, returning: str, weeks: list[str], buckets: int
    ) -> list[tuple[str, int, list[int]]]:
        """Return ``(cohort label, size, [returned in bucket k])`` per weekly cohort ("on").

        :param start: the cohort event
        :param returning: the returning event
        :param weeks: the cohort weeks' labels, oldest first
        :param buckets: how many buckets, bucket 0 being the cohort's own week
        """
        every_week = self.labels("week", FIRST_DAY, LAST_DAY + dt.timedelta(weeks=buckets))
        rows: list[tuple[str, int, list[int]]] = []
        for label in weeks:
            cohort = self.users_in(start, "week", label)
            at = every_week.index(label)
            cells = [
                len(cohort & self.users_in(returning, "week", every_week[at + k]))
                for k in range(buckets)
            ]
            rows.append((label, len(cohort), cells))
        return rows
