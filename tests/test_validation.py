"""Bad input is refused with a typed error before anything is sent.

Event names, prefixes and id map names; ``at`` values and time zones; the Tracker's and
the IdMap's options; expiry deadlines past year 9999; and the SCAN patterns that find one
prefix's keys (and never another's). The random sweep over the whole API lives in
tests/test_hostile_input.py.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import sys
import unicodedata
from typing import TYPE_CHECKING, Any, cast

import pytest

from _helpers import scan_keys, tracker_with_option
from bitlens import (
    BitlensError,
    DayEvents,
    EventsBetween,
    IdMap,
    InvalidEventName,
    InvalidMoment,
    InvalidOption,
    InvalidPeriod,
    InvalidPrefix,
    InvalidTimeZone,
    InvalidUserId,
    MonthEvents,
    ShardedSchema,
    Tracker,
    WeekEvents,
    last,
)
from bitlens._keys import validate_event_name
from bitlens._periods import Day, resolve_tz, to_local
from bitlens.cli._demo import run_demo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio

    from _proxy import RoundTripProxy
    from bitlens._writes import Granularity

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
AT = dt.datetime(2026, 11, 27, 13, 5, tzinfo=UTC)
REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp")


def loose(value: object) -> Any:
    """Return ``value`` typed as ``Any``, to pass a wrong type on purpose.

    :param value: the value
    """
    return value


# -- event names, prefixes, id map names ------------------------------------------------------


def test_every_control_format_space_and_surrogate_character_is_refused() -> None:
    """Each code point of categories Cc, Cf, Cs, Zs, Zl and Zp makes an event name invalid."""
    accepted = [
        f"U+{cp:04X}"
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) in REFUSED_CATEGORIES
        and _accepts(validate_event_name, f"a{chr(cp)}b")
    ]
    assert accepted == []


def _accepts(check: Any, value: str) -> bool:
    """Tell whether ``check(value)`` returns instead of raising InvalidEventName.

    :param check: the validator
    :param value: the name
    """
    try:
        check(value)
    except InvalidEventName:
        return False
    return True


def test_a_lone_surrogate_from_json_is_refused_by_code_point() -> None:
    """``json.loads('"a\\ud800"')`` is a str no encoder takes: InvalidEventName names U+D800."""
    name = json.loads('"a\\ud800"')
    with pytest.raises(InvalidEventName, match=r"U\+D800"):
        validate_event_name(name)


@pytest.mark.parametrize(
    "char",
    [
        "\x85",
        "\x9f",
        "\u202a",
        "\u202e",
        "\u2066",
        "\u2069",
        "\u200b",
        "\u200d",
        "\u2060",
        "\ufeff",
    ],
    ids=["NEL", "APC", "LRE", "RLO", "LRI", "PDI", "ZWSP", "ZWJ", "WJ", "BOM"],
)
def test_c1_bidi_and_zero_width_characters_are_refused(char: str) -> None:
    """C1 controls, bidi overrides and isolates and zero-width characters are refused."""
    with pytest.raises(InvalidEventName, match=rf"U\+{ord(char):04X}"):
        MonthEvents(f"sign{char}up", 2026, 11)


@pytest.mark.parametrize(
    "name", ["café", "日本語", "\U0001f44d", "❤\ufe0f", "my:event", "a-b.c_d/e"]
)
def test_ordinary_unicode_names_are_still_accepted(name: str) -> None:
    """Letters of any script, emoji with a variation selector, ':' and punctuation pass."""
    assert validate_event_name(name) == name


@pytest.mark.parametrize("prefix", ["bl\n", "bl\u200b", "b\u202el", "bl\x85", "a\ud800"])
def test_an_unsafe_prefix_is_refused(prefix: str) -> None:
    """A prefix ending in a newline, or holding an invisible or unencodable character, raises."""
    with pytest.raises(InvalidPrefix):
        ShardedSchema(prefix=prefix)


@pytest.mark.parametrize("name", ["ids\n", "ids\ufeff", "i\u2066ds", "\ud800"])
async def test_an_unsafe_id_map_name_is_refused(client: redis.asyncio.Redis, name: str) -> None:
    """An IdMap name ending in a newline or holding an invisible character raises InvalidOption."""
    with pytest.raises(InvalidOption, match="name"):
        IdMap(Tracker(client), name)


@pytest.mark.parametrize(
    ("option", "value"),
    [("buckets", True), ("buckets", 8.0), ("cache_size", -1), ("members_chunk", "10")],
)
async def test_bad_id_map_options_are_refused(
    client: redis.asyncio.Redis, option: str, value: object
) -> None:
    """IdMap refuses a bool or float bucket count, a negative cache and a str chunk."""
    with pytest.raises(InvalidOption, match=option):
        IdMap(Tracker(client), **loose({option: value}))


async def test_an_unhashable_event_name_raises_invalid_event_name(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A list as an event name raises InvalidEventName, not TypeError: unhashable."""
    tracker = Tracker(client, prefix=prefix)
    with pytest.raises(InvalidEventName, match="must be a str"):
        await tracker.mark_event(loose(["active"]), 1, AT)


