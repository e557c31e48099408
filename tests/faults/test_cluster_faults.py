"""A Redis Cluster loses a master under marking load: every acknowledged mark survives.

With ``replicas_ack=1`` a mark is acknowledged only once a replica holds it, so a failover
loses none; every write re-asserts its shards, so none hides from a fresh reader.
"""

from __future__ import annotations

import functools
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import pytest

from _helpers import close_cluster_client, connect_cluster, paused_node
from bitlens import Coalesce, MonthEvents, Tracker
from faults._invariants import Ledger, check_invariants
from faults._load import AT, Load, WritePath, run_writer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from harness import EmbeddedCluster, EmbeddedClusterNode

pytestmark = pytest.mark.anyio

WRITERS = 6
SHARD_BITS = 8


@pytest.mark.parametrize("path", ["plain", "coalesced", "mark_events"])
async def test_registry_master_killed_under_load_loses_no_acknowledged_mark(
    own_cluster: EmbeddedCluster, prefix: str, path: WritePath
) -> None:
    """SIGKILL the registry's master mid-stream: after failover every acked mark is seen."""
    ledger, load = Ledger(), Load()
    client = connect_cluster(own_cluster.url)
    tracker = Tracker(
        client,
        prefix=prefix,
        shard_bits=SHARD_BITS,
        replicas_ack=1,
        coalesce=path == "coalesced",
    )
    slot = own_cluster.keyslot(tracker.schema.registry_key)
    victim = own_cluster.node_for_slot(slot)
    try:
        async with anyio.create_task_group() as tg:
            # Ids spread over many shards, so every master takes writes.
            for writer in range(WRITERS):
                tg.start_soon(run_writer, tracker, ledger, load, path, writer * 97, WRITERS * 97)
            await load.under_way.wait()
            own_cluster.kill(victim)
            await anyio.to_thread.run_sync(own_cluster.wait_for_failover, victim)
            # With replicas_ack=1 the promoted master acknowledges nothing until it has a
            # replica again: the killed node comes back as one.
            await anyio.to_thread.run_sync(own_cluster.restart_node, victim)
            await load.more(50)
            tg.cancel_scope.cancel()
        await check_invariants(
            own_cluster.url, prefix, ledger, tracker, shard_bits=SHARD_BITS, cluster=True
        )
    finally:
        await tracker.aclose()
        await close_cluster_client(client)


async def test_registry_master_killed_under_fire_and_forget_load_loses_no_queued_mark(
    own_cluster: EmbeddedCluster, prefix: str
) -> None:
    """SIGKILL the registry's master while marks queue: after failover every one is written."""
    ledger = Ledger()
    client = connect_cluster(own_cluster.url)
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS, replicas_ack=1)
    victim = own_cluster.node_for_slot(own_cluster.keyslot(tracker.schema.registry_key))
    queued: list[int] = []

    async def enqueue(count: int) -> None:
        for _ in range(count):
            uid = len(queued) * 97  # over many shards, so every master takes writes
            assert tracker.mark_event_nowait("active", uid, AT)
            ledger.attempt("active", uid, AT)
            queued.append(uid)
            await anyio.sleep(0.001)

    try:
        await enqueue(200)
        own_cluster.kill(victim)
        await enqueue(200)  # queued while the registry's master is down
        await anyio.to_thread.run_sync(own_cluster.wait_for_failover, victim)
        await anyio.to_thread.run_sync(own_cluster.restart_node, victim)
        await enqueue(200)
        await tracker.aclose(drain_timeout=60)
        stats = tracker.stats()
        assert (stats.nowait_written, stats.nowait_dropped, stats.rejected) == (600, 0, 0)
        for uid in queued:
            ledger.ack("active", uid, AT)
        reader = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
        await check_invariants(
            own_cluster.url, prefix, ledger, reader, shard_bits=SHARD_BITS, cluster=True
        )
        await reader.aclose()
    finally:
        await tracker.aclose()
        await close_cluster_client(client)


def _migrate_keys(source: EmbeddedClusterNode, target: EmbeddedClusterNode, slot: int) -> None:
    """Move every key of ``slot`` from ``source`` to ``target`` (as redis-cli would)."""
    while True:
        keys = source.call("CLUSTER", "GETKEYSINSLOT", slot, 100)
        assert isinstance(keys, list)
        if not keys:
            return
        for key in keys:
            assert isinstance(key, bytes)
            source.call("MIGRATE", target.host, target.port, key.decode(), 0, 5000, "REPLACE")


