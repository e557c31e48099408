"""Managing stored data: event names and periods, deleting events and prefixes, erasing users.

Every answer is compared with a reference: the keys written, or Python sets of the ids
marked. Round trips are counted by the proxies in front of the servers.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest

from _helpers import scan_keys
from bitlens import (
    DayEvents,
    Erasure,
    EventKey,
    HourEvents,
    InvalidEventName,
    InvalidOption,
    InvalidUserId,
    MonthEvents,
    Tracker,
    UniqueEvents,
    WeekEvents,
)
from bitlens._manage import DELETE_BATCH
from bitlens._periods import Day, Hour, Month, Week

if TYPE_CHECKING:
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from _cluster_counter import ClusterProxies
    from _proxy import RoundTripProxy
    from harness import EmbeddedCluster

pytestmark = pytest.mark.anyio

UTC = timezone.utc
AT = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)
SHARD_BITS = 8  # 256 ids per shard: a few hundred ids span several shards


async def _keys(client: redis.asyncio.Redis | RedisCluster, prefix: str) -> set[bytes]:
    """Every key under ``prefix:`` (the test's own keys)."""
    return await scan_keys(client, prefix)


async def _mark(tracker: Tracker, event: str, ids: list[int], at: datetime = AT) -> None:
    """Mark ``ids`` for ``event`` at ``at`` with every granularity."""
    await tracker.mark_events([(event, uid, at) for uid in ids], track_hourly=True)
    for uid in ids:
        await tracker.mark_unique(event, uid)


# -- listing -------------------------------------------------------------------------------------


async def test_event_names_are_sorted_and_exclude_other_prefixes(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """event_names lists this prefix's events only: not prefix:x's, not foreign keys."""
    tracker = Tracker(client, prefix=prefix)
    inner = Tracker(client, prefix=f"{prefix}:x")
    await tracker.mark_event("signup", 1, AT)
    await tracker.mark_unique("plan:pro", 2)
    await tracker.mark_event("active", 3, AT)
    await inner.mark_event("elsewhere", 1, AT)
    await client.set(f"{prefix}:{{0}}:not-a-period:Z", b"x")
    assert await tracker.event_names() == ["active", "plan:pro", "signup"]


async def test_event_names_filter_by_name_start(client: redis.asyncio.Redis, prefix: str) -> None:
    """starting_with keeps the names that start with it, glob characters taken literally."""
    tracker = Tracker(client, prefix=prefix)
    for name in ("checkout:paid", "checkout:started", "check", "a*b", "axb"):
        await tracker.mark_event(name, 1, AT)
    assert await tracker.event_names(starting_with="checkout:") == [
        "checkout:paid",
        "checkout:started",
    ]
    assert await tracker.event_names(starting_with="a*") == ["a*b"]


async def test_event_names_refuse_a_bad_filter_before_sending(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A starting_with that is not text raises InvalidOption with no round trip."""
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(InvalidOption):
        await tracker.event_names(starting_with=5)  # type: ignore[arg-type]
    assert proxy.round_trips == 0


async def test_event_periods_lists_each_period_once_in_order(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """event_periods: months, weeks, days, hours, then Unique; shards do not repeat them."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    later = datetime(2026, 12, 1, 9, tzinfo=UTC)
    await _mark(tracker, "active", [1, 300, 700])
    await tracker.mark_event("active", 2, later, track_hourly=True)
    assert await tracker.event_periods("active") == [
        Month(2026, 11),
        Month(2026, 12),
        Week(2026, 48),
        Week(2026, 49),
        Day(2026, 11, 27),
        Day(2026, 12, 1),
        Hour(2026, 11, 27, 13),
        Hour(2026, 12, 1, 9),
        None,
    ]


async def test_event_periods_of_an_unknown_event_is_empty(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """An event never marked has no periods."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_event("active", 1, AT)
    assert await tracker.event_periods("never") == []


# -- delete_event --------------------------------------------------------------------------------


async def test_delete_event_removes_every_period_and_shard(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """delete_event removes all of the event's keys and returns how many there were."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    await _mark(tracker, "gone", [1, 300, 700])
    before = await _keys(client, prefix)
    gone = {k for k in before if b":gone:" in k}
    assert await tracker.delete_event("gone") == len(gone) == 3 * 5  # 3 shards x 5 bitmaps
    assert await _keys(client, prefix) == before - gone
    assert await tracker.count(MonthEvents("gone", 2026, 11)) == 0


async def test_delete_event_leaves_other_events_universes_and_prefixes(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Deleting "a" keeps "a:b", "ab", the universes and prefix:x's "a" as they were."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    inner = Tracker(client, prefix=f"{prefix}:x", shard_bits=SHARD_BITS)
    for name in ("a", "a:b", "ab"):
        await _mark(tracker, name, [1, 300])
    await _mark(inner, "a", [1])
    await tracker.delete_event("a")
    assert await tracker.event_names() == ["a:b", "ab"]
    assert await tracker.count(~MonthEvents("ab", 2026, 11)) == 0  # universe kept: {1, 300}
    assert await tracker.count(MonthEvents("a:b", 2026, 11)) == 2
    assert await inner.count(MonthEvents("a", 2026, 11)) == 1


async def test_delete_event_of_an_unknown_event_returns_zero(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Deleting an event that has no keys removes nothing."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_event("active", 1, AT)
    assert await tracker.delete_event("never") == 0
    assert await tracker.count(MonthEvents("active", 2026, 11)) == 1


async def test_delete_event_refuses_a_bad_name_before_sending(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """An invalid event name raises InvalidEventName with no round trip."""
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(InvalidEventName):
        await tracker.delete_event("~all")
    assert proxy.round_trips == 0


async def test_delete_event_unlinks_in_bounded_batches(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """1,200 keys go in 3 UNLINKs of at most 500; round trips = SCAN steps + UNLINKs."""
    tracker = Tracker(counted_client, prefix=prefix, shard_bits=SHARD_BITS)
    ids = [shard << SHARD_BITS for shard in range(400)]  # 400 shards x 3 bitmaps = 1,200 keys
    await tracker.mark_events([("wide", uid, AT) for uid in ids])
    proxy.reset()
    seen: list[int] = []
    assert await tracker.delete_event("wide", progress=seen.append) == 1200
    assert seen == [500, 1000, 1200]
    unlinks = proxy.command_names.count("UNLINK")
    assert unlinks == math.ceil(1200 / DELETE_BATCH)
    assert proxy.round_trips == proxy.command_names.count("SCAN") + unlinks


# -- delete_all ----------------------------------------------------------------------------------


async def test_delete_all_removes_every_key_of_the_prefix(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """delete_all leaves no key under the prefix: bitmaps, universes, registry."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    await _mark(tracker, "active", [1, 300, 700])
    await tracker.count(MonthEvents("active", 2026, 11))  # the registry exists
    written = await _keys(client, prefix)
    assert await tracker.delete_all() == len(written)
    assert await _keys(client, prefix) == set()


async def test_delete_all_does_not_reach_a_longer_prefix_or_foreign_keys(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Deleting prefix P keeps P:x's keys and keys under P that its schema never builds."""
    tracker = Tracker(client, prefix=prefix)
    inner = Tracker(client, prefix=f"{prefix}:x")
    await tracker.mark_event("active", 1, AT)
    await inner.mark_event("active", 1, AT)
    foreign = f"{prefix}:{{0}}:note"
    await client.set(foreign, b"kept")
    await tracker.delete_all()
    assert await client.get(foreign) == b"kept"
    assert await inner.count(MonthEvents("active", 2026, 11)) == 1
    assert await tracker.event_names() == []


async def test_tracker_works_after_delete_all(client: redis.asyncio.Redis, prefix: str) -> None:
    """After delete_all the same tracker marks and counts from nothing."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    await _mark(tracker, "active", [1, 300])
    await tracker.delete_all()
    assert await tracker.count(~MonthEvents("active", 2026, 11)) == 0
    await tracker.mark_event("active", 700, AT)
    assert await tracker.count(MonthEvents("active", 2026, 11)) == 1
    assert [u async for u in tracker.members(MonthEvents("active", 2026, 11))] == [700]


# -- erase_user ----------------------------------------------------------------------------------


async def test_erase_user_clears_the_id_everywhere_and_says_what(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """erase_user clears every bitmap holding the id and its universe bit, and lists them."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    await _mark(tracker, "active", [5, 6])
    await tracker.mark_event("paid", 5, AT)
    erased = await tracker.erase_user(5)
    assert erased.universe
    assert [(k.event, k.period) for k in erased.cleared] == [
        ("active", Month(2026, 11)),
        ("active", Week(2026, 48)),
        ("active", Day(2026, 11, 27)),
        ("active", Hour(2026, 11, 27, 13)),
        ("active", None),
        ("paid", Month(2026, 11)),
        ("paid", Week(2026, 48)),
        ("paid", Day(2026, 11, 27)),
    ]
    assert len(erased) == 9
    for expr in (
        MonthEvents("active", 2026, 11),
        WeekEvents("active", 2026, 48),
        DayEvents("active", 2026, 11, 27),
        HourEvents("active", 2026, 11, 27, 13),
        UniqueEvents("active"),
    ):
        assert [u async for u in tracker.members(expr)] == [6]
    assert [u async for u in tracker.members(~MonthEvents("paid", 2026, 11))] == [6]


async def test_erase_user_is_idempotent(client: redis.asyncio.Redis, prefix: str) -> None:
    """A second erase of the same id clears nothing and returns an empty Erasure."""
    tracker = Tracker(client, prefix=prefix)
    await _mark(tracker, "active", [5])
    assert await tracker.erase_user(5)
    again = await tracker.erase_user(5)
    assert again == Erasure(5, (), universe=False)
    assert not again


async def test_erase_user_touches_only_the_ids_shard(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Keys of other shards keep their exact bytes; the id's shard loses only its bit."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    await _mark(tracker, "active", [5, 6, 300, 301])
    other = [k for k in await _keys(client, prefix) if b":{1}:" in k]
    before = {k: await client.get(k) for k in other}
    await tracker.erase_user(5)
    assert {k: await client.get(k) for k in other} == before
    assert [u async for u in tracker.members(MonthEvents("active", 2026, 11))] == [6, 300, 301]


async def test_erase_user_never_grows_a_key(client: redis.asyncio.Redis, prefix: str) -> None:
    """Erasing an id past the end of its shard's bitmaps (never marked) leaves them as they are."""
    tracker = Tracker(client, prefix=prefix)
    await _mark(tracker, "active", [1])
    keys = sorted(k for k in await _keys(client, prefix) if b":{" in k)  # the bitmaps
    lengths = [await client.strlen(k) for k in keys]
    assert not await tracker.erase_user(900_000)
    assert [await client.strlen(k) for k in keys] == lengths


async def test_erase_user_costs_scan_steps_and_two_round_trips(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """Under 500 keys in the shard: SCAN steps, one GETBIT pipeline, one SETBIT pipeline."""
    tracker = Tracker(counted_client, prefix=prefix)
    await _mark(tracker, "active", [5])
    proxy.reset()
    await tracker.erase_user(5)
    scans = proxy.command_names.count("SCAN")
    assert proxy.round_trips == scans + 2
    assert proxy.command_names.count("GETBIT") == proxy.command_names.count("SETBIT") == 6


async def test_erase_user_refuses_a_bad_id_before_sending(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A negative id raises InvalidUserId with no round trip."""
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(InvalidUserId):
        await tracker.erase_user(-1)
    assert proxy.round_trips == 0


async def test_erase_racing_marks_of_other_users_loses_none_of_theirs(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Erases of id 0 while other ids of its shard are marked: every other mark stays."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    await _mark(tracker, "active", [0])
    others = list(range(1, 256))
    random.Random(7).shuffle(others)
    done = anyio.Event()

    async def marker() -> None:
        for uid in others:
            await tracker.mark_event("active", uid, AT)
        done.set()

    async def eraser() -> None:
        while not done.is_set():
            await tracker.erase_user(0)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(marker)
        tg.start_soon(eraser)
    await tracker.erase_user(0)
    for expr in (MonthEvents("active", 2026, 11), DayEvents("active", 2026, 11, 27)):
        assert [u async for u in tracker.members(expr)] == sorted(others)


# -- on a cluster --------------------------------------------------------------------------------


def _owner_of(cluster: EmbeddedCluster, key: str) -> str:
    """The ``host:port`` of the master serving ``key``."""
    return cluster.node_for_slot(cluster.keyslot(key)).name


async def test_delete_event_on_a_cluster_removes_keys_on_every_master(
    cluster_client: RedisCluster, prefix: str
) -> None:
    """Shards spread over the masters: delete_event removes the event's keys on all."""
    tracker = Tracker(cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    ids = [shard << SHARD_BITS for shard in range(30)]
    await tracker.mark_events([("gone", uid, AT) for uid in ids])
    await tracker.mark_events([("kept", uid, AT) for uid in ids])
    assert await tracker.delete_event("gone") == 30 * 3
    assert await tracker.event_names() == ["kept"]
    assert await tracker.count(MonthEvents("kept", 2026, 11)) == 30


async def test_delete_all_on_a_cluster_leaves_nothing(
    cluster_client: RedisCluster, prefix: str
) -> None:
    """delete_all on a cluster removes every key of the prefix on every master."""
    tracker = Tracker(cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    await tracker.mark_events([("active", shard << SHARD_BITS, AT) for shard in range(30)])
    await tracker.count(MonthEvents("active", 2026, 11))
    written = await _keys(cluster_client, prefix)
    assert await tracker.delete_all() == len(written)
    assert await _keys(cluster_client, prefix) == set()


async def test_erase_user_on_a_cluster_talks_only_to_the_ids_master(
    counted_cluster_client: RedisCluster,
    cluster_proxies: ClusterProxies,
    redis_cluster: EmbeddedCluster,
    prefix: str,
) -> None:
    """On a cluster erase_user scans and writes only the master holding the id's shard."""
    tracker = Tracker(counted_cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    ids = [shard << SHARD_BITS for shard in range(30)]
    await tracker.mark_events([("active", uid, AT) for uid in ids])
    victim = 7 << SHARD_BITS
    owner = _owner_of(redis_cluster, tracker.schema.universe_key(7))
    cluster_proxies.reset()
    erased = await tracker.erase_user(victim)
    assert list(cluster_proxies.per_node()) == [owner]
    assert erased.universe
    assert {k.period for k in erased.cleared} == {
        Month(2026, 11),
        Week(2026, 48),
        Day(2026, 11, 27),
    }
    found = [u async for u in tracker.members(MonthEvents("active", 2026, 11))]
    assert found == [uid for uid in ids if uid != victim]


async def test_erase_user_on_a_cluster_returns_event_keys(
    cluster_client: RedisCluster, prefix: str
) -> None:
    """Each cleared entry is the EventKey of the id's shard."""
    tracker = Tracker(cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    await tracker.mark_event("active", 3 << SHARD_BITS, AT)
    erased = await tracker.erase_user(3 << SHARD_BITS)
    assert all(isinstance(k, EventKey) and k.shard == 3 for k in erased.cleared)
    assert len(erased.cleared) == 3
