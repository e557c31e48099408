"""A key layout of one's own is a ``KeySchema`` subclass and nothing else (real server).

``SlashSchema`` below orders and spells its keys unlike :class:`~bitlens.ShardedSchema`
(``/`` between segments, the period before the event, its own names for the universe,
temp keys, registry and id maps). Every part of bitlens that touches a key name — marks,
counts, members, the complement, the command line's listing, the web API's ``/events``
and :class:`~bitlens.IdMap` — runs on it, and writes no key the layout does not parse.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import pytest

from bitlens import (
    EventKey,
    IdMap,
    IdMapKey,
    KeySchema,
    MonthEvents,
    ParsedKey,
    RegistryKey,
    ShardedSchema,
    TempKey,
    Tracker,
    UniqueEvents,
    UniverseKey,
    WeekEvents,
    YearEvents,
)
from bitlens._keys import event_name_problem, glob_escape, is_safe_name
from bitlens._periods import Day, Hour, Month, Period, Week
from bitlens.cli._events import scan_events
from bitlens.web import list_events

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 18, tzinfo=dt.timezone.utc)
USERS = [1, 300, 70_000]  # three shards of 2**8 ids

_PERIOD = re.compile(
    r"(?P<y>[0-9]{4})-(?:W(?P<w>[0-9]{2})|(?P<m>[0-9]{2})(?:-(?P<d>[0-9]{2})(?:T(?P<h>[0-9]{2}))?)?)"
)


def _digits(text: str) -> int:
    """Read a number of ASCII digits (a shard, bucket or index); raise ValueError if not one."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def _period(text: str) -> tuple[Period | None] | None:
    """Read ``unique`` or a period's ``str()`` back: ``(period,)``, or None."""
    if text == "unique":
        return (None,)
    found = _PERIOD.fullmatch(text)
    if found is None:
        return None
    y, w, m, d, h = (None if v is None else int(v) for v in found.group("y", "w", "m", "d", "h"))
    assert y is not None
    if w is not None:
        return (Week(y, w),)
    assert m is not None
    if d is None:
        return (Month(y, m),)
    return (Day(y, m, d),) if h is None else (Hour(y, m, d, h),)


@dataclass(frozen=True, slots=True)
class SlashSchema(KeySchema):
    """``p/{7}/2026-11/active``, ``p/{7}/~universe``, ``p/~registry``...: a test layout."""

    prefix: str
    shard_bits: int = 8

    def shard_of(self, user_id: int) -> int:
        """Return the shard of an id."""
        return user_id >> self.shard_bits

    def bit_of(self, user_id: int) -> int:
        """Return the bit of an id in its shard."""
        return user_id & ((1 << self.shard_bits) - 1)

    def user_id(self, shard: int, bit: int) -> int:
        """Return the id at a bit of a shard."""
        return (shard << self.shard_bits) | bit

    def event_key(self, event: str, period: Period | None, shard: int) -> str:
        """Return an event bitmap's key: the period first, the event last."""
        return f"{self.prefix}/{{{shard}}}/{'unique' if period is None else period}/{event}"

    def universe_key(self, shard: int) -> str:
        """Return a shard's universe key."""
        return f"{self.prefix}/{{{shard}}}/~universe"

    def temp_key(self, shard: int, token: str, n: int) -> str:
        """Return a temp key."""
        return f"{self.prefix}/{{{shard}}}/~temp/{token}/{n}"

    def idmap_keys(self, name: str, bucket: int) -> tuple[str, str]:
        """Return an id map bucket's two keys."""
        tag = f"{self.prefix}/{{~ids/{name}/{bucket}}}"
        return f"{tag}/forward", f"{tag}/reverse"

    @property
    def registry_key(self) -> str:
        """The shard registry's key."""
        return f"{self.prefix}/~registry"

    @property
    def scan_pattern(self) -> str:
        """Every key but the registry."""
        return f"{glob_escape(self.prefix)}/{{*"

    @property
    def acl_pattern(self) -> str:
        """Every key."""
        return f"{glob_escape(self.prefix)}/*"

    def parse(self, key: str) -> ParsedKey | None:
        """Read a key of this layout back: read its parts loosely, then keep only what
        :meth:`build` gives back to the letter (as the schema promises)."""
        try:
            found = self._read(key)
        except ValueError:  # a number that is none, month 13, ...
            return None
        return found if found is not None and self.build(found) == key else None

    def _read(self, key: str) -> ParsedKey | None:
        """What ``key`` would hold, if :meth:`build` gave it back; None if it cannot."""
        head = f"{self.prefix}/"
        if not key.startswith(head):
            return None
        rest = key[len(head) :]
        if rest == "~registry":
            return RegistryKey()
        tag, _, tail = rest.partition("}/")
        if tag.startswith("{~ids/"):
            name, _, bucket = tag[len("{~ids/") :].rpartition("/")
            side: Literal["forward", "reverse"] = "forward" if tail == "forward" else "reverse"
            return IdMapKey(name, _digits(bucket), side) if is_safe_name(name) else None
        shard = _digits(tag[1:])
        if tail == "~universe":
            return UniverseKey(shard)
        if tail.startswith("~temp/"):
            token, _, n = tail[len("~temp/") :].partition("/")
            return TempKey(shard, token, _digits(n)) if token else None
        text, _, event = tail.partition("/")
        period = _period(text)
        if period is None or event_name_problem(event) is not None:
            return None
        return EventKey(event, period[0], shard)


