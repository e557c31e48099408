"""The id map (external ids to dense ints and back) on a single server and on the cluster."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from _cluster_counter import count_writes
from _helpers import scan_keys
from bitlens import (
    BitlensError,
    IdMap,
    IdMapMismatch,
    InvalidEventName,
    InvalidExternalId,
    InvalidUserId,
    Limits,
    MonthEvents,
    Tracker,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from _cluster_counter import ClusterProxies
    from _proxy import RoundTripProxy
    from harness import EmbeddedCluster

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 13, 5, tzinfo=dt.timezone.utc)
MONTH = MonthEvents("active", 2026, 11)

MakeClient = Callable[[], Awaitable["Redis | RedisCluster"]]


# -- helpers ------------------------------------------------------------------------------------


def _uuids(n: int, seed: int) -> list[str]:
    """Return ``n`` random UUID strings, the same for the same seed.

    :param n: how many
    :param seed: the random seed
    """
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def _assert_dense(idmap: IdMap, ints: list[int]) -> None:
    """Check that ``ints`` are exactly the first ints of each bucket: ``n * buckets + b``.

    :param idmap: the map that gave them
    :param ints: every int the map has given out
    """
    per_bucket: dict[int, list[int]] = {}
    for value in ints:
        per_bucket.setdefault(value % idmap.buckets, []).append(value // idmap.buckets)
    assert all(sorted(seqs) == list(range(len(seqs))) for seqs in per_bucket.values())


async def _first_sightings(make_client: MakeClient, prefix: str, clients: int) -> None:
    """300 tasks on ``clients`` clients map the same 40 new ids at once: one int per id.

    Each client has its own tracker and id map without a cache, as separate processes would.

    :param make_client: opens a new client
    :param prefix: the test's prefix
    :param clients: how many clients (stand-ins for processes) share the work
    """
    externals = _uuids(40, seed=1)
    opened = [await make_client() for _ in range(clients)]
    maps = [IdMap(Tracker(c, prefix=prefix), cache_size=0) for c in opened]
    answers: list[dict[str, int]] = []

    async def sight(task: int) -> None:
        """Ask for every id, in an order of this task's own."""
        order = random.Random(task).sample(externals, len(externals))
        ints = await maps[task % clients].ids(order, create=True)
        answers.append(dict(zip(order, ints, strict=True)))

    try:
        async with anyio.create_task_group() as tg:
            for task in range(300):
                tg.start_soon(sight, task)
    finally:
        for connection in opened:
            await _close(connection)
    assert len(answers) == 300
    assert all(answer == answers[0] for answer in answers)
    assert len(set(answers[0].values())) == len(externals)
    _assert_dense(maps[0], list(answers[0].values()))


async def _close(connection: Redis | RedisCluster) -> None:
    """Close a client, and a cluster client's nodes too (see conftest).

    :param connection: the client
    """
    await connection.aclose()
    if isinstance(connection, RedisCluster):
        await connection.nodes_manager.aclose()
        await connection.nodes_manager.aclose("startup_nodes")


async def _members_of(idmap: IdMap) -> list[str]:
    """Mark 300 UUIDs (and two bare ints) and return ``idmap.members`` of the month.

    :param idmap: the map (its tracker marks)
    """
    externals = _uuids(300, seed=2)
    await idmap.mark_events([("active", e, AT) for e in externals])
    await idmap.tracker.mark_events([("active", 10**6, AT), ("active", 10**6 + 1, AT)])
    members = [e async for e in idmap.members(MONTH)]
    ints = await idmap.ids(members, create=True)  # all known: nothing is assigned
    assert ints == sorted(ints)  # ascending by int
    assert sorted(members) == sorted(externals)  # the unmapped ints are skipped
    return members


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
async def idmap(client: Redis, prefix: str) -> AsyncIterator[IdMap]:
    """An id map of 8 buckets on a tracker of the single server."""
    tracker = Tracker(client, prefix=prefix)
    yield IdMap(tracker, buckets=8)
    await tracker.aclose()


@pytest.fixture
async def cluster_idmap(cluster_client: RedisCluster, prefix: str) -> AsyncIterator[IdMap]:
    """An id map of 64 buckets on a tracker of the session cluster."""
    tracker = Tracker(cluster_client, prefix=prefix)
    yield IdMap(tracker)
    await tracker.aclose()


