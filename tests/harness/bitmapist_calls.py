"""One fixed sequence of bitmapist 3.119 calls, answered by bitmapist or by its bitlens twin.

:func:`run_calls` takes a module with bitmapist's public names (``bitmapist`` itself, or
``bitlens.compat.bitmapist``) and its cohort module, points it at one server, runs the same
deterministic sequence of calls and returns ``[label, answer]`` pairs whose answers are JSON
(datetimes as ISO strings, members as sorted lists, a call that raises as
``{"error": "ClassName"}``). ``tests/test_compat_bitmapist.py`` runs it once per library on
the same kind of server and compares the answers label by label; only the labels starting
with a key of :data:`ALLOWED_DIFFERENCES` may differ.

Stdlib only, and neither library is imported at the top: bitmapist's own venv runs this file
as a script::

    python bitmapist_calls.py --host 127.0.0.1 --port 6379

which prints ``{"bitmapist": version, "calls": [...]}``. The sequence ends with
``delete_all_events()``, so give it a server of its own.

A label is ``family:detail``: the family is the public name the step exercises
(:data:`FAMILIES` lists every one), the detail says on what. Steps never reuse an object made
before a later write or a ``delete_*_bitop_keys`` call: bitmapist's ``BitOp*`` and
``YearEvents`` answer from a key computed when they were made (see ``snapshot:``).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ALLOWED_DIFFERENCES", "FAMILIES", "family_of", "main", "run_calls"]

ALLOWED_DIFFERENCES: dict[str, str] = {
    "not:": (
        "bitmapist's BitOpNot / ~x is Redis' bare BITOP NOT: it counts the padding bits up to "
        "the end of the operand's last byte as members, and x & ~y drops every member of x "
        "past the end of y's string; bitlens refuses a complement on bitmapist's layout "
        "unless a universe is named (the answer is then the exception's class name)"
    ),
    "snapshot:": (
        "bitmapist's BitOpAnd/Or/Xor and YearEvents compute their result key when they are "
        "made, so a mark made afterwards does not change len(); bitlens' operations are "
        "lazy and count the new mark"
    ),
    "tz:": (
        "bitmapist files a mark made with an aware non-UTC `now=` under its wall-clock "
        "fields (2021-01-01T00:30+02:00 lands on 2021-1-1, hour 0), though every period's "
        "period_start()/period_end() is UTC and that instant is 2020-12-31T22:30Z; bitlens "
        "converts to UTC first"
    ),
    "invalid:": (
        "bitmapist builds keys for periods that do not exist (month 13, ISO week 53 of a "
        "52-week year, week 0, Feb 30, hour 24) and answers about them, and sends ids out "
        "of 0..2**32-1 to Redis, which refuses them with a ResponseError; bitlens raises a "
        "typed error (InvalidPeriodField, InvalidUserId) before sending anything"
    ),
}
"""Label prefixes whose answers may differ between bitmapist and bitlens, with the reason."""

FAMILIES: tuple[str, ...] = (
    "setup_redis",
    "mark_event",
    "unmark_event",
    "mark_unique",
    "unmark_unique",
    "MonthEvents",
    "WeekEvents",
    "DayEvents",
    "HourEvents",
    "YearEvents",
    "UniqueEvents",
    "from_date",
    "len",
    "in",
    "iter",
    "get_uuids",
    "get_count",
    "has_events_marked",
    "delta",
    "next",
    "prev",
    "period_start",
    "period_end",
    "BitOpAnd",
    "BitOpOr",
    "BitOpXor",
    "operator_and",
    "operator_or",
    "operator_xor",
    "nested",
    "not",
    "snapshot",
    "tz",
    "invalid",
    "delete",
    "get_event_names",
    "delete_temporary_bitop_keys",
    "delete_runtime_bitop_keys",
    "get_dates_data",
    "delete_all_events",
)
"""Every label family the sequence must cover: one per public name (and operator)."""

UTC = timezone.utc

PERIOD_CLASSES = ("YearEvents", "MonthEvents", "WeekEvents", "DayEvents", "HourEvents")
"""bitmapist's period classes, longest first."""

FAR_IDS = (70_001, 2**20 + 5)
"""Ids far past the dense ones (0 to 3,000), marked on a few days only."""

PROBE_IDS = (0, 1, 2, 7, 8, 9, 500, 1999, 2999, 3000, 3001, 70_000, *FAR_IDS, 2**21)
"""The ids every ``in`` step asks about."""

DAYS_2020 = [datetime(2020, 12, 14, tzinfo=UTC) + timedelta(days=d) for d in range(42)]
"""2020-12-14 to 2021-01-24: ISO week 2020-W53 (2020-12-28 to 2021-01-03) in the middle."""

DAYS_2026 = [datetime(2026, 12, 14, tzinfo=UTC) + timedelta(days=d) for d in range(42)]
"""2026-12-14 to 2027-01-24: ISO week 2026-W53 (2026-12-28 to 2027-01-03) in the middle."""

EXTRA_DAYS = [
    datetime(2020, 2, 28, 23, 59, 59, tzinfo=UTC),
    datetime(2020, 2, 29, 12, tzinfo=UTC),
    datetime(2020, 3, 1, 0, 0, 1, tzinfo=UTC),
    datetime(2019, 12, 30, 8, tzinfo=UTC),  # ISO 2020-W1, calendar 2019
    datetime(2024, 12, 30, 8, tzinfo=UTC),  # ISO 2025-W1, calendar 2024
]
"""Leap day, month ends, and days whose ISO year is not their calendar year."""


