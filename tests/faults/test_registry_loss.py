"""A reader never misses a shard that holds data, whatever the server lost.

Every write re-asserts its shards in the registry (in the same MULTI/EXEC on one server; in
the same concurrent fan-out on a cluster), so a writer that lived through a ``FLUSHDB``, a
restart without persistence or the loss of the registry key alone registers its shards
again with its next mark, and a fresh reader counts it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Literal

import anyio
import pytest
import redis.exceptions

from _helpers import close_cluster_client, connect, connect_cluster, scan_keys
from bitlens import Tracker
from bitlens.embedded import EmbeddedRedis
from faults._invariants import Ledger, check_invariants, tracked_client

if TYPE_CHECKING:
    from redis.asyncio.cluster import RedisCluster

    from harness import EmbeddedCluster

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
SHARD_BITS = 8

WritePath = Literal["plain", "coalesced", "expiring", "mark_events", "batch"]
PATHS: tuple[WritePath, ...] = ("plain", "coalesced", "expiring", "mark_events", "batch")


def _tracker(client: object, prefix: str, path: WritePath) -> Tracker:
    """Return a tracker that writes through ``path``."""
    return Tracker(
        client,  # type: ignore[arg-type]
        prefix=prefix,
        shard_bits=SHARD_BITS,
        coalesce=path == "coalesced",
        expire_after={"day": dt.timedelta(days=400)} if path == "expiring" else None,
    )


async def _mark(tracker: Tracker, path: WritePath, ids: list[int], ledger: Ledger) -> None:
    """Mark ``ids`` through ``path``; record each acknowledgement in ``ledger``."""
    for uid in ids:
        ledger.attempt("active", uid, AT)
    if path == "mark_events":
        await tracker.mark_events([("active", uid, AT) for uid in ids])
    elif path == "batch":
        batch = tracker.batch()
        for uid in ids:
            batch.mark_event("active", uid, AT)
        await batch.flush()
    elif path == "coalesced":
        async with anyio.create_task_group() as tg:
            for uid in ids:
                tg.start_soon(tracker.mark_event, "active", uid, AT)
    else:
        for uid in ids:
            await tracker.mark_event("active", uid, AT)
    for uid in ids:
        ledger.ack("active", uid, AT)


@pytest.mark.parametrize("path", PATHS)
async def test_marks_after_the_prefix_was_flushed_are_counted(
    redis_url: str, prefix: str, path: WritePath
) -> None:
    """A writer whose keys all vanished (FLUSHDB) re-registers its shards with its next mark."""
    admin = connect(redis_url)
    client = tracked_client(redis_url)
    tracker = _tracker(client, prefix, path)
    try:
        await _mark(tracker, path, [1, 2, 1 << SHARD_BITS], Ledger())
        await admin.delete(*await scan_keys(admin, prefix))  # what a FLUSHDB does to them
        ledger = Ledger()
        await _mark(tracker, path, [3, (1 << SHARD_BITS) + 1, 5 << SHARD_BITS], ledger)
        await check_invariants(redis_url, prefix, ledger, tracker, shard_bits=SHARD_BITS)
    finally:
        await tracker.aclose()
        await client.aclose()
        await admin.aclose()


@pytest.mark.parametrize("path", PATHS)
async def test_marks_after_only_the_registry_was_lost_are_counted(
    redis_url: str, prefix: str, path: WritePath
) -> None:
    """With the bitmaps kept but the registry gone, the next mark into a shard lists it again."""
    admin = connect(redis_url)
    client = tracked_client(redis_url)
    tracker = _tracker(client, prefix, path)
    try:
        ledger = Ledger()  # the bitmaps are kept: the first marks must still be seen
        await _mark(tracker, path, [1, 1 << SHARD_BITS], ledger)
        await admin.delete(tracker.schema.registry_key)
        await _mark(tracker, path, [2, (1 << SHARD_BITS) + 2], ledger)
        await check_invariants(redis_url, prefix, ledger, tracker, shard_bits=SHARD_BITS)
    finally:
        await tracker.aclose()
        await client.aclose()
        await admin.aclose()


async def test_marks_after_a_restart_without_persistence_are_counted(
    redis_binary: str, prefix: str
) -> None:
    """A long-running writer outlives a server restart that lost every key."""
    with EmbeddedRedis(redis_binary) as server:
        client = tracked_client(server.url)
        tracker = _tracker(client, prefix, "plain")
        try:
            await _mark(tracker, "plain", [1, 1 << SHARD_BITS], Ledger())
            await anyio.to_thread.run_sync(server.restart)
            ledger = Ledger()
            for _ in range(50):  # the client reconnects on its own; its first try may fail
                try:
                    await _mark(tracker, "plain", [2, (1 << SHARD_BITS) + 2], ledger)
                    break
                except redis.exceptions.ConnectionError:
                    await anyio.sleep(0.05)
            await check_invariants(server.url, prefix, ledger, tracker, shard_bits=SHARD_BITS)
        finally:
            await tracker.aclose()
            await client.aclose()


# -- on a cluster ----------------------------------------------------------------------------


def _on_other_masters(cluster: EmbeddedCluster, tracker: Tracker, count: int) -> list[int]:
    """Return ``count`` shards whose slots live on masters other than the registry's."""
    registry = cluster.node_for_slot(cluster.keyslot(tracker.schema.registry_key)).name
    shards: list[int] = []
    for shard in range(4096):
        owner = cluster.node_for_slot(cluster.keyslot(tracker.schema.universe_key(shard))).name
        if owner != registry:
            shards.append(shard)
        if len(shards) == count:
            return shards
    raise AssertionError("no shard away from the registry's master")


@pytest.mark.parametrize("path", PATHS)
async def test_cluster_marks_after_the_registry_was_lost_are_counted(
    redis_cluster: EmbeddedCluster, prefix: str, path: WritePath
) -> None:
    """On a cluster a lost registry (a lagging replica promoted) heals with the next mark."""
    client: RedisCluster = connect_cluster(redis_cluster.url)
    tracker = _tracker(client, prefix, path)
    try:
        first, second = _on_other_masters(redis_cluster, tracker, 2)
        ledger = Ledger()
        await _mark(tracker, path, [first << SHARD_BITS, second << SHARD_BITS], ledger)
        await client.delete(tracker.schema.registry_key)
        await _mark(tracker, path, [(first << SHARD_BITS) + 1, (second << SHARD_BITS) + 1], ledger)
        await check_invariants(
            redis_cluster.url, prefix, ledger, tracker, shard_bits=SHARD_BITS, cluster=True
        )
    finally:
        await tracker.aclose()
        await close_cluster_client(client)