# -- assignment ---------------------------------------------------------------------------------


async def test_new_ids_get_dense_ints(idmap: IdMap) -> None:
    """200 new ids get 200 distinct ints, each bucket numbering its ids 0, 1, 2, ..."""
    ints = await idmap.ids(_uuids(200, seed=3), create=True)
    assert len(set(ints)) == 200
    _assert_dense(idmap, ints)
    assert max(ints) < 200 + 8 * 15  # dense: close to the number of ids


async def test_ids_are_stable(idmap: IdMap) -> None:
    """Asking again, with or without create, gives the same ints."""
    externals = _uuids(20, seed=4)
    first = await idmap.ids(externals, create=True)
    fresh = IdMap(idmap.tracker, buckets=8, cache_size=0)
    assert await fresh.ids(externals) == first
    assert await fresh.ids(externals, create=True) == first


async def test_unknown_ids_answer_none_without_create(idmap: IdMap) -> None:
    """ids() without create gives None for never-seen ids and assigns nothing."""
    [known] = await idmap.ids(["known"], create=True)
    assert await idmap.ids(["new", "known"]) == [None, known]
    assert await idmap.ids(["new"]) == [None]


async def test_repeated_id_in_one_batch_gets_one_int(idmap: IdMap) -> None:
    """The same new id twice in one batch gets one int, and the next id the next one."""
    a1, b, a2 = await idmap.ids(["a", "b", "a"], create=True)
    assert a1 == a2
    assert a1 != b


async def test_uuid_stands_for_its_string(idmap: IdMap) -> None:
    """A uuid.UUID maps to the same int as its canonical string, which external() returns."""
    value = uuid.UUID(_uuids(1, seed=5)[0])
    [n] = await idmap.ids([value], create=True)
    assert await idmap.ids([str(value)]) == [n]
    assert await idmap.external([n]) == [str(value)]


async def test_concurrent_first_sightings_get_one_int_each(redis_url: str, prefix: str) -> None:
    """300 tasks over 4 clients sighting the same 40 new ids at once agree on one int per id."""

    async def make_client() -> Redis:
        """Open a client of the session server."""
        return Redis.from_url(redis_url)

    await _first_sightings(make_client, prefix, clients=4)


async def test_concurrent_first_sightings_on_the_cluster_get_one_int_each(
    redis_cluster: EmbeddedCluster, prefix: str
) -> None:
    """On the cluster too, 300 tasks over 3 clients agree on one dense int per new id."""

    async def make_client() -> RedisCluster:
        """Open an initialized client of the session cluster."""
        connection = RedisCluster.from_url(redis_cluster.url)
        await connection.initialize()
        return connection

    await _first_sightings(make_client, prefix, clients=3)


# -- reverse lookup and members -----------------------------------------------------------------


async def test_external_maps_ints_back(idmap: IdMap) -> None:
    """external() returns each int's original id, and None for an int never given out."""
    externals = _uuids(30, seed=6)
    ints = await idmap.ids(externals, create=True)
    fresh = IdMap(idmap.tracker, buckets=8, cache_size=0)
    assert await fresh.external([*ints, 10**9]) == [*externals, None]


async def test_external_on_the_cluster_maps_ints_back(cluster_idmap: IdMap) -> None:
    """On the cluster, external() returns each int's original id from every bucket."""
    externals = _uuids(300, seed=7)
    ints = await cluster_idmap.ids(externals, create=True)
    fresh = IdMap(cluster_idmap.tracker, cache_size=0)
    assert await fresh.external(ints) == externals


async def test_members_yield_originals_ascending_by_int(client: Redis, prefix: str) -> None:
    """members() yields the original ids ascending by int, in chunks, skipping bare ints."""
    idmap = IdMap(Tracker(client, prefix=prefix), members_chunk=7)
    assert len(await _members_of(idmap)) == 300


async def test_members_on_the_cluster_yield_originals_ascending_by_int(
    cluster_client: RedisCluster, prefix: str
) -> None:
    """On the cluster, members() yields the original ids ascending by int."""
    idmap = IdMap(Tracker(cluster_client, prefix=prefix), members_chunk=50)
    assert len(await _members_of(idmap)) == 300