def family_of(label: str) -> str:
    """Return the family of ``label``: everything before its first ``:``."""
    return label.split(":", 1)[0]


def _ids_of(day: int, event: int, width: int = 3001, step: int = 37) -> list[int]:
    """A deterministic subset of ``0..width-1`` for one day and one event (no randomness)."""
    return sorted({(day * 131 + event * 17 + k * step) % width for k in range(40)})


def _iso(value: Any) -> Any:
    """``value.isoformat()`` for a datetime, anything else unchanged."""
    return value.isoformat() if isinstance(value, datetime) else value


class _Recorder:
    """Collects ``[label, answer]`` pairs; a call that raises answers with its class name."""

    def __init__(self) -> None:
        self.calls: list[list[object]] = []
        self._labels: set[str] = set()

    def step(self, label: str, thunk: Callable[[], object]) -> None:
        """Record ``label`` with what ``thunk()`` returns, or ``{"error": name}`` if it raises."""
        if label in self._labels or family_of(label) not in FAMILIES:
            raise ValueError(f"label {label!r} repeats or has an unknown family")
        self._labels.add(label)
        try:
            answer = thunk()
        except Exception as exc:  # the answer is which exception it was
            answer = {"error": type(exc).__name__}
        self.calls.append([label, json.loads(json.dumps(answer))])


def _song_ids(index: int, every: int) -> list[int]:
    """song:play's ids on day ``index`` of a slice ``[::every]``: half of active's that day."""
    return sorted({*_ids_of(index, 2)[::2], *_ids_of(index * every, 1)[1::2]})


def _marks(
    bm: Any,
    event: str,
    days: list[datetime],
    ids: Callable[[int], list[int]],
    **kw: Any,
) -> Callable[[], Any]:
    """Mark ``ids(index)`` on each day (23:30 UTC on odd days, else 10:30), far ids on Jan 1st."""

    def run() -> Any:
        returned: set[str] = set()
        calls = 0
        for index, day in enumerate(days):
            at = day.replace(hour=23 if day.day % 2 else 10, minute=30)
            for uid in ids(index):
                returned.add(repr(bm.mark_event(event, uid, now=at, **kw)))
                calls += 1
            if (day.month, day.day) == (1, 1):
                for uid in FAR_IDS:
                    returned.add(repr(bm.mark_event(event, uid, now=at, **kw)))
                    calls += 1
        return {"calls": calls, "returned": sorted(returned)}

    return run


def _facets(obj: Any) -> dict[str, Any]:
    """len, get_count, sorted members, has_events_marked and ``in`` of one object."""
    members = list(obj)
    return {
        "len": len(obj),
        "get_count": obj.get_count(),
        "members": sorted(members),
        "has_events_marked": bool(obj.has_events_marked()),
        "in": [uid in obj for uid in PROBE_IDS],
    }


def _where(obj: Any) -> dict[str, Any]:
    """Which period an object is (its key, unless a year, and bounds) and its count."""
    out: dict[str, Any] = {"count": len(obj)}
    if type(obj).__name__ != "YearEvents":  # a year's key is a BitOp's: not compared
        out["redis_key"] = obj.redis_key
    if hasattr(obj, "period_start"):
        out["period_start"] = obj.period_start().isoformat()
        out["period_end"] = obj.period_end().isoformat()
    return out


def _ask(question: Callable[[Any], Any], make: Callable[[], Any]) -> Callable[[], Any]:
    """A step asking ``question`` of a fresh ``make()``."""
    return lambda: question(make())


def _probe(obj: Any) -> list[bool]:
    """``uid in obj`` for each of :data:`PROBE_IDS`."""
    return [uid in obj for uid in PROBE_IDS]


def _ascending(obj: Any) -> bool:
    """Whether iterating ``obj`` yields its members in ascending order."""
    members = list(obj)
    return members == sorted(members)


def _delta(n: int) -> Callable[[Any], Any]:
    """The question: where is ``obj.delta(n)``?"""
    return lambda obj: _where(obj.delta(n))


def _described(obj: Any) -> dict[str, Any]:
    """:func:`_where` and :func:`_facets` of one object."""
    return {**_where(obj), **_facets(obj)}


def _from_date(cls: Any, event: str, at: datetime) -> Callable[[], Any]:
    """A step: where is ``cls.from_date(event, at)``?"""
    return lambda: _where(cls.from_date(event, at))


def _names(bm: Any, prefix: str) -> list[str]:
    """``get_event_names(prefix=prefix)``, sorted."""
    return sorted(bm.get_event_names(prefix=prefix))


def _table(cohort: Any, *args: Any, **kwargs: Any) -> list[list[Any]]:
    """``cohort.get_dates_data(*args, **kwargs)`` with each row's date as an ISO string."""
    return [[_iso(cell) for cell in row] for row in cohort.get_dates_data(*args, **kwargs)]


