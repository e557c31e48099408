"""BitmapistSchema: bitmapist's key names, what a tracker on them refuses, and its round trips.

The comparison with bitmapist 3.119 itself is tests/test_bitmapist_layout.py; here are the
key names (also bitmapist4's), the typed errors raised before anything is sent, the
complement with and without a named universe, and the exact round trips.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from bitlens import (
    BitmapistSchema,
    BitOpNot,
    Day,
    EventKey,
    Hour,
    IdMapKey,
    InvalidEventName,
    InvalidOption,
    InvalidPrefix,
    InvalidUserId,
    Limits,
    Month,
    MonthEvents,
    ParsedKey,
    RegistryKey,
    TempKey,
    Tracker,
    UniqueEvents,
    Universe,
    UniverseUnavailable,
    Week,
)

if TYPE_CHECKING:
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from _proxy import RoundTripProxy

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
AT = dt.datetime(2026, 1, 5, 9, tzinfo=UTC)
SCHEMA = BitmapistSchema()
JAN = MonthEvents("active", 2026, 1)


# -- key names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "key"),
    [
        (Month(2026, 1), "trackist_active_2026-1"),
        (Month(2026, 11), "trackist_active_2026-11"),
        (Week(2026, 2), "trackist_active_W2026-2"),
        (Week(2020, 53), "trackist_active_W2020-53"),
        (Day(2026, 1, 5), "trackist_active_2026-1-5"),
        (Hour(2026, 1, 5, 0), "trackist_active_2026-1-5-0"),
        (Hour(2026, 12, 31, 23), "trackist_active_2026-12-31-23"),
        (None, "trackist_active_u"),
    ],
)
def test_keys_are_bitmapists_unpadded_names(period: Month | None, key: str) -> None:
    """Each granularity's key is bitmapist 3's name: numbers unpadded, ``u`` for Unique."""
    assert SCHEMA.event_key("active", period, 0) == key


def test_bitmapist4s_prefix_gives_its_key_names() -> None:
    """bitmapist4's ``key_prefix`` (``bitmapist_`` by default) leads the same names."""
    schema = BitmapistSchema(prefix="bitmapist_")
    assert schema.event_key("active", Week(2026, 7), 0) == "bitmapist_active_W2026-7"
    assert schema.event_key("active", None, 0) == "bitmapist_active_u"


@pytest.mark.parametrize(
    "key",
    [
        EventKey("active", Month(2026, 1), 0),
        EventKey("sign_up_2026-1", Day(2026, 1, 5), 0),
        EventKey("a_u", None, 0),
        EventKey("x", Hour(2021, 1, 1, 0), 0),
        TempKey(0, "0123abcdp", 3),
        IdMapKey("ids", 5, "forward"),
        IdMapKey("ids", 5, "reverse"),
        RegistryKey(),
    ],
)
def test_every_key_parses_back_to_what_built_it(key: ParsedKey) -> None:
    """parse(build(k)) == k, also for event names that hold ``_`` and date-like parts."""
    assert SCHEMA.parse(SCHEMA.build(key)) == key


@pytest.mark.parametrize(
    "name",
    [
        "trackist_bitop_AND_trackist_a_2026-1-trackist_b_2026-1",  # bitmapist's BitOp result
        "trackist_active_2026-01",  # padded: bitmapist never writes it
        "trackist_active_W2026-07",
        "trackist_active_2026-13",
        "trackist_active_2026-2-30",
        "trackist_active_2026-1-5-24",
        "trackist_active_U",
        "trackist_active",
        "other_active_2026-1",
        "trackist__2026-1",
    ],
)
def test_foreign_names_parse_to_none(name: str) -> None:
    """bitmapist's BitOp keys, padded or impossible dates and other prefixes are no keys."""
    assert SCHEMA.parse(name) is None


def test_scan_finds_only_the_prefix() -> None:
    """Every pattern starts with the escaped prefix; there is no registry key to find."""
    schema = BitmapistSchema(prefix="t*_")
    assert schema.scan_patterns == ("t\\*_*",)
    assert schema.event_pattern("a") == "t\\*_a_*"
    assert schema.events_pattern("sign") == "t\\*_sign*"


