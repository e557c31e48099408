"""Hostile input over the whole public API: a typed error, and not one command sent.

Every call below gets at least one bad value — an id that is a bool, a float, negative,
too large or a str; an event name with a lone surrogate, a control, format or space
character, a brace, a leading ``~``, empty or too long; a period that does not exist; a
bogus time zone; an ``at`` that is a str, a number or a ``time``, or an aware datetime that
leaves years 1..9999; an option of the wrong type or range; an expiry deadline past year
9999 — mixed with good values, some of them odd (aware datetimes with offsets to the
microsecond). Each call must raise a :class:`bitlens.BitlensError`, and the counting proxy
in front of the real server must see 0 commands: validation happens before anything is
sent, on every path (``mark_event``, ``mark_event_nowait``, ``mark_events``, ``Batch``,
``count`` / ``contains`` / ``members``, the expression constructors, ``Tracker(...)``,
``IdMap``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any, TypeAlias, cast
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _helpers import examples, tracker_with_option
from bitlens import (
    BitlensError,
    BitOpAnd,
    BitOpDiff,
    BitOpNot,
    BitOpOr,
    BitOpXor,
    DayEvents,
    EventsBetween,
    Expr,
    HourEvents,
    IdMap,
    InvalidTimeZone,
    MonthEvents,
    PeriodEvents,
    Tracker,
    UniqueEvents,
    WeekEvents,
    YearEvents,
)
from bitlens._periods import resolve_tz

if TYPE_CHECKING:
    import redis.asyncio

    from _proxy import RoundTripProxy

pytestmark = pytest.mark.anyio

Call: TypeAlias = Callable[[Tracker], Awaitable[object]]

HOSTILE = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

UTC = dt.timezone.utc
REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp")

# -- good values (each call mixes them with at least one bad one) ----------------------------

good_names = st.sampled_from(["active", "a:b", "café", "x" * 200, "日本語", "my-event.v2"])
good_ids = st.integers(0, 2**63 - 1)
odd_offsets = st.builds(
    dt.timezone,
    st.timedeltas(
        min_value=-dt.timedelta(hours=23, minutes=59, seconds=59),
        max_value=dt.timedelta(hours=23, minutes=59, seconds=59),
    ),
)
good_moments: st.SearchStrategy[dt.datetime | dt.date | None] = st.one_of(
    st.none(),
    st.dates(dt.date(2, 1, 1), dt.date(9998, 12, 31)),
    st.datetimes(
        dt.datetime(2, 1, 1),
        dt.datetime(9998, 12, 31),
        timezones=cast("Any", st.none() | odd_offsets | st.just(ZoneInfo("Asia/Kathmandu"))),
    ),
)
good_exprs = st.sampled_from(
    [
        MonthEvents("active", 2026, 11),
        DayEvents("a:b", 2026, 2, 28) | WeekEvents("café", 2026, 9),
        ~UniqueEvents("active"),
        EventsBetween("active", dt.date(2026, 1, 1), dt.date(2026, 3, 1)),
    ]
)

# -- bad values -------------------------------------------------------------------------------

unsafe_chars = st.characters(categories=cast("Any", REFUSED_CATEGORIES)) | st.sampled_from(
    ["{", "}"]
)
safe_chars = st.characters(
    exclude_categories=cast("Any", REFUSED_CATEGORIES), exclude_characters="{}~"
)
safe_text = st.text(safe_chars, max_size=12)
not_str = st.one_of(
    st.integers(),
    st.binary(max_size=8),
    st.none(),
    st.floats(),
    st.lists(st.text(max_size=3), max_size=2),
    st.builds(uuid.UUID, st.uuids().map(str)),
)
bad_names = st.one_of(
    st.builds(lambda a, c, b: a + c + b, safe_text, unsafe_chars, safe_text),
    st.just(""),
    safe_text.map(lambda t: "~" + t),
    st.text(safe_chars, min_size=201, max_size=300),
    not_str,
)
bad_ids = st.one_of(
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(max_value=-1),
    st.integers(min_value=2**63),
    st.text(max_size=6),
    st.none(),
    st.just(Fraction(1, 2)),
    st.complex_numbers(max_magnitude=10),
)


def _is_bogus_zone(name: str) -> bool:
    """Tell whether ``name`` is not a time zone bitlens can resolve.

    :param name: the candidate
    """
    try:
        resolve_tz(name)
    except InvalidTimeZone:
        return True
    return False


bad_zones: st.SearchStrategy[object] = st.one_of(
    st.sampled_from(
        ["Mars/Olympus", "UTC\n", "Europe/../etc", "\ud800", "x" * 300, "", "Europe", "/etc/passwd"]
    ),
    st.text(max_size=30).filter(_is_bogus_zone),
    st.integers(),
    st.floats(),
    st.binary(max_size=4),
    st.timedeltas(),
)
overflowing = st.one_of(  # aware datetimes that leave years 1..9999 when converted to UTC
    st.integers(1, 24 * 60 - 1).map(
        lambda m: dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.timezone(-dt.timedelta(minutes=m)))
    ),
    st.integers(1, 24 * 60 - 1).map(
        lambda m: dt.datetime(1, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(minutes=m)))
    ),
)
bad_moments: st.SearchStrategy[object] = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.floats(),
    st.times(),
    st.booleans(),
    st.timedeltas(),
    st.binary(max_size=8),
    overflowing,
)
bad_externals = st.one_of(
    st.just(""),
    st.integers(),
    st.binary(max_size=8),
    st.none(),
    st.builds(lambda a, b: a + "\ud800" + b, st.text(max_size=5), st.text(max_size=5)),
    st.text(st.characters(min_codepoint=0x800, max_codepoint=0xD7FF), min_size=342, max_size=400),
)


def mark_args() -> st.SearchStrategy[tuple[Any, Any, Any]]:
    """(event, id, at) with at least one bad value; the others good or bad."""
    any_name, any_id, any_at = (
        good_names | bad_names,
        good_ids | bad_ids,
        good_moments | bad_moments,
    )
    return st.one_of(
        st.tuples(bad_names, any_id, any_at),
        st.tuples(any_name, bad_ids, any_at),
        st.tuples(any_name, any_id, bad_moments),
    )


async def _attempt(
    client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str, call: Call, **options: Any
) -> None:
    """Run ``call`` on a fresh tracker: it must raise a BitlensError and send nothing.

    The tracker is closed afterwards (which would flush anything queued), then the proxy
    must have seen no command at all.

    :param client: the counted client
    :param proxy: its counting proxy
    :param prefix: the test's prefix
    :param call: the call under test
    :param options: Tracker options
    """
    tracker = Tracker(client, prefix=prefix, **options)
    try:
        with pytest.raises(BitlensError):
            await call(tracker)
    finally:
        await tracker.aclose()
    assert proxy.commands == 0
    assert proxy.round_trips == 0


# -- marking ------------------------------------------------------------------------------------


def _mark_call(kind: str, event: Any, user_id: Any, at: Any) -> Call:
    """Return a call that writes one hostile mark through the path ``kind``.

    :param kind: the write path
    :param event: the event name
    :param user_id: the id
    :param at: the moment
    """

    async def call(tracker: Tracker) -> object:
        if kind == "mark_event":
            await tracker.mark_event(event, user_id, at)
        elif kind == "unmark_event":
            await tracker.unmark_event(event, user_id, at)
        elif kind == "mark_event_nowait":
            tracker.mark_event_nowait(event, user_id, at)
        elif kind == "mark_events":  # good items first: the chunk is checked whole before sending
            await tracker.mark_events([("active", 1), ("active", 2, None), (event, user_id, at)])
        elif kind == "batch":
            async with tracker.batch() as batch:
                batch.mark_event("active", 1)
                batch.mark_event(event, user_id, at)
        elif kind == "batch_unmark":
            async with tracker.batch() as batch:
                batch.unmark_event(event, user_id, at)
        else:
            raise AssertionError(kind)
        return None

    return call


MARK_PATHS = st.sampled_from(
    ["mark_event", "unmark_event", "mark_event_nowait", "mark_events", "batch", "batch_unmark"]
)


@HOSTILE
@given(kind=MARK_PATHS, args=mark_args(), coalesce=st.booleans(), hourly=st.booleans())
async def test_hostile_marks_raise_and_send_nothing(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    kind: str,
    args: tuple[Any, Any, Any],
    coalesce: bool,
    hourly: bool,
) -> None:
    """Every write path refuses a bad name, id or ``at`` with a BitlensError, sending nothing."""
    await _attempt(
        counted_client,
        proxy,
        prefix,
        _mark_call(kind, *args),
        coalesce=coalesce,
        track_hourly=hourly,
        track_unique=hourly,
    )


@HOSTILE
@given(
    kind=st.sampled_from(["mark_unique", "unmark_unique", "batch_unique"]),
    args=st.one_of(
        st.tuples(bad_names, good_ids | bad_ids), st.tuples(good_names | bad_names, bad_ids)
    ),
)
async def test_hostile_unique_marks_raise_and_send_nothing(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    kind: str,
    args: tuple[Any, Any],
) -> None:
    """mark_unique, unmark_unique and Batch.mark_unique refuse bad input, sending nothing."""
    event, user_id = args

    async def call(tracker: Tracker) -> object:
        if kind == "mark_unique":
            await tracker.mark_unique(event, user_id)
        elif kind == "unmark_unique":
            await tracker.unmark_unique(event, user_id)
        else:
            async with tracker.batch() as batch:
                batch.mark_unique(event, user_id)
        return None

    await _attempt(counted_client, proxy, prefix, call)


@st.composite
def late_marks(draw: st.DrawFn) -> tuple[str, dt.timedelta, dt.datetime]:
    """A granularity, a TTL and a moment whose expiry deadline falls past year 9999."""
    granularity = draw(st.sampled_from(["hour", "day", "week", "month"]))
    if draw(st.booleans()):  # late in year 9999, with a TTL of more than a year
        ttl = draw(st.timedeltas(dt.timedelta(days=367), dt.timedelta(days=5000)))
        at = draw(st.datetimes(dt.datetime(9999, 1, 1), dt.datetime(9999, 12, 31, 23, 59)))
    else:  # any day since 1970, with a TTL of more than 8,030 years
        ttl = draw(st.timedeltas(dt.timedelta(days=8031 * 366), dt.timedelta.max))
        at = draw(st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(9999, 12, 31)))
    return granularity, ttl, at


@HOSTILE
@given(kind=MARK_PATHS, late=late_marks(), coalesce=st.booleans())
async def test_marks_whose_deadline_overflows_raise_at_the_call(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    kind: str,
    late: tuple[str, dt.timedelta, dt.datetime],
    coalesce: bool,
) -> None:
    """A mark whose period end + TTL passes year 9999 raises on every path, sending nothing."""
    granularity, ttl, at = late
    await _attempt(
        counted_client,
        proxy,
        prefix,
        _mark_call(kind, "active", 7, at),
        expire_after={granularity: ttl},
        track_hourly=True,
        coalesce=coalesce,
    )


# -- expressions and queries ------------------------------------------------------------------

LEAVES: dict[str, tuple[type[Expr], tuple[tuple[int, int], ...]]] = {
    "year": (YearEvents, ((1, 9999),)),
    "month": (MonthEvents, ((1, 9999), (1, 12))),
    "week": (WeekEvents, ((1, 9999), (1, 52))),
    "day": (DayEvents, ((1, 9999), (1, 12), (1, 28))),
    "hour": (HourEvents, ((1, 9999), (1, 12), (1, 28), (0, 23))),
}


@st.composite
def hostile_leaves(draw: st.DrawFn) -> Callable[[], Expr]:
    """A constructor call of a period leaf with a bad name, field, impossible date or zone."""
    cls, bounds = LEAVES[draw(st.sampled_from(sorted(LEAVES)))]
    fields: list[object] = [draw(st.integers(lo, hi)) for lo, hi in bounds]
    name: object = draw(good_names)
    tz: object = draw(st.sampled_from(["UTC", "Europe/Berlin", UTC]))
    broken = draw(st.sampled_from(["name", "field", "type", "impossible", "zone"]))
    if broken == "name":
        name = draw(bad_names)
    elif broken in ("field", "type"):
        i = draw(st.integers(0, len(bounds) - 1))
        lo, hi = bounds[i]
        if broken == "field":
            fields[i] = draw(st.integers(max_value=lo - 1) | st.integers(min_value=hi + 31))
        else:
            fields[i] = draw(st.booleans() | st.floats() | st.text(max_size=3) | st.none())
    elif broken == "impossible":
        if cls is WeekEvents:  # week 53 of a 52-week ISO year
            fields = [draw(st.sampled_from([2021, 2022, 2023, 2025, 9999])), 53]
        elif cls in (DayEvents, HourEvents):  # Feb 29 of a common year, or day 31 of a short month
            year = draw(st.integers(1, 9999).filter(lambda y: y % 4 != 0))
            fields[:3] = draw(st.sampled_from([[year, 2, 29], [2026, 4, 31], [2026, 2, 30]]))
        elif cls is MonthEvents:
            fields[-1] = draw(st.sampled_from([0, 13, -1]))
        else:
            fields[-1] = draw(st.sampled_from([0, 10_000, -1]))
    else:
        tz = draw(bad_zones)
    return lambda: cls(name, *fields, tz=tz)  # type: ignore[call-arg]


@st.composite
def hostile_from_dates(draw: st.DrawFn) -> Callable[[], Expr]:
    """A ``from_date`` call with a bad name, ``dt`` or zone."""
    leaves: list[type[PeriodEvents]] = [YearEvents, MonthEvents, WeekEvents, DayEvents, HourEvents]
    cls = draw(st.sampled_from(leaves))
    name: Any = draw(good_names)
    moment: Any = draw(good_moments)
    tz: Any = "UTC"
    broken = draw(st.sampled_from(["name", "moment", "zone"]))
    if broken == "name":
        name = draw(bad_names)
    elif broken == "moment":
        moment = draw(bad_moments.filter(lambda m: m is not None))
    else:
        tz = draw(bad_zones)
    return lambda: cls.from_date(name, moment, tz)


@st.composite
def hostile_ranges(draw: st.DrawFn) -> Callable[[], Expr]:
    """An EventsBetween that is bad: name, bound types, empty, off the hour, or odd offsets."""
    start = draw(st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1)))
    start = start.replace(minute=0, second=0, microsecond=0)
    end = start + dt.timedelta(days=draw(st.integers(1, 400)))
    name: object = draw(good_names)
    hourly: object = draw(st.sampled_from([None, True, False]))
    bounds: tuple[object, object] = (start, end)
    broken = draw(st.sampled_from(["name", "type", "empty", "minute", "offset", "hourly"]))
    if broken == "name":
        name = draw(bad_names)
    elif broken == "type":
        bounds = (draw(bad_moments), end) if draw(st.booleans()) else (start, draw(bad_moments))
    elif broken == "empty":
        bounds = (end, start) if draw(st.booleans()) else (start, start)
    elif broken == "minute":  # a bound off the whole hour
        bounds = (start.replace(minute=draw(st.integers(1, 59))), end)
    elif broken == "offset":  # whole local hours in an offset that is not whole hours in UTC
        minutes = draw(st.integers(-23 * 60, 23 * 60).filter(lambda m: m % 60 != 0))
        bounds = (start.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes))), end)
    else:
        hourly = draw(st.integers() | st.text(max_size=3))
    return lambda: EventsBetween(name, *bounds, hourly=hourly)  # type: ignore[arg-type]


@st.composite
def hostile_trees(draw: st.DrawFn) -> Callable[[], Expr]:
    """An operator node with an operand that is not an expression."""
    good = draw(good_exprs)
    bad: Any = draw(st.one_of(st.integers(), st.text(max_size=3), st.just({1, 2}), st.none()))
    node = draw(st.sampled_from([BitOpAnd, BitOpOr, BitOpXor, BitOpDiff]))
    if draw(st.booleans()):
        return lambda: BitOpNot(bad)
    return lambda: node(good, bad)


hostile_exprs = st.one_of(hostile_leaves(), hostile_from_dates(), hostile_ranges(), hostile_trees())
QUESTIONS = st.sampled_from(["count", "count_many", "contains", "contains_many", "members"])


async def _ask(tracker: Tracker, question: str, expr: Expr, user_id: Any = 1) -> object:
    """Ask ``tracker`` one question about ``expr``.

    :param tracker: the tracker
    :param question: which method
    :param expr: the expression
    :param user_id: the id for membership questions
    """
    if question == "count":
        return await tracker.count(expr)
    if question == "count_many":
        return await tracker.count_many({"a": MonthEvents("active", 2026, 11), "b": expr})
    if question == "contains":
        return await tracker.contains(expr, user_id)
    if question == "contains_many":
        return await tracker.contains_many(expr, [1, 2**40, user_id])
    return [uid async for uid in tracker.members(expr)]


@HOSTILE
@given(build=hostile_exprs, question=QUESTIONS)
async def test_questions_about_hostile_expressions_raise_and_send_nothing(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    build: Callable[[], Expr],
    question: str,
) -> None:
    """Building and asking about a leaf, range or tree of bad input raises, sending nothing."""

    async def call(tracker: Tracker) -> object:
        return await _ask(tracker, question, build())

    await _attempt(counted_client, proxy, prefix, call)


@HOSTILE
@given(
    expr=good_exprs,
    question=st.sampled_from(["contains", "contains_many"]),
    user_id=bad_ids,
)
async def test_membership_of_a_hostile_id_raises_and_sends_nothing(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    expr: Expr,
    question: str,
    user_id: object,
) -> None:
    """contains and contains_many refuse a bad id, even after good ones, sending nothing."""

    async def call(tracker: Tracker) -> object:
        return await _ask(tracker, question, expr, user_id)

    await _attempt(counted_client, proxy, prefix, call)


@HOSTILE
@given(bad=st.one_of(st.integers(), st.text(max_size=3), st.just({1, 2}), st.none()))
async def test_count_many_with_a_non_expression_raises_and_sends_nothing(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str, bad: object
) -> None:
    """count_many of a good expression and a non-expression raises, sending nothing."""

    async def call(tracker: Tracker) -> object:
        return await tracker.count_many([MonthEvents("active", 2026, 11), bad])  # type: ignore[list-item]

    await _attempt(counted_client, proxy, prefix, call)


# -- Tracker options --------------------------------------------------------------------------

counts = st.one_of(
    st.integers(max_value=0), st.booleans(), st.floats(), st.text(max_size=3), st.none()
)
flags = st.one_of(st.integers(), st.text(max_size=3), st.none(), st.floats())
bad_ttls = st.one_of(
    st.integers(),
    st.floats(),
    st.none(),
    st.text(max_size=3),
    st.timedeltas(max_value=dt.timedelta(0)),
)
BAD_OPTIONS: dict[str, st.SearchStrategy[object]] = {
    "prefix": st.one_of(
        bad_names.filter(lambda n: not (isinstance(n, str) and 0 < len(n) <= 64 and n[0] == "~")),
        st.text(safe_chars, min_size=1, max_size=10).map(lambda t: t + "\n"),
        st.text(safe_chars, min_size=65, max_size=80),
    ),
    "tz": bad_zones,
    "track_hourly": flags,
    "track_unique": flags,
    "coalesce": flags,
    "cluster": flags,
    "shard_bits": st.one_of(st.integers(max_value=7), st.integers(min_value=33), st.booleans()),
    "max_user_id": st.one_of(
        st.booleans(),
        st.floats(),
        st.integers(max_value=0),
        st.integers(min_value=2**63),
        st.text(max_size=3),
    ),
    "schema": st.one_of(st.text(max_size=3), st.integers(), st.just(object())),
    "members_chunk_bytes": counts,
    "mark_chunk_size": counts,
    "coalesce_max_marks": counts,
    "coalesce_max_in_flight": counts,
    "nowait_max_queue": counts,
    "coalesce_delay": st.one_of(
        st.floats(max_value=-1e-9),
        st.sampled_from([float("nan"), float("inf")]),
        st.booleans(),
        st.text(max_size=3),
        st.none(),
    ),
    "replicas_ack": st.one_of(
        st.integers(max_value=-1), st.booleans(), st.floats(), st.text(max_size=3)
    ),
    "reads": st.one_of(st.text(max_size=3), st.integers(), st.none(), st.just("Server")),
    "expire_after": st.one_of(
        st.integers(),
        st.text(max_size=3),
        st.lists(st.timedeltas(), max_size=2),
        st.dictionaries(
            st.text(max_size=6).filter(lambda k: k not in ("hour", "day", "week", "month")),
            st.timedeltas(dt.timedelta(days=1)),
            min_size=1,
            max_size=2,
        ),
        st.dictionaries(
            st.sampled_from(["hour", "day", "week", "month"]), bad_ttls, min_size=1, max_size=2
        ),
    ),
}


@st.composite
def bad_options(draw: st.DrawFn) -> tuple[str, object]:
    """One Tracker option with a bad value."""
    name = draw(st.sampled_from(sorted(BAD_OPTIONS)))
    return name, draw(BAD_OPTIONS[name])


@HOSTILE
@given(option=bad_options())
async def test_hostile_tracker_options_raise_and_send_nothing(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, option: tuple[str, object]
) -> None:
    """Tracker(...) with one bad option raises a BitlensError (a ValueError), sending nothing."""
    name, value = option
    _, build = tracker_with_option(counted_client, name, value)
    with pytest.raises(BitlensError) as caught:
        build()
    assert isinstance(caught.value, ValueError)
    assert proxy.commands == 0


# -- IdMap ------------------------------------------------------------------------------------

BAD_IDMAP_OPTIONS: dict[str, st.SearchStrategy[object]] = {
    "name": BAD_OPTIONS["prefix"],
    "buckets": st.one_of(
        st.integers(max_value=0), st.integers(min_value=16385), st.booleans(), st.floats()
    ),
    "cache_size": st.one_of(st.integers(max_value=-1), st.floats(), st.text(max_size=2)),
    "members_chunk": counts,
}


@HOSTILE
@given(
    option=st.sampled_from(sorted(BAD_IDMAP_OPTIONS)).flatmap(
        lambda n: st.tuples(st.just(n), BAD_IDMAP_OPTIONS[n])
    )
)
async def test_hostile_id_map_options_raise_and_send_nothing(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    option: tuple[str, object],
) -> None:
    """IdMap(...) with a bad name, bucket count, cache size or chunk raises, sending nothing."""
    name, value = option
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(BitlensError):
        IdMap(tracker, **{name: value})  # type: ignore[arg-type]
    assert proxy.commands == 0


@st.composite
def hostile_id_map_calls(draw: st.DrawFn) -> Callable[[IdMap], Awaitable[object]]:
    """A call of an IdMap method with a bad external id, event name, ``at`` or int."""
    kind = draw(st.sampled_from(["mark_event", "mark_events", "ids", "external", "contains"]))
    good_external = draw(st.sampled_from(["alice", "7f0c0b4e-5a8e-4d9a-9a43-2b1f7f0d3c11"]))
    if kind in ("mark_event", "mark_events"):
        drawn: tuple[Any, Any, Any] = draw(
            st.one_of(
                st.tuples(bad_names, st.just(good_external), good_moments),
                st.tuples(good_names, bad_externals, good_moments),
                st.tuples(good_names, st.just(good_external), bad_moments),
            )
        )
        event, external, at = drawn
        if kind == "mark_event":
            return lambda ids: ids.mark_event(event, external, at)
        return lambda ids: ids.mark_events([("active", "bob"), (event, external, at)])
    if kind == "ids":
        bad = draw(bad_externals)
        create = draw(st.booleans())
        return lambda ids: ids.ids(["bob", bad], create=create)
    if kind == "external":
        bad_int = draw(bad_ids)
        return lambda ids: ids.external([1, bad_int])
    bad = draw(bad_externals)
    expr = draw(good_exprs)
    return lambda ids: ids.contains(expr, bad)


@HOSTILE
@given(call=hostile_id_map_calls())
async def test_hostile_id_map_calls_raise_and_send_nothing(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    call: Callable[[IdMap], Awaitable[object]],
) -> None:
    """IdMap's marks and lookups refuse bad external ids, names, moments and ints; send nothing."""
    await _attempt(counted_client, proxy, prefix, lambda tracker: call(IdMap(tracker)))