def _write(rec: _Recorder, bm: Any) -> None:
    """Every write: marks over both ISO-53-week year ends, hourly, unique, unmarks."""

    def plain(number: int) -> Callable[[int], list[int]]:
        return lambda index: _ids_of(index, number)

    rec.step("mark_event:active:2020", _marks(bm, "active", DAYS_2020, plain(1)))
    rec.step("mark_event:active:2026", _marks(bm, "active", DAYS_2026, plain(1)))
    rec.step(
        "mark_event:song:play:2020:hourly",
        _marks(bm, "song:play", DAYS_2020[::2], lambda i: _song_ids(i, 2), track_hourly=True),
    )
    rec.step(
        "mark_event:song:play:2026:hourly_unique",
        _marks(
            bm,
            "song:play",
            DAYS_2026[::3],
            lambda i: _song_ids(i, 3),
            track_hourly=True,
            track_unique=True,
        ),
    )
    rec.step(
        "mark_event:ios:2020:unique",
        _marks(bm, "ios", DAYS_2020[10:25], plain(3), track_unique=True, track_hourly=False),
    )
    rec.step("mark_event:ios:2026:plain", _marks(bm, "ios", DAYS_2026[10:25], plain(3)))
    rec.step("mark_event:sign_up:2020", _marks(bm, "sign_up", DAYS_2020[::5], plain(4)))
    rec.step("mark_event:sign_up:2026", _marks(bm, "sign_up", DAYS_2026[::5], plain(4)))
    rec.step("mark_event:app.v2:open:extra", _marks(bm, "app.v2:open", EXTRA_DAYS, plain(5)))

    def boundary() -> Any:
        out = []
        for at in (
            datetime(2020, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(2021, 1, 1, 0, 0, tzinfo=UTC),
            datetime(2021, 1, 3, 23, 0, tzinfo=UTC),
            datetime(2021, 1, 4, 0, 0, tzinfo=UTC),
            *(datetime(2026, 12, 28, 5, tzinfo=UTC) + timedelta(days=d) for d in range(8)),
        ):
            out.append(bm.mark_event("edge", 3000 + at.day, now=at, track_hourly=True))
            out.append(bm.mark_event("edge", 2**20 + 5, now=at, track_hourly=True))
        return [repr(r) for r in out]

    rec.step("mark_event:edge:iso_year_ends", boundary)

    def unique_marks() -> Any:
        out = [bm.mark_unique("premium", uid) for uid in (*range(0, 3000, 7), *FAR_IDS)]
        return sorted({repr(r) for r in out})

    rec.step("mark_unique:premium", unique_marks)
    rec.step("mark_unique:premium:again", lambda: repr(bm.mark_unique("premium", 7)))
    rec.step("unmark_unique:premium:14", lambda: repr(bm.unmark_unique("premium", 14)))
    rec.step("unmark_unique:premium:far", lambda: repr(bm.unmark_unique("premium", 70_001)))
    rec.step("unmark_unique:premium:unset", lambda: repr(bm.unmark_unique("premium", 15)))
    rec.step("unmark_unique:never:0", lambda: repr(bm.unmark_unique("never", 0)))

    at_2021 = datetime(2021, 1, 1, 23, 30, tzinfo=UTC)  # DAYS_2020[18], an odd day: 23:30
    gone = _song_ids(9, 2)[:3]  # song:play marked these then (hourly), as DAYS_2020[::2][9]
    rec.step(
        "unmark_event:song:play:hourly",
        lambda: [
            repr(bm.unmark_event("song:play", uid, now=at_2021, track_hourly=True)) for uid in gone
        ],
    )
    rec.step(
        "unmark_event:active:far:day_only",
        lambda: repr(bm.unmark_event("active", 70_001, now=datetime(2021, 1, 1, 10, tzinfo=UTC))),
    )
    rec.step(
        "unmark_event:ios:unique",
        lambda: repr(
            bm.unmark_event(
                "ios", _ids_of(0, 3)[0], now=DAYS_2020[10], track_unique=True, track_hourly=True
            )
        ),
    )
    rec.step(
        "unmark_event:never_marked",
        lambda: repr(bm.unmark_event("active", 2999, now=datetime(2030, 6, 1, tzinfo=UTC))),
    )
    rec.step(
        "mark_event:default_now_is_absent",  # no `now=`: marks today; only asked by name below
        lambda: repr(bm.mark_event("today.only", 5)),
    )


def _constructors(rec: _Recorder, bm: Any) -> None:
    """Each class by constructor and by ``from_date``, every granularity, both ISO years."""
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("MonthEvents:active:2020-12", lambda: bm.MonthEvents("active", 2020, 12)),
        ("MonthEvents:active:2021-1", lambda: bm.MonthEvents("active", 2021, 1)),
        ("MonthEvents:active:2026-12", lambda: bm.MonthEvents("active", 2026, 12)),
        ("MonthEvents:app.v2:open:2020-2", lambda: bm.MonthEvents("app.v2:open", 2020, 2)),
        ("MonthEvents:active:empty", lambda: bm.MonthEvents("active", 2019, 6)),
        ("MonthEvents:system_kw", lambda: bm.MonthEvents("ios", 2021, 1, system="default")),
        ("WeekEvents:active:2020-53", lambda: bm.WeekEvents("active", 2020, 53)),
        ("WeekEvents:active:2021-1", lambda: bm.WeekEvents("active", 2021, 1)),
        ("WeekEvents:active:2026-53", lambda: bm.WeekEvents("active", 2026, 53)),
        ("WeekEvents:active:2027-1", lambda: bm.WeekEvents("active", 2027, 1)),
        ("WeekEvents:edge:2020-53", lambda: bm.WeekEvents("edge", 2020, 53)),
        ("WeekEvents:edge:2026-53", lambda: bm.WeekEvents("edge", 2026, 53)),
        ("WeekEvents:app.v2:open:2020-1", lambda: bm.WeekEvents("app.v2:open", 2020, 1)),
        ("WeekEvents:app.v2:open:2025-1", lambda: bm.WeekEvents("app.v2:open", 2025, 1)),
        ("DayEvents:active:2020-12-31", lambda: bm.DayEvents("active", 2020, 12, 31)),
        ("DayEvents:active:2021-1-1", lambda: bm.DayEvents("active", 2021, 1, 1)),
        ("DayEvents:edge:2021-1-3", lambda: bm.DayEvents("edge", 2021, 1, 3)),
        ("DayEvents:edge:2021-1-4", lambda: bm.DayEvents("edge", 2021, 1, 4)),
        ("DayEvents:edge:2027-1-4", lambda: bm.DayEvents("edge", 2027, 1, 4)),
        ("DayEvents:app.v2:open:2020-2-29", lambda: bm.DayEvents("app.v2:open", 2020, 2, 29)),
        ("DayEvents:sign_up:2026-12-29", lambda: bm.DayEvents("sign_up", 2026, 12, 29)),
        ("HourEvents:edge:2020-12-31-23", lambda: bm.HourEvents("edge", 2020, 12, 31, 23)),
        ("HourEvents:edge:2021-1-1-0", lambda: bm.HourEvents("edge", 2021, 1, 1, 0)),
        ("HourEvents:song:play:2021-1-1-23", lambda: bm.HourEvents("song:play", 2021, 1, 1, 23)),
        ("HourEvents:active:not_hourly", lambda: bm.HourEvents("active", 2021, 1, 1, 23)),
        ("YearEvents:active:2020", lambda: bm.YearEvents("active", 2020)),
        ("YearEvents:active:2021", lambda: bm.YearEvents("active", 2021)),
        ("YearEvents:edge:2027", lambda: bm.YearEvents("edge", 2027)),
        ("YearEvents:app.v2:open:2019", lambda: bm.YearEvents("app.v2:open", 2019)),
        ("UniqueEvents:premium", lambda: bm.UniqueEvents("premium")),
        ("UniqueEvents:ios", lambda: bm.UniqueEvents("ios")),
        ("UniqueEvents:song:play", lambda: bm.UniqueEvents("song:play")),
        ("UniqueEvents:never", lambda: bm.UniqueEvents("never")),
    ]
    for label, make in cases:
        rec.step(label, _ask(_described, make))

    moments = {
        "2020-12-31T23:59": datetime(2020, 12, 31, 23, 59, tzinfo=UTC),
        "2021-01-01T00:00": datetime(2021, 1, 1, tzinfo=UTC),
        "2021-01-03T23:00": datetime(2021, 1, 3, 23, tzinfo=UTC),
        "2021-01-04T00:00": datetime(2021, 1, 4, tzinfo=UTC),
        "2026-12-28T05:00": datetime(2026, 12, 28, 5, tzinfo=UTC),
        "2027-01-03T05:00": datetime(2027, 1, 3, 5, tzinfo=UTC),
        "2027-01-04T05:00": datetime(2027, 1, 4, 5, tzinfo=UTC),
    }
    classes = PERIOD_CLASSES
    for name in (*classes, "UniqueEvents"):
        for when, at in moments.items():
            event = "premium" if name == "UniqueEvents" else "edge"
            rec.step(
                f"from_date:{name}:{event}:{when}",
                _from_date(getattr(bm, name), event, at),
            )
    rec.step(
        "from_date:MonthEvents:system_kw",
        lambda: _where(bm.MonthEvents.from_date("active", moments["2021-01-01T00:00"], "default")),
    )