# -- moments and zones ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "at",
    ["2026-11-27", 1_764_201_600, 1.5, dt.time(12, 0), b"2026", dt.timedelta(days=1)],
    ids=["str", "int", "float", "time", "bytes", "timedelta"],
)
async def test_an_at_of_the_wrong_type_raises_invalid_moment(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str, at: object
) -> None:
    """mark_event with an ``at`` that is no datetime or date raises InvalidMoment, sends nothing."""
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(InvalidMoment, match=type(at).__name__):
        await tracker.mark_event("active", 1, loose(at))
    assert proxy.commands == 0


@pytest.mark.parametrize("at", ["2026-11-27", 5, dt.time(1)], ids=["str", "int", "time"])
def test_from_date_and_to_local_raise_invalid_moment(at: object) -> None:
    """DayEvents.from_date and to_local refuse a non-date ``at`` with InvalidMoment."""
    with pytest.raises(InvalidMoment):
        DayEvents.from_date("active", loose(at))
    with pytest.raises(InvalidMoment):
        to_local(loose(at), "UTC")


def test_events_between_refuses_bounds_that_are_not_dates() -> None:
    """EventsBetween with a str bound raises InvalidMoment when it is built."""
    with pytest.raises(InvalidMoment):
        EventsBetween("active", loose("2026-11-01"), dt.date(2026, 12, 1))


def test_last_refuses_a_window_size_that_is_not_an_int() -> None:
    """last(days="7") raises a BitlensError, not a TypeError from comparing str and int."""
    with pytest.raises(BitlensError, match="must be ints"):
        last("active", days=loose("7"))


def test_an_unknown_zone_raises_invalid_time_zone() -> None:
    """An unknown zone name raises InvalidTimeZone, which is still an InvalidPeriod."""
    with pytest.raises(InvalidTimeZone, match="Mars/Olympus") as caught:
        resolve_tz("Mars/Olympus")
    assert isinstance(caught.value, InvalidPeriod)
    assert caught.value.tz == "Mars/Olympus"


def test_a_zone_of_the_wrong_type_is_invalid_time_zone_and_type_error() -> None:
    """A zone that is neither str nor tzinfo raises InvalidTimeZone that is also a TypeError."""
    with pytest.raises(InvalidTimeZone) as caught:
        WeekEvents("active", 2026, 7, tz=loose(5))
    assert isinstance(caught.value, TypeError)


@pytest.mark.parametrize("tz", ["Mars/Olympus", "UTC\n", "Europe/../etc", "\ud800", "x" * 300])
async def test_a_tracker_with_an_unknown_zone_raises_invalid_time_zone(
    client: redis.asyncio.Redis, tz: str
) -> None:
    """Tracker(tz=...) with a bogus name raises InvalidTimeZone at construction."""
    with pytest.raises(InvalidTimeZone):
        Tracker(client, tz=tz)