def test_temp_keys_are_bitop_keys() -> None:
    """A query's temp keys are ``bitop_`` keys, so bitmapist's own cleanup finds them too."""
    assert SCHEMA.temp_key(0, "ab12", 4) == "trackist_bitop_bitlens_ab12_4"


def test_names_of_bitmapists_temps_are_refused() -> None:
    """An event named ``bitop_...`` would collide with bitmapist's temp keys: refused."""
    with pytest.raises(InvalidEventName):
        SCHEMA.event_key("bitop_AND", Month(2026, 1), 0)


@pytest.mark.parametrize("bits", [7, 33, True, "32"])
def test_shard_bits_outside_8_to_32_are_refused(bits: object) -> None:
    """Ids above 2**32 do not fit a Redis bitmap: shard_bits is an int from 8 to 32."""
    with pytest.raises(InvalidOption):
        BitmapistSchema(shard_bits=bits)  # type: ignore[arg-type]


def test_an_unsafe_prefix_is_refused() -> None:
    """A prefix with whitespace is refused like in bitlens' own layout."""
    with pytest.raises(InvalidPrefix):
        BitmapistSchema(prefix="track ist_")


def test_a_universe_that_is_no_event_name_is_refused() -> None:
    """The universe names an event; a name bitlens could not mark is refused."""
    with pytest.raises(InvalidEventName):
        BitmapistSchema(universe="~all")


# -- a tracker on the layout ------------------------------------------------------------------


async def _keys(client: redis.asyncio.Redis, pattern: str = "*") -> set[str]:
    return {k.decode() async for k in client.scan_iter(match=pattern, count=1000)}


async def test_a_mark_writes_only_bitmapists_keys(client: redis.asyncio.Redis, prefix: str) -> None:
    """One mark writes month, week, day (hour, unique when tracked) and nothing else."""
    tracker = Tracker(client, schema=BitmapistSchema(prefix=f"{prefix}_"))
    await tracker.mark_event("active", 7, AT, track_hourly=True, track_unique=True)
    assert await _keys(client, f"{prefix}*") == {
        f"{prefix}_active_2026-1",
        f"{prefix}_active_W2026-2",
        f"{prefix}_active_2026-1-5",
        f"{prefix}_active_2026-1-5-9",
        f"{prefix}_active_u",
    }
    assert await client.getbit(f"{prefix}_active_2026-1", 7) == 1