def _reads(rec: _Recorder, bm: Any) -> None:
    """len, in, iteration, get_uuids, get_count and has_events_marked, one family each."""
    objs: dict[str, Callable[[], Any]] = {
        "MonthEvents:active:2021-1": lambda: bm.MonthEvents("active", 2021, 1),
        "WeekEvents:active:2026-53": lambda: bm.WeekEvents("active", 2026, 53),
        "DayEvents:active:2021-1-1": lambda: bm.DayEvents("active", 2021, 1, 1),
        "DayEvents:song:play:2021-1-1": lambda: bm.DayEvents("song:play", 2021, 1, 1),
        "HourEvents:song:play:2021-1-1-23": lambda: bm.HourEvents("song:play", 2021, 1, 1, 23),
        "YearEvents:active:2027": lambda: bm.YearEvents("active", 2027),
        "UniqueEvents:premium": lambda: bm.UniqueEvents("premium"),
        "UniqueEvents:ios": lambda: bm.UniqueEvents("ios"),
        "DayEvents:empty": lambda: bm.DayEvents("active", 2030, 6, 1),
        "UniqueEvents:never": lambda: bm.UniqueEvents("never"),
    }
    for name, make in objs.items():
        rec.step(f"len:{name}", _ask(len, make))
        rec.step(f"in:{name}", _ask(_probe, make))
        rec.step(f"iter:{name}", _ask(sorted, make))
        rec.step(f"iter:ascending:{name}", _ask(_ascending, make))
        rec.step(f"get_uuids:{name}", _ask(lambda obj: sorted(obj.get_uuids()), make))
        rec.step(f"get_count:{name}", _ask(lambda obj: obj.get_count(), make))
        rec.step(f"has_events_marked:{name}", _ask(lambda o: bool(o.has_events_marked()), make))
    rec.step(
        "in:DayEvents:active:2021-1-1:unmarked_far",
        lambda: 70_001 in bm.DayEvents("active", 2021, 1, 1),
    )
    rec.step(
        "in:MonthEvents:active:2021-1:unmarked_far_kept_by_month",
        lambda: 70_001 in bm.MonthEvents("active", 2021, 1),
    )
    rec.step(
        "has_events_marked:HourEvents:active:not_hourly",
        lambda: bool(bm.HourEvents("active", 2021, 1, 1, 23).has_events_marked()),
    )