async def test_a_tracker_with_an_unusable_tzinfo_raises_invalid_option(
    client: redis.asyncio.Redis,
) -> None:
    """A bare ``tzinfo()`` (no offsets) raises InvalidOption at construction."""
    with pytest.raises(InvalidOption, match="tz="):
        Tracker(client, tz=loose(dt.tzinfo)())


def test_an_aware_datetime_whose_offset_is_nonsense_raises_invalid_period() -> None:
    """A tzinfo answering a 25-hour offset raises InvalidPeriod, not ValueError."""

    class Broken(dt.tzinfo):
        def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
            return dt.timedelta(hours=25)

        def dst(self, when: dt.datetime | None) -> dt.timedelta:
            return dt.timedelta(0)

        def tzname(self, when: dt.datetime | None) -> str:
            return "broken"

    with pytest.raises(InvalidPeriod, match="no usable UTC offset"):
        Day.from_datetime(dt.datetime(2026, 1, 1, tzinfo=Broken()))


# -- Tracker options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("expire_after", {"day": 5}),
        ("expire_after", {"day": dt.timedelta(0)}),
        ("expire_after", {"week": dt.timedelta(days=-1)}),
        ("expire_after", {"days": dt.timedelta(days=1)}),
        ("expire_after", [("day", dt.timedelta(days=1))]),
        ("max_user_id", True),
        ("max_user_id", 1e18),
        ("max_user_id", 0),
        ("max_user_id", -5),
        ("max_user_id", 2**63),
        ("max_user_id", "100"),
        ("shard_bits", 7),
        ("shard_bits", True),
        ("mark_chunk_size", 0),
        ("mark_chunk_size", 10.0),
        ("members_chunk_bytes", None),
        ("coalesce_max_marks", False),
        ("coalesce_max_in_flight", 0),
        ("nowait_max_queue", -1),
        ("coalesce_delay", -0.1),
        ("coalesce_delay", float("nan")),
        ("coalesce_delay", float("inf")),
        ("coalesce_delay", "0.1"),
        ("replicas_ack", -1),
        ("replicas_ack", True),
        ("track_hourly", 1),
        ("track_unique", "yes"),
        ("coalesce", None),
        ("cluster", 0),
        ("schema", "bl"),
        ("coalesce", 1),
        ("limits", {"max_user_id": 5}),
    ],
)
async def test_a_bad_option_raises_invalid_option(
    client: redis.asyncio.Redis, option: str, value: object
) -> None:
    """An option of the wrong type or out of its range raises InvalidOption naming it."""
    name, build = tracker_with_option(client, option, value)
    with pytest.raises(InvalidOption, match=re.escape(name)) as caught:
        build()
    assert isinstance(caught.value, ValueError)


async def test_a_bad_option_with_a_url_makes_no_client(redis_url: str) -> None:
    """Tracker(url, limits=<bad>) raises before it makes (and would leak) a client."""
    with pytest.raises(InvalidOption, match="limits"):
        Tracker(redis_url, limits=loose({"max_user_id": True}))


@pytest.mark.parametrize("user_id", [True, False, 1.0, -1, 2**63, "1", None])
async def test_a_bad_user_id_raises_invalid_user_id(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str, user_id: object
) -> None:
    """bools, floats, negative, too large and non-int ids raise InvalidUserId, send nothing."""
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(InvalidUserId):
        await tracker.mark_event("active", loose(user_id), AT)
    assert proxy.commands == 0