async def _keys(client: redis.asyncio.Redis, prefix: str) -> list[str]:
    """Every key whose name starts with the prefix (SCAN).

    :param client: the server's client
    :param prefix: the layout's prefix
    """
    found = cast(
        "AsyncIterator[bytes]",
        client.scan_iter(match=f"{glob_escape(prefix)}*", count=1000),  # pyright: ignore[reportUnknownMemberType]
    )
    return sorted([key.decode() async for key in found])


@pytest.fixture
async def tracker(client: redis.asyncio.Redis, prefix: str) -> AsyncIterator[Tracker]:
    """A tracker on the test layout, with a few marks of two events.

    :param client: the session server's client
    :param prefix: the test's prefix
    """
    async with Tracker(client, schema=SlashSchema(prefix)) as tracker:
        for user in USERS:
            await tracker.mark_event("active", user, AT, track_hourly=True, track_unique=True)
        await tracker.mark_event("a/b", USERS[0], AT)
        yield tracker


def test_the_test_layout_round_trips() -> None:
    """SlashSchema keeps the schema's promise: parse(build(k)) == k."""
    schema = SlashSchema("p")
    keys: list[ParsedKey] = [
        EventKey("a/b", Hour(2026, 1, 5, 13), 7),
        EventKey("x", Week(2026, 7), 0),
        EventKey("x", None, 3),
        UniverseKey(2),
        TempKey(2, "f3", 4),
        RegistryKey(),
        IdMapKey("ids", 5, "reverse"),
    ]
    assert [schema.parse(schema.build(key)) for key in keys] == keys


async def test_queries_answer_on_another_layout(tracker: Tracker) -> None:
    """Counts, the complement, ranges of months and members answer on the test layout."""
    active = MonthEvents("active", 2026, 11)
    both = active & WeekEvents("a/b", 2026, 48)
    assert await tracker.count(active) == len(USERS)
    assert await tracker.count(both) == 1
    assert await tracker.count(~both) == len(USERS) - 1
    assert await tracker.count(YearEvents("active", 2026) | UniqueEvents("active")) == len(USERS)
    assert [user async for user in tracker.members(active)] == USERS


async def test_every_key_written_is_one_the_layout_parses(
    tracker: Tracker, client: redis.asyncio.Redis, prefix: str
) -> None:
    """Marks, queries and an id map write only keys the tracker's layout reads back."""
    await tracker.count(~MonthEvents("active", 2026, 11))
    await IdMap(tracker).mark_event("active", "alice", AT)
    keys = await _keys(client, prefix)
    assert [key for key in keys if tracker.schema.parse(key) is None] == []
    assert [key for key in keys if ShardedSchema(prefix).parse(key) is not None] == []


async def test_the_event_listing_reads_another_layout(tracker: Tracker) -> None:
    """``bitlens events`` counts each event's keys through the tracker's schema."""
    found = await scan_events(tracker)
    # "active": 3 shards x (hour, day, week, month, unique); "a/b": 1 shard x 3 periods.
    assert dict(found) == {"active": 15, "a/b": 3}


async def test_the_web_api_lists_events_of_another_layout(tracker: Tracker) -> None:
    """The web API's ``/events`` finds the event names through the tracker's schema."""
    listing = await list_events(tracker)
    assert (listing["events"], listing["truncated"]) == (["a/b", "active"], False)


async def test_an_id_map_lives_in_the_layouts_keys(
    tracker: Tracker, client: redis.asyncio.Redis, prefix: str
) -> None:
    """An IdMap's hashes are the ones the tracker's schema names."""
    ids = IdMap(tracker, "people", buckets=2)
    [n] = await ids.ids(["alice"], create=True)
    keys = {tracker.schema.parse(key) for key in await _keys(client, prefix)}
    assert {IdMapKey("people", n % 2, "forward"), IdMapKey("people", n % 2, "reverse")} <= keys