def _moves(rec: _Recorder, bm: Any) -> None:
    """delta, next, prev, period_start and period_end across month, ISO-week and year ends."""
    objs: dict[str, Callable[[], Any]] = {
        "YearEvents:active:2020": lambda: bm.YearEvents("active", 2020),
        "MonthEvents:active:2020-12": lambda: bm.MonthEvents("active", 2020, 12),
        "MonthEvents:active:2021-1": lambda: bm.MonthEvents("active", 2021, 1),
        "MonthEvents:app.v2:open:2020-2": lambda: bm.MonthEvents("app.v2:open", 2020, 2),
        "WeekEvents:active:2020-52": lambda: bm.WeekEvents("active", 2020, 52),
        "WeekEvents:active:2020-53": lambda: bm.WeekEvents("active", 2020, 53),
        "WeekEvents:active:2021-1": lambda: bm.WeekEvents("active", 2021, 1),
        "WeekEvents:active:2026-53": lambda: bm.WeekEvents("active", 2026, 53),
        "WeekEvents:active:2027-1": lambda: bm.WeekEvents("active", 2027, 1),
        "WeekEvents:app.v2:open:2020-1": lambda: bm.WeekEvents("app.v2:open", 2020, 1),
        "DayEvents:active:2020-12-31": lambda: bm.DayEvents("active", 2020, 12, 31),
        "DayEvents:active:2021-1-1": lambda: bm.DayEvents("active", 2021, 1, 1),
        "DayEvents:app.v2:open:2020-2-28": lambda: bm.DayEvents("app.v2:open", 2020, 2, 28),
        "HourEvents:edge:2020-12-31-23": lambda: bm.HourEvents("edge", 2020, 12, 31, 23),
        "HourEvents:edge:2021-1-1-0": lambda: bm.HourEvents("edge", 2021, 1, 1, 0),
    }
    for name, make in objs.items():
        for n in (0, 1, -1, 2, 12, -12, 53, -53):
            rec.step(f"delta:{n}:{name}", _ask(_delta(n), make))
        rec.step(f"next:{name}", _ask(lambda obj: _where(obj.next()), make))
        rec.step(f"prev:{name}", _ask(lambda obj: _where(obj.prev()), make))
        rec.step(f"next:twice:{name}", _ask(lambda obj: _where(obj.next().next()), make))
        rec.step(f"period_start:{name}", _ask(lambda o: o.period_start().isoformat(), make))
        rec.step(f"period_end:{name}", _ask(lambda o: o.period_end().isoformat(), make))
    for name in ("premium", "ios"):
        unique = partial(bm.UniqueEvents, name)
        rec.step(f"next:UniqueEvents:{name}", _ask(lambda obj: _where(obj.next()), unique))
        rec.step(f"prev:UniqueEvents:{name}", _ask(lambda obj: _where(obj.prev()), unique))