async def test_marks_and_counts_follow_a_slot_held_migrating(
    own_cluster: EmbeddedCluster, prefix: str
) -> None:
    """A slot held MIGRATING for a second while marking and counting: ASK is followed."""
    ledger, load = Ledger(), Load(warm=20)
    client = connect_cluster(own_cluster.url)
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    shard = 3
    slot = own_cluster.keyslot(tracker.schema.universe_key(shard))
    source = own_cluster.node_for_slot(slot)
    target = next(node for node in own_cluster.masters() if node.name != source.name)
    first = shard << SHARD_BITS
    counts: list[int] = []
    migrated = anyio.Event()
    counted_after = anyio.Event()

    async def count_forever() -> None:
        # A count names temp keys that never exist on either node, so Redis answers it
        # TRYAGAIN while the slot's keys are in transit: it is retried until they are not.
        expr = MonthEvents.from_date("active", AT)
        while True:
            floor = load.acked
            total = await tracker.count(expr)
            assert floor <= total <= len(ledger.attempted[next(iter(ledger.attempted))])
            counts.append(total)
            if migrated.is_set():
                counted_after.set()
            await anyio.sleep(0.02)

    try:
        async with anyio.create_task_group() as tg:
            # one writer into the migrating shard only
            tg.start_soon(
                functools.partial(run_writer, pause=0.005), tracker, ledger, load, "plain", first, 1
            )
            await load.under_way.wait()
            target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
            source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
            tg.start_soon(count_forever)
            await anyio.to_thread.run_sync(_migrate_keys, source, target, slot)
            await load.more(20)  # marks into moved keys go to the target behind ASKING
            await anyio.sleep(0.5)  # held: still MIGRATING
            await anyio.to_thread.run_sync(_migrate_keys, source, target, slot)
            for node in own_cluster.masters():
                node.call("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
            migrated.set()
            await load.more(20)
            with anyio.fail_after(10):
                await counted_after.wait()
            tg.cancel_scope.cancel()
        assert load.failed == 0, load.errors[:3]
        await check_invariants(
            own_cluster.url, prefix, ledger, tracker, shard_bits=SHARD_BITS, cluster=True
        )
    finally:
        await tracker.aclose()
        await close_cluster_client(client)


def _shards_on(cluster: EmbeddedCluster, tracker: Tracker, master: str, count: int) -> list[int]:
    """Return ``count`` shards whose slot ``master`` serves."""
    found = [
        shard
        for shard in range(4096)
        if cluster.node_for_slot(cluster.keyslot(tracker.schema.universe_key(shard))).name == master
    ]
    return found[:count]


@dataclass
class _Split:
    """A tracker of a private cluster, and the shards of one master to pause and one to keep.

    :param tracker: the tracker under test
    :param paused: the master to pause (not the registry's)
    :param stuck: 20 shards ``paused`` serves
    :param free: a shard of another master (not the registry's either)
    """

    tracker: Tracker
    paused: EmbeddedClusterNode
    stuck: list[int]
    free: int
    ledger: Ledger = field(default_factory=Ledger)
    finished: list[int] = field(default_factory=list)
    """The ids whose ``mark_event`` returned, in the order they did."""

    async def mark(self, uid: int) -> None:
        """Mark ``uid`` (recorded in :attr:`ledger` and :attr:`finished`)."""
        self.ledger.attempt("active", uid, AT)
        await self.tracker.mark_event("active", uid, AT)
        self.ledger.ack("active", uid, AT)
        self.finished.append(uid)


@asynccontextmanager
async def _split(
    cluster: EmbeddedCluster, prefix: str, coalesce: Coalesce | bool = False
) -> AsyncIterator[_Split]:
    """Yield a :class:`_Split` whose tracker has sent once (slot map warm); close it after."""
    client = connect_cluster(cluster.url)
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS, coalesce=coalesce)
    registry = cluster.node_for_slot(cluster.keyslot(tracker.schema.registry_key))
    paused, healthy = [node for node in cluster.masters() if node.name != registry.name][:2]
    stuck = _shards_on(cluster, tracker, paused.name, 20)
    [free] = _shards_on(cluster, tracker, healthy.name, 1)
    try:
        await tracker.count(MonthEvents.from_date("active", AT))  # warm the slot map
        yield _Split(tracker, paused, stuck, free)
    finally:
        await tracker.aclose()
        await close_cluster_client(client)


async def test_one_paused_master_delays_only_the_marks_that_need_it(
    own_cluster: EmbeddedCluster, prefix: str
) -> None:
    """20 marks stuck on a paused master leave a mark into a healthy master free to finish."""
    async with _split(own_cluster, prefix) as split:
        async with anyio.create_task_group() as tg:
            with paused_node(split.paused, 1500, "ALL"):
                for shard in split.stuck:
                    tg.start_soon(split.mark, shard << SHARD_BITS)
                await anyio.wait_all_tasks_blocked()  # all 20 are waiting on the paused master
                await split.mark(split.free << SHARD_BITS)
                assert split.finished == [split.free << SHARD_BITS]  # no paused one came first
        assert sorted(split.finished[1:]) == [shard << SHARD_BITS for shard in split.stuck]
        await check_invariants(
            own_cluster.url,
            prefix,
            split.ledger,
            split.tracker,
            shard_bits=SHARD_BITS,
            cluster=True,
        )


async def test_a_coalesced_mark_waits_only_for_its_own_master(
    own_cluster: EmbeddedCluster, prefix: str
) -> None:
    """Coalesced marks for a paused and a healthy master, together: the healthy one returns."""
    async with _split(own_cluster, prefix, Coalesce(delay=0.01)) as split:
        async with anyio.create_task_group() as tg:
            # Paused far longer than any socket timeout: only unpausing lets those marks land.
            with paused_node(split.paused, 60_000, "WRITE"):
                for shard in split.stuck:
                    tg.start_soon(split.mark, shard << SHARD_BITS)
                await split.mark(split.free << SHARD_BITS)  # within the same coalescing window
            assert split.finished == [split.free << SHARD_BITS]
        assert sorted(split.finished[1:]) == [shard << SHARD_BITS for shard in split.stuck]
        assert split.tracker.stats().coalesced_batches == 2  # one batch per master
        await check_invariants(
            own_cluster.url,
            prefix,
            split.ledger,
            split.tracker,
            shard_bits=SHARD_BITS,
            cluster=True,
        )