async def test_contains_answers_for_external_ids(idmap: IdMap) -> None:
    """contains() is True for a marked id and False for an unmarked or never-seen one."""
    await idmap.mark_event("active", "alice", AT)
    await idmap.ids(["bob"], create=True)
    assert await idmap.contains(MONTH, "alice")
    assert not await idmap.contains(MONTH, "bob")
    assert not await idmap.contains(MONTH, "carol")


# -- marking ------------------------------------------------------------------------------------


async def test_mark_event_marks_the_assigned_int(idmap: IdMap) -> None:
    """mark_event assigns an int to a new id, marks it, and returns it."""
    n = await idmap.mark_event("active", "alice", AT)
    assert await idmap.ids(["alice"]) == [n]
    assert [uid async for uid in idmap.tracker.members(MONTH)] == [n]


async def test_mark_events_marks_every_item_in_chunks(client: Redis, prefix: str) -> None:
    """mark_events over 3 chunks marks every item, with and without a time."""
    idmap = IdMap(Tracker(client, prefix=prefix, limits=Limits(mark_chunk_size=10)))
    externals = _uuids(25, seed=8)
    marks = [("active", e, AT) for e in externals[:20]] + [("seen", e) for e in externals[20:]]
    assert await idmap.mark_events(marks) == 25
    assert sorted([e async for e in idmap.members(MONTH)]) == sorted(externals[:20])


async def test_bad_event_name_sends_nothing(
    counted_client: Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """mark_event with a bad event name raises before assigning an int."""
    idmap = IdMap(Tracker(counted_client, prefix=prefix))
    with pytest.raises(InvalidEventName):
        await idmap.mark_event("bad name", "alice", AT)
    with pytest.raises(InvalidEventName):
        await idmap.mark_events([("ok", "bob"), ("{bad}", "carol")])
    assert proxy.commands == 0


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["", 7, None, b"bytes", "x" * 1025, "\ud800"], ids=lambda bad: repr(bad)[:12]
)
async def test_bad_external_ids_raise_before_sending(
    counted_client: Redis, proxy: RoundTripProxy, prefix: str, bad: object
) -> None:
    """Empty, non-str, too long or invalid-Unicode ids raise InvalidExternalId, sending nothing."""
    idmap = IdMap(Tracker(counted_client, prefix=prefix))
    with pytest.raises(InvalidExternalId):
        await idmap.ids(["fine", bad], create=True)  # type: ignore[list-item]
    assert proxy.commands == 0


async def test_bad_ints_raise_invalid_user_id(idmap: IdMap) -> None:
    """external() refuses negative ids with InvalidUserId."""
    with pytest.raises(InvalidUserId):
        await idmap.external([1, -1])


async def test_a_single_str_is_refused(idmap: IdMap) -> None:
    """ids("abc") raises TypeError instead of mapping "a", "b" and "c"."""
    with pytest.raises(TypeError, match="list"):
        await idmap.ids("abc")


async def test_another_bucket_count_raises_mismatch(idmap: IdMap) -> None:
    """A map stored with 8 buckets opened with 16 raises IdMapMismatch on every path."""
    ints = await idmap.ids(_uuids(40, seed=9), create=True)
    other = IdMap(idmap.tracker, buckets=16, cache_size=0)
    with pytest.raises(IdMapMismatch, match="buckets=8"):
        await other.ids(_uuids(40, seed=9), create=True)
    with pytest.raises(IdMapMismatch):
        await other.ids(_uuids(40, seed=9))
    with pytest.raises(IdMapMismatch):
        await other.external(ints)


def test_id_map_errors_are_bitlens_value_errors() -> None:
    """InvalidExternalId and IdMapMismatch are BitlensErrors and ValueErrors."""
    for error in (InvalidExternalId, IdMapMismatch):
        assert issubclass(error, BitlensError)
        assert issubclass(error, ValueError)


@pytest.mark.parametrize(
    ("name", "buckets"), [("", 8), ("a b", 8), ("{x}", 8), ("ids", 0), ("ids", 16385)]
)
async def test_bad_name_or_bucket_count_is_refused(client: Redis, name: str, buckets: int) -> None:
    """IdMap refuses a name unsafe in a key and a bucket count outside 1..16384."""
    with pytest.raises(ValueError, match=r"name|buckets"):
        IdMap(Tracker(client), name, buckets=buckets)