def _ops(rec: _Recorder, bm: Any) -> None:
    """BitOpAnd/Or/Xor (and ``&``, ``|``, ``^``), two and three operands, nested 3 deep."""
    a1 = partial(bm.MonthEvents, "active", 2021, 1)
    s1 = partial(bm.MonthEvents, "song:play", 2021, 1)
    i1 = partial(bm.MonthEvents, "ios", 2021, 1)
    w53 = partial(bm.WeekEvents, "active", 2026, 53)
    sw53 = partial(bm.WeekEvents, "song:play", 2026, 53)
    d1 = partial(bm.DayEvents, "active", 2021, 1, 1)
    h23 = partial(bm.HourEvents, "song:play", 2021, 1, 1, 23)
    y20 = partial(bm.YearEvents, "sign_up", 2020)
    y27 = partial(bm.YearEvents, "active", 2027)
    prem = partial(bm.UniqueEvents, "premium")
    uios = partial(bm.UniqueEvents, "ios")
    empty = partial(bm.DayEvents, "active", 2030, 6, 1)

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("BitOpAnd:month_month", lambda: bm.BitOpAnd(a1(), s1())),
        ("BitOpAnd:three", lambda: bm.BitOpAnd(a1(), s1(), i1())),
        ("BitOpAnd:system_first", lambda: bm.BitOpAnd("default", a1(), prem())),
        ("BitOpAnd:week_unique", lambda: bm.BitOpAnd(w53(), prem())),
        ("BitOpAnd:day_hour", lambda: bm.BitOpAnd(d1(), h23())),
        ("BitOpAnd:with_empty", lambda: bm.BitOpAnd(a1(), empty())),
        ("BitOpAnd:year_year", lambda: bm.BitOpAnd(y20(), y27())),
        ("BitOpOr:month_month", lambda: bm.BitOpOr(a1(), s1())),
        ("BitOpOr:three", lambda: bm.BitOpOr(d1(), h23(), uios())),
        ("BitOpOr:system_first", lambda: bm.BitOpOr("default", w53(), sw53())),
        ("BitOpOr:with_empty", lambda: bm.BitOpOr(empty(), h23())),
        ("BitOpOr:one", lambda: bm.BitOpOr(h23())),
        ("BitOpXor:month_month", lambda: bm.BitOpXor(a1(), s1())),
        ("BitOpXor:three", lambda: bm.BitOpXor(a1(), s1(), i1())),
        ("BitOpXor:system_first", lambda: bm.BitOpXor("default", prem(), uios())),
        ("BitOpXor:self", lambda: bm.BitOpXor(a1(), a1())),
        ("BitOpXor:year_unique", lambda: bm.BitOpXor(y27(), prem())),
        ("operator_and:month_unique", lambda: a1() & prem()),
        ("operator_and:week_week", lambda: w53() & sw53()),
        ("operator_and:chain", lambda: a1() & s1() & i1()),
        ("operator_or:day_hour", lambda: d1() | h23()),
        ("operator_or:year_unique", lambda: y20() | uios()),
        ("operator_xor:month_month", lambda: a1() ^ s1()),
        ("operator_xor:unique_unique", lambda: prem() ^ uios()),
        (
            "nested:BitOpAnd(BitOpOr(BitOpXor))",
            lambda: bm.BitOpAnd(bm.BitOpOr(bm.BitOpXor(a1(), s1()), i1()), prem()),
        ),
        (
            "nested:BitOpXor(BitOpAnd(BitOpOr),BitOpOr)",
            lambda: bm.BitOpXor(
                bm.BitOpAnd(bm.BitOpOr(w53(), sw53()), prem()), bm.BitOpOr(d1(), h23())
            ),
        ),
        (
            "nested:BitOpOr(BitOpAnd(BitOpAnd),year)",
            lambda: bm.BitOpOr("default", bm.BitOpAnd(bm.BitOpAnd(a1(), s1()), d1()), y20()),
        ),
        ("nested:operators:((a^s)|i)&p", lambda: ((a1() ^ s1()) | i1()) & prem()),
        ("nested:operators:(w&(s|p))^d", lambda: (w53() & (sw53() | prem())) ^ d1()),
        (
            "nested:mixed:BitOpAnd(a|s,i^p)&y",
            lambda: bm.BitOpAnd(a1() | s1(), i1() ^ prem()) & y27(),
        ),
        (
            "not:BitOpNot:month",
            lambda: bm.BitOpNot(bm.MonthEvents("app.v2:open", 2020, 2)),
        ),
        ("not:BitOpNot:unique", lambda: bm.BitOpNot(prem())),
        ("not:BitOpNot:system_first", lambda: bm.BitOpNot("default", h23())),
        ("not:invert:day", lambda: ~bm.DayEvents("app.v2:open", 2020, 2, 29)),
        ("not:invert:empty", lambda: ~empty()),
        ("not:and_invert", lambda: a1() & ~h23()),
        ("not:invert_of_op", lambda: ~(h23() | d1())),
    ]
    for label, make in steps:
        rec.step(label, _ask(_facets, make))

    def snapshot_op() -> Any:
        op = bm.BitOpAnd(bm.DayEvents("snap.a", 2021, 1, 1), bm.UniqueEvents("snap.b"))
        before = len(op)
        bm.mark_event("snap.a", 42, now=datetime(2021, 1, 1, 12, tzinfo=UTC))
        bm.mark_unique("snap.b", 42)
        return {"before": before, "after": len(op), "in": 42 in op}

    def snapshot_year() -> Any:
        year = bm.YearEvents("snap.y", 2021)
        before = len(year)
        bm.mark_event("snap.y", 9, now=datetime(2021, 7, 1, tzinfo=UTC))
        return {"before": before, "after": len(year), "in": 9 in year}

    rec.step("snapshot:BitOpAnd:marked_after_construction", snapshot_op)
    rec.step("snapshot:YearEvents:marked_after_construction", snapshot_year)
    rec.step(
        "BitOpAnd:after_snapshot:fresh",
        lambda: _facets(bm.BitOpAnd(bm.DayEvents("snap.a", 2021, 1, 1), bm.UniqueEvents("snap.b"))),
    )
    rec.step("YearEvents:after_snapshot:fresh", lambda: _facets(bm.YearEvents("snap.y", 2021)))