async def test_an_id_past_2_to_the_32_is_refused_before_sending(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """Id 2**32 raises InvalidUserId and sends nothing: bitmapist's bitmaps end before it."""
    tracker = Tracker(counted_client, schema=BitmapistSchema(prefix=f"{prefix}_"))
    with pytest.raises(InvalidUserId):
        await tracker.mark_event("active", 2**32, AT)
    assert proxy.commands == 0
    assert tracker.max_user_id == 2**32 - 1


async def test_lower_shard_bits_lower_the_largest_id(client: redis.asyncio.Redis) -> None:
    """With shard_bits=24 the largest id is 2**24 - 1."""
    tracker = Tracker(client, schema=BitmapistSchema(shard_bits=24))
    assert tracker.max_user_id == 2**24 - 1
    with pytest.raises(InvalidUserId):
        await tracker.mark_event("active", 2**24, AT)


async def test_a_larger_max_user_id_is_refused(client: redis.asyncio.Redis) -> None:
    """Limits(max_user_id=2**40) cannot hold on the layout: InvalidOption at construction."""
    with pytest.raises(InvalidOption, match="max_user_id at most 4294967295"):
        Tracker(client, schema=SCHEMA, limits=Limits(max_user_id=2**40))


async def test_the_layout_is_refused_on_a_cluster(cluster_client: RedisCluster) -> None:
    """Its keys carry no hash tags, so a cluster tracker refuses it before any I/O."""
    with pytest.raises(InvalidOption, match="hash slot"):
        Tracker(cluster_client, schema=SCHEMA)


@pytest.mark.parametrize("expr", [~JAN, Universe(), BitOpNot(JAN), UniqueEvents("x") & ~JAN])
async def test_a_complement_without_universe_is_refused_before_sending(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, expr: object
) -> None:
    """~x and Universe() raise UniverseUnavailable without a round trip."""
    tracker = Tracker(counted_client, schema=SCHEMA)
    with pytest.raises(UniverseUnavailable, match="keeps no universe"):
        await tracker.count(expr)  # type: ignore[arg-type]
    assert proxy.round_trips == 0


async def test_a_difference_needs_no_universe(client: redis.asyncio.Redis, prefix: str) -> None:
    """a - b and BitOpNot(x, universe=v) are exact without a universe."""
    tracker = Tracker(client, schema=BitmapistSchema(prefix=f"{prefix}_"))
    await tracker.mark_events([("active", n, AT) for n in (1, 2, 3, 70_000)])
    await tracker.mark_events([("paid", n, AT) for n in (2, 5)])
    paid = MonthEvents("paid", 2026, 1)
    assert [u async for u in tracker.members(JAN - paid)] == [1, 3, 70_000]
    assert await tracker.count(BitOpNot(paid, universe=JAN)) == 3
    assert await tracker.count(paid - JAN) == 1


async def test_a_named_universe_bounds_the_complement(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """With universe="all", ~x is the ids of all_u not in x, and bitlens' marks set it."""
    tracker = Tracker(client, schema=BitmapistSchema(prefix=f"{prefix}_", universe="all"))
    await client.setbit(f"{prefix}_all_u", 40, 1)  # an id that bitmapist code put there
    await client.setbit(f"{prefix}_active_2026-1", 50, 1)  # bitmapist marked 50, not in all_u
    await tracker.mark_event("active", 1, AT)
    await tracker.mark_event("paid", 2, AT)
    assert await client.getbit(f"{prefix}_all_u", 2) == 1
    assert [u async for u in tracker.members(~JAN)] == [2, 40]
    assert await tracker.count(UniqueEvents("all") & ~JAN) == 2
    assert await tracker.count(MonthEvents("paid", 2026, 1) & ~JAN) == 1


async def test_a_mark_is_one_round_trip_without_registry(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A mark is one MULTI/EXEC of SETBITs: no universe bit, no shard registry."""
    tracker = Tracker(counted_client, schema=BitmapistSchema(prefix=f"{prefix}_"))
    await tracker.mark_event("active", 1, AT, track_unique=True)
    assert proxy.round_trips == 1
    assert proxy.command_names == ["MULTI", "SETBIT", "SETBIT", "SETBIT", "SETBIT", "EXEC"]


async def test_a_count_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """count(a & b) is one round trip, with no registry check, also on the first query."""
    tracker = Tracker(counted_client, schema=BitmapistSchema(prefix=f"{prefix}_", shard_bits=20))
    await tracker.mark_events([("active", 1, AT), ("paid", 1, AT), ("paid", 2, AT)])
    proxy.reset()
    assert await tracker.count(JAN & MonthEvents("paid", 2026, 1)) == 1
    assert proxy.round_trips == 1
    assert "SCARD" not in proxy.command_names
    assert "SMEMBERS" not in proxy.command_names


async def test_no_temp_key_outlives_a_query(client: redis.asyncio.Redis, prefix: str) -> None:
    """After a tree over full-size bitmaps (split into several calls), no bitop key is left."""
    tracker = Tracker(client, schema=BitmapistSchema(prefix=f"{prefix}_"))
    await tracker.mark_events([("active", n, AT) for n in (1, 9, 2**20)])
    await tracker.mark_events([("paid", n, AT) for n in (9, 2**20)])
    paid = MonthEvents("paid", 2026, 1)
    assert await tracker.count((JAN & paid) | (JAN - paid)) == 3
    assert await _keys(client, f"{prefix}_bitop_*") == set()


async def test_data_management_works_on_the_layout(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Event names, periods, erase_user and delete_event work on bitmapist's keys."""
    tracker = Tracker(client, schema=BitmapistSchema(prefix=f"{prefix}_"))
    await tracker.mark_events([("active", 1, AT), ("active", 2, AT), ("paid", 2, AT)])
    assert await tracker.event_names() == ["active", "paid"]
    assert await tracker.event_periods("paid") == [Month(2026, 1), Week(2026, 2), Day(2026, 1, 5)]
    erased = await tracker.erase_user(2)
    assert len(erased.cleared) == 6
    assert await tracker.count(JAN) == 1
    await tracker.delete_event("active")
    assert await _keys(client, f"{prefix}_*") == {
        f"{prefix}_paid_2026-1",
        f"{prefix}_paid_W2026-2",
        f"{prefix}_paid_2026-1-5",
    }