# -- layout and round trips ---------------------------------------------------------------------


async def test_keys_live_under_the_prefix(idmap: IdMap, client: Redis, prefix: str) -> None:
    """The map's hashes are found by a SCAN of the tracker's prefix: two per bucket used."""
    await idmap.ids(_uuids(100, seed=10), create=True)
    keys = await scan_keys(client, prefix)
    assert len(keys) == 2 * idmap.buckets
    assert all(key.startswith(f"{prefix}:{{~idmap:ids:".encode()) for key in keys)


async def test_each_bucket_lives_in_one_slot(
    redis_cluster: EmbeddedCluster, cluster_client: RedisCluster
) -> None:
    """A bucket's two hashes share one cluster slot; 64 buckets spread over every master."""
    idmap = IdMap(Tracker(cluster_client, prefix="p"))
    slots = [{redis_cluster.keyslot(key) for key in idmap.keys(b)} for b in range(64)]
    assert all(len(pair) == 1 for pair in slots)
    masters = {redis_cluster.node_for_slot(next(iter(pair))).name for pair in slots}
    assert len(masters) == 3


async def test_batch_is_one_round_trip(
    counted_client: Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """Assigning 200 new ids over 64 buckets, then mapping them back, is 1 round trip each."""
    idmap = IdMap(Tracker(counted_client, prefix=prefix), cache_size=0)
    ints = await idmap.ids(_uuids(200, seed=11), create=True)
    assert proxy.round_trips == 1
    await idmap.external(ints)
    assert proxy.round_trips == 2


async def test_known_ids_cost_no_round_trip(
    counted_client: Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """Ids this map assigned or looked up before are answered from its cache."""
    idmap = IdMap(Tracker(counted_client, prefix=prefix))
    ints = await idmap.ids(["a", "b"], create=True)
    proxy.reset()
    assert await idmap.ids(["b", "a"]) == ints[::-1]
    assert await idmap.external(ints) == ["a", "b"]
    assert proxy.round_trips == 0


async def test_cluster_batch_is_one_round_trip_per_master(
    counted_cluster_client: RedisCluster, cluster_proxies: ClusterProxies, prefix: str
) -> None:
    """On the cluster, 300 new ids over 64 buckets cost 1 round trip on each master."""
    idmap = IdMap(Tracker(counted_cluster_client, prefix=prefix), cache_size=0)
    ints = await idmap.ids(_uuids(300, seed=12), create=True)
    assert sorted(cluster_proxies.per_node().values()) == [1, 1, 1]
    cluster_proxies.reset()
    await idmap.external(ints)
    assert sorted(cluster_proxies.per_node().values()) == [1, 1, 1]


async def test_replicas_ack_waits_after_assigning(
    cluster_client: RedisCluster, prefix: str
) -> None:
    """With replicas_ack=1, each node's assignment is a MULTI/EVAL/EXEC followed by WAIT."""
    idmap = IdMap(Tracker(cluster_client, prefix=prefix, replicas_ack=1), cache_size=0)
    with count_writes() as counter:
        await idmap.ids(_uuids(100, seed=13), create=True)
    assert len(counter.round_trips) == 3
    assert all(write.commands[-1] == "WAIT" for write in counter.round_trips)
    assert all(write.commands[:3] == ("MULTI", "EVAL", "EXEC") for write in counter.round_trips)


# -- the guide (docs/ids.md) -------------------------------------------------------------------


def _readme_example() -> str:
    """Return the first python block of the ids guide, docs/ids.md."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "ids.md").read_text("utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert match is not None, "no python block in docs/ids.md"
    return match.group(1)


async def test_readme_example_prints_what_it_says(redis_url: str) -> None:
    """The ids guide's example, run as written, prints the values in its comments."""
    done = await anyio.run_process(
        [sys.executable, "-c", _readme_example()],
        env={**os.environ, "REDIS_URL": redis_url},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == [
        "3",
        "[7, 0, None]",
        "['bob', 'alice']",
        "['bob', 'alice', '7f0c0b4e-5a8e-4d9a-9a43-2b1f7f0d3c11']",
        "False",
    ]