def _edges(rec: _Recorder, bm: Any) -> None:
    """Non-UTC ``now=``, nonexistent periods, ids out of range, and ``delete()``."""
    plus2 = timezone(timedelta(hours=2))
    minus5 = timezone(timedelta(hours=-5))
    for name, at in (
        ("tz.plus2", datetime(2021, 1, 1, 0, 30, tzinfo=plus2)),  # 2020-12-31T22:30Z
        ("tz.minus5", datetime(2020, 12, 31, 23, 30, tzinfo=minus5)),  # 2021-01-01T04:30Z
    ):
        rec.step(f"mark_event:{name}", partial(bm.mark_event, name, 11, now=at, track_hourly=True))
        rec.step(
            f"tz:where_marked:{name}",
            partial(
                lambda event: [
                    len(cls(event, *args))
                    for cls, args in (
                        (bm.YearEvents, (2020,)),
                        (bm.YearEvents, (2021,)),
                        (bm.MonthEvents, (2020, 12)),
                        (bm.MonthEvents, (2021, 1)),
                        (bm.DayEvents, (2020, 12, 31)),
                        (bm.DayEvents, (2021, 1, 1)),
                        (bm.HourEvents, (2020, 12, 31, 22)),
                        (bm.HourEvents, (2020, 12, 31, 23)),
                        (bm.HourEvents, (2021, 1, 1, 0)),
                        (bm.HourEvents, (2021, 1, 1, 4)),
                    )
                ],
                name,
            ),
        )
        rec.step(
            f"from_date:finds_mark_made_with_same_now:{name}",
            partial(
                lambda event, when: [
                    11 in getattr(bm, cls).from_date(event, when)
                    for cls in (
                        "YearEvents",
                        "MonthEvents",
                        "WeekEvents",
                        "DayEvents",
                        "HourEvents",
                    )
                ],
                name,
                at,
            ),
        )

    bad: list[tuple[str, Callable[[], Any]]] = [
        ("invalid:MonthEvents:month_13", partial(bm.MonthEvents, "active", 2021, 13)),
        ("invalid:WeekEvents:2021-53", partial(bm.WeekEvents, "active", 2021, 53)),
        ("invalid:WeekEvents:week_0", partial(bm.WeekEvents, "active", 2021, 0)),
        ("invalid:DayEvents:feb_30", partial(bm.DayEvents, "active", 2021, 2, 30)),
        ("invalid:HourEvents:hour_24", partial(bm.HourEvents, "active", 2021, 1, 1, 24)),
    ]
    for label, make in bad:
        rec.step(label, _ask(lambda obj: [obj.redis_key, len(obj)], make))
    rec.step(
        "invalid:WeekEvents:2021-53:period_start",
        lambda: bm.WeekEvents("active", 2021, 53).period_start().isoformat(),
    )
    jan1 = datetime(2021, 1, 1, 12, tzinfo=UTC)
    rec.step("invalid:mark_event:id_2**32", partial(bm.mark_event, "active", 2**32, now=jan1))
    rec.step("invalid:mark_event:id_-1", partial(bm.mark_event, "active", -1, now=jan1))
    rec.step("invalid:in:id_2**32", lambda: 2**32 in bm.MonthEvents("active", 2021, 1))
    rec.step("invalid:in:id_-1", lambda: -1 in bm.UniqueEvents("premium"))

    def left(event: str) -> list[int]:
        """What remains of ``event``: Year, Month, Week 53/1/2, Day 1/2/15, Hour 1-3, unique."""
        return [
            len(bm.YearEvents(event, 2021)),
            len(bm.MonthEvents(event, 2021, 1)),
            len(bm.WeekEvents(event, 2020, 53)),
            len(bm.WeekEvents(event, 2021, 1)),
            len(bm.WeekEvents(event, 2021, 2)),
            len(bm.DayEvents(event, 2021, 1, 1)),
            len(bm.DayEvents(event, 2021, 1, 2)),
            len(bm.DayEvents(event, 2021, 1, 15)),
            len(bm.HourEvents(event, 2021, 1, 1, 3)),
            len(bm.UniqueEvents(event)),
        ]

    def marked(event: str) -> list[int]:
        for day, hour in ((1, 3), (1, 23), (2, 3), (15, 3)):
            at = datetime(2021, 1, day, hour, tzinfo=UTC)
            bm.mark_event(event, day * 10 + hour, now=at, track_hourly=True, track_unique=True)
        return left(event)

    deletions: dict[str, Callable[[str], Any]] = {
        "MonthEvents": lambda e: bm.MonthEvents(e, 2021, 1),
        "WeekEvents": lambda e: bm.WeekEvents(e, 2020, 53),
        "DayEvents": lambda e: bm.DayEvents(e, 2021, 1, 1),
        "HourEvents": lambda e: bm.HourEvents(e, 2021, 1, 1, 3),
        "YearEvents": lambda e: bm.YearEvents(e, 2021),
        "UniqueEvents": lambda e: bm.UniqueEvents(e),
        "BitOpAnd": lambda e: bm.BitOpAnd(bm.MonthEvents(e, 2021, 1), bm.UniqueEvents(e)),
    }
    for name, make_of in deletions.items():
        event = f"del.{name}"
        rec.step(f"delete:{name}:marked", partial(marked, event))
        rec.step(
            f"delete:{name}:returns",
            partial(lambda mk, ev: repr(mk(ev).delete()), make_of, event),
        )
        rec.step(f"delete:{name}:left", partial(left, event))


