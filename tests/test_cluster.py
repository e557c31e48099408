"""The tracker on a real Redis Cluster (3 masters, 1 replica each): answers, round trips, faults.

The expression suite of ``test_queries`` runs against the session cluster too (parametrized
over deployment there); the tests here use shards of 256 ids as it does, so the data spans
~24 shards and every master. Round trips are counted per node by the proxies of
:func:`counted_cluster_client`. Every key of one shard carries the
hash tag ``{shard}``, so which master owns a shard does not depend on the test's prefix; the
shard registry (``prefix:~shards``, no hash tag) lands on a master that depends on it.

The fault test kills a master of a private cluster while marks and queries stream, and
checks that every acknowledged mark (``replicas_ack=1``) is still there after its replica
took over.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import pytest
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

import bitlens._transport
from _cluster_counter import count_writes
from _reference import Model
from _trees import LEAVES, SHARD_BITS, seed
from bitlens import (
    BitOpAnd,
    BitOpOr,
    DayEvents,
    Expr,
    Limits,
    MonthEvents,
    ReplicationTimeout,
    Tracker,
    Universe,
    WeekEvents,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from _cluster_counter import ClusterProxies
    from harness import EmbeddedCluster, EmbeddedClusterNode

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
AT = dt.datetime(2026, 11, 27, 13, 5, tzinfo=UTC)
MONTH = MonthEvents("a", 2026, 11)
SHARD = 1 << SHARD_BITS
"""Ids per shard in these tests."""


BUSY = """
local function now() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end
local stop = now() + ARGV[1] * 1000
local spins, cap = 0, ARGV[1] * 2000
while now() < stop and spins < cap do spins = spins + 1 end
return 1
"""
"""A script that keeps its server busy for ARGV[1] milliseconds (clients queue meanwhile).