async def test_a_per_call_flag_that_is_not_a_bool_raises_invalid_option(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """mark_event(track_hourly="yes") raises InvalidOption."""
    tracker = Tracker(client, prefix=prefix)
    with pytest.raises(InvalidOption, match="track_hourly"):
        await tracker.mark_event("active", 1, AT, track_hourly=loose("yes"))


# -- expiry deadlines past year 9999 ----------------------------------------------------------

LATE = dt.datetime(9999, 12, 30, 12, tzinfo=UTC)
TTL: dict[Granularity, dt.timedelta] = {"day": dt.timedelta(days=2)}


@pytest.fixture
async def expiring(
    counted_client: redis.asyncio.Redis, prefix: str
) -> AsyncIterator[tuple[Tracker, Tracker]]:
    """Yield two trackers with a 2-day TTL on days: plain and coalescing.

    :param counted_client: the counted client
    :param prefix: the test's prefix
    """
    plain = Tracker(counted_client, prefix=prefix, expire_after=TTL)
    coalescing = Tracker(counted_client, prefix=prefix, expire_after=TTL, coalesce=True)
    yield plain, coalescing
    await plain.aclose()
    await coalescing.aclose()


async def test_a_deadline_past_9999_raises_at_mark_event(
    expiring: tuple[Tracker, Tracker], proxy: RoundTripProxy
) -> None:
    """mark_event (plain and coalesced) into 9999-12-30 with a 2-day TTL raises InvalidPeriod."""
    for tracker in expiring:
        with pytest.raises(InvalidPeriod, match="cannot expire"):
            await tracker.mark_event("active", 1, LATE)
    assert proxy.commands == 0


async def test_a_deadline_past_9999_raises_at_mark_event_nowait(
    expiring: tuple[Tracker, Tracker], proxy: RoundTripProxy
) -> None:
    """mark_event_nowait raises at the call instead of poisoning the queue."""
    tracker = expiring[0]
    with pytest.raises(InvalidPeriod, match="cannot expire"):
        tracker.mark_event_nowait("active", 1, LATE)
    await tracker.aclose()
    assert tracker.stats().nowait_enqueued == 0
    assert proxy.commands == 0


async def test_a_deadline_past_9999_raises_at_mark_events_before_its_chunk_is_sent(
    expiring: tuple[Tracker, Tracker], proxy: RoundTripProxy
) -> None:
    """mark_events with a good item, then a late one, raises and sends nothing of the chunk."""
    with pytest.raises(InvalidPeriod, match="cannot expire"):
        await expiring[0].mark_events([("active", 1, AT), ("active", 2, LATE)])
    assert proxy.commands == 0


async def test_a_deadline_past_9999_raises_at_batch_mark_event(
    expiring: tuple[Tracker, Tracker], proxy: RoundTripProxy
) -> None:
    """Batch.mark_event raises when the mark is added; the discarded batch sends nothing."""
    batch = expiring[0].batch()
    batch.mark_event("active", 1, AT)
    with pytest.raises(InvalidPeriod, match="cannot expire"):
        batch.mark_event("active", 2, LATE)
    assert len(batch) == 1
    assert proxy.commands == 0


@pytest.mark.parametrize(
    ("granularity", "at"),
    [
        ("month", dt.datetime(9999, 12, 1)),
        ("week", dt.datetime(9999, 12, 27)),
        ("hour", dt.datetime(9999, 12, 31, 23)),
    ],
)
async def test_the_last_period_with_a_ttl_cannot_expire(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    granularity: Granularity,
    at: dt.datetime,
) -> None:
    """The last month, ISO week or hour before year 10000 has no end: a TTL on it raises."""
    tracker = Tracker(
        counted_client,
        prefix=prefix,
        track_hourly=True,
        expire_after={granularity: dt.timedelta(seconds=1)},
    )
    with pytest.raises(InvalidPeriod, match=f"{granularity} .* cannot expire"):
        await tracker.mark_event("active", 1, at)
    assert proxy.commands == 0


async def test_a_huge_ttl_raises_for_a_mark_of_today(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """expire_after={"day": timedelta.max} refuses a mark of 2026: its deadline overflows."""
    tracker = Tracker(counted_client, prefix=prefix, expire_after={"day": dt.timedelta.max})
    with pytest.raises(InvalidPeriod, match="past year 9999"):
        await tracker.mark_event("active", 1, AT)
    assert proxy.commands == 0


async def test_a_late_mark_whose_deadline_fits_is_written_with_it(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A mark on 9999-12-28 with a 2-day TTL is written, expiring at 9999-12-31T00:00Z."""
    tracker = Tracker(client, prefix=prefix, expire_after=TTL)
    await tracker.mark_event("active", 1, dt.datetime(9999, 12, 28, 5))
    assert await tracker.contains(DayEvents("active", 9999, 12, 28), 1)
    key = tracker.schema.event_key("active", Day(9999, 12, 28), 0)
    deadline = dt.datetime(9999, 12, 31, tzinfo=UTC) - dt.datetime.now(UTC)
    assert abs(await client.ttl(key) - deadline.total_seconds()) < 5


# -- SCAN patterns: one prefix's keys, never another's ----------------------------------------


async def _mark_everything(tracker: Tracker) -> None:
    """Mark an event (hourly and unique too) and an id map entry: every kind of key.

    :param tracker: the tracker to write with
    """
    await tracker.mark_event("active", 2**20 + 1, AT, track_hourly=True, track_unique=True)
    await IdMap(tracker).mark_event("x:signed_up", "alice", AT)


async def _scan(tracker: Tracker) -> set[bytes]:
    """Return the keys the tracker's schema patterns find on its server.

    :param tracker: the tracker whose schema to scan for
    """
    found: set[bytes] = set()
    for pattern in tracker.schema.scan_patterns:
        keys = cast(
            "AsyncIterator[bytes]",
            tracker.client.scan_iter(match=pattern, count=1000),  # pyright: ignore[reportUnknownMemberType]
        )
        found.update([key async for key in keys])
    return found


async def test_scan_patterns_of_nested_prefixes_never_overlap(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Prefix P's patterns find exactly P's keys, none of P:x's (and the other way round)."""
    outer = Tracker(client, prefix=prefix)
    inner = Tracker(client, prefix=f"{prefix}:x")
    await _mark_everything(outer)
    outer_keys = await scan_keys(client, prefix)  # "P:*": P's keys and P:x's
    assert outer_keys, "nothing was written"
    await _mark_everything(inner)
    inner_keys = await scan_keys(client, f"{prefix}:x")
    assert inner_keys <= await scan_keys(client, prefix)
    assert await _scan(outer) == outer_keys
    assert await _scan(inner) == inner_keys
    assert outer_keys.isdisjoint(inner_keys)


def test_scan_pattern_escapes_glob_characters_of_the_prefix() -> None:
    """A prefix holding * ? [ ] or a backslash is escaped in the SCAN pattern."""
    schema = ShardedSchema(prefix="a*b?[c]\\")
    assert schema.scan_pattern == "a\\*b\\?\\[c\\]\\\\:{*"
    assert schema.scan_patterns[1] == "a\\*b\\?\\[c\\]\\\\:~shards"


async def test_the_demo_clears_its_prefix_and_leaves_a_nested_one_alone(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """``bitlens demo --prefix P`` deletes P's old keys, never those of prefix P:x."""
    inner = Tracker(client, prefix=f"{prefix}:x")
    await _mark_everything(inner)
    inner_keys = await scan_keys(client, f"{prefix}:x")
    outer = Tracker(client, prefix=prefix)
    await outer.mark_event("stale", 5, AT)
    today = dt.date(2026, 11, 27)
    await run_demo(
        redis_url, users=20, weeks=1, seed=1, prefix=prefix, today=today, out=io.StringIO()
    )
    assert await scan_keys(client, f"{prefix}:x") == inner_keys
    assert await outer.count(MonthEvents("stale", 2026, 11)) == 0