def _names_and_cleanup(rec: _Recorder, bm: Any) -> None:
    """get_event_names with and without a prefix, around both bitop-key deletions."""
    rec.step("get_event_names:all", lambda: sorted(bm.get_event_names()))
    for prefix in ("a", "song", "song:", "sign_", "app.v2", "s", "snap.", "zzz", "bitop"):
        rec.step(
            f"get_event_names:prefix={prefix}",
            partial(_names, bm, prefix),
        )
    rec.step(
        "get_event_names:system_positional",
        lambda: sorted(bm.get_event_names("default", "edge")),
    )
    rec.step("delete_temporary_bitop_keys:returns", lambda: repr(bm.delete_temporary_bitop_keys()))
    rec.step(
        "delete_temporary_bitop_keys:events_kept",
        lambda: [len(bm.MonthEvents("active", 2021, 1)), len(bm.UniqueEvents("premium"))],
    )
    rec.step(
        "delete_temporary_bitop_keys:fresh_op",
        lambda: _facets(bm.BitOpOr(bm.DayEvents("active", 2021, 1, 1), bm.UniqueEvents("ios"))),
    )
    rec.step("delete_temporary_bitop_keys:fresh_year", lambda: len(bm.YearEvents("active", 2021)))
    rec.step("delete_temporary_bitop_keys:names", lambda: sorted(bm.get_event_names()))
    rec.step("delete_runtime_bitop_keys:returns", lambda: repr(bm.delete_runtime_bitop_keys()))
    rec.step("delete_runtime_bitop_keys:again", lambda: repr(bm.delete_runtime_bitop_keys()))
    rec.step(
        "delete_runtime_bitop_keys:fresh_op",
        lambda: _facets(bm.BitOpXor(bm.WeekEvents("active", 2020, 53), bm.UniqueEvents("ios"))),
    )
    rec.step("delete_runtime_bitop_keys:names", lambda: sorted(bm.get_event_names()))


def _cohort(rec: _Recorder, cohort: Any) -> None:
    """get_dates_data for every time_group, as percent and as counts, with and without b-filters."""
    tables: dict[str, dict[str, Any]] = {
        "days:2020": {"time_group": "days", "start_date": "2020-12-26", "num_results": 10},
        "days:2026": {"time_group": "days", "start_date": "2026-12-26", "num_results": 10},
        "weeks:2020": {"time_group": "weeks", "start_date": "2020-12-28", "num_results": 4},
        "weeks:2026": {"time_group": "weeks", "start_date": "2026-12-27", "num_results": 4},
        "months:2021": {"time_group": "months", "start_date": "2021-01-01", "num_results": 6},
        "months:2027": {"time_group": "months", "start_date": "2027-01-31", "num_results": 3},
        "years:2021": {"time_group": "years", "start_date": "2021-06-01", "num_results": 5},
        "years:2027": {"time_group": "years", "start_date": "2027-01-01", "num_results": 1},
    }
    for name, kwargs in tables.items():
        for as_percent in (True, False):
            for select1b, select2b in ((None, None), ("ios", "premium.none"), (None, "ios")):
                extra = f":{select1b}:{select2b}" if select1b or select2b else ""
                rec.step(
                    f"get_dates_data:{name}:as_percent={as_percent}{extra}",
                    partial(
                        _table,
                        cohort,
                        "active",
                        "song:play",
                        select1b=select1b,
                        select2b=select2b,
                        system="default",
                        as_percent=as_percent,
                        num_of_rows=6,
                        **kwargs,
                    ),
                )
    rec.step(
        "get_dates_data:positional:sign_up",
        partial(
            _table,
            cohort,
            "sign_up",
            "active",
            None,
            None,
            "weeks",
            "default",
            False,
            3,
            4,
            "2027-01-01",
        ),
    )


def run_calls(bm: Any, cohort: Any, host: str, port: int) -> list[list[object]]:
    """Run the whole sequence through ``bm`` and ``cohort``; return ``[label, answer]`` pairs.

    :param bm: ``bitmapist`` or ``bitlens.compat.bitmapist``
    :param cohort: its cohort module (``bitmapist.cohort`` or ``...bitmapist.cohort``)
    :param host: the server's host (its data is deleted at the end)
    :param port: the server's port
    """
    rec = _Recorder()
    rec.step("setup_redis:default", lambda: repr(bm.setup_redis("default", host, port)))
    _write(rec, bm)
    _constructors(rec, bm)
    _reads(rec, bm)
    _moves(rec, bm)
    _ops(rec, bm)
    _edges(rec, bm)
    _names_and_cleanup(rec, bm)
    _cohort(rec, cohort)
    rec.step("delete_all_events:returns", lambda: repr(bm.delete_all_events()))
    rec.step("delete_all_events:get_event_names", lambda: sorted(bm.get_event_names()))
    rec.step("delete_all_events:len", lambda: len(bm.MonthEvents("active", 2021, 1)))
    rec.step("delete_all_events:unique", lambda: len(bm.UniqueEvents("premium")))
    rec.step("delete_all_events:again", lambda: repr(bm.delete_all_events()))
    return rec.calls


def main() -> None:
    """Run :func:`run_calls` with bitmapist itself; print ``{"bitmapist": version, "calls"}``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    from importlib.metadata import version

    import bitmapist  # pyright: ignore[reportMissingImports]
    import bitmapist.cohort  # pyright: ignore[reportMissingImports]

    calls = run_calls(bitmapist, bitmapist.cohort, args.host, args.port)
    json.dump({"bitmapist": version("bitmapist"), "calls": calls}, sys.stdout)


if __name__ == "__main__":
    main()