Valkey freezes ``TIME`` inside a script, so the loop also ends after ``2000 * ARGV[1]``
turns (about 2 µs each there: twice as long as asked, never forever).
"""


# -- helpers ------------------------------------------------------------------------------------


def _owner(cluster: EmbeddedCluster, key: str) -> str:
    """Return the ``host:port`` of the master serving ``key``, as the servers say.

    :param cluster: the cluster
    :param key: any key
    """
    return cluster.node_for_slot(cluster.keyslot(key)).name


def _shard_owners(cluster: EmbeddedCluster, shards: range) -> dict[int, str]:
    """Return the master of each shard (its keys share the hash tag ``{shard}``).

    :param cluster: the cluster
    :param shards: the shard numbers
    """
    return {shard: _owner(cluster, f"x:{{{shard}}}:~all") for shard in shards}


def _pick_shards(owners: dict[int, str], masters: Sequence[str], per_master: int) -> list[int]:
    """Return ``per_master`` shards owned by each of ``masters``.

    :param owners: the master of each shard
    :param masters: the masters whose shards to pick
    :param per_master: how many shards of each
    """
    return [
        shard
        for master in masters
        for shard in sorted(s for s, owner in owners.items() if owner == master)[:per_master]
    ]


def _scan(node: EmbeddedClusterNode, prefix: str) -> set[bytes]:
    """Return every key under ``prefix:`` held by one node (``SCAN``, never ``KEYS``).

    :param node: a master of the cluster
    :param prefix: the test's key prefix
    """
    keys: set[bytes] = set()
    cursor = "0"
    while True:
        reply = node.call("SCAN", cursor, "MATCH", f"{prefix}:*", "COUNT", 1000)
        assert isinstance(reply, list)
        following, found = reply
        assert isinstance(following, bytes)
        assert isinstance(found, list)
        keys.update(key for key in found if isinstance(key, bytes))
        cursor = following.decode()
        if cursor == "0":
            return keys


def _keys_per_master(cluster: EmbeddedCluster, prefix: str) -> dict[str, set[bytes]]:
    """Return the keys under ``prefix:`` on each master.

    :param cluster: the cluster
    :param prefix: the test's key prefix
    """
    return {node.name: _scan(node, prefix) for node in cluster.masters()}


async def _members(tracker: Tracker, expr: Expr) -> list[int]:
    """Collect ``tracker.members(expr)`` in the order it yields.

    :param tracker: the tracker
    :param expr: the expression
    """
    return [user_id async for user_id in tracker.members(expr)]


async def _warm(tracker: Tracker, shards: Sequence[int]) -> None:
    """Mark one id in each shard and count once, so the tracker knows the server and registry.

    :param tracker: the tracker
    :param shards: the shards to put data in
    """
    await tracker.mark_events([("a", shard * SHARD + 1, AT) for shard in shards])
    await tracker.count(MONTH)


def _resp(*args: str | int) -> bytes:
    """Encode one command as a RESP array of bulk strings.

    :param args: the command name and its arguments
    """
    parts = [str(arg).encode() for arg in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


@contextlib.asynccontextmanager
async def _busy(nodes: Sequence[EmbeddedClusterNode], milliseconds: int) -> AsyncIterator[None]:
    """Keep every node busy with :data:`BUSY` for ``milliseconds``; enter once all are sent.

    Each script goes out on a raw connection of its own; the block starts when every one of
    them is on the wire, and on leaving each script's reply is awaited.

    :param nodes: the nodes to keep busy
    :param milliseconds: how long each script runs
    """
    links = [await asyncio.open_connection(node.host, node.port) for node in nodes]
    try:
        for _, writer in links:
            writer.write(_resp("EVAL", BUSY, 0, milliseconds))
        for _, writer in links:
            await writer.drain()
        yield
        for reader, _ in links:
            assert await reader.readline() == b":1\r\n"
    finally:
        for _, writer in links:
            writer.close()
        for _, writer in links:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@contextlib.contextmanager
def _wire_order() -> Iterator[list[tuple[str, str]]]:
    """Record every redis-py write (``"send"``) and reply batch read (``"reply"``) with its node.

    Wraps ``AbstractConnection.send_packed_command`` and the transport's ``_write`` (a
    ``_write`` that falls back to redis-py is recorded once), the transport's ``_read_all`` (which
    reads a pipeline's replies from the connection's parser on the fast path) and
    ``AbstractConnection.read_response`` (how redis-py's public pipeline reads each reply, the
    transport's fallback) for the block.
    """
    events: list[tuple[str, str]] = []
    in_write: contextvars.ContextVar[bool] = contextvars.ContextVar("in_write", default=False)
    original_send = AbstractConnection.send_packed_command
    original_write = bitlens._transport._write
    original_read = bitlens._transport._read_all
    original_response = AbstractConnection.read_response

    async def send_packed_command(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        """Write as redis-py would, then record the write."""
        await original_send(self, *args, **kwargs)
        if in_write.get():
            return  # the transport's _write fell back to redis-py: recorded there
        connection: Any = self
        events.append(("send", f"{connection.host}:{connection.port}"))

    async def write(connection: Any, packed: bytes) -> None:
        """Write as the transport would, then record the write."""
        token = in_write.set(True)
        try:
            await original_write(connection, packed)
        finally:
            in_write.reset(token)
        events.append(("send", f"{connection.host}:{connection.port}"))

    async def read_all(connection: Any, count: int, **kwargs: Any) -> list[object]:
        """Read as the executor would, then record the replies."""
        replies = await original_read(connection, count, **kwargs)
        events.append(("reply", f"{connection.host}:{connection.port}"))
        return replies

    async def read_response(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        """Read one reply as redis-py would, then record it."""
        reply = await original_response(self, *args, **kwargs)
        connection: Any = self
        events.append(("reply", f"{connection.host}:{connection.port}"))
        return reply

    setattr(AbstractConnection, "send_packed_command", send_packed_command)  # noqa: B010
    setattr(AbstractConnection, "read_response", read_response)  # noqa: B010
    setattr(bitlens._transport, "_read_all", read_all)  # noqa: B010
    setattr(bitlens._transport, "_write", write)  # noqa: B010
    try:
        yield events
    finally:
        setattr(bitlens._transport, "_write", original_write)  # noqa: B010
        setattr(AbstractConnection, "send_packed_command", original_send)  # noqa: B010
        setattr(AbstractConnection, "read_response", original_response)  # noqa: B010
        setattr(bitlens._transport, "_read_all", original_read)  # noqa: B010


# -- a seeded data set ---------------------------------------------------------------------------


@dataclass
class Seeded:
    """A tracker on the session cluster over the random data set of ``_trees``, and its model."""

    tracker: Tracker
    model: Model
    ids: list[int]


@pytest.fixture
async def seeded(cluster_client: RedisCluster, prefix: str) -> AsyncIterator[Seeded]:
    """Marks ~2,000 random events over ~24 shards (on every master) once per test function."""
    tracker = Tracker(cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    model = Model()
    ids = await seed(tracker, model, seed=len(prefix) + 11)
    yield Seeded(tracker, model, ids)
    await tracker.aclose()


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3])
async def test_count_costs_one_round_trip_on_each_master_holding_shards(
    counted_cluster_client: RedisCluster,
    cluster_proxies: ClusterProxies,
    redis_cluster: EmbeddedCluster,
    prefix: str,
    k: int,
) -> None:
    """A composite count whose shards live on k masters is 1 round trip on each, 0 elsewhere."""
    tracker = Tracker(counted_cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    registry = _owner(redis_cluster, tracker.schema.registry_key)
    others = sorted({node.name for node in redis_cluster.masters()} - {registry})
    masters = [registry, *others][:k]  # the registry check rides with the shards' pipeline
    shards = _pick_shards(_shard_owners(redis_cluster, range(64)), masters, per_master=3)
    await _warm(tracker, shards)
    cluster_proxies.reset()
    tree = (MONTH | DayEvents("a", 2026, 11, 27)) - WeekEvents("b", 2026, 48)
    assert await tracker.count(tree) == len(shards)
    assert cluster_proxies.per_node() == dict.fromkeys(masters, 1)


async def test_members_reads_the_shards_of_every_master_at_once(
    counted_cluster_client: RedisCluster,
    cluster_proxies: ClusterProxies,
    redis_cluster: EmbeddedCluster,
    prefix: str,
) -> None:
    """members() over 3 shards on each of 3 masters: one GETRANGE round trip per master."""
    tracker = Tracker(counted_cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    registry = _owner(redis_cluster, tracker.schema.registry_key)
    masters = sorted(node.name for node in redis_cluster.masters())
    shards = _pick_shards(_shard_owners(redis_cluster, range(64)), masters, per_master=3)
    await _warm(tracker, shards)
    cluster_proxies.reset()
    assert len(await _members(tracker, MONTH)) == len(shards)
    expected = dict.fromkeys(masters, 1)
    expected[registry] += 1  # the registry's SMEMBERS, before the windows are read
    assert cluster_proxies.per_node() == expected


async def test_registry_on_another_master_costs_it_one_round_trip(
    counted_cluster_client: RedisCluster,
    cluster_proxies: ClusterProxies,
    redis_cluster: EmbeddedCluster,
    prefix: str,
) -> None:
    """When no shard lives with the registry, its SCARD is one more round trip, on its master."""
    tracker = Tracker(counted_cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    registry = _owner(redis_cluster, tracker.schema.registry_key)
    other = min({node.name for node in redis_cluster.masters()} - {registry})
    shards = _pick_shards(_shard_owners(redis_cluster, range(64)), [other], per_master=3)
    await _warm(tracker, shards)
    cluster_proxies.reset()
    assert await tracker.count(MONTH & Universe()) == len(shards)
    assert cluster_proxies.per_node() == {registry: 1, other: 1}
    assert cluster_proxies.proxy(registry).command_names == ["SCARD"]


async def test_probe_rides_with_a_shard_and_adds_no_node(
    counted_cluster_client: RedisCluster,
    cluster_proxies: ClusterProxies,
    redis_cluster: EmbeddedCluster,
    prefix: str,
) -> None:
    """A cluster's capability probe travels with a shard's pipeline: no node, no round trip."""
    tracker = Tracker(counted_cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    registry = _owner(redis_cluster, tracker.schema.registry_key)
    other = min({node.name for node in redis_cluster.masters()} - {registry})
    shards = _pick_shards(_shard_owners(redis_cluster, range(64)), [other], per_master=2)
    await tracker.mark_events([("a", shard * SHARD + 1, AT) for shard in shards])
    cluster_proxies.reset()
    assert await tracker.count(MONTH) == len(shards)
    assert cluster_proxies.per_node() == {registry: 1, other: 1}
    assert cluster_proxies.proxy(other).command_names.count("BITOP") == 2
    assert tracker.capabilities is not None


async def test_count_sends_every_pipeline_before_any_node_answers(
    cluster_client: RedisCluster, redis_cluster: EmbeddedCluster, prefix: str
) -> None:
    """With every master busy for 0.3 s, a count's 3 pipelines are all written before a reply."""
    tracker = Tracker(cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    masters = redis_cluster.masters()
    names = sorted(node.name for node in masters)
    await _warm(tracker, _pick_shards(_shard_owners(redis_cluster, range(64)), names, 2))
    with _wire_order() as events:
        # each master runs a 0.3 s script: nothing answers meanwhile
        async with _busy(masters, 300):
            await tracker.count(MONTH | WeekEvents("a", 2026, 48))
    sends = [i for i, (kind, _) in enumerate(events) if kind == "send"]
    replies = [i for i, (kind, _) in enumerate(events) if kind == "reply"]
    assert sorted(node for kind, node in events if kind == "send") == names
    assert max(sends) < min(replies)  # one after another, each would wait 0.2 s for a reply


async def test_mark_is_one_round_trip_on_each_node_it_touches(
    counted_cluster_client: RedisCluster,
    cluster_proxies: ClusterProxies,
    redis_cluster: EmbeddedCluster,
    prefix: str,
) -> None:
    """mark_event is one transaction on its shard's master plus the registry's SADD."""
    tracker = Tracker(counted_cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    registry = _owner(redis_cluster, tracker.schema.registry_key)
    other = min({node.name for node in redis_cluster.masters()} - {registry})
    [shard] = _pick_shards(_shard_owners(redis_cluster, range(64)), [other], per_master=1)
    await tracker.mark_event("a", shard * SHARD + 7, AT, track_hourly=True, track_unique=True)
    assert cluster_proxies.per_node() == {registry: 1, other: 1}
    names = cluster_proxies.proxy(other).command_names
    assert (names[0], names[-1], names.count("MULTI")) == ("MULTI", "EXEC", 1)


async def test_second_mark_in_a_known_shard_reasserts_the_registry(
    counted_cluster_client: RedisCluster,
    cluster_proxies: ClusterProxies,
    redis_cluster: EmbeddedCluster,
    prefix: str,
) -> None:
    """A lone mark into a known shard still re-asserts it: one round trip on each master."""
    tracker = Tracker(counted_cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    registry = _owner(redis_cluster, tracker.schema.registry_key)
    other = min({node.name for node in redis_cluster.masters()} - {registry})
    [shard] = _pick_shards(_shard_owners(redis_cluster, range(64)), [other], per_master=1)
    await tracker.mark_event("a", shard * SHARD + 7, AT)
    cluster_proxies.reset()
    await tracker.mark_event("a", shard * SHARD + 8, AT)
    assert cluster_proxies.per_node() == {registry: 1, other: 1}
    assert "SADD" in cluster_proxies.proxy(registry).command_names
    assert await tracker.contains(MONTH, shard * SHARD + 8)


async def test_mark_events_over_every_master_is_one_round_trip_each(
    counted_cluster_client: RedisCluster,
    cluster_proxies: ClusterProxies,
    redis_cluster: EmbeddedCluster,
    prefix: str,
) -> None:
    """A batch over 24 shards on 3 masters is 1 round trip per master: a MULTI/EXEC per shard."""
    tracker = Tracker(counted_cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    marks = [("a", uid, AT) for uid in range(0, 24 * SHARD, 97)]
    assert await tracker.mark_events(marks) == len(marks)
    masters = [node.name for node in redis_cluster.masters()]
    assert cluster_proxies.per_node() == dict.fromkeys(masters, 1)
    transactions = sum(cluster_proxies.proxy(m).command_names.count("MULTI") for m in masters)
    assert transactions == 24 + 1  # one per shard, and the registry's


async def test_contains_many_is_one_round_trip_per_master(
    counted_cluster_client: RedisCluster,
    cluster_proxies: ClusterProxies,
    redis_cluster: EmbeddedCluster,
    prefix: str,
) -> None:
    """contains_many of ids on 3 masters reads their bits in 1 round trip per master."""
    tracker = Tracker(counted_cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    masters = [node.name for node in redis_cluster.masters()]
    shards = _pick_shards(_shard_owners(redis_cluster, range(64)), masters, per_master=2)
    await _warm(tracker, shards)
    cluster_proxies.reset()
    probes = [shard * SHARD + bit for shard in shards for bit in (1, 2)]
    answers = await tracker.contains_many(MONTH - WeekEvents("b", 2026, 48), probes)
    assert answers == [uid % SHARD == 1 for uid in probes]
    assert cluster_proxies.per_node() == dict.fromkeys(masters, 1)


async def test_replicas_ack_waits_on_every_node_written(
    cluster_client: RedisCluster, redis_cluster: EmbeddedCluster, prefix: str
) -> None:
    """With replicas_ack=1 each node's pipeline of a mark ends with WAIT, the registry's too."""
    tracker = Tracker(cluster_client, prefix=prefix, shard_bits=SHARD_BITS, replicas_ack=1)
    registry = _owner(redis_cluster, tracker.schema.registry_key)
    other = min({node.name for node in redis_cluster.masters()} - {registry})
    [shard] = _pick_shards(_shard_owners(redis_cluster, range(64)), [other], per_master=1)
    with count_writes() as counter:
        await tracker.mark_event("a", shard * SHARD, AT)
    assert sorted(counter.per_node()) == sorted([registry, other])
    assert all(write.commands[-1] == "WAIT" for write in counter.round_trips)


# -- spread, order, leaks, errors ---------------------------------------------------------------


async def test_64_shards_put_data_on_every_master(
    cluster_client: RedisCluster, redis_cluster: EmbeddedCluster, prefix: str
) -> None:
    """Marking one id in each of 64 shards leaves bitmaps on all 3 masters."""
    tracker = Tracker(cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    await tracker.mark_events([("a", shard * SHARD, AT) for shard in range(64)])
    per_master = _keys_per_master(redis_cluster, prefix)
    bitmaps = {
        name: {k for k in keys if k.endswith(b":a:M2026-11")} for name, keys in per_master.items()
    }
    assert len(bitmaps) == 3
    assert all(len(keys) >= 10 for keys in bitmaps.values()), {
        n: len(k) for n, k in bitmaps.items()
    }
    assert sum(len(keys) for keys in bitmaps.values()) == 64


async def test_members_are_merged_ascending_across_masters(
    cluster_client: RedisCluster, redis_cluster: EmbeddedCluster, prefix: str
) -> None:
    """Ids marked in random order over shards of 3 masters come back ascending, each once."""
    tracker = Tracker(
        cluster_client, prefix=prefix, shard_bits=SHARD_BITS, limits=Limits(members_chunk_bytes=8)
    )
    masters = [node.name for node in redis_cluster.masters()]
    shards = _pick_shards(_shard_owners(redis_cluster, range(64)), masters, per_master=3)
    rng = random.Random(3)
    ids = [shard * SHARD + bit for shard in shards for bit in rng.sample(range(SHARD), 40)]
    rng.shuffle(ids)
    for chunk in range(0, len(ids), 50):
        await tracker.mark_events([("a", uid, AT) for uid in ids[chunk : chunk + 50]])
    assert await _members(tracker, MONTH) == sorted(ids)


async def test_no_temp_key_survives_queries_or_cancellations(
    seeded: Seeded, redis_cluster: EmbeddedCluster, prefix: str
) -> None:
    """After 200 composite counts, some cancelled mid-flight, every master holds data keys only."""
    before = _keys_per_master(redis_cluster, prefix)
    rng = random.Random(17)
    cancelled = 0
    for i in range(200):
        tree = BitOpAnd(rng.choice(LEAVES), BitOpOr(rng.choice(LEAVES), ~rng.choice(LEAVES)))
        if i % 5 == 0:
            with anyio.move_on_after(rng.uniform(0, 0.003)) as scope:
                await seeded.tracker.count(tree)
            cancelled += scope.cancelled_caught
        else:
            assert await seeded.tracker.count(tree) == len(seeded.model.ids(tree))
    after = _keys_per_master(redis_cluster, prefix)
    assert cancelled > 0
    assert after == before
    assert not any(b"~tmp" in key for keys in after.values() for key in keys)


async def test_error_reply_is_raised_as_itself(cluster_client: RedisCluster, prefix: str) -> None:
    """A WRONGTYPE reply on one node raises ResponseError, as on a single server."""
    tracker = Tracker(cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    await tracker.mark_events([("a", uid, AT) for uid in range(0, 8 * SHARD, 31)])
    await cluster_client.hset(f"{prefix}:{{3}}:a:M2026-12", "not", "a bitmap")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await tracker.count(MONTH | MonthEvents("a", 2026, 12))


async def test_tracker_from_url_connects_to_the_cluster(
    redis_cluster: EmbeddedCluster, prefix: str
) -> None:
    """Tracker(url, cluster=True) builds a RedisCluster, answers across masters and closes it."""
    async with Tracker(redis_cluster.url, cluster=True, prefix=prefix, shard_bits=8) as tracker:
        assert isinstance(tracker.client, RedisCluster)
        await tracker.mark_events([("a", uid, AT) for uid in range(0, 30 * SHARD, 101)])
        assert await tracker.count(MONTH) == len(range(0, 30 * SHARD, 101))
    client: Any = tracker.client
    await client.nodes_manager.aclose()  # see conftest: aclose() may leave nodes open


# -- failover -----------------------------------------------------------------------------------


@dataclass
class _Stream:
    """What a stream of marks and queries saw while a master died.

    :param attempted: ids whose ``mark_event`` was called
    :param acked: ids whose ``mark_event`` returned
    :param failed: ids whose ``mark_event`` raised
    :param recovered: acknowledged marks sent after the cluster was whole again
    :param counts: counts that succeeded during the stream
    :param query_errors: counts that raised
    :param down: when the master was killed, and when the cluster was whole again
    :param settled: set once ``recovered`` reaches ``writers``
    :param under_way: set once more than 100 marks and 10 counts succeeded
    :param writers: how many writers stream marks
    """

    attempted: list[int] = field(default_factory=lambda: list[int]())
    acked: list[int] = field(default_factory=lambda: list[int]())
    failed: list[int] = field(default_factory=lambda: list[int]())
    recovered: int = 0
    counts: int = 0
    query_errors: int = 0
    down: tuple[float, float] = (float("inf"), float("inf"))
    settled: anyio.Event = field(default_factory=anyio.Event)
    under_way: anyio.Event = field(default_factory=anyio.Event)
    writers: int = 4

    def progress(self) -> None:
        """Set :attr:`under_way` once the stream has done enough before any fault."""
        if len(self.acked) > 100 and self.counts > 10:
            self.under_way.set()


async def _mark_stream(tracker: Tracker, stream: _Stream, first: int, step: int) -> None:
    """Mark ids ``first, first + step, ...`` (increasing) until cancelled; record the outcome.

    :param tracker: the tracker
    :param stream: the record
    :param first: the first id
    :param step: the distance between ids
    """
    for uid in itertools.count(first, step):
        began = time.monotonic()
        stream.attempted.append(uid)
        try:
            await tracker.mark_event("a", uid, AT)
        except (RedisError, ReplicationTimeout):
            # Unacknowledged: refused, or (while the promoted master has no replica yet)
            # written but not replicated in time.
            stream.failed.append(uid)
            acked = False
        else:
            stream.acked.append(uid)
            stream.progress()
            acked = True
        if began > stream.down[1] and acked:
            stream.recovered += 1
            if stream.recovered >= stream.writers:
                stream.settled.set()


async def _query_stream(tracker: Tracker, stream: _Stream) -> None:
    """Count the month over and over; each count must hold every mark acknowledged before it.

    :param tracker: the tracker
    :param stream: the record
    """
    while True:
        floor = len(stream.acked)
        try:
            total = await tracker.count(MONTH)
        except RedisError:
            stream.query_errors += 1
            await anyio.sleep(0.01)
            continue
        assert floor <= total <= len(stream.attempted)
        stream.counts += 1
        stream.progress()


@pytest.mark.slow
async def test_acknowledged_marks_survive_a_master_failover(
    own_cluster: EmbeddedCluster, prefix: str
) -> None:
    """SIGKILL the registry's master mid-stream: after failover every acked mark is there."""
    client = RedisCluster.from_url(own_cluster.url)
    reader = RedisCluster.from_url(own_cluster.url)
    try:
        tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS, replicas_ack=1)
        victim_name = _owner(own_cluster, tracker.schema.registry_key)
        [victim] = [node for node in own_cluster.masters() if node.name == victim_name]
        stream = _Stream()
        async with anyio.create_task_group() as tg:
            for writer in range(stream.writers):
                tg.start_soon(_mark_stream, tracker, stream, writer * 13, stream.writers * 13)
            tg.start_soon(_query_stream, tracker, stream)
            with anyio.move_on_after(10):  # a stream well under way before the fault
                await stream.under_way.wait()
            killed = time.monotonic()
            stream.down = (killed, float("inf"))
            own_cluster.kill(victim)
            await anyio.to_thread.run_sync(own_cluster.wait_for_failover, victim)
            # With replicas_ack=1 the promoted master can acknowledge nothing until it has a
            # replica again: the killed node comes back as one (its data resynced).
            await anyio.to_thread.run_sync(own_cluster.restart_node, victim)
            stream.down = (killed, time.monotonic())
            with anyio.move_on_after(20):  # until the same tracker marks again
                await stream.settled.wait()
            tg.cancel_scope.cancel()
        assert len(stream.acked) > 100
        assert stream.counts > 10
        assert stream.recovered >= stream.writers  # the same tracker works on, no restart
        # A fresh tracker on another client knows nothing but what Redis holds.
        fresh = Tracker(reader, prefix=prefix, shard_bits=SHARD_BITS)
        assert all(await fresh.contains_many(MONTH, stream.acked))
        assert set(stream.acked) <= set(await _members(fresh, MONTH))
        # Marks that raised (or were cancelled when the stream stopped) may or may not have
        # been written: send them again (marking is idempotent), then everything must match.
        unacknowledged = sorted(set(stream.attempted) - set(stream.acked))
        await tracker.mark_events([("a", uid, AT) for uid in unacknowledged])
        everyone = sorted(stream.attempted)
        assert await fresh.count(MONTH) == len(everyone)
        assert await _members(fresh, MONTH) == everyone
    finally:
        for connection in (client, reader):
            await connection.aclose()
            await connection.nodes_manager.aclose()
            await connection.nodes_manager.aclose("startup_nodes")
